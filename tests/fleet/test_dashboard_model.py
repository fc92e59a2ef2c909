"""`aiinfra dashboard`: Grafana model shape, MIG-safe power sums, every metric spelled in all generations."""

from __future__ import annotations

import json
import re

from aiinfra.fleet.dashboard import dashboard, expressions, substitute
from tests.conftest import assert_one_line_error


def test_panels_have_datasource_unique_refids_and_units():
    d = dashboard()
    for p in d["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}"
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs))
        assert p["fieldConfig"]["defaults"]["unit"]


def test_power_is_deduplicated_per_gpu_before_any_sum():
    """§0 item 10: MIG instances repeat the parent's power; sum only after max by (UUID, …)."""
    for e in expressions(dashboard()):
        if "POWER" in e and e.startswith("sum"):
            assert re.match(r"sum(?: by \([^)]*\))?\(max by \([^)]*UUID[^)]*\)", e.replace(" (max", "(max")), e


def test_memory_ratio_uses_used_plus_free_and_bytes():
    d = dashboard()
    fb = [p for p in d["panels"] if p["title"] == "Framebuffer used"][0]
    assert fb["fieldConfig"]["defaults"]["unit"] == "bytes" and "* 1048576" in fb["targets"][0]["expr"]
    assert not any("FB_TOTAL" in e for e in expressions(d))


def test_variables_substitute_like_grafana():
    e = substitute('rate(x{instance=~"$instance", gpu=~"$gpu", job=~"$job"}[$__rate_interval])', instance="a", gpu="1")
    assert e == 'rate(x{instance=~"a", gpu=~"1", job=~".*"}[1m])'


def test_cli_writes_json(cli, tmp_path):
    r = cli("dashboard")
    assert json.loads(r.out)["uid"] == "aiinfra-gpu-fleet"
    out = tmp_path / "d.json"
    r = cli("dashboard", "--out", str(out), "--title", "GPUs")
    assert r.code == 0 and json.loads(out.read_text())["title"] == "GPUs"
    assert_one_line_error(cli("dashboard", "--out", str(tmp_path / "nope" / "d.json")), "does not exist")

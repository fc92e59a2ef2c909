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


def _served_ok(panel, names):
    from aiinfra.fleet.dashboard import _served, needs

    return any(all(any(_served(q, names) for q in g) for g in needs(t["expr"])) for t in panel["targets"])


def test_default_counters_leave_no_panel_that_can_never_return_data_unmarked():
    """Issue 15: with dcgm-exporter's default counters, throttle time, uncorrectable ECC and clock-event
    reasons cannot return data; those panels must say which counter to enable, every other panel must
    read only fields the set serves."""
    from aiinfra.fleet.dashboard import build, served_names

    names, _ = served_names("default")
    doc, missing = build(served=names)
    marked = {m["title"] for m in missing}
    assert {"Time throttled by reason", "Uncorrectable ECC errors (new)"} <= marked
    for p in doc["panels"]:
        if p["type"] == "row":
            continue
        if _served_ok(p, names):
            assert "(needs" not in p["title"], p["title"]
        else:
            assert "(needs DCGM_FI_" in p["title"] and "counters CSV" in p["description"], p["title"]
    assert any("DCGM_FI_DEV_THERMAL_VIOLATION" in m["enable"] for m in missing)


def test_a_counters_csv_decides_the_panels(tmp_path):
    """A CSV in dcgm-exporter's format (§2.1) with temperature, power and the thermal violation counter
    only: the busy and memory panels need fields; the throttling panel is served."""
    from aiinfra.fleet.dashboard import build, served_names

    csv = tmp_path / "counters.csv"
    csv.write_text("# DCGM FIELD, Prometheus metric type, help message\n"
                   "DCGM_FI_DEV_GPU_TEMP, gauge, GPU temperature (in C).\n"
                   "DCGM_FI_DEV_POWER_USAGE, gauge, Power draw (in W).\n"
                   "DCGM_FI_DEV_THERMAL_VIOLATION, counter, Throttling duration due to thermal constraints (in ns).\n")
    names, label = served_names(csv)
    assert "counters file" in label and "DCGM_FI_DEV_GPU_TEMP_CELSIUS" in names  # every generation of a served field
    doc, missing = build(served=names)
    needing = {m["title"]: m["enable"] for m in missing}
    assert needing["Busy ratio per GPU / MIG instance"] == ["DCGM_FI_PROF_GR_ENGINE_ACTIVE or DCGM_FI_DEV_GPU_UTIL"]
    assert "Time throttled by reason" not in needing and "Power per GPU" not in needing
    only, _ = build(served=names, only_served=True)
    kept = {p["title"] for p in only["panels"] if p["type"] != "row"}
    assert "Power per GPU" in kept and not any(t in kept for t in needing)


def test_cli_counters_option(cli, tmp_path):
    r = cli("dashboard", "--counters", "default")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert any("(needs " in p["title"] and "DCGM_FI_DEV_THERMAL_VIOLATION" in p["title"] for p in doc["panels"])
    assert "panels need fields" in r.err
    r = cli("dashboard", "--counters", "all")
    assert not any("(needs" in p["title"] for p in json.loads(r.out)["panels"])
    assert_one_line_error(cli("dashboard", "--counters", str(tmp_path / "missing.csv")), "cannot read")

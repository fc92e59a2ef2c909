"""`aiinfra design` as a user runs it: outputs, formats, presets and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import aiinfra
from tests.conftest import assert_one_line_error


def test_superpod_preset_json(cli):
    """RA V11 Table 4 at 4 SU through the CLI: 127 nodes, 32 leaf, 16 spine, Best storage."""
    r = cli("design", "--preset", "superpod", "--su", "4", "--format", "json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["facts"]["scalable_units"] == 4
    assert doc["facts"]["storage_tier"] == "best"
    rows = {(row["fabric"], row["tier"]): row for row in doc["facts"]["per_tier"]}
    assert rows[("compute", "leaf")]["switches"] == 32 and rows[("compute", "spine")]["switches"] == 16
    assert rows[("compute", "leaf")]["cables_below"] == 1020
    compute = [i for i in doc["facts"]["bom"] if i["category"] == "compute"]
    assert compute == [{"category": "compute", "item": "dgx-h100", "quantity": 127, "unit_power_w": 10200.0,
                        "reason": "preset: 127 nodes", "table": "systems", "unit": "each", "included_in": "", "power_w": 1295400.0,
                        "power_kw": 1295.4}]
    assert "explain" not in doc


def test_table_output_has_all_sections(cli):
    r = cli("design", "--gpus", "256", "--params", "70B", "--samples-per-s", "500", "--bytes-per-sample", "1e6")
    assert r.code == 0, r.err
    for section in ("Cluster design", "Bill of materials", "Per tier", "Rack plan", "Data loading", "bisection bandwidth", "all-reduce time per step"):
        assert section in r.out, section


def test_explain_and_yaml(cli):
    r = cli("design", "--gpus", "1024", "--ufm-links", "0", "--format", "yaml", "--explain")
    assert r.code == 0, r.err
    doc = yaml.safe_load(r.out)
    bis = next(t for t in doc["explain"] if t["name"] == "bisection bandwidth")
    assert bis["value"] == pytest.approx(204.8e12)
    assert "formula" in bis and "sources" in bis
    r = cli("design", "--preset", "dgx-pod", "--su", "16", "--explain")
    assert r.code == 0 and "⌈leaves × up / (k/2)⌉" in r.out  # 3 tiers: spines split k/2 down, k/2 up
    assert "core switches" in r.out and "source" in r.out


def test_rounding_warning_is_visible(cli):
    r = cli("design", "--gpus", "12")
    assert r.code == 0
    assert "rounded up to 2 nodes = 16 GPUs" in r.err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--gpus", "0"], "GPU count must be positive"),
        (["--gpus", "-16"], "GPU count must be positive"),
        (["--gpus", "4096", "--tiers", "2"], "too small for 2 tiers"),
        (["--gpus", "1024", "--tiers", "1"], "too small for 1 tier"),
        (["--gpus", "64", "--oversubscription", "1:2"], "below 1:1"),
        (["--gpus", "64", "--fabric", "qm970"], "unknown switch 'qm970'; closest: qm9700"),
        (["--gpus", "64", "--node", "dgx-h10"], "unknown node type 'dgx-h10'; closest: dgx-h100"),
        (["--gpus", "64", "--storage-tier", "fast"], "unknown storage tier"),
        (["--gpus", "64", "--params", "lots"], "not a number like 70B"),
        (["--gpus", "64", "--model", "llama-9"], "unknown model"),
        (["--gpus", "64", "--nics", "4"], "fixed 8 compute NICs"),
        (["--gpus", "64", "--node", "dgx-b300", "--fabric", "qm9700", "--storage-switch", "q3400"], "no 400 Gb/s ports"),
        (["--preset", "superpod"], "needs --su"),
        (["--su", "2"], "needs --preset"),
        (["--preset", "megapod", "--su", "1"], "unknown preset"),
        (["--preset", "superpod", "--su", "0"], "positive number of scalable units"),
        (["--gpus", "64", "--pue", "0.8"], "PUE"),
        # nan or inf printed "nan" as a facility power, a 1e308 kW rack overflowed, 2^31 UFM links hung the fabric
        (["--gpus", "64", "--pue", "nan"], "finite number"),
        (["--gpus", "64", "--dataset-tb", "inf"], "finite number"),
        (["--gpus", "64", "--failure-rate", "nan"], "finite number"),
        (["--gpus", "64", "--samples-per-s", "nan", "--bytes-per-sample", "1e6"], "finite number"),
        (["--gpus", "64", "--rack-kw", "1e308"], "at most 2,000"),
        (["--gpus", "64", "--ufm-links", "2147483648"], "at most 1,024"),
        ([], "give --gpus"),
    ],
)
def test_bad_input_one_line(cli, argv, fragment):
    assert_one_line_error(cli("design", *argv), fragment)


def test_console_script_subprocess(tmp_path):
    """The real process: exit 2 and one stderr line on bad input; JSON on stdout otherwise."""
    env = {**os.environ, "PYTHONPATH": str(Path(aiinfra.__file__).resolve().parents[1])}
    bad = subprocess.run([sys.executable, "-m", "aiinfra", "design", "--gpus", "0"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    ok = subprocess.run([sys.executable, "-m", "aiinfra", "design", "--preset", "superpod", "--su", "1", "-f", "json"],
                        capture_output=True, text=True, env=env, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert '"scalable_units": 1' in ok.stdout

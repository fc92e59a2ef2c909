"""mig-parted configs against what mig-parted @ bd7160f does with each (fixtures/mig_parted_cases.yaml): what it
refuses is an error, an entry it reads but that selects no GPU is a warning, what it applies is clean."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aiinfra.sharing import lint

FIX = Path(__file__).parent / "fixtures"
CASES = yaml.safe_load((FIX / "mig_parted_cases.yaml").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_mig_parted_config_as_mig_parted_reads_it(case):
    found = [f for f in lint.lint_text(case["config"], "config.yaml") if f.severity != "info"]
    errors = [f.line() for f in found if f.severity == "error"]
    warnings = [f.line() for f in found if f.severity == "warning"]
    if case["upstream"] == "reject":
        assert errors, case["name"]
    elif case["upstream"] == "accept":
        assert errors == [] and warnings == [], case["name"]
    else:
        assert errors == [] and warnings, case["name"]
    assert set(case["rules"]) <= {f.rule for f in found}, (case["name"], [f.line() for f in found])


def test_device_filter_reads_as_parse_uint_base_zero():
    """types.NewDeviceIDFromString: strconv.ParseUint(s, 0, 32) then device = high 16 bits, vendor = low 16."""
    assert lint.go_device_id("0x20B010DE") == lint.go_device_id("0X20B010DE") == lint.go_device_id("548409566") == (0x20B0, 0x10DE)
    assert lint.go_device_id("0x20B010DE:0x147E10DE") == (0x20B0, 0x10DE)
    assert lint.go_device_id("A100-SXM4-40GB") is None and lint.go_device_id("") is None and lint.go_device_id("0x1FFFFFFFF") is None


def test_compute_instance_profiles_under_mixed_strategy_stop_the_plugin():
    """internal/rm/rm.go: under mixed the plugin makes a resource only for profiles with C == G, and a MIG device of
    another profile fails buildMigDeviceMap ("does not match any resource patterns")."""
    cfg = ('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\ndata:\n  config.yaml: |\n    version: v1\n    mig-configs:\n'
           '      ci:\n        - {devices: all, mig-enabled: true, mig-devices: {"1c.3g.20gb": 6}}\n---\n')
    found = lint.lint_text(cfg + "version: v1\nflags: {migStrategy: mixed}\n")
    assert [(f.rule, f.severity) for f in found] == [("dp.mixed-strategy", "error")]
    assert lint.lint_text(cfg + "version: v1\nflags: {migStrategy: single}\n") == []

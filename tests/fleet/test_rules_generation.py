"""`aiinfra rules`: output shapes, the §7.1 pitfalls kept out, SKU thresholds from the catalog, bad input."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from aiinfra.catalog.loader import set_user_catalogs
from aiinfra.errors import AiinfraError
from aiinfra.fleet.promql import xid_catalog
from aiinfra.fleet.rules import RuleOptions, alert_names, rule_groups, sku_temp_limits
from tests.conftest import assert_one_line_error


def all_exprs(doc):
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def test_fatal_xid_codes_come_from_the_catalog():
    doc = rule_groups()
    expr = next(r["expr"] for g in doc["groups"] for r in g["rules"] if r.get("alert") == "AiinfraGPUXidFatal")
    codes = {int(c) for c in re.findall(r"== (\d+)", expr)}
    critical = {c for c, x in xid_catalog().items() if x.fatal}
    assert codes == critical
    assert {48, 79} <= codes and not codes & {13, 31, 43}  # app/info codes never page (§5.7)


def test_no_rule_repeats_a_community_pitfall():
    """§7.1: no `XID > 0`, no increase() on the XID code, no rate() of NVLink bandwidth, no FB_TOTAL, no used/free."""
    for e in all_exprs(rule_groups()):
        assert not re.search(r"XID_ERRORS?\)?\s*>\s*0", e), e
        assert not re.search(r"(increase|rate)\(DCGM_FI_DEV_XID", e), e
        assert not re.search(r"(rate|increase)\(DCGM_FI_DEV_NVLINK_(BANDWIDTH|THROUGHPUT)", e), e
        assert "FB_TOTAL" not in e
        assert not re.search(r"FB_USED[^/]*/\s*\(?\s*DCGM_FI_DEV_FB_FREE", e), e
        if "sum" in e and "POWER" in e:
            pytest.fail(f"power summed without MIG dedupe: {e}")


def test_every_grouping_lists_both_hostname_spellings():
    for e in all_exprs(rule_groups()):
        for clause in re.findall(r"by \(([^)]*)\)", e):
            labels = [x.strip() for x in clause.split(",")]
            if "gpu" in labels:  # an output grouping (join keys such as `on (UUID, uuid)` need no host)
                assert {"Hostname", "hostname", "UUID", "uuid"} <= set(labels), clause


def test_sku_temperature_limits_come_from_the_gpu_catalog(tmp_path):
    extra = tmp_path / "thermal.yaml"
    extra.write_text(yaml.safe_dump({"gpus": {"h100-sxm": {"nvml_name": "NVIDIA H100 80GB HBM3", "max_op_temp_c": 87}}}))
    set_user_catalogs([extra])
    try:
        assert sku_temp_limits() == {"NVIDIA H100 80GB HBM3": 87.0, "NVIDIA H100 SXM5 80GB": 87.0}
        doc = rule_groups()
        sku = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "AiinfraGPUTemperatureAboveSKULimit"]
        assert len(sku) == 1 and sku[0]["expr"].endswith("> 87")
        assert 'modelName=~"NVIDIA H100 80GB HBM3|NVIDIA H100 SXM5 80GB"' in sku[0]["expr"]
    finally:
        set_user_catalogs([])


def test_power_above_tdp_uses_catalog_tdp():
    """H100 SXM TDP 700 W (catalog gpus.yaml, NVIDIA datasheet): the rule fires above 735 W (5 % margin)."""
    doc = rule_groups()
    tdp = [r["expr"] for g in doc["groups"] for r in g["rules"] if r.get("alert") == "AiinfraGPUPowerAboveTDP"]
    h100 = [e for e in tdp if "NVIDIA H100 80GB HBM3" in e]
    assert len(h100) == 1 and h100[0].endswith("> 735")


def test_cli_plain_and_prometheusrule(cli, tmp_path):
    r = cli("rules")
    assert r.code == 0
    doc = yaml.safe_load(r.out)
    assert "AiinfraGPUStranded" in alert_names(doc)
    r = cli("rules", "--kind", "prometheusrule", "--namespace", "monitoring", "--pod-label", "pod")
    obj = yaml.safe_load(r.out)
    assert obj["kind"] == "PrometheusRule" and obj["metadata"]["namespace"] == "monitoring"
    assert any('pod!=""' in e for e in all_exprs(obj["spec"]))
    out = tmp_path / "rules.yml"
    r = cli("rules", "--out", str(out))
    assert r.code == 0 and "wrote" in r.out
    assert yaml.safe_load(out.read_text())["groups"]
    assert [p.name for p in tmp_path.iterdir()] == ["rules.yml"]  # no temp file left behind


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_cli_check_runs_promtool(cli):
    assert cli("rules", "--check").code == 0


def test_bad_rule_options(cli, tmp_path):
    assert_one_line_error(cli("rules", "--pod-label", "owner"), "pod label must be one of")
    assert_one_line_error(cli("rules", "--idle-below", "2"), "between 0 and 1")
    assert_one_line_error(cli("rules", "--out", str(tmp_path / "missing" / "r.yml")), "does not exist")


def test_options_validate():
    with pytest.raises(AiinfraError, match="pod label"):
        RuleOptions(pod_label="x")

"""`aiinfra rules`: output shapes, the §7.1 pitfalls kept out, SKU thresholds from the catalog, bad input."""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from aiinfra.catalog.loader import set_user_catalogs
from aiinfra.errors import AiinfraError
from aiinfra.catalog.xid import xid_catalog
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
        assert sku_temp_limits() == {"NVIDIA H100 80GB HBM3": 87.0}  # NVML's name; the catalog's display name is no modelName
        doc = rule_groups()
        sku = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "AiinfraGPUTemperatureAboveSKULimit"]
        assert len(sku) == 1 and sku[0]["expr"].endswith("> 87")
        assert 'modelName="NVIDIA H100 80GB HBM3"' in sku[0]["expr"]
    finally:
        set_user_catalogs([])


def test_power_above_tdp_uses_catalog_tdp():
    """H100 SXM TDP 700 W (catalog gpus.yaml, NVIDIA datasheet): the rule fires above 735 W (5 % margin). One rule
    holds every model to its own TDP, so promtool's duplicate-rules lint has nothing to refuse."""
    doc = rule_groups()
    tdp = [r["expr"] for g in doc["groups"] for r in g["rules"] if r.get("alert") == "AiinfraGPUPowerAboveTDP"]
    assert len(tdp) == 1
    branch = next(b for b in tdp[0].split(") or (max") if "NVIDIA H100 80GB HBM3" in b)
    assert branch.rstrip(")").endswith("> 735")


def test_cli_plain_and_prometheusrule(cli, tmp_path):
    r = cli("rules")
    assert r.code == 0
    doc = yaml.safe_load(r.out)
    assert {"AiinfraGPUIdleHeld", "AiinfraGPUStranded"} <= set(alert_names(doc))
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


DURATION = {"minute": "m", "minutes": "m", "hour": "h", "hours": "h"}


def _stated_for(summary: str) -> str | None:
    m = re.search(r"for (\d+) (minutes?|hours?)", summary)
    if m:
        return f"{m.group(1)}{DURATION[m.group(2)]}"
    m = re.search(r"for (?:more than )?(\d+[smhd])\b", summary)  # the pod rule quotes its `for:` as written
    return m.group(1) if m else None


def test_every_alert_has_a_for_that_matches_its_summary():
    """Issue 15: no alert without `for:`; a summary that says "for N minutes" has exactly that `for:`,
    and one without such a phrase fires on an event (`for: 0s`)."""
    doc = rule_groups()
    for g in doc["groups"]:
        for r in g["rules"]:
            if "alert" not in r:
                continue
            assert "for" in r, r["alert"]
            stated = _stated_for(r["annotations"]["summary"])
            assert (stated or "0s") == r["for"], (r["alert"], r["for"], r["annotations"]["summary"])


def test_every_look_back_window_in_a_summary_is_guarded_by_data_at_its_start():
    """A summary that says "over the last 6h" averages a 6h window: the expression must also require a
    sample at the window's start (`offset 6h`), so a host that appeared minutes ago cannot match."""
    seen = 0
    for g in rule_groups(RuleOptions(stranded_window="3h", idle_window="8h"))["groups"]:
        for r in g["rules"]:
            m = re.search(r"over the last (\d+[smhd])", r.get("annotations", {}).get("summary", ""))
            if m:
                seen += 1
                assert f"[{m.group(1)}]" in r["expr"] and f"offset {m.group(1)}" in r["expr"], r["alert"]
    assert seen >= 3  # stranded, idle, memory full soon


def test_nvlink_and_pcie_error_rules_cover_every_name_the_exporter_can_serve():
    """The exporter's field table (telemetry.fields) decides the names it serves; the error rules must
    name each NVLink error counter and PCIe replay counter it can emit, in every naming generation."""
    from aiinfra.fleet.promql import names
    from aiinfra.telemetry.fields import all_fields

    served = set()
    for f in all_fields():
        for gen in ("legacy", "dcgm46", "dcgm49", "v1"):
            n = getattr(f, gen, None)
            if isinstance(n, str) and re.search(r"NVLINK_.*ERROR|PCIE_REPLAY|nvlink.*error|pcie_replay", n):
                served.add(n)
    expr = {r["alert"]: r["expr"] for g in rule_groups()["groups"] for r in g["rules"] if "alert" in r}
    covered = set(names("nvlink_errors")) | set(names("pcie_replay"))
    assert "DCGM_FI_DEV_PCIE_REPLAY_COUNTER" in served  # the table is read, not empty
    assert served <= covered, served - covered
    for n in names("nvlink_errors"):
        assert n in expr["AiinfraGPUNVLinkErrors"]

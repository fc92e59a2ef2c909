"""`aiinfra analyze` on a real Prometheus holding a 6-hour backfilled fleet with known workloads and faults.

The fleet (tests/integration/conftest.py) has idle, stranded, leaking and busy GPUs, MIG
instances on one host, and injected XIDs, an uncorrectable ECC error, a row-remap failure and
thermal/power throttling. The report must find exactly those, in both label layouts.
"""

from __future__ import annotations

import json
import re

import pytest

from aiinfra.errors import AiinfraError
from aiinfra.fleet.analysis import AnalysisOptions, analyze
from aiinfra.fleet.backfill import LocalPrometheus, build_blocks
from aiinfra.fleet.dashboard import dashboard, expressions, substitute
from aiinfra.fleet.prom import Prometheus
from aiinfra.catalog.xid import xid_catalog
from aiinfra.fleet.promql import ALIASES
from tests.conftest import assert_one_line_error
from tests.integration.prom_fixtures import fleet_prom, history, legacy_prom, needs_prometheus  # noqa: F401 (fixtures)

pytestmark = needs_prometheus
H = 6.0


def _gpus(rows, fh):
    host_index = {fh.hostname(h): h for h in range(fh.hosts)}
    return sorted((host_index[r["host"]], int(r["gpu"]), r.get("GPU_I_ID", "")) for r in rows)


@pytest.fixture(scope="module")
def report(fleet_prom):
    url, fh = fleet_prom
    with Prometheus(url) as p:
        r = analyze(p, AnalysisOptions(range_s=H * 3600, end=fh.end))
        return r, p.log.expressions, fh


def test_idle_and_stranded_gpus_match_the_injected_workloads(report):
    r, _, fh = report
    f = r.facts
    assert f["status"] == "ok"
    assert f["gpus"] == 16  # 8 whole GPUs + 4 GPUs × 2 MIG instances
    assert _gpus(f["idle"], fh) == [(0, 0, ""), (1, 3, ""), (2, 1, "1"), (2, 1, "2")]
    assert _gpus(f["stranded"], fh) == [(0, 1, "")]  # no pod, memory held
    assert _gpus(f["idle_held"], fh) == [(1, 2, "")]  # a pod holds it
    why = {(r_["host"], r_["gpu"]): r_["why"] for r_ in f["stranded"] + f["idle_held"]}
    assert why[(fh.hostname(1), "2")] == "pod ml/job-1-2"  # from exported_pod, not the exporter's own pod label
    assert "MiB held" in why[(fh.hostname(0), "1")]


def test_idle_gpu_hours_count_mig_slices(report):
    """Two idle whole GPUs for 6 h plus two idle 3g instances of a 7-slice H100: 12 + 2 × 3/7 × 6 GPU·h."""
    r, _, _ = report
    assert r.term("idle_gpu_hours").value == pytest.approx(12 + 2 * 3 / 7 * 6, rel=0.01)
    assert r.term("stranded_gpu_hours").value == pytest.approx(6, rel=0.02)
    assert r.term("idle_held_gpu_hours").value == pytest.approx(6, rel=0.02)


def test_oom_risk_finds_the_leak_with_a_time_to_full(report):
    r, _, fh = report
    oom = r.facts["oom_risk"]
    assert _gpus(oom, fh) == [(0, 2, "")]
    assert oom[0]["fb_used_ratio"] > 0.95
    # The leak rises 67 % of the framebuffer over 6 h and ends at 97 %: ≈ 3 % / (11 %/h) ≈ 0.27 h.
    assert 0.1 * 3600 < oom[0]["time_to_full_s"] < 0.5 * 3600
    t = r.term("soonest_time_to_full")
    assert t.value == oom[0]["time_to_full_s"] and t.formula.startswith("fb_free / deriv")


def test_throttling_share_by_reason(report):
    r, _, fh = report
    th = r.facts["throttling"]
    assert th["source"] == "violation counters (ns)"
    by_gpu = {(g["host"], g["gpu"]): g for g in th["gpus"]}
    # thermal: 3 h at 60 % of every interval in a 6 h window; power: 1.5 h at 40 %.
    assert by_gpu[(fh.hostname(2), "0")]["thermal_share"] == pytest.approx(0.3, abs=0.02)
    assert by_gpu[(fh.hostname(0), "3")]["power_share"] == pytest.approx(0.1, abs=0.02)
    assert len(th["gpus"]) == 2  # the MIG GPU appears once, not once per instance


def test_xids_carry_catalog_meaning_severity_and_action(report):
    r, _, fh = report
    rows = {(x["host"], x["gpu"], x["xid"]): x for x in r.facts["xid"]}
    assert set(rows) == {(fh.hostname(1), "0", 79), (fh.hostname(0), "3", 31), (fh.hostname(2), "3", 79)}
    try:
        cat = xid_catalog()
    except AiinfraError:
        cat = {}
    for (host, gpu, code), row in rows.items():
        assert row["sticky_now"] is ((host, gpu) != (fh.hostname(2), "3"))  # the lost GPU no longer reports
        assert row["windows_with_events"] >= 1
        if code in cat:
            assert (row["meaning"], row["severity"], row["action"]) == (cat[code].meaning, cat[code].severity, cat[code].action)
    if 79 in cat:
        assert rows[(fh.hostname(1), "0", 79)]["severity"] == "critical"
        assert rows[(fh.hostname(0), "3", 31)]["severity"] == "app"


def test_lost_gpus_are_listed_with_when_they_were_last_seen(report):
    """GPU 2/3 falls off the bus 5 h into the 6 h window (XID 79, then no series); GPU 1/0 logged XID 79
    at 2 h but still reports. Both are listed; the count drop on node 2 is a finding."""
    r, _, fh = report
    f = r.facts
    lost = {(x["host"], x["gpu"]): x for x in f["lost"]}
    assert set(lost) == {(fh.hostname(2), "3"), (fh.hostname(1), "0")}
    gone = lost[(fh.hostname(2), "3")]
    assert gone["reporting"] is False and "stopped reporting" in gone["reasons"] and any("XID 79" in w for w in gone["reasons"])
    assert gone["last_seen_ago_s"] == pytest.approx(3600, abs=180)  # last sample ≈ 1 h before the end
    assert gone["mig_instances"] == 2
    still = lost[(fh.hostname(1), "0")]
    assert still["reporting"] is True and still["reasons"] == ["XID 79: fell off the bus"]
    assert f["gpu_count"] == {"seen": 12, "now": 11, "drops": [{"host": fh.hostname(2), "seen": 4, "now": 3}]}
    states = {(g["host"], g["gpu"], g.get("GPU_I_ID", "")): g["state"] for g in f["per_gpu"]}
    assert states[(fh.hostname(2), "3", "1")] == states[(fh.hostname(2), "3", "2")] == "lost"
    assert any("fell from 4 to 3" in w for w in r.warnings)
    assert "lost or failing" in r.title


def test_ecc_and_row_remap_status(report):
    r, _, fh = report
    h = r.facts["health"]
    rows = {(g["host"], g["gpu"]): g for g in h["gpus"]}
    assert set(rows) == {(fh.hostname(1), "1"), (fh.hostname(2), "2")}
    assert rows[(fh.hostname(1), "1")]["ecc_dbe_new"] == 1
    assert rows[(fh.hostname(2), "2")]["row_remap_failure"] == 1
    assert "pcie_replays_new" in h["not_collected"]  # not exported → said so, not reported as 0 errors
    assert any("not collected" in w for w in r.warnings)


def test_utilization_by_node_and_model(report):
    r, _, fh = report
    u = r.facts["utilization"]
    assert set(u["by_node"]) == {fh.hostname(h) for h in range(3)}
    assert list(u["by_model"]) == ["NVIDIA H100 80GB HBM3"]
    assert sum(u["distribution"].values()) == 16
    # Every GPU exports both PROF activity and GPU_UTIL here: PROF answers for each, GPU_UTIL for none.
    assert {g["activity_source"] for g in r.facts["per_gpu"] if g["busy_avg"] is not None} == {"DCGM_FI_PROF_GR_ENGINE_ACTIVE"}
    assert 0 < u["fleet_avg"] < 1


def test_every_analysis_query_returns_data(report, fleet_prom):
    url, fh = fleet_prom
    _, exprs, _ = report
    assert 10 <= len(exprs) <= 25
    with Prometheus(url) as p:
        for e in exprs:
            raw = re.match(r"^(\w+\{[^}]*\})\[(\w+)\]$", e)
            if raw:  # raw samples of one GPU (scrape interval) or of the lost ones (last seen)
                assert p.raw(raw.group(1), raw.group(2), fh.end), e
                continue
            if e.startswith("count_over_time((max by (host"):  # windowed XID counts: instant
                assert p.query(e, fh.end), e
            else:
                assert p.query_range(e, fh.end - 1800, fh.end, 300), e


def test_legacy_labels_give_the_same_findings(legacy_prom):
    url, fh = legacy_prom
    with Prometheus(url) as p:
        r = analyze(p, AnalysisOptions(range_s=H * 3600, end=fh.end))
    f = r.facts
    assert f["pod_label"] == "pod"
    assert f["gpus"] == 12
    assert _gpus(f["idle"], fh) == [(0, 0, ""), (1, 3, ""), (2, 1, "")]
    assert _gpus(f["stranded"], fh) == [(0, 1, "")]
    assert _gpus(f["idle_held"], fh) == [(1, 2, "")]
    assert r.term("idle_gpu_hours").value == pytest.approx(18, rel=0.01)


def test_no_data_in_the_range_is_not_a_healthy_fleet(fleet_prom, cli):
    url, fh = fleet_prom
    with Prometheus(url) as p:
        r = analyze(p, AnalysisOptions(range_s=3600, end=fh.start - 86400))
    assert r.facts["status"] == "no_data"
    assert "nothing can be said" in r.warnings[0]
    res = cli("analyze", "--prometheus", url, "--range", "1h", "--end", str(fh.start - 86400), "--format", "json")
    assert res.code == 0
    assert res.json()["facts"]["status"] == "no_data"
    table = cli("analyze", "--prometheus", url, "--range", "1h", "--end", str(fh.start - 86400))
    assert "NO DATA" in table.out


def test_cli_json_html_and_price(fleet_prom, cli, tmp_path):
    url, fh = fleet_prom
    html = tmp_path / "fleet.html"
    res = cli("analyze", "-p", url, "--range", "6h", "--end", str(fh.end), "--price-per-gpu-hour", "2.5",
              "--format", "json", "--explain", "--html", str(html))
    assert res.code == 0, res.err
    doc = res.json()
    from aiinfra.fleet.commands import AnalyzeFacts

    AnalyzeFacts.model_validate(doc["facts"])  # the facts `aiinfra schema analyze` promises
    assert doc["facts"]["idle_gpu_hours"]["unit"] == "GPU·h"
    terms = {t["name"]: t for t in doc["explain"]}
    hours = sum(terms[f"{k}_gpu_hours"]["value"] for k in ("idle", "idle_held", "stranded"))
    assert terms["idle_cost_usd"]["value"] == pytest.approx(hours * 2.5)
    assert terms["idle_cost_usd_per_day"]["value"] == pytest.approx(hours * 2.5 * 4)
    assert "given by the user" in terms["idle_cost_usd"]["sources"]["price_per_gpu_hour"]
    page = html.read_text()
    assert page.startswith("<html") or page.lower().startswith("<!doctype") or "<html" in page[:200]
    assert '"type":"heatmap"' in page and '"type":"bar"' in page
    table = cli("analyze", "-p", url, "--range", "6h", "--end", str(fh.end))
    assert table.code == 0
    for heading in ("GPU-hours without work by node", "GPUs without work: idle but held, stranded, idle", "OOM risk", "throttling", "XID health", "ECC and row remapping",
                    "LOST or failing GPUs"):
        assert heading in table.out
    assert "stopped reporting" in table.out and "COUNT DROPPED" in table.out


def test_bad_input_is_one_line_and_exit_2(fleet_prom, cli, tmp_path):
    url, fh = fleet_prom
    assert_one_line_error(cli("analyze", "-p", "http://127.0.0.1:9", "--range", "1h"), "cannot reach Prometheus")
    assert_one_line_error(cli("analyze", "-p", url, "--range", "yesterday"), "does not parse")
    assert_one_line_error(cli("analyze", "-p", "ftp://x", "--range", "1h"), "must start with http")
    missing = tmp_path / "no" / "such" / "dir" / "r.html"
    assert_one_line_error(cli("analyze", "-p", url, "--range", "1h", "--end", str(fh.end), "--html", str(missing)), "does not exist")
    assert not missing.parent.exists()


def test_a_promql_error_from_the_server_is_one_line(tmp_path, cli):
    """A server-side limit (--query.max-samples) makes Prometheus refuse the analysis queries with 422."""
    fh = history(hosts=1, gpus_per_host=2, hours=1)
    build_blocks(fh, tmp_path / "data")
    with LocalPrometheus(tmp_path / "run", data_dir=tmp_path / "data", extra_args=["--query.max-samples=20"]) as url:
        res = cli("analyze", "-p", url, "--range", "1h", "--end", str(fh.end))
        assert_one_line_error(res, "Prometheus rejected", "422", "too many samples")
        with Prometheus(url) as p, pytest.raises(AiinfraError, match=r"HTTP 400 bad_data.*parse error"):
            p.query("sum(rate(")


def test_every_dashboard_query_runs_and_returns_data_where_its_fields_exist(fleet_prom):
    url, fh = fleet_prom
    known = {n for names in ALIASES.values() for n, _ in names}
    with Prometheus(url) as p:
        present = set(p.label_values("__name__"))
        for raw in expressions(dashboard()):
            e = substitute(raw, rate_interval="5m")
            got = p.query_range(e, fh.end - 7200, fh.end, 300)  # raises on any parse/execution error
            used = {n for n in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", raw) if n in known}
            if used & present and "> 0.95" not in raw and "> 0)" not in raw and "DCGM_EXP_XID" not in raw:
                assert got, f"no data for {raw[:120]}"


def test_dashboard_json_is_importable_shape():
    d = dashboard()
    json.dumps(d)
    names = [v["name"] for v in d["templating"]["list"]]
    assert names == ["datasource", "job", "instance", "gpu"]
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    assert rows[0] == "Fleet" and rows[1].startswith("Node") and rows[2].startswith("GPU")
    ys = [p["gridPos"]["y"] for p in d["panels"]]
    assert ys == sorted(ys)


def test_dcgm46_ratio_name_with_percent_values_is_rescaled(tmp_path):
    """DCGM 4.6 names GPU_UTIL `…_RATIO` but fills it with 0–100 (§1.1); no PROF fields here (a no-DCP node)."""
    fh = history(prof=False, gpu_util_name="DCGM_FI_DEV_GPU_UTIL_RATIO", hours=2, seed=5)
    build_blocks(fh, tmp_path / "data")
    with LocalPrometheus(tmp_path / "run", data_dir=tmp_path / "data") as url, Prometheus(url) as p:
        r = analyze(p, AnalysisOptions(range_s=2 * 3600, end=fh.end))
    f = r.facts
    assert "DCGM_FI_PROF_GR_ENGINE_ACTIVE" not in f["naming"]
    assert 0.3 < f["utilization"]["fleet_avg"] < 1.0
    assert _gpus(f["idle"], fh) == [(0, 0, ""), (1, 3, ""), (2, 1, "")]
    assert all(g["busy_avg"] <= 1.0 for g in f["per_gpu"])


def test_a100_mig_without_profiling_is_activity_unknown_not_idle(tmp_path):
    """NVML-only A100 host: whole GPUs have GPU_UTIL; MIG instances have neither GPU_UTIL (not reported
    per instance, reference §0 item 4) nor PROF activity (no GPM before Hopper). They are listed as
    activity unknown, never idle, and their GPU-hours are not counted as idle."""
    fh = history(hosts=2, gpus_per_host=2, mig_hosts=(1,), prof=False, model="a100-sxm-80gb", hours=1, seed=6,
                 workloads={(0, 0): "idle", (0, 1): "training", (1, 0): "idle", (1, 1): "idle"}, faults=[])
    build_blocks(fh, tmp_path / "data")
    with LocalPrometheus(tmp_path / "run", data_dir=tmp_path / "data") as url, Prometheus(url) as p:
        r = analyze(p, AnalysisOptions(range_s=3600, end=fh.end))
    f = r.facts
    assert f["status"] == "ok" and f["gpus"] == 6
    assert _gpus(f["idle"], fh) == [(0, 0, "")]
    assert _gpus(f["activity_unknown"], fh) == [(1, 0, "1"), (1, 0, "2"), (1, 1, "1"), (1, 1, "2")]
    assert all(g["busy_avg"] is None and "MIG instance" in g["why"] for g in f["activity_unknown"])
    assert f["utilization"]["distribution"]["unknown"] == 4
    assert {g["activity_source"] for g in f["per_gpu"] if g["busy_avg"] is not None} == {"DCGM_FI_DEV_GPU_UTIL"}
    assert r.term("idle_gpu_hours").value == pytest.approx(1.0, rel=0.02)
    assert any("activity unknown" in w for w in r.warnings)


def test_a_fleet_with_no_activity_metric_at_all_is_unknown_not_no_data(tmp_path):
    fh = history(hosts=1, gpus_per_host=2, mig_hosts=(0,), prof=False, hours=1, seed=7, faults=[])
    build_blocks(fh, tmp_path / "data")
    with LocalPrometheus(tmp_path / "run", data_dir=tmp_path / "data") as url, Prometheus(url) as p:
        r = analyze(p, AnalysisOptions(range_s=3600, end=fh.end))
    f = r.facts
    assert f["status"] == "ok" and f["utilization"]["fleet_avg"] is None
    assert len(f["activity_unknown"]) == 4 and not f["idle"] and not f["stranded"]

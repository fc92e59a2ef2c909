"""GPU-hours over a window, against a real Prometheus 2.x holding a backfilled history whose answers are
known: `analyze` charges a series only the steps it reported, and `chargeback` counts the steps of
(end - range, end], so an hour held is 1.0 GPU-hour and consecutive windows add up.

The history (15 s samples, ending at E; 2 h of data, E - 2 h … E):
- node-a/gpu0 pod research/train-1, busy 0.9, the whole 2 h;
- node-a/gpu1 pod ds/notebook-1, busy 0, 20,000 MiB: idle but held;
- node-a/gpu2 no pod, busy 0, 30,000 MiB held: stranded;
- node-a/gpu3 no pod, busy 0, no memory: idle;
- node-a/gpu4 pod research/mover (busy 0.5) until E - 30 min, then no pod and idle;
- node-a/gpu5 no pod and idle until E - 30 min, then pod research/mover (busy 0.5);
- node-a/gpu6 pod research/late, busy 0, joins at E - 30 min;
- node-b/gpu0 no pod, busy 0, no memory, joins at E - 30 min;
- node-b/gpu1 Slurm job 7781 (hpc_job, no pod), busy 0, 8,000 MiB: idle but held;
- node-c/gpu0 an A100 in MIG: 3g.40gb pod serving/mig-a busy 0.6, 1g.10gb pod serving/mig-b busy 0.

Backfilled data has no staleness markers, so a series that ends is still read for Prometheus' 5-minute
lookback (a live scrape ends it at once); the expectations below say where that applies.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections import defaultdict

import pytest

from aiinfra.fleet.analysis import AnalysisOptions, analyze
from aiinfra.fleet.backfill import LocalPrometheus, promtool
from aiinfra.fleet.chargeback import ChargebackOptions, chargeback
from aiinfra.fleet.prom import Prometheus
from tests.conftest import assert_one_line_error

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                                reason="prometheus/promtool (Debian package prometheus) not installed")
S = 15
H100, A100 = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"
STEP_H = S / 3600.0


def _history(end: int) -> str:
    a, half = end - 7200, end - 1800
    series: dict[tuple, list[tuple[int, float]]] = defaultdict(list)

    def gpu(host, g, model, t0, t1, busy, fb_mib, fb_total=81559, **extra):
        labels = dict(gpu=str(g), UUID=f"GPU-{host}-{g}", Hostname=host, modelName=model, device=f"nvidia{g}",
                      instance=f"{host}:9400", job="dcgm", **extra)
        key = tuple(sorted(labels.items()))
        for t in range(t0, t1 + 1, S):
            series[("DCGM_FI_PROF_GR_ENGINE_ACTIVE", key)].append((t, busy))
            if "GPU_I_ID" not in labels:
                series[("DCGM_FI_DEV_GPU_UTIL", key)].append((t, round(busy * 100)))
            series[("DCGM_FI_DEV_FB_USED", key)].append((t, fb_mib))
            series[("DCGM_FI_DEV_FB_FREE", key)].append((t, fb_total - fb_mib))
            series[("DCGM_FI_DEV_GPU_TEMP", key)].append((t, 40))

    def own(ns, pod):
        return dict(namespace=ns, pod=pod, container="main")

    gpu("node-a", 0, H100, a, end, 0.9, 60000, **own("research", "train-1"))
    gpu("node-a", 1, H100, a, end, 0.0, 20000, **own("ds", "notebook-1"))
    gpu("node-a", 2, H100, a, end, 0.0, 30000)
    gpu("node-a", 3, H100, a, end, 0.0, 0)
    gpu("node-a", 4, H100, a, half - S, 0.5, 40000, **own("research", "mover"))
    gpu("node-a", 4, H100, half, end, 0.0, 0)
    gpu("node-a", 5, H100, a, half - S, 0.0, 0)
    gpu("node-a", 5, H100, half, end, 0.5, 40000, **own("research", "mover"))
    gpu("node-a", 6, H100, half, end, 0.0, 0, **own("research", "late"))
    gpu("node-b", 0, H100, half, end, 0.0, 0)
    gpu("node-b", 1, H100, a, end, 0.0, 8000, hpc_job="7781")
    for gi, prof, busy, pod in ((1, "3g.40gb", 0.6, "mig-a"), (9, "1g.10gb", 0.0, "mig-b")):
        gpu("node-c", 0, A100, a, end, busy, 5000, fb_total=40000, GPU_I_ID=str(gi), GPU_I_PROFILE=prof, **own("serving", pod))
    out, by_metric = [], defaultdict(list)
    for (m, key), pts in series.items():
        by_metric[m].append((key, pts))
    for m, lst in by_metric.items():
        out.append(f"# TYPE {m} gauge")
        for key, pts in lst:
            lab = ",".join(f'{k}="{v}"' for k, v in key)
            out += [f"{m}{{{lab}}} {v} {t}" for t, v in pts]
    return "\n".join(out) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    root = tmp_path_factory.mktemp("windows")
    end = int(time.time() // 3600) * 3600 - 3600
    (root / "h.om").write_text(_history(end))
    subprocess.run([promtool(), "tsdb", "create-blocks-from", "openmetrics", str(root / "h.om"), str(root / "data")],
                   check=True, capture_output=True)
    with LocalPrometheus(root / "run", data_dir=root / "data") as url:
        yield url, end


def _analyze(prom, range_s=3600.0, end=None, **kw):
    url, e = prom
    kw.setdefault("price_per_gpu_hour", 2.0)
    with Prometheus(url) as p:
        return analyze(p, AnalysisOptions(range_s=range_s, end=e if end is None else end, **kw))


def _rows(r):
    return {(g.get("host"), g.get("gpu"), g.get("GPU_I_ID", ""), g.get("pod", "")): g for g in r.facts["per_gpu"]}


def test_analyze_charges_a_series_only_the_time_it_reported(prom):
    """Per series: steps of (E - 1 h, E] with data and busy below 5 %, × 15 s. A GPU that joined
    at E - 30 min reports 121 steps (E - 30 min … E), not the whole hour; the two series of a GPU
    whose pod moved are charged their own halves (the earlier one plus the 5-minute lookback)."""
    rows = _rows(_analyze(prom))
    whole = 240 * STEP_H
    assert rows[("node-a", "3", "", "")]["low_activity_gpu_hours"] == pytest.approx(whole, abs=1e-9)
    assert rows[("node-a", "4", "", "")]["low_activity_gpu_hours"] == pytest.approx(121 * STEP_H, abs=1e-9)  # after the move
    # before it: last sample at E - 30m15s, read for 5 more minutes: steps E - 59m45s … E - 25m15s
    assert rows[("node-a", "5", "", "")]["low_activity_gpu_hours"] == pytest.approx(139 * STEP_H, abs=1e-9)
    assert rows[("node-b", "0", "", "")]["low_activity_gpu_hours"] == pytest.approx(121 * STEP_H, abs=1e-9)  # joined halfway
    assert rows[("node-a", "6", "", "late")]["low_activity_gpu_hours"] == pytest.approx(121 * STEP_H, abs=1e-9)
    assert rows[("node-c", "0", "9", "mig-b")]["low_activity_gpu_hours"] == pytest.approx(whole / 7, abs=1e-9)
    for g in rows.values():
        if "low_activity_gpu_hours" in g:
            assert g["low_activity_gpu_hours"] <= g["reported_gpu_hours"] + 1e-12


def test_a_window_longer_than_the_data_charges_only_the_data(prom):
    """30 d asked, 2 h stored: a GPU idle for all of it is charged 2 h (the 300 s steps of the window
    that see it, one more for the lookback at its start), never 720 h."""
    r = _analyze(prom, range_s=30 * 86400.0)
    rows = _rows(r)
    assert r.facts["step_s"] == 300
    assert rows[("node-a", "3", "", "")]["low_activity_gpu_hours"] == pytest.approx(2.0, abs=300 / 3600 + 1e-9)
    no_work = sum(g.get("low_activity_gpu_hours") or 0.0 for g in rows.values())
    presence = sum(g.get("reported_gpu_hours") or 0.0 for g in rows.values())
    assert no_work <= presence < 20
    total = sum(t.value for t in r.terms if t.name.endswith("_gpu_hours"))
    assert total == pytest.approx(no_work)


def _cb(prom, range_s, end, price=2.0):
    url, _ = prom
    return chargeback(url, ChargebackOptions(range_s=range_s, end=end, price_per_gpu_hour=price))


def _pods(r):
    return {p["pod"]: p for p in r.facts["by_pod"]}


def test_chargeback_bills_an_hour_held_as_one_gpu_hour(prom):
    """Prometheus 2.x takes both ends of a subquery's range: [1h:15s] has 241 steps, 1.00417 h."""
    _, end = prom
    r = _cb(prom, 3600, end)
    assert r.facts["step_s"]["value"] == 15
    assert _pods(r)["train-1"]["allocated_gpu_hours"] == pytest.approx(1.0, abs=1e-9)
    assert _pods(r)["notebook-1"]["idle_held_gpu_hours"] == pytest.approx(1.0, abs=1e-9)
    assert r.facts["stranded_gpu_hours"]["value"] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("hours", [1, 24])
def test_consecutive_chargeback_windows_tile_time(prom, hours):
    """(E - 2h, E - 1h] and (E - 1h, E] share no step: their sum is the 2-hour window's bill exactly.
    The 24-hour windows (300 s steps) end one and two days after E."""
    _, end = prom
    r = hours * 3600
    if hours == 1:
        ends = (end - r, end, end)
    else:
        ends = (end + r, end + 2 * r, end + 2 * r)
    first, second, both = _cb(prom, r, ends[0]), _cb(prom, r, ends[1]), _cb(prom, 2 * r, ends[2])
    for pod in ("train-1", "notebook-1", "mig-a"):
        a, b, ab = (_pods(x).get(pod, {}).get("allocated_gpu_hours", 0.0) for x in (first, second, both))
        assert a + b == pytest.approx(ab, abs=1e-9), pod
    if hours == 1:
        assert _pods(first)["train-1"]["allocated_gpu_hours"] == pytest.approx(1.0, abs=1e-9)  # data from E - 2 h on


def test_analyze_and_chargeback_agree_on_an_hour(prom):
    """The same GPU, the same hour: analyze's no-work hours of the idle notebook equal chargeback's."""
    _, end = prom
    rows = _rows(_analyze(prom))
    cb = _pods(_cb(prom, 3600, end))
    assert rows[("node-a", "1", "", "notebook-1")]["low_activity_gpu_hours"] == pytest.approx(cb["notebook-1"]["idle_held_gpu_hours"], abs=1e-9)


@pytest.mark.parametrize("cmd", ["analyze", "chargeback"])
@pytest.mark.parametrize("end,words", [("nan", "finite"), ("inf", "finite"), ("-inf", "finite"), ("-5", "since 1970"),
                                       ("1e300", "year 9999"), ("1796673600000", "milliseconds")])
def test_an_end_that_is_no_unix_time_is_refused(cli, prom, cmd, end, words):
    url, _ = prom
    r = cli(cmd, "-p", url, "-r", "1h", f"--end={end}", "-f", "json")
    assert_one_line_error(r, "--end", words)


@pytest.mark.parametrize("held", ["-5", "nan", "inf"])
def test_chargeback_held_mib_must_be_a_finite_amount(cli, prom, held):
    url, end = prom
    r = cli("chargeback", "-p", url, "-r", "1h", "--end", str(end), f"--held-mib={held}")
    assert_one_line_error(r, "--held-mib")


def test_json_is_strict_and_carries_the_hours(cli, prom):
    url, end = prom
    r = cli("analyze", "-p", url, "-r", "1h", "--end", str(end), "--price-per-gpu-hour", "2", "-f", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert doc["facts"]["step_s"] == 15
    assert all("low_activity_gpu_hours" in g for g in doc["facts"]["per_gpu"] if g["state"] in ("idle", "idle_held", "stranded"))
    by_node = doc["facts"]["no_work_by_node"]  # the table's per-node GPU-hours and cost
    assert by_node["node-a"]["stranded"] == pytest.approx(1.0, abs=1e-9)
    assert by_node["node-b"]["usd"] == pytest.approx(2.0 * (by_node["node-b"]["idle"] + by_node["node-b"]["idle_held"]))


def test_analyze_looks_prices_up_as_chargeback_does_and_names_only_the_unpriced(prom):
    """The prices catalog prices the H100 (median on-demand offer) and not the A100: both commands find
    the H100's price, and the message names the A100 alone. analyze used to say "no price in the catalog
    for a100-80gb-sxm, h100-sxm" for this fleet."""
    from aiinfra.fleet.analysis import price_per_gpu_hour

    h100 = price_per_gpu_hour("h100-sxm")
    assert h100 is not None and price_per_gpu_hour("a100-80gb-sxm") is None, "the shipped catalog's prices changed"
    _, end = prom
    r = _analyze(prom, price_per_gpu_hour=None)
    cb = _cb(prom, 3600, end, price=None)
    f = r.facts
    assert f["prices_by_model"] == {H100: h100[0]}
    assert f["prices_by_model"] == {m: q["value"] for m, q in cb.facts["prices_by_model"].items()}
    missing = f["price_source"].split("no catalog price for ", 1)[1]
    assert missing.startswith(f"{A100} (a100-80gb-sxm)") and "h100" not in missing.lower() and "H100" not in missing
    assert f["price_source"] == cb.facts["price_source"]
    assert any("GPU-hours only" in w and A100 in w for w in r.warnings)
    assert all(t.name != "idle_cost_usd" for t in r.terms)  # the A100 has idle hours and no price


def test_idle_cost_prices_each_model_at_its_own_price(prom, tmp_path):
    """With a (user catalog) price for the A100 too, a mixed fleet is priced per model, not refused."""
    from aiinfra.catalog.loader import set_user_catalogs
    from aiinfra.fleet.analysis import price_per_gpu_hour

    (tmp_path / "a100.yaml").write_text("prices:\n  test-a100-offer:\n    type: cloud\n    provider: test\n    instance: A100\n"
                                        "    gpu: a100-80gb-sxm\n    gpus: 8\n    unit: gpu-hour\n    on_demand: 1.50\n"
                                        "    observed: 2026-10-24\n    source: a test's own offer\n")
    set_user_catalogs([tmp_path / "a100.yaml"])
    try:
        h100 = price_per_gpu_hour("h100-sxm")[0]
        r = _analyze(prom, price_per_gpu_hour=None)
    finally:
        set_user_catalogs([])
    hours = {H100: 0.0, A100: 0.0}
    for g in r.facts["per_gpu"]:
        hours[g["modelName"]] += g.get("low_activity_gpu_hours") or 0.0
    assert hours[A100] == pytest.approx(240 * STEP_H / 7, abs=1e-9)
    assert r.term("idle_cost_usd").value == pytest.approx(hours[H100] * h100 + hours[A100] * 1.50, rel=1e-12)
    assert r.facts["prices_by_model"] == {H100: h100, A100: 1.5} and r.facts["price_per_gpu_hour"] is None


def _names(rows):
    return sorted((g["host"], g["gpu"], g.get("GPU_I_ID", ""), g.get("pod") or g.get("hpc_job", "")) for g in rows)


def test_analyze_and_chargeback_name_the_same_gpus_the_same_way(prom):
    """Idle but held: a pod or HPC job holds it and it does no work. Stranded: no pod or job, no work,
    framebuffer ≥ --held-mib in use (nobody can be given it). Idle: no owner, no memory. analyze used to
    call every idle GPU a pod held "stranded", chargeback only the unowned ones with memory held."""
    _, end = prom
    r = _analyze(prom)
    f = r.facts
    assert _names(f["idle_held"]) == [("node-a", "1", "", "notebook-1"), ("node-a", "6", "", "late"),
                                      ("node-b", "1", "", "7781"), ("node-c", "0", "9", "mig-b")]
    assert _names(f["stranded"]) == [("node-a", "2", "", "")]
    assert _names(f["idle"]) == [("node-a", "3", "", ""), ("node-a", "4", "", ""), ("node-a", "5", "", ""), ("node-b", "0", "", "")]
    assert {g["why"] for g in f["idle_held"]} >= {"pod ds/notebook-1", "HPC job 7781"}
    cb = _cb(prom, 3600, end).facts
    for key in ("idle_held_gpu_hours", "stranded_gpu_hours"):
        assert f[key]["value"] == pytest.approx(cb[key]["value"], abs=1e-9), key
    assert f["idle_held_gpu_hours"]["value"] == pytest.approx((240 + 121 + 240 + 240 / 7) * STEP_H, abs=1e-9)
    assert f["stranded_gpu_hours"]["value"] == pytest.approx(1.0, abs=1e-9)
    hours = f["idle_gpu_hours"]["value"] + f["idle_held_gpu_hours"]["value"] + f["stranded_gpu_hours"]["value"]
    assert r.term("idle_cost_usd").value == pytest.approx(2.0 * hours)


def test_analyze_takes_held_mib(cli, prom):
    """--held-mib draws the line between stranded and idle for an unowned GPU without work (30,000 MiB here)."""
    url, end = prom
    base = ("analyze", "-p", url, "-r", "1h", "--end", str(end), "--price-per-gpu-hour", "2", "-f", "json")
    low, high = cli(*base, "--held-mib", "10000"), cli(*base, "--held-mib", "40000")
    assert low.code == 0 and high.code == 0, (low.err, high.err)
    assert _names(low.json()["facts"]["stranded"]) == [("node-a", "2", "", "")]
    assert _names(high.json()["facts"]["stranded"]) == []
    assert ("node-a", "2", "", "") in _names(high.json()["facts"]["idle"])
    assert high.json()["facts"]["held_mib"] == 40000
    assert_one_line_error(cli(*base, "--held-mib", "-5"), "--held-mib")


def test_fleet_page_lists_idle_but_held_apart_from_stranded(prom, monkeypatch):
    """The page runs the function behind `aiinfra analyze` (here ending at E: the page itself reads up to now)."""
    import functools
    import warnings

    from aiinfra.fleet import commands
    from aiinfra.web.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    url, end = prom
    monkeypatch.setattr(commands, "analyze", functools.partial(commands.analyze, end=end))
    with TestClient(create_app()) as c:
        page = c.get("/fleet", params={"source": "prometheus", "prometheus": url, "range": "1h", "refresh_s": "0"})
    assert page.status_code == 200
    html = page.text
    held, stranded = html.index('id="idle-held"'), html.index('id="stranded"')
    assert "notebook-1" in html[held:stranded] and "HPC job 7781" in html[held:stranded]
    assert "node-a/gpu2" in html[stranded:] and "notebook-1" not in html[stranded:html.index('id="xid"')]

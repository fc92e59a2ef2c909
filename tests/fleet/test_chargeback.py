"""Chargeback through a real Prometheus over a 2-hour attributed history whose answers are known.

The fleet (`attributed_history`): two training GPUs of one pod, an idle notebook holding a GPU, a
GPU shared by two pods (time-slicing, vgpu 1 and 2), a GPU nobody owns but with memory held
(stranded), a free GPU a batch pod takes over after one hour, a 3g.40gb MIG instance of a serving
pod next to a free one, and a Slurm job on a whole GPU (hpc_job, no pod). Every number below is
hours × GPUs × share, worked out by hand from that table.
"""

from __future__ import annotations

import csv
import io
import shutil
import time

import pytest

from aiinfra.fleet.attributed_history import Device, Holder, load
from aiinfra.fleet.backfill import LocalPrometheus
from aiinfra.fleet.chargeback import ChargebackOptions, chargeback, to_csv

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                                reason="prometheus/promtool (Debian package prometheus) not installed")
H = 2.0
STEP = 60.0
MIG = 3 / 7  # a 3g instance of an H100 (7 compute slices, catalog mig_max_instances)


def devices(pod_prefix=""):
    return [
        Device(0, 0, 0.9, 60000, 700, holders=[Holder(0, H, "research", "train-a", "trainer")]),
        Device(0, 1, 0.9, 60000, 700, holders=[Holder(0, H, "research", "train-a", "trainer")]),
        Device(0, 2, 0.0, 10240, 100, holders=[Holder(0, H, "data-science", "notebook-1", "jupyter")]),
        Device(0, 3, 0.7, 30000, 500, holders=[Holder(1.0, H, "batch", "late-job")]),
        Device(1, 0, 0.5, 40000, 400, holders=[Holder(0, H, "serving", "embed-a", vgpu="1"), Holder(0, H, "serving", "embed-b", vgpu="2")]),
        Device(1, 1, 0.0, 20480, 90),
        Device(2, 0, 0.6, 20000, 350, "3g.40gb", 1, [Holder(0, H, "serving", "triton")]),
        Device(2, 0, 0.0, 0, 350, "3g.40gb", 2),
        Device(2, 1, 0.8, 60000, 650, holders=[Holder(0, H, job="7781")]),
    ]


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    root = tmp_path_factory.mktemp("chargeback")
    end = float(int(time.time() // STEP) * STEP) - 600
    load(devices(), end, H, STEP, root / "data")
    with LocalPrometheus(root / "run", data_dir=root / "data") as url:
        yield url, end


def run(prom, **kw):
    url, end = prom
    return chargeback(url, ChargebackOptions(range_s=H * 3600, end=end, price_per_gpu_hour=2.0, **kw))


def pods(r):
    return {(p["namespace"], p["pod"], p["hpc_job"]): p for p in r.facts["by_pod"]}


def test_gpu_hours_by_pod_namespace_and_job(prom):
    r = run(prom)
    p = pods(r)
    assert p[("research", "train-a", "")]["allocated_gpu_hours"] == pytest.approx(4.0, abs=0.05)
    assert p[("research", "train-a", "")]["busy_gpu_hours"] == pytest.approx(3.6, abs=0.05)
    assert p[("data-science", "notebook-1", "")]["idle_held_gpu_hours"] == pytest.approx(2.0, abs=0.05)
    assert p[("batch", "late-job", "")]["allocated_gpu_hours"] == pytest.approx(1.0, abs=0.05)  # took the GPU after an hour
    # time-sliced: each of two pods is billed half the GPU
    assert p[("serving", "embed-a", "")]["allocated_gpu_hours"] == pytest.approx(1.0, abs=0.05)
    assert p[("serving", "embed-b", "")]["busy_gpu_hours"] == pytest.approx(0.5, abs=0.05)
    assert p[("serving", "triton", "")]["allocated_gpu_hours"] == pytest.approx(2 * MIG, abs=0.05)
    assert p[("", "", "7781")]["allocated_gpu_hours"] == pytest.approx(2.0, abs=0.05)
    ns = {n["namespace"]: n for n in r.facts["by_namespace"]}
    assert ns["serving"]["allocated_gpu_hours"] == pytest.approx(2 + 2 * MIG, abs=0.1)
    assert ns["research"]["cost_usd"] == pytest.approx(8.0, abs=0.1)
    assert [j["hpc_job"] for j in r.facts["by_job"]] == ["7781"]
    assert r.facts["allocated_gpu_hours"]["value"] == pytest.approx(4 + 2 + 1 + 2 + 2 * MIG + 2, abs=0.2)


def test_stranded_unallocated_and_top_wasters(prom):
    r = run(prom)
    assert r.facts["stranded_gpu_hours"]["value"] == pytest.approx(2.0, abs=0.05)  # GPU 1/1: memory held, no owner
    # free: GPU 0/3 for the first hour (+ up to 5 min of Prometheus lookback), GPU 1/1, and the free MIG instance
    assert r.facts["unallocated_gpu_hours"]["value"] == pytest.approx(1.0 + 2.0 + 2 * MIG, abs=0.15)
    top = r.facts["top_wasters"][0]
    assert (top["namespace"], top["pod"]) == ("data-science", "notebook-1")
    assert top["waste_usd"] == pytest.approx(4.0, abs=0.1)


def test_energy_follows_the_holder(prom):
    r = run(prom)
    p = pods(r)
    # 700 W × 2 GPUs × 2 h = 2.8 kWh; rate() over 5 min misses at most the first minute of a series
    assert p[("research", "train-a", "")]["energy_kwh"] == pytest.approx(2.8, rel=0.03)
    assert p[("serving", "embed-a", "")]["energy_kwh"] == pytest.approx(0.4, rel=0.03)  # 400 W × 2 h / 2 pods
    assert p[("serving", "triton", "")]["energy_kwh"] == pytest.approx(0.35 * 2 * MIG, rel=0.03)


def test_price_is_named_and_catalog_used_when_not_given(prom):
    url, end = prom
    r = chargeback(url, ChargebackOptions(range_s=H * 3600, end=end))
    assert "prices catalog" in r.facts["price_source"] and "observed" in r.facts["price_source"]
    assert r.facts["cost_usd"]["value"] > 0
    assert any("price" in a for a in r.assumptions)


def test_csv_for_finance(prom):
    rows = list(csv.DictReader(io.StringIO(to_csv(run(prom)))))
    row = next(x for x in rows if x["pod"] == "train-a")
    assert float(row["cost_usd"]) == pytest.approx(8.0, abs=0.1)
    assert row["price_source"].startswith("2 USD/GPU-h")
    assert {x["namespace"] for x in rows} >= {"research", "serving", "data-science", "batch"}


def test_facts_keep_the_contract(prom):
    from aiinfra.fleet.chargeback import ChargebackFacts

    doc = run(prom).to_dict(explain=False)
    ChargebackFacts.model_validate(doc["facts"])
    assert doc["facts"]["price_per_gpu_hour"] == {"value": 2.0, "unit": "USD/GPU·h"}


def test_cli_csv_and_json(prom):
    import json
    import os
    import subprocess
    import sys

    url, end = prom
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(__import__("pathlib").Path(__file__).resolve().parents[2] / "src"), os.environ.get("PYTHONPATH", "")])}
    base = [sys.executable, "-m", "aiinfra", "chargeback", "-p", url, "--range", "2h", "--end", f"{end:.0f}", "--price-per-gpu-hour", "3"]
    out = subprocess.run(base + ["--format", "csv"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith("namespace,pod,hpc_job,allocated_gpu_hours")
    js = subprocess.run(base + ["--format", "json", "--explain"], capture_output=True, text=True, env=env, timeout=120)
    doc = json.loads(js.stdout)
    assert {t["name"] for t in doc["explain"]} >= {"allocated_gpu_hours", "idle_held_gpu_hours", "energy_kwh", "cost_usd"}
    table = subprocess.run(base + ["--explain"], capture_output=True, text=True, env=env, timeout=120)
    assert table.returncode == 0 and "by namespace" in table.stdout and "research" in table.stdout
    assert doc["facts"]["price_source"].startswith("3 USD/GPU-h")
    bad = subprocess.run(base[:-2] + ["--price-per-gpu-hour", "-1"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "negative" in bad.stderr


def test_fleet_web_page_has_the_chargeback_section(prom):
    """The Fleet page (Prometheus source) shows chargeback by namespace and the top wasters."""
    import warnings

    from aiinfra.web.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    url, _ = prom
    with TestClient(create_app()) as c:
        page = c.get("/fleet", params={"source": "prometheus", "prometheus": url, "range": "3h", "refresh_s": "0"})
    assert page.status_code == 200
    html = page.text
    assert "Chargeback by namespace" in html and "research" in html and "Top wasters" in html and "notebook-1" in html


def test_exported_pod_layout(tmp_path):
    """Behind a ServiceMonitor with honorLabels: false the owner is exported_pod/exported_namespace and
    every series also carries the exporter's own `pod` label; the chargeback reads the former."""
    end = float(int(time.time() // STEP) * STEP) - 600
    load(devices(), end, H, STEP, tmp_path / "data", pod_prefix="exported_")
    with LocalPrometheus(tmp_path / "run", data_dir=tmp_path / "data") as url:
        r = chargeback(url, ChargebackOptions(range_s=H * 3600, end=end, price_per_gpu_hour=2.0))
    p = pods(r)
    assert p[("research", "train-a", "")]["allocated_gpu_hours"] == pytest.approx(4.0, abs=0.05)
    assert r.facts["owner_labels"][:2] == ["exported_namespace", "exported_pod"]
    assert r.facts["unallocated_gpu_hours"]["value"] == pytest.approx(1.0 + 2.0 + 2 * MIG, abs=0.15)

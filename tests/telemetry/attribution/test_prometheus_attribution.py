"""End to end: simulated GPUs + simulated kubelets (real gRPC) → the exporter → a real Prometheus →
pod labels in PromQL and a chargeback by namespace, pod and job."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from aiinfra.fleet.backfill import LocalPrometheus
from aiinfra.fleet.chargeback import ChargebackOptions, chargeback
from aiinfra.fleet.prom import Prometheus
from aiinfra.telemetry.attribution import setup
from aiinfra.telemetry.exporter import ExporterConfig, build_sources, start

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="the prometheus binary is installed by `make test` (APT_PACKAGES)")


def test_pod_labels_and_chargeback_through_prometheus(tmp_path):
    cfg = ExporterConfig(hostname_label="hostname")
    sources = build_sources("hosts=2,gpus=8,seed=1", None, cfg)
    jobs = tempfile.mkdtemp(prefix="aiinfra-jobs-")
    attr, nodes = setup(sources, simulated=True, kubernetes=True, hpc_job_dir=jobs, interval_s=0.5, wait=True)
    cfg = replace(cfg, attribution=attr)
    running = start(sources, cfg, port=0, interval_s=0.5)
    try:
        targets = [f"127.0.0.1:{server.server_address[1]}" for _, server in running]
        with LocalPrometheus(tmp_path / "prom", targets=targets, scrape_interval="1s") as url, Prometheus(url) as p:
            deadline = time.monotonic() + 90
            first = None
            while time.monotonic() < deadline:
                owned = p.query('count(DCGM_FI_DEV_GPU_UTIL{pod!=""})')
                if owned and first is None:
                    first = time.monotonic()
                if first is not None and time.monotonic() - first > 20:
                    break
                time.sleep(0.5)
            rows = p.query('count by (namespace) (DCGM_FI_DEV_GPU_UTIL{pod!=""})')
            assert {r.labels["namespace"] for r in rows} >= {"research", "serving", "data-science"}
            assert p.query('count(DCGM_FI_DEV_GPU_UTIL{hpc_job!=""})')[0].value >= 1
            assert p.query("min(aiinfra_kubelet_podresources_up)")[0].value == 1
            shared = p.query('count by (hostname, UUID) (DCGM_FI_DEV_GPU_UTIL{vgpu!=""})')
            assert shared and all(s.value == 2 for s in shared)  # one series per replica of the time-sliced GPU
            r = chargeback(p, ChargebackOptions(range_s=60, price_per_gpu_hour=2.0))
        ns = {n["namespace"]: n for n in r.facts["by_namespace"]}
        assert ns["research"]["allocated_gpu_hours"] > 0 and ns["research"]["busy_ratio"] > 0.05  # training (its first 15 s are a checkpoint pause at 8 %)
        pods = {x["pod"]: x for x in r.facts["by_pod"]}
        a, b = pods["embed-a-sim-node-00"], pods["embed-b-sim-node-00"]
        assert a["allocated_gpu_hours"] == pytest.approx(b["allocated_gpu_hours"], rel=0.05)  # a shared GPU splits evenly
        idle = [x for x in r.facts["top_wasters"] if x["pod"].startswith("idle-notebook")]
        assert idle and idle[0]["busy_ratio"] < 0.05
        assert r.facts["energy_kwh"]["value"] > 0
    finally:
        for exp, server in running:
            server.shutdown()
            server.server_close()
            exp.stop()
        attr.stop()
        for n in nodes:
            n.server.stop()
        shutil.rmtree(jobs, ignore_errors=True)
        for n in nodes:
            shutil.rmtree(Path(n.socket).parent.parent, ignore_errors=True)

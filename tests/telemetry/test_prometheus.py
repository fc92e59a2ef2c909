"""A real Prometheus scrapes the exporter: it accepts the content type and text, and the series arrive."""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest

from aiinfra.telemetry.exporter import ExporterConfig, build_sources, start
from tests.telemetry.conftest import free_port

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None, reason="the prometheus binary is installed by `make test` (APT_PACKAGES)")


def test_prometheus_scrapes_simulated_fleet(tmp_path):
    cfg = ExporterConfig(hostname_label="hostname")
    running = start(build_sources("hosts=2,gpus=4,seed=1,faults=xid31:g1@0", None, cfg), cfg, port=0, interval_s=0.2)
    prom_port = free_port()
    targets = ", ".join(f"'127.0.0.1:{server.server_address[1]}'" for _, server in running)
    (tmp_path / "prometheus.yml").write_text(f"global: {{scrape_interval: 1s, scrape_timeout: 1s}}\nscrape_configs:\n  - job_name: gpu\n    static_configs: [{{targets: [{targets}]}}]\n")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        api = f"http://127.0.0.1:{prom_port}/api/v1/query"

        def query(q: str) -> list:
            try:
                r = httpx.get(api, params={"query": q}, timeout=5)
            except httpx.HTTPError:
                return []
            return r.json()["data"]["result"] if r.status_code == 200 else []

        deadline = time.monotonic() + 60
        temps: list = []
        while time.monotonic() < deadline:
            temps = query("DCGM_FI_DEV_GPU_TEMP")
            if len(temps) == 8:
                break
            time.sleep(0.5)
        assert len(temps) == 8
        assert {t["metric"]["hostname"] for t in temps} == {"sim-node-00", "sim-node-01"}
        assert [r["value"][1] for r in query('sum(up{job="gpu"})')] == ["2"]
        xid = query('DCGM_FI_DEV_XID_ERRORS{gpu="1",err_code!="0"}')  # the other host's GPU 1 reads 0, "No Error"
        assert [(r["metric"]["hostname"], r["metric"]["err_msg"], r["value"][1]) for r in xid] == [("sim-node-00", "GPU memory page fault", "31")]  # faults name host 0 unless h<n>
        assert len(query("DCGM_FI_DEV_PCIE_REPLAY_COUNTER")) == 8  # counter family kept its dcgm name
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for exp, server in running:
            server.shutdown()
            server.server_close()
            exp.stop()

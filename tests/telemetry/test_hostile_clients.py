"""The exporter under hostile clients (issue 17): 2,000 idle connections and slowloris clients while a
real Prometheus keeps scraping with nothing missed; early disconnects leave no traceback; SIGTERM
stops cleanly with exit 0. Bounded: a few seconds of attack, caps set low so the test stays quick."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from aiinfra.telemetry.exporter import Exporter, ExporterConfig, Source, serve
from aiinfra.telemetry.nvml import Collector
from aiinfra.telemetry.simulate import Fleet, parse_spec
from tests.telemetry.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def _exporter(**limits):
    host = Fleet(parse_spec("gpus=2,seed=1")).hosts[0]
    exp = Exporter([Source(host.name, Collector(lib=host, host=host.name))], ExporterConfig(), 0.5)
    exp.start()
    return exp, serve(exp, "127.0.0.1", 0, **limits)


def _query(port: int, q: str) -> list:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": q}, timeout=5)
    except httpx.HTTPError:
        return []
    return r.json()["data"]["result"] if r.status_code == 200 else []


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="the prometheus binary is installed by `make test` (APT_PACKAGES)")
def test_idle_floods_and_slowloris_do_not_stop_prometheus(tmp_path, capfd):
    exp, server = _exporter(max_connections=256, header_timeout_s=2.0)
    port = server.server_address[1]
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        f"global: {{scrape_interval: 2s, scrape_timeout: 2s}}\nscrape_configs:\n  - job_name: gpu\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
    )
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = threading.Event()
    idle: list[socket.socket] = []
    slow_conns = [0]

    def flood() -> None:
        for _ in range(2000):
            try:
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                pass

    def slowloris() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    slow_conns[0] += 1
                    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                    while not stop.is_set():
                        s.sendall(b"X-a: b\r\n")  # one header line every half second, never the blank line
                        stop.wait(0.5)
            except OSError:
                continue

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and [r["value"][1] for r in _query(prom_port, "up")] != ["1"]:
            time.sleep(0.3)
        assert [r["value"][1] for r in _query(prom_port, "up")] == ["1"]
        t0 = time.time()
        attackers = [threading.Thread(target=flood)] + [threading.Thread(target=slowloris) for _ in range(20)]
        for t in attackers:
            t.start()
        time.sleep(8)
        stop.set()
        for t in attackers:
            t.join(timeout=30)
        time.sleep(2)
        window = f"{int(time.time() - t0) + 1}s"
        ups = _query(prom_port, f"min_over_time(up[{window}])")
        counts = _query(prom_port, f"count_over_time(up[{window}])")
        temps = _query(prom_port, f"count_over_time(DCGM_FI_DEV_GPU_TEMP[{window}])")
        assert [r["value"][1] for r in ups] == ["1"]  # not one failed scrape during the attack
        n = int(counts[0]["value"][1])
        assert n >= int(window[:-1]) // 2 - 2  # a scrape every two seconds throughout
        assert all(int(r["value"][1]) == n for r in temps)  # every scrape carried both GPUs' series
        assert server.stats["evicted"] + server.stats["timed_out"] >= 1000 and slow_conns[0] >= 20
    finally:
        stop.set()
        for s in idle:
            s.close()
        proc.terminate()
        proc.wait(timeout=30)
        server.shutdown()
        server.server_close()
        exp.stop()
    assert "Traceback" not in capfd.readouterr().err


def test_early_disconnects_are_quiet(capfd):
    """Clients that vanish mid-request, mid-response or mid-handshake: no traceback on stderr (1,957 of
    2,000 printed one before)."""
    exp, server = _exporter()
    port = server.server_address[1]
    try:
        for n in range(300):
            s = socket.create_connection(("127.0.0.1", port))
            if n % 3 == 0:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
            elif n % 3 == 1:
                s.sendall(b"GET /metr")
            s.close()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        time.sleep(0.5)
    finally:
        server.shutdown()
        server.server_close()
        exp.stop()
    assert "Traceback" not in capfd.readouterr().err


def test_tcp_nodelay_on_connections():
    exp, server = _exporter()
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1])) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(1024)
            conns = list(server.conns.values())
            assert conns and all(c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for c in conns)
    finally:
        server.shutdown()
        server.server_close()
        exp.stop()


def test_connection_cap_drops_idle_clients_first():
    exp, server = _exporter(max_connections=20, header_timeout_s=30.0)
    port = server.server_address[1]
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(60)]
    try:
        with httpx.Client() as c:
            for _ in range(5):
                assert c.get(f"http://127.0.0.1:{port}/metrics").status_code == 200
        time.sleep(0.2)
        assert len(server.conns) <= 20 and server.stats["evicted"] >= 40
    finally:
        for s in idle:
            s.close()
        server.shutdown()
        server.server_close()
        exp.stop()


def test_sigterm_exits_0_and_cleans_up():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "aiinfra", "exporter", "--simulate", "gpus=2,seed=1", "--port", "0", "--interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stderr.readline()
    assert "serving http://" in line, line
    port = int(line.split(":")[2].split("/")[0])
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "exporter stopped" in err and "Traceback" not in err
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)

"""Telemetry speed, measured in one run (no GPU needed: simulated fleet, loopback HTTP).

- scrape latency of `aiinfra exporter` (background collection + cached render) for 8 and 64
  simulated GPUs with every field we collect, against prometheus-client's usual custom-collector
  pattern (collect NVML and build families inside each scrape, served by start_http_server);
- parser lines/s of aiinfra.telemetry.parse against prometheus_client.parser on the same text.

Prints `name: ours X/s, baseline Y/s, ratio Z` lines.
"""

from __future__ import annotations

import http.client
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from aiinfra.telemetry.exporter import (
    Exporter,
    ExporterConfig,
    Source,
    families,
    render,
    serve,
)
from aiinfra.telemetry.fields import exported_fields
from aiinfra.telemetry.nvml import Collector
from aiinfra.telemetry.parse import parse
from aiinfra.telemetry.simulate import Fleet, parse_spec

CFG = ExporterConfig(counters="all")


def _collector(gpus: int) -> Collector:
    host = Fleet(parse_spec(f"gpus={gpus},model=h100-sxm,seed=1")).hosts[0]
    return Collector(lib=host, host=host.name)


def _scrapes(port: int, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", "/metrics")
        body = conn.getresponse().read()
        out.append(time.perf_counter() - t0)
        assert body
    conn.close()
    return out


class _LiveCollector:
    """The baseline: NVML collection and family building inside every scrape."""

    def __init__(self, col: Collector):
        self.col = col

    def collect(self):
        yield from families([self.col.collect()], CFG)


def scrape_latency(gpus: int, n: int) -> None:
    exp = Exporter([Source("bench", _collector(gpus))], CFG, interval_s=5.0)
    exp.start()
    server = serve(exp, "127.0.0.1", 0)
    ours = _scrapes(server.server_address[1], n)
    server.shutdown()
    server.server_close()
    exp.stop()

    reg = CollectorRegistry()
    reg.register(_LiveCollector(_collector(gpus)))
    base_server, _ = start_http_server(0, addr="127.0.0.1", registry=reg)
    base = _scrapes(base_server.server_address[1], n)
    base_server.shutdown()

    o, b = statistics.median(ours), statistics.median(base)
    fields = len(exported_fields("legacy", "all"))
    print(
        f"scrape {gpus} GPUs x {fields} fields: ours {1 / o:,.0f}/s (median {o * 1e3:.2f} ms, p95 {sorted(ours)[int(0.95 * n)] * 1e3:.2f} ms), "
        f"baseline collect-in-scrape {1 / b:,.0f}/s (median {b * 1e3:.2f} ms), ratio {b / o:.1f}"
    )
    print(f"  collection pass for {gpus} GPUs (background, not on the scrape path): {exp.snapshots[0].duration_s * 1e3:.2f} ms")


def parser_speed() -> None:
    col = _collector(64)
    time.sleep(0.05)
    text = render(families([col.collect()], CFG)).decode()
    lines = text.count("\n")

    def rate(fn, min_time: float = 1.0) -> float:
        best, spent = float("inf"), 0.0
        while spent < min_time:
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            best, spent = min(best, dt), spent + dt
        return lines / best

    ours = rate(lambda: parse(text))
    base = rate(lambda: list(text_string_to_metric_families(text)))
    print(f"parse text 0.0.4 ({lines} lines, 64 GPUs): ours {ours:,.0f} lines/s, baseline prometheus_client.parser {base:,.0f} lines/s, ratio {ours / base:.1f}")


def collection_cycle(gpus: int, runs: int = 7, per_run: int = 20) -> None:
    """One background collection pass through each backend (no scrape involved), interleaved runs."""
    from aiinfra.telemetry.dcgm import DcgmCollector
    from aiinfra.telemetry.simdcgm import sim_bindings

    spec = f"gpus={gpus},model=a100-sxm4-80gb,seed=1"
    nvml_col = Collector(lib=Fleet(parse_spec(spec)).hosts[0], host="bench")
    dcgm_col = DcgmCollector(sim_bindings(Fleet(parse_spec(spec)).hosts[0]), host="bench")
    times: dict[str, list[float]] = {"dcgm": [], "nvml": []}
    for _ in range(runs):
        for name, col in (("dcgm", dcgm_col), ("nvml", nvml_col)):
            t0 = time.perf_counter()
            for _ in range(per_run):
                col.collect()
            times[name].append((time.perf_counter() - t0) / per_run)
    d, n = statistics.median(times["dcgm"]), statistics.median(times["nvml"])
    print(f"collection cycle {gpus} GPUs (simulated bindings): dcgm backend {1 / d:,.0f}/s ({d * 1e3:.2f} ms), nvml backend {1 / n:,.0f}/s ({n * 1e3:.2f} ms), ratio {n / d:.2f}")


def gzip_keepalive(runs: int = 5, per_run: int = 40) -> None:
    """A gzip scrape on a kept-alive connection, with TCP_NODELAY (ours) and without (Nagle on), interleaved."""
    import socket

    from aiinfra.telemetry import httpd

    class NagleServer(httpd.Server):
        def get_request(self):
            sock, addr = super().get_request()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
            return sock, addr

    exp = Exporter([Source("bench", _collector(8))], CFG, interval_s=60.0)
    exp.collect_once()
    servers = {"nodelay": httpd.serve(exp, "127.0.0.1", 0)}
    nagle = NagleServer(("127.0.0.1", 0), exp)
    import threading

    threading.Thread(target=nagle.serve_forever, daemon=True).start()
    servers["nagle"] = nagle
    times: dict[str, list[float]] = {k: [] for k in servers}
    for _ in range(runs):
        for name, srv in servers.items():
            conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=30)
            conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            conn.getresponse().read()
            t0 = time.perf_counter()
            for _ in range(per_run):
                conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
                conn.getresponse().read()
            times[name].append((time.perf_counter() - t0) / per_run)
            conn.close()
    for srv in servers.values():
        srv.shutdown()
        srv.server_close()
    o, b = statistics.median(times["nodelay"]), statistics.median(times["nagle"])
    print(f"gzip keep-alive scrape 8 GPUs: ours (TCP_NODELAY) {1 / o:,.0f}/s ({o * 1e3:.2f} ms), baseline Nagle on {1 / b:,.0f}/s ({b * 1e3:.2f} ms), ratio {b / o:.1f}")


def auth_timing(runs: int = 7) -> None:
    """Basic auth with bcrypt cost 10: an unknown user against a known user with a wrong password
    (both uncached); equal cost means the answer time does not reveal which user names exist."""
    import base64

    import bcrypt

    from aiinfra.telemetry.webconfig import BasicAuth

    auth = BasicAuth({"prometheus": bcrypt.hashpw(b"right", bcrypt.gensalt(10))})
    times: dict[str, list[float]] = {"unknown": [], "known": []}
    for n in range(runs):
        for name, user in (("unknown", "mallory"), ("known", "prometheus")):
            header = "Basic " + base64.b64encode(f"{user}:wrong{n}".encode()).decode()
            t0 = time.perf_counter()
            auth.check(header)
            times[name].append(time.perf_counter() - t0)
    u, k = statistics.median(times["unknown"]), statistics.median(times["known"])
    print(f"basic auth (bcrypt cost 10): unknown user {1 / u:,.1f}/s ({u * 1e3:.1f} ms), known user {1 / k:,.1f}/s ({k * 1e3:.1f} ms), ratio {u / k:.2f}")


if __name__ == "__main__":
    collection_cycle(8)
    gzip_keepalive()
    auth_timing()
    scrape_latency(8, 300)
    scrape_latency(64, 100)
    parser_speed()

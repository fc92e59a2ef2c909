"""What pod/job attribution costs an exporter of 8 simulated GPUs, measured in one run.

Two exporters over the same simulated 8-GPU host (dcgm-exporter's default counters, and `--counters all`):
- ours:     `--kubernetes --hpc-job-dir` (labels from a real gRPC PodResources server on a unix
            socket, refreshed in the background; job files), so each series carries pod/namespace/
            container[/vgpu/dra_*][/hpc_job] and the aiinfra_kubelet_* health families are added;
- baseline: the same exporter without attribution (unlabelled).

Timed, interleaved, 7 rounds each (medians, min–max):
- `render`: families() + text rendering of one collection from fixed snapshots — the work that
  attribution adds to every collection (the scrape itself returns the cached bytes);
- `scrape`: an HTTP GET of /metrics on loopback (the larger labelled body included).

Prints `name: ours X/s, baseline Y/s, ratio Z` and the added milliseconds (target: < 1 ms).
"""

from __future__ import annotations

import http.client
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aiinfra.telemetry.attribution import Attribution, AttributionConfig  # noqa: E402
from aiinfra.telemetry.attribution.simkubelet import PodResourcesServer, assign_pods, write_jobs  # noqa: E402
from aiinfra.telemetry.exporter import Exporter, ExporterConfig, Source, render, serve  # noqa: E402
from aiinfra.telemetry.nvml import Collector  # noqa: E402
from aiinfra.telemetry.simulate import Fleet, ManualClock, parse_spec  # noqa: E402

ROUNDS = 7


def timed(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def get(port: int) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    c.getresponse().read()
    c.close()


def line(name: str, ours: list[float], base: list[float]) -> None:
    mo, mb = statistics.median(ours), statistics.median(base)
    print(f"{name}: ours {1 / mo:,.0f}/s, baseline {1 / mb:,.0f}/s, ratio {mo / mb:.2f} "
          f"(ours {1e3 * mo:.3f} ms [{1e3 * min(ours):.3f}–{1e3 * max(ours):.3f}], baseline {1e3 * mb:.3f} ms "
          f"[{1e3 * min(base):.3f}–{1e3 * max(base):.3f}], added {1e3 * (mo - mb):+.3f} ms)")


def main() -> int:
    for counters in ("default", "all"):
        bench(counters)
    return 0


def bench(counters: str) -> None:
    tmp = tempfile.mkdtemp(prefix="aiinfra-bench-k-")
    clock = ManualClock(1000.0)
    host = Fleet(parse_spec("gpus=8,seed=1"), clock=clock).hosts[0]
    col = Collector(lib=host, host=host.name, clock=clock)
    server = PodResourcesServer(f"{tmp}/kubelet.sock", assign_pods(host)).start()
    write_jobs(host, f"{tmp}/jobs")
    attr = Attribution(AttributionConfig(kubernetes=True, sockets={host.name: f"{tmp}/kubelet.sock"}, hpc_dirs={host.name: f"{tmp}/jobs"}))
    attr.refresh_once()
    base_cfg = ExporterConfig(counters=counters)
    ours_exp = Exporter([Source(host.name, col)], replace(base_cfg, attribution=attr), 3600)
    base_exp = Exporter([Source(host.name, col)], base_cfg, 3600)
    ours_exp.collect_once()
    base_exp.snapshots = ours_exp.snapshots  # the same collection for both: only attribution differs
    base_exp.body = render(base_exp.registry.collect())
    n_ours = sum(1 for x in ours_exp.body.decode().splitlines() if x and not x.startswith("#"))
    n_base = sum(1 for x in base_exp.body.decode().splitlines() if x and not x.startswith("#"))
    print(f"8 GPUs, counters {counters}: {n_base} series unlabelled, {n_ours} with attribution (shared replicas and health families add series)")
    srv_o, srv_b = serve(ours_exp, port=0), serve(base_exp, port=0)
    po, pb = srv_o.server_address[1], srv_b.server_address[1]
    r_o, r_b, s_o, s_b = [], [], [], []
    for _ in range(ROUNDS):
        r_b.append(timed(lambda: render(base_exp.registry.collect()), 200))
        r_o.append(timed(lambda: render(ours_exp.registry.collect()), 200))
        s_b.append(timed(lambda: get(pb), 100))
        s_o.append(timed(lambda: get(po), 100))
    line(f"attribution render (8 GPUs, {counters})", r_o, r_b)
    line(f"attribution scrape (8 GPUs, {counters}, HTTP)", s_o, s_b)
    for s in (srv_o, srv_b):
        s.shutdown()
        s.server_close()
    server.stop()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

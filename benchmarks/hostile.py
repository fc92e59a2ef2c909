"""Hostile input and load against a real `aiinfra serve` and the CLI, measured in one run.

Prints, per case, the wall time and the growth of the server's peak memory as a ratio to a normal
request (`name: ours X s, baseline Y s (normal request), ratio Z, peak RSS +N MiB`), then /healthz
latency (p50/p99) while 1,000 requests (pages, computations, oversized and unknown-key bodies) are
in flight at once. The goal: every case within 10x a normal request, /healthz p99 under 100 ms.
Run: PYTHONPATH=src python benchmarks/hostile.py [--concurrent 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


NORMAL = ("/api/tco", {"gpus": 256, "cloud": "aws-p5"})
CASES = {
    "tco at its bounds (1e6 GPUs, hybrid peak 1e6, 50 years, every term)":
        ("/api/tco", {"gpus": 1_000_000, "hybrid": True, "base": 0, "peak": 1_000_000, "years": 50, "term": "all"}),
    "tco hybrid peak 5e7 (over the bound)": ("/api/tco", {"hybrid": True, "peak": 5e7}),
    "tco gpus 2147483648 (over the bound)": ("/api/tco", {"gpus": 2147483648}),
    "infer at its bounds": ("/api/infer", {"model": "llama-3.1-8b", "prompt": 10_000_000, "output": 10_000_000,
                                           "batch": 1_000_000, "tp": 8}),
    "infer recommend, every GPU": ("/api/infer/recommend", {"model": "llama-3.1-405b", "batch": 1_000_000}),
    "1M unknown keys (~12 MB body)": ("/api/tco", "BIG"),
    "5,000 unknown keys (under the body cap)": ("/api/tco", {f"k{i}": 0 for i in range(5000)}),
}


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server() -> tuple[subprocess.Popen, str]:
    """`aiinfra serve` as users run it, on a free port (the launcher is benchmarks/web.py's)."""
    from web import launch  # benchmarks/ is on sys.path when this script runs

    return launch([sys.executable, "-m", "aiinfra", "serve", "--port", "{port}"], quiet=True)


def timed(h: httpx.Client, path: str, body) -> tuple[float, int]:
    content = json.dumps({f"k{i}": 0 for i in range(1_000_000)}) if body == "BIG" else json.dumps(body)
    t0 = time.perf_counter()
    r = h.post(path, content=content, headers={"content-type": "application/json"})
    return time.perf_counter() - t0, r.status_code


def cli_case(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "aiinfra", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=os.environ.copy(), check=False, timeout=600)
    return time.perf_counter() - t0


PROBE = """
import json, sys, time, httpx
url, stop_file = sys.argv[1], sys.argv[2]
lat = []
import os
with httpx.Client(base_url=url, timeout=120) as h:
    while not os.path.exists(stop_file):
        t0 = time.perf_counter()
        h.get("/healthz")
        lat.append(time.perf_counter() - t0)
        time.sleep(0.01)
print(json.dumps(lat))
"""


async def healthz_under_load(url: str, n: int) -> tuple[float, float, int]:
    """/healthz timed from a separate process (its own interpreter and GIL) while n requests run."""
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    stop = Path(tempfile.mkdtemp()) / "stop"
    probe = subprocess.Popen([sys.executable, "-c", PROBE, url, str(stop)], stdout=subprocess.PIPE, text=True)
    await asyncio.sleep(1.0)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as h:
        big = json.dumps({f"k{i}": 0 for i in range(100_000)})
        kinds = [lambda: h.post("/api/tco", json={"gpus": 256, "cloud": "aws-p5", "term": "all", "hybrid": True}),
                 lambda: h.get("/tco", params={"gpus": 64}),
                 lambda: h.post("/api/tco", content=big, headers={"content-type": "application/json"}),
                 lambda: h.post("/api/infer/recommend", json={"model": "llama-3.1-70b"})]

        async def fire(i: int) -> int:
            try:
                return (await kinds[i % len(kinds)]()).status_code
            except httpx.HTTPError:
                return 0

        codes = await asyncio.gather(*(fire(i) for i in range(n)))
    stop.touch()
    lat = sorted(json.loads(probe.communicate(timeout=120)[0]))
    return statistics.median(lat), lat[min(len(lat) - 1, int(0.99 * len(lat)))], sum(c == 0 for c in codes)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrent", type=int, default=1000)
    args = ap.parse_args()
    proc, url = start_server()
    try:
        with httpx.Client(base_url=url, timeout=600) as h:
            timed(h, *NORMAL)  # warm the catalog
            normal = statistics.median(timed(h, *NORMAL)[0] for _ in range(5))
            for name, (path, body) in CASES.items():
                before = peak_rss_mib(proc.pid)
                worst, code = max(timed(h, path, body) for _ in range(3))
                grow = peak_rss_mib(proc.pid) - before
                print(f"hostile web {name} -> {code}: ours {worst:.3f} s, baseline {normal:.3f} s (normal request), "
                      f"ratio {worst / normal:.1f}, peak RSS +{grow:.0f} MiB")
        p50, p99, failed = asyncio.run(healthz_under_load(url, args.concurrent))
        print(f"hostile web /healthz under {args.concurrent} concurrent requests: p50 {p50 * 1e3:.1f} ms, "
              f"p99 {p99 * 1e3:.1f} ms (goal < 100 ms), {failed} connection failures")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with tempfile.TemporaryDirectory() as d:
        demand = Path(d) / "demand.csv"
        demand.write_text("gpus\n" + "".join(f"{(h * 7919) % 1_000_000}\n" for h in range(87_840)))
        peak = Path(d) / "peak.csv"
        peak.write_text("gpus\n1\n5e7\n")
        normal = statistics.median(cli_case(["tco", "--gpus", "256", "--cloud", "aws-p5"]) for _ in range(3))
        for name, argv in {"tco --demand, ten years hourly, peak 1e6": ["tco", "--demand", str(demand), "--cloud", "aws-p5"],
                           "tco --demand, peak 5e7 (over the bound)": ["tco", "--demand", str(peak)],
                           "tco --gpus 2147483648 (over the bound)": ["tco", "--gpus", "2147483648"]}.items():
            worst = max(cli_case(argv) for _ in range(3))
            print(f"hostile cli {name}: ours {worst:.3f} s, baseline {normal:.3f} s (normal tco), "
                  f"ratio {worst / normal:.1f}")


if __name__ == "__main__":
    main()

"""Fleet analysis speed: 1,000 simulated GPUs × 24 h in a real Prometheus (loaded with promtool).

ours:     `aiinfra analyze` — about fifteen PromQL aggregates; Prometheus does the work.
baseline: the "pull raw series into Python" approach — query_range every raw family the report
          reads, for every GPU at scrape resolution, then reduce in numpy (mean, share below the idle
          threshold, last value, increase) — the same inputs, reduced outside Prometheus.
Both run against the same server, interleaved, `--runs` times each (medians with min and max); the
line printed is `fleet …: ours X GPU/s, baseline Y GPU/s, ratio Z` plus wall times and requests.

    python benchmarks/fleet.py [--gpus 1000] [--hours 24] [--step 60] [--runs 5] [--data DIR]

`--data DIR` keeps the loaded TSDB blocks there and reuses them on the next run (loading 19 M
samples takes minutes on two cores; the analysis is what is timed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aiinfra.fleet.analysis import AnalysisOptions, analyze  # noqa: E402
from aiinfra.fleet.backfill import Fault, FleetHistory, LocalPrometheus, build_blocks  # noqa: E402
from aiinfra.fleet.prom import Prometheus  # noqa: E402


RAW = ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE",
       "DCGM_FI_DEV_XID_ERRORS", "DCGM_EXP_XID_ERRORS_COUNT", "DCGM_FI_DEV_THERMAL_VIOLATION", "DCGM_FI_DEV_POWER_VIOLATION",
       "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_ROW_REMAP_FAILURE")


def baseline(p: Prometheus, fh: FleetHistory) -> tuple[int, int]:
    """Pull every raw family over the window and reduce per series in numpy; return (points, idle GPUs)."""
    points = idle = 0
    for name in RAW:
        for s in p.query_range(name, fh.start, fh.end, fh.step):
            v = np.asarray(s.values)
            points += v.size
            mean, _last, _inc = v.mean(), v[-1], max(0.0, v[-1] - v[0])
            if name == "DCGM_FI_PROF_GR_ENGINE_ACTIVE":
                idle += int(mean < 0.05)
                _low_share = float(np.mean(v < 0.05))
    return points, idle


def _median(xs: list[float]) -> float:
    return float(np.median(xs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--step", type=float, default=60.0, help="scrape interval of the synthetic history, s")
    ap.add_argument("--runs", type=int, default=5, help="interleaved runs of each side (medians printed)")
    ap.add_argument("--data", type=Path, default=None, help="keep/reuse the TSDB blocks in this folder")
    a = ap.parse_args()
    hosts = max(1, a.gpus // 8)
    faults = [Fault("xid", h, 1, a.hours / 2, code=79) for h in range(0, hosts, 25)]
    faults += [Fault("thermal", h, 2, a.hours / 3, hours=a.hours / 4) for h in range(3, hosts, 40)]
    faults += [Fault("lost", h, 3, a.hours * 0.9) for h in range(7, hosts, 60)]
    fh = FleetHistory(hosts=hosts, gpus_per_host=8, hours=a.hours, step=a.step, seed=1, faults=faults,
                      mig_hosts=tuple(range(5, hosts, 50)))
    with tempfile.TemporaryDirectory(prefix="aiinfra-bench-") as tmp:
        root = Path(tmp)
        data = a.data or root / "data"
        stamp = data / "aiinfra-history.txt"
        want = f"{hosts} {a.hours} {a.step}"
        if a.data is not None and stamp.exists() and stamp.read_text().startswith(want + " "):
            fh.end = float(stamp.read_text().split()[-1])
            print(f"history: reusing {data} (end {fh.end:.0f})")
        else:
            t0 = time.perf_counter()
            samples = build_blocks(fh, data, hosts_per_shard=4)
            load_s = time.perf_counter() - t0
            stamp.write_text(f"{want} {fh.end}")
            print(f"history: {hosts * 8} GPUs × {a.hours:g} h at {a.step:g} s = {samples / 1e6:.1f} M samples, "
                  f"written and loaded with promtool in {load_s:.1f} s")
        with LocalPrometheus(root / "run", data_dir=data, ready_timeout=300) as url, Prometheus(url, timeout=600) as p:
            p.query("count(DCGM_FI_DEV_GPU_TEMP)", fh.end)  # open the blocks once, outside both timings
            ours, base = [], []
            for _ in range(a.runs):  # interleaved, so both sides see the same cache and machine load
                t0 = time.perf_counter()
                before = p.log.count
                r = analyze(p, AnalysisOptions(range_s=a.hours * 3600, end=fh.end))
                ours.append(time.perf_counter() - t0)
                n_queries = p.log.count - before
                t0 = time.perf_counter()
                points, idle = baseline(p, fh)
                base.append(time.perf_counter() - t0)
    entities = r.facts["gpus"]
    o, b = _median(ours), _median(base)
    print(f"analysis: median {o:.2f} s (min {min(ours):.2f}, max {max(ours):.2f}) over {a.runs} runs, {n_queries} requests, "
          f"{entities} GPUs/MIG instances, {len(r.facts['idle'])} idle, {len(r.facts['stranded'])} stranded, "
          f"{len(r.facts['lost'])} lost (target < 10 s)")
    print(f"baseline: median {b:.2f} s (min {min(base):.2f}, max {max(base):.2f}) to pull {points / 1e6:.1f} M raw points "
          f"({len(RAW)} families) and reduce them in numpy; {idle} idle")
    print(f"fleet {a.gpus} GPUs x {a.hours:g} h: ours {entities / o:,.0f} GPU/s, baseline {entities / b:,.0f} GPU/s, ratio {b / o:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fleet analysis speed: 1,000 simulated GPUs × 24 h in a real Prometheus (loaded with promtool).

ours:     `aiinfra analyze` — about fifteen PromQL aggregates; Prometheus does the work.
baseline: the "pull raw series into Python" approach — query_range every GPU's raw activity
          at scrape resolution, then average and threshold in numpy (only the idle part of the report).
Both run against the same server in the same run; the line printed is
`fleet: ours X GPU/s, baseline Y GPU/s, ratio Z` plus wall time and number of queries.

    python benchmarks/fleet.py [--gpus 1000] [--hours 24] [--step 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aiinfra.telemetry.analysis import AnalysisOptions, analyze  # noqa: E402
from aiinfra.telemetry.backfill import Fault, FleetHistory, LocalPrometheus, build_blocks  # noqa: E402
from aiinfra.telemetry.prom import Prometheus  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--step", type=float, default=60.0, help="scrape interval of the synthetic history, s")
    a = ap.parse_args()
    hosts = max(1, a.gpus // 8)
    faults = [Fault("xid", h, 1, a.hours / 2, code=79) for h in range(0, hosts, 25)]
    faults += [Fault("thermal", h, 2, a.hours / 3, hours=a.hours / 4) for h in range(3, hosts, 40)]
    fh = FleetHistory(hosts=hosts, gpus_per_host=8, hours=a.hours, step=a.step, seed=1, faults=faults,
                      mig_hosts=tuple(range(5, hosts, 50)))
    with tempfile.TemporaryDirectory(prefix="aiinfra-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        samples = build_blocks(fh, root / "data", hosts_per_shard=4)
        load_s = time.perf_counter() - t0
        print(f"history: {hosts * 8} GPUs × {a.hours:g} h at {a.step:g} s = {samples / 1e6:.1f} M samples, "
              f"written and loaded with promtool in {load_s:.1f} s")
        with LocalPrometheus(root / "run", data_dir=root / "data", ready_timeout=300) as url, Prometheus(url, timeout=300) as p:
            p.query("count(DCGM_FI_DEV_GPU_TEMP)", fh.end)  # open the blocks once, outside both timings
            t0 = time.perf_counter()
            r = analyze(p, AnalysisOptions(range_s=a.hours * 3600, end=fh.end))
            ours = time.perf_counter() - t0
            n_queries = p.log.count
            entities = r.facts["gpus"]

            t0 = time.perf_counter()
            series = p.query_range("DCGM_FI_PROF_GR_ENGINE_ACTIVE", fh.start, fh.end, a.step)
            idle = sum(1 for s in series if np.mean(s.values) < 0.05)
            base = time.perf_counter() - t0
    print(f"analysis: {ours:.2f} s wall, {n_queries} queries, {entities} GPUs/MIG instances, "
          f"{len(r.facts['idle'])} idle, {len(r.facts['stranded'])} stranded (target < 10 s)")
    print(f"baseline: {base:.2f} s to pull {sum(len(s.values) for s in series) / 1e6:.1f} M raw points and find {idle} idle")
    print(f"fleet: ours {entities / ours:,.0f} GPU/s, baseline {len(series) / base:,.0f} GPU/s, ratio {base / ours * entities / len(series):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

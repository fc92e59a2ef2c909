"""Chargeback speed: 1,000 GPUs × 24 h of attributed history in a real Prometheus (loaded with promtool).

ours:     `aiinfra chargeback` — seven grouped PromQL aggregates (subqueries), one row per owner comes back;
baseline: `aiinfra analyze`, the current fleet report, on the same server and window.
Interleaved, 5 runs each; prints medians (min–max) and
`chargeback: ours X GPU/s, baseline Y GPU/s, ratio Z` (ratio = ours time / report time).

    python benchmarks/chargeback.py [--gpus 1000] [--hours 24] [--step 60] [--data DIR]

`--data DIR` keeps the loaded TSDB blocks and reuses them on the next run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aiinfra.fleet.analysis import AnalysisOptions, analyze  # noqa: E402
from aiinfra.fleet.attributed_history import load, random_fleet  # noqa: E402
from aiinfra.fleet.backfill import LocalPrometheus  # noqa: E402
from aiinfra.fleet.chargeback import ChargebackOptions, chargeback  # noqa: E402
from aiinfra.fleet.prom import Prometheus  # noqa: E402

RUNS = 5


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--step", type=float, default=60.0, help="scrape interval of the synthetic history, s")
    ap.add_argument("--data", type=Path, default=None, help="keep/reuse the TSDB blocks in this folder")
    a = ap.parse_args()
    devices = random_fleet(a.gpus, a.hours)
    with tempfile.TemporaryDirectory(prefix="aiinfra-bench-cb-") as tmp:
        root = Path(tmp)
        data = a.data or root / "data"
        stamp = data / "aiinfra-attributed.txt"
        if a.data is not None and stamp.exists():
            end = float(stamp.read_text().split()[-1])
            print(f"history: reusing {data} (end {end:.0f})")
        else:
            end = float(int(time.time() // a.step) * a.step)
            t0 = time.perf_counter()
            n = load(devices, end, a.hours, a.step, data)
            stamp.write_text(f"{a.gpus} {a.hours} {a.step} {end}")
            print(f"history: {a.gpus} GPUs ({len(devices)} GPUs/MIG instances) × {a.hours:g} h at {a.step:g} s = {n / 1e6:.1f} M samples, "
                  f"written and loaded with promtool in {time.perf_counter() - t0:.1f} s")
        with LocalPrometheus(root / "run", data_dir=data, ready_timeout=300) as url, Prometheus(url, timeout=600) as p:
            p.query("count(DCGM_FI_DEV_FB_USED)", end)  # open the blocks once, outside both timings
            ours, base = [], []
            r = rep = None
            for _ in range(RUNS):
                t0 = time.perf_counter()
                rep = analyze(p, AnalysisOptions(range_s=a.hours * 3600, end=end))
                base.append(time.perf_counter() - t0)
                before = p.log.count
                t0 = time.perf_counter()
                r = chargeback(p, ChargebackOptions(range_s=a.hours * 3600, end=end, price_per_gpu_hour=2.5))
                ours.append(time.perf_counter() - t0)
                queries = p.log.count - before
    mo, mb = statistics.median(ours), statistics.median(base)
    f = r.facts
    print(f"chargeback: {mo:.2f} s median [{min(ours):.2f}–{max(ours):.2f}], {queries} queries, {len(f['by_pod'])} owners, "
          f"{len(f['by_namespace'])} namespaces, {f['allocated_gpu_hours']['value']:,.0f} GPU-h allocated, {f['energy_kwh']['value']:,.0f} kWh")
    print(f"fleet report (aiinfra analyze): {mb:.2f} s median [{min(base):.2f}–{max(base):.2f}], {rep.facts.get('gpus')} GPUs/MIG instances")
    print(f"chargeback: ours {a.gpus / mo:,.0f} GPU/s, baseline {a.gpus / mb:,.0f} GPU/s, ratio {mo / mb:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""MIG packing benchmarks.

mig-plan-10k: `packing.plan` on 10,000 distinct workload entries (half name a profile, half give a
  memory need) on H100 80GB: ours (one variable per candidate set and profile, solution read once,
  queue-based assignment) against the previous per-workload formulation (benchmarks/_packing_per_workload.py),
  which is quadratic in the entries. The baseline runs at 1,000 entries (at 10,000 it needs about two
  minutes); both sides plan the same 1,000-entry file interleaved, and ours is also timed at 10,000
  (goal: < 3 s on a 2-core machine).
mig-packing-gpus: GPUs needed, exact plan vs nos's first-fit over its known geometries (A100-80GB).

Each line: `name: ours X/s, baseline Y/s, ratio Z` from ≥ 5 interleaved runs, medians (min–max).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _packing_per_workload import plan_per_workload  # noqa: E402

from aiinfra.sharing import mig, packing  # noqa: E402
from aiinfra.sharing.workloads import Workload  # noqa: E402

RUNS = 5


def workloads(n: int, seed: int = 2026) -> list[Workload]:
    rng = random.Random(seed)
    profiles = ["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb"]
    out = []
    for i in range(n):
        if i % 2:
            out.append(Workload(name=f"w{i}", count=rng.randint(1, 3), profile=rng.choice(profiles)))
        else:
            out.append(Workload(name=f"w{i}", count=rng.randint(1, 3), memory_gb=rng.choice([4, 8, 15, 30, 60])))
    return out


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def line(name: str, ours: list[float], base: list[float], unit: str = "/s") -> str:
    mo, mb = statistics.median(ours), statistics.median(base)
    return (f"{name}: ours {1 / mo:.2f}{unit} ({min(ours):.3f}–{max(ours):.3f} s), "
            f"baseline {1 / mb:.3f}{unit} ({min(base):.3f}–{max(base):.3f} s), ratio {mb / mo:.1f}")


def main() -> None:
    gpu = mig.mig_gpu("h100-sxm")
    small = workloads(1_000)
    pool = sum(w.count for w in small)
    assert packing.plan(gpu, small, pool).mig.gpus_used == plan_per_workload(gpu, small, pool), "ours and the baseline disagree"
    ours, base = [], []
    for _ in range(RUNS):
        ours.append(timed(lambda: packing.plan(gpu, small, pool)))
        base.append(timed(lambda: plan_per_workload(gpu, small, pool)))
    print(line("mig-plan-1k-entries (plans)", ours, base))
    big = workloads(10_000)
    pool_big = sum(w.count for w in big)
    t_big = sorted(timed(lambda: packing.plan(gpu, big, pool_big)) for _ in range(RUNS))
    # The baseline's time at 10,000 entries is extrapolated from its 1,000-entry median (quadratic term).
    extrapolated = statistics.median(base) * 100
    print(f"mig-plan-10k-entries (plans): ours {1 / statistics.median(t_big):.2f}/s ({t_big[0]:.2f}–{t_big[-1]:.2f} s, goal < 3 s), "
          f"baseline ≈{1 / extrapolated:.4f}/s (1k median × 100, quadratic), ratio ≈{extrapolated / statistics.median(t_big):.0f}")

    a100 = mig.mig_gpu("a100-80gb")
    known = sorted({p for g in packing.nos_geometries(a100)[0] for p in g})
    rng = random.Random(2026)
    mixes = [dict(Counter(rng.choice(known) for _ in range(rng.randint(5, 60)))) for _ in range(40)]
    ours_gpus = sum(packing.pack_mig(a100, [Workload(name=p, count=n, profile=p) for p, n in d.items()], sum(d.values())).gpus_used for d in mixes)
    base_gpus = sum(packing.first_fit_nos(a100, d).gpus_used for d in mixes)
    print(f"mig-packing-gpus: ours {ours_gpus} GPUs, baseline {base_gpus} GPUs, ratio {base_gpus / ours_gpus:.3f}")


if __name__ == "__main__":
    main()

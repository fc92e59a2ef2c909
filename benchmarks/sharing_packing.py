"""MIG packing: exact plan (HiGHS over all valid geometries) vs nos's first-fit over its known geometries.

Prints, for one seeded set of random workload mixes on A100-80GB (the GPU nos ships a list for):
  mig-packing-gpus: GPUs needed in total (lower is better; ratio = baseline / ours)
  mig-packing-speed: plans per second (ratio = ours / baseline)
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aiinfra.sharing import mig, packing  # noqa: E402
from aiinfra.sharing.workloads import Workload  # noqa: E402


def main() -> None:
    gpu = mig.mig_gpu("a100-80gb")
    known = {p for g in packing.nos_geometries(gpu)[0] for p in g}
    names = sorted(known)
    rng = random.Random(2026)
    mixes = []
    for _ in range(40):
        demand = Counter(rng.choice(names) for _ in range(rng.randint(5, 60)))
        mixes.append(dict(demand))
    ours_gpus = base_gpus = 0
    t0 = time.perf_counter()
    for d in mixes:
        ws = [Workload(name=p, count=n, profile=p) for p, n in d.items()]
        ours_gpus += packing.pack_mig(gpu, ws, sum(d.values())).gpus_used
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    for d in mixes:
        base_gpus += packing.first_fit_nos(gpu, d).gpus_used
    t_base = time.perf_counter() - t0
    print(f"mig-packing-gpus: ours {ours_gpus} GPUs, baseline {base_gpus} GPUs, ratio {base_gpus / ours_gpus:.3f}")
    print(f"mig-packing-speed: ours {len(mixes) / t_ours:.1f}/s, baseline {len(mixes) / t_base:.1f}/s, ratio {t_base / t_ours:.3f}")


if __name__ == "__main__":
    main()

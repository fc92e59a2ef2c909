"""Hybrid baseline search: vectorised (sort + prefix sum + searchsorted) vs a per-candidate loop.

Prints "name: ours X/s, baseline Y/s, ratio Z" measured in one run.
"""

from __future__ import annotations

import time

import numpy as np

from aiinfra.cost import hybrid
from aiinfra.explain import Term

F, E, P = Term("F", 1.5, "$/GPU-h"), Term("e", 0.1, "$/GPU-h"), Term("p", 6.88, "$/GPU-h")


def naive(d: np.ndarray) -> float:
    best = np.inf
    for b in range(int(np.ceil(d.max())) + 1):
        best = min(best, F.value * b * d.size + E.value * np.minimum(d, b).sum() + P.value * np.maximum(d - b, 0).sum())
    return best


def rate(fn, d: np.ndarray, min_s: float = 1.0) -> tuple[float, float]:
    n, t0 = 0, time.perf_counter()
    while True:
        out = fn(d)
        n += 1
        if time.perf_counter() - t0 >= min_s:
            return n / (time.perf_counter() - t0), out


if __name__ == "__main__":
    demand = hybrid.generate_profile(8760, base=256, peak=2048, burst_hours=72, bursts_per_year=12, seed=0)
    ours, a = rate(lambda d: hybrid.plan(d, F, E, P).hybrid.value, demand)
    base, b = rate(naive, demand)
    assert abs(a - b) <= 1e-6 * abs(b), (a, b)
    print(f"hybrid plan (8760 h, 2049 baselines): ours {ours:.1f}/s, baseline {base:.2f}/s, ratio {ours / base:.0f}")

"""How fast the serving search evaluates candidate deployments.

Prints, as `name: ours X/s, baseline Y/s, ratio Z` (interleaved runs, 5 each, medians):
1. the vectorized grid (serving/search.py evaluate: every replicas × TP × batch × quantization × GPU ×
   aggregated/disaggregated candidate on numpy arrays) vs the same code evaluating one candidate per call
   (a one-configuration, one-batch, one-replica-count grid) from a Python loop;
2. the wall time of a whole `serve-plan` (configs, grid, ranking) over 3 GPUs × 3 quantizations, with the
   number of candidates (target: ≥ 10,000 in a few seconds on 2 cores).
Run: PYTHONPATH=src python benchmarks/serving_search.py
"""

from __future__ import annotations

import statistics
import time

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.serving.commands import serve_plan
from aiinfra.serving.search import build_configs, evaluate
from aiinfra.serving.workload import Lengths, Targets, Workload

M = model("llama-3.1-70b")
W = Workload(20, Lengths(2000, 0.5), Lengths(300, 0.5))
T = Targets(0.5, 0.04, "p99")
GPUS = {"h100-sxm": (gpu("h100-sxm"), 2.5), "h200-sxm": (gpu("h200-sxm"), 3.5), "l40s": (gpu("l40s"), 1.0)}
QUANTS = ["bf16", "fp8", "int4"]


def vectorized(configs) -> float:
    start = time.perf_counter()
    g = evaluate(M, W, T, configs)
    return int(g.cols["valid"].sum()) / (time.perf_counter() - start)


def one_at_a_time(configs, n: int = 60) -> float:
    start = time.perf_counter()
    done = 0
    for i in range(n):
        cfg = configs[i % len(configs)]
        evaluate(M, W, T, [cfg], batches=((8, 32, 128)[i % 3],), max_replicas=1, ratios=(), disaggregated=False)
        done += 1
    return done / (time.perf_counter() - start)


def main() -> None:
    configs = build_configs(M, GPUS, W, quants=QUANTS)
    ours, base = [], []
    for _ in range(5):
        ours.append(vectorized(configs))
        base.append(one_at_a_time(configs))
    o, b = statistics.median(ours), statistics.median(base)
    print(f"serving grid evaluation: ours {o:,.0f}/s, baseline {b:,.0f}/s, ratio {o / b:,.1f}")
    walls, n = [], 0
    for _ in range(5):
        start = time.perf_counter()
        r = serve_plan(M, W, T, GPUS, quants=QUANTS)
        walls.append(time.perf_counter() - start)
        n = r.facts["candidates"]
    wall = statistics.median(walls)
    print(f"serve-plan llama-3.1-70b, 3 GPUs x 3 quantizations: ours {n / wall:,.0f}/s, baseline {b:,.0f}/s, "
          f"ratio {n / wall / b:,.1f} ({n:,} candidates in {wall:.2f} s)")


if __name__ == "__main__":
    main()

"""How fast `plan()` searches, end to end (space, memory, step time, ranking, explanations).

Prints, as `name: ours X/s, baseline Y/s, ratio Z`, medians of interleaved runs (≥ 5 each):
1. plan() as a whole on the 1T / 4,096 A100 space (Calculon's scale) and on Llama-3.1-405B / 16,384 H100s,
   in candidates per second, with the wall time of one search (targets: ≥ 1,000,000 candidates/s,
   the 1T space in ≤ 10 s on 2 cores);
2. the same formulas called one candidate at a time from a Python loop (the baseline a scalar model has);
3. Calculon's published rate (memory_perf_anchors §1.2: 8,112 candidates in 28.2 s on 2 cores);
4. plan() with freed memory kept in the heap during the search (plan.heap, glibc) against glibc's default
   thresholds, each search in a fresh process (the thresholds are process-wide), interleaved, medians.
Run: PYTHONPATH=src python benchmarks/plan_search.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import numpy as np

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.perf import comm
from aiinfra.perf.training import step_time
from aiinfra.plan.search import Options, plan
from aiinfra.plan.space import build_space
from aiinfra.sizing.training import training_memory

CALCULON_RATE = 8112 / 28.2
RUNS = 5
CASES = [("gpt-1t", "a100-80gb-sxm", 4096, 4096, 2048), ("llama-3.1-405b", "h100-sxm", 16384, 2048, 8192)]


def one_at_a_time(m, g, seq: int, batch: int, n_gpus: int, n: int) -> float:
    """The same formulas, one candidate per call (one-element arrays)."""
    space = build_space(m, [n_gpus], global_batch=batch, seq=seq, offloads=tuple(range(8)))
    node = comm.node_for(g)
    idx = np.linspace(0, len(space) - 1, n).astype(int)
    start = time.perf_counter()
    for i in idx:
        r = {k: np.asarray([v]) for k, v in space.row(int(i)).items()}
        training_memory(m, seq=seq, micro_batch=r["mb"], tp=r["tp"], pp=r["pp"], dp=r["dp"], cp=r["cp"], ep=r["ep"],
                        sp=r["sp"], vp=r["vp"], num_microbatches=batch // (r["dp"] * r["mb"]), zero=r["zero"],
                        recompute=r["recompute"], offload=r["offload"])
        step_time(m, g, tp=r["tp"], pp=r["pp"], dp=r["dp"], cp=r["cp"], ep=r["ep"], micro_batch=r["mb"], vp=r["vp"],
                  recompute=r["recompute"], zero=r["zero"], global_batch=batch, seq=seq, node=node, offload=r["offload"])
    return n / (time.perf_counter() - start)


# one search in a fresh process, timed inside it after a small warm-up search (imports, catalog); argv[1] "default"
# leaves glibc's heap thresholds alone (plan.heap disabled)
FRESH = """
import sys, time
from aiinfra.plan import heap
if sys.argv[1] == "default":
    heap._LIBC = None
from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.plan.search import plan
m, g = model(sys.argv[2]), gpu(sys.argv[3])
n, batch, seq = (int(x) for x in sys.argv[4:7])
plan(m, g, 8, global_batch=64, seq=seq)
start = time.perf_counter()
plan(m, g, n, global_batch=batch, seq=seq)
print(time.perf_counter() - start)
"""


def heap_ratio(name: str, g_key: str, n_gpus: int, batch: int, seq: int) -> tuple[float, float]:
    """Median wall seconds of one plan() with the heap kept and with glibc's defaults, fresh processes, interleaved."""
    walls = {"kept": [], "default": []}
    for _ in range(RUNS):
        for mode in walls:
            out = subprocess.run([sys.executable, "-c", FRESH, mode, name, g_key, str(n_gpus), str(batch), str(seq)],
                                 capture_output=True, text=True, check=True).stdout
            walls[mode].append(float(out))
    return statistics.median(walls["kept"]), statistics.median(walls["default"])


def main() -> None:
    for name, g_key, n_gpus, batch, seq in CASES:
        m, g = model(name), gpu(g_key)
        plan(m, g, n_gpus, global_batch=batch, seq=seq, options=Options())  # warm-up (catalog, imports)
        walls, loops = [], []
        for _ in range(RUNS):  # interleaved: one search, then a short one-at-a-time sample
            start = time.perf_counter()
            r = plan(m, g, n_gpus, global_batch=batch, seq=seq)
            walls.append(time.perf_counter() - start)
            loops.append(one_at_a_time(m, g, seq, batch, n_gpus, 40))
        wall = statistics.median(walls)
        ours = r.candidates / wall
        loop = statistics.median(loops)
        w = r.top[0]
        print(f"{name} on {n_gpus:,} x {g_key}: {r.candidates:,} candidates, {r.feasible:,} fit, plan() median "
              f"{wall:.2f} s over {RUNS} runs; best {w['layout']} mb{w['mb']} v{w['vp']} {w['recompute']} "
              f"offload {w['offload']}, MFU {w['mfu']:.1%}")
        print(f"plan() end to end vs same formulas one at a time ({name}): ours {ours:,.0f}/s, baseline {loop:,.0f}/s, "
              f"ratio {ours / loop:,.0f}")
        print(f"plan() end to end vs Calculon published ({name}): ours {ours:,.0f}/s, baseline {CALCULON_RATE:,.0f}/s, "
              f"ratio {ours / CALCULON_RATE:,.0f}")
        kept, default = heap_ratio(name, g_key, n_gpus, batch, seq)
        print(f"plan() heap kept vs glibc defaults, fresh processes ({name}): ours {r.candidates / kept:,.0f}/s, "
              f"baseline {r.candidates / default:,.0f}/s, ratio {default / kept:.2f}")


if __name__ == "__main__":
    main()

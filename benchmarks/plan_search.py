"""How fast the parallelism search evaluates candidates, measured in one run.

Prints, as `name: ours X/s, baseline Y/s, ratio Z`:
1. the vectorized search (sizing memory + perf step time on numpy arrays) vs the same formula code
   called one candidate at a time from a Python loop;
2. the vectorized search vs llm-analysis 0.2.2 (PyPI) evaluating one configuration at a time
   (its `training()`, through benchmarks/llm_analysis_adapter.py);
3. the wall time of a full Llama-3.1-405B search on 16,384 H100s (target: a few seconds), and
   Calculon's published rate for comparison (memory_perf_anchors §1.2: 8,112 candidates in 28 s on
   2 cores, about 294/s).
Run: PYTHONPATH=src python benchmarks/plan_search.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.perf import comm
from aiinfra.perf.training import step_time
from aiinfra.plan.search import Options, evaluate, plan
from aiinfra.plan.space import build_space
from aiinfra.sizing.training import training_memory

CALCULON_RATE = 8112 / 28.2  # memory_perf_anchors §1.2, measured on 2 cores


def one_at_a_time(m, g, space, seq, opt, node, n: int) -> float:
    """The same formulas, one candidate per call (one-element arrays, so uneven PP layouts are allowed)."""
    idx = np.linspace(0, len(space) - 1, n).astype(int)
    start = time.perf_counter()
    for i in idx:
        r = {k: np.asarray([v]) for k, v in space.row(int(i)).items()}
        training_memory(m, seq=seq, micro_batch=r["mb"], tp=r["tp"], pp=r["pp"], dp=r["dp"], cp=r["cp"], ep=r["ep"],
                        sp=r["sp"], vp=r["vp"], num_microbatches=space.batch // (r["dp"] * r["mb"]), zero=r["zero"],
                        recompute=r["recompute"], flash_attention=opt.flash_attention)
        step_time(m, g, tp=r["tp"], pp=r["pp"], dp=r["dp"], cp=r["cp"], ep=r["ep"], micro_batch=r["mb"], vp=r["vp"],
                  recompute=r["recompute"], zero=r["zero"], global_batch=space.batch, seq=seq, node=node)
    return n / (time.perf_counter() - start)


def llm_analysis_rate(m, g, n: int) -> float | None:
    try:
        import llm_analysis_adapter as la
    except ImportError as e:
        print(f"llm-analysis: not installed ({e}); run `make baseline-deps`")
        return None
    config = dict(la.spec_kwargs(m, g), seq_len=8192, micro_batch=1, tp=8, pp=16, dp=128, zero=1,
                  recompute="selective", flash_attention=True)
    return la.evaluations_per_second(n, fn=la.training_memory, **config)


def main() -> None:
    m, g = model("llama-3.1-405b"), gpu("h100-sxm")
    seq, opt, node = 8192, Options(), comm.node_for(g)

    # A large space: every GPU count from 512 to 16,384 in steps of 8, global batch 8,192 sequences.
    space = build_space(m, list(range(512, 16385, 8)), global_batch=8192, seq=seq, gpus_per_node=8)
    evaluate(m, g, space.take(slice(0, 1000)), seq, opt, node)  # warm-up
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        evaluate(m, g, space, seq, opt, node)
        best = max(best, len(space) / (time.perf_counter() - start))
    print(f"search space: {len(space):,} valid candidates (Llama-3.1-405B, 512-16,384 H100s, 8,192 × 8K batch)")

    loop = one_at_a_time(m, g, space, seq, opt, node, 300)
    print(f"plan search vs same formulas one at a time: ours {best:,.0f}/s, baseline {loop:,.0f}/s, "
          f"ratio {best / loop:,.0f}")

    la_rate = llm_analysis_rate(m, g, 50)
    if la_rate:
        print(f"plan search vs llm-analysis one configuration at a time: ours {best:,.0f}/s, baseline {la_rate:,.0f}/s, "
              f"ratio {best / la_rate:,.0f}")
    print(f"plan search vs Calculon (published, 2 cores): ours {best:,.0f}/s, baseline {CALCULON_RATE:,.0f}/s, "
          f"ratio {best / CALCULON_RATE:,.0f}")

    start = time.perf_counter()
    r = plan(m, g, 16384, global_batch=2048, seq=seq, tokens=15e12)
    wall = time.perf_counter() - start
    w = r.top[0]
    print(f"full search llama-3.1-405b on 16,384 × h100-sxm: {r.candidates:,} candidates, {r.feasible:,} fit, "
          f"{wall:.3f} s wall; best {w['layout']} mb{w['mb']} v{w['vp']} {w['recompute']} recompute, "
          f"{w['tokens_per_s']:,.0f} tokens/s, MFU {w['mfu']:.1%}")


if __name__ == "__main__":
    main()

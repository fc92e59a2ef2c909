"""Side-by-side memory estimates: aiinfra vs llm-analysis 0.2.2 on shared configurations.

Prints one table per configuration (GiB, both tools), the ratio ours/theirs, and the one-candidate
evaluation rates of both tools measured in this run. docs/llm-analysis-comparison.md says why the
numbers differ; tests/baselines/test_compare_llm_analysis.py checks each explanation numerically.
Run: python benchmarks/compare_llm_analysis.py
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import llm_analysis_adapter as la  # noqa: E402

from aiinfra.catalog.gpus import gpu  # noqa: E402
from aiinfra.catalog.models import model  # noqa: E402
from aiinfra.sizing.inference import inference_memory  # noqa: E402
from aiinfra.sizing.training import training_memory  # noqa: E402
from aiinfra.units import GiB  # noqa: E402


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    gpu: str
    mode: str  # "train" | "infer"
    ours: dict = field(default_factory=dict)
    theirs: dict = field(default_factory=dict)


CASES = [
    Case("GPT-3 175B, TP8·PP8, b=1, no recompute", "gpt3-175b", "a100-80gb-sxm", "train",
         dict(seq=2048, micro_batch=1, tp=8, pp=8, recompute="none", flash_attention=False),
         dict(seq_len=2048, micro_batch=1, tp=8, pp=8, recompute="none", flash_attention=False)),
    Case("GPT-3 175B, TP8·PP8, SP + selective", "gpt3-175b", "a100-80gb-sxm", "train",
         dict(seq=2048, micro_batch=1, tp=8, pp=8, sp=True, recompute="selective", flash_attention=False),
         dict(seq_len=2048, micro_batch=1, tp=8, pp=8, sequence_parallel=True, recompute="selective",
              flash_attention=False)),
    Case("GPT 22B, TP8, b=4, no recompute", "gpt-22b", "a100-80gb-sxm", "train",
         dict(seq=2048, micro_batch=4, tp=8, recompute="none", flash_attention=False),
         dict(seq_len=2048, micro_batch=4, tp=8, recompute="none", flash_attention=False)),
    Case("Llama-3.1-70B, TP8·PP2·DP4, ZeRO-1, SP + selective", "llama-3.1-70b", "h100-sxm", "train",
         dict(seq=4096, micro_batch=2, tp=8, pp=2, dp=4, zero=1, sp=True, recompute="selective", flash_attention=False),
         dict(seq_len=4096, micro_batch=2, tp=8, pp=2, dp=4, zero=1, sequence_parallel=True, recompute="selective",
              flash_attention=False)),
    Case("Llama-3.1-8B, DP8, ZeRO-3, full recompute", "llama-3.1-8b", "h100-sxm", "train",
         dict(seq=4096, micro_batch=2, dp=8, zero=3, recompute="full", flash_attention=False),
         dict(seq_len=4096, micro_batch=2, dp=8, zero=3, recompute="full", flash_attention=False)),
    Case("Llama-3.1-70B inference, TP8, 16 × 8192 bf16", "llama-3.1-70b", "h100-sxm", "infer",
         dict(context=8192, batch=16, tp=8), dict(context=8192, batch=16, tp=8)),
    Case("Llama-2-7B inference, 1 GPU, 8 × 4096 bf16", "llama-2-7b", "a100-80gb-sxm", "infer",
         dict(context=4096, batch=8), dict(context=4096, batch=8)),
]


def ours(case: Case) -> dict:
    m = model(case.model)
    if case.mode == "train":
        r = training_memory(m, overhead_bytes=0, fragmentation=0.0, **case.ours)
        return {"weights": r.weights.value, "gradients": r.gradients.value, "optimizer": r.optimizer.value,
                "activations": r.activations.value, "total (no overhead)": r.total.value}
    r = inference_memory(m, overhead_bytes=0, **case.ours)
    return {"weights": r.weights.value, "kv_cache": r.kv_cache.value, "weights + kv": r.weights.value + r.kv_cache.value}


def theirs(case: Case) -> dict:
    kw = la.spec_kwargs(model(case.model), gpu(case.gpu))
    if case.mode == "train":
        r = la.training_memory(**kw, layernorm_bytes=2, **case.theirs)
        return {"weights": r.weights, "gradients": r.gradients, "optimizer": r.optimizer_state,
                "activations": r.activations, "total (no overhead)": r.total}
    r = la.inference_memory(**kw, **case.theirs)
    return {"weights": r.weights, "kv_cache": r.kv_cache, "weights + kv": r.weights + r.kv_cache}


def rate(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def main() -> None:
    for case in CASES:
        a, b = ours(case), theirs(case)
        print(f"\n{case.name}  [{case.model} on {case.gpu}]")
        print(f"  {'item':22} {'aiinfra GiB':>12} {'llm-analysis GiB':>17} {'ratio':>7}")
        for k in a:
            ratio = float(a[k]) / float(b[k]) if float(b[k]) else float("nan")
            print(f"  {k:22} {float(a[k]) / GiB:12.2f} {float(b[k]) / GiB:17.2f} {ratio:7.3f}")
    case = CASES[3]
    m, kw = model(case.model), la.spec_kwargs(model(case.model), gpu(case.gpu))
    ours_rate = rate(lambda: training_memory(m, **case.ours), 200)
    theirs_rate = rate(lambda: la.training_memory(**kw, layernorm_bytes=2, **case.theirs), 200)
    print(f"\nexplained single configuration: ours {ours_rate:,.0f}/s, baseline llm-analysis {theirs_rate:,.0f}/s, "
          f"ratio {ours_rate / theirs_rate:.2f}")


if __name__ == "__main__":
    main()

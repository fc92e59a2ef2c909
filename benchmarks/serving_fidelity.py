"""Serving fidelity: our numbers against every published measurement this repository cites for serving.

Prints one line per measurement — predicted, published, error, and whether the row was used to fit a
constant (FIT) or kept out (HELD-OUT) — then the mean absolute error per group. Roofline-only estimates
are printed beside the calibrated ones for the latency rows.

Sources:
- KV capacity at start-up: vllm-project/vllm#23278 (gpt-oss-120b on one H100, vLLM 0.10.1: available KV
  memory −2.14 GiB — FIT of vllm.sampler_extra_logit_copies); vllm-project/vllm#10517 (Llama-3.1-8B, RTX 3090, vLLM V0: 1,952 blocks at
  max_model_len 20,000 — FIT of engines.yaml vllm.activation_factor; 1,478 blocks at 29,000 — HELD-OUT);
  vllm-project/vllm#21348 (Qwen3-235B-A22B-FP8, 4 × H100 TP4: vLLM 178,880 tokens — HELD-OUT, run with an
  LMCache KV connector; SGLang mem_fraction_static 0.93: 367,404 tokens — FIT of sglang.load_overhead_*);
  vllm-project/vllm#10511 (Llama-3-8B on H100, TP1/TP2, vLLM 0.6.5: available KV 53.29 / 58.97 GiB — FIT of the V0
  sampler copies and Hopper non-torch figures; the TP2 activation line is HELD-OUT);
  vllm-project/vllm#9699 (Llama-3.1-405B, 8 × H200 TP8, vLLM 0.6.3: 17,595 blocks, 227xx with NVLS off — HELD-OUT;
  NCCL NVLS buffer sizes from its NCCL log line, not fitted);
  LMCache/LMCache#1739 (Qwen3-14B: 6.51 GiB → 42,656 tokens, pool → tokens only).
- Latency: LLM-Viewer issue #4 (TensorRT-LLM, A100, LLaMA-7B, batch 1): TTFT 16.1 ms at 128 prompt tokens,
  120.5 ms at 2,048 (the rows catalog/data/calibration.yaml `inference` was fitted on — FIT).
- Engine throughput/latency: catalog/data/engine_benchmarks.yaml (TensorRT-LLM's published static-batch tables,
  v0.6.1/v0.5, 2023-12: H100 FP8, A100 FP16, L40S FP8, Llama 2 7B/70B; vLLM 0.6.3 from the Qwen2.5 speed
  benchmark, A100, batch 1: Qwen2.5-7B fit, Qwen2.5-72B TP4 held out), each row FIT or HELD-OUT as marked
  there, with the pure roofline beside it; LLM-Viewer#4's rows are a source held out of that fit.
- Generic calibration, held out: TensorRT-LLM's perf-overview table (docs/source/performance/perf-overview.md, v1.0
  data, trtllm-bench at maximum load, FP8 Llama 3.1 8B / 3.3 70B / 3.1 405B on H100 and H200; calibration.yaml
  `inference_held_out`), predicted with no engine efficiencies; the prefill-heavy rows (ISL/OSL ≥ 10) are the ones
  the prefill model sets; and vLLM 0.23.0's batch-1 decode of Llama 3.1 8B on an A100 40GB (johnmusgrave.com, one
  measurement: reported, not fitted).
Run: PYTHONPATH=src python benchmarks/serving_fidelity.py
"""

from __future__ import annotations

import statistics

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import from_config, model
from aiinfra.perf.inference import inference_perf
from aiinfra.sizing.engine import engine_memory, tokens_from_pool

GiB = 2**30
ROWS: list[tuple[str, str, float, float, str]] = []


def row(group: str, name: str, ours: float, published: float, fit: str) -> None:
    ROWS.append((group, name, ours, published, fit))


def kv_rows() -> None:
    m8 = model("llama-3.1-8b")
    for mml, blocks, fit in ((20000, 1952, "FIT"), (29000, 1478, "HELD-OUT")):
        r = engine_memory(m8, None, engine="vllm", total_mib=23.58 * 1024, max_model_len=mml,
                          max_num_batched_tokens=mml, max_num_seqs=256, cuda_graphs=False,
                          scheduler="v0")
        row("KV capacity", f"vLLM Llama-3.1-8B RTX 3090 max_model_len {mml} (blocks) [vllm#10517]",
            r.kv_tokens / 16, blocks, fit)
    r = engine_memory(model("gpt-oss-120b"), gpu("h100-sxm"), engine="vllm", weights_bytes=65.9651 * GiB,
                      max_model_len=131072, cuda_graphs=False)
    free = float(r.budget.value - r.weights.value - r.activation.value - r.non_torch.value) / GiB
    row("KV capacity", "vLLM gpt-oss-120b 1xH100 available KV memory (GiB) [vllm#23278]", free, -2.14, "FIT")
    q = model("qwen3-235b-a22b")
    r = engine_memory(q, gpu("h100-sxm"), engine="vllm", tp=4, quant="fp8", max_model_len=40960, cuda_graphs=False)
    row("KV capacity", "vLLM Qwen3-235B-A22B-FP8 4xH100 TP4 (tokens) [vllm#21348]", r.kv_tokens, 178_880, "HELD-OUT")
    # vllm#9699 (vLLM ~0.6.3 V0, Oct 2024, 8 × H200, Llama-3.1-405B bf16 -tp 8 --load-format dummy --max-num-seqs
    # 1024 --max_num_batched_tokens 1024): 17,595 GPU blocks with NCCL NVLS on, "227xx" with NCCL_NVLS_ENABLE=0.
    # What the V0 profile counts there: the top-k/top-p sampler over 1,024 sequences on the driver rank (10.3 ×
    # 1,024 × 128,256 × 4 B = 5.0 GiB, far above the 1,024-token forward), the Hopper non-torch figures of vllm#10511
    # and NVLS buffers of two communicators rounded to the 512 MiB multicast granularity (block = 16 × 64,512 B).
    r405 = engine_memory(model("llama-3.1-405b"), gpu("h200-sxm"), engine="vllm", tp=8, max_model_len=131072,
                         max_num_batched_tokens=1024, max_num_seqs=1024, cuda_graphs=False, scheduler="v0")
    row("KV capacity", "vLLM 0.6.3 Llama-3.1-405B 8xH200 TP8 (blocks) [vllm#9699]", r405.kv_tokens / 16, 17_595,
        "HELD-OUT")
    # The same run with NCCL_NVLS_ENABLE=0: the issue prints "227xx" blocks; 22,750 ± 50 (±0.2%).
    off = engine_memory(model("llama-3.1-405b"), gpu("h200-sxm"), engine="vllm", tp=8, max_model_len=131072,
                        max_num_batched_tokens=1024, max_num_seqs=1024, cuda_graphs=False, scheduler="v0",
                        nccl_nvls=False)
    row("KV capacity", "vLLM 0.6.3 Llama-3.1-405B 8xH200 TP8 NCCL_NVLS_ENABLE=0 (blocks) [vllm#9699]",
        off.kv_tokens / 16, 22_750, "HELD-OUT")
    nvls = float(r405.non_torch.inputs["NVLS buffers (B)"]) / GiB
    row("KV capacity", "NCCL NVLS buffers, 405B TP8 H200: blocks on − off (GiB) [vllm#9699]", nvls,
        (22_750 - 17_595) * 16 * 64_512 / GiB, "HELD-OUT")
    # vllm#10511's two logs fix engines.yaml vllm.v0_sampler_logit_copies (activation line, TP1) and v0_non_torch.hopper
    # (non_torch_memory lines), so their KV rows are FIT: they check the budget, weights and the max(forward,
    # sampler) rule, not an independent prediction.
    for tp, pub in ((1, 53.29), (2, 71.29 - 7.48 - 3.58 - 1.26)):
        r = engine_memory(m8, gpu("h100-sxm"), engine="vllm", tp=tp, max_model_len=8192, max_num_batched_tokens=8192,
                          max_num_seqs=256, cuda_graphs=False, scheduler="v0")
        row("KV capacity", f"vLLM 0.6.5 Llama-3-8B H100 TP{tp} available KV (GiB) [vllm#10511]",
            float(r.kv_pool.value) / GiB, pub, "FIT")
        row("KV capacity", f"vLLM 0.6.5 Llama-3-8B H100 TP{tp} activation peak (GiB) [vllm#10511]",
            float(r.activation.value) / GiB, 1.26, "FIT" if tp == 1 else "HELD-OUT")
    r = engine_memory(q, gpu("h100-sxm"), engine="sglang", tp=4, quant="fp8", fraction=0.93)
    row("KV capacity", "SGLang Qwen3-235B-A22B-FP8 4xH100 TP4 (tokens) [vllm#21348]", r.kv_tokens, 367_404, "FIT")
    q14 = from_config({"model_type": "qwen3", "hidden_size": 5120, "num_hidden_layers": 40, "num_attention_heads": 40,
                       "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 17408, "vocab_size": 151936}, "q14")
    row("pool -> tokens", "vLLM Qwen3-14B 6.51 GiB (tokens) [LMCache#1739]", tokens_from_pool(q14, 6.51 * GiB), 42_656,
        "HELD-OUT")
    row("pool -> tokens", "vLLM Qwen3-235B TP4 8.11 GiB (tokens) [vllm#21348]", tokens_from_pool(q, 8.11 * GiB, tp=4),
        178_880, "HELD-OUT")
    row("pool -> tokens", "SGLang Qwen3-235B TP4 K+V 16.46 GiB (tokens) [vllm#21348]",
        tokens_from_pool(q, 2 * 8.23 * GiB, engine="sglang", tp=4), 367_404, "HELD-OUT")


def latency_rows() -> list[tuple[str, float, float]]:
    a100 = gpu("a100-80gb-sxm")
    m = model("llama-2-7b")
    roof = []
    for prompt, ms in ((128, 16.1), (2048, 120.5)):
        r = inference_perf(m, a100, prompt=prompt, output=128, batch=1)
        ttft = r.term("TTFT")
        row("latency", f"TRT-LLM LLaMA-7B A100 TTFT prompt {prompt} (ms) [LLM-Viewer#4]", ttft.value * 1e3, ms, "FIT")
        e = inference_perf(m, a100, prompt=prompt, output=128, batch=1, quant="fp16", kv_dtype="bf16", engine="tensorrt-llm")
        row("engine throughput/latency", f"tensorrt-llm fitted A100 efficiency, LLaMA-7B TTFT prompt {prompt} (ms) "
            "[LLM-Viewer#4, a source held out of the engine fit]", e.term("TTFT").value * 1e3, ms, "HELD-OUT")
        flops = ttft.inputs["prefill FLOPs"]
        peak = float(ttft.inputs["peak"].value)
        roof.append((f"prompt {prompt}", max(flops / peak, ttft.inputs["weights per GPU (B)"] / a100.memory_bw) * 1e3, ms))
    return roof


def engine_rows() -> None:
    """Every engine_benchmarks row with the engine's fitted efficiencies, and the pure roofline beside it."""
    from aiinfra.serving.calibration import benchmark_rows, predict, roofline

    for r in benchmark_rows():
        unit = {"ttft_ms": "ms", "out_tok_s": "tok/s"}.get(r.metric, "tok/s/GPU")
        what = f"TTFT isl {r.isl}" if r.metric == "ttft_ms" else f"batch {r.batch} {r.isl}/{r.osl}"
        ours, roof = predict(r), roofline(r)
        name = f"{r.engine} {r.model} {r.gpu} TP{r.tp} {r.quant} {what} ({unit}) [{r.key}]"
        row("engine throughput/latency", name, ours, r.value, "FIT" if r.split == "fit" else "HELD-OUT")
        ROOF.append((name, roof, r.value))


ROOF: list[tuple[str, float, float]] = []


def held_out_rows() -> None:
    """calibration.yaml inference_held_out: published engine throughput predicted with the generic calibration."""
    from aiinfra.catalog.loader import default_catalog
    from aiinfra.errors import DoesNotFitError

    _, e = default_catalog().entry("calibrations", "inference_held_out")
    for r in e["rows"]:
        quant, kv = r.get("quant", e["quant"]), r.get("kv_dtype", e["kv_dtype"])
        try:
            res = inference_perf(model(r["model"]), gpu(r["gpu"]), prompt=r["isl"], output=r["osl"],
                                 batch=r.get("batch", e["batch"]), tp=r["tp"], quant=quant, kv_dtype=kv,
                                 gpu_memory_utilization=r.get("gpu_memory_utilization", e["gpu_memory_utilization"]))
            ours = (1 / res.term("TPOT").value if "decode_tok_s" in r
                    else res.term("output tokens/s per GPU").value * r["tp"])
        except DoesNotFitError:
            ours = float("nan")
        if "decode_tok_s" in r:
            row("generic vs vLLM batch-1 decode", f"generic {r['model']} {r['gpu']} TP{r['tp']} {quant} batch 1 "
                f"{r['isl']}/{r['osl']} (decode tok/s = 1/TPOT) [{r['source']}]", ours, r["decode_tok_s"], "HELD-OUT")
            continue
        kind = "prefill-heavy" if r["isl"] >= 10 * r["osl"] else "other"
        row(f"generic vs TensorRT-LLM perf-overview, {kind}",
            f"generic {r['model']} {r['gpu']} TP{r['tp']} {quant} {r['isl']}/{r['osl']} (out tok/s) [trtllm-perf-overview]",
            ours, r["out_tok_s"], "HELD-OUT")


def main() -> None:
    kv_rows()
    engine_rows()
    roof = latency_rows()
    held_out_rows()
    groups: dict[str, list[float]] = {}
    for group, name, ours, pub, fit in ROWS:
        err = (ours - pub) / pub
        groups.setdefault(f"{group} ({fit})", []).append(abs(err))
        print(f"{name}: ours {ours:,.1f}, published {pub:,.1f}, error {err:+.1%} [{fit}]")
    for name, ours, pub in roof:
        print(f"roofline only, TRT-LLM LLaMA-7B A100 TTFT {name}: ours {ours:,.1f} ms, published {pub:,.1f} ms, "
              f"error {(ours - pub) / pub:+.1%}")
    roof_errs = []
    for name, ours, pub in ROOF:
        roof_errs.append(abs(ours - pub) / pub)
        print(f"roofline only, {name}: {ours:,.1f} vs {pub:,.1f}, error {(ours - pub) / pub:+.1%}")
    if roof_errs:
        print(f"mean |error| engine throughput/latency, roofline only: {statistics.mean(roof_errs):.1%} over {len(roof_errs)} rows")
    for g, errs in groups.items():
        print(f"mean |error| {g}: {statistics.mean(errs):.1%} over {len(errs)} rows")


if __name__ == "__main__":
    main()

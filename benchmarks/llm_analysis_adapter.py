"""Adapter to the PyPI package `llm-analysis` 0.2.2 (github.com/cli99/llm-analysis), the baseline that
aiinfra's memory estimates are compared with.

It builds llm-analysis's own `ModelConfig` / `GPUConfig` / `DtypeConfig` / `ParallelismConfig` objects
from plain numbers and calls `LLMAnalysis.training()` / `LLMAnalysis.inference()`, so nothing is looked
up on the Hugging Face Hub and nothing is downloaded.

Install (llm-analysis pins transformers<5 and huggingface-hub<0.15, which it only needs to fetch model
configs by name; `llm_analysis.analysis` imports without them, `fire` is the one hard dependency):

    python -m pip install --no-deps 'llm-analysis==0.2.2'
    python -m pip install 'fire>=0.5,<0.6'

Units
-----
Every figure llm-analysis returns is a plain count of **bytes**. Where it prints them
(`get_readable_summary_dict` / `_num_to_string`) it divides by 1024**3 and writes "GB", so its printed
"GB" are **GiB**. It also checks capacity against `mem_per_GPU_in_GB * 1024**3`, i.e. it treats a vendor
"80 GB" GPU as 80 GiB (7.4 % more than the 80e9 bytes the vendor sells). This adapter returns bytes and
reports `fits` by llm-analysis's own (GiB) rule.

How llm-analysis 0.2.2 models memory, where it differs from Korthikanti et al. 2022 / Megatron-LM
-----------------------------------------------------------------------------------------------
Read from `llm_analysis/analysis.py` and `config.py` of the 0.2.2 wheel. s = sequence, b = micro-batch,
h = hidden, a = heads, t = TP, p = PP, d = DP, L = layers, V = vocabulary.

Parameters
  * Attention: 2h² + 2h·(h·k'/a) with k' = max(kv_heads/t, 1)·t, so the count grows when TP exceeds the KV
    heads (replicated KV projections are counted as parameters) and depends on t. No biases anywhere
    (Qwen's QKV bias, GPT's linear biases are not counted); LayerNorm = 2h per layer + h final.
  * MLP: 2·h·ffn per expert. A gated (SwiGLU) MLP has three matrices, llm-analysis counts two; pass
    `gated_mlp=True` to feed ffn·3/2, which makes the weight count right but also scales the MLP
    activation term by 3/2. Its HF importer ignores `intermediate_size` and uses ffn = 4h; the adapter
    passes ffn (and `expansion_ratio = ffn/h`, since `ModelConfig` rejects ffn not divisible by h).
  * Embedding: one V·h matrix (`shared_embedding=True` is hard-wired), so an untied output head
    (Llama-3, Mistral, Qwen-72B…) is missing; no learned position embeddings.
  * The embedding is held on EVERY GPU (V·h/t, in `embedding_bits`), not only on the first and last
    pipeline stage; layers per GPU = floor(L/p).

Weights, gradients, optimizer state (training)
  * Weights in `weight_bits` (2 bytes for bf16). Gradients in `master_weights_dtype_bytes` = 4 bytes
    (fp32), optimizer = 12 bytes (fp32 master + Adam m + v): 18 bytes/parameter, which matches Megatron's
    mixed precision without the distributed optimizer, but not the ZeRO paper's 16 (= 2 + 2 + 12, fp16
    gradients). So the ZeRO-paper 7.5B, N_d = 64 figures (120 / 31.4 / 16.6 / 1.9 GB) come out as
    135 / 46.4 / 16.9 / 2.1 GB here.
  * ZeRO-1 divides optimizer state by d, ZeRO-2 also gradients, ZeRO-3 also weights (incl. embedding).
    There is no Megatron distributed optimizer, no FSDP variant, no SGD / 8-bit Adam (only the byte
    counts `other_op_bytes` / `master_weights_dtype_bytes`). Experts are divided by EP and their ZeRO
    shards by d/EP.

Activations (training), per layer, bytes
  * Sequence parallelism is ON by default in llm-analysis (`ParallelismConfig.sp_size` defaults to t);
    the adapter sets sp_size = 1 unless `sequence_parallel=True`.
  * No recompute: (sbh·2/sp + 8sbh/t) attention + sbh/sp attention-dropout mask + (2sbh/sp + 16sbh/t) MLP
    + 2·sbh·ln_bytes/sp LayerNorm inputs + 4as²b/t softmax/attention-over-V. Korthikanti Table 2 has
    sbh(34 + 5as/h) at t = 1. The differences: (i) no MLP dropout mask (−1 sbh); (ii) no softmax-dropout
    mask (−as²b; `softmax_dropout=False` default); (iii) LayerNorm inputs kept in fp32 by default
    (`layernorm_dtype_bytes=4`: +4 sbh). With ln_bytes = 2 it gives 33sbh + 4as²b (t = 1), and
    sbh(9 + 24/t + 4as/(ht)) with TP but no SP versus Korthikanti's sbh(10 + 24/t + 5as/(ht)).
  * Selective recompute drops the whole attention-score term (as²), leaving the linear part (33 sbh at
    ln_bytes = 2, vs Korthikanti's 34 sbh).
  * Full recompute keeps s·b·h·bytes/t per layer: divided by t even WITHOUT sequence parallelism
    (Korthikanti: 2sbh per layer, divided by t only with SP).
  * Flash attention (default ON in llm-analysis's `training()`; the adapter defaults to off) replaces
    2as²b·bytes/t with (2sbh + 4asb)·bytes/t: it keeps the attention output and softmax statistics,
    so it ADDS 4sbh + 8asb bytes per layer (t = 1) instead of only removing the as² terms.
  * The per-GPU activation total always uses all L layers (the first 1F1B stage holds p micro-batches of
    L/p layers; same as Korthikanti), with no interleaved-schedule factor (1 + (p−1)/(p·m)), and then adds
    the LAST stage's terms to it: the logits V·s·b·bytes/t (even with full recompute) and one final
    LayerNorm. No embedding-dropout or cross-entropy fp32 buffers, no context parallelism.
  * Bug in 0.2.2: with micro-batch 1, `training()` adds the logits and final LayerNorm to its batch-1
    activation figure and then again after reusing that figure, so both are counted TWICE at b = 1
    (once for b > 1). The adapter reports llm-analysis's number as is.
  * MoE: the MLP activation is multiplied by (experts/EP)·top_k.

Inference
  * Weights: ALL L layers are counted on each GPU whatever p is (training uses floor(L/p)); embedding
    as above.
  * KV cache per layer: 2·b·(s + generated)·(h/a)·max(kv_heads/t, 1)·kv_bytes, times floor(L/p). head_dim is
    always h/a (an explicit `head_dim`, e.g. Qwen3/Gemma, is not supported); no MLA, no sliding window;
    kv_bytes defaults to the activation dtype. No paged-attention block rounding, no engine reservation.
  * Activation workspace: the max of one layer's largest buffer and the logits (full buffer reuse); it
    is reported but not part of `weights + kv_cache`.
  * Quantised weights: `weight_bits/8` bytes per parameter with no group-scale overhead; note that
    `constant.BYTES_INT4` is `4 // 8 == 0` in the package (only used by callers that pass it explicitly).

Other constraints: weight/activation bits must be 4, 8 or 16 (fp32 training is rejected by its
throughput lookup); `seq_len <= max_seq_len` is asserted.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Literal

INSTALL_HINT = "python -m pip install --no-deps 'llm-analysis==0.2.2' && python -m pip install 'fire>=0.5,<0.6'"

# llm-analysis logs through a logger literally named "__name__" and warns at import time that
# transformers is missing; keep the baseline quiet so benchmark output stays readable.
logging.getLogger("__name__").setLevel(logging.ERROR)

try:
    with warnings.catch_warnings():  # fire 0.5 imports the deprecated `pipes` module
        warnings.simplefilter("ignore", DeprecationWarning)
        from llm_analysis.analysis import ActivationRecomputation, DSZeRO, LLMAnalysis
        from llm_analysis.config import DtypeConfig, GPUConfig, ModelConfig, ParallelismConfig
except ImportError as exc:  # fail loudly: the comparison must never be skipped silently
    raise ImportError(f"llm-analysis 0.2.2 is not importable ({exc}); install it with: {INSTALL_HINT}") from exc

Recompute = Literal["none", "selective", "full"]
_RECOMPUTE = {
    "none": ActivationRecomputation.NONE,
    "selective": ActivationRecomputation.SELECTIVE,
    "full": ActivationRecomputation.FULL,
}
_ZERO = {0: DSZeRO.NONE, 1: DSZeRO.STAGE_1, 2: DSZeRO.STAGE_2, 3: DSZeRO.STAGE_3}
# Large enough that llm-analysis's fit assertions never fire on the re-run used for breakdowns.
_UNBOUNDED_GB = 1e9


@dataclass(frozen=True)
class TrainingMemory:
    """llm-analysis's per-GPU training memory, in bytes (its printed 'GB' would be these / 1024**3)."""

    weights: float
    gradients: float
    optimizer_state: float
    activations: float
    total: float
    params_total: float
    fits: bool  # by llm-analysis's rule: total <= gpu_memory_gb * 1024**3

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class InferenceMemory:
    """llm-analysis's per-GPU inference memory, in bytes; total = weights + kv_cache."""

    weights: float
    kv_cache: float
    total: float
    prefill_activations: float
    decode_activations: float
    fits: bool

    def as_dict(self) -> dict:
        return asdict(self)


def _model(hidden, layers, heads, kv_heads, ffn, vocab, max_seq_len, gated_mlp, experts, top_k) -> ModelConfig:
    ffn_eff = ffn * 3 / 2 if gated_mlp else ffn
    return ModelConfig(
        name="adapter",
        num_layers=layers,
        n_head=heads,
        hidden_dim=hidden,
        vocab_size=vocab,
        max_seq_len=max_seq_len,
        num_key_value_heads=kv_heads,
        ffn_embed_dim=ffn_eff,
        expansion_ratio=ffn_eff / hidden,
        moe_num_experts=experts,
        moe_top_k=top_k,
    )


def _gpu(memory_gb, bandwidth_gbps, peak_tflops, intra_node_gbps) -> GPUConfig:
    return GPUConfig(
        name="adapter-gpu",
        mem_per_GPU_in_GB=memory_gb,
        hbm_bandwidth_in_GB_per_sec=bandwidth_gbps,
        intra_node_bandwidth_in_GB_per_sec=intra_node_gbps,
        intra_node_min_message_latency=8e-6,  # the value all bundled gpu_configs use
        peak_fp16_TFLOPS=peak_tflops,
    )


def _check_bits(*bits: int) -> None:
    for b in bits:
        if b not in (4, 8, 16):
            raise ValueError(f"llm-analysis models 4-, 8- or 16-bit weights/activations only, got {b}")


def training_memory(
    *,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    ffn: int,
    vocab: int,
    max_seq_len: int,
    gpu_memory_gb: float,
    gpu_bandwidth_gbps: float,
    gpu_peak_tflops: float,
    seq_len: int,
    micro_batch: int = 1,
    tp: int = 1,
    pp: int = 1,
    dp: int = 1,
    sequence_parallel: bool = False,
    zero: int = 0,
    recompute: Recompute = "none",
    flash_attention: bool = False,
    dtype_bits: int = 16,
    gated_mlp: bool = False,
    experts: int = 1,
    top_k: int = 1,
    ep: int = 1,
    layernorm_bytes: int = 4,
    intra_node_gbps: float = 300.0,
) -> TrainingMemory:
    """Per-GPU training memory as llm-analysis computes it (Adam, mixed precision), in bytes.

    `layernorm_bytes=4` is llm-analysis's default (fp32 LayerNorm inputs); pass 2 to match Korthikanti.
    `intra_node_gbps` (unidirectional NVLink) only affects llm-analysis's latency, never memory.
    """
    _check_bits(dtype_bits)
    if recompute not in _RECOMPUTE:
        raise ValueError(f"recompute must be one of {sorted(_RECOMPUTE)}, got {recompute!r}")
    if zero not in _ZERO:
        raise ValueError(f"zero stage must be 0-3, got {zero}")
    model = _model(hidden, layers, heads, kv_heads, ffn, vocab, max_seq_len, gated_mlp, experts, top_k)
    dtypes = DtypeConfig(name="adapter", weight_bits=dtype_bits, activation_bits=dtype_bits, embedding_bits=dtype_bits)
    par = ParallelismConfig(tp_size=tp, pp_size=pp, dp_size=dp, ep_size=ep, sp_size=tp if sequence_parallel else 1)
    kwargs = dict(
        batch_size_per_gpu=micro_batch,
        gradient_accumulation_steps=1,
        seq_len=seq_len,
        activation_recomputation=_RECOMPUTE[recompute],
        ds_zero=_ZERO[zero],
        layernorm_dtype_bytes=layernorm_bytes,
        flash_attn=flash_attention,
    )

    def run(memory_gb: float) -> dict:
        gpu = _gpu(memory_gb, gpu_bandwidth_gbps, gpu_peak_tflops, intra_node_gbps)
        return LLMAnalysis(model, gpu, dtypes, par).training(**kwargs)

    summary, fits = _run_or_unbounded(run, gpu_memory_gb)
    if fits:  # llm-analysis only warns when activations overflow; decide from its memory_left
        fits = summary["memory_left_per_gpu"] >= 0
    return TrainingMemory(
        weights=summary["weight_memory_per_gpu"],
        gradients=summary["gradient_memory_per_gpu"],
        optimizer_state=summary["optimizer_state_memory_per_gpu"],
        activations=summary["activation_memory_per_gpu"],
        total=summary["(weight+op_state+grad+act)_memory_per_gpu"],
        params_total=summary["num_params_total"],
        fits=fits,
    )


def inference_memory(
    *,
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    ffn: int,
    vocab: int,
    max_seq_len: int,
    gpu_memory_gb: float,
    gpu_bandwidth_gbps: float,
    gpu_peak_tflops: float,
    context: int,
    batch: int = 1,
    tp: int = 1,
    pp: int = 1,
    weight_bits: int = 16,
    activation_bits: int = 16,
    kv_bits: int = 16,
    embedding_bits: int | None = None,
    generated_tokens: int = 1,
    gated_mlp: bool = False,
    experts: int = 1,
    top_k: int = 1,
    intra_node_gbps: float = 300.0,
) -> InferenceMemory:
    """Per-GPU inference memory as llm-analysis computes it, in bytes.

    The KV cache covers `context` tokens per sequence: llm-analysis sizes it for prompt + generated
    tokens, so the prompt passed is `context - generated_tokens`. `embedding_bits` defaults to
    `weight_bits` (llm-analysis's bundled dtype configs, e.g. w4a16e16, keep it separate).
    """
    _check_bits(weight_bits, activation_bits)
    if not 0 < generated_tokens < context:
        raise ValueError(f"need 0 < generated_tokens < context, got {generated_tokens} and {context}")
    model = _model(hidden, layers, heads, kv_heads, ffn, vocab, max_seq_len, gated_mlp, experts, top_k)
    dtypes = DtypeConfig(
        name="adapter",
        weight_bits=weight_bits,
        activation_bits=activation_bits,
        embedding_bits=embedding_bits or weight_bits,
    )
    par = ParallelismConfig(tp_size=tp, pp_size=pp, dp_size=1, sp_size=1)

    def run(memory_gb: float) -> dict:
        gpu = _gpu(memory_gb, gpu_bandwidth_gbps, gpu_peak_tflops, intra_node_gbps)
        return LLMAnalysis(model, gpu, dtypes, par).inference(
            batch_size_per_gpu=batch,
            seq_len=context - generated_tokens,
            num_tokens_to_generate=generated_tokens,
            use_kv_cache=True,
            kv_cache_dtype_bytes=kv_bits / 8,
        )

    summary, fits = _run_or_unbounded(run, gpu_memory_gb)
    weights, kv = summary["weight_memory_per_gpu"], summary["kv_cache_memory_per_gpu"]
    return InferenceMemory(
        weights=weights,
        kv_cache=kv,
        total=weights + kv,
        prefill_activations=summary["prefill_activation_memory_per_gpu"],
        decode_activations=summary["decode_activation_memory_per_gpu"],
        fits=fits,
    )


def _run_or_unbounded(run, memory_gb: float) -> tuple[dict, bool]:
    """llm-analysis asserts when a configuration does not fit; the memory terms do not depend on the
    GPU's capacity, so re-run on an unbounded GPU to still get the breakdown, and report fits=False."""
    try:
        return run(memory_gb), True
    except AssertionError:
        try:
            return run(_UNBOUNDED_GB), False
        except AssertionError as exc:  # not a capacity problem: an input llm-analysis rejects
            raise ValueError(f"llm-analysis rejected the configuration: {exc}") from None


def spec_kwargs(model, gpu, dtype: str = "bf16") -> dict:
    """The model and GPU arguments of `training_memory` / `inference_memory` from aiinfra's ModelSpec
    and GpuSpec. What llm-analysis cannot express is dropped: biases, untied embeddings, explicit
    head_dim, sliding windows, shared experts and leading dense layers; MLA models are refused."""
    if model.is_mla:
        raise ValueError(f"llm-analysis cannot model MLA attention ({model.name})")
    moe = model.is_moe
    return dict(
        hidden=model.hidden,
        layers=model.layers,
        heads=model.heads,
        kv_heads=model.kv_heads,
        ffn=model.moe_ffn if moe else model.ffn,
        vocab=model.vocab,
        max_seq_len=model.max_positions,
        gated_mlp=model.gated_mlp,
        experts=model.experts if moe else 1,
        top_k=model.experts_per_token if moe else 1,
        gpu_memory_gb=gpu.memory_gb,
        gpu_bandwidth_gbps=gpu.memory_bw_gbps,
        gpu_peak_tflops=gpu.peak_flops(dtype) / 1e12,
        intra_node_gbps=gpu.nvlink_gbps / 2 or 32.0,  # unidirectional NVLink, else PCIe Gen4 x16
    )


def evaluations_per_second(n: int, fn=training_memory, **config) -> float:
    """Time `n` single-configuration evaluations of `fn(**config)` and return evaluations per second."""
    if n < 1:
        raise ValueError("n must be at least 1")
    fn(**config)  # warm-up: first call pays for imports and caches
    start = time.perf_counter()
    for _ in range(n):
        fn(**config)
    return n / (time.perf_counter() - start)


# GPT-3 175B (Korthikanti et al. 2022, Table 3: a=96, h=12288, L=96, t=8, p=8, s=2048, b=1) on A100-80GB.
GPT3_175B_ON_A100 = dict(
    hidden=12288,
    layers=96,
    heads=96,
    kv_heads=96,
    ffn=4 * 12288,
    vocab=51200,
    max_seq_len=2048,
    gpu_memory_gb=80,
    gpu_bandwidth_gbps=2039,
    gpu_peak_tflops=312,
    seq_len=2048,
    micro_batch=1,
    tp=8,
    pp=8,
    dp=1,
)


def _print_breakdown(title: str, parts: dict) -> None:
    print(title)
    for name, value in parts.items():
        if isinstance(value, bool):
            print(f"  {name:20s} {value}")
        elif name == "params_total":
            print(f"  {name:20s} {value / 1e9:10.3f} B")
        else:
            print(f"  {name:20s} {value / 2**30:10.3f} GiB  ({value / 1e9:.3f} GB)")


if __name__ == "__main__":
    for mode in ("none", "selective"):
        mem = training_memory(**GPT3_175B_ON_A100, sequence_parallel=mode == "selective", recompute=mode)
        sp = "+SP" if mode == "selective" else ""
        _print_breakdown(f"llm-analysis 0.2.2, GPT-3 175B TP8 PP8{sp}, recompute={mode}, per GPU:", mem.as_dict())
    infer = inference_memory(
        hidden=8192, layers=80, heads=64, kv_heads=8, ffn=28672, vocab=128256, max_seq_len=131072,
        gpu_memory_gb=141, gpu_bandwidth_gbps=4800, gpu_peak_tflops=989.4,
        context=8192, batch=16, tp=8, gated_mlp=True,
    )
    _print_breakdown("llm-analysis 0.2.2, Llama-3.1-70B inference TP8, 16 x 8192 tokens, per GPU:", infer.as_dict())
    rate = evaluations_per_second(50, **GPT3_175B_ON_A100)
    print(f"llm-analysis training evaluations: {rate:.0f}/s")

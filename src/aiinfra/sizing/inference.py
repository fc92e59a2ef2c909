"""Inference memory per GPU: quantized weights, KV cache, activation workspace, runtime overhead.

Also: how many KV tokens and sequences fit under an engine reservation (vLLM's
gpu_memory_utilization), and the fewest GPUs of each catalog SKU that hold a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from aiinfra.catalog.gpus import all_gpus
from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import LayoutError, SpecError
from aiinfra.explain import Term, total
from aiinfra.sizing.dtypes import nbytes
from aiinfra.sizing.params import param_counts
from aiinfra.specs import GpuSpec, ModelSpec

WEIGHT_QUANTS = ("bf16", "fp16", "fp8", "int8", "int4", "fp4")
KV_DTYPES = ("bf16", "fp16", "fp8", "int8")
# Per-block scale overhead of weight-only formats: (block size, bytes of scale + zero point per block).
GROUP_SCALES = {
    "int4": (128, 2.5, "AWQ/GPTQ group size 128: fp16 scale (2 B) + packed 4-bit zero point (0.5 B) per group"),
    "fp4": (16, 1.0, "NVFP4: one fp8 (E4M3) scale per 16-element block"),
}
SRC_KV = "KV bytes/token = 2·L·n_kv·d_head·bytes (memory_perf_anchors §2e.2); MLA caches L·(kv_lora_rank + d_rope)·bytes"
SRC_VLLM = "vLLM EngineArgs.gpu_memory_utilization: the fraction of GPU memory the engine may use"


def weight_bytes(params: Any, quant: str, group_size: int | None = None, scale_bytes: float = 0.0) -> Term:
    """Bytes of `params` weights stored in `quant`, plus per-group scales when group_size is given.

    The textbook rule (no scales): 70B × 2 B = 140 GB in fp16, 70B × 0.5 B = 35 GB in int4.
    """
    if quant not in WEIGHT_QUANTS:
        raise SpecError(f"unknown quantization '{quant}'; choose one of {', '.join(WEIGHT_QUANTS)}")
    b = nbytes(quant)
    per = b + (scale_bytes / group_size if group_size else 0.0)
    return Term(
        "weights", np.asarray(params, dtype=float) * per, "B",
        "params · (bytes + scale_bytes / group)" if group_size else "params · bytes",
        {"params": params, "bytes": b, **({"group": group_size, "scale_bytes": scale_bytes} if group_size else {})},
        {"bytes": f"{quant} = {b:g} B per weight"},
    )


def model_weight_bytes(m: ModelSpec, quant: str) -> Term:
    """Weights of a catalog model: linear layers in `quant`, embeddings/head/norms/routers in bf16."""
    if quant not in WEIGHT_QUANTS:
        raise SpecError(f"unknown quantization '{quant}'; choose one of {', '.join(WEIGHT_QUANTS)}")
    c = param_counts(m)
    total_params = float(c.total.value)
    keep16 = c.embedding + c.lm_head + c.final_norm + m.dense_layers * c.dense_layer.replicated
    if c.moe_layer is not None:
        keep16 += m.moe_layers * c.moe_layer.replicated
    if quant in ("bf16", "fp16"):
        keep16 = 0.0
    linear = total_params - keep16
    group, scale, src = GROUP_SCALES.get(quant, (None, 0.0, ""))
    lin = weight_bytes(linear, quant, group, scale)
    lin.name = f"linear layers ({quant})"
    parts = [lin]
    if keep16:
        parts.append(Term("embeddings, head, norms (bf16)", keep16 * 2.0, "B", "params · 2 B", {"params": keep16},
                          {"why": "quantizers (AWQ, GPTQ, FP8 checkpoints) leave these in 16-bit"}))
    t = total("weights", parts)
    if src:
        t.sources["scales"] = src
    return t


def kv_bytes_per_token(m: ModelSpec, kv_dtype: str = "bf16", tp: Any = 1) -> Term:
    """KV-cache bytes one token costs on one GPU, over every layer that keeps KV (not linear/SSM layers).

    Under TP each GPU keeps n_kv/tp heads, and at least one: KV heads are replicated when
    tp > n_kv. MLA's compressed latent is replicated on every TP rank.
    """
    if kv_dtype not in KV_DTYPES:
        raise SpecError(f"unknown KV-cache dtype '{kv_dtype}'; choose one of {', '.join(KV_DTYPES)}")
    b = nbytes(kv_dtype)
    tp = np.asarray(tp, dtype=float)
    L = m.attention_layers
    if m.is_mla:
        value = L * (m.kv_lora_rank + m.qk_rope_dim) * b * np.ones_like(tp)
        return Term("KV bytes per token", value, "B", "L · (kv_lora_rank + d_rope) · bytes",
                    {"L": L, "kv_lora_rank": m.kv_lora_rank, "d_rope": m.qk_rope_dim, "bytes": b},
                    {"formula": SRC_KV, "bytes": f"{kv_dtype} = {b:g} B"})
    heads_gpu = np.maximum(np.ceil(m.kv_heads / tp), 1.0)
    value = 2.0 * L * heads_gpu * m.head_dim * b
    return Term("KV bytes per token", value, "B", "2 · L · max(n_kv / tp, 1) · d_head · bytes",
                {"L": L, "n_kv": m.kv_heads, "tp": tp, "d_head": m.head_dim, "bytes": b},
                {"formula": SRC_KV, "bytes": f"{kv_dtype} = {b:g} B"})


def kv_bytes_per_sequence(m: ModelSpec, context: Any, kv_dtype: str = "bf16", tp: Any = 1) -> Term:
    """KV bytes one sequence of `context` tokens holds on one GPU, layer group by layer group.

    Full-attention layers keep every token; sliding-window layers at most `window`; Llama 4's
    chunked layers at most one chunk; linear/SSM layers a fixed state whatever the context.
    """
    per_tok = kv_bytes_per_token(m, kv_dtype, tp)
    ctx = np.asarray(context, dtype=float)
    L = m.attention_layers
    per_layer = per_tok.value / L if L else 0.0
    value = 0.0
    parts = {}
    for kind, n, cap in m.attention_groups():
        if kind == "linear":
            state = n * m.linear_state_bytes / np.maximum(np.asarray(tp, dtype=float), 1.0)
            value = value + state
            parts[f"{n} linear layers (fixed state)"] = state
            continue
        kept = ctx if cap is None else np.minimum(ctx, cap)
        value = value + per_layer * n * kept
        parts[f"{n} {kind} layers" + (f" (≤ {cap} tokens)" if cap else "")] = n * kept
    return Term("KV bytes per sequence", value, "B", "Σ_groups (KV bytes per layer-token · layers · min(context, cap))",
                {"KV bytes per token": per_tok, "context": ctx, **parts},
                {"layer types": "config.json layer_types / sliding_window_pattern / attention_chunk_size"})


def cached_tokens_per_sequence(m: ModelSpec, context: Any, kv_dtype: str = "bf16") -> Any:
    """Tokens a sequence effectively keeps in every layer (all-layer equivalent): `context` for full
    attention, `window` when every layer slides, in between for hybrid layer patterns."""
    per_tok = float(kv_bytes_per_token(m, kv_dtype).value)
    seq = kv_bytes_per_sequence(m, context, kv_dtype).value
    return seq / per_tok if per_tok else np.asarray(context, dtype=float)


def activation_workspace(m: ModelSpec, *, tokens: Any, batch: Any, tp: Any = 1) -> Term:
    """Transient bytes of one forward step over `tokens` tokens (a prefill chunk).

    Hidden states (residual + normed) 2 × 2·n·h, plus the larger of the QKV output and the MLP
    intermediates (gated: gate+up output 4·f and its product 2·f bytes per token, split by TP),
    plus fp32 logits for the last token of each sequence.
    """
    n = np.asarray(tokens, dtype=float)
    tp = np.asarray(tp, dtype=float)
    ffn = (m.experts_per_token + m.shared_experts) * m.moe_ffn if m.is_moe else m.ffn
    mlp = (6.0 if m.gated_mlp else 4.0) * ffn / tp
    qkv = 2.0 * (m.heads + 2 * m.kv_heads) * m.head_dim / tp
    value = n * (4.0 * m.hidden + np.maximum(mlp, qkv)) + np.asarray(batch, dtype=float) * m.vocab * 4.0
    return Term("activation workspace", value, "B", "n·(4·h + max(MLP, QKV bytes per token)/t) + batch·V·4",
                {"n": n, "h": m.hidden, "f": ffn, "t": tp, "batch": batch, "V": m.vocab},
                {"n": "prefill chunk = min(batch · prompt, max_batched_tokens)"})


@dataclass
class InferenceMemory:
    weights: Term
    kv_cache: Term
    workspace: Term
    overhead: Term
    total: Term
    kv_per_token: Term
    capacity: dict | None = None

    @property
    def terms(self) -> list[Term]:
        return [self.weights, self.kv_cache, self.workspace, self.overhead, self.total]


def inference_memory(
    m: ModelSpec,
    *,
    quant: str = "bf16",
    kv_dtype: str = "bf16",
    context: int = 4096,
    batch: int = 1,
    tp: int = 1,
    pp: int = 1,
    prompt: int | None = None,
    max_batched_tokens: int | None = None,
    overhead_bytes: float | None = None,
    gpu: GpuSpec | None = None,
    gpu_memory_utilization: float | None = None,
    weights_bytes: float | None = None,
) -> InferenceMemory:
    """Per-GPU memory to serve `batch` sequences of `context` tokens with TP × PP GPUs.

    weights_bytes: the checkpoint's exact weight bytes (from its safetensors headers) instead of the
    bytes derived from config.json and `quant`."""
    for name, v in (("context", context), ("batch", batch), ("tp", tp), ("pp", pp)):
        if v <= 0:
            raise SpecError(f"{name} must be positive, got {v}")
    if m.heads % tp:
        raise LayoutError(f"TP={tp} does not divide the {m.heads} attention heads of {m.name}")
    if pp > m.layers:
        raise LayoutError(f"PP={pp} is larger than the {m.layers} layers of {m.name}")
    rt = default_catalog().entry("runtime", "inference")[1]
    util = rt["gpu_memory_utilization"] if gpu_memory_utilization is None else gpu_memory_utilization
    if not 0 < util <= 1:
        raise SpecError(f"gpu memory utilization must be in (0, 1], got {util}")
    chunk_limit = max_batched_tokens or rt["max_batched_tokens"]
    prompt = context if prompt is None else prompt
    shards = tp * pp
    if weights_bytes is None:
        w_all = model_weight_bytes(m, quant)
    else:
        w_all = Term("checkpoint weights", float(weights_bytes), "B", "Σ tensor bytes in the safetensors headers", {},
                     {"checkpoint": "dtype and shape of every tensor, read without loading it"})
    weights = Term("weights", float(w_all.value) / shards, "B", "weights / (tp · pp)",
                   {"model weights": w_all, "tp": tp, "pp": pp})
    per_tok = kv_bytes_per_token(m, kv_dtype, tp)
    per_seq = kv_bytes_per_sequence(m, context, kv_dtype, tp)
    per_seq_gpu = float(per_seq.value) / pp
    kv = Term("KV cache", per_seq_gpu * batch, "B", "KV bytes per sequence / pp · batch",
              {"KV bytes per sequence": per_seq, "pp": pp, "batch": batch},
              {"layers": ", ".join(f"{n} {k}" + (f" (≤ {c} tokens)" if c else "") for k, n, c in m.attention_groups())})
    ws = activation_workspace(m, tokens=min(batch * prompt, chunk_limit), batch=batch, tp=tp)
    if overhead_bytes is None:
        fixed = rt["cuda_context_bytes"] + (rt["comm_buffers_bytes"] if shards > 1 else 0)
        src = {"fixed": "catalog runtime.inference (estimate; override with --overhead-gib)"}
    else:
        if overhead_bytes < 0:
            raise SpecError("overhead must not be negative")
        fixed, src = overhead_bytes, {"fixed": "given by the user"}
    overhead = Term("runtime overhead", fixed, "B", "CUDA context (+ communicator buffers when sharded)", {}, src)
    if gpu is not None:
        # The engine's own accounting (vLLM by default): its budget is a fraction of the total PyTorch sees
        # (MiB, not the datasheet's decimal GB), minus the profile-run activation peak over
        # max_num_batched_tokens, non-torch memory and CUDA graphs (sizing/engine.py, engines.yaml).
        from aiinfra.sizing.engine import engine_memory

        em = engine_memory(m, gpu, engine="vllm", tp=tp, pp=pp, quant=quant, kv_dtype=kv_dtype, max_model_len=context,
                           fraction=util, max_num_batched_tokens=max_batched_tokens, weights_bytes=weights_bytes)
        ws = em.activation
        ws.name = "activation workspace"
        if overhead_bytes is None:
            overhead = total("runtime overhead", [em.non_torch, em.cuda_graphs])
            overhead.note = "vLLM non-torch memory + CUDA graph pool (catalog engines.yaml)"
    tot = total("total per GPU", [weights, kv, ws, overhead])
    result = InferenceMemory(weights, kv, ws, overhead, tot, per_tok)
    if gpu is not None:
        budget = float(em.budget.value)
        kv_budget = budget - float(weights.value) - float(ws.value) - float(overhead.value)
        result.capacity = {
            "gpu": gpu.key,
            "capacity_gb": gpu.memory_gb,
            "gpu_memory_utilization": util,
            "engine_budget_gb": round(budget / 1e9, 2),
            "kv_budget_gb": round(kv_budget / 1e9, 2),
            "kv_tokens": em.kv_tokens if overhead_bytes is None else
            max(0, math.floor(kv_budget / (float(per_tok.value) / pp) / 16) * 16),
            "sequences_at_context": int(max(0.0, kv_budget) // per_seq_gpu) if per_seq_gpu else 0,
            "fits": bool(float(tot.value) <= budget),
            "headroom_gb": round((budget - float(tot.value)) / 1e9, 2),
        }
    return result


def _layouts(m: ModelSpec, max_gpus: int) -> list[tuple[int, int]]:
    """TP inside one 8-GPU node first (must divide the heads), then PP across nodes."""
    out = [(tp, 1) for tp in (1, 2, 4, 8) if m.heads % tp == 0]
    tp_node = max(tp for tp, _ in out)
    pp = 2
    while tp_node * pp <= max_gpus and pp <= m.layers:
        out.append((tp_node, pp))
        pp += 1
    return out


def tp_fabric(gpu: GpuSpec, tp: int) -> str:
    """What a TP group of `tp` GPUs of this SKU talks over: its scale-up fabric when the group fits in
    one scale-up domain, else PCIe between the domains."""
    if tp <= 1:
        return "none (one GPU)"
    if gpu.scaleup_link == "pcie":
        return gpu.scaleup_name
    if tp <= (gpu.scaleup_domain or 1):
        return gpu.scaleup_name
    return f"{gpu.scaleup_name} + PCIe between groups of {gpu.scaleup_domain}"


def min_gpus(m: ModelSpec, gpu: GpuSpec, *, max_gpus: int = 512, **settings: Any) -> dict:
    """The fewest GPUs of one SKU whose per-GPU total stays inside the engine reservation."""
    base = {"gpu": gpu.key, "capacity_gb": gpu.memory_gb, "form_factor": gpu.form_factor,
            "scaleup_link": gpu.scaleup_link, "scaleup_domain": gpu.scaleup_domain}
    for tp, pp in _layouts(m, max_gpus):
        r = inference_memory(m, tp=tp, pp=pp, gpu=gpu, **settings)
        if r.capacity["fits"]:
            return {**base, "gpus": tp * pp, "tp": tp, "pp": pp,
                    "per_gpu_gb": round(float(r.total.value) / 1e9, 2),
                    "kv_tokens": r.capacity["kv_tokens"], "interconnect": tp_fabric(gpu, tp),
                    "tp_over_pcie": tp > 1 and (gpu.scaleup_link == "pcie" or tp > (gpu.scaleup_domain or 1))}
    return {**base, "gpus": None, "tp": None, "pp": None, "per_gpu_gb": None, "kv_tokens": None,
            "interconnect": "", "tp_over_pcie": False, "note": f"does not fit in {max_gpus} GPUs"}


def fits(m: ModelSpec, gpus: list[GpuSpec] | None = None, **settings: Any) -> list[dict]:
    """For every catalog GPU, the minimum number of GPUs for this model and setting."""
    rows = [min_gpus(m, g, **settings) for g in (gpus or all_gpus())]
    return sorted(rows, key=lambda r: (r["gpus"] is None, r["gpus"] or 0, r["gpu"]))

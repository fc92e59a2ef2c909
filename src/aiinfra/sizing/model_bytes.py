"""Bytes one model costs on a GPU, term by term: quantized weights, KV cache per token and per
sequence, and the activation workspace of one forward step.

The primitives under both the inference sizer (inference.py) and the engine accountant (engine.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aiinfra.errors import SpecError
from aiinfra.explain import Term, total
from aiinfra.sizing.dtypes import nbytes
from aiinfra.sizing.params import param_counts
from aiinfra.specs import ModelSpec

WEIGHT_QUANTS = ("bf16", "fp16", "fp8", "int8", "int4", "fp4")
KV_DTYPES = ("bf16", "fp16", "fp8", "int8")
# Per-block scale overhead of weight-only formats: (block size, bytes of scale + zero point per block).
GROUP_SCALES = {
    "int4": (128, 2.5, "AWQ/GPTQ group size 128: fp16 scale (2 B) + packed 4-bit zero point (0.5 B) per group"),
    "fp4": (16, 1.0, "NVFP4: one fp8 (E4M3) scale per 16-element block"),
}
SRC_KV = "KV bytes/token = 2·L·n_kv·d_head·bytes (memory_perf_anchors §2e.2); MLA caches L·(kv_lora_rank + d_rope)·bytes"


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

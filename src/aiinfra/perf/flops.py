"""Training and inference FLOPs, per token and per iteration, from a model's architecture.

Per token and layer, a forward pass costs 2 FLOP per matmul weight (attention projections, MLP or
the top-k routed experts plus shared experts and router, so MoE uses *active* parameters) plus core
attention 2·s·n_q·(d_qk + d_v) (QKᵀ and ·V). The LM head adds 2·h·V. Training is 3 forward passes
(forward + backward at 2×); full recompute repeats each layer's forward once more, selective
recompute only the core attention (Korthikanti et al. 2022 §4.2).

For Megatron GPT (12h² matmul weights per layer, 4sh core attention) this is exactly Narayanan et
al. 2021's formula (memory_perf_anchors §2a):
    with full recompute  F = 96·B·s·l·h²·(1 + s/6h + V/16lh)
    without recompute    F = 72·B·s·l·h²·(1 + s/6h + V/12lh)
`causal=True` halves core attention, as Megatron-LM's code does since 2024 (§1.4); the papers do not.

MFU counts model FLOPs (no recompute); HFU counts what the hardware executes (with recompute).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aiinfra.errors import AiinfraError
from aiinfra.explain import Number, Term
from aiinfra.sizing.params import attention_params, every_second_linear, linear_order
from aiinfra.sizing.recompute import policy_modules
from aiinfra.specs import ModelSpec

SRC_NARAYANAN = "Narayanan et al. 2021 (SC'21) §5.1 FLOPs formula, memory_perf_anchors §2a"
SRC_KORTHIKANTI = "Korthikanti et al. 2022 §4.2 selective recompute of core attention, memory_perf_anchors §2b"
SRC_MEGATRON_CAUSAL = "Megatron-LM training.py num_floating_point_operations halves causal core attention (§1.4)"

RECOMPUTE = {"none": 0, "selective": 1, "full": 2}
# What "selective" recomputes differs by stack (catalog stacks.yaml `selective`, sizing.recompute.SELECTIVE_POLICIES):
# Megatron's is the core attention (Korthikanti et al. 2022); torchtitan's op-level policy saves matmul and
# attention outputs but recomputes every second matmul of a block, and every other op.
SRC_TORCHTITAN_SAC = ("torchtitan op-level selective activation checkpointing (parallelize_llama.py at e7c0cae, "
                      "2025-06; distributed/activation_checkpoint.py today): save mm/attention outputs except every "
                      "second mm of a block, recompute everything else")


def recompute_code(value) -> np.ndarray | int:
    """'none'|'selective'|'full' (or 0/1/2, or an int array) → 0/1/2."""
    if isinstance(value, str):
        if value not in RECOMPUTE:
            raise AiinfraError(f"unknown recompute mode '{value}'; use none, selective or full")
        return RECOMPUTE[value]
    return value


@dataclass(frozen=True)
class LayerFlops:
    """Forward FLOPs per token of one layer, split by what recompute repeats."""

    matmul: float  # 2 × matmul weights used per token (attention projections + MLP / active experts)
    attn_per_pos: float  # core attention per token per attended position: 2·n_q·(d_qk + d_v)


def _matmul_weights_attention(m: ModelSpec) -> int:
    if m.is_mla:
        return attention_params(m)  # MLA projections (biases are a rounding error here)
    q, kv = m.heads * m.head_dim, m.kv_heads * m.head_dim
    return m.hidden * (q + 2 * kv) + q * m.hidden


def _mlp_weights(m: ModelSpec, ffn: int) -> int:
    return (3 if m.gated_mlp else 2) * m.hidden * ffn


def layer_flops(m: ModelSpec) -> tuple[LayerFlops, LayerFlops | None]:
    """(dense layer, MoE layer or None): forward FLOPs per token."""
    d_qk = (m.qk_nope_dim + m.qk_rope_dim) if m.is_mla else m.head_dim
    d_v = m.v_head_dim if m.is_mla else m.head_dim
    attn_pos = 2.0 * m.heads * (d_qk + d_v)
    attn_w = _matmul_weights_attention(m)
    dense = LayerFlops(2.0 * (attn_w + _mlp_weights(m, m.ffn)), attn_pos)
    if not m.is_moe:
        return dense, None
    expert = _mlp_weights(m, m.moe_ffn)
    moe_w = attn_w + (m.experts_per_token + m.shared_experts) * expert + m.hidden * m.experts
    return dense, LayerFlops(2.0 * moe_w, attn_pos)


def every_second_linear_fraction(m: ModelSpec, moe: bool = False) -> float:
    """Share of a layer's forward linear FLOPs torchtitan's op-level SAC runs again in backward: every second
    plain matmul of the block plus grouped expert GEMMs (sizing.params.every_second_linear)."""
    order = linear_order(m, moe)
    flops = [2.0 * k * n for _, k, n, _ in order]
    again = sum(f for f, a in zip(flops, every_second_linear(m, moe)) if a)
    return again / sum(flops) if flops else 0.0


def module_recompute_fraction(m: ModelSpec, modules, moe: bool = False) -> float:
    """Share of a layer's forward linear FLOPs that Megatron's selective modules run again in backward: the dense
    MLP (mlp), the whole MoE layer (moe: router, shared and routed experts), the shared experts (shared_experts),
    the MLA up projections of Q and of K,V (mla_up_proj). The others (core_attn, layernorm, moe_act) repeat no
    linear layer."""
    dense, moe_fl = layer_flops(m)
    layer = moe_fl if moe and moe_fl is not None else dense
    again = 0.0
    if "mla_up_proj" in modules and m.is_mla:
        qk = m.qk_nope_dim + m.qk_rope_dim
        again += 2.0 * (m.q_lora_rank * m.heads * qk + m.kv_lora_rank * m.heads * (m.qk_nope_dim + m.v_head_dim))
    if moe and moe_fl is not None:
        expert = _mlp_weights(m, m.moe_ffn)
        if "moe" in modules:
            again += 2.0 * ((m.experts_per_token + m.shared_experts) * expert + m.hidden * m.experts)
        elif "shared_experts" in modules:
            again += 2.0 * m.shared_experts * expert
    elif "mlp" in modules:
        again += 2.0 * _mlp_weights(m, m.ffn)
    return again / layer.matmul


@dataclass
class TrainingFlops:
    """FLOPs of one training iteration: `model` (MFU basis) and `hardware` (HFU basis, with recompute)."""

    model: Term
    hardware: Term
    per_token: Term  # model FLOPs per trained token


def attended_positions(m: ModelSpec, seq: Number, causal) -> Number:
    """Positions one token attends to in core attention, averaged over the model's layers (ModelSpec.layer_types):
    full layers s/2 causal (s otherwise); sliding-window layers of w tokens s/2 while s ≤ w, then w − w²/2s (every
    token past the first w sees w); chunked layers (Llama 4) attend inside chunks of c: min(s, c)/2; linear/SSM
    layers have no quadratic attention. Flash-attention kernels skip masked tiles, so FLOPs follow the mask."""
    s = np.asarray(seq, dtype=float)
    half = (lambda x: np.where(causal, x / 2, x)) if not isinstance(causal, bool) else (lambda x: x / 2 if causal else x)
    total = 0.0
    for kind, n, cap in m.attention_groups():
        if kind == "linear":
            continue
        if cap is None:
            pos = half(s)
        elif kind == "sliding":
            w = float(cap)
            causal_pos = np.where(s <= w, s / 2, w - w * w / (2 * np.maximum(s, 1.0)))
            pos = np.where(causal, causal_pos, np.minimum(s, w)) if not isinstance(causal, bool) else (
                causal_pos if causal else np.minimum(s, w))
        else:  # chunked
            pos = half(np.minimum(s, float(cap)))
        total = total + n * pos
    return total / m.layers


def training_flops(m: ModelSpec, *, tokens: Number, seq: Number, recompute="none", causal=False,
                   recompute_fraction: Number = 1.0, selective: str = "attention", mtp: bool = True) -> TrainingFlops:
    """FLOPs of one iteration over `tokens` = global batch × sequence length. `selective` is the stack's
    policy for selective recompute (sizing.recompute.SELECTIVE_POLICIES). `mtp`: with the model's
    multi-token-prediction layers (each one more layer of the model's last kind, an h×2h projection and the LM head
    again), as Megatron counts them in its model FLOPs."""
    dense, moe = layer_flops(m)
    n_moe, n_dense = m.moe_layers, m.dense_layers
    n_mtp = m.mtp_layers if mtp else 0
    if n_mtp:  # the MTP layer is a layer of the model's last kind (DeepSeek-V3: MoE)
        n_moe, n_dense = (n_moe + n_mtp, n_dense) if moe else (n_moe, n_dense + n_mtp)
    pos = attended_positions(m, seq, causal)
    attn = (n_dense * dense.attn_per_pos + n_moe * (moe.attn_per_pos if moe else 0)) * pos
    matmul = n_dense * dense.matmul + n_moe * (moe.matmul if moe else 0)
    head = 2.0 * m.hidden * m.vocab * (1 + n_mtp) + n_mtp * 2.0 * 2 * m.hidden * m.hidden
    fwd_layers = matmul + attn  # per token
    per_token_model = 3 * (fwd_layers + head)
    rc = recompute_code(recompute)
    if selective == "every_second_linear":
        sel_extra = (n_dense * dense.matmul * every_second_linear_fraction(m)
                     + n_moe * (moe.matmul * every_second_linear_fraction(m, True) if moe else 0.0))
    else:  # Megatron's modules: core attention, and the linear layers of the modules that run their forward again
        mods = policy_modules(selective)
        sel_extra = (attn if "core_attn" in mods else 0.0) + (
            n_dense * dense.matmul * module_recompute_fraction(m, mods)
            + n_moe * (moe.matmul * module_recompute_fraction(m, mods, True) if moe else 0.0))
    extra = np.where(np.asarray(rc) == 2, fwd_layers * np.asarray(recompute_fraction, dtype=float),
                     np.where(np.asarray(rc) == 1, sel_extra, 0.0))
    per_token_hw = per_token_model + extra
    inputs = {
        "tokens": tokens, "s": seq, "l": m.layers, "h": m.hidden, "V": m.vocab, **({"MTP layers": n_mtp} if n_mtp else {}),
        "matmul FLOP/token (all layers, fwd)": matmul, "core attention FLOP/token (fwd)": attn,
        "LM head FLOP/token (fwd)": head, "causal halving": causal,
    }
    sources = {"formula": SRC_NARAYANAN,
               "selective": SRC_TORCHTITAN_SAC if selective == "every_second_linear" else SRC_KORTHIKANTI}
    if causal is not False:
        sources["causal"] = SRC_MEGATRON_CAUSAL
    model_t = Term(
        "model FLOPs per iteration", _s(per_token_model * np.asarray(tokens, dtype=float)), "FLOP",
        "3 · tokens · (Σ_layers 2·W_active + 2·s·n_q·(d_qk+d_v) + 2·h·V)", inputs, sources,
        note="= 72·B·s·l·h²·(1 + s/6h + V/12lh) for Megatron GPT",
    )
    hw_t = Term(
        "hardware FLOPs per iteration", _s(per_token_hw * np.asarray(tokens, dtype=float)), "FLOP",
        "model FLOPs + recompute (full: one more layer forward; selective: core attention forward, or every "
        "second linear forward under torchtitan's op-level policy)",
        {**inputs, "recompute": recompute, "selective policy": selective}, sources,
        note="= 96·B·s·l·h²·(1 + s/6h + V/16lh) for Megatron GPT with full recompute",
    )
    per_tok = Term("model FLOPs per token", _s(per_token_model), "FLOP", "model FLOPs / tokens", {"s": seq}, sources)
    return TrainingFlops(model_t, hw_t, per_tok)


def narayanan_flops(batch: Number, seq: Number, layers: int, hidden: int, vocab: int, recompute: bool = True) -> Term:
    """The paper's closed form (Narayanan et al. 2021 eq. 3), for checks against the general count."""
    B, s, l, h, V = batch, seq, layers, hidden, vocab
    if recompute:
        value = 96 * B * s * l * h**2 * (1 + s / (6 * h) + V / (16 * l * h))
        formula = "96·B·s·l·h²·(1 + s/6h + V/16lh)"
    else:
        value = 72 * B * s * l * h**2 * (1 + s / (6 * h) + V / (12 * l * h))
        formula = "72·B·s·l·h²·(1 + s/6h + V/12lh)"
    return Term("FLOPs per iteration (Narayanan)", _s(value), "FLOP", formula,
                {"B": B, "s": s, "l": l, "h": h, "V": V}, {"formula": SRC_NARAYANAN})


def end_to_end_days(tokens: Number, params: Number, gpus: Number, flops_per_gpu: Number) -> Term:
    """Narayanan et al. 2021 §5.1: training time ≈ 8·T·P / (n·X) (with recompute), in days."""
    value = 8 * np.asarray(tokens, dtype=float) * params / (np.asarray(gpus) * flops_per_gpu) / 86400
    return Term("time to train (Narayanan)", _s(value), "days", "8·T·P / (n·X)",
                {"T": tokens, "P": params, "n": gpus, "X": flops_per_gpu}, {"formula": SRC_NARAYANAN})


def _s(v):
    return float(v) if np.ndim(v) == 0 else v

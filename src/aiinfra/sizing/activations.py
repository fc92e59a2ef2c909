"""Activation bytes per layer (Korthikanti et al. 2022 Table 2, generalised to GQA, gated MLPs, MoE and no-dropout
models by counting the same tensors) and the inputs the FP8 linear layers keep for backward."""

from __future__ import annotations

from typing import Any

import numpy as np

from aiinfra.catalog.loader import default_catalog
from aiinfra.explain import Term
from aiinfra.sizing.params import every_second_linear, linear_order
from aiinfra.sizing.recompute import policy_modules
from aiinfra.sizing.states import QUANTIZED_BYTES
from aiinfra.specs import ModelSpec

SRC_ACT = "Korthikanti et al. 2022 Table 2 (per-layer activations), generalised to GQA / gated MLP / no dropout"
SRC_OUT = "Megatron-LM theoretical_memory_usage.py: embedding input 8·s·b, output layer + CE 4·s·b·h·(1 + V/h)"
SRC_INTERLEAVE = "Korthikanti et al. 2022 §4.2.3: interleaved schedule stores (1 + (p−1)/(p·v)) × the activations"


def attention_width_units(m: ModelSpec) -> tuple[float, float, float]:
    """The attention block's query, key + value and output widths per token, in units of h. Korthikanti et al.'s
    Table 2 takes each as h (MHA: 1, 2, 1); heads·d_head may differ from h (Qwen3, Gemma), grouped-query attention
    keeps fewer K/V heads, and MLA up-projects K and V per head from a latent (Megatron's MLA keeps the latent
    too: kv_lora_rank + qk_rope_dim)."""
    h = m.hidden
    v_dim = m.v_head_dim or m.head_dim
    q_units = m.heads * m.head_dim / h
    o_units = m.heads * v_dim / h
    if m.is_mla:
        kv_units = (m.heads * m.head_dim + m.heads * v_dim + m.kv_lora_rank + m.qk_rope_dim) / h
    else:
        kv_units = m.kv_heads * (m.head_dim + v_dim) / h
    return q_units, kv_units, o_units


def saved_input_bytes(software: str, precision: str) -> float:
    """Bytes per element of a linear layer's input kept for backward: the FP8/FP4 copy where the stack keeps the
    quantized input (stacks.yaml `fp8_saved_inputs: quantized`, Transformer Engine), else 16 bits (torchao float8
    saves them high; 16-bit training)."""
    entry = default_catalog().entry("stacks", software)[1]
    if precision in QUANTIZED_BYTES and entry.get("fp8_saved_inputs", "high") == "quantized":
        return QUANTIZED_BYTES[precision]
    return 2.0


def layer_activation_bytes(
    m: ModelSpec, *, seq: Any, micro_batch: Any, tp: Any = 1, cp: Any = 1, sp: Any = False,
    recompute: Any = 0, flash_attention: bool = True, moe: bool = False, selective: str = "attention",
    input_bytes: float = 2.0, etp: Any = None,
) -> Term:
    """Activation bytes one transformer layer keeps for backward, per GPU (16-bit activations).

    In units of s·b·h (Korthikanti Table 2 with t = tp):
      U (not split by TP unless SP) = 2 norm inputs 4 + QKV input 2 + MLP input 2 + dropout masks 2
      S (split by TP) = Q 2 + K,V 4·n_kv/n_heads + attention-output input 2 + MLP intermediates
                        (gelu: 4·f/h; gated: 6·f/h for gate, up and their product)
      core attention (split by TP) = 5·a·s²·b with dropout, 2·a·s²·b without; flash attention
                        keeps only fp32 softmax statistics 4·a·s·b instead.
    selective recompute drops the core-attention term; full recompute keeps the layer input 2·s·b·h.
    For GPT (f = 4h, MHA, dropout) U + S = 10 + 24 = 34, as in the paper.
    `selective="every_second_linear"` is torchtitan's op-level policy instead: the block input, the outputs
    of the matmuls it saves (every other one, params.every_second_linear) and the attention output with its
    softmax statistics.
    `input_bytes`: bytes per element of each saved linear-layer input. FP8/FP4 training through Transformer
    Engine keeps the input for the weight gradient as its quantized copy (1 B in FP8, 0.5625 B in NVFP4 instead of
    2: module/linear.py discards the row-wise data and saves the column-wise quantized tensor, saved_input_bytes):
    QKV and MLP inputs in U, the attention-output input and the MLP down-projection input in S.
    A MoE layer's expert GEMMs keep their own input for the weight gradient: the dispatched tokens, one copy per
    routed expert (k per token; the shared experts and the router read the norm output that U counts). With whole
    experts (`etp` 1) a GPU's experts see the tokens of its own sequence shard (s/t), with experts split over TP
    (`etp` = t, the default) the TP group's tokens are gathered first, so every rank keeps all s of them.
    """
    tp = np.asarray(tp, dtype=float)
    cp = np.asarray(cp, dtype=float)
    sp = np.asarray(sp, dtype=bool)
    recompute = np.asarray(recompute)
    s_loc = np.asarray(seq, dtype=float) / cp
    b = np.asarray(micro_batch, dtype=float)
    h, a = m.hidden, m.heads
    sbh = s_loc * b * h
    ffn = (m.experts_per_token + m.shared_experts) * m.moe_ffn if moe else m.ffn
    mlp_units = (6.0 if m.gated_mlp else 4.0) * ffn / h
    dropout_masks = 2.0 if m.dropout else 0.0
    v_dim = m.v_head_dim or m.head_dim
    q_units, kv_units, o_units = attention_width_units(m)
    lin_in = float(input_bytes)  # bytes per element of a saved linear-layer input
    U = 4.0 + lin_in + lin_in + dropout_masks
    mlp_units = mlp_units - (2.0 - lin_in) * ffn / h  # the down projection's input (SwiGLU product or GeLU output)
    S = 2.0 * q_units + 2.0 * kv_units + lin_in * o_units + mlp_units
    # the expert GEMMs' saved input: k dispatched copies per token (Megatron TEGroupedMLP linear_fc1 over the
    # permuted tokens; Transformer Engine grouped_linear.py saves each expert's input for its wgrad)
    routed = lin_in * m.experts_per_token if moe else 0.0
    etp_a = tp if etp is None else np.asarray(etp, dtype=float)
    seq_full = np.asarray(seq, dtype=float)
    if flash_attention:
        core = 4.0 * a * s_loc * b  # fp32 log-sum-exp per head and query
        core_formula = "4·a·s·b (flash-attention softmax statistics)"
    else:
        core = (5.0 if m.dropout else 2.0) * a * s_loc * seq_full * b
        core_formula = f"{5 if m.dropout else 2}·a·s²·b (scores, softmax{', dropout mask and output' if m.dropout else ''})"
    u_div = np.where(sp, tp, 1.0)
    stored = sbh * (U / u_div + S / tp + routed * etp_a / tp) if moe else sbh * (U / u_div + S / tp)
    if selective == "every_second_linear":
        kept = sum(n for (_, _, n, _), again in zip(linear_order(m, moe), every_second_linear(m, moe)) if not again)
        sel_stored = sbh * (2.0 / u_div + (2.0 * kept / h + 2.0 * o_units) / tp) + core / tp
    else:
        mods = policy_modules(selective)
        # core_attn drops the unfused attention's scores; a fused kernel keeps its softmax statistics either way
        sel_stored = stored + (np.where(flash_attention, core / tp, 0.0) if "core_attn" in mods else core / tp)
        if mods - {"core_attn"}:
            sel_stored = sel_stored - sbh * _module_savings(m, mods, moe, lin_in, u_div, tp, etp_a, mlp_units, routed,
                                                            q_units, v_dim)
    value = np.select(
        [recompute == 0, recompute == 1, recompute == 2],
        [stored + core / tp, sel_stored, 2.0 * sbh / u_div],
    )
    return Term(
        "activations per layer", value, "B",
        "s·b·h·(U/(t if SP) + S/t" + (" + R·etp/t" if moe else "") + ") + core/t  [none];  core dropped [selective];  2·s·b·h/(t if SP) [full]",
        {"s": s_loc, "b": b, "h": h, "a": a, "t": tp, "cp": cp, "SP": sp, "U": U, "S": S,
         **({"routed expert inputs R (k copies)": routed, "expert TP": etp_a} if moe else {}),
         "saved linear-input bytes": lin_in, "core": core_formula, "recompute": recompute, "moe_layer": moe},
        {"formula": SRC_ACT},
    )


def module_norms(m: ModelSpec, mods: frozenset, moe: bool) -> int:
    """Norms of one layer that are modules of their own, which Megatron's layernorm recompute checkpoints: a MoE
    layer's pre-MLP norm (unless the moe module checkpoints the whole MoE layer) and MLA's input norm; Transformer
    Engine fuses a dense layer's norms into the next linear."""
    return (1 if moe and "moe" not in mods else 0) + (1 if m.is_mla else 0)


def _module_savings(m: ModelSpec, mods: frozenset, moe: bool, lin_in: float, u_div, tp, etp, mlp_units: float,
                    routed: float, q_units: float, v_dim: int):
    """Bytes per token and hidden unit that Megatron's selective modules do not keep (layer_activation_bytes units).
    layernorm: the outputs of the norms that are modules of their own (module_norms). mla_up_proj: the up-projected
    Q, K and V. mlp (dense layers) and moe (MoE layers): everything the MLP keeps but its input, the residual the
    norm reads (already counted). shared_experts: the shared experts' intermediates. moe_act: the routed experts'
    activation output (the down projection's input)."""
    save = 0.0
    if "layernorm" in mods:
        save = save + module_norms(m, mods, moe) * lin_in / u_div
    if "mla_up_proj" in mods and m.is_mla:
        save = save + 2.0 * (q_units + m.heads * (m.head_dim + v_dim) / m.hidden) / tp
    if not moe:
        if "mlp" in mods:
            save = save + lin_in / u_div + mlp_units / tp
        return save
    if "moe" in mods:
        return save + lin_in / u_div + mlp_units / tp + routed * etp / tp
    if "shared_experts" in mods and m.shared_experts:
        f = m.shared_experts * m.moe_ffn / m.hidden
        save = save + ((6.0 if m.gated_mlp else 4.0) - (2.0 - lin_in)) * f / tp
    if "moe_act" in mods:
        save = save + lin_in * m.experts_per_token * m.moe_ffn / m.hidden / tp
    return save

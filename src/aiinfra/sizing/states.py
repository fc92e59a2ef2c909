"""Model states per GPU: weights, gradients and optimizer states under ZeRO / the distributed optimizer
(Rajbhandari et al. SC'20 Fig. 1; Megatron-LM's 18 bytes per parameter), and each pipeline stage's share of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aiinfra.errors import SpecError
from aiinfra.explain import Term
from aiinfra.sizing.dtypes import nbytes
from aiinfra.sizing.offload import OptimizerOffload, offload_code, optimizer_offload
from aiinfra.sizing.params import ParamCounts
from aiinfra.specs import ModelSpec

OPTIMIZER_STATE_BYTES = {"adam": 8.0, "adamw": 8.0, "adam8bit": 2.0, "sgd": 4.0, "none": 0.0}
GRAD_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp32": 4.0, "bf16+fp32": 6.0}

SRC_ZERO = "Rajbhandari et al. 2020 (ZeRO) Fig. 1: stage 1 shards optimizer states, 2 adds gradients, 3 adds weights over N_d"
SRC_MEGATRON = "Megatron-LM theoretical_memory_usage.py / issue #654: 2 B weights + 4 B fp32 grads + 4 B master + 8 B Adam"
SRC_OPT = {
    "adam": "Adam m and v in fp32: 2 × 4 B",
    "adamw": "AdamW m and v in fp32: 2 × 4 B",
    "adam8bit": "8-bit Adam (Dettmers et al. 2022): m and v at 1 B each",
    "sgd": "SGD with momentum: one fp32 buffer, 4 B",
    "none": "no optimizer state",
}
SRC_ZERO3_BUF = "DeepSpeed ZeRO-3 estimator: 4 × largest layer (16-bit params + grads gathered)"


def model_states(
    params_ne: Any,
    params_e: Any = 0.0,
    *,
    dp_shards: Any = 1,
    ep: Any = 1,
    zero: Any = 0,
    precision: str = "bf16",
    optimizer: str = "adam",
    grad_dtype: str | None = None,
    offload: str = "none",
    quantized_params: bool = False,
    optimizer_offload_rule: OptimizerOffload | None = None,
) -> tuple[Term, Term, Term]:
    """Weights, gradients and optimizer bytes on one GPU for Ψ parameters held there.

    params_ne: non-expert parameters on this GPU (sharded by ZeRO over dp_shards);
    params_e: routed-expert parameters on this GPU (sharded over the expert-data group dp_shards/ep).
    optimizer_offload_rule: what the stack's optimizer offload (offload bit 1) moves to the host (sizing.offload
    optimizer_offload; None: megatron-core's, which keeps the gradients and the weights on the GPU).
    """
    # FP8/FP4 training keeps 16-bit model weights; Transformer Engine also caches each weight's quantized copy and
    # its transpose across the micro-batches of a step: FP8 weights cost 2 + 2·1 B, NVFP4 ones 2 + 2·0.5625 B.
    if precision not in ("fp32", "bf16", "fp16", "fp8", "fp4"):
        raise SpecError(f"training precision must be fp32, bf16, fp16, fp8 or fp4, not {precision}")
    # Quantized parameters (Megatron --fp8-param-gather / --fp4-param-gather, NeMo fp8_params): the weight itself is
    # the quantized copy and its transpose, with no 16-bit copy beside it; the fp32 master stays in the optimizer.
    if quantized_params and precision not in QUANTIZED_BYTES:
        raise SpecError(f"quantized parameters need FP8 or FP4 training; the precision is {precision}")
    if precision in QUANTIZED_BYTES:
        w = (0.0 if quantized_params else 2.0) + 2 * QUANTIZED_BYTES[precision]
    else:
        w = nbytes(precision, "precision")
    grad_dtype = grad_dtype or "fp32"  # fp32 grads: Megatron's main_grad; fp32 training has nothing else
    if grad_dtype not in GRAD_BYTES:
        raise SpecError(f"unknown gradient dtype '{grad_dtype}'; choose one of {', '.join(GRAD_BYTES)}")
    if optimizer not in OPTIMIZER_STATE_BYTES:
        raise SpecError(f"unknown optimizer '{optimizer}'; choose one of {', '.join(OPTIMIZER_STATE_BYTES)}")
    code = np.asarray(offload_code(offload))
    g = GRAD_BYTES[grad_dtype]
    master = 0.0 if precision == "fp32" else 4.0
    opt = OPTIMIZER_STATE_BYTES[optimizer]
    zero = np.asarray(zero)
    d = np.asarray(dp_shards, dtype=float)
    d_e = np.maximum(d / np.asarray(ep, dtype=float), 1.0)

    def sharded(stage: int) -> Any:
        on = zero >= stage
        return params_ne / np.where(on, d, 1.0) + params_e / np.where(on, d_e, 1.0)

    rule = optimizer_offload_rule or optimizer_offload("megatron-core")
    opt_off = (code & 1) > 0
    shard_w, shard_g, shard_o = sharded(3), sharded(2), sharded(1)
    # weights streamed from host (bit 2) leave none resident; a stack whose optimizer offload moves the weight shard
    # too (FSDP2's CPUOffloadPolicy) leaves none under ZeRO-3, while the layers gathered for compute stay
    w_host = (code & 2) > 0
    if "weights" in rule.host:
        w_host = w_host | (opt_off & (zero >= 3))
    weights_v = w * shard_w * np.where(w_host, 0.0, 1.0)
    grads_v = g * shard_g * np.where(opt_off & ("gradients" in rule.host), 0.0, 1.0)
    opt_v = (master + opt) * shard_o * np.where(opt_off, 0.0, 1.0)
    off_src = {"optimizer offload": f"{rule.phrase()} (stacks.yaml optimizer_offload)"} if np.any(opt_off) else {}
    inputs = {"Ψ_local": params_ne, "Ψ_expert_local": params_e, "N_d": dp_shards, "zero": zero}
    if quantized_params:
        w_src = (f"{precision} parameters (Megatron --{precision}-param-gather): the quantized weight and its "
                 f"transpose {w:g} B, no 16-bit copy")
    elif precision in QUANTIZED_BYTES:
        w_src = (f"{precision} training: bf16 weights 2 B + cached quantized copy and transpose {w - 2:g} B "
                 "(Transformer Engine Float8Tensor / NVFP4Tensor caching)")
    else:
        w_src = f"{precision} = {w:g} B"
    weights = Term(
        "weights", weights_v, "B", "bytes_w · Ψ / (N_d if zero ≥ 3)",
        {**inputs, "bytes_w": w, "offload": offload},
        {"bytes_w": w_src, "sharding": SRC_ZERO, **(off_src if "weights" in rule.host else {})},
    )
    grads = Term(
        "gradients", grads_v, "B", "bytes_g · Ψ / (N_d if zero ≥ 2)",
        {**inputs, "bytes_g": g, "offload": offload},
        {"bytes_g": f"{grad_dtype} gradients = {g:g} B (fp32 main grads as Megatron keeps them)", "sharding": SRC_ZERO,
         **off_src},
    )
    optim = Term(
        "optimizer", opt_v, "B", "(master + state) · Ψ / (N_d if zero ≥ 1)",
        {**inputs, "master": master, "state": opt, "offload": offload},
        {"master": "fp32 master weights in mixed precision: 4 B" if master else "fp32 training: no master copy",
         "state": SRC_OPT[optimizer], "sharding": SRC_ZERO,
         **({k: v[:-1] + (f": {rule.source})" if rule.source else ")") for k, v in off_src.items()})},
    )
    return weights, grads, optim


def zero3_gather_buffer(largest_layer_params: Any, tp: Any = 1) -> Term:
    """ZeRO-3 gathers the largest layer's 16-bit params and grads whole: 4 B per parameter."""
    value = 4.0 * np.asarray(largest_layer_params, dtype=float) / np.asarray(tp, dtype=float)
    return Term("zero-3 gather buffer", value, "B", "4 · largest_layer / t",
                {"largest_layer": largest_layer_params, "t": tp}, {"formula": SRC_ZERO3_BUF})


@dataclass
class StageParams:
    """Parameters on one GPU of a pipeline stage, split by how ZeRO shards them."""

    non_expert: Any
    expert: Any
    layers: Any
    moe_layers: Any


def stage_params(counts: ParamCounts, m: ModelSpec, tp: Any, pp: Any, ep: Any, stage: str,
                 layers: Any = None, etp: Any = None, mtp: int = 0) -> StageParams:
    """Most-loaded GPU of the `first`, a `middle` or the `last` pipeline stage (pp = 1: one stage holds all).

    `layers`: transformer layers on that GPU (default ⌈L/pp⌉).

    Attention, dense MLP and shared experts shard over TP; routed experts over EP × ETP (expert tensor
    parallel: Megatron's default ETP = TP, or 1 when EP is folded over the TP ranks); norms and routers
    replicate.
    The embedding is vocab-parallel on the first stage; the last stage holds the LM head (a
    copy of the tied embedding when pp > 1) and the final norm, and with `mtp` MTP layers (counted in `layers`) their
    h×2h projections; they share the embedding and the head (Megatron's MultiTokenPredictionBlock).
    """
    tp = np.asarray(tp, dtype=float)
    pp = np.asarray(pp, dtype=float)
    ep = np.asarray(ep, dtype=float)
    layers = np.ceil(m.layers / pp) if layers is None else np.asarray(layers, dtype=float)
    moe_layers = (np.minimum(layers, np.ceil(m.moe_layers / m.layers * layers)) if m.is_moe
                  else np.zeros_like(layers))
    dense_layers = layers - moe_layers
    d, e = counts.dense_layer, counts.moe_layer
    ne = dense_layers * ((d.attention + d.mlp) / tp + d.replicated)
    ex = np.zeros_like(ne)
    if e is not None:
        ne = ne + moe_layers * ((e.attention + e.shared) / tp + e.replicated)
        ex = moe_layers * e.experts / (ep * (tp if etp is None else np.asarray(etp, dtype=float)))
    single = pp == 1
    emb = counts.embedding / tp
    head_own = counts.lm_head / tp
    head_last = (counts.lm_head or m.vocab * m.hidden) / tp  # tied models keep a copy on the last stage
    if stage == "first":
        extra = emb + np.where(single, head_own + counts.final_norm, 0.0)
    elif stage == "middle":
        extra = np.where(single, emb + head_own + counts.final_norm, 0.0)
    else:
        extra = np.where(single, emb + head_own, head_last) + counts.final_norm
    if mtp and stage != "middle":
        proj = mtp * 2.0 * m.hidden * m.hidden / tp
        extra = extra + (proj if stage == "last" else np.where(single, proj, 0.0))
    return StageParams(ne + extra, ex, layers, moe_layers)


# Bytes per element of a quantized copy Transformer Engine keeps: FP8 1 B; NVFP4 4 bits plus one E4M3 scale per
# 16-element block (TE NVFP4Tensor: packed uint8 data and an FP8 scale_inv per block, per copy).
QUANTIZED_BYTES = {"fp8": 1.0, "fp4": 0.5 + 1.0 / 16}


def check_quantized_params(dtype: str, zero_ok: bool, optimizer_offload: bool, *, dtype_flag: str = "--dtype",
                           zero_fix: str = "add 1, 2 or 3 to --zero", offload_fix: str = "") -> None:
    """One line naming what Megatron refuses beside quantized parameters (--fp8-param-gather / --fp4-param-gather,
    arguments.py at d98e8a6): a dtype other than FP8/FP4; plain DDP, where it needs the distributed optimizer or
    FSDP (`zero_ok`: ZeRO 1-3 is possible); optimizer CPU offload, which it runs only under delayed FP8 scaling, and
    the planner's FP8 is current scaling. `dtype_flag`, `zero_fix` and `offload_fix` word the fix for the caller."""
    if dtype not in QUANTIZED_BYTES:
        raise SpecError(f"--quantized-params keeps the weights in FP8 or FP4; {dtype_flag} is {dtype}")
    if not zero_ok:
        raise SpecError(f"--quantized-params needs the distributed optimizer or FSDP (Megatron refuses it with plain "
                        f"DDP): {zero_fix}")
    if optimizer_offload:
        raise SpecError("--quantized-params runs no optimizer offload (Megatron: only with delayed FP8 scaling, which "
                        "the planner does not model)" + (f": {offload_fix}" if offload_fix else ""))

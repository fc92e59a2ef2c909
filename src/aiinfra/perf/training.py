"""Training step time for a parallel layout, vectorized over layouts, from the kernels a framework runs.

Per micro-batch and layer, on one GPU (tokens T = mb·s/cp; GEMM shapes after TP/SP/CP/EP):
- GEMMs: QKV [T × (q+2kv)/t × h], attention-out [T × h × q/t], MLP up+gate [T × 2f/t × h] and down
  [T × h × f/t]; MoE: E/ep local experts each at T·k·ep/E tokens, shared experts as a dense MLP;
  the last stage adds the LM head [T × V/t × h]. Each runs forward once and backward twice (dgrad,
  wgrad), plus once more with full recompute, at the dense peak of its dtype × the kernel table's
  plateau for the GPU architecture × a size curve (perf.compute.gemm_time, catalog kernels.yaml), and no
  faster than its HBM traffic (gemm_bytes). A stack that keeps Q, K, V and the MLP's gate and up as separate
  linears (stacks.yaml separate_projections: torchtitan) runs each as its own GEMM over the shared input, and
  sums their input gradients in one more memory-bound pass;
  Where the stack overlaps TP chunk by chunk (userbuffers ring exchange) the forward and row-parallel
  dgrad GEMMs run as tp GEMMs of T/tp rows. Selective recompute follows the stack's policy (Megatron:
  core attention; torchtitan: every second matmul and every elementwise op).
  FP8/FP4 apply to these linear GEMMs only, with the cast/amax traffic charged at HBM bandwidth;
- attention: flash attention in BF16, forward 2·T·S·n_q/t·(d_qk + d_v) FLOPs with S = s/2 for
  causal masks, backward 2.5× forward, at the kernel table's flash-attention efficiencies for the stack's
  kernel route (stacks.yaml attention_kernel: cuDNN fused attention, FlashAttention-2 or -3), read at the
  sequence each GPU's kernel calls see (s/cp) where kernels.yaml measures them by length; with CP, each ring
  step's output merge and gradient accumulation outside the kernel, at the stack's bytes (stacks.yaml cp_ring);
- elementwise: Korthikanti Table 2 activation bytes × 2 / HBM bandwidth (norms, SwiGLU, residuals); with
  sequence parallelism all of it is split over the TP ranks, without it the LayerNorm, dropout and residual
  share (10·h of the 34·h bytes per token) runs on every TP rank (Korthikanti Table 2 / §4.2.2);
- TP: 4 all-reduce equivalents of the micro-batch's activations per layer (+2 with full recompute),
  blocking, or hidden under the GEMMs when the software stack overlaps them; chunked (userbuffers), each
  all-gather / reduce-scatter hides only under the GEMM it is paired with; CP: the K,V ring (cp−1 steps, forward and
  twice backward) hidden under attention when overlapped; EP: 4 all-to-alls per MoE layer (every routed copy with
  Megatron's alltoall dispatcher; once per destination node and rank with DeepEP / Hybrid-EP); with Megatron's EP
  overlap, paired phase by phase with another micro-batch's attention block and expert GEMMs (combined 1F1B),
  except in the schedule's unpaired warm-up and cool-down passes;
- pipeline: stages are uneven (sizing.pipeline.pipeline_layers: the first and last stage lighter, and
  where the LM head weighs half a layer or more the embedding and loss take a layer's slot each; the
  last stage also runs the LM head and loss); the slowest stage sets the pace, each micro-batch
  exchanges 2·v activations with its neighbours (one more exchange per virtual stage, blocking
  unless the stack overlaps p2p), and the bubble is (p−1)/v stage-times (Narayanan et al. 2021 §2.2);
- DP: gradient reduce (ZeRO/distributed optimizer: reduce-scatter + parameter all-gather, same
  bytes; ZeRO-3 gathers parameters every micro-batch) over dp·cp ranks, hidden under the last
  backward / first forward when the stack overlaps them; then the optimizer step, memory-bound over
  the GPU's optimizer shard (≈ 30 B read + written per parameter for mixed-precision Adam).
One fitted number remains (catalog calibrations.training.framework_efficiency): the share of time
compute kernels actually run end to end (launch gaps, data loading, host syncs, GEMMs below their best-shape
kernel figure), fitted per architecture family where published end-to-end rows exist for it (Hopper: its own
fit on four H100/H200 sources) and on Narayanan Table 1 (A100) for every other family; exposed communication
is NCCL wall time and is not divided by it. Placement follows Megatron's rank order TP → CP → EP/DP → PP inside the scale-up domain.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np

from aiinfra.catalog.loader import default_catalog, is_share
from aiinfra.errors import AiinfraError, SpecError
from aiinfra.explain import Number, Term, total
from aiinfra.perf import comm, compute
from aiinfra.perf.flops import (TrainingFlops, attended_positions, every_second_linear_fraction,
                                module_recompute_fraction, recompute_code, training_flops)
from aiinfra.perf.host import layer_modules, recomputed_modules
from aiinfra.perf.stacks import CE_DEFAULT_SOURCE, OPT_BYTES, OPT_DEFAULT_SOURCE, Stack, stack
from aiinfra.sizing.activations import attention_width_units, layer_activation_bytes, module_norms, saved_input_bytes
from aiinfra.sizing.dtypes import nbytes
from aiinfra.sizing.offload import offload_code
from aiinfra.sizing.params import attention_params, every_second_linear, linear_order, param_counts
from aiinfra.sizing.pipeline import interleave_group, pipeline_edge_slots, stage_layers
from aiinfra.sizing.recompute import module_policy, policy_modules
from aiinfra.sizing.states import QUANTIZED_BYTES
from aiinfra.specs import LINEAR_DTYPES, GpuSpec, ModelSpec, arch_family

SRC_BUBBLE = "Narayanan et al. 2021 §2.2: bubble fraction (p−1)/(v·m) for the interleaved 1F1B schedule"
SRC_TP = "Shoeybi et al. 2019 / Narayanan et al. 2021 §3: 2 all-reduces forward + 2 backward per layer"
ACT_BYTES = 2  # bf16/fp16 activations and gradients on the wire


@dataclass
class TrainingPerf:
    """Step time and derived rates for one or many layouts (array-valued Terms)."""

    step: Term
    flops: TrainingFlops
    gpus: Number
    tokens_per_s: Term
    tflops_per_gpu: Term
    mfu: Term
    hfu: Term
    microbatches: Number
    mfu_full: Term | None = None

    def time_to_train(self, tokens: float, price_per_gpu_hour: float | None = None) -> list[Term]:
        """Days for a token budget, GPU-hours, and cost when a $/GPU-hour is given."""
        secs = tokens / np.asarray(self.tokens_per_s.value)
        days = Term("time to train", _s(secs / 86400), "days", "token budget / tokens per second",
                    {"tokens": tokens, "tokens/s": self.tokens_per_s})
        gpu_h = Term("GPU-hours", _s(secs / 3600 * np.asarray(self.gpus)), "GPU·h", "GPUs × time to train",
                     {"GPUs": self.gpus, "time": days})
        out = [days, gpu_h]
        if price_per_gpu_hour is not None:
            out.append(Term("cost", _s(gpu_h.value * price_per_gpu_hour), "USD", "GPU-hours × price",
                            {"GPU-hours": gpu_h, "$/GPU-hour": price_per_gpu_hour}))
        return out


def _a(x) -> np.ndarray:
    return np.asarray(x)


FP8_TRANSPOSE_BYTES = 2.0  # an FP8 transpose reads 1 B and writes 1 B per element
FP8_ROW_AND_COLUMN_BYTES = 6.0  # amax read (2 B) + one fused cast-transpose: read 2 B, write rowwise 1 B + columnwise 1 B
def _fp8_cast_elements(M, N, K, role: str, sp_tp, tp, casts: str, cast_bytes: float, gather: bool = False):
    """(input, output-gradient) cast traffic of one linear GEMM, in elements at cast_bytes each.
    Separate casts (absent): the input twice (forward GEMM, weight gradient) and the output gradient once.
    Transformer Engine (te): each operand once as rowwise + columnwise FP8 (an amax pass, then one fused
    cast-transpose); an operand that sequence parallelism all-gathers (a column-parallel input, a row-parallel
    output gradient) is quantized on its T/tp shard before the gather and its gathered FP8 copy transposed for
    the weight gradient (module/linear.py "Cast local input tensor if needed" before gather_along_first_dim;
    distributed.py _all_gather_fp8 cannot gather the transposed data). Separate casts that gather in FP8
    (`gather`: torchao's Float8ColwiseParallel / Float8RowwiseParallel) cast the gathered operand once on its
    shard, and its gathered FP8 copy serves both GEMMs, transposed for the weight gradient."""

    def gathered(rows, cols):
        return rows / tp * cols + FP8_TRANSPOSE_BYTES / cast_bytes * rows * cols

    if casts != "te":
        if not gather:
            return 2 * M * K, M * N
        ink = np.where(sp_tp, gathered(M, K), 2 * M * K) if role == "col" else 2 * M * K
        gout = np.where(sp_tp, gathered(M, N), M * N) if role == "row" else M * N
        return ink, gout
    both = FP8_ROW_AND_COLUMN_BYTES / cast_bytes

    ink = np.where(sp_tp, gathered(M, K), both * M * K) if role == "col" else both * M * K
    gout = np.where(sp_tp, gathered(M, N), both * M * N) if role == "row" else both * M * N
    return ink, gout


def framework_efficiency(gpu: GpuSpec | None = None, name: str = "training") -> tuple[float, str]:
    """(value, the rows it was fitted on) for `gpu`'s architecture family: its own fit where the catalog has one
    (framework_efficiency_by_architecture; a variant's own entry, such as blackwell-ultra, before its family's),
    else the default fit (Narayanan Table 1, A100)."""
    arch = (gpu.architecture or "").lower() if gpu is not None else ""
    fitted = fitted_architectures(name)
    own = fitted.get(arch) or fitted.get(arch_family(arch))
    if own is not None:
        return own
    _, e = default_catalog().entry("calibrations", name)
    return _share(name, "framework_efficiency", e.get("framework_efficiency", 1.0)), e.get("fit", e.get("source", ""))


def fitted_architectures(name: str = "training") -> dict[str, tuple[float, str]]:
    """{architecture family: (framework efficiency, its fit)} for the families with their own end-to-end fit."""
    _, e = default_catalog().entry("calibrations", name)
    by_arch = e.get("framework_efficiency_by_architecture") or {}
    if not isinstance(by_arch, dict) or any(not isinstance(v, dict) or set(v) != {"value", "fit"} or not v["fit"]
                                            for v in by_arch.values()):
        raise AiinfraError(f"calibration '{name}': framework_efficiency_by_architecture maps each architecture "
                           f"family to {{value, fit}}, got {by_arch!r}")
    return {k: (_share(name, f"framework_efficiency_by_architecture.{k}", v["value"]), str(v["fit"]))
            for k, v in by_arch.items()}


def _share(name: str, field: str, raw) -> float:
    """A fitted share of the time kernels run: a number in (0, 1]; anything else is refused in one line, since a
    value above 1 would plan above the kernels' own measured rate."""
    if not is_share(raw):
        raise AiinfraError(f"calibration '{name}': {field} must be a fraction in (0, 1], got {raw!r}")
    return float(raw)


def ep_unpaired_share(M, pp, vp, group=None):
    """The share of a step's MoE all-to-alls that Megatron's EP overlap (--overlap-moe-expert-parallel-comm, the
    combined 1F1B schedule) cannot pair with another micro-batch's compute. Without PP it runs the first forward alone
    and the last backward alone: 1 of M micro-batches' all-to-alls. With interleaved PP every rank runs
    (vp − 1)·G + 1 warm-up model-chunk forwards before its first backward, and as many cool-down backwards after its
    last forward (Megatron-LM pipeline_parallel/schedules.py get_pp_rank_microbatches at d98e8a6, one more than the
    plain interleaved warm-up under this overlap; the 2·(pp − rank − 1) more of the earlier ranks fill the bubble),
    out of M·vp chunks; G, the micro-batch group (microbatch_group_size_per_vp_stage), is pp unless given."""
    M, pp, vp = (np.asarray(x, dtype=float) for x in (M, pp, vp))
    g = pp if group is None else np.asarray(group, dtype=float)
    return np.minimum(1.0, np.where(pp > 1, ((vp - 1) * g + 1) / (M * vp), 1.0 / M))


def _ep_overlap_exposed(a2a, gemms: dict, g_layer, extra, att_fwd, att_back, sm_fraction):
    """All-to-all time left exposed per MoE layer and paired micro-batch under Megatron's combined 1F1B
    (models/common/model_chunk_schedule_plan.py TransformerLayerSchedulePlan.run at d98e8a6), whose three phases end
    together on both streams:
      comm: combine_bwd       | dispatch_fwd → dispatch_bwd        | combine_fwd
      comp: pre_dispatch_fwd  | mlp_bwd → mlp_bwd_dw → mlp_fwd      | pre_dispatch_bwd
    pre_dispatch is the attention block with the shared experts and the router; mlp the routed experts (dispatch_bwd
    waits for their dgrad, their forward for dispatch_fwd). `gemms`: gemm_part's routed-expert passes (fwd, dgrad,
    wgrad) and the other GEMMs' forward; `extra` (casts, elementwise) is shared out in proportion to GEMM time. What
    runs under compute still costs the communication kernels' SM share."""
    f_e, d_e, w_e = gemms["expert"]
    scale = 1 + extra / np.maximum(g_layer, 1e-30)
    f_e, d_e, w_e = f_e * scale, d_e * scale, w_e * scale
    other_f = gemms["other_fwd"] * scale
    other_b = np.maximum(g_layer * scale - f_e - d_e - w_e - other_f, 0.0)
    pre_f, pre_b = other_f + att_fwd, other_b + att_back
    mlp = np.maximum(np.maximum(a2a, d_e) + a2a, np.maximum(d_e + w_e, a2a) + f_e)
    exposed = (np.maximum(a2a, pre_f) - pre_f) + (mlp - d_e - w_e - f_e) + (np.maximum(a2a, pre_b) - pre_b)
    return exposed + sm_fraction * np.maximum(4 * a2a - exposed, 0.0)


def mla_rope_bytes(m: ModelSpec) -> float:
    """HBM bytes per token and layer of Megatron's fused MLA RoPE forward (fusions/fused_mla_yarn_rope_apply.py at
    d98e8a6): in place on Q's RoPE slice (read and written, 4·n·d_rope), and the K/V split, which reads the
    up-projected n·(d_nope + d_v) and writes K (n·d_qk) and V (n·d_v) at 2 B per element. 0 for other attention."""
    if not m.is_mla:
        return 0.0
    n = m.heads
    return 4.0 * n * m.qk_rope_dim + 2.0 * n * (m.qk_nope_dim + m.v_head_dim) + 2.0 * n * (m.head_dim + m.v_head_dim)


def _layer_gemms(m: ModelSpec, T, tp, ep, moe: bool, etp=None, separate: bool = False) -> list[tuple]:
    """(M, N, K, count, role, pieces) of the forward GEMMs one GPU runs for one layer and micro-batch. role: "col"
    (column-parallel, fed by a TP all-gather), "row" (row-parallel, feeding a reduce-scatter), "local" (no TP
    collective: the router) or "expert" (a routed expert's, fed and drained by the EP all-to-all). pieces:
    the shares of N that run as GEMMs of their own over the same input, () for one GEMM: with `separate` (stacks.yaml
    separate_projections) Q, K and V, and the MLP's gate and up projections, are separate linears."""
    h = m.hidden
    if m.is_mla:
        w_attn = attention_params(m)
        out = [(T, w_attn / h / tp, h, 1, "col", ())]
    else:
        q, kv = m.heads * m.head_dim, m.kv_heads * m.head_dim
        qkv = tuple(x / (q + 2 * kv) for x in (q, kv, kv)) if separate else ()
        out = [(T, (q + 2 * kv) / tp, h, 1, "col", qkv), (T, h, q / tp, 1, "row", ())]
    up = 2 if m.gated_mlp else 1
    fc1 = (0.5, 0.5) if separate and up == 2 else ()
    if not moe:
        return out + [(T, up * m.ffn / tp, h, 1, "col", fc1), (T, h, m.ffn / tp, 1, "row", ())]
    # experts split over ETP ranks (ETP = TP: every TP rank sees all T tokens; ETP = 1: each rank routes its own
    # T/tp sequence-parallel tokens and keeps whole experts)
    etp = tp if etp is None else etp
    local = m.experts / ep
    T_e = T * etp / tp * m.experts_per_token * ep / m.experts
    out += [(T_e, up * m.moe_ffn / etp, h, local, "expert", ()), (T_e, h, m.moe_ffn / etp, local, "expert", ()),
            (T, m.experts, h, 1, "local", ())]
    if m.shared_experts:
        f = m.shared_experts * m.moe_ffn
        out += [(T, up * f / tp, h, 1, "col", fc1), (T, h, f / tp, 1, "row", ())]
    return out


def _col_recomputed_shares(m: ModelSpec, moe: bool) -> list[tuple[float, ...]]:
    """Per column-parallel GEMM group of _layer_gemms (the attention's input projections, then the first MLP linear
    of a dense layer or of the shared experts): the output-width shares of its linears that torchtitan's op-level
    selective recompute runs again (sizing.params.every_second_linear), one per recomputed linear."""
    order = linear_order(m, moe)
    width = {name: n for name, _, n, _ in order}
    again = dict(zip(width, every_second_linear(m, moe)))
    prefix = "shared " if moe else ""
    groups = [("attention projections",) if m.is_mla else ("wq", "wk", "wv"),
              (f"{prefix}w1", f"{prefix}w3") if m.gated_mlp else (f"{prefix}fc1",)]
    out = []
    for names in groups:
        names = [n for n in names if n in width]
        whole = sum(width[n] for n in names) or 1.0
        out.append(tuple(width[n] / whole for n in names if again[n]))
    return out


def gemm_bytes(M, N, K, dtype: str) -> tuple:
    """HBM bytes of one linear layer's forward, input-gradient and weight-gradient GEMMs: each reads its two
    operands (at the linear dtype's width) and writes a 16-bit result. forward X[M,K]·W[K,N] → Y[M,N];
    dgrad dY[M,N]·Wᵀ → dX[M,K]; wgrad Xᵀ·dY → dW[K,N]."""
    b = nbytes(dtype)
    M, N, K = (np.asarray(x, dtype=float) for x in (M, N, K))
    return ((M * K + K * N) * b + M * N * ACT_BYTES, (M * N + K * N) * b + M * K * ACT_BYTES,
            (M * K + M * N) * b + K * N * ACT_BYTES)


def step_time(
    m: ModelSpec,
    gpu: GpuSpec,
    *,
    tp: Number = 1,
    pp: Number = 1,
    dp: Number = 1,
    cp: Number = 1,
    ep: Number = 1,
    micro_batch: Number = 1,
    vp: Number = 1,
    recompute="none",
    zero: Number = 0,
    global_batch: Number,
    seq: Number,
    dtype: str = "bf16",
    flash_attention: bool = True,
    causal: bool = True,
    overlap_dp: bool = True,
    node: comm.Node | None = None,
    software: str | Stack = "megatron-core",
    cal: compute.TrainingCalibration | None = None,
    framework_eff: float | None = None,
    offload: Number | str = 0,
    step_only: bool = False,
    recompute_fraction: Number = 1.0,
    tp_overlap: Number | None = None,
    grad_reduce: str | None = None,
    etp: Number | None = None,
    ep_overlap: bool = False,
    pipeline_split: str = "auto",
    sp: Number | bool = True,
    moe_dispatcher: str = "alltoall",
    moe_module_ms: float | None = None,
    moe_stall_ms: float | None = None,
    offload_fraction: Number = 1.0,
    recompute_modules: tuple[str, ...] = (),
    mtp: bool = True,
    cuda_graph_scope: tuple[str, ...] = (),
    quantized_params: bool = False,
) -> TrainingPerf | np.ndarray:
    """Step time of training `m` on `gpu` with the given layout (scalars or broadcastable arrays).

    `global_batch` counts sequences of `seq` tokens; micro_batch is per DP rank. `dtype` is the
    linear layers' dtype (bf16/fp16/fp8/fp4); attention and norms stay 16-bit. `overlap_dp=False`
    charges every DP collective in full whatever the stack does. `tp_overlap` (0 blocking, 1 overlapped chunk
    by chunk; arrays allowed) overrides the stack's default TP mode (its `overlap.tp`). `grad_reduce` ("fp32" |
    "bf16") is the dtype gradients are reduced in; None: fp32 for bf16-based training, fp16 for fp16. `etp` is
    the experts' tensor-parallel size: TP (None, Megatron's default) or 1 (EP folded over the TP ranks).
    `ep_overlap`: the MoE all-to-all runs under another micro-batch's compute (Megatron
    --overlap-moe-expert-parallel-comm, the combined 1F1B schedule); it then costs what outlasts the compute it is
    paired with (_ep_overlap_exposed) plus the communication kernels' SM share, and its time in full in the passes the
    schedule cannot pair (ep_unpaired_share).
    `pipeline_split` ("auto" | "even" | "account"): whether the embedding and loss take a pipeline slot
    (sizing.pipeline.pipeline_edge_slots); or a Megatron pipeline layout string ("Et|(tt|)*30mL",
    sizing.pipeline_layout), whose per-GPU layer counts then set the stages (its stage count must be pp·vp). `sp` (arrays allowed): sequence parallelism on (default) or off; off,
    the LayerNorms, dropouts and residual adds run on all tokens on every TP rank and TP communication cannot be
    overlapped chunk by chunk (Megatron-LM requires --sequence-parallel for --tp-comm-overlap). The TP bytes are the
    same either way (an all-reduce = a reduce-scatter + an all-gather; Korthikanti et al. 2022 §4.2.2).
    `moe_dispatcher`: the MoE token dispatcher, one the stack offers (stacks.yaml moe_dispatchers): alltoall (Megatron's
    default: every routed (token, expert) copy in one all-to-all) or deepep / hybridep (Megatron's flex dispatcher: a
    token once per destination node over the NICs, once per destination rank inside it; comm.relayed_all_to_all).
    `moe_module_ms` / `moe_stall_ms` override the stack's host time per linear module of a MoE layer and micro-batch
    and its stall after each forward sync (stacks.yaml moe_host).
    `offload_fraction` (arrays allowed): with activations offloaded (offload bit 4), the share of each stage's layers
    whose activations go to the host, the first ones (Megatron --cpu-offloading-num-layers over the layers); 1: all.
    `recompute_modules`: what selective recompute repeats, as Megatron-core's recompute_modules names it
    (sizing.recompute.RECOMPUTE_MODULES); () keeps the stack's own selective policy.
    `mtp`: train the model's multi-token-prediction layers (config num_nextn_predict_layers, DeepSeek-V3's one),
    as Megatron --mtp-num-layers does: each a transformer layer, an h×2h projection and the LM head and loss once
    more, with the loss on the last pipeline stage.
    `cuda_graph_scope`: Megatron's per-layer CUDA graphs (--cuda-graph-scope: attn, mlp, moe_router,
    moe_preprocess; perf.host), whose modules the host no longer issues one by one; () runs eagerly.
    `quantized_params`: the weights are kept in the FP8/FP4 training dtype, so the DP parameter all-gather moves 1 B
    (FP8) or 0.5625 B (NVFP4, with its scales) per parameter instead of 2 (Megatron --fp8-param-gather /
    --fp4-param-gather, NeMo fp8_params); the gradient reduce-scatter is unchanged.
    """
    w = _Work(**locals())  # the arguments; each section below adds what it computes
    _normalise(w)
    _tp_collectives(w)
    _linear_layers(w)
    _attention(w)
    _memory_bound(w)
    _tp_time(w)
    _cp_time(w)
    _ep_time(w)
    _layer_time(w)
    _moe_host_time(w)
    _pipeline(w)
    _compute_terms(w)
    _dp_and_optimizer(w)
    _offload(w)
    return _result(w)


class _Work(SimpleNamespace):
    """step_time's working values: its arguments, then what each section adds (per layer and micro-batch unless
    the name says otherwise). The sections run in order, each reading only what the arguments and the sections
    before it set, so a section's first lines list its inputs and its last line what it passes on."""


def _normalise(w: _Work) -> None:
    """The call's inputs as arrays, the stack, kernel table and framework efficiency, and the counts every part uses."""
    node, gpu, software, recompute_modules = w.node, w.gpu, w.software, w.recompute_modules
    moe_dispatcher, framework_eff, tp, pp, dp, cp = w.moe_dispatcher, w.framework_eff, w.tp, w.pp, w.dp, w.cp
    ep, micro_batch, vp, zero, etp, sp, recompute = w.ep, w.micro_batch, w.vp, w.zero, w.etp, w.sp, w.recompute
    global_batch, seq, m, mtp, causal = w.global_batch, w.seq, w.m, w.mtp, w.causal
    recompute_fraction, dtype, quantized_params = w.recompute_fraction, w.dtype, w.quantized_params

    node = node or comm.node_for(gpu)
    stk = software if isinstance(software, Stack) else stack(software)
    if recompute_modules:
        stk = replace(stk, selective=module_policy(stk.key, tuple(recompute_modules)))
    mods = policy_modules(stk.selective)
    dispatch = dict(stk.moe_dispatchers).get(moe_dispatcher)
    if dispatch is None:
        raise AiinfraError(f"unknown MoE dispatcher {moe_dispatcher!r} for stack {stk.key}; "
                           f"choose one of {', '.join(d for d, _ in stk.moe_dispatchers)}")
    kt = compute.kernel_table(gpu)
    fw, fw_src = framework_efficiency(gpu)
    if framework_eff is not None:
        fw, fw_src = float(framework_eff), "given by the caller (leave-one-source-out refit)"
    tp, pp, dp, cp, ep, mb, vp, zero = (_a(x) for x in (tp, pp, dp, cp, ep, micro_batch, vp, zero))
    etp = tp if etp is None else _a(etp)
    sp = _a(sp).astype(bool)
    rc = _a(recompute_code(recompute))
    B, s = _a(global_batch).astype(float), _a(seq).astype(float)
    gpn = node.gpus_per_node
    gpus = tp * pp * dp * cp
    M = B / (dp * mb)  # micro-batches per iteration, per pipeline
    tokens = B * s
    h, L = m.hidden, m.layers
    n_mtp = m.mtp_layers if mtp else 0
    fl = training_flops(m, tokens=tokens, seq=s, recompute=rc, causal=causal, recompute_fraction=recompute_fraction,
                        selective=stk.selective, mtp=mtp)
    half = gpu.half_dtype
    lin = dtype if dtype in LINEAR_DTYPES else half
    if lin == "fp16" and "fp16" not in gpu.tflops:
        lin = half
    if quantized_params and lin not in QUANTIZED_BYTES:
        raise SpecError(f"quantized parameters need FP8 or FP4 linears; the run's are {lin}")
    T = mb * s / cp  # tokens per GPU per micro-batch
    # full recompute of a fraction of each stage's layers (Megatron --recompute-num-layers, block method)
    full = (rc == 2) * _a(recompute_fraction).astype(float)
    sel = (rc == 1)
    # selective recompute: Megatron repeats the core attention; torchtitan's op-level policy repeats every second
    # linear GEMM and every elementwise op, and keeps attention outputs
    sel_attn = sel * ("core_attn" in mods)
    sel_ops = sel * (stk.selective == "every_second_linear")
    passes = 3 + full  # forward, backward (2×), recompute forward

    domain = max(gpu.scaleup_domain or gpn, 1)

    w.node, w.stk, w.mods, w.dispatch, w.kt, w.fw, w.fw_src, w.tp = node, stk, mods, dispatch, kt, fw, fw_src, tp
    w.pp, w.dp, w.cp, w.ep, w.mb, w.vp, w.zero, w.etp, w.sp, w.rc, w.s = pp, dp, cp, ep, mb, vp, zero, etp, sp, rc, s
    w.gpus, w.M, w.tokens, w.h, w.L, w.n_mtp, w.fl, w.half, w.lin = gpus, M, tokens, h, L, n_mtp, fl, half, lin
    w.T, w.full, w.sel, w.sel_attn, w.sel_ops, w.passes, w.domain = T, full, sel, sel_attn, sel_ops, passes, domain


def _tp_collectives(w: _Work) -> None:
    """One TP all-gather / reduce-scatter of a layer's activations, and how the stack overlaps them."""
    tp_overlap, stk, tp, domain, sp, full, T, h = w.tp_overlap, w.stk, w.tp, w.domain, w.sp, w.full, w.T, w.h
    node, lin, sel_ops, etp = w.node, w.lin, w.sel_ops, w.etp

    # Overlapped TP split into chunks (Transformer Engine userbuffers ring exchange): the forward GEMMs and the
    # row-parallel dgrads run as tp GEMMs of T/tp rows each, one per chunk exchanged, and smaller GEMMs are slower.
    tpo = _a(1 if stk.tp else 0) if tp_overlap is None else _a(tp_overlap)
    # userbuffers / symmetric memory need peer access (inside the domain) and sequence parallelism: the chunks are
    # the all-gather and reduce-scatter halves of the all-reduce (Megatron-LM arguments.py: "Tensor parallel
    # communication/GEMM overlap can happen only when sequence parallelism is enabled")
    tp_over = (tpo == 1) & (tp <= domain) & sp
    split = ((tp > 1) & tp_over) if stk.tp_split else False

    # One TP all-gather or reduce-scatter of the layer's T·h activations (half an all-reduce).
    n_tp = 4 + 2 * full  # all-reduce equivalents per layer: 2 forward, 2 backward (+2 recomputed forward)
    ar_tp = comm.hierarchical_all_reduce(T * h * ACT_BYTES, tp, np.minimum(tp, domain), node, "TP all-reduce")
    t_coll = np.where(tp > 1, ar_tp.value / 2, 0.0)
    # FP8 linears in a stack that quantizes before the gather: the all-gathers (a column-parallel input, a
    # row-parallel output gradient) carry 1 B per element (FP4: 0.5 B + one 1 B scale per 16); reduce-scatters
    # stay 16-bit. With sequence parallelism only: without it the collectives are all-reduces of 16-bit outputs.
    gather_b = {"fp8": 1.0, "fp4": 0.5 + 1 / 16}.get(lin, ACT_BYTES) if stk.fp8_gather else ACT_BYTES
    t_ag = t_coll
    if gather_b != ACT_BYTES:
        ag_tp = comm.hierarchical_all_reduce(T * h * gather_b, tp, np.minimum(tp, domain), node, "TP all-gather")
        t_ag = np.where(sp & (tp > 1), ag_tp.value / 2, t_coll)
    t_areq = t_ag + t_coll  # one all-reduce equivalent: an all-gather and a reduce-scatter
    # torchtitan's op-level policy saves reduce-scatter outputs but not all-gather ones
    # (parallelize_llama.py _save_list), so the backward gathers each column-parallel input again
    regather = np.where(sp, sel_ops, 0.0)
    # With whole experts (ETP 1) a MoE layer's MLP has no TP collectives: the all-to-all carries its tokens.
    folded = (etp == 1) & (tp > 1)

    # GEMMs and FP8/FP4 casts, per layer (dense and MoE), forward + backward (+ recompute). With the chunked TP
    # overlap each collective hides only under its own GEMM (Transformer Engine userbuffers pairs them: ring
    # exchange for the forward GEMMs and the row-parallel dgrads, bulk overlap of the column-parallel dgrad and
    # wgrad with the input re-gather and the gradient reduce-scatter), so a small GEMM (QKV, attention output)
    # that finishes before its collective leaves the rest exposed; tp_split collects that per GEMM.
    # Blocking TP with async backward (Megatron-LM LinearWithGradAccumulationAndAsyncCommunication, 2021-09 onwards):
    # the forward collectives block; a column-parallel GEMM's backward issues its dgrad all-reduce (without SP) or
    # reduce-scatter (with SP) under its wgrad GEMM, and with SP first re-gathers its sharded input under its dgrad
    # GEMM; a row-parallel GEMM's backward has no collective without SP and a blocking all-gather of the output
    # gradient with SP. tp_async collects that per GEMM (dense layers).
    async_bwd = stk.tp_backward_async
    sp_tp = (tp > 1) & sp  # operands that sequence parallelism all-gathers across TP ranks (FP8 casts below)

    w.tp_over, w.split, w.n_tp, w.ar_tp, w.t_coll, w.gather_b = tp_over, split, n_tp, ar_tp, t_coll, gather_b
    w.t_ag, w.t_areq, w.regather, w.folded, w.async_bwd, w.sp_tp = t_ag, t_areq, regather, folded, async_bwd, sp_tp


def _linear_layers(w: _Work) -> None:
    """GEMM time, FP8/FP4 casts and the TP collectives paired with them, per dense and per MoE layer."""
    gpu, lin, kt, stk, m, T, tp, ep, etp, sel_ops = w.gpu, w.lin, w.kt, w.stk, w.m, w.T, w.tp, w.ep, w.etp, w.sel_ops
    split, ep_overlap, async_bwd, mods, sel, sp_tp = w.split, w.ep_overlap, w.async_bwd, w.mods, w.sel, w.sp_tp
    t_coll, regather, t_ag, sp, full, passes = w.t_coll, w.regather, w.t_ag, w.sp, w.full, w.passes

    def passes_time(Mg, Ng, Kg, pieces, at_once):
        """(forward, dgrad, wgrad) seconds of one linear, summed over its pieces (separate GEMMs sharing an
        input); no pass runs faster than its HBM traffic (a thin GEMM over a long input is memory-bound)."""
        out = [0.0, 0.0, 0.0]
        for f in pieces or (1.0,):
            t = compute.gemm_time(Mg, Ng * f, Kg, gpu, lin, kt, stk.fp8_gemm, group=at_once)
            for i, b in enumerate(gemm_bytes(Mg, Ng * f, Kg, lin)):
                out[i] = out[i] + np.maximum(t, b / gpu.memory_bw)
        return tuple(out)

    def gemm_part(moe: bool):
        t = 0.0
        cast = 0.0
        tp_split = 0.0
        tp_async = 0.0
        partial_bytes = 0.0  # async TP's fused reduce-scatters: partial outputs pulled in and summed (HBM bytes)
        passes_of[moe] = {"expert": [0.0, 0.0, 0.0], "other_fwd": 0.0}  # (fwd, dgrad, wgrad) of the routed experts
        if stk.selective == "every_second_linear":
            again = sel_ops * every_second_linear_fraction(m, moe)
        else:  # Megatron's modules that run their forward again (mlp, moe, shared_experts, mla_up_proj)
            again = sel * module_recompute_fraction(m, mods, moe) if mods - {"core_attn"} else 0.0
        fused_mm = stk.tp_fusion == "matmul"
        col_again = iter(_col_recomputed_shares(m, moe)) if fused_mm else None

        def summed_partials(rows, cols):
            """HBM bytes of a fused reduce-scatter's reduction (torch/distributed/_symmetric_memory
            _fused_matmul_reduce_scatter_impl: the tp partial outputs, pulled in on a side stream, summed over the
            rank dim in a kernel of its own on the compute stream): the whole unreduced rows×cols read, 1/tp of it
            written, where NCCL reduces in flight. Charged only where the overlap runs chunked."""
            return np.where(split, rows * cols * ACT_BYTES * (1 + 1 / tp), 0.0)
        for Mg, Ng, Kg, count, role, pieces in _layer_gemms(m, T, tp, ep, moe, etp, stk.separate_projections):
            # a GPU's local expert GEMMs run several at once (stacks.yaml expert_gemms_at_once), filling the GPU
            # together as one larger GEMM would
            at_once = count if stk.expert_gemms_at_once == 0 else np.minimum(count, stk.expert_gemms_at_once)
            w_fwd, w_dgrad, w_wgrad = passes_time(Mg, Ng, Kg, pieces, at_once)
            if moe and ep_overlap and role == "expert":  # the overlap's phases need the blocks apart (below)
                ex = passes_of[moe]["expert"]
                for i, w in enumerate((w_fwd * (passes - 2 + again), w_dgrad, w_wgrad)):
                    ex[i] = ex[i] + count * w
            elif moe and ep_overlap:
                passes_of[moe]["other_fwd"] = passes_of[moe]["other_fwd"] + count * w_fwd
            if split is not False and role not in ("local", "expert"):
                c_fwd, c_dgrad, _ = passes_time(Mg / tp, Ng, Kg, pieces, 1)
                fwd = np.where(split, tp * c_fwd, w_fwd)
                dgrad = np.where(split, tp * c_dgrad, w_dgrad) if role == "row" else w_dgrad
                t = t + count * (fwd * (1 + full + again) + dgrad + w_wgrad)
                if fused_mm and role == "col":
                    # PyTorch's async TP fuses a collective only with a matmul that consumes or produces it
                    # (inductor micro_pipeline_tp: fuse_all_gather_matmul, fuse_matmul_reduce_scatter). The input
                    # gather feeds every projection of the group; the policy's re-gather feeds only the linears
                    # it runs again; autograd keeps the gathered input, so the backward gathers nothing more. The
                    # input gradient of separate projections is the sum of their dgrads, produced by no one matmul,
                    # so its reduce-scatter blocks.
                    re_pieces = next(col_again)
                    c_re = passes_time(Mg / tp, Ng, Kg, re_pieces, 1)[0] if re_pieces else 0.0
                    fwd_c = stk.exposed(t_ag, fwd) * (1 + full) + regather * stk.exposed(t_ag, tp * c_re)
                    bwd_c = t_coll if pieces else stk.exposed(t_coll, dgrad)
                    if not pieces:  # its dgrad's reduce-scatter is fused: the partial input gradients (M×K)
                        partial_bytes = partial_bytes + count * summed_partials(Mg, Kg)
                # AG before a col GEMM (again in the backward when the policy keeps no gathered input), RS after a
                # row GEMM
                elif role == "col":
                    fwd_c = stk.exposed(t_ag, fwd) * (1 + full + regather)
                    bwd_c = stk.exposed(t_ag, dgrad) + stk.exposed(t_coll, w_wgrad)  # input re-gather, dgrad RS
                else:
                    fwd_c = stk.exposed(t_coll, fwd) * (1 + full)
                    bwd_c = stk.exposed(t_ag, dgrad)  # AG of the output gradient
                    if fused_mm:  # the fused matmul-reduce-scatter sums its M×N partial outputs
                        partial_bytes = partial_bytes + count * (1 + full) * summed_partials(Mg, Ng)
                tp_split = tp_split + count * (fwd_c + bwd_c)
            else:
                t = t + count * (w_fwd * (passes - 2 + again) + w_dgrad + w_wgrad)
            if async_bwd and role == "col":  # input re-gather under the dgrad, dgrad reduction under the wgrad
                tp_async = tp_async + count * np.where(sp, stk.exposed(t_ag, w_dgrad) + stk.exposed(t_coll, w_wgrad),
                                                       stk.exposed(2 * t_coll, w_wgrad))
            elif async_bwd and role == "row":
                tp_async = tp_async + count * np.where(sp, t_ag, 0.0)
            if lin in ("fp8", "fp4"):
                # bytes of cast traffic per GEMM, in units of fp8_cast_bytes (amax read + cast read + FP8 write)
                ink, gout = _fp8_cast_elements(Mg, Ng, Kg, role, sp_tp, tp, stk.fp8_casts, kt.fp8_cast_bytes,
                                               stk.fp8_gather)
                cast = cast + count * kt.fp8_cast_bytes * (ink + gout) / gpu.memory_bw
        return t, cast * (1 + (full + again) * 0.5), tp_split, tp_async, partial_bytes

    passes_of: dict = {}  # gemm_part's GEMM passes by block, for the EP overlap's phases (below)
    g_dense, c_dense, tp_split_dense, tp_async_dense, partial_dense = gemm_part(False)
    g_moe, c_moe, _, _, _ = gemm_part(True) if m.is_moe else (0.0, 0.0, 0.0, 0.0, 0.0)

    w.passes_of, w.g_dense, w.c_dense, w.tp_split_dense = passes_of, g_dense, c_dense, tp_split_dense
    w.tp_async_dense, w.partial_dense, w.g_moe, w.c_moe = tp_async_dense, partial_dense, g_moe, c_moe


def _attention(w: _Work) -> None:
    """Flash attention per layer: FLOPs, the kernel route's efficiency, forward and backward time."""
    m, s, causal, T, tp, gpu, half, cp, kt, stk = w.m, w.s, w.causal, w.T, w.tp, w.gpu, w.half, w.cp, w.kt, w.stk
    flash_attention, sel_attn, full = w.flash_attention, w.sel_attn, w.full

    # Flash attention in 16-bit: forward 2·T·S·n_q/t·(d_qk + d_v), backward 2.5×.
    d_qk = (m.qk_nope_dim + m.qk_rope_dim) if m.is_mla else m.head_dim
    d_v = m.v_head_dim if m.is_mla else m.head_dim
    s_att = np.minimum(s, m.sliding_window) if m.sliding_window else s  # unfused softmax footprint (below)
    S = attended_positions(m, s, causal)  # averaged over full / sliding / chunked / linear layers
    f_att = 2.0 * T * S * m.heads / tp * (d_qk + d_v)
    pk16 = gpu.peak_flops(half)
    # the stack's kernel route (stacks.yaml attention_kernel), at the sequence one GPU's kernel calls see: s/cp
    # (a context-parallel rank holds s/cp query positions and attends them chunk by chunk)
    att_tokens = s / cp
    eff_fwd, eff_bwd = kt.attention(stk.attention_kernel, att_tokens, causal=bool(causal), head_dim=d_qk)
    if flash_attention:  # one forward and one backward pass of a layer's attention
        att_fwd, att_bwd = f_att / (pk16 * eff_fwd), 2.5 * f_att / (pk16 * eff_bwd)
    else:  # unfused: batched GEMMs at the GEMM plateau + softmax traffic (charged as elementwise below)
        att_fwd = f_att / (pk16 * kt.plateau(half))
        att_bwd = 2 * att_fwd
    t_att_layer = att_fwd * (1 + sel_attn + full) + att_bwd

    w.d_qk, w.d_v, w.s_att, w.f_att, w.att_tokens, w.eff_fwd = d_qk, d_v, s_att, f_att, att_tokens, eff_fwd
    w.eff_bwd, w.att_fwd, w.att_bwd, w.t_att_layer = eff_bwd, att_fwd, att_bwd, t_att_layer


def _memory_bound(w: _Work) -> None:
    """Memory-bound (elementwise) traffic per layer: activations, recomputed modules, summed gradients, layout copies."""
    m, h, tp, sp, flash_attention, s_att, sel_attn = w.m, w.h, w.tp, w.sp, w.flash_attention, w.s_att, w.sel_attn
    full, T, passes, sel_ops, cal, stk, gpu, L = w.full, w.T, w.passes, w.sel_ops, w.cal, w.stk, w.gpu, w.L
    sel, mods, split, mb, regather, folded, gather_b = w.sel, w.mods, w.split, w.mb, w.regather, w.folded, w.gather_b
    partial_dense = w.partial_dense

    # Elementwise: Korthikanti Table 2 bytes per token per layer, per forward-equivalent pass: 10h of norm inputs,
    # dropout masks and MLP input, 2 B per element of the attention's Q, K + V and output at their real widths
    # (sizing.activations.attention_width_units: 8h with MHA's, less with grouped K/V, 23h with DeepSeek-V3's MLA,
    # whose K and V are written per head), and the MLP's 4·ffn.
    ffn_act = (m.experts_per_token + m.shared_experts) * m.moe_ffn if m.is_moe else m.ffn
    q_units, kv_units, o_units = attention_width_units(m)
    per_tok_layer = (10 + 2 * (q_units + kv_units + o_units)) * h + 4 * ffn_act  # = 34h for MHA and ffn = 4h
    # Without sequence parallelism the 10·h bytes per token that TP cannot split (LayerNorm inputs 4h, dropout
    # masks 2h, attention and MLP inputs 4h: Korthikanti Table 2, s·b·h·(10 + 24/t)) run on every TP rank; with it
    # they are split too (s·b·h·34/t). The LayerNorm, dropout and residual work scales with them.
    per_tok_gpu = per_tok_layer / tp + np.where(sp, 0.0, 10 * h * (1 - 1 / tp))
    softmax = 0.0 if flash_attention else 5 * m.heads * s_att  # per token, all heads: 5·a·s (split by TP once)
    soft_passes = 3 + sel_attn + full
    elem_bytes = T * (per_tok_gpu * (passes + sel_ops) + softmax * soft_passes / tp)
    cal = cal or compute.training_calibration()
    t_elem_layer = elem_bytes * cal.elementwise_traffic * stk.elementwise_factor / gpu.memory_bw
    # Megatron's modules repeat their elementwise work in backward, bytes per token (16-bit): a norm that is a module
    # of its own (layernorm: a MoE layer's pre-MLP norm, MLA's input norm) reads and writes T·h; an MLP activation
    # (moe_act for the routed experts; mlp, moe, shared_experts with their MLP) reads the gate and up outputs and
    # writes their product (6 B per FFN element); a recomputed MoE layer also permutes its k copies and gathers
    # them back (4 B per copy element each way); mla_up_proj runs Megatron's fused MLA RoPE again
    # (fusions/fused_mla_yarn_rope_apply.py at d98e8a6): in place on Q's RoPE slice (read and written), and the
    # K/V split that reads the up-projected n·(d_nope + d_v) and writes K and V, n·(d_qk + d_v), 2 B each.
    frac_moe = m.moe_layers / L
    if np.any(sel) and mods - {"core_attn"}:
        k_ffn, sh_ffn = m.experts_per_token * m.moe_ffn, m.shared_experts * m.moe_ffn
        whole_moe = "moe" in mods
        norms = frac_moe * module_norms(m, mods, True) + (1 - frac_moe) * module_norms(m, mods, False)
        mod_tok = (("layernorm" in mods) * norms * 4.0 * h / np.where(sp, tp, 1)
                   + frac_moe * whole_moe * 6.0 * (k_ffn + sh_ffn) / tp
                   + frac_moe * (not whole_moe) * (("moe_act" in mods) * 6.0 * k_ffn
                                                    + ("shared_experts" in mods) * 6.0 * sh_ffn) / tp
                   + (1 - frac_moe) * ("mlp" in mods) * 6.0 * m.ffn / tp
                   + ("mla_up_proj" in mods and m.is_mla) * mla_rope_bytes(m) / tp)
        t_elem_layer = t_elem_layer + sel * T * mod_tok / gpu.memory_bw
    # Separate projections over one input (stacks.yaml separate_projections): the input's gradient is the sum of
    # their dgrads. Under TP that sum runs on the gathered T·h tensor before its reduce-scatter (or all-reduce),
    # one kernel reading each dgrad and writing the sum; at TP 1 it folds into the norm's backward, which reads
    # the extra dgrads.
    grad_sum_bytes = 0.0
    if stk.separate_projections and not m.is_mla:
        def tensors(n):  # T·h tensors moved to sum n input gradients
            return np.where(tp > 1, n + 1, n - 1)

        gate_up = tensors(2) * m.dense_layers / L if m.gated_mlp else 0.0  # dense layers' MLPs only
        grad_sum_bytes = T * h * ACT_BYTES * (tensors(3) + gate_up)
        t_elem_layer = t_elem_layer + grad_sum_bytes / gpu.memory_bw
    # Sequence parallelism on the sequence dim behind the batch dim (stacks.yaml sp_layout_copies: DTensor's
    # Shard(1) of [batch, seq, hidden]): a blocking TP all-gather is reassembled by one copy of the gathered tensor
    # and a reduce-scatter of a matmul's output is preceded by one, each read and written once. Per layer: the
    # column-parallel inputs (forward, recomputed forward, the selective policy's re-gather) and the row-parallel
    # output gradients (backward), the row-parallel outputs (forward, recomputed forward) and, unless the input
    # gradient is a sum of separate projections' dgrads (an elementwise kernel that writes the layout itself), the
    # column-parallel input gradients. Async TP's fused matmuls take the sharded layout directly: nothing copied.
    # With one sequence per micro-batch the gathered chunks already lie in order, and PyTorch views them instead
    # of copying (torch/_utils.py _maybe_view_chunk_cat; pull requests #169404, 2025-12, and #194865): only the
    # reduce-scatter copies remain.
    sp_copy_bytes = 0.0
    if stk.sp_layout_copies:
        blocking = (tp > 1) & sp & np.logical_not(split if split is not False else False)
        n_ag = np.where(mb > 1, 2 * (1 + full) + 2 * regather + 2, 0)
        n_rs = 2 * (1 + full) + (0 if stk.separate_projections else 2)
        # a MoE layer's collectives as the TP part counts them: half of them with whole experts (folded)
        moe_share = m.moe_layers * (1 - 0.5 * folded) / L
        sp_copy_bytes = np.where(blocking, 2 * T * h * (n_ag * gather_b + n_rs * ACT_BYTES)
                                 * (m.dense_layers / L + moe_share), 0.0)
        t_elem_layer = t_elem_layer + sp_copy_bytes / gpu.memory_bw
    # async TP's fused reduce-scatters sum their partial outputs in a kernel of their own (dense layers, per layer)
    async_tp_partial_bytes = partial_dense * m.dense_layers / L
    t_elem_layer = t_elem_layer + async_tp_partial_bytes / gpu.memory_bw

    w.q_units, w.kv_units, w.o_units, w.elem_bytes, w.cal = q_units, kv_units, o_units, elem_bytes, cal
    w.t_elem_layer, w.frac_moe, w.grad_sum_bytes = t_elem_layer, frac_moe, grad_sum_bytes
    w.sp_copy_bytes, w.async_tp_partial_bytes = sp_copy_bytes, async_tp_partial_bytes


def _tp_time(w: _Work) -> None:
    """Exposed tensor-parallel communication per layer."""
    tp, n_tp, t_areq, regather, t_ag, m, stk, T = w.tp, w.n_tp, w.t_areq, w.regather, w.t_ag, w.m, w.stk, w.T
    domain, node, full, tp_over, g_dense, async_bwd = w.domain, w.node, w.full, w.tp_over, w.g_dense, w.async_bwd
    tp_async_dense, split, tp_split_dense, folded = w.tp_async_dense, w.split, w.tp_split_dense, w.folded
    g_moe, L = w.g_moe, w.L

    # Tensor parallel: 4 all-reduce equivalents per layer of T·h·2 B (+2 with full recompute), blocking or
    # hidden under the layer's GEMMs; chunked (split), a dense layer's collectives are paired GEMM by GEMM (above).
    # A MoE layer with whole experts (folded, above) moves half of them.
    tp_raw = np.where(tp > 1, n_tp * t_areq + 2 * regather * t_ag, 0.0)  # 2 column-parallel inputs per layer
    # TP beyond the KV heads (Megatron-Core f7dfb99): the QKV projection's output is all-gathered over TP in each
    # forward (and recomputed forward) and reduce-scattered in the backward, blocking, before the attention
    if not m.is_mla and stk.tp_past_kv_heads and np.any(tp > m.kv_heads):  # no collective to build otherwise
        qkv_w = (m.heads + 2 * m.kv_heads) * m.head_dim
        ar_qkv = comm.hierarchical_all_reduce(T * qkv_w * ACT_BYTES, tp, np.minimum(tp, domain), node, "QKV all-gather")
        t_kv_rep = np.where(tp > m.kv_heads, (2 + full) * ar_qkv.value / 2, 0.0)
    else:
        t_kv_rep = 0.0
    tp_dense = np.where(tp_over, stk.exposed(tp_raw, g_dense), tp_raw)
    if async_bwd:  # forward (and recomputed forward) collectives block: 2 all-reduce equivalents per pass
        tp_dense = np.where(tp_over, tp_dense, np.where(tp > 1, (2 + 2 * full) * t_areq, 0.0) + tp_async_dense)
    if split is not False:
        tp_dense = np.where(split, tp_split_dense, tp_dense)
    tp_moe = tp_raw * (1 - 0.5 * folded)
    tp_moe = np.where(tp_over, stk.exposed(tp_moe, g_moe), tp_moe)
    t_tp_layer = (m.dense_layers * tp_dense + m.moe_layers * tp_moe) / L + t_kv_rep

    w.t_kv_rep, w.t_tp_layer = t_kv_rep, t_tp_layer


def _cp_time(w: _Work) -> None:
    """Context-parallel ring per layer: the merge traffic outside the kernel and the exposed K,V exchange."""
    stk, m, T, tp, d_v, d_qk, cp, sel_attn = w.stk, w.m, w.T, w.tp, w.d_v, w.d_qk, w.cp, w.sel_attn
    sel_ops, full, gpu, domain, node, att_fwd = w.sel_ops, w.full, w.gpu, w.domain, w.node, w.att_fwd
    att_bwd, t_att_layer = w.att_bwd, w.t_att_layer

    # Context parallel: K,V chunk ring, hidden under attention when the stack overlaps it. A stack that expands
    # grouped K,V heads before the attention call (cp_ring kv_heads: query) sends them expanded.
    ring_heads = m.heads if stk.ring_kv_query_heads else m.kv_heads
    kv_chunk = T * 2 * ring_heads * m.head_dim * ACT_BYTES / tp
    # Outside the kernel each ring step merges its partial output into the running one (forward, cp−1 steps, again
    # when recomputed) and accumulates the gradients it returns (backward, cp steps): memory-bound traffic over
    # the query-sized output and the K-sized tensors (stacks.yaml cp_ring).
    fq, fkv, bq, bkv = stk.ring_bytes
    q_el, k_el = T * m.heads / tp * d_v, T * ring_heads / tp * d_qk
    ring_bytes = np.where(cp > 1, (cp - 1) * (fq * q_el + fkv * k_el) * (1 + sel_attn + sel_ops + full)
                          + cp * (bq * q_el + bkv * k_el), 0.0)
    t_ring_layer = ring_bytes / gpu.memory_bw
    cp_in = tp * cp <= domain

    def hop(nbytes):  # one rank's message to the next CP rank, over NVLink inside the domain, else the NICs
        return np.where(cp_in, comm.p2p(nbytes, node.scale_up).value, comm.p2p(nbytes, node.scale_out_per_gpu()).value)

    t_hop = hop(kv_chunk)
    if stk.cp and stk.ring_allgather:
        # PyTorch's allgather rotater: one all-gather of every rank's K,V per attention call (forward, again when
        # recomputed, and backward), waited on after the first ring step, so only that step (the local causal
        # block, 1/cp of the call) runs under it; the fp32 dK,dV go to the next rank after every backward step,
        # each under the next step, the last one waited on with nothing left to run
        gather, t_dkv = (cp - 1) * t_hop, hop(2 * kv_chunk)
        t_cp_layer = np.where(cp > 1, (1 + sel_attn + full) * stk.exposed(gather, att_fwd / cp)
                              + stk.exposed(gather, att_bwd / cp) + (cp - 1) * stk.exposed(t_dkv, att_bwd / cp)
                              + t_dkv, 0.0)
    else:  # 3(cp−1) hops per layer: K,V forward and backward, and their gradients
        t_cp_raw = np.where(cp > 1, 3 * (cp - 1) * t_hop, 0.0)
        t_cp_layer = stk.exposed(t_cp_raw, t_att_layer) if stk.cp else t_cp_raw

    w.kv_chunk, w.ring_bytes, w.t_ring_layer, w.t_cp_layer = kv_chunk, ring_bytes, t_ring_layer, t_cp_layer


def _ep_time(w: _Work) -> None:
    """Expert-parallel all-to-all and token permutation per MoE layer."""
    T, etp, tp, h, m, domain, ep, dispatch, node = w.T, w.etp, w.tp, w.h, w.m, w.domain, w.ep, w.dispatch, w.node
    moe_dispatcher, full, sel, mods, stk = w.moe_dispatcher, w.full, w.sel, w.mods, w.stk
    t_elem_layer, frac_moe, gpu = w.t_elem_layer, w.frac_moe, w.gpu

    # Expert parallel: all-to-all of routed tokens per MoE layer, 4 per micro-batch (dispatch + combine, fwd + bwd).
    token_bytes = T * etp / tp * h * ACT_BYTES  # the tokens this rank routes, one copy each
    a2a_bytes = token_bytes * m.experts_per_token
    # EP ranks sit next to each other after TP (Megatron's order): ep_local of them share a scale-up domain
    ep_local = np.clip(domain // np.maximum(etp, 1), 1, np.maximum(ep, 1))
    if dispatch == "node":  # DeepEP / Hybrid-EP: once per destination node over the NICs, once per rank inside it
        a2a = comm.relayed_all_to_all(token_bytes, m.experts_per_token, max(m.experts, 1), ep, ep_local, node,
                                      f"{moe_dispatcher} dispatch", m.router_groups, m.router_group_topk)
    else:  # every (token, expert) copy
        a2a = comm.hierarchical_all_to_all(a2a_bytes, ep, ep_local, node, "EP all-to-all")
    # a layer recomputed whole (full recompute, Megatron's moe module) dispatches and combines its forward again
    moe_again = full + sel * ("moe" in mods)
    # Token permutation (Megatron moe_utils permute / sort_chunks_by_idxs / unpermute): memory-bound copies of every
    # routed (token, expert) copy of this rank's T·etp/tp tokens, forward, backward and again when the layer is recomputed
    permute_bytes = 0.0
    if m.is_moe:
        permute_bytes = (T * etp / tp * m.experts_per_token * h * stk.permute_bytes(moe_dispatcher, m.experts / ep)
                         * (2 + moe_again))
        t_elem_layer = t_elem_layer + frac_moe * permute_bytes / gpu.memory_bw
    t_ep_moe = np.where(ep > 1, (4 + 2 * moe_again) * a2a.value, 0.0)

    w.token_bytes, w.a2a_bytes, w.a2a, w.moe_again = token_bytes, a2a_bytes, a2a, moe_again
    w.permute_bytes, w.t_elem_layer, w.t_ep_moe = permute_bytes, t_elem_layer, t_ep_moe


def _layer_time(w: _Work) -> None:
    """One layer's time (averaged over dense and MoE layers), the LM head and loss, and the stages' layer counts."""
    frac_moe, g_dense, g_moe, c_dense, c_moe, M, pp = w.frac_moe, w.g_dense, w.g_moe, w.c_dense, w.c_moe, w.M, w.pp
    vp, stk, ep_overlap, t_ep_moe, a2a, passes_of = w.vp, w.stk, w.ep_overlap, w.t_ep_moe, w.a2a, w.passes_of
    t_elem_layer, att_fwd, sel_attn, full, att_bwd = w.t_elem_layer, w.att_fwd, w.sel_attn, w.full, w.att_bwd
    lin, half, T, m, tp, h, gpu, kt, n_mtp = w.lin, w.half, w.T, w.m, w.tp, w.h, w.gpu, w.kt, w.n_mtp
    pipeline_split, mtp, t_att_layer, t_ring_layer, fw = w.pipeline_split, w.mtp, w.t_att_layer, w.t_ring_layer, w.fw
    t_tp_layer, t_cp_layer = w.t_tp_layer, w.t_cp_layer

    # Per layer (averaged over dense/MoE layers), then the LM head + loss on the last stage.
    comp_layer = (1 - frac_moe) * g_dense + frac_moe * g_moe
    cast_layer = (1 - frac_moe) * c_dense + frac_moe * c_moe
    # micro-batches per group of the interleaved schedule (pp where there is none; 0 where the stack refuses M, which
    # the search never offers and a fixed layout is refused before: counted as pp)
    group = interleave_group(M, pp, vp, stk.interleave)
    group = np.where(group > 0, group, pp)
    unpaired = ep_unpaired_share(M, pp, vp, group) if ep_overlap else 1.0
    if ep_overlap:
        # Megatron merges the forward of one micro-batch with the backward of the next (combined 1F1B), each
        # dispatch/combine of one under a block of the other's layer (_ep_overlap_exposed); the warm-up forwards and
        # cool-down backwards have no partner, so their all-to-alls run exposed.
        t_ep_moe = unpaired * t_ep_moe + (1 - unpaired) * _ep_overlap_exposed(
            a2a.value, passes_of[True], g_moe, c_moe + t_elem_layer, att_fwd, att_fwd * (sel_attn + full) + att_bwd,
            stk.sm_fraction)
    ep_layer = frac_moe * t_ep_moe
    head_dt = lin if lin in ("bf16", "fp16") else half
    head_gemm = compute.gemm_time(T, m.vocab / tp, h, gpu, head_dt, kt) * 3 * (1 + n_mtp)
    # the loss over this rank's logits (stack's count), once more per MTP depth
    head_elem = (1 + n_mtp) * T * m.vocab / tp * stk.ce_bytes / gpu.memory_bw
    if n_mtp:  # each MTP depth projects [h; embedding] (2h) back to h before its layer
        head_gemm = head_gemm + n_mtp * 3 * compute.gemm_time(T, h / tp, 2 * h, gpu, head_dt, kt)

    first_l, middle_l, last_l = stage_layers(m, pp, vp, pipeline_edge_slots(m, stk.uneven_pipeline, pipeline_split, mtp), mtp)
    # framework efficiency stretches the compute stream (launch gaps, host syncs between kernels); exposed
    # collectives are already wall time on the critical path (NCCL busbw is measured end to end)
    layer_t = (comp_layer + cast_layer + t_att_layer + t_ring_layer + t_elem_layer) / fw + t_tp_layer + t_cp_layer + ep_layer

    w.comp_layer, w.cast_layer, w.group, w.unpaired, w.ep_layer = comp_layer, cast_layer, group, unpaired, ep_layer
    w.head_gemm, w.head_elem, w.first_l, w.middle_l, w.last_l = head_gemm, head_elem, first_l, middle_l, last_l
    w.layer_t = layer_t


def _moe_host_time(w: _Work) -> None:
    """What the host adds to a MoE layer: its sync stalls and the modules it issues one by one."""
    stk, m, moe_module_ms, moe_stall_ms = w.stk, w.m, w.moe_module_ms, w.moe_stall_ms
    cuda_graph_scope, sel, mods, full, layer_t, ep = w.cuda_graph_scope, w.sel, w.mods, w.full, w.layer_t, w.ep
    a2a, unpaired, frac_moe, moe_again = w.a2a, w.unpaired, w.frac_moe, w.moe_again

    # Host-bound MoE layers. Megatron's dispatchers copy the routed token counts to the host and wait for them
    # (token_dispatcher.py _maybe_dtoh_and_synchronize, at cuda_sync_point) before each forward all-to-all: the GPU
    # then drains while the host issues the dispatch, permutation and expert kernels (S of host time per forward MoE
    # layer; the dispatch all-to-all, issued first, runs meanwhile, so the GPU idles S less its time), unless the
    # all-to-all overlap's merged schedule keeps another micro-batch's work queued. Nor can a
    # layer run faster than the host issues it (H per MoE layer and micro-batch, forward + backward). Like layer_t,
    # both are averaged over the dense and MoE layers (frac_moe); the sync happens at EP 1 too ("before_finish").
    # The expert activation may sync too (stacks.yaml moe_activation_syncs: Megatron's GPT-OSS quick-GeGLU builds a
    # GPU scalar each call, a blocking copy), with the same stall after it. The overlap hides only the dispatcher's
    # sync: that one waits on an event of a side D2H stream, so kernels queued after its copy point keep running,
    # while the activation's blocking copy drains the compute stream, the other micro-batch's queued work with it.
    syncs = 1 + dict(stk.moe_act_syncs).get(m.glu_activation, 0)
    module_s = stk.moe_module_s if moe_module_ms is None else float(moe_module_ms) / 1e3
    stall_s = stk.moe_stall_s if moe_stall_ms is None else float(moe_stall_ms) / 1e3
    # the host's own time per MoE layer: its linear modules outside CUDA graphs (perf.host), each forward +
    # backward, and a third of one again for each forward recompute repeats (selective: the named modules; full:
    # every one, on its share of the layers)
    modules = layer_modules(m, cuda_graph_scope)
    n_modules = sum(modules.values())
    again = sel * recomputed_modules(m, cuda_graph_scope, mods) + full * n_modules
    units = n_modules + again / 3
    if m.is_moe and (module_s > 0 or stall_s > 0):
        g_layer = layer_t
        # the dispatch all-to-all is the first kernel the host issues after the dispatcher's sync: the GPU runs it
        # while the host goes on issuing, so only what the stall outlasts it idles the GPU
        t_dispatch_s = np.where(ep > 1, a2a.value, 0.0)
        dispatcher_stall = unpaired * np.maximum(stall_s - t_dispatch_s, 0.0)  # only unpaired passes drain
        # A forward run again (full recompute, the moe module) syncs again and stalls as a forward does. moe_act's
        # recomputed activation syncs too, but inside the backward, where the host has only the layer's backward
        # kernels to issue, each long, rather than the dispatcher's routing work the stall was fitted on: not charged.
        stall = frac_moe * (dispatcher_stall + stall_s * (syncs - 1)) * (1 + moe_again)
        t_host_layer = np.maximum(g_layer + stall, frac_moe * module_s * units) - g_layer
    else:
        t_host_layer, t_dispatch_s = 0.0, 0.0
    layer_t = layer_t + t_host_layer

    w.syncs, w.module_s, w.stall_s, w.modules, w.again = syncs, module_s, stall_s, modules, again
    w.t_dispatch_s, w.t_host_layer, w.layer_t = t_dispatch_s, t_host_layer, layer_t


def _pipeline(w: _Work) -> None:
    """Stage times, the slowest stage, pipeline p2p per micro-batch and the bubble."""
    head_gemm, head_elem, fw, last_l, layer_t = w.head_gemm, w.head_elem, w.fw, w.last_l, w.layer_t
    middle_l, first_l, T, h, tp, cp, dp, domain = w.middle_l, w.first_l, w.T, w.h, w.tp, w.cp, w.dp, w.domain
    node, pp, vp, stk, group = w.node, w.pp, w.vp, w.stk, w.group

    head_t = (head_gemm + head_elem) / fw
    # PP 1 needs no case of its own: stage_layers gives its one stage (MTP layers included) as first, middle and last
    last_t = last_l * layer_t + head_t
    mid_t = middle_l * layer_t
    first_t = first_l * layer_t
    stage_t = np.maximum(np.maximum(first_t, mid_t), last_t)
    head_on = last_t >= np.maximum(first_t, mid_t)
    n_layers = np.where(head_on, last_l, np.where(mid_t >= first_t, middle_l, first_l))

    # Pipeline p2p: 2·v exchanges per micro-batch, across nodes once the stage below fills a domain.
    pp_bytes = T * h * ACT_BYTES / tp
    pp_out = tp * cp * dp >= domain
    t_p2p = np.where(pp_out, comm.p2p(pp_bytes, node.scale_out_per_gpu()).value, comm.p2p(pp_bytes, node.scale_up).value)
    t_pp_mb = np.where(pp > 1, 2 * vp * t_p2p, 0.0)
    if stk.pp:  # async send/recv runs under the next virtual stage's compute; while it does, its kernels hold SMs
        # (overlap_sm_fraction), so every one of the 2v exchanges costs a share, and more interleaving costs more
        t_pp_mb = np.where(pp > 1, 2 * vp * stk.exposed(t_p2p, stage_t / vp), 0.0)
    stage_mb = stage_t + t_pp_mb
    # (p−1)/v stage times; a group of fewer than p micro-batches (PyTorch's schedule with M < p) also waits
    # p − G chunk times between its virtual stages, forward and backward: (v−1)(p−G)/v stage times more
    bubble_frac = (pp - 1) / vp + (vp - 1) * np.maximum(pp - group, 0) / vp

    w.head_t, w.stage_t, w.head_on, w.n_layers, w.pp_bytes = head_t, stage_t, head_on, n_layers, pp_bytes
    w.t_pp_mb, w.stage_mb, w.bubble_frac = t_pp_mb, stage_mb, bubble_frac


def _compute_terms(w: _Work) -> None:
    """The step's per-micro-batch parts as Terms, each with its formula, inputs and sources."""
    step_only, fw, M, n_layers, head_on, kt, fw_src = w.step_only, w.fw, w.M, w.n_layers, w.head_on, w.kt, w.fw_src
    gpu, comp_layer, head_gemm, lin, stk, T = w.gpu, w.comp_layer, w.head_gemm, w.lin, w.stk, w.T
    cast_layer, t_att_layer, t_ring_layer, f_att = w.cast_layer, w.t_att_layer, w.t_ring_layer, w.f_att
    eff_fwd, eff_bwd, att_tokens, causal, d_qk = w.eff_fwd, w.eff_bwd, w.att_tokens, w.causal, w.d_qk
    ring_bytes, t_elem_layer, head_elem, elem_bytes = w.ring_bytes, w.t_elem_layer, w.head_elem, w.elem_bytes
    cal, q_units, kv_units, o_units, grad_sum_bytes = w.cal, w.q_units, w.kv_units, w.o_units, w.grad_sum_bytes
    sp_copy_bytes, async_tp_partial_bytes, m = w.sp_copy_bytes, w.async_tp_partial_bytes, w.m
    permute_bytes, t_tp_layer, n_tp, ar_tp, gather_b = w.permute_bytes, w.t_tp_layer, w.n_tp, w.ar_tp, w.gather_b
    regather, tp_over, split, async_bwd, sp, t_kv_rep = w.regather, w.tp_over, w.split, w.async_bwd, w.sp, w.t_kv_rep
    t_host_layer, module_s, modules, again = w.t_host_layer, w.module_s, w.modules, w.again
    cuda_graph_scope, stall_s, t_dispatch_s, syncs = w.cuda_graph_scope, w.stall_s, w.t_dispatch_s, w.syncs
    ep_overlap, t_cp_layer, kv_chunk, ep_layer = w.ep_overlap, w.t_cp_layer, w.kv_chunk, w.ep_layer
    dispatch, token_bytes, a2a_bytes, moe_dispatcher = w.dispatch, w.token_bytes, w.a2a_bytes, w.moe_dispatcher
    a2a, unpaired, t_pp_mb, vp, pp_bytes, bubble_frac = w.a2a, w.unpaired, w.t_pp_mb, w.vp, w.pp_bytes, w.bubble_frac
    stage_mb, pp, group, first_l, middle_l, last_l = w.stage_mb, w.pp, w.group, w.first_l, w.middle_l, w.last_l

    def part(name: str, per_layer, per_head, formula: str, inputs: dict, sources: dict | None = None,
             comm_part: bool = False) -> Term:
        if step_only:  # the search needs the sum only (below); parts are built for the rows shown
            return Term(name, 0.0, "s")
        k = 1.0 if comm_part else fw
        v = M * (n_layers * per_layer / k + np.where(head_on, per_head, 0.0) / k)
        return Term(name, _s(v), "s", formula, inputs, sources or {})

    sk = {"kernels": kt.source, "size curve": kt.curve_source, "framework efficiency": fw_src}
    if gpu.sustained_compute_fraction != 1:  # a power-limited part: where its fraction comes from
        sk[gpu.key] = gpu.source
    t_comp = part("matmul compute", comp_layer, head_gemm,
                  "M · (L_stage · Σ GEMM time (fwd + 2 bwd + recompute; each pass no faster than its HBM traffic) + "
                  "LM head) / framework efficiency",
                  {"M": M, "L_stage": n_layers, "dtype": lin, "framework efficiency": fw,
                   "separate Q/K/V and gate/up GEMMs": stk.separate_projections,
                   "sustained fraction of datasheet peak": gpu.sustained_compute_fraction,
                   "plateau": kt.plateau(lin, stk.fp8_gemm), "T (tokens per GPU per micro-batch)": T}, sk)
    t_cast = part("FP8/FP4 casts", cast_layer, 0.0,
                  "M · L_stage · cast bytes (per GEMM 2MK + MN, or Transformer Engine's shard cast before the FP8 "
                  "all-gather and fused cast-transpose: stacks.yaml fp8_casts) / HBM bandwidth",
                  {"bytes per element": kt.fp8_cast_bytes, "dtype": lin}, {"cast": kt.curve_source})
    t_attn = part("attention", t_att_layer + t_ring_layer, 0.0,
                  "M · L_stage · (fwd FLOPs/(peak·eff_fwd) · (1 + recompute) + 2.5·fwd FLOPs/(peak·eff_bwd) + CP ring "
                  "merge bytes / HBM bandwidth)",
                  {"fwd FLOPs per layer": f_att, "eff_fwd": eff_fwd, "eff_bwd": eff_bwd,
                   "tokens per kernel call (s/cp)": att_tokens, "kernel route": stk.attention_kernel or "default",
                   "causal": causal, "head dim (figures at 128; 64 where measured)": d_qk,
                   "CP ring merge bytes per layer": ring_bytes},
                  {"kernels": kt.source, **({"CP ring": stk.ring_source} if stk.ring_source else {})})
    t_elem = part("elementwise (memory-bound)", t_elem_layer, head_elem,
                  "M · (L_stage · (activation bytes × traffic × stack factor + summed input-gradient bytes + "
                  "sequence-parallel layout copies + async-TP partial sums + MoE share × token permutation bytes) + "
                  "T · V/tp logits × loss bytes per logit) / HBM bandwidth",
                  {"bytes per layer": elem_bytes, "traffic": cal.elementwise_traffic, "HBM B/s": gpu.memory_bw,
                   "attention Q, K + V, output widths (units of h)": (round(q_units, 3), round(kv_units, 3),
                                                                      round(o_units, 3)),
                   "stack factor (1: fused kernels)": stk.elementwise_factor,
                   "summed input-gradient bytes per layer": grad_sum_bytes,
                   "sequence-parallel layout copy bytes per layer": sp_copy_bytes,
                   "async-TP partial-sum bytes per layer": async_tp_partial_bytes,
                   **({"token permutation bytes per MoE layer": permute_bytes} if m.is_moe else {}),
                   "loss bytes per logit (forward + backward)": stk.ce_bytes},
                  {"calibration": cal.source, "loss": stk.ce_source or CE_DEFAULT_SOURCE,
                   **({"token permutation": stk.moe_permute_source} if m.is_moe and stk.moe_permute_source else {}),
                   **({"stack factor": stk.elementwise_fit} if stk.elementwise_fit else {})})
    t_tp = part("TP communication", t_tp_layer, 0.0,
                "M · L_stage · blocking: n_coll · (t_allgather + t_reducescatter) of T·h elements (all-gathers in FP8 "
                "where the stack quantizes before the gather); overlapped: max(0, that − GEMM time); "
                "chunked (ring): Σ per GEMM max(0, t_allreduce/2 − that GEMM's time); fused with matmuls (PyTorch "
                "async TP): each collective under the matmuls it feeds or that feed it, the reduce-scatter of "
                "separate projections' summed input gradients blocking; async backward: forward blocking, "
                "each column-parallel backward collective max(0, t − its dgrad/wgrad GEMM); TP past the KV heads "
                "(megatron-core): + (2 + recomputed share) · t_allgather of the QKV output (T·(q + 2kv) elements)",
                {"n_coll": n_tp, "t_allreduce": ar_tp, "all-gather bytes per element": gather_b,
                 "inputs gathered again in backward": regather, "overlapped": tp_over, "chunked": split,
                 "stack": stk.key, "chunked overlap pairs": stk.tp_fusion,
                 "async backward": async_bwd, "sequence parallel": sp, "QKV output all-gather": t_kv_rep},
                {"count": SRC_TP, stk.key: stk.source},
                comm_part=True)
    t_host = part("host-bound MoE layers (exposed)", t_host_layer, 0.0,
                  "M · L_stage · (max(G + (max(0, S − t_dispatch) + S · (syncs − 1)) · (1 + recompute) (the "
                  "dispatch all-to-all runs while the host catches up; under the all-to-all overlap only the "
                  "activation's syncs), h · (n + r / 3)) − G), G the layer's GPU time",
                  {"h (ms of host time per linear module, forward + backward)": module_s * 1e3,
                   "n (linear modules the host issues per MoE layer)": modules,
                   "r (module forwards recompute repeats)": again,
                   "CUDA graph scope": ",".join(cuda_graph_scope) or "none (eager)",
                   "S (ms of host time after each forward sync)": stall_s * 1e3,
                   "t_dispatch (the dispatch all-to-all after the dispatcher's sync)": t_dispatch_s,
                   "syncs (per forward MoE layer: dispatcher + expert activation)": syncs,
                   "overlapped": ep_overlap, "stack": stk.key},
                  {"host time": stk.moe_host_fit or "none for this stack", "sync": stk.moe_dispatchers_source or stk.source,
                   **({"activation sync": stk.moe_act_syncs_source} if syncs > 1 else {})},
                  comm_part=True)
    cp_formula = ("M · L_stage · ((1 + recomputed forwards) · exposed((cp−1) · t_p2p(K,V chunk), forward / cp) + "
                  "exposed((cp−1) · t_p2p(K,V chunk), backward / cp) + (cp−1) · exposed(t_p2p(fp32 dK,dV), "
                  "backward / cp) + t_p2p(fp32 dK,dV)): the all-gather hides only under the first ring step, the "
                  "last dK,dV hop under nothing" if stk.cp and stk.ring_allgather else
                  "M · L_stage · max(0, 3(cp−1) · t_p2p(K,V chunk) − attention if overlapped)")
    t_cp = part("CP communication", t_cp_layer, 0.0, cp_formula,
                {"K,V chunk bytes": kv_chunk, "overlapped": stk.cp,
                 "rotate": "allgather" if stk.ring_allgather else "ring"},
                {"ring": "Liu et al. 2023 ring attention; Megatron context parallel",
                 **({"rotate": stk.ring_source} if stk.ring_allgather else {})},
                comm_part=True)
    t_ep = part("EP communication", ep_layer, 0.0, "M · L_stage · (MoE share) · 4 · "
                + ("t_relayed(T·h·2 B per token copy, k, E, ep)" if dispatch == "node" else "t_all-to-all(T·k·h·2 B, ep)")
                + ("; overlapped (combined 1F1B): u · that + (1 − u) · what outlasts the paired phases + SM share"
                   if ep_overlap else ""),
                {"bytes per rank": token_bytes if dispatch == "node" else a2a_bytes, "dispatcher": moe_dispatcher,
                 "t_all-to-all": a2a, **({"u (unpaired share of the passes)": unpaired} if ep_overlap else {})},
                {"count": "dispatch + combine, forward and backward (GShard/Megatron MoE)",
                 "dispatcher": stk.moe_dispatchers_source or stk.source,
                 **({"overlap": "Megatron-LM models/common/model_chunk_schedule_plan.py (phases) and "
                                "pipeline_parallel/schedules.py get_pp_rank_microbatches (warm-up) at d98e8a6"}
                    if ep_overlap else {})}, comm_part=True)
    t_pp = Term("PP communication", _s(M * t_pp_mb), "s", "M · 2v · t_p2p(T·h·2 B / tp); overlapped: M · 2v · exposed(t_p2p under one virtual stage's compute)",
                {"M": M, "v": vp, "bytes": pp_bytes, "overlapped": stk.pp}, {"scatter/gather": "Narayanan et al. 2021 §4.1"})
    t_bub = Term("pipeline bubble", _s(bubble_frac * stage_mb), "s",
                 "((p−1)/v + (v−1)·max(p − G, 0)/v) × slowest stage time per micro-batch",
                 {"p": pp, "v": vp, "G (micro-batches per group)": group, "stage time": stage_mb,
                  "layers on the slowest stage": n_layers,
                  "first/middle/last layers": (first_l, middle_l, last_l)}, {"bubble": SRC_BUBBLE})

    w.t_comp, w.t_cast, w.t_attn, w.t_elem, w.t_tp, w.t_host = t_comp, t_cast, t_attn, t_elem, t_tp, t_host
    w.t_cp, w.t_ep, w.t_pp, w.t_bub = t_cp, t_ep, t_pp, t_bub


def _dp_and_optimizer(w: _Work) -> None:
    """Data-parallel gradient sync and parameter gather (exposed), and the optimizer step."""
    m, tp, pp, etp, ep, dp, cp, domain, zero = w.m, w.tp, w.pp, w.etp, w.ep, w.dp, w.cp, w.domain, w.zero
    grad_reduce, lin, quantized_params, M, stk = w.grad_reduce, w.lin, w.quantized_params, w.M, w.stk
    overlap_dp, vp, n_layers, node, stage_t, gpu = w.overlap_dp, w.vp, w.n_layers, w.node, w.stage_t, w.gpu

    # Data parallel: gradient sync and parameter gather of this GPU's shard, then the optimizer step.
    pc = param_counts(m)
    total_p = float(pc.total.value)
    expert_p = m.moe_layers * (pc.moe_layer.experts if pc.moe_layer else 0)
    dense_shard = (total_p - expert_p) / (tp * pp)
    expert_shard = expert_p / (etp * pp * ep)
    shard = dense_shard + expert_shard
    grad_bytes = shard * ACT_BYTES
    group = dp * cp
    # Routed experts sync over Megatron's expert-data-parallel group, tp·dp·cp / (etp·ep) ranks spaced etp·ep apart
    # (ranks ETP → EP → EDP → PP), so once EP fills the scale-up domain every member sits in another node and the
    # whole expert shard crosses the NICs; the rest syncs over dp·cp with domain/tp members per node.
    edp = np.maximum(group * tp // (etp * ep), 1)
    local_d, local_e = np.clip(domain // tp, 1, group), np.clip(domain // (etp * ep), 1, edp)
    syncs_d, syncs_e = group > 1, (edp > 1) & (expert_shard > 0)
    z3 = zero >= 3
    # The bandwidth time below is for 16-bit gradients = reduce-scatter (½) + all-gather (½). Gradients of
    # bf16-based training (bf16, fp8, fp4) are reduced in fp32 (Megatron-LM sets accumulate_allreduce_grads_in_fp32
    # for bf16; Llama 3 §3.3.4 reduce-scatters gradients in FP32; torchtitan's FSDP2 reduce dtype is float32), so
    # the reduce-scatter half moves twice the bytes; fp16 (2021 Megatron) reduces in fp16.
    rs = (1.0 if lin == "fp16" else 2.0) if grad_reduce is None else (2.0 if grad_reduce == "fp32" else 1.0)
    # The parameter all-gather half moves 16-bit weights, or the quantized ones (QUANTIZED_BYTES / 2 B). Without ZeRO
    # there is no parameter gather: the all-reduce's own gather half carries the reduced gradients, in the reduce
    # dtype too (Megatron-LM DDP all-reduces its fp32 main_grad buffer), so both halves move rs.
    ag = QUANTIZED_BYTES[lin] / ACT_BYTES if quantized_params else 1.0
    dp_factor = np.where(z3, (ag + 0.5 * rs) * M, np.where(zero >= 1, 0.5 * ag + 0.5 * rs, rs))
    # Latency: the sync splits into buckets (ZeRO-3 / FSDP: every layer of every micro-batch gathered twice, reduced
    # once; Megatron's buckets, stacks.yaml dp_buckets; else one per model chunk), each a collective at NCCL's tuner
    # price: reduce-scatter and all-gather run as rings only, n − 1 steps each; a plain all-reduce (ZeRO 0) as the
    # faster of ring and tree for its bucket (comm.nccl_all_reduce).
    b_min, b_rank = stk.dp_bucket
    if overlap_dp and stk.grad_reduce and b_min > 0:
        # Megatron buckets a stage's first model chunk (dense and expert parameters apart); every other chunk is
        # one bucket
        bucket = np.maximum(b_min, b_rank * group)
        n_d = np.ceil(dense_shard / vp / bucket) + vp - 1
        n_e = np.ceil(expert_shard / vp / bucket) + vp - 1
    else:
        n_d = n_e = _a(vp).astype(float)
    # per step: ZeRO-3 three per layer and micro-batch; ZeRO-1/2 a reduce-scatter and an all-gather per bucket
    n_coll = np.where(z3, 3 * M * n_layers, np.where(zero >= 1, 2 * n_d, 0.0))
    n_coll_e = np.where(z3, 3 * M * n_layers, np.where(zero >= 1, 2 * n_e, 0.0))

    def dp_sync(shard, n, local, buckets, syncs, names):
        """One gradient group's sync: the bytes' bandwidth time, one ring collective's latency, ZeRO 0's bucketed
        all-reduces (that bandwidth time at dp_factor, at NCCL's price), and the three values where the group syncs."""
        bw = comm.all_reduce_bandwidth_time(shard * ACT_BYTES, n, local, node, names[0])
        lat = comm.ring_collective_latency(n, local, node, names[1])
        plain = comm.nccl_all_reduce(bw, n, local, node, names[2], pieces=buckets, scale=dp_factor)
        return (bw, lat, plain), [np.where(syncs, t.value, 0.0) for t in (bw, lat, plain)]

    (ar_dense, lat_dense, plain_d), (bw_d, lat_d, plain_dv) = dp_sync(
        dense_shard, group, local_d, n_d, syncs_d, ("DP gradient all-reduce bandwidth time (dense)",
                                                    "DP ring latency (dense)",
                                                    "DP gradient all-reduces (ZeRO 0, dense)"))
    if expert_p:  # routed experts only where the model has them
        (ar_exp, lat_exp, plain_e), (bw_e, lat_e, plain_ev) = dp_sync(
            expert_shard, edp, local_e, n_e, syncs_e, ("expert-DP gradient all-reduce bandwidth time (routed experts)",
                                                       "expert-DP ring latency (routed experts)",
                                                       "expert-DP gradient all-reduces (ZeRO 0)"))
    else:
        ar_exp = lat_exp = plain_e = None
        bw_e = lat_e = plain_ev = 0.0
    ar_value = bw_d + bw_e
    t_lat = n_coll * lat_d + n_coll_e * lat_e
    t_dp_raw = np.where(zero >= 1, ar_value * dp_factor + t_lat, plain_dv + plain_ev)
    mb_busy = stage_t  # one micro-batch of the slowest stage
    if overlap_dp:
        # reduce-scatter half under the last backward (2/3 of a micro-batch), gather half under the
        # first forward (1/3); ZeRO-3 prefetches under all compute.
        win = np.where(stk.grad_reduce, 2 / 3 * mb_busy, 0.0) + np.where(stk.param_gather, 1 / 3 * mb_busy, 0.0)
        window = np.where(z3, np.where(stk.param_gather, M * mb_busy, 0.0), win)
    else:
        window = 0.0
    t_dp_v = stk.exposed(t_dp_raw, window)
    t_dp = Term("DP communication (exposed)", _s(t_dp_v), "s",
                "max(0, ZeRO 1-3: ZeRO factor × (bandwidth time(dense shard, dp·cp) + bandwidth time(expert shard, "
                "tp·dp·cp/(etp·ep))) + collectives × ring latency; ZeRO 0: the bucketed all-reduces at NCCL's price"
                " − overlap window)",
                {"t_allreduce dense": ar_dense, "ZeRO factor": dp_factor, "parameter gather bytes / 2 B": ag,
                 "grad shard bytes": grad_bytes, "overlap window": window, "stack": stk.key,
                 "collectives per step (reduce-scatters + all-gathers)": n_coll,
                 **({"ring latency per collective": lat_dense} if np.any(zero >= 1) else {}),
                 **({"ZeRO 0 all-reduces (dense)": plain_d} if np.any(zero == 0) else {}),
                 # routed experts only where the model has them
                 **({"t_allreduce experts": ar_exp, "expert-DP ranks": edp, "expert collectives per step": n_coll_e,
                     **({"expert ring latency per collective": lat_exp} if np.any(zero >= 1) else {}),
                     **({"ZeRO 0 all-reduces (experts)": plain_e} if np.any(zero == 0) else {})}
                    if expert_p else {})},
                {"ZeRO": "Rajbhandari et al. 2020: ZeRO-1/2 = reduce-scatter + all-gather (same bytes as all-reduce); "
                         "ZeRO-3 gathers parameters for every forward and backward (1.5x per micro-batch); fp32 gradient "
                         "reduce-scatter for bf16-based training (Megatron-LM accumulate_allreduce_grads_in_fp32, Llama 3 §3.3.4)",
                 "expert-DP group": "Megatron-LM parallel_state.initialize_model_parallel: expert data parallel size = "
                                    "world / (pp · etp · ep), rank order tp-cp-ep-dp-pp with experts etp-ep-edp-pp",
                 "buckets": stk.dp_bucket_source or "one per model chunk (ZeRO-3: per layer, as FSDP wraps layers)",
                 stk.key: stk.source})
    # the distributed optimizer shards each part over the group that syncs it
    opt_shard = dense_shard / np.where(zero >= 1, group, 1) + expert_shard / np.where(zero >= 1, edp, 1)
    t_opt_v = opt_shard * stk.opt_bytes / gpu.memory_bw
    t_opt = Term("optimizer step", _s(t_opt_v), "s",
                 "params in this GPU's optimizer shard × bytes per param (stacks.yaml optimizer_step) / HBM bandwidth",
                 {"params": opt_shard, "bytes per param": stk.opt_bytes, "HBM B/s": gpu.memory_bw},
                 {"bytes": stk.opt_source or OPT_DEFAULT_SOURCE})

    w.expert_p, w.shard, w.syncs_d, w.syncs_e, w.dp_factor = expert_p, shard, syncs_d, syncs_e, dp_factor
    w.ar_dense, w.ar_exp, w.t_dp_v, w.t_dp, w.opt_shard = ar_dense, ar_exp, t_dp_v, t_dp, opt_shard
    w.t_opt_v, w.t_opt = t_opt_v, t_opt


def _offload(w: _Work) -> None:
    """Offload transfers over the host link, and the optimizer step on the CPU where it is offloaded."""
    offload, gpu, stk, lin, m, s, mb, tp, cp = w.offload, w.gpu, w.stk, w.lin, w.m, w.s, w.mb, w.tp, w.cp
    flash_attention, etp, sp, L, rc, full, opt_shard = w.flash_attention, w.etp, w.sp, w.L, w.rc, w.full, w.opt_shard
    M, shard, offload_fraction, n_layers, layer_t = w.M, w.shard, w.offload_fraction, w.n_layers, w.layer_t
    syncs_d, ar_dense, expert_p, syncs_e, ar_exp = w.syncs_d, w.ar_dense, w.expert_p, w.syncs_e, w.ar_exp
    dp_factor, node, t_opt_v, t_opt = w.dp_factor, w.node, w.t_opt_v, w.t_opt

    # Offload (bit flags, sizing.offload.offload_code): every byte crosses the host link, never free.
    off = _a(offload_code(offload))
    host = comm.host_link(gpu)
    # the bytes the memory model parks on the host (sizing.training_memory): the stack's selective policy, its
    # saved linear inputs at their quantized width, MoE layers at their own size, and under block recompute the
    # layers that recompute nothing at their whole size
    in_bytes = saved_input_bytes(stk.key, lin)

    def act_bytes(moe: bool, code):
        return layer_activation_bytes(m, seq=s, micro_batch=mb, tp=tp, cp=cp, sp=sp & (tp > 1), recompute=code,
                                      flash_attention=flash_attention, moe=moe, selective=stk.selective,
                                      input_bytes=in_bytes, etp=etp).value

    def layer_mix(code):  # per layer, averaged over dense and MoE layers
        if not m.is_moe:
            return act_bytes(False, code)
        return (m.dense_layers * act_bytes(False, code) + m.moe_layers * act_bytes(True, code)) / L

    act_layer = layer_mix(rc)
    if np.any((rc == 2) & (full < 1)):
        act_layer = np.where(rc == 2, full * act_layer + (1 - full) * layer_mix(0), act_layer)
    off_opt = np.where(off & 1, opt_shard * (4.0 + OPT_BYTES), 0.0)
    off_w = np.where(off & 2, M * (2 + full) * shard * 2.0, 0.0)
    # activations of the first k = fraction × L_stage layers: one copy out in the forward, one back in the backward
    k_off = np.clip(_a(offload_fraction).astype(float), 0.0, 1.0) * n_layers
    x_layer = act_layer / host.effective_bw  # one layer's copy, one way
    act_raw = np.where(off & 4, M * 2.0 * k_off * x_layer, 0.0)
    nic_mb = 0.0  # NIC time per micro-batch on a PCIe host link (below)
    if stk.offload.overlap:
        # Each pass's copies queue on one side stream under the other layers' compute. With at most L − k sets on
        # the GPU, the stream runs one layer ahead of the compute while it keeps up; when it cannot, the pass ends
        # once the k copies are done and one layer remains on either side: exposed max(0, k·x − (L − 2)·t_pass).
        # k = L − 1 leaves one set resident, so nothing overlaps (TE warns): all k copies wait. Every layer
        # offloaded keeps two sets resident (sizing.training_memory), which overlaps as k = L − 2 does.
        t_fwd = layer_t / (3.0 + full)  # the forward pass's share of a layer (backward 2x, recompute in backward)
        t_bwd = layer_t - t_fwd
        one_resident = (n_layers - k_off < 2.0) & (k_off < n_layers)
        hide = np.where(one_resident, 0.0, np.maximum(n_layers - 2.0, 0.0))
        # On a PCIe host the GPU reaches its NIC through the same PCIe switch (GPUDirect RDMA), so the DP sync's NIC
        # bytes cross the link the copies use: per micro-batch a third of them in the forward, two in the backward.
        # Only the delay they add to the copies is charged here; their own time is the DP part's.
        if host.type == "pcie":
            nic_leg = (np.where(syncs_d, ar_dense.parts[1].value, 0.0)
                       + (np.where(syncs_e, ar_exp.parts[1].value, 0.0) if expert_p else 0.0))
            nic_mb = nic_leg * dp_factor * node.scale_out_per_gpu().effective_bw / host.effective_bw / M

        def pass_exposed(window, nic):
            return np.maximum(k_off * x_layer + nic - window, 0.0) - np.maximum(nic - window, 0.0)

        act_v = np.where(off & 4, M * (pass_exposed(hide * t_fwd, nic_mb / 3) + pass_exposed(hide * t_bwd, 2 * nic_mb / 3)),
                         0.0)
    else:
        act_v = act_raw
    t_off_v = (off_opt + off_w) / host.effective_bw + act_v
    t_off = Term("offload transfers", _s(t_off_v), "s",
                 "(optimizer: shard·(4 + 30) B; weights: M·(2 + recompute)·params·2 B) / host-link bandwidth "
                 "+ activations: M·2·k·x (x = one layer's bytes / host-link bandwidth, k = offloaded layers)"
                 + (", less the compute it runs under: M·Σ_pass max(0, k·x + nic_pass − (L_stage − 2)·t_pass)"
                    " − max(0, nic_pass − (L_stage − 2)·t_pass), nic_pass the DP sync's NIC bytes a PCIe host link"
                    " also carries" if stk.offload.overlap else ""),
                 {"host link": host.key, "B/s": host.effective_bw, "offload code": off, "offloaded layers": k_off,
                  "activation copies in full": act_raw, "NIC time on the host link per micro-batch": nic_mb},
                 {host.key: host.source, **({"activation offload": stk.offload.source} if stk.offload.overlap else {})})
    # Offloaded, the step runs on the CPU at this GPU's share of its memory bandwidth (the node's split over its
    # GPUs; a Grace CPU's own LPDDR5X on Grace parts).
    host_bw, host_src = comm.host_memory_bw_per_gpu(gpu, node)
    t_host_opt = opt_shard * OPT_BYTES / host_bw
    t_opt_v = np.where(off & 1, t_host_opt, t_opt_v)
    t_opt = Term(t_opt.name, _s(t_opt_v), t_opt.unit,
                 t_opt.formula + "; offloaded: / host memory bandwidth per GPU",
                 {**t_opt.inputs, "host B/s per GPU": host_bw},
                 {**t_opt.sources, "host memory": host_src})

    w.t_off_v, w.t_off, w.t_opt_v, w.t_opt = t_off_v, t_off, t_opt_v, t_opt


def _result(w: _Work) -> TrainingPerf | np.ndarray:
    """The step time (the sum only, for the search), or every part with the rates derived from it."""
    step_only, M, n_layers, layer_t, head_on, head_t = w.step_only, w.M, w.n_layers, w.layer_t, w.head_on, w.head_t
    t_pp_mb, bubble_frac, stage_mb, t_dp_v, t_opt_v = w.t_pp_mb, w.bubble_frac, w.stage_mb, w.t_dp_v, w.t_opt_v
    t_off_v, t_comp, t_cast, t_attn, t_elem, t_host = w.t_off_v, w.t_comp, w.t_cast, w.t_attn, w.t_elem, w.t_host
    t_tp, t_cp, t_ep, t_pp, t_bub, t_dp, t_opt = w.t_tp, w.t_cp, w.t_ep, w.t_pp, w.t_bub, w.t_dp, w.t_opt
    t_off, tokens, fl, gpus, gpu, half, causal, m = w.t_off, w.tokens, w.fl, w.gpus, w.gpu, w.half, w.causal, w.m
    s = w.s

    if step_only:  # = Σ of the parts below, without building each array
        return (M * (n_layers * layer_t + np.where(head_on, head_t, 0.0)) + M * t_pp_mb + bubble_frac * stage_mb
                + t_dp_v + t_opt_v + t_off_v)
    step = total("step time", [t_comp, t_cast, t_attn, t_elem, t_host, t_tp, t_cp, t_ep, t_pp, t_bub, t_dp, t_opt, t_off])
    step_v = np.asarray(step.value)
    tps = Term("tokens per second", _s(tokens / step_v), "tokens/s", "global batch tokens / step time",
               {"tokens": tokens, "step": step})
    hw_rate = fl.hardware.value / gpus / step_v
    pk = compute.datasheet_peak(gpu, half)  # MFU's denominator, not the power-limited clock the step runs at
    tflops = Term("TFLOP/s per GPU", _s(hw_rate / 1e12), "TFLOP/s", "hardware FLOPs / GPUs / step (Narayanan's convention)",
                  {"FLOPs": fl.hardware, "GPUs": gpus, "step": step})
    full = fl.model.value if causal is False else training_flops(m, tokens=tokens, seq=s, causal=False).model.value
    halved = fl.model.value if causal is not False else training_flops(m, tokens=tokens, seq=s, causal=True).model.value
    mfu = Term("MFU", _s(halved / gpus / step_v / pk.value), "",
               "model FLOPs (causal attention halved, Megatron-LM 2024 / Llama 3 convention) / "
               "(GPUs · step · 16-bit datasheet peak)",
               {"model FLOPs": halved, "peak": pk}, {"convention": "Megatron-LM num_floating_point_operations (causal /2)"})
    mfu_full = Term("MFU (full attention)", _s(full / gpus / step_v / pk.value), "",
                    "model FLOPs with full attention (Narayanan et al. 2021 / PaLM convention) / "
                    "(GPUs · step · 16-bit datasheet peak)",
                    {"model FLOPs": full, "peak": pk}, {"convention": SRC_BUBBLE.split(':')[0]})
    hfu = Term("HFU", _s(hw_rate / pk.value), "", "hardware FLOPs (with recompute) / (GPUs · step · datasheet peak)",
               {"hardware FLOPs": fl.hardware, "peak": pk})
    return TrainingPerf(step, fl, _s(gpus), tps, tflops, mfu, hfu, _s(M), mfu_full)


def _s(v):
    return float(v) if np.ndim(v) == 0 else v

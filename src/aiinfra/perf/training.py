"""Training step time for a parallel layout, vectorized over layouts.

step = compute + elementwise + exposed communication + pipeline bubble, where per iteration
(M = global batch / (dp · micro-batch) micro-batches per pipeline):
- compute: hardware FLOPs / GPUs at peak × matmul efficiency (perf.compute, calibrated);
- elementwise: Korthikanti Table 2 activation bytes × 2 / HBM bandwidth (norms, GeLU, dropout,
  softmax; flash attention removes the 5·a·s² softmax bytes);
- TP: 4 all-reduces of the micro-batch's activations per layer (2 forward, 2 backward, Megatron
  f/g operators; 2 more with full recompute); SP's reduce-scatter + all-gather move the same bytes;
- CP: a ring passing each rank's K,V chunk cp−1 times, forward and (twice) backward;
- EP: 4 all-to-alls per MoE layer (dispatch and combine, forward and backward);
- PP: 2·v point-to-point sends per micro-batch of the activations, split across TP ranks
  (Narayanan §4.1 scatter/gather);
- bubble: (p−1)/(v·M) of the pipelined work (Narayanan et al. 2021 §2.2, interleaved schedule);
- DP: gradient all-reduce (ZeRO-1/2: reduce-scatter + all-gather, same bytes; ZeRO-3 one more
  parameter all-gathers per micro-batch) over dp·cp ranks, NVLink then NICs (perf.comm), optionally
  overlapped with the last micro-batch's backward pass (ZeRO-3: with all compute, as FSDP prefetches).
Placement follows Megatron's rank order TP → CP → EP/DP → PP: a group stays on NVLink while it fits
in a node. Optimizer-step time and load imbalance of the LM head are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aiinfra.explain import Number, Term, total
from aiinfra.perf import comm, compute
from aiinfra.perf.flops import TrainingFlops, recompute_code, training_flops
from aiinfra.sizing.params import param_counts
from aiinfra.specs import GpuSpec, ModelSpec

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
    causal: bool = False,
    overlap_dp: bool = True,
    node: comm.Node | None = None,
    cal: compute.TrainingCalibration | None = None,
) -> TrainingPerf:
    """Step time of training `m` on `gpu` with the given layout (scalars or broadcastable arrays).

    `global_batch` counts sequences of `seq` tokens; micro_batch is per DP rank.
    """
    node = node or comm.node_for(gpu)
    cal = cal or compute.training_calibration()
    tp, pp, dp, cp, ep, mb, vp, zero = (_a(x) for x in (tp, pp, dp, cp, ep, micro_batch, vp, zero))
    rc = _a(recompute_code(recompute))
    B, s = _a(global_batch).astype(float), _a(seq).astype(float)
    gpn = node.gpus_per_node
    gpus = tp * pp * dp * cp
    M = B / (dp * mb)  # micro-batches per iteration, per pipeline
    tokens = B * s
    h, L = m.hidden, m.layers
    fl = training_flops(m, tokens=tokens, seq=s, recompute=rc, causal=causal)

    # Compute: matmul FLOPs at the calibrated efficiency of this layout's largest GEMM.
    mb_tokens = mb * s / cp
    if m.is_moe and m.dense_layers == 0:
        gemm = 2 * mb_tokens * m.experts_per_token / m.experts * ep * h * m.moe_ffn / tp
    else:
        gemm = 2 * mb_tokens * h * m.ffn / tp
    imbalance = np.ceil(L / pp) / (L / pp)  # uneven stages: the fullest one sets the pace
    t_comp = compute.matmul_time(fl.hardware.value / gpus * imbalance, gemm / 1e9, gpu, dtype, cal, "matmul compute")

    # Elementwise: Korthikanti Table 2 bytes per token per layer, per forward-equivalent pass.
    ffn_act = (m.experts_per_token + m.shared_experts) * m.moe_ffn if m.is_moe else m.ffn
    per_tok_layer = 18 * h + 4 * ffn_act  # = 34h for ffn = 4h
    softmax = 0.0 if flash_attention else 5 * m.heads * np.minimum(s, m.sliding_window or s)
    passes = 3 + (rc == 2)
    soft_passes = 3 + (rc >= 1)
    act_bytes = tokens * L * (per_tok_layer * passes + softmax * soft_passes) / gpus * imbalance
    t_elem = compute.elementwise_time(act_bytes, gpu, cal, "elementwise (memory-bound)")

    # Tensor parallel: activations of one micro-batch, all-reduced over TP ranks.
    layers_per_stage = np.ceil(L / pp)  # the fullest stage sets the pipeline's pace
    n_tp = 4 + 2 * (rc == 2)
    ar_tp = comm.hierarchical_all_reduce(mb_tokens * h * ACT_BYTES, tp, np.minimum(tp, gpn), node, "TP all-reduce")
    t_tp_v = np.where(tp > 1, M * layers_per_stage * n_tp * ar_tp.value, 0.0)
    t_tp = Term("TP communication", _s(t_tp_v), "s", "M · (L/p) · n_coll · t_allreduce(mb·s/cp·h·2 B, tp)",
                {"M": M, "L/p": layers_per_stage, "n_coll": n_tp, "t_allreduce": ar_tp}, {"count": SRC_TP})

    # Context parallel: K,V chunk ring inside the node if TP·CP fits there.
    kv_chunk = mb_tokens * 2 * m.kv_heads * m.head_dim * ACT_BYTES / tp
    cp_link_in = tp * cp <= gpn
    cp_in = comm.p2p(kv_chunk, node.scale_up).value
    cp_out = comm.p2p(kv_chunk, node.scale_out_per_gpu()).value
    t_cp_v = np.where(cp > 1, M * layers_per_stage * 3 * (cp - 1) * np.where(cp_link_in, cp_in, cp_out), 0.0)
    t_cp = Term("CP communication", _s(t_cp_v), "s", "M · (L/p) · 3(cp−1) · t_p2p(K,V chunk)",
                {"M": M, "K,V chunk bytes": kv_chunk}, {"ring": "Liu et al. 2023 ring attention; Megatron context parallel"})

    # Expert parallel: all-to-all of routed tokens per MoE layer.
    moe_per_stage = np.ceil(m.moe_layers / pp)
    a2a_bytes = mb_tokens * m.experts_per_token * h * ACT_BYTES
    ep_in = comm.all_to_all(a2a_bytes, ep, node.scale_up).value
    ep_out = comm.all_to_all(a2a_bytes, ep, node.scale_out_per_gpu()).value
    t_ep_v = np.where(ep > 1, M * moe_per_stage * 4 * np.where(tp * ep <= gpn, ep_in, ep_out), 0.0)
    t_ep = Term("EP communication", _s(t_ep_v), "s", "M · (MoE layers/p) · 4 · t_all-to-all(tokens·k·h·2 B, ep)",
                {"M": M, "bytes per rank": a2a_bytes}, {"count": "dispatch + combine, forward and backward (GShard/Megatron MoE)"})

    # Pipeline: activations to the next stage, split over TP ranks; across nodes once the stage
    # below fills a node.
    pp_bytes = mb_tokens * h * ACT_BYTES / tp
    pp_out = tp * cp * dp >= gpn
    t_p2p = np.where(pp_out, comm.p2p(pp_bytes, node.scale_out_per_gpu()).value, comm.p2p(pp_bytes, node.scale_up).value)
    t_pp_v = np.where(pp > 1, M * 2 * vp * t_p2p, 0.0)
    t_pp = Term("PP communication", _s(t_pp_v), "s", "M · 2v · t_p2p(mb·s/cp·h·2 B / tp)",
                {"M": M, "v": vp, "bytes": pp_bytes}, {"scatter/gather": "Narayanan et al. 2021 §4.1"})

    pipelined = t_comp.value + t_elem.value + t_tp_v + t_cp_v + t_ep_v + t_pp_v
    bubble_frac = (pp - 1) / (vp * M)
    t_bub = Term("pipeline bubble", _s(bubble_frac * pipelined), "s", "(p−1)/(v·M) × pipelined work",
                 {"p": pp, "v": vp, "M": M, "bubble fraction": bubble_frac}, {"bubble": SRC_BUBBLE})

    # Data parallel gradient sync, per GPU's parameter shard.
    pc = param_counts(m)
    total_p = float(pc.total.value)
    expert_p = m.moe_layers * (pc.moe_layer.experts if pc.moe_layer else 0)
    shard = (total_p - expert_p) / (tp * pp) + expert_p / (tp * pp * ep)
    grad_bytes = shard * ACT_BYTES
    group = dp * cp
    ar_dp = comm.hierarchical_all_reduce(grad_bytes, group, np.clip(gpn // tp, 1, group), node, "DP gradient all-reduce")
    # ZeRO-0/1/2: one all-reduce (or reduce-scatter + all-gather, same bytes) per iteration, overlappable
    # with the last micro-batch's backward. ZeRO-3/FSDP: per micro-batch two parameter all-gathers
    # (forward, backward) and a gradient reduce-scatter = 1.5 all-reduces, prefetched under all compute.
    z3 = zero >= 3
    dp_factor = np.where(z3, 1.5 * M, 1.0)
    t_dp_raw = np.where(group > 1, ar_dp.value * dp_factor, 0.0)
    busy = t_comp.value + t_elem.value
    window = np.where(z3, busy, (2 / 3) * busy / M) if overlap_dp else 0.0
    t_dp_v = np.maximum(t_dp_raw - window, 0.0)
    t_dp = Term("DP communication (exposed)", _s(t_dp_v), "s",
                "max(0, ZeRO factor × t_allreduce(grad shard, dp·cp) − overlap window)",
                {"t_allreduce": ar_dp, "ZeRO factor": dp_factor, "grad shard bytes": grad_bytes,
                 "overlap window": window},
                {"ZeRO": "Rajbhandari et al. 2020: ZeRO-1/2 = reduce-scatter + all-gather (same bytes as all-reduce); "
                         "ZeRO-3 gathers parameters for every forward and backward (1.5x per micro-batch)"})

    step = total("step time", [t_comp, t_elem, t_tp, t_cp, t_ep, t_pp, t_bub, t_dp])
    step_v = np.asarray(step.value)
    tps = Term("tokens per second", _s(tokens / step_v), "tokens/s", "global batch tokens / step time",
               {"tokens": tokens, "step": step})
    hw_rate = fl.hardware.value / gpus / step_v
    pk = compute.peak(gpu, dtype)
    tflops = Term("TFLOP/s per GPU", _s(hw_rate / 1e12), "TFLOP/s", "hardware FLOPs / GPUs / step (Narayanan's convention)",
                  {"FLOPs": fl.hardware, "GPUs": gpus, "step": step})
    mfu = Term("MFU", _s(fl.model.value / gpus / step_v / pk.value), "", "model FLOPs / (GPUs · step · peak)",
               {"model FLOPs": fl.model, "peak": pk})
    hfu = Term("HFU", _s(hw_rate / pk.value), "", "hardware FLOPs (with recompute) / (GPUs · step · peak)",
               {"hardware FLOPs": fl.hardware, "peak": pk})
    return TrainingPerf(step, fl, _s(gpus), tps, tflops, mfu, hfu, _s(M))


def _s(v):
    return float(v) if np.ndim(v) == 0 else v

"""Software-stack profiles (catalog/data/stacks.yaml): what a training stack overlaps, which kernels it calls and
the traffic it counts, each setting read strictly (anything malformed is refused in one line, never read as absent).
perf.training charges a step by them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aiinfra.catalog.loader import default_catalog, is_amount, is_count
from aiinfra.errors import AiinfraError
from aiinfra.sizing.layout import (PARALLEL_AXES, ZERO_STAGES, stack_parallelism, stack_tp_past_kv_heads,
                                   stack_zero_stages)
from aiinfra.sizing.offload import ActivationOffload, activation_offload
from aiinfra.sizing.pipeline import stack_interleave, stack_uneven_pipeline
from aiinfra.sizing.recompute import selective_policy
from aiinfra.specs import ATTENTION_KERNELS, FP8_GEMM_ROUTES

TP_MODES = ("none", "ring")  # TP communication: blocking, or overlapped with its GEMMs chunk by chunk

# A stack without a counted cross-entropy (stacks.yaml cross_entropy absent), and why
CE_DEFAULT_BYTES = 12.0
CE_DEFAULT_SOURCE = ("not counted for this stack: fp32 logits written, the softmax read and written, the gradient "
                     "written (4 B each) [U]")
# The optimizer step where a stack counts none of its own (stacks.yaml optimizer_step absent), and why
OPT_BYTES = 30.0
OPT_DEFAULT_SOURCE = ("mixed-precision Adam, fused: read fp32 master, grad, m, v (16 B); write master, m, v (12 B) and the "
                      "bf16 weight (2 B)")


@dataclass(frozen=True)
class Stack:
    key: str
    tp: bool
    pp: bool
    grad_reduce: bool
    param_gather: bool
    cp: bool
    source: str
    uneven_pipeline: bool = True
    sm_fraction: float = 0.0
    fp8_gemm: str = ""  # kernel route of FP8 GEMMs ("" = Transformer Engine / cuBLASLt; "scaled_mm" = torch._scaled_mm)
    selective: str = "attention"  # what selective recompute repeats (sizing.recompute.SELECTIVE_POLICIES)
    tp_split: bool = False  # overlapped TP runs each forward / row-parallel dgrad GEMM as tp chunks
    tp_modes: tuple[int, ...] = (0,)  # TP overlap modes the stack offers: 0 blocking, 1 overlapped (chunked)
    tp_backward_async: bool = False  # column-parallel backward collectives issued async under its dgrad/wgrad GEMMs
    expert_gemms_at_once: int = 1  # a GPU's local expert GEMMs that run together (0: all, one grouped kernel)
    moe_dispatchers: tuple[tuple[str, str], ...] = (("alltoall", "expert"),)  # (dispatcher, what it sends once)
    moe_dispatchers_source: str = ""
    fp8_casts: str = ""  # "te": one amax pass + one fused cast-transpose per tensor, SP shards cast before the gather
    attention_kernel: str = ""  # flash-attention route ("" = the architecture's default figure; cudnn, fa2, fa3)
    moe_module_s: float = 0.0  # host time to issue one Transformer Engine linear module of a MoE layer, fwd + bwd
    moe_stall_s: float = 0.0  # host time after each forward MoE layer's sync until the GPU has work queued again
    moe_host_fit: str = ""  # the rows both were fitted on, and their source
    fp8_gather: bool = False  # FP8 linears: a sequence-parallel operand is quantized on its shard, gathered in FP8
    separate_projections: bool = False  # Q, K, V (and MLP gate, up) are separate linears reading one shared input
    # host syncs a MoE layer's expert activation adds per forward, by the model's glu_activation (stacks.yaml
    # moe_activation_syncs), and their source
    moe_act_syncs: tuple[tuple[str, int], ...] = ()
    moe_act_syncs_source: str = ""
    # context-parallel ring outside the attention kernel (stacks.yaml cp_ring): bytes moved per element of the
    # query-sized and the K-sized tensors per ring step, forward and backward, whether K and V ride the ring
    # expanded to the query heads, and the source
    ring_bytes: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    ring_kv_query_heads: bool = False
    ring_source: str = ""
    # K,V all-gathered once per attention call (PyTorch's allgather rotater), not passed on step by step
    ring_allgather: bool = False
    # how the overlapped (chunked) TP pairs collectives with GEMMs (stacks.yaml tp_overlap_fusion): "userbuffers"
    # (Transformer Engine) or "matmul" (PyTorch's micro-pipelined async TP: only a matmul's own collective)
    tp_fusion: str = "userbuffers"
    # sequence parallelism shards the sequence dim behind the batch dim, so blocking TP collectives copy to and from
    # the collective's layout (stacks.yaml sp_layout_copies)
    sp_layout_copies: bool = False
    # how the stack offloads activations (stacks.yaml activation_offload): overlap, what it combines with, its source
    offload: ActivationOffload = field(default_factory=ActivationOffload)
    # HBM bytes the loss moves per logit element, forward + backward (stacks.yaml cross_entropy), and their source
    ce_bytes: float = CE_DEFAULT_BYTES
    ce_source: str = ""
    # HBM bytes the optimizer step moves per parameter of this GPU's optimizer shard (stacks.yaml optimizer_step,
    # gradient clipping included where the stack counts it), and their source
    opt_bytes: float = OPT_BYTES
    opt_source: str = ""
    # the stack's elementwise HBM traffic as a multiple of the fused count (stacks.yaml elementwise: eager PyTorch
    # runs each op of a norm, RoPE or SwiGLU as its own kernel), and the rows it was fitted on
    elementwise_factor: float = 1.0
    elementwise_fit: str = ""
    # HBM bytes the MoE token permutation moves per routed copy element, per pass (forward or backward), by dispatcher
    # ("alltoall" with one local expert: "alltoall_one_local_expert"), stacks.yaml moe_permute, and its source
    moe_permute: tuple[tuple[str, float], ...] = ()
    moe_permute_source: str = ""
    # the model-parallel axes the stack runs (stacks.yaml parallelism): the search keeps the others at 1
    parallelism: tuple[str, ...] = PARALLEL_AXES
    # the ZeRO stages it can run, alone and beside pipeline parallelism (stacks.yaml zero_stages, zero_stages_with_pp)
    zero_stages: tuple[int, ...] = ZERO_STAGES
    zero_stages_with_pp: tuple[int, ...] = ZERO_STAGES
    # how its interleaved schedule groups a step's micro-batches (stacks.yaml interleave: sizing INTERLEAVE_RULES)
    interleave: str = "multiple"
    # how the DP gradient reduce-scatter and parameter all-gather split into collectives (stacks.yaml dp_buckets):
    # (minimum bucket, parameters added per DP rank) of Megatron's rule, (0, 0) for one per model chunk
    dp_bucket: tuple[float, float] = (0.0, 0.0)
    dp_bucket_source: str = ""
    # TP beyond a GQA model's KV heads, each replicated, its QKV output all-gathered over TP (stacks.yaml)
    tp_past_kv_heads: bool = False

    def permute_bytes(self, dispatcher: str, local_experts):
        """Bytes per routed copy element and pass for `dispatcher` (0 where the stack counts none)."""
        b = dict(self.moe_permute)
        one = b.get(f"{dispatcher}_one_local_expert", b.get(dispatcher, 0.0))
        return np.where(np.asarray(local_experts) > 1, b.get(dispatcher, 0.0), one)

    def exposed(self, t, window):
        """Communication time left on the critical path when it runs under `window` of compute."""
        return np.maximum(t - window, 0.0) + self.sm_fraction * np.minimum(t, window)


def stack(name: str = "megatron-core") -> Stack:
    """A software-stack profile (catalog/data/stacks.yaml): which communications it overlaps."""
    key, e = default_catalog().entry("stacks", name)
    o = _overlap(key, e.get("overlap", {}))
    sel = selective_policy(key)
    modes = _tp_modes(key, e.get("tp_overlap_modes", ["ring"] if o.get("tp") else ["none"]))
    dispatchers = _dispatchers(key, e.get("moe_dispatchers") or {"alltoall": "expert"})
    return Stack(key, o["tp"], o["pp"], o["grad_reduce"], o["param_gather"], o["cp"], e.get("source", ""),
                 stack_uneven_pipeline(key), _sm_fraction(key, e.get("overlap_sm_fraction", 0.0)),
                 _fp8_gemm(key, e.get("fp8_gemm", "")), sel,
                 _flag(key, "tp_overlap_split", e.get("tp_overlap_split", False)), modes,
                 _flag(key, "tp_backward_async", e.get("tp_backward_async", False)),
                 _at_once(key, e.get("expert_gemms_at_once", 1)),
                 dispatchers,
                 str(e.get("moe_dispatchers_source", "")), _fp8_casts(key, e.get("fp8_casts", "")),
                 _attention_kernel(key, e.get("attention_kernel", "")), *_moe_host(key, e.get("moe_host")),
                 _fp8_gather(key, e.get("fp8_gather", e.get("fp8_casts") == "te")),
                 _flag(key, "separate_projections", e.get("separate_projections", False)),
                 _act_syncs(key, e.get("moe_activation_syncs") or {}), str(e.get("moe_activation_syncs_source", "")),
                 *_cp_ring(key, e.get("cp_ring")), _tp_fusion(key, e.get("tp_overlap_fusion", "userbuffers")),
                 _flag(key, "sp_layout_copies", e.get("sp_layout_copies", False)),
                 activation_offload(key), *_cross_entropy(key, e.get("cross_entropy")),
                 *_optimizer_step(key, e.get("optimizer_step")),
                 *_elementwise(key, e.get("elementwise")), *_moe_permute(key, e.get("moe_permute"), dispatchers),
                 parallelism=stack_parallelism(key), interleave=stack_interleave(key),
                 **dict(zip(("zero_stages", "zero_stages_with_pp"), stack_zero_stages(key))),
                 tp_past_kv_heads=stack_tp_past_kv_heads(key), **_dp_buckets(key, e.get("dp_buckets")))


OVERLAPS = ("tp", "pp", "grad_reduce", "param_gather", "cp")  # the communications a stack may run under compute


def _overlap(key: str, raw) -> dict[str, bool]:
    """stacks.yaml overlap: {tp, pp, grad_reduce, param_gather, cp: true or false}, each absent one false; an unknown
    key or a value that is not true/false is refused, not read as false."""
    if not isinstance(raw, dict) or set(raw) - set(OVERLAPS) or any(not isinstance(v, bool) for v in raw.values()):
        raise AiinfraError(f"stack '{key}': overlap must map {', '.join(OVERLAPS)} to true or false, got {raw!r}")
    return {k: raw.get(k, False) for k in OVERLAPS}


def _tp_modes(key: str, raw) -> tuple[int, ...]:
    """stacks.yaml tp_overlap_modes: a non-empty list of TP_MODES names; an unknown one is refused, not skipped."""
    if not isinstance(raw, list) or not raw or any(x not in TP_MODES for x in raw):
        raise AiinfraError(f"stack '{key}': tp_overlap_modes must list {' and/or '.join(TP_MODES)}, got {raw!r}")
    return tuple(TP_MODES.index(x) for x in raw)


def _sm_fraction(key: str, raw) -> float:
    """stacks.yaml overlap_sm_fraction: the share of the SMs an overlapped collective holds, in [0, 1)."""
    if not is_amount(raw) or raw >= 1:
        raise AiinfraError(f"stack '{key}': overlap_sm_fraction must be a fraction in [0, 1), got {raw!r}")
    return float(raw)


def _fp8_gemm(key: str, raw) -> str:
    """stacks.yaml fp8_gemm: scaled_mm, or absent (Transformer Engine / cuBLASLt); anything else is refused."""
    if raw not in FP8_GEMM_ROUTES:
        raise AiinfraError(f"stack '{key}': fp8_gemm must be scaled_mm or absent, got {raw!r}")
    return raw


def _dp_buckets(key: str, raw) -> dict:
    """stacks.yaml dp_buckets: {min_params, params_per_rank: numbers >= 0, source}, or absent (one bucket per model
    chunk). Anything else is refused, not read as absent."""
    if raw is None:
        return {}
    vals = [raw.get(k) for k in ("min_params", "params_per_rank")] if isinstance(raw, dict) else []
    if (len(vals) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in vals)
            or not raw.get("source") or set(raw) != {"min_params", "params_per_rank", "source"}):
        raise AiinfraError(f"stack '{key}': dp_buckets must be {{min_params, params_per_rank: numbers >= 0, source}}, "
                           f"got {raw!r}")
    return {"dp_bucket": (float(vals[0]), float(vals[1])), "dp_bucket_source": str(raw["source"])}


def _moe_permute(key: str, raw, dispatchers: tuple[tuple[str, str], ...]) -> tuple[tuple[tuple[str, float], ...], str]:
    """stacks.yaml moe_permute: {dispatcher: bytes per routed copy element per pass, ..., source}; absent: none. Each
    key is one of the stack's dispatchers, or one with _one_local_expert (its bytes when a GPU holds one expert):
    another would never be read."""
    if not raw:
        return (), ""
    if not isinstance(raw, dict) or not raw.get("source"):
        raise AiinfraError(f"stack '{key}': moe_permute maps dispatchers to bytes and names its source")
    names = [d for d, _ in dispatchers]
    out = []
    for k, v in raw.items():
        if k == "source":
            continue
        if str(k).removesuffix("_one_local_expert") not in names:
            raise AiinfraError(f"stack '{key}': moe_permute {k} names none of its dispatchers ({', '.join(names)}), "
                               "with or without _one_local_expert")
        if not isinstance(v, (int, float)) or v < 0:
            raise AiinfraError(f"stack '{key}': moe_permute {k} must be a non-negative number of bytes, got {v!r}")
        out.append((str(k), float(v)))
    return tuple(out), str(raw["source"])


# How the chunked TP overlap (tp_overlap_split) pairs collectives with GEMMs: Transformer Engine's userbuffers, or
# PyTorch's async TP, which fuses a collective only with the matmul that consumes or produces it
TP_FUSIONS = ("userbuffers", "matmul")


def _tp_fusion(key: str, raw) -> str:
    """stacks.yaml tp_overlap_fusion: userbuffers (absent) or matmul; anything else is refused."""
    if raw not in TP_FUSIONS:
        raise AiinfraError(f"stack '{key}': tp_overlap_fusion must be {' or '.join(TP_FUSIONS)}, got {raw!r}")
    return raw


RING_BYTES = ("forward_q", "forward_kv", "backward_q", "backward_kv")
# K,V passed to the next rank each step (ring; torchtitan names PyTorch's way of doing that "alltoall"), or
# all-gathered once per call
CP_ROTATES = ("ring", "alltoall", "allgather")


def _cp_ring(key: str, raw) -> tuple[tuple[float, float, float, float], bool, str, bool]:
    """stacks.yaml cp_ring: {forward_q, forward_kv, backward_q, backward_kv: bytes >= 0 per element and ring step,
    kv_heads: kv | query, rotate: ring | alltoall | allgather (absent: ring), source}, or absent (no traffic charged outside
    the kernel, K,V passed on step by step). Anything else is refused."""
    if raw is None:
        return (0.0, 0.0, 0.0, 0.0), False, "", False
    keys = {*RING_BYTES, "kv_heads", "source"}
    ok = isinstance(raw, dict) and keys <= set(raw) <= keys | {"rotate"} and bool(raw.get("source"))
    vals = [raw.get(k) for k in RING_BYTES] if ok else []
    rotate = raw.get("rotate", "ring") if ok else None
    if (not ok or raw["kv_heads"] not in ("kv", "query") or rotate not in CP_ROTATES
            or not all(map(is_amount, vals))):
        raise AiinfraError(f"stack '{key}': cp_ring must be {{{', '.join(RING_BYTES)}: bytes >= 0, kv_heads: kv or "
                           f"query, rotate: {' or '.join(CP_ROTATES)} (optional), source}}, got {raw!r}")
    return tuple(float(v) for v in vals), raw["kv_heads"] == "query", str(raw["source"]), rotate == "allgather"


def _act_syncs(key: str, raw) -> tuple[tuple[str, int], ...]:
    """stacks.yaml moe_activation_syncs: {activation: host syncs per forward call, an integer >= 0}; anything else
    is refused, not read as none."""
    if not isinstance(raw, dict) or any(not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int)
                                        or v < 0 for k, v in raw.items()):
        raise AiinfraError(f"stack '{key}': moe_activation_syncs must map an activation to a count >= 0, got {raw!r}")
    return tuple(sorted(raw.items()))




def _flag(key: str, name: str, raw) -> bool:
    """A true/false stacks.yaml setting; anything else is refused, not read as false."""
    if not isinstance(raw, bool):
        raise AiinfraError(f"stack '{key}': {name} must be true or false, got {raw!r}")
    return raw


def _fp8_gather(key: str, raw) -> bool:
    """stacks.yaml fp8_gather: true or false (absent: true where fp8_casts is te); anything else is refused."""
    return _flag(key, "fp8_gather", raw)


def _moe_host(key: str, raw) -> tuple[float, float, str]:
    """stacks.yaml moe_host: {module_ms, sync_stall_ms: milliseconds >= 0, fit: the rows and source}, or absent (no
    host term): (seconds, seconds, fit). Anything else is refused, not read as zero."""
    if raw is None:
        return 0.0, 0.0, ""
    vals = [raw.get(k) for k in ("module_ms", "sync_stall_ms")] if isinstance(raw, dict) else [None]
    if (not all(map(is_amount, vals)) or not raw.get("fit")
            or set(raw) - {"module_ms", "sync_stall_ms", "fit"}):
        raise AiinfraError(f"stack '{key}': moe_host must be {{module_ms: ms >= 0, sync_stall_ms: ms >= 0, fit: rows "
                           f"and source}}, got {raw!r}")
    return float(vals[0]) / 1e3, float(vals[1]) / 1e3, str(raw["fit"])


def _counted_bytes(key: str, name: str, per: str, raw, default: float) -> tuple[float, str]:
    """A stacks.yaml traffic count: {bytes: HBM bytes per `per` > 0, source}, or absent (`default`, no source);
    anything else is refused in one line naming the entry `name`, not read as the default."""
    if raw is None:
        return default, ""
    if (not isinstance(raw, dict) or set(raw) != {"bytes", "source"} or not is_amount(raw["bytes"])
            or not raw["bytes"] or not raw["source"]):
        raise AiinfraError(f"stack '{key}': {name} must be {{bytes: bytes per {per} > 0, source}}, got {raw!r}")
    return float(raw["bytes"]), str(raw["source"])


def _cross_entropy(key: str, raw) -> tuple[float, str]:
    """stacks.yaml cross_entropy: the loss's bytes per logit element, or absent (CE_DEFAULT_BYTES)."""
    return _counted_bytes(key, "cross_entropy", "logit element", raw, CE_DEFAULT_BYTES)


def _optimizer_step(key: str, raw) -> tuple[float, str]:
    """stacks.yaml optimizer_step: the optimizer step's bytes per parameter of the optimizer shard, or absent
    (OPT_BYTES, fused mixed-precision Adam)."""
    return _counted_bytes(key, "optimizer_step", "parameter", raw, OPT_BYTES)


def _elementwise(key: str, raw) -> tuple[float, str]:
    """stacks.yaml elementwise: {factor: a multiple > 0 of the fused elementwise traffic, fit}, or absent (1: fused
    kernels); anything else is refused, not read as fused."""
    if raw is None:
        return 1.0, ""
    if (not isinstance(raw, dict) or set(raw) != {"factor", "fit"} or not is_amount(raw["factor"])
            or not raw["factor"] or not raw["fit"]):
        raise AiinfraError(f"stack '{key}': elementwise must be {{factor: a multiple > 0 of the fused traffic, fit}}, "
                           f"got {raw!r}")
    return float(raw["factor"]), str(raw["fit"])


def _fp8_casts(key: str, raw) -> str:
    """stacks.yaml fp8_casts: te, or absent; any other value is refused, not read as separate casts."""
    if raw in ("", "te"):
        return str(raw)
    raise AiinfraError(f"stack '{key}': fp8_casts must be te or absent, got {raw!r}")


def _attention_kernel(key: str, raw) -> str:
    """stacks.yaml attention_kernel: cudnn | fa2 | fa3 | triton, or absent; any other value is refused, not read as
    cuDNN."""
    if raw in ("",) + ATTENTION_KERNELS:
        return str(raw)
    raise AiinfraError(f"stack '{key}': attention_kernel must be one of {', '.join(ATTENTION_KERNELS)}, got {raw!r}")


def _at_once(key: str, raw) -> int:
    """stacks.yaml expert_gemms_at_once: a positive count, or "all" (0 here)."""
    if raw == "all":
        return 0
    if is_count(raw):
        return raw
    raise AiinfraError(f"stack '{key}': expert_gemms_at_once must be a positive integer or 'all', got {raw!r}")


DISPATCH_COPIES = ("expert", "node")  # what a dispatcher sends once: each routed (token, expert), or each node/rank


def _dispatchers(key: str, raw) -> tuple[tuple[str, str], ...]:
    """stacks.yaml moe_dispatchers: {dispatcher: expert | node}; any other value is refused, not read as expert."""
    bad = {d: v for d, v in raw.items() if v not in DISPATCH_COPIES} if isinstance(raw, dict) else raw
    if bad:
        raise AiinfraError(f"stack '{key}': moe_dispatchers maps each dispatcher to expert or node, got {bad!r}")
    return tuple(raw.items())

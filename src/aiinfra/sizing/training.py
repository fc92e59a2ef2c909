"""Training memory per GPU: model states (weights, gradients, optimizer), activations, overhead.

Layout arguments (tp, pp, dp, cp, ep, sp, vp, micro_batch, zero, recompute) accept numpy arrays:
the planner evaluates millions of layouts with this same code, and `aiinfra size train`
explains one of them. Sources:
- model states: ZeRO (Rajbhandari et al., SC'20, Fig. 1), Megatron bytes/param (18, or 6 + 12/d
  with the distributed optimizer), DeepSpeed estimators (stage_1_and_2.py, memory.rst);
- activations: Korthikanti et al. 2022 Table 2, generalised to GQA, gated MLPs and no-dropout
  models by counting the same tensors; Megatron theoretical_memory_usage.py for the
  embedding/output terms and the interleaved-schedule penalty.

The parts live beside it: model states in sizing.states, activations in sizing.activations, which layouts
can be built in sizing.layout and sizing.pipeline, recompute and offload settings in sizing.recompute and
sizing.offload; this module adds them up per GPU against the device's usable memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aiinfra.catalog.loader import default_catalog, is_amount
from aiinfra.errors import SpecError
from aiinfra.explain import Term, total
from aiinfra.sizing.activations import SRC_INTERLEAVE, SRC_OUT, layer_activation_bytes
from aiinfra.sizing.layout import check_layout
from aiinfra.sizing.offload import OptimizerOffload, offload_code
from aiinfra.sizing.params import param_counts
from aiinfra.sizing.pipeline import check_interleave, interleave_group, stage_layers
from aiinfra.sizing.recompute import RECOMPUTE
from aiinfra.sizing.states import model_states, stage_params, zero3_gather_buffer
from aiinfra.specs import GpuSpec, ModelSpec


@dataclass
class TrainingMemory:
    weights: Term
    gradients: Term
    optimizer: Term
    activations: Term
    overhead: Term
    total: Term
    extra: list[Term] = field(default_factory=list)
    stage: Any = "first"
    params_per_gpu: Any = 0.0

    @property
    def terms(self) -> list[Term]:
        return [self.weights, self.gradients, self.optimizer, *self.extra, self.activations, self.overhead, self.total]


def _runtime(kind: str) -> dict:
    """runtime.yaml `kind`: the fixed bytes must be numbers >= 0 and the fragmentation share lie in [0, 1), read
    strictly so a --catalog override cannot shrink or inflate the reserve without a word."""
    rt = default_catalog().entry("runtime", kind)[1]
    bad = [f for f in ("cuda_context_bytes", "comm_buffers_bytes") if f in rt and not is_amount(rt[f])]
    if "fragmentation" in rt and not (is_amount(rt["fragmentation"]) and rt["fragmentation"] < 1):
        bad.append("fragmentation")
    if bad:
        raise SpecError(f"runtime '{kind}': {', '.join(bad)} malformed (bytes >= 0, fragmentation a share in [0, 1))")
    return rt


def _runtime_overhead(tp_a, pp_a, dp, cp, overhead_bytes, fragmentation) -> tuple[Any, dict, float]:
    """Fixed runtime bytes (CUDA context + NCCL buffers, or the user's reserve) and the fragmentation share."""
    rt = _runtime("training")
    gpus = tp_a * pp_a * np.asarray(dp, dtype=float) * np.asarray(cp, dtype=float)
    if overhead_bytes is None:
        fixed = rt["cuda_context_bytes"] + np.where(gpus > 1, rt["comm_buffers_bytes"], 0.0)
        fixed_src = {"fixed": f"catalog runtime.training: {rt['source'].split(';')[0]}"}
    else:
        fixed, fixed_src = np.asarray(overhead_bytes, dtype=float), {"fixed": "given by the user"}
    frag = rt["fragmentation"] if fragmentation is None else fragmentation
    if not 0 <= frag < 1:  # also false for nan; a share of 1 or more would reserve more than is allocated
        raise SpecError(f"fragmentation must be a share of allocated bytes in [0, 1), got {frag}")
    if np.any(np.asarray(fixed) < 0):
        raise SpecError("overhead must not be negative")
    return fixed, fixed_src, frag


def _validate(m: ModelSpec, tp, pp, dp, cp, ep, sp, vp, seq, micro_batch, zero, etp=None, edge_slots=None,
              mtp: bool = True) -> None:
    """Scalar sanity checks: a clear error for impossible or non-positive settings."""
    for name, v in (("seq", seq), ("micro-batch", micro_batch)):
        if np.ndim(v) == 0 and v <= 0:
            raise SpecError(f"{name} must be positive, got {v}")
    if all(np.ndim(x) == 0 for x in (tp, pp, dp, cp, ep, vp)):
        for name, v in (("tp", tp), ("pp", pp), ("dp", dp), ("cp", cp), ("ep", ep), ("interleave", vp)):
            if int(v) != v or v < 1:
                raise SpecError(f"{name} must be a whole number ≥ 1, got {v}")
        check_layout(m, tp=int(tp), pp=int(pp), dp=int(dp), cp=int(cp), ep=int(ep), vp=int(vp), sp=bool(sp),
                     seq=int(seq) if np.ndim(seq) == 0 else None,
                     etp=int(etp) if etp is not None and np.ndim(etp) == 0 else None, edge_slots=edge_slots, mtp=mtp)
    if np.ndim(zero) == 0 and zero not in (0, 1, 2, 3):
        raise SpecError(f"ZeRO stage must be 0, 1, 2 or 3, not {zero}")


def _layer_activations(m: ModelSpec, shape: dict, recompute: Any, selective: str, etp_a: Any,
                       recompute_fraction: Any) -> tuple[Term, Term, Term]:
    """Activation bytes of one dense layer and one MoE layer as the layout keeps them (block recompute: a fraction of
    each stage's layers fully recomputed, the rest storing everything), and of one layer stored in full (the working
    set full recompute rebuilds)."""
    act_dense = layer_activation_bytes(m, **shape, recompute=recompute, selective=selective)
    act_moe = layer_activation_bytes(m, **shape, recompute=recompute, moe=True, selective=selective, etp=etp_a)
    frac = np.asarray(recompute_fraction, dtype=float)
    if np.any(frac < 1.0):
        partial = (np.asarray(recompute) == 2) & (frac < 1.0)
        keep_d = layer_activation_bytes(m, **shape, recompute=0)
        keep_m = layer_activation_bytes(m, **shape, recompute=0, moe=True, etp=etp_a)
        act_dense.value = np.where(partial, frac * act_dense.value + (1 - frac) * keep_d.value, act_dense.value)
        act_moe.value = np.where(partial, frac * act_moe.value + (1 - frac) * keep_m.value, act_moe.value)
    full_layer = layer_activation_bytes(m, **shape, recompute=0, moe=m.is_moe, etp=etp_a)
    return act_dense, act_moe, full_layer


def _edge_bytes(m: ModelSpec, stage: str, n_flight: Any, s_loc: Any, b: Any, u_div: Any, pp_a: Any, tp_a: Any,
                n_mtp: int) -> Any:
    """The embedding's and the output layer's activations on a stage (SRC_OUT): token ids (and the dropout mask) on
    the first, the logits and loss on the last (once more per MTP depth), both on a pipeline of one stage."""
    logits = (1 + n_mtp) * 4.0 * s_loc * b * m.hidden * (1.0 + m.vocab / m.hidden) / tp_a
    if stage == "first":
        inputs = n_flight * (8.0 * s_loc * b + (s_loc * b * m.hidden / u_div if m.dropout else 0.0))
        return inputs + np.where(pp_a == 1, logits, 0.0)
    if stage == "middle":
        return np.zeros_like(np.asarray(n_flight, dtype=float))
    return np.where(pp_a == 1, 8.0 * s_loc * b, 0.0) + logits


def training_memory(
    m: ModelSpec,
    *,
    seq: Any,
    micro_batch: Any = 1,
    tp: Any = 1,
    pp: Any = 1,
    dp: Any = 1,
    cp: Any = 1,
    ep: Any = 1,
    sp: Any = False,
    vp: Any = 1,
    num_microbatches: Any = None,
    zero: Any = 0,
    distributed_optimizer: bool = False,
    recompute: Any = "none",
    precision: str = "bf16",
    optimizer: str = "adam",
    grad_dtype: str | None = None,
    offload: Any = "none",
    quantized_params: bool = False,
    flash_attention: bool = True,
    overhead_bytes: Any = None,
    fragmentation: float | None = None,
    total_only: bool = False,
    recompute_fraction: Any = 1.0,
    selective: str = "attention",
    input_bytes: float = 2.0,
    etp: Any = None,
    edge_slots: bool = False,
    offload_fraction: Any = 1.0,
    mtp: bool = True,
    interleave: str = "groups",
    optimizer_offload: OptimizerOffload | None = None,
) -> TrainingMemory | np.ndarray:
    """Peak memory on the most-loaded GPU of a training job (bytes), with every part explained.

    zero: 0–3 (3 = FSDP full sharding); distributed_optimizer = Megatron's (same sharding as zero 1).
    recompute: "none" | "selective" | "full" or codes 0/1/2 (arrays allowed).
    num_microbatches: per pipeline flush; None assumes at least pp (1F1B steady state).
    overhead_bytes: fixed runtime bytes (CUDA context + communicator buffers); None = catalog default.
    offload_fraction: with activations offloaded, the share of each stage's layers whose activations go to the host
    (the first ones); the rest stay, and never fewer than two layers' worth (the copies in flight).
    mtp: with the model's multi-token-prediction layers (config num_nextn_predict_layers) on the last stage.
    interleave: how the interleaved schedule groups num_microbatches (INTERLEAVE_RULES; default Megatron-Core's):
    a group G larger than p warms the first stage up with (v − 1)·(G − p) more model-chunk forwards.
    quantized_params: FP8/FP4 weights with no 16-bit copy (Megatron --fp8-param-gather / --fp4-param-gather).
    optimizer_offload: what the stack's optimizer offload (offload bit 1) puts in host memory (sizing.offload
    optimizer_offload(software); None: megatron-core's, whose gradient buffer stays on the GPU).
    """
    if isinstance(recompute, str):
        if recompute not in RECOMPUTE:
            raise SpecError(f"unknown recompute mode '{recompute}'; choose none, selective or full")
        recompute = RECOMPUTE[recompute]
    _validate(m, tp, pp, dp, cp, ep, sp, vp, seq, micro_batch, zero, etp, edge_slots, mtp)
    if num_microbatches is not None and all(np.ndim(x) == 0 for x in (num_microbatches, pp, vp)):
        check_interleave(int(num_microbatches), int(pp), int(vp), interleave)
    off = np.asarray(offload_code(offload))
    zero_eff = np.maximum(np.asarray(zero), 1 if distributed_optimizer else 0)
    counts = param_counts(m)
    tp_a, pp_a = np.asarray(tp, dtype=float), np.asarray(pp, dtype=float)
    etp_a = tp_a if etp is None else np.asarray(etp, dtype=float)
    in_flight = pp_a if num_microbatches is None else np.minimum(pp_a, np.asarray(num_microbatches, dtype=float))
    vp_a = np.asarray(vp, dtype=float)
    penalty = np.where(vp_a > 1, 1.0 + (pp_a - 1.0) / (pp_a * vp_a), 1.0)
    # a micro-batch group larger than p (Megatron-Core's microbatch_group_size_per_vp_stage where M is no multiple
    # of p) warms the first stage up with (v − 1)·(G − p) more chunk forwards, each 1/v of its layers' activations
    group = pp_a if num_microbatches is None else np.maximum(interleave_group(num_microbatches, pp, vp, interleave), 1)
    warm_extra = np.maximum(vp_a - 1.0, 0.0) * np.maximum(group - pp_a, 0.0) / vp_a

    shape = dict(seq=seq, micro_batch=micro_batch, tp=tp, cp=cp, sp=sp, flash_attention=flash_attention,
                 input_bytes=input_bytes)
    act_dense, act_moe, full_layer = _layer_activations(m, shape, recompute, selective, etp_a, recompute_fraction)
    s_loc = np.asarray(seq, dtype=float) / np.asarray(cp, dtype=float)
    b = np.asarray(micro_batch, dtype=float)
    u_div = np.where(np.asarray(sp, dtype=bool), tp_a, 1.0)

    first_l, middle_l, last_l = stage_layers(m, pp, vp, edge_slots, mtp)
    n_mtp = m.mtp_layers if mtp else 0
    flights = {"first": in_flight + warm_extra / penalty, "middle": np.maximum(np.minimum(in_flight, pp_a - 1.0), 0.0),
               "last": np.ones_like(in_flight)}
    stages = {}
    for stage, n_layers in (("first", first_l), ("middle", middle_l), ("last", last_l)):
        sp_params = stage_params(counts, m, tp, pp, ep, stage, n_layers, etp_a, n_mtp)
        n_flight = flights[stage]
        layers_act = (
            (sp_params.layers - sp_params.moe_layers) * act_dense.value + sp_params.moe_layers * act_moe.value
        ) * n_flight * penalty
        # activations parked in host memory: the layers not offloaded stay, and two layers of one micro-batch at
        # least (in flight to/from host)
        in_flight_two = layers_act * np.minimum(2.0 / np.maximum(sp_params.layers * n_flight * penalty, 1.0), 1.0)
        kept = layers_act * (1.0 - np.clip(np.asarray(offload_fraction, dtype=float), 0.0, 1.0))
        layers_act = np.where(off & 4, np.maximum(kept, in_flight_two), layers_act)
        edge = _edge_bytes(m, stage, n_flight, s_loc, b, u_div, pp_a, tp_a, n_mtp)
        working = np.where(np.asarray(recompute) == 2, full_layer.value, 0.0)
        w, g, o = model_states(
            # expert-data-parallel group = tp·dp·cp / (ep·etp): ep·etp/tp below turns dp·cp into it
            sp_params.non_expert, sp_params.expert, dp_shards=np.asarray(dp) * np.asarray(cp),
            ep=np.asarray(ep, dtype=float) * etp_a / tp_a, zero=zero_eff,
            precision=precision, optimizer=optimizer, grad_dtype=grad_dtype, offload=offload,
            quantized_params=quantized_params, optimizer_offload_rule=optimizer_offload,
        )
        buf = np.where(zero_eff == 3, zero3_gather_buffer(counts.largest_layer, tp_a).value, 0.0)
        # weights streamed from host: a double buffer of one layer's 16-bit weights
        per_layer = (sp_params.non_expert + sp_params.expert) / np.maximum(sp_params.layers, 1.0)
        buf = buf + np.where(off & 2, 2.0 * 2.0 * per_layer, 0.0)
        stages[stage] = dict(params=sp_params, layers_act=layers_act, edge=edge, working=working, w=w, g=g, o=o,
                             buf=buf, flight=n_flight)

    def state_sum(st: dict) -> Any:
        return st["w"].value + st["g"].value + st["o"].value + st["buf"] + st["layers_act"] + st["edge"] + st["working"]

    names = ("first", "middle", "last")
    if total_only:  # the search needs the peak only: fixed + (1 + fragmentation) · the fullest stage
        peak = np.maximum(np.maximum(state_sum(stages["first"]), state_sum(stages["middle"])), state_sum(stages["last"]))
        fixed, _, frag = _runtime_overhead(tp_a, pp_a, dp, cp, overhead_bytes, fragmentation)
        return fixed + (1.0 + frag) * peak
    sums = np.broadcast_arrays(*(np.asarray(state_sum(stages[n]), dtype=float) for n in names))
    which = np.argmax(np.stack(sums), axis=0)  # ties go to the first stage

    def choose(values: list) -> Any:
        out = np.choose(which, np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in values)))
        return float(out) if np.ndim(out) == 0 else out

    def pick(key: str) -> Any:
        """Per candidate, the value of the stage that needs the most memory."""
        vals = [stages[n][key] for n in names]
        if not isinstance(vals[0], Term):
            return choose(vals)
        f = vals[0]
        inputs = {k: choose([v.inputs[k] for v in vals]) if k.startswith("Ψ") else v for k, v in f.inputs.items()}
        return Term(f.name, choose([v.value for v in vals]), f.unit, f.formula, inputs, f.sources)

    weights, grads, optim = pick("w"), pick("g"), pick("o")
    layers_t = Term(
        "transformer layers", pick("layers_act"), "B",
        "(L_stage_dense·act_dense + L_stage_moe·act_moe) · in_flight · interleave_penalty",
        {"per dense layer": act_dense, **({"per MoE layer": act_moe} if m.is_moe else {}),
         "in_flight": pick("flight"), "interleave_penalty": penalty,
         "L_stage": choose([stages[n]["params"].layers for n in names])},
        {"in_flight": "1F1B: stage r holds min(p − r, m) micro-batches; interleaved with micro-batch groups G > p, "
                      "the first stage (v − 1)(G − p)/v more (Megatron-LM schedules.py get_pp_rank_microbatches)",
         "interleave_penalty": SRC_INTERLEAVE,
         "L_stage": "uneven split: first and last stages lighter (pipeline_layers)"},
    )
    edge_t = Term("embedding and output", pick("edge"), "B",
                  "first stage: 8·s·b token ids (+ s·b·h dropout mask); last stage: 4·s·b·h·(1 + V/h)/t; middle: 0",
                  {"s": s_loc, "b": b, "h": m.hidden, "V": m.vocab}, {"formula": SRC_OUT})
    act_parts = [layers_t, edge_t]
    if np.any(np.asarray(recompute) == 2):
        act_parts.append(Term("recompute working set", pick("working"), "B",
                              "one layer's activations rebuilt during its backward", {"layer": full_layer.value}))
    activations = total("activations", act_parts)
    extra = []
    if np.any(zero_eff == 3) or np.any(off & 2):
        buf = zero3_gather_buffer(counts.largest_layer, tp_a)
        buf.value = pick("buf")
        if np.any(off & 2):
            buf.name = "parameter buffers"
            buf.formula = "ZeRO-3: 4 · largest_layer / t; weights offloaded: 2 × one layer's 16-bit weights"
        extra.append(buf)

    fixed, fixed_src, frag = _runtime_overhead(tp_a, pp_a, dp, cp, overhead_bytes, fragmentation)
    allocated = weights.value + grads.value + optim.value + activations.value + sum(t.value for t in extra)
    overhead = Term("runtime overhead", fixed + frag * allocated, "B",
                    "fixed (CUDA context + communicator buffers) + fragmentation · allocated",
                    {"fixed": fixed, "fragmentation": frag, "allocated": allocated},
                    {**fixed_src, "fragmentation": "allocator reserve beyond allocated bytes (catalog runtime.training)"})
    tot = total("total per GPU", [weights, grads, optim, *extra, activations, overhead])
    params_gpu = choose([stages[n]["params"].non_expert + stages[n]["params"].expert for n in names])
    stage = np.asarray(names)[which] if np.ndim(which) else names[int(which)]
    return TrainingMemory(weights, grads, optim, activations, overhead, tot, extra, stage, params_gpu)


MIB = 2**20


def device_memory(gpu: GpuSpec) -> Term:
    """What the framework can allocate on one GPU: the framebuffer nvidia-smi reports (MiB), not the
    marketing GB (an "80 GB" H100 shows 81,559 MiB = 85.5 GB). The runtime reserve (CUDA context,
    NCCL buffers, allocator fragmentation) is counted on the need side as `runtime overhead`, so a
    layout fits when its total per GPU ≤ this capacity; both `size train` and `plan` use this rule."""
    if gpu.memory_total_mib:
        return Term("device memory", gpu.memory_total_mib * MIB, "B", "memory_total_mib × 2^20",
                    {"memory_total_mib": gpu.memory_total_mib}, {gpu.key: "catalog gpus.memory_total_mib (nvidia-smi)"})
    return Term("device memory", gpu.memory_gb * 1e9, "B", "memory_gb × 1e9 (no nvidia-smi figure in the catalog)",
                {"memory_gb": gpu.memory_gb}, {gpu.key: gpu.source})


def capacity_facts(gpu: GpuSpec) -> dict:
    """How much memory a GPU has, as every size command prints it: the datasheet's name for it as text ("80GB HBM3"),
    and the total the device shows (nvidia-smi's memory_total_mib, device_memory) in GB (1e9 B) and GiB (2^30 B),
    the units of the columns it is printed in: an "80GB" H100 shows 81,559 MiB = 85.52 GB = 79.65 GiB."""
    cap = float(device_memory(gpu).value)
    return {"memory": f"{gpu.memory_gb:g}GB {gpu.memory_type}", "capacity_gb": round(cap / 1e9, 2),
            "capacity_gib": round(cap / 2**30, 2)}


def capacity_text(v: dict) -> str:
    """'80GB HBM3: 85.52 GB = 79.65 GiB visible' from capacity_facts."""
    return f"{v['memory']}: {v['capacity_gb']:,.2f} GB = {v['capacity_gib']:,.2f} GiB visible"


def fit_verdict(total_bytes: float, gpu: GpuSpec) -> dict:
    """Does it fit, and by how much (positive headroom or a shortfall), against the device memory the
    framework can allocate (catalog MiB); the runtime reserve is part of `total_bytes`."""
    cap = float(device_memory(gpu).value)
    return {
        "gpu": gpu.key,
        **capacity_facts(gpu),
        "device_memory_mib": gpu.memory_total_mib or round(cap / MIB),
        "usable_gb": round(cap / 1e9, 2),
        "fits": bool(total_bytes <= cap),
        "headroom_gb": round((cap - total_bytes) / 1e9, 2),
        "utilization": round(total_bytes / cap, 4),
    }

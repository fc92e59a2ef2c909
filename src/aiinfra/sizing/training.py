"""Training memory per GPU: model states (weights, gradients, optimizer), activations, overhead.

Layout arguments (tp, pp, dp, cp, ep, sp, vp, micro_batch, zero, recompute) accept numpy arrays:
the planner evaluates millions of layouts with this same code, and `aiinfra size train`
explains one of them. Sources:
- model states: ZeRO (Rajbhandari et al., SC'20, Fig. 1), Megatron bytes/param (18, or 6 + 12/d
  with the distributed optimizer), DeepSpeed estimators (stage_1_and_2.py, memory.rst);
- activations: Korthikanti et al. 2022 Table 2, generalised to GQA, gated MLPs and no-dropout
  models by counting the same tensors; Megatron theoretical_memory_usage.py for the
  embedding/output terms and the interleaved-schedule penalty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from aiinfra.catalog.loader import default_catalog, is_amount
from aiinfra.errors import LayoutError, SpecError
from aiinfra.explain import Term, total
from aiinfra.sizing.dtypes import nbytes
from aiinfra.sizing.params import ParamCounts, every_second_linear, linear_order, param_counts
from aiinfra.sizing.pipeline_layout import PipelineLayout, looks_like_layout
from aiinfra.specs import GpuSpec, ModelSpec

RECOMPUTE = {"none": 0, "selective": 1, "full": 2}
OPTIMIZER_STATE_BYTES = {"adam": 8.0, "adamw": 8.0, "adam8bit": 2.0, "sgd": 4.0, "none": 0.0}
GRAD_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp32": 4.0, "bf16+fp32": 6.0}
OFFLOAD = ("none", "optimizer", "optimizer+params")
# Offload as bit flags (the planner searches them as arrays): 1 optimizer states + fp32 grads in host
# memory, 2 weights streamed from host per micro-batch, 4 saved activations parked in host memory.
OFFLOAD_CODES = {"none": 0, "optimizer": 1, "optimizer+params": 3, "activations": 4, "optimizer+activations": 5,
                 "all": 7}


OFFLOAD_BITS = {"none": 0, "optimizer": 1, "weights": 2, "params": 2, "activations": 4}


def parse_offload(text: str) -> tuple[int, float]:
    """'optimizer+activations 50%' → (bit flags, share of each stage's layers whose activations go): any '+'
    combination of optimizer, weights (or params), activations, the activations optionally with a share (as the
    planner prints it), or none / all."""
    value = str(text).strip().lower()
    if value in OFFLOAD_CODES:
        return OFFLOAD_CODES[value], 1.0
    code, share = 0, 1.0
    for part in value.split("+"):
        name, _, pct = part.strip().partition(" ")
        if name not in OFFLOAD_BITS or (pct and name != "activations"):
            raise SpecError(f"unknown offload '{text}'; combine optimizer, weights, activations with + "
                            "(activations may carry a share of each stage's layers, e.g. 'activations 50%')")
        if pct:
            try:
                share = float(pct.rstrip("%")) / 100
            except ValueError:
                share = -1.0
            if not pct.endswith("%") or not 0 < share <= 1:
                raise SpecError(f"offload '{text}': the activations' share must be a percentage in (0, 100], e.g. 50%")
        code |= OFFLOAD_BITS[name]
    return code, share


@dataclass(frozen=True)
class ActivationOffload:
    """How a software stack offloads activations (stacks.yaml activation_offload; absent: every layer's or none, any
    layout, no overlap)."""

    overlap: bool = False  # copies on a side stream under the other layers' compute
    pipeline: bool = True  # combines with pipeline parallelism
    recompute: bool = True  # combines with activation recomputation
    every_layer: bool = True  # all of a stage's layers may go (else fewer)
    share: bool = False  # a share of the layers may go, the first ones (else every layer or none)
    source: str = ""


def activation_offload(software: str = "megatron-core") -> ActivationOffload:
    """The stack's activation-offload rules (catalog stacks.yaml activation_offload); a malformed entry is refused."""
    key, entry = default_catalog().entry("stacks", software)
    raw = entry.get("activation_offload")
    if raw is None:
        return ActivationOffload()
    names = ("overlap", "pipeline", "recompute", "every_layer", "share")
    if not isinstance(raw, dict) or set(raw) - {*names, "source"} or any(
            not isinstance(raw.get(n, True), bool) for n in names):
        raise SpecError(f"stack '{key}': activation_offload takes overlap, pipeline, recompute, every_layer, share "
                        f"(true/false) and source, got {raw!r}")
    return ActivationOffload(**{n: raw[n] for n in names if n in raw}, source=str(raw.get("source", "")))


def check_activation_offload(m: ModelSpec, software: str, *, share: float = 1.0, pp: int = 1,
                             recompute: int = 0) -> None:
    """Raise LayoutError naming the rule of the stack (activation_offload) that offloading the activations of
    `share` of each stage's layers on this layout breaks (Megatron-LM: no PP, no recompute, fewer layers than the
    model has)."""
    rules = activation_offload(software)
    if not rules.share and 0.0 < share < 1.0:
        raise LayoutError(f"the {software} stack offloads every layer's activations or none, not a share of them")
    if not rules.every_layer and share >= 1.0:
        raise LayoutError(f"the {software} stack offloads the activations of at most {m.layers - 1} of {m.name}'s "
                          f"{m.layers} layers, not all of them; offload a share (e.g. 'activations 50%', "
                          "plan --layout offload_layers=N)")
    if not rules.pipeline and pp > 1:
        raise LayoutError(f"the {software} stack does not offload activations with pipeline parallelism "
                          f"(pp={pp}); use pp=1 or drop the activation offload")
    if not rules.recompute and recompute > 0:
        raise LayoutError(f"the {software} stack does not offload activations with recompute "
                          f"({list(RECOMPUTE)[recompute]}); use recompute=none or drop the activation offload")


def offload_code(value: Any) -> Any:
    """'none' | 'optimizer' | 'optimizer+params' | 'activations' | … or bit-flag codes (arrays allowed)."""
    if isinstance(value, str):
        if value not in OFFLOAD_CODES:
            raise SpecError(f"unknown offload '{value}'; choose one of {', '.join(OFFLOAD_CODES)}")
        return OFFLOAD_CODES[value]
    return np.asarray(value)

SRC_ZERO = "Rajbhandari et al. 2020 (ZeRO) Fig. 1: stage 1 shards optimizer states, 2 adds gradients, 3 adds weights over N_d"
SRC_MEGATRON = "Megatron-LM theoretical_memory_usage.py / issue #654: 2 B weights + 4 B fp32 grads + 4 B master + 8 B Adam"
SRC_OPT = {
    "adam": "Adam m and v in fp32: 2 × 4 B",
    "adamw": "AdamW m and v in fp32: 2 × 4 B",
    "adam8bit": "8-bit Adam (Dettmers et al. 2022): m and v at 1 B each",
    "sgd": "SGD with momentum: one fp32 buffer, 4 B",
    "none": "no optimizer state",
}
SRC_ACT = "Korthikanti et al. 2022 Table 2 (per-layer activations), generalised to GQA / gated MLP / no dropout"
SRC_OUT = "Megatron-LM theoretical_memory_usage.py: embedding input 8·s·b, output layer + CE 4·s·b·h·(1 + V/h)"
SRC_INTERLEAVE = "Korthikanti et al. 2022 §4.2.3: interleaved schedule stores (1 + (p−1)/(p·v)) × the activations"
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
) -> tuple[Term, Term, Term]:
    """Weights, gradients and optimizer bytes on one GPU for Ψ parameters held there.

    params_ne: non-expert parameters on this GPU (sharded by ZeRO over dp_shards);
    params_e: routed-expert parameters on this GPU (sharded over the expert-data group dp_shards/ep).
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

    shard_w, shard_g, shard_o = sharded(3), sharded(2), sharded(1)
    weights_v = w * shard_w * np.where(code & 2, 0.0, 1.0)
    grads_v = g * shard_g * np.where(code & 1, 0.0, 1.0)
    opt_v = (master + opt) * shard_o * np.where(code & 1, 0.0, 1.0)
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
        {**inputs, "bytes_w": w, "offload": offload}, {"bytes_w": w_src, "sharding": SRC_ZERO},
    )
    grads = Term(
        "gradients", grads_v, "B", "bytes_g · Ψ / (N_d if zero ≥ 2)",
        {**inputs, "bytes_g": g, "offload": offload},
        {"bytes_g": f"{grad_dtype} gradients = {g:g} B (fp32 main grads as Megatron keeps them)", "sharding": SRC_ZERO},
    )
    optim = Term(
        "optimizer", opt_v, "B", "(master + state) · Ψ / (N_d if zero ≥ 1)",
        {**inputs, "master": master, "state": opt, "offload": offload},
        {"master": "fp32 master weights in mixed precision: 4 B" if master else "fp32 training: no master copy",
         "state": SRC_OPT[optimizer], "sharding": SRC_ZERO},
    )
    return weights, grads, optim


def zero3_gather_buffer(largest_layer_params: Any, tp: Any = 1) -> Term:
    """ZeRO-3 gathers the largest layer's 16-bit params and grads whole: 4 B per parameter."""
    value = 4.0 * np.asarray(largest_layer_params, dtype=float) / np.asarray(tp, dtype=float)
    return Term("zero-3 gather buffer", value, "B", "4 · largest_layer / t",
                {"largest_layer": largest_layer_params, "t": tp}, {"formula": SRC_ZERO3_BUF})


@dataclass(frozen=True)
class EdgeSlots:
    """Layer slots the first and the last GPU of the pipeline give up to what else they carry: Megatron's
    --account-for-embedding/loss-in-pipeline-split take one each (first=1, last=1); a model that trains its MTP
    layers with the loss gives the last stage more (pipeline_edge_slots)."""

    first: int
    last: int

    def __bool__(self) -> bool:
        return bool(self.first or self.last)


def edge_pair(edge_slots: Any) -> tuple[Any, Any]:
    """(first, last) slots of an EdgeSlots, or the same count at both ends (a bool or int: Megatron's account flags)."""
    if isinstance(edge_slots, EdgeSlots):
        return edge_slots.first, edge_slots.last
    e = np.asarray(edge_slots, dtype=np.int64)
    return e, e


def pipeline_layers(layers: int, pp: Any, vp: Any = 1, edge_slots: Any = False) -> tuple[Any, Any, Any]:
    """Transformer layers held by the first, a middle and the last GPU of the pipeline.

    The L layers are dealt over pp·v virtual stages: every virtual stage holds ⌊L/(pp·v)⌋ and the
    remainder adds one layer to as many stages, on the middle GPUs first, because the first and last
    carry the embedding and the LM head + loss. That is what large published runs do with uneven
    splits: Llama 3 405B put 126 layers on PP16 as 7 + 14 × 8 + 7. With `edge_slots` the embedding and
    the loss each take one layer's slot (Megatron --account-for-embedding-in-pipeline-split and
    --account-for-loss-in-pipeline-split, as the Megatron-Bridge Llama 3.1 405B recipes set; its Llama 3
    70B H100 recipe writes the same split out as pipeline_model_parallel_layout "Et*2|(t*2|)*34,t*3|..|tL"),
    so L + 2 slots are dealt and the edge GPUs hold one layer fewer each; an EdgeSlots gives the two ends their
    own counts. Each GPU holds v virtual stages. A last GPU left with fewer than no layers is negative here:
    pipeline_fits rules that layout out.
    """
    pp = np.asarray(pp, dtype=np.int64)
    vp = np.asarray(vp, dtype=np.int64)
    cut_first, cut_last = edge_pair(edge_slots)
    slots = layers + cut_first + cut_last
    stages = pp * vp
    base = slots // stages
    extra = slots % stages
    # heavier virtual stages: at most ⌈extra/pp⌉ per GPU, on the pp − 2 middle GPUs first, the rest on the edges
    heavy = -(-extra // pp)
    over = np.maximum(extra - np.maximum(pp - 2, 0) * heavy, 0)
    last_heavy = np.minimum(over // 2, vp - 1)
    first_heavy = over - last_heavy
    middle = vp * base + heavy
    first = vp * base + first_heavy - cut_first
    last = vp * base + last_heavy - cut_last
    single = pp == 1
    first = np.where(single, layers, first)
    middle = np.where(single, layers, np.where(pp > 2, middle, np.maximum(first, last)))
    last = np.where(single, layers, last)
    return first, middle, last


def pipeline_fits(layers: int, pp: Any, vp: Any = 1, edge_slots: Any = False) -> Any:
    """Whether pp·v virtual stages can each take a slot (a layer, or the embedding or the loss where those take
    one) and the edge GPUs keep no fewer than zero layers after their slots."""
    first, _, last = pipeline_layers(layers, pp, vp, edge_slots)
    cut_first, cut_last = edge_pair(edge_slots)
    return (np.asarray(pp) * np.asarray(vp) <= layers + cut_first + cut_last) & (first >= 0) & (last >= 0)


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


def stage_layers(m: ModelSpec, pp: Any, vp: Any = 1, edge_slots: Any = False, mtp: bool = True) -> tuple[Any, Any, Any]:
    """pipeline_layers for `m`, with its multi-token-prediction layers (when trained) where Megatron keeps them: with
    the loss, on the last stage (PP 1: the one stage). `edge_slots` may be a PipelineLayout (Megatron's custom layout,
    pipeline_edge_slots): its own per-GPU counts then, its MTP layers with the loss (PipelineLayout.check)."""
    if isinstance(edge_slots, PipelineLayout):
        edge_slots.check_model(m.layers, m.mtp_layers if mtp else 0)  # library callers too: no count goes unchecked
        first, middle, last = edge_slots.per_gpu(pp)
    else:
        first, middle, last = pipeline_layers(m.layers, pp, vp, edge_slots)
    n_mtp = m.mtp_layers if mtp else 0
    if not n_mtp:
        return first, middle, last
    single = np.asarray(pp) == 1
    return np.where(single, first + n_mtp, first), np.where(single, middle + n_mtp, middle), last + n_mtp


PIPELINE_SPLITS = ("auto", "even", "account")


def pipeline_edge_slots(m: ModelSpec, uneven: bool = True, split: str = "auto",
                        mtp: bool = True) -> bool | EdgeSlots | PipelineLayout:
    """Whether the embedding and the loss take a layer's slot in the pipeline split (pipeline_layers), or, where
    `split` is a Megatron pipeline layout string ('Et|(tt|)*30mL', sizing.pipeline_layout), that layout parsed: it
    places every layer itself (check_layout checks it against the model and PP).

    `split`: "even" deals the layers alone (Megatron's default), "account" gives the embedding and the loss a
    slot each (--account-for-embedding/loss-in-pipeline-split), "auto" accounts where the stack splits
    unevenly and the LM head weighs at least half a layer (its GEMM is h·V per token against a layer's
    active weights): there a balanced split moves a layer off the last stage, while for a small head (GPT-3's
    51k vocabulary at h = 12288 is a third of a layer) the even split is the faster one. A model that trains
    multi-token-prediction layers (`mtp`) carries them with the loss, each with its own pass through the output
    head: "auto" then takes no slot for the embedding and 1 + 2 per MTP layer on the last stage (EdgeSlots(0, 3) for
    DeepSeek-V3), as Megatron-Bridge's DeepSeek-V3 layouts place them: recipes/deepseek/deepseek_v3.py at v0.5.1,
    PP8 "embedding + 8, 8 × 6, 5 + mtp + loss", and its 26.04 performance layout "Et*4|(t*4|)*14tmL" on PP16."""
    if split not in PIPELINE_SPLITS:
        if not looks_like_layout(str(split)):
            raise SpecError(f"pipeline split must be one of {', '.join(PIPELINE_SPLITS)} or a Megatron pipeline "
                            f"layout such as 'Et|(tt|)*30mL', not '{split}'")
        if not uneven:
            raise SpecError(f"pipeline layout '{split}' needs a stack that splits layers unevenly "
                            "(stacks.yaml uneven_pipeline)")
        return PipelineLayout.parse(split)
    if split == "account" and not uneven:
        raise SpecError("pipeline split 'account' needs a stack that splits layers unevenly (stacks.yaml uneven_pipeline)")
    if not uneven or split == "even":
        return False
    if split == "account":
        return True
    if mtp and m.mtp_layers:
        return EdgeSlots(0, 1 + 2 * m.mtp_layers)
    pc = param_counts(m)
    per_layer = (float(pc.active.value) - pc.embedding - pc.lm_head) / max(m.layers, 1)
    return m.hidden * m.vocab >= 0.5 * per_layer


def stack_uneven_pipeline(software: str = "megatron-core") -> bool:
    """Whether a software stack splits layers unevenly over pipeline stages (catalog stacks.yaml)."""
    return bool(default_catalog().entry("stacks", software)[1].get("uneven_pipeline", True))


# How a stack's interleaved schedule takes the micro-batches of a step (stacks.yaml interleave). The schedule runs
# the micro-batches in groups of G through each virtual stage in turn; the first GPU warms up with (vp − 1)·G
# + 2·(pp − 1) model-chunk forwards, so a larger group holds more activations, and a group smaller than PP waits on
# the pipeline between virtual stages.
INTERLEAVE_RULES = {
    "multiple": "a number of micro-batches M that PP divides (groups of PP)",
    "groups": "groups of G micro-batches with PP ≤ G ≤ M and M mod G either 0 or at least PP",
    "rounds": "M // PP rounds (at least 1) that divide M, a round's micro-batches being the group",
    "none": "no interleaved schedule",
}


def stack_interleave(software: str = "megatron-core") -> str:
    """The stack's interleave rule (stacks.yaml interleave; absent: multiple). Anything else is refused."""
    key, e = default_catalog().entry("stacks", software)
    rule = e.get("interleave", "multiple")
    if rule not in INTERLEAVE_RULES:
        raise SpecError(f"stack '{key}': interleave must be one of {', '.join(INTERLEAVE_RULES)}, got {rule!r}")
    return rule


@lru_cache(maxsize=65536)
def microbatch_group(M: int, pp: int, rule: str) -> int:
    """Micro-batches per group when an interleaved schedule runs M of them on pp > 1 stages; 0 where `rule` refuses."""
    if M < 1 or rule == "none":
        return 0
    if rule == "multiple":
        return pp if M % pp == 0 else 0
    if rule == "rounds":  # torch.distributed.pipelining ScheduleInterleaved1F1B
        rounds = max(1, M // pp)
        return M // rounds if M % rounds == 0 else 0
    for g in range(pp, M + 1):  # groups: Megatron-Core's microbatch_group_size_per_vp_stage
        if M % g == 0 or M % g >= pp:
            return g
    return 0


def interleave_group(M: Any, pp: Any, vp: Any, rule: str = "multiple") -> Any:
    """Micro-batches per group of the interleaved schedule (0 where `rule` refuses M micro-batches on PP stages);
    PP where there is no interleave (vp 1 or pp 1). Arrays allowed."""
    M, pp, vp = np.broadcast_arrays(*(np.asarray(x, dtype=np.int64) for x in (M, pp, vp)))
    inter = (vp > 1) & (pp > 1)
    out = pp.copy()
    if inter.any():
        keys, inv = np.unique(np.stack([M[inter], pp[inter]]), axis=1, return_inverse=True)
        g = np.array([microbatch_group(int(a), int(b), rule) for a, b in keys.T], dtype=np.int64)
        out[inter] = g[np.ravel(inv)]
    return int(out) if out.ndim == 0 else out


def check_interleave(M: int, pp: int, vp: int, rule: str, whose: str = "the") -> None:
    """One line where an interleaved schedule (`whose`: "the", or a stack's name) cannot take M micro-batches per
    step on PP stages under `rule`."""
    if vp > 1 and pp > 1 and rule == "none":
        raise LayoutError(f"{whose} pipeline has no interleaved schedule: vp must be 1, got vp={vp}")
    if vp > 1 and pp > 1 and not interleave_group(M, pp, vp, rule):
        raise LayoutError(f"{whose} interleaved schedule (vp={vp}) cannot run {M} micro-batches per step on pp={pp}: "
                          f"it needs {INTERLEAVE_RULES[rule]}")


PARALLEL_AXES = ("tp", "pp", "cp", "ep")  # the model-parallel axes a layout splits over, besides data parallelism
AXIS_NAMES = {"tp": "tensor", "pp": "pipeline", "cp": "context", "ep": "expert"}


def stack_parallelism(software: str = "megatron-core") -> tuple[str, ...]:
    """The model-parallel axes a software stack runs (catalog stacks.yaml parallelism; absent: all of tp, pp, cp,
    ep); data parallelism always. Anything but a list of those axes is refused, never read as all or none."""
    key, e = default_catalog().entry("stacks", software)
    return parse_parallelism(key, e.get("parallelism"))


def parse_parallelism(key: str, raw) -> tuple[str, ...]:
    """stacks.yaml parallelism of stack `key`: absent is every axis; a list names the axes run."""
    if raw is None:
        return PARALLEL_AXES
    if not isinstance(raw, list) or any(a not in PARALLEL_AXES for a in raw):
        raise SpecError(f"stack '{key}': parallelism must be a list of {', '.join(PARALLEL_AXES)}, got {raw!r}")
    return tuple(a for a in PARALLEL_AXES if a in raw)


def parallelism_phrase(axes: tuple[str, ...]) -> str:
    """'data parallelism only' | 'data, tensor and pipeline parallelism': what a stack with `axes` runs."""
    names = ["data"] + [AXIS_NAMES[a] for a in axes]
    return "data parallelism only" if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]} parallelism"


def check_stack_parallelism(software: str, **sizes: int | None) -> None:
    """One sentence when a layout splits over an axis its software stack does not run (stack_parallelism)."""
    axes = stack_parallelism(software)
    over = {a: int(n) for a, n in sizes.items() if n is not None and int(n) > 1 and a not in axes}
    if over:
        raise LayoutError(f"the {software} stack runs {parallelism_phrase(axes)}; "
                          f"{', '.join(f'{a}={n}' for a, n in over.items())} needs "
                          f"{' and '.join(AXIS_NAMES[a] for a in over)} parallelism")


def check_layout(m: ModelSpec, *, tp: int = 1, pp: int = 1, dp: int = 1, cp: int = 1, ep: int = 1, vp: int = 1,
                 etp: int | None = None,
                 sp: bool = False, seq: int | None = None, edge_slots: bool | EdgeSlots | PipelineLayout | None = None,
                 mtp: bool = True) -> None:
    """Raise LayoutError naming the first constraint a layout breaks (the planner's own rules).

    Uneven pipeline stages are allowed (every virtual stage needs one layer, or the embedding or the loss
    where those take a slot: pipeline_edge_slots, None = the model's default under an uneven stack); TP
    must divide the attention heads and be a divisor or multiple of the KV heads (a divisor where the stack
    splits whole KV heads: check_kv_split), CP the sequence, EP the experts and dp·cp.
    """
    edge = pipeline_edge_slots(m, mtp=mtp) if edge_slots is None else edge_slots
    for name, v in (("tp", tp), ("pp", pp), ("dp", dp), ("cp", cp), ("ep", ep), ("vp", vp)):
        if int(v) != v or v < 1:
            raise SpecError(f"{name} must be a whole number ≥ 1, got {v}")
    if m.heads % tp:
        raise LayoutError(f"TP={tp} does not divide the {m.heads} attention heads of {m.name}")
    if not tp_fits_kv_heads(m.kv_heads, tp):
        raise LayoutError(f"TP={tp} is neither a divisor nor a multiple of the {m.kv_heads} KV heads of {m.name} "
                          "(Megatron-Core splits KV heads over TP, or replicates each over TP / KV ranks)")
    if isinstance(edge, PipelineLayout):  # the layout places every layer itself (an empty stage is allowed)
        edge.check(m.layers, m.mtp_layers if mtp else 0, pp, vp)
    elif pp > m.layers:
        raise LayoutError(f"PP={pp} is larger than the {m.layers} layers of {m.name}: a stage would hold no layer")
    elif pp * vp > m.layers + sum(int(e) for e in edge_pair(edge)):
        raise LayoutError(f"PP={pp} × VP={vp} = {pp * vp} pipeline stages would leave a stage without a layer: "
                          f"{m.name} has {m.layers} layers" + (" (+ the embedding and the loss)" if edge else ""))
    elif not pipeline_fits(m.layers, pp, vp, edge):
        raise LayoutError(f"PP={pp} × VP={vp} leaves the last GPU too few of {m.name}'s {m.layers} layers to give "
                          f"{int(edge_pair(edge)[1])} slots to the loss and the MTP layers; use a smaller PP × VP")
    if vp > 1 and pp == 1:
        raise LayoutError("an interleaved schedule (vp > 1) needs PP > 1")
    if ep > 1:
        if not m.is_moe:
            raise LayoutError(f"EP={ep} needs an MoE model; {m.name} is dense")
        if m.experts % ep:
            raise LayoutError(f"EP={ep} does not divide the {m.experts} experts of {m.name}")
        etp = tp if etp is None else etp
        if etp not in (1, tp):
            raise LayoutError(f"expert TP={etp} must be 1 (experts whole, EP folded over TP) or TP={tp}")
        if etp == 1 and tp > 1:
            if (tp * dp * cp) % ep:
                raise LayoutError(f"EP={ep} with expert TP 1 must divide tp·dp·cp={tp * dp * cp}")
        elif (dp * cp) % ep:
            raise LayoutError(f"EP={ep} must divide the data-parallel size dp·cp={dp * cp} "
                              "(or set expert TP 1 to fold EP over the TP ranks)")
    if sp and tp == 1:
        raise LayoutError("sequence parallelism needs TP > 1")
    if seq is not None and seq % cp:
        raise LayoutError(f"CP={cp} does not divide the sequence length {seq}")
    if seq is not None and cp > 1 and seq % (2 * cp):
        raise LayoutError(f"CP={cp} needs the sequence length {seq} to split into 2·CP = {2 * cp} equal chunks "
                          "(load-balanced causal context parallelism)")
    if seq is not None and sp and not sp_divides(seq, cp, tp):
        raise LayoutError(f"sequence parallelism splits each CP rank's {seq // cp} tokens over TP={tp}, which does "
                          "not divide them; run without sequence parallelism")


def tp_fits_kv_heads(kv_heads: int, tp: Any, past: bool = True) -> Any:
    """Megatron-Core's rule (TransformerConfig.__post_init__ at d98e8a6): the KV heads (query groups) must be a
    multiple or a divisor of TP; past them each KV head is replicated on TP / KV ranks. `past` False: the stack
    splits whole KV heads only, so TP must divide them. Arrays allowed."""
    tp = np.asarray(tp)
    return (kv_heads % tp == 0) | ((tp % kv_heads == 0) & past)


def check_kv_split(m: ModelSpec, tp: int, software: str) -> None:
    """One line where TP does not divide the KV heads and the stack splits whole KV heads only (stacks.yaml
    tp_past_kv_heads false); check_layout has already applied Megatron-Core's wider rule."""
    if m.kv_heads % tp and not stack_tp_past_kv_heads(software):
        raise LayoutError(f"TP={tp} does not divide the {m.kv_heads} KV heads of {m.name}, and {software} splits "
                          "whole KV heads over TP (stacks.yaml tp_past_kv_heads)")


def stack_tp_past_kv_heads(software: str = "megatron-core") -> bool:
    """Whether a stack runs TP beyond the KV heads (stacks.yaml tp_past_kv_heads; absent: false)."""
    key, e = default_catalog().entry("stacks", software)
    raw = e.get("tp_past_kv_heads", False)
    if not isinstance(raw, bool):
        raise SpecError(f"stack '{key}': tp_past_kv_heads must be true or false, got {raw!r}")
    return raw


def sp_divides(seq: Any, cp: Any, tp: Any) -> Any:
    """Whether sequence parallelism can split each CP rank's seq / cp tokens evenly over TP (Megatron-Core
    tensor_parallel/mappings.py _split_along_first_dim asserts it). Arrays allowed."""
    return (np.asarray(seq) // np.asarray(cp)) % np.asarray(tp) == 0


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


# What "selective" recompute repeats, per stack: Megatron's core attention (Korthikanti et al. 2022), or
# torchtitan's op-level policy (every second matmul of a block and every elementwise op).
SELECTIVE_POLICIES = ("attention", "every_second_linear")


def selective_policy(software: str = "megatron-core") -> str:
    """What "selective" recompute keeps under a software stack (catalog stacks.yaml `selective`)."""
    key, entry = default_catalog().entry("stacks", software)
    policy = str(entry.get("selective", "attention"))
    if policy not in SELECTIVE_POLICIES:
        raise SpecError(f"stack '{key}': selective must be one of {', '.join(SELECTIVE_POLICIES)}, not '{policy}'")
    return policy


# Megatron-core's selective recompute modules (TransformerConfig.recompute_modules; its default is core_attn alone,
# which is what the "attention" policy recomputes). The norms, the MoE activation and the MLA up projections are
# checkpointed without their outputs; core attention, the dense MLP, the MoE layer and the shared experts keep their
# inputs and run their forward again.
RECOMPUTE_MODULES = ("core_attn", "moe_act", "layernorm", "mla_up_proj", "mlp", "moe", "shared_experts")
MODULES_PREFIX = "modules:"


def parse_recompute_modules(text: str | list | tuple | None) -> tuple[str, ...]:
    """'layernorm,moe_act' (or a list) → the sorted module names; empty or None → () (the stack's own selective
    policy). An unknown or repeated name is refused in one line, as Megatron refuses invalid choices."""
    if text is None:
        return ()
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    if isinstance(text, str) and text.strip() and not any(names):
        raise SpecError(f"recompute modules {text!r} names no module; Megatron's are {', '.join(RECOMPUTE_MODULES)}")
    names = [n for n in names if n]
    bad = [n for n in names if n not in RECOMPUTE_MODULES]
    if bad:
        raise SpecError(f"unknown recompute module '{bad[0]}'; Megatron's are {', '.join(RECOMPUTE_MODULES)}")
    if len(set(names)) != len(names):
        raise SpecError(f"recompute modules name one twice: {','.join(names)}")
    return tuple(sorted(names))


def module_policy(software: str, modules: tuple[str, ...] = ()) -> str:
    """The selective policy a stack runs with Megatron `recompute_modules`: the stack's own (stacks.yaml `selective`)
    when none are named or only core_attn, else 'modules:<names>'. Only a stack whose selective recompute is
    Megatron's (policy attention) takes module names; another is refused in one line, not run as Megatron."""
    base = selective_policy(software)
    if modules and base != "attention":
        raise SpecError(f"recompute modules are Megatron-core's; the {software} stack's selective recompute is "
                        f"its own ({base}); leave --recompute-modules out or use a megatron stack")
    if not modules or tuple(modules) == ("core_attn",):
        return base
    return MODULES_PREFIX + ",".join(modules)


def policy_modules(policy: str) -> frozenset[str]:
    """The Megatron modules a selective policy recomputes: core_attn for 'attention', the named ones for
    'modules:...', none for another stack's policy."""
    if policy == "attention":
        return frozenset({"core_attn"})
    if policy.startswith(MODULES_PREFIX):
        return frozenset(policy[len(MODULES_PREFIX):].split(","))
    return frozenset()


def check_recompute_modules(m: ModelSpec, modules: tuple[str, ...]) -> None:
    """Megatron's own refusals (TransformerConfig.__post_init__): moe_act needs MoE grouped GEMMs (a MoE model),
    mla_up_proj multi-latent attention."""
    if "moe_act" in modules and not m.is_moe:
        raise SpecError(f"recompute module moe_act needs a MoE model; {m.name} has no experts")
    if "mla_up_proj" in modules and not m.is_mla:
        raise SpecError(f"recompute module mla_up_proj needs multi-latent attention; {m.name} has none")


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
    if frag < 0 or np.any(np.asarray(fixed) < 0):
        raise SpecError("overhead and fragmentation must not be negative")
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

    act_dense = layer_activation_bytes(m, seq=seq, micro_batch=micro_batch, tp=tp, cp=cp, sp=sp,
                                       recompute=recompute, flash_attention=flash_attention, selective=selective,
                                       input_bytes=input_bytes)
    act_moe = layer_activation_bytes(m, seq=seq, micro_batch=micro_batch, tp=tp, cp=cp, sp=sp,
                                     recompute=recompute, flash_attention=flash_attention, moe=True,
                                     selective=selective, input_bytes=input_bytes, etp=etp_a)
    frac = np.asarray(recompute_fraction, dtype=float)
    if np.any(frac < 1.0):  # block recompute: a fraction of each stage's layers fully, the rest store everything
        partial = (np.asarray(recompute) == 2) & (frac < 1.0)
        keep_d = layer_activation_bytes(m, seq=seq, micro_batch=micro_batch, tp=tp, cp=cp, sp=sp, recompute=0,
                                        flash_attention=flash_attention, input_bytes=input_bytes)
        keep_m = layer_activation_bytes(m, seq=seq, micro_batch=micro_batch, tp=tp, cp=cp, sp=sp, recompute=0,
                                        flash_attention=flash_attention, moe=True, input_bytes=input_bytes, etp=etp_a)
        act_dense.value = np.where(partial, frac * act_dense.value + (1 - frac) * keep_d.value, act_dense.value)
        act_moe.value = np.where(partial, frac * act_moe.value + (1 - frac) * keep_m.value, act_moe.value)
    s_loc = np.asarray(seq, dtype=float) / np.asarray(cp, dtype=float)
    b = np.asarray(micro_batch, dtype=float)
    u_div = np.where(np.asarray(sp, dtype=bool), tp_a, 1.0)
    full_layer = layer_activation_bytes(m, seq=seq, micro_batch=micro_batch, tp=tp, cp=cp, sp=sp,
                                        recompute=0, flash_attention=flash_attention, moe=m.is_moe,
                                        input_bytes=input_bytes, etp=etp_a)

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
        if stage == "first":
            edge = n_flight * (8.0 * s_loc * b + (s_loc * b * m.hidden / u_div if m.dropout else 0.0))
            edge = edge + np.where(pp_a == 1, (1 + n_mtp) * 4.0 * s_loc * b * m.hidden * (1.0 + m.vocab / m.hidden) / tp_a,
                                   0.0)
        elif stage == "middle":
            edge = np.zeros_like(np.asarray(layers_act, dtype=float))
        else:
            edge = np.where(pp_a == 1, 8.0 * s_loc * b, 0.0) + (1 + n_mtp) * 4.0 * s_loc * b * m.hidden * (
                1.0 + m.vocab / m.hidden) / tp_a  # the logits once more per MTP depth
        working = np.where(np.asarray(recompute) == 2, full_layer.value, 0.0)
        w, g, o = model_states(
            # expert-data-parallel group = tp·dp·cp / (ep·etp): ep·etp/tp below turns dp·cp into it
            sp_params.non_expert, sp_params.expert, dp_shards=np.asarray(dp) * np.asarray(cp),
            ep=np.asarray(ep, dtype=float) * etp_a / tp_a, zero=zero_eff,
            precision=precision, optimizer=optimizer, grad_dtype=grad_dtype, offload=offload,
            quantized_params=quantized_params,
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


def fit_verdict(total_bytes: float, gpu: GpuSpec) -> dict:
    """Does it fit, and by how much (positive headroom or a shortfall), against the device memory the
    framework can allocate (catalog MiB); the runtime reserve is part of `total_bytes`."""
    cap = float(device_memory(gpu).value)
    return {
        "gpu": gpu.key,
        "capacity_gb": gpu.memory_gb,
        "device_memory_mib": gpu.memory_total_mib or round(cap / MIB),
        "usable_gb": round(cap / 1e9, 2),
        "fits": bool(total_bytes <= cap),
        "headroom_gb": round((cap - total_bytes) / 1e9, 2),
        "utilization": round(total_bytes / cap, 4),
    }

"""Pipeline stages: how many layers each stage holds (uneven stages, the embedding and loss slots at the
edges, interleaved virtual stages), and the stacks' rules on micro-batch groups for the interleaved schedule."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import LayoutError, SpecError
from aiinfra.sizing.params import param_counts
from aiinfra.sizing.pipeline_layout import PipelineLayout, looks_like_layout
from aiinfra.specs import ModelSpec


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

"""Whether a parallel layout can be built: the axes a stack runs, TP against heads and KV heads, sequence
parallelism against the sequence, and every divisibility rule (check_layout names the one that fails)."""

from __future__ import annotations

from typing import Any

import numpy as np

from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import LayoutError, SpecError
from aiinfra.sizing.pipeline import EdgeSlots, edge_pair, pipeline_edge_slots, pipeline_fits
from aiinfra.sizing.pipeline_layout import PipelineLayout
from aiinfra.specs import ModelSpec

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


ZERO_STAGES = (0, 1, 2, 3)  # none; optimizer states; + gradients; + parameters (ZeRO / FSDP sharding)


def stack_zero_stages(software: str = "megatron-core") -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(the ZeRO stages a software stack can run, those it runs with pipeline parallelism): catalog stacks.yaml
    zero_stages and zero_stages_with_pp, absent: every stage. Anything but a list of stages 0-3 is refused."""
    key, e = default_catalog().entry("stacks", software)
    return parse_zero_stages(key, e.get("zero_stages"), e.get("zero_stages_with_pp"))


def parse_zero_stages(key: str, raw, with_pp) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """stacks.yaml zero_stages / zero_stages_with_pp of stack `key`: non-empty lists of stages 0-3, the second a part
    of the first; absent: every stage, and with PP the stack's stages."""
    def stages(field: str, v, default: tuple[int, ...]) -> tuple[int, ...]:
        if v is None:
            return default
        if not isinstance(v, list) or not v or any(isinstance(z, bool) or z not in ZERO_STAGES for z in v):
            raise SpecError(f"stack '{key}': {field} must be a list of ZeRO stages 0-3, got {v!r}")
        return tuple(sorted(set(v)))

    own = stages("zero_stages", raw, ZERO_STAGES)
    pp = stages("zero_stages_with_pp", with_pp, own)
    if not set(pp) <= set(own):
        raise SpecError(f"stack '{key}': zero_stages_with_pp {list(pp)} must be among its zero_stages {list(own)}")
    return own, pp


def zero_phrase(stages: tuple[int, ...]) -> str:
    """'ZeRO-0, 2 or 3': the stages a stack can shard as."""
    names = [str(z) for z in stages]
    return "ZeRO-" + (names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}")


def check_stack_zero(software: str, zero: int | None, pp: int | None = None) -> None:
    """One sentence when a layout's ZeRO stage is one its software stack cannot run, alone or beside pipeline
    parallelism (stack_zero_stages)."""
    if zero not in ZERO_STAGES:  # None, or a stage that is none (training_memory refuses it, naming 0-3)
        return
    own, with_pp = stack_zero_stages(software)
    if zero not in own:
        raise LayoutError(f"the {software} stack shards as {zero_phrase(own)}; zero={zero} is none of them")
    if pp is not None and pp > 1 and zero not in with_pp:
        raise LayoutError(f"the {software} stack runs {zero_phrase(with_pp)} with pipeline parallelism; "
                          f"zero={zero} with pp={pp} is refused")


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

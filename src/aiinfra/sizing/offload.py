"""Offload settings (optimizer states, weights, activations in host memory) and the stack rules on optimizer and
activation offload (catalog stacks.yaml optimizer_offload, activation_offload)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import LayoutError, SpecError
from aiinfra.sizing.layout import zero_phrase
from aiinfra.sizing.recompute import RECOMPUTE
from aiinfra.specs import ModelSpec

OFFLOAD = ("none", "optimizer", "optimizer+params")
# Offload as bit flags (the planner searches them as arrays): 1 the stack's optimizer offload (the optimizer states and
# whatever else that stack moves with them: OptimizerOffload below), 2 weights streamed from host per micro-batch,
# 4 saved activations parked in host memory.
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


OPTIMIZER_OFFLOAD_PARTS = ("optimizer", "gradients", "weights")


@dataclass(frozen=True)
class OptimizerOffload:
    """What a software stack's optimizer CPU offload (offload bit 1) puts in host memory (stacks.yaml
    optimizer_offload; absent: the optimizer states and fp32 gradients at any ZeRO stage, ZeRO-Offload's split).

    host: optimizer (fp32 master weights and optimizer states), gradients (the fp32 gradients the step reads),
    weights (the 16-bit weight shard ZeRO-3 keeps; the layers gathered for compute stay on the GPU); empty: the stack
    runs no optimizer offload. zero_stages: the ZeRO stages it runs with."""

    host: tuple[str, ...] = ("optimizer", "gradients")
    zero_stages: tuple[int, ...] = (0, 1, 2, 3)
    source: str = ""

    @property
    def runs(self) -> bool:
        return bool(self.host)

    def phrase(self) -> str:
        """'the master weights and optimizer states in host memory, the gradients and the weights on the GPU'."""
        host_names = {"optimizer": "the master weights and optimizer states", "gradients": "the gradients",
                      "weights": "the ZeRO-3 weight shard"}
        gpu_names = {"gradients": "the gradients", "weights": "the weights"}
        kept = [gpu_names[p] for p in OPTIMIZER_OFFLOAD_PARTS if p not in self.host]
        return (f"{_and([host_names[p] for p in self.host])} in host memory"
                + (f", {_and(kept)} on the GPU" if kept else ""))


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def optimizer_offload(software: str = "megatron-core") -> OptimizerOffload:
    """What the stack's optimizer offload moves to the host (catalog stacks.yaml optimizer_offload); a malformed entry
    is refused."""
    key, entry = default_catalog().entry("stacks", software)
    raw = entry.get("optimizer_offload")
    if raw is None:
        return OptimizerOffload()
    host, zero = (raw.get("host"), raw.get("zero_stages", [0, 1, 2, 3])) if isinstance(raw, dict) else (None, None)
    if (not isinstance(raw, dict) or set(raw) - {"host", "zero_stages", "source"} or not isinstance(host, list)
            or any(p not in OPTIMIZER_OFFLOAD_PARTS for p in host) or (host and "optimizer" not in host)
            or not isinstance(zero, list) or not zero or any(isinstance(z, bool) or z not in (0, 1, 2, 3) for z in zero)):
        raise SpecError(f"stack '{key}': optimizer_offload takes host (a list of {', '.join(OPTIMIZER_OFFLOAD_PARTS)} "
                        "with optimizer among them, or [] for none), zero_stages (a list of 0-3) and source, "
                        f"got {raw!r}")
    return OptimizerOffload(tuple(p for p in OPTIMIZER_OFFLOAD_PARTS if p in host), tuple(sorted(set(zero))),
                            str(raw.get("source", "")))


def check_optimizer_offload(software: str, zero: int | None) -> None:
    """Raise LayoutError where the stack runs no optimizer offload, or none at this ZeRO stage (stacks.yaml
    optimizer_offload zero_stages: Megatron's needs the distributed optimizer, FSDP2's FSDP sharding)."""
    rule = optimizer_offload(software)
    if not rule.runs:
        raise LayoutError(f"the {software} stack runs no optimizer offload; drop optimizer from the offload")
    if zero is not None and zero not in rule.zero_stages:
        raise LayoutError(f"the {software} stack offloads the optimizer only at {zero_phrase(rule.zero_stages)}; "
                          f"ZeRO-{zero} is none of them")


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

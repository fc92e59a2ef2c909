"""Explained numbers: every value aiinfra prints carries its formula, inputs and sources.

A `Term` is built by the same function that computes the number, so the explanation cannot
drift from it. Values may be numpy arrays: the planner evaluates one Term over millions of
candidates at once and only the winner is explained.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any

# A value is a Python number or a numpy array. numpy is imported by the code that builds arrays,
# not here: a command that never touches numpy does not pay its import (about 0.1 s) at start-up,
# and when numpy is not loaded no value can be a numpy object.
Number = Any  # float | int | numpy.ndarray


def _numpy() -> Any:
    return sys.modules.get("numpy")


def _ndim(value: Any) -> int:
    np_ = _numpy()
    return int(np_.ndim(value)) if np_ is not None else 0


def _plain(value: Any) -> Any:
    """JSON/YAML-safe form of a value (numpy scalars and arrays become Python numbers/lists).

    Non-finite floats (a breakeven that never comes) become the strings "inf"/"-inf"/"nan", because
    strict JSON has no Infinity.
    """
    np_ = _numpy()
    if isinstance(value, float) and not math.isfinite(value):
        return str(float(value))
    if isinstance(value, Term):
        return value.to_dict()
    if np_ is not None:
        if isinstance(value, np_.floating) and not math.isfinite(value):
            return str(float(value))
        if isinstance(value, np_.ndarray):
            return _plain(value.tolist())
        if isinstance(value, np_.generic):
            return _plain(value.item())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass
class Term:
    """One named quantity: value + unit + formula + the inputs and sources it came from.

    - `inputs` maps the symbols used in `formula` to their values (numbers, strings or Terms).
    - `sources` maps a constant or input to where it comes from (paper table, catalog entry).
    - `parts` are the sub-terms when this Term is a sum or product of other Terms.
    """

    name: str
    value: Number
    unit: str
    formula: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    parts: list[Term] = field(default_factory=list)
    note: str = ""

    def __float__(self) -> float:
        return float(self.value)

    def scalar(self) -> Term:
        """Require a scalar value (explanations are printed for one candidate at a time)."""
        if _ndim(self.value) != 0:
            raise ValueError(f"term {self.name} holds an array; index it before printing")
        return self

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "value": _plain(self.value), "unit": self.unit}
        if self.formula:
            out["formula"] = self.formula
        if self.inputs:
            out["inputs"] = _plain(self.inputs)
        if self.sources:
            out["sources"] = dict(self.sources)
        if self.parts:
            out["parts"] = [p.to_dict() for p in self.parts]
        if self.note:
            out["note"] = self.note
        return out

    def pick(self, index: Any) -> Term:
        """The same Term for one element of array-valued inputs (used to explain a search winner)."""

        def sel(v: Any) -> Any:
            if isinstance(v, Term):
                return v.pick(index)
            np_ = _numpy()
            if np_ is not None and isinstance(v, np_.ndarray) and v.ndim > 0:
                return v[index].item() if np_.ndim(v[index]) == 0 else v[index]
            return v

        return Term(
            name=self.name,
            value=sel(self.value),
            unit=self.unit,
            formula=self.formula,
            inputs={k: sel(v) for k, v in self.inputs.items()},
            sources=dict(self.sources),
            parts=[p.pick(index) for p in self.parts],
            note=self.note,
        )


def total(name: str, parts: list[Term], unit: str | None = None, note: str = "") -> Term:
    """A Term that is the sum of `parts` (all in the same unit)."""
    if not parts:
        raise ValueError("total() needs at least one part")
    unit = unit or parts[0].unit
    for p in parts:
        if p.unit != unit:
            raise ValueError(f"cannot add {p.name} in {p.unit} to {unit}")
    value = parts[0].value
    for p in parts[1:]:
        value = value + p.value
    return Term(name, value, unit, formula=" + ".join(p.name for p in parts), parts=list(parts), note=note)


def quantity(value: Any, unit: str) -> dict[str, Any]:
    """A fact that is a number: value + unit, as every JSON/YAML answer carries it."""
    return {"value": _plain(value), "unit": unit}


def fact_key(name: str) -> str:
    """The facts key of a Term: its name in snake case ("KV cache" -> "kv_cache")."""
    key = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    return key or "value"


@dataclass
class Result:
    """What a command returns: every answer as data, the Terms behind it, and what it assumed.

    - `facts`: every answer the table shows, numbers as `quantity(value, unit)`, rows as lists of dicts.
    - `terms`: the explained derivation of those facts (printed with --explain).
    - `assumptions`: each default, price and constant the answer rests on, and where it came from.
    - `warnings`: what the user should know; data, never printed by the library itself.

    The machine-readable envelope is `to_dict()`: the same top-level keys for every command.
    """

    title: str
    terms: list[Term] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)

    def term(self, name: str) -> Term:
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(name)

    def all_facts(self) -> dict[str, Any]:
        """`facts`, plus each top-level Term not already among them as value + unit, so the JSON carries
        every number the table shows even where a command set no explicit key for it."""
        out = dict(self.facts)
        for t in self.terms:
            key = fact_key(t.name)
            if key not in out and _ndim(t.value) == 0:
                out[key] = quantity(t.value, t.unit)
        return out

    def to_dict(self, explain: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "title": self.title,
            "facts": _plain(self.all_facts()),
            "assumptions": list(self.assumptions),
            "warnings": list(self.warnings),
        }
        if explain:
            out["explain"] = [t.to_dict() for t in self.terms]
        return out

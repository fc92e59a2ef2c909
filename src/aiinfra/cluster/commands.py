"""`aiinfra design` as one library function: a spec in, an explained Result out.

The CLI (cli/design.py) and the web page (web/pages/design.py) both parse their input into a
`DesignSpec` (declared with every option in options.py), call `design(spec)` and render the Result;
the summary rows and how each value is printed live here so both shells show the same table.
"""

from __future__ import annotations

import re
from typing import Any

from aiinfra.cluster.design import design_cluster
from aiinfra.cluster.options import DesignInput, DesignSpec
from aiinfra.cluster.reference import preset_settings
from aiinfra.contract import Facts, Quantity, command
from aiinfra.errors import SpecError
from aiinfra.explain import Result, Term

_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_count(text: str | float | None) -> float | None:
    """'70B', '405e9', '1.5T' → a number of parameters."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)\s*", text.lower())
    if not m:
        raise SpecError(f"parameter count '{text}' is not a number like 70B, 405e9 or 1.5T")
    return float(m.group(1)) * (_SUFFIX[m.group(2)] if m.group(2) else 1.0)


class DesignFacts(Facts):
    """What `aiinfra design --format json` promises under `facts`."""

    node: str
    fabric_switch: str
    tiers: int
    scalable_units: int
    storage_tier: str
    scale: str
    per_tier: list[dict[str, Any]]
    rack_plan: list[dict[str, Any]]
    bom: list[dict[str, Any]]
    gpus: Quantity
    nodes: Quantity
    it_power: Quantity
    facility_power: Quantity


def design_input(spec: DesignSpec) -> DesignInput:
    """The designer's input for a spec: the preset's settings, then every option the user gave."""
    fields: dict[str, Any] = {}
    if spec.preset is not None:
        fields.update(preset_settings(spec.preset, spec.su, spec.gpus, spec.node))
    elif spec.su is not None:
        raise SpecError("--su needs --preset dgx-pod or --preset superpod")
    elif spec.gpus is None:
        raise SpecError("give --gpus N, or --preset basepod|dgx-pod|superpod with --su N")
    else:
        fields["gpus"] = spec.gpus
    # Every option the user gave overrides the preset; gpus, preset and su went into the preset's settings.
    given = spec.model_dump(exclude={"gpus", "preset", "su", "params"}, exclude_none=True)
    fields.update(given, **({"params": parse_count(spec.params)} if spec.params is not None else {}))
    return DesignInput(**fields)


@command("design", facts=DesignFacts)
def design(spec: DesignSpec) -> Result:
    """Design a GPU cluster: fabric, storage, management, racks, power and cooling, and a BOM with reasons."""
    r = design_cluster(design_input(spec)).result()
    for row in r.facts["bom"]:  # the table shows each line's power in kW; carry that answer as printed
        row["power_kw"] = row["power_w"] / 1000
    src = r.facts.get("preset_source")
    if src:
        r.assumptions.append(f"reference architecture: {src}")
    r.assumptions.append("power at nameplate maximum; unit powers, radices and counts from catalog systems/switches/optics/"
                         "cluster_services/datacenter, each with its source")
    return r


# Summary rows both shells print, in order.
SUMMARY = [
    "GPUs", "nodes", "scalable units", "NVLink domains", "leaf switches", "spine switches", "core switches", "cables node→leaf",
    "cables leaf→spine", "cables spine→core", "switch-side transceivers", "node-side transceivers", "bisection bandwidth",
    "storage read per node", "storage read per SU", "storage read aggregate", "storage write aggregate",
    "storage capacity to provision", "checkpoint size", "checkpoint write time", "job MTBF", "checkpoint interval (Young/Daly)",
    "training stalled by checkpoints", "data demand per node", "in-band switches", "out-of-band switches",
    "storage leaf switches", "storage spine switches", "storage core switches", "UFM appliances", "control-plane servers",
    "racks", "rack PDUs", "compute racks", "compute rack power", "network racks", "power per SU", "liquid-cooled heat",
    "air-cooled heat", "facility water flow", "CDUs", "CRAH units", "IT power", "heat rejection", "facility power",
    "energy per year", "all-reduce volume per GPU per step", "all-reduce time per step",
]


def show(t: Term) -> str:
    """A Term's value in the unit a reader expects (Tb/s, GB/s, TB, min, kW/MW, %)."""
    v, u = t.value, t.unit
    if isinstance(v, str):
        return v
    if u == "b/s":
        return f"{v / 1e12:,.1f} Tb/s"
    if u == "B/s":
        return f"{v / 1e9:,.1f} GB/s"
    if u == "B":
        return f"{v / 1e12:,.2f} TB" if v >= 1e12 else f"{v / 1e9:,.1f} GB"
    if u == "s":
        return f"{v / 3600:,.2f} h" if v >= 7200 else (f"{v / 60:,.1f} min" if v >= 120 else f"{v:,.3g} s")
    if u == "W":
        return f"{v / 1e6:,.3f} MW" if v >= 1e6 else f"{v / 1e3:,.1f} kW"
    if u == "kWh":
        return f"{v / 1e3:,.0f} MWh"
    if u == "fraction":
        return f"{v * 100:.2f} %"
    if u == "L/min":
        return f"{v:,.0f} L/min"
    return f"{v:,.6g} {u}".strip()


def summary_rows(r: Result) -> list[tuple[Term, str]]:
    """(term, printed value) for the summary table, in SUMMARY order."""
    names = {t.name: t for t in r.terms}
    return [(names[n], show(names[n])) for n in SUMMARY if n in names]


__all__ = ["DesignFacts", "DesignSpec", "design", "design_input", "parse_count", "show", "summary_rows"]

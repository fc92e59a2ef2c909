"""Power and cooling: racks by kW budget, IT power, facility power with PUE, energy, cooling.

- nodes per rack = min(⌊rack budget / node max power⌋, ⌊rack units / node height⌋);
- IT power = Σ quantity × max power over the bill of materials (nodes, switches, optics,
  servers), at the nameplate maximum (NVIDIA's H100 DC guide expects average ≈ peak);
- facility power = IT × PUE; energy per year = facility × 8,766 h × load factor;
- cooling by rack density: air ≤ ~30 kW, air with containment up to ~41 kW (the RA's 4 ×
  DGX H100 racks), direct liquid cooling above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from aiinfra.cluster.bom import LineItem, total_power
from aiinfra.cluster.parts import SystemSpec, constant
from aiinfra.errors import SpecError
from aiinfra.explain import Term

SRC_POWER = "cluster_tco_anchors.md §4 (DGX H100 10.2 kW max; 127 nodes = 1.30 MW)"


def nodes_per_rack(system: SystemSpec, rack_kw: float | None = None) -> Term:
    budget, budget_src = (rack_kw, "given") if rack_kw is not None else constant("rack-budget-kw")
    if budget <= 0:
        raise SpecError(f"rack power budget must be positive, not {budget:g} kW")
    units, units_src = constant("rack-units")
    by_power = math.floor(budget * 1000 / system.max_power_w + 1e-9)
    by_space = math.floor(units / system.rack_units)
    n = min(by_power, by_space)
    if n < 1:
        raise SpecError(f"one {system.key} draws {system.max_power_w / 1000:g} kW, more than the {budget:g} kW rack budget; raise --rack-kw")
    return Term("nodes per rack", n, "nodes", "min(⌊rack kW / node kW⌋, ⌊rack U / node U⌋)",
                {"rack kW": budget, "node kW": system.max_power_w / 1000, "rack U": units, "node U": system.rack_units},
                {"rack kW": budget_src, "rack U": units_src, "node": system.source})


def cooling_for(rack_kw: float) -> tuple[str, str]:
    """Cooling class for a rack density, and the source of the threshold."""
    air, air_src = constant("air-cooling-limit-kw")
    contained, c_src = constant("air-containment-limit-kw")
    liquid, l_src = constant("liquid-cooling-max-kw")
    if rack_kw <= air:
        return "air", air_src
    if rack_kw <= contained:
        return "air with hot/cold-aisle containment", c_src
    if rack_kw <= liquid:
        return "direct liquid cooling", l_src
    return "beyond direct liquid cooling limits: split the rack", l_src


def network_it_power(bom: list[LineItem]) -> list[Term]:
    """IT power of the fabrics with their optics, and of management, from the BOM at nameplate."""
    return [
        Term("IT power: fabrics and optics", total_power(bom, ("compute-fabric", "storage-fabric", "optics")), "W", "Σ switches and transceivers × max power"),
        Term("IT power: management", total_power(bom, ("management",)), "W", "Σ management switches and servers × max power"),
    ]


def facility_power(it_w: float, pue: float | None = None) -> Term:
    value, src = (pue, "given") if pue is not None else constant("pue-ai-dc")
    if value < 1:
        raise SpecError(f"PUE {value:g} is below 1, which no facility reaches")
    return Term("facility power", it_w * value, "W", "IT power × PUE", {"IT power (W)": it_w, "PUE": value}, {"PUE": src})


def annual_energy(facility_w: float, load_factor: float = 1.0) -> Term:
    if not 0 < load_factor <= 1:
        raise SpecError(f"load factor must be in (0, 1], not {load_factor:g}")
    hours, src = constant("hours-per-year")
    return Term("energy per year", facility_w * hours * load_factor / 1000, "kWh", "facility W × hours × load factor / 1000",
                {"facility W": facility_w, "hours": hours, "load factor": load_factor}, {"hours": src})


@dataclass
class RackPlan:
    compute_racks: int
    per_rack: int
    rack_kw: float
    cooling: str
    network_racks: int
    network_kw: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    terms: list[Term] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def plan_racks(system: SystemSpec, nodes: int, network_units: int, network_w: float, rack_kw: float | None = None) -> RackPlan:
    """Compute racks by power and space; switches, UFM and control servers in network racks."""
    per = nodes_per_rack(system, rack_kw)
    n_per = int(per.value)
    racks = math.ceil(nodes / n_per)
    kw = n_per * system.max_power_w / 1000
    cooling, c_src = cooling_for(kw)
    units, _ = constant("rack-units")
    budget_kw = rack_kw if rack_kw is not None else constant("rack-budget-kw")[0]
    # 6U per rack kept for patch panels and cable management; network racks obey the same power budget.
    net_racks = max(1, math.ceil(network_units / (units - 6)), math.ceil(network_w / 1000 / budget_kw))
    net_kw = network_w / 1000 / net_racks
    full, rest = divmod(nodes, n_per)
    rows = [{"rack": f"compute × {full}", "nodes": n_per, "kW": n_per * system.max_power_w / 1000, "cooling": cooling}] if full else []
    if rest:
        rows.append({"rack": "compute × 1", "nodes": rest, "kW": rest * system.max_power_w / 1000, "cooling": cooling_for(rest * system.max_power_w / 1000)[0]})
    rows.append({"rack": f"network × {net_racks}", "units": network_units, "kW": round(net_kw, 2), "cooling": cooling_for(net_kw)[0]})
    terms = [per,
             Term("compute racks", racks, "racks", "⌈nodes / nodes per rack⌉", {"nodes": nodes, "nodes per rack": per}),
             Term("compute rack power", kw, "kW", "nodes per rack × node max power", {"nodes per rack": n_per, "node kW": system.max_power_w / 1000},
                  {"node": system.source}, note=f"cooling: {cooling} ({c_src})"),
             Term("network racks", net_racks, "racks", "max(⌈switch, UFM and server rack units / (rack U − 6)⌉, ⌈network kW / rack kW⌉)",
                  {"units": network_units, "rack U": units, "network kW": network_w / 1000, "rack kW": budget_kw})]
    warnings = []
    if cooling.startswith("beyond"):
        warnings.append(f"{kw:g} kW per rack exceeds the direct-liquid-cooling range; lower --rack-kw")
    return RackPlan(racks, n_per, kw, cooling, net_racks, net_kw, rows, terms, warnings)

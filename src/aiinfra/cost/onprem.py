"""Owning GPUs: CapEx annualised with the CRF, fixed OpEx, and energy, per GPU-hour.

    own $/year       = capex × CRF(r, L) (net of residual) + fixed opex (colo or facility, support, staff, spares)
    own $/GPU-h used = own $/year / (GPUs × 8760 h × utilization) + energy $/GPU-h

(cluster_tco_anchors.md §5.5, "breakeven arithmetic"; energy per §4.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiinfra.cost import capex as cx
from aiinfra.cost import prices
from aiinfra.cost.energy import electricity, energy_per_gpu_hour, pue
from aiinfra.errors import AiinfraError
from aiinfra.explain import Term, total

HOURS_PER_YEAR = 8760.0
HOURS_PER_MONTH = HOURS_PER_YEAR / 12


def check_utilization(u: float) -> float:
    if not 0 < u <= 1:
        raise AiinfraError(f"utilization must be in (0, 1], got {u:g}")
    return u


def check_money(name: str, v: float | None) -> None:
    if v is not None and v < 0:
        raise AiinfraError(f"{name} must be >= 0, got {v:g}; prices cannot be negative")


@dataclass
class OnPremInputs:
    """What an owned cluster is made of and how it is run. Defaults come from prices.yaml."""

    gpus: int = 0
    node: str = "dgx-h100"
    utilization: float = 0.7
    years: float | None = None  # None → depreciation-default (5 years)
    rate: float | None = None  # None → capital-default
    residual: float = 0.0  # resale fraction at end of life; Epoch amortises to zero
    pue: str | float = "ai-datacenter"
    electricity: str | float = "us-industrial"
    load: float = 0.75  # average draw while busy, fraction of max (Epoch energy.py)
    facility: str = "colo"  # colo | owned
    colo: str = "colo-retail"
    colo_usd_per_kw_month: float | None = None
    support: str = "support-dgx"
    support_fraction: float | None = None
    staff: str = "staff-gpu-servers"
    staff_usd_per_fte_year: float | None = None
    spares_fraction: float = 0.0
    storage_tb: float = 0.0
    node_price: float | None = None
    bom: list[Any] | None = field(default=None, repr=False)
    bom_source: str = "BOM file"


@dataclass
class OnPremCost:
    inputs: OnPremInputs
    gpus: int
    nodes: float
    capex: Term
    it_power: Term
    annual_capex: Term
    fixed_opex: Term
    fixed_per_gpu_hour: Term
    energy: Term
    per_gpu_hour: Term
    per_year: Term
    years: float
    rate: float

    def terms(self) -> list[Term]:
        return [self.per_gpu_hour, self.per_year, self.capex, self.fixed_opex, self.energy]


def _default(kind: str, key: str, field_: str) -> tuple[float, dict[str, str]]:
    k, e = prices.lookup(kind, key)
    return float(e[field_]), {k: prices.describe(k, e)}


def _bom(i: OnPremInputs) -> list[cx.LineItem]:
    if i.bom is not None:
        return [cx.as_line_item(x) for x in i.bom]
    if i.gpus <= 0:
        raise AiinfraError(f"GPU count must be > 0, got {i.gpus}")
    _, node = prices.lookup("node", i.node, "node")
    nodes = math.ceil(i.gpus / int(node["gpus"]))
    items = cx.per_node_items(i.node, nodes, i.storage_tb)
    if i.node_price is not None:
        items[0] = cx.LineItem(items[0].category, items[0].item, items[0].quantity, items[0].unit_power_w,
                               items[0].reason, i.node_price)
    return items


def _gpus_in(items: Iterable[cx.LineItem]) -> tuple[int, float, float]:
    """(GPUs, nodes, node CapEx) of the BOM lines that are GPU nodes."""
    gpus, nodes, node_capex = 0, 0.0, 0.0
    for li in items:
        try:
            _, e = prices.lookup("node", li.item)
        except AiinfraError:
            continue
        gpus += round(li.quantity * int(e["gpus"]))
        nodes += li.quantity
        node_capex += li.quantity * (li.unit_price if li.unit_price is not None else float(e["price"]))
    return gpus, nodes, node_capex


def onprem_cost(i: OnPremInputs) -> OnPremCost:
    """The explained cost of owning and running the cluster at `i.utilization`."""
    check_utilization(i.utilization)
    for name, v in (("node price", i.node_price), ("colo $/kW-month", i.colo_usd_per_kw_month),
                    ("staff $/FTE-year", i.staff_usd_per_fte_year), ("storage TB", i.storage_tb),
                    ("support fraction", i.support_fraction), ("spares fraction", i.spares_fraction)):
        check_money(name, v)
    items = _bom(i)
    capex, power = cx.bom_capex(items)
    gpus, nodes, node_capex = _gpus_in(items)
    if gpus <= 0:
        raise AiinfraError("the bill of materials holds no GPU nodes that the price catalog knows")
    if power.value <= 0:
        raise AiinfraError("the bill of materials gives no power for its nodes; add unit power to the node lines")

    years, ysrc = (i.years, {}) if i.years is not None else _default("depreciation", "depreciation-default", "years")
    rate, rsrc = (i.rate, {}) if i.rate is not None else _default("capital", "capital-default", "rate")
    if years <= 0:
        raise AiinfraError(f"years must be > 0, got {years:g}")
    ann = cx.annualised(capex, rate, years, i.residual)
    ann.sources.update({**ysrc, **rsrc})

    it_kw = power.value / 1000
    opex_parts = []
    if i.facility == "colo":
        rate_kw, src = ((i.colo_usd_per_kw_month, {}) if i.colo_usd_per_kw_month is not None
                        else _default("colo", i.colo, "usd_per_kw_month"))
        opex_parts.append(Term("colocation", rate_kw * it_kw * 12, "$/year", "$/kW-month × IT_kW × 12",
                               {"$/kW-month": rate_kw, "IT_kW": it_kw}, src,
                               note="contracted for peak IT power; electricity is counted separately"))
    elif i.facility == "owned":
        k, e = prices.lookup("facility", "facility-owned")
        fac_capex = Term("facility capex", float(e["price"]) * it_kw / 1000, "$", "$/MW × IT_MW",
                         {"$/MW": e["price"], "IT_MW": it_kw / 1000}, {k: prices.describe(k, e)})
        fac = cx.annualised(fac_capex, rate, float(e["life_years"]))
        opex_parts.append(Term("facility (owned)", fac.value, "$/year", "annualised facility capex over its life",
                               {"facility": fac}))
    else:
        raise AiinfraError(f"facility must be 'colo' or 'owned', got '{i.facility}'")
    frac, src = ((i.support_fraction, {}) if i.support_fraction is not None
                 else _default("support", i.support, "fraction_per_year"))
    opex_parts.append(Term("support", frac * node_capex, "$/year", "support_fraction × node_capex",
                           {"support_fraction": frac, "node_capex": node_capex}, src))
    sk, se = prices.lookup("staff", i.staff)
    salary = i.staff_usd_per_fte_year if i.staff_usd_per_fte_year is not None else float(se["usd_per_fte_year"])
    opex_parts.append(Term("staff", nodes / float(se["servers_per_fte"]) * salary, "$/year",
                           "servers / servers_per_FTE × $/FTE-year",
                           {"servers": nodes, "servers_per_FTE": se["servers_per_fte"], "$/FTE-year": salary},
                           {sk: prices.describe(sk, se)}))
    if i.spares_fraction:
        opex_parts.append(Term("spares", i.spares_fraction * capex.value, "$/year", "spares_fraction × capex",
                               {"spares_fraction": i.spares_fraction, "capex": capex.value}))
    fixed_opex = total("fixed opex", opex_parts)

    energy = energy_per_gpu_hour(it_kw, gpus, i.load, pue(i.pue), electricity(i.electricity))
    energy.note = "per busy GPU-hour at the average draw 'load' (Epoch: 0.75 of max); idle draw is not counted"
    fixed_hour = Term("owned fixed $/GPU-h available", (ann.value + fixed_opex.value) / (gpus * HOURS_PER_YEAR),
                      "$/GPU-h", "(annualised capex + fixed opex) / (GPUs × 8760 h)",
                      {"annualised capex": ann, "fixed opex": fixed_opex, "GPUs": gpus})
    u = i.utilization
    per_hour = Term("owned $/GPU-h used", fixed_hour.value / u + energy.value, "$/GPU-h",
                    "fixed $/GPU-h available / utilization + energy",
                    {"fixed": fixed_hour, "utilization": u, "energy": energy})
    per_year = Term("owned $/year", ann.value + fixed_opex.value + energy.value * gpus * HOURS_PER_YEAR * u,
                    "$/year", "annualised capex + fixed opex + energy × GPUs × 8760 × utilization",
                    {"annualised capex": ann.value, "fixed opex": fixed_opex.value, "energy": energy.value,
                     "GPUs": gpus, "utilization": u})
    return OnPremCost(i, gpus, nodes, capex, power, ann, fixed_opex, fixed_hour, energy, per_hour, per_year,
                      float(years), float(rate))

"""Cost of ownership, on-prem vs cloud vs hybrid: the pieces in this package put together.

`tco(inputs)` returns explained Results: the owned cost per GPU-hour, each cloud offer for the same
busy GPU-hours with its breakeven, per-job costs, the hybrid baseline when a demand profile is
given, and a recommendation. Prices older than six months come back as warnings with their date;
the warnings are read from the explanation's sources, so they cannot miss a price that was used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from aiinfra.cost import breakeven as be
from aiinfra.cost import capex as cx
from aiinfra.cost import cloud, hybrid, jobs, prices
from aiinfra.cost.decision import Decision, Factors, decide
from aiinfra.cost.onprem import HOURS_PER_MONTH, HOURS_PER_YEAR, OnPremCost, OnPremInputs, check_utilization, onprem_cost
from aiinfra.cost.plot import Series
from aiinfra.errors import AiinfraError
from aiinfra.explain import Result, Term


@dataclass
class TcoInputs:
    onprem: OnPremInputs
    clouds: list[str] = field(default_factory=list)  # empty → like-for-like offers for the node's GPU
    terms: list[str] = field(default_factory=lambda: ["on-demand"])
    egress_tb_month: float = 0.0
    gpu_hours: float | None = None
    tokens_per_gpu_s: float | None = None
    demand: np.ndarray | None = None
    factors: Factors = field(default_factory=Factors)
    warnings: list[str] = field(default_factory=list)  # from the caller (e.g. unpriced design lines)


@dataclass
class Comparison:
    offer: cloud.CloudOffer
    term: str
    price: Term
    horizon_cost: Term
    breakeven_u: Term
    breakeven_months: Term
    month_cost: Term
    like_for_like: str | None


@dataclass
class TcoReport:
    results: list[Result]
    own: OnPremCost
    comparisons: list[Comparison]
    plan: hybrid.HybridPlan | None
    decision: Decision
    series: list[Series]
    breakevens: list[tuple[str, float]]
    horizon_months: float


def _offers(i: TcoInputs, gpu: str) -> list[cloud.CloudOffer]:
    if i.clouds:
        return [cloud.offer(c) for c in i.clouds]
    found = [o for o in cloud.offers(gpu) if o.fabric in cloud.SCALE_OUT_FABRICS]
    if not found:
        raise AiinfraError(f"no cloud offer with an IB/EFA fabric for GPU '{gpu}' in the catalog; name one with --cloud")
    return found


def _terms_for(o: cloud.CloudOffer, terms: list[str], explicit: bool) -> list[str]:
    if terms == ["all"]:
        return o.terms()
    for t in terms:
        if t not in cloud.TERMS:
            raise AiinfraError(f"unknown pricing term '{t}'; use one of {', '.join(cloud.TERMS)} or all")
    # Defaulted offers skip terms they have no price for; named offers ask for them and get an error.
    return terms if explicit else [t for t in terms if t in o.terms()]


def stale_warnings(terms: Iterable[Term]) -> list[str]:
    """One warning per catalog price used (anywhere in the explanation) that is older than 6 months."""
    table = prices.table()
    seen: dict[str, str] = {}

    def walk(t: Term) -> None:
        for src in t.sources.values():
            m = re.match(r"prices\.yaml:([^\s(]+)", src)
            if m and m.group(1) in table and m.group(1) not in seen:
                w = prices.age_warning(m.group(1), table[m.group(1)])
                seen[m.group(1)] = w or ""
        for v in t.inputs.values():
            if isinstance(v, Term):
                walk(v)
        for p in t.parts:
            walk(p)

    for t in terms:
        walk(t)
    return [w for w in seen.values() if w]


def tco(i: TcoInputs) -> TcoReport:
    """Owned vs rented for the same busy GPU-hours. The first cloud offer (the first --cloud) is the
    reference for the hybrid plan and the recommendation."""
    if i.egress_tb_month < 0:
        raise AiinfraError(f"egress must be >= 0 TB/month, got {i.egress_tb_month:g}")
    op = i.onprem
    if i.demand is not None and op.gpus <= 0 and op.bom is None:
        op = replace(op, gpus=math.ceil(float(np.max(i.demand))))  # own the peak when nothing else is said
    check_utilization(op.utilization)
    own = onprem_cost(op)
    g, u, years = own.gpus, op.utilization, own.years
    own_month = Term("owned running $/month", own.fixed_opex.value / 12 + own.energy.value * g * HOURS_PER_MONTH * u,
                     "$/month", "fixed opex / 12 + energy × GPUs × 730 h × utilization",
                     {"fixed opex": own.fixed_opex, "energy": own.energy, "GPUs": g, "utilization": u})
    form, fabric = _node_form(op)
    comparisons: list[Comparison] = []
    for o in _offers(i, _node_gpu(op)):
        w = cloud.like_for_like(o, form, fabric)
        comparisons += [_compare(i, own, own_month, o, t, w) for t in _terms_for(o, i.terms, bool(i.clouds))]
    if not comparisons:
        raise AiinfraError("no cloud offer could be priced at the requested terms; try --term all")
    primary = comparisons[0]

    results = [_own_result(own, op, years), _compare_result(own, comparisons, years)]
    if i.gpu_hours is not None or i.tokens_per_gpu_s is not None:
        results.append(_jobs_result(i, own, comparisons))
    series = [Series(f"on-prem ({g} GPUs)", own.capex.value, own_month.value)]
    series += [Series(f"{c.offer.key} {c.term}", 0.0, c.month_cost.value) for c in comparisons]
    breakevens = [(f"{c.offer.key} {c.term}", c.breakeven_months.value) for c in comparisons]
    plan, saving, factors = None, None, replace(i.factors, horizon_years=years)
    if i.demand is not None:
        plan = hybrid.plan(i.demand, own.fixed_per_gpu_hour, own.energy, primary.price)
        results.append(_hybrid_result(plan, primary))
        series.append(_hybrid_series(plan, own))
        saving = min(plan.pure_cloud.value, plan.pure_onprem.value) - plan.hybrid.value
        if factors.steadiness is None and np.max(i.demand) > 0:
            factors.steadiness = float(np.mean(i.demand) / np.max(i.demand))
    decision = decide(factors, u, primary.breakeven_u.value, primary.breakeven_months.value, own.capex.value, saving)
    results.append(Result("Recommendation", facts={"choice": decision.choice, "scores": decision.scores,
                                                   "reasons": decision.reasons}))
    like = list(dict.fromkeys(c.like_for_like for c in comparisons if c.like_for_like))
    results[0].warnings.extend(stale_warnings(t for r in results for t in r.terms) + like + i.warnings)
    return TcoReport(results, own, comparisons, plan, decision, series, breakevens, years * 12)


def _compare(i: TcoInputs, own: OnPremCost, own_month: Term, o: cloud.CloudOffer, term: str,
             like: str | None) -> Comparison:
    """One cloud offer at one term against the owned cluster, for the same busy GPU-hours."""
    g, u, years = own.gpus, own.inputs.utilization, own.years
    label = f"{o.key} {term}"
    price = cloud.gpu_hour_price(o, term)
    egress = cloud.egress_price(o.provider)
    horizon = cloud.cloud_cost(g * HOURS_PER_YEAR * u * years, price, i.egress_tb_month * 12 * years, egress)
    horizon.name = f"{label} over {years:g} years"
    month = Term(f"{label} $/month", price.value * g * HOURS_PER_MONTH * u + i.egress_tb_month * 1000 * egress.value,
                 "$/month", "price × GPUs × 730 h × utilization + egress_TB × 1000 × $/GB",
                 {"price": price, "GPUs": g, "utilization": u, "egress_TB": i.egress_tb_month, "$/GB": egress})
    return Comparison(o, term, price, horizon,
                      be.breakeven_utilization(own.fixed_per_gpu_hour, own.energy, price, label),
                      be.breakeven_months(own.capex, own_month, month, label), month, like)


def _hybrid_series(plan: hybrid.HybridPlan, own: OnPremCost) -> Series:
    """Cash view of the hybrid: the baseline's share of CapEx up front, then its fixed opex share,
    its energy and the cloud bursts per month."""
    b, g = plan.baseline.value, own.gpus
    variable = plan.cost[plan.best] - own.fixed_per_gpu_hour.value * b * plan.hours  # energy + bursts
    per_month = own.fixed_opex.value * b / g / 12 + variable / (plan.hours / HOURS_PER_MONTH)
    return Series(f"hybrid (own {b:g} GPUs + burst)", own.capex.value * b / g, per_month)


def _node_entry(op: OnPremInputs) -> dict:
    """The catalog entry of the GPU node: the first node line of the BOM, or --node."""
    for li in op.bom or []:
        try:
            return prices.lookup("node", cx.as_line_item(li).item)[1]
        except AiinfraError:
            continue
    return prices.lookup("node", op.node, "node")[1]


def _node_gpu(op: OnPremInputs) -> str:
    return str(_node_entry(op).get("gpu", ""))


def _node_form(op: OnPremInputs) -> tuple[str, str]:
    e = _node_entry(op)
    return str(e.get("form_factor", "sxm")), str(e.get("fabric", "ib"))


def _own_result(own: OnPremCost, op: OnPremInputs, years: float) -> Result:
    r = Result("On-prem cost of ownership", terms=[own.per_gpu_hour, own.per_year, own.capex, own.annual_capex,
                                                  own.fixed_opex, own.energy])
    r.facts.update({
        "GPUs": own.gpus, "nodes": int(own.nodes) if float(own.nodes).is_integer() else own.nodes, "IT power kW": round(own.it_power.value / 1000, 3),
        "utilization": op.utilization, "life years": years, "cost of capital": own.rate,
        "residual": op.residual, "capex source": op.bom_source if op.bom is not None else f"per-node estimate ({op.node})",
    })
    return r


def _compare_result(own: OnPremCost, comps: list[Comparison], years: float) -> Result:
    r = Result(f"Cloud vs on-prem over {years:g} years at the same busy GPU-hours")
    rows = []
    own_total = own.per_year.value * years
    for c in comps:
        r.terms += [c.price, c.horizon_cost, c.breakeven_u, c.breakeven_months]
        rows.append({
            "offer": c.offer.key, "instance": c.offer.entry.get("instance", ""), "term": c.term,
            "$/GPU-h": round(c.price.value, 4), "cloud total $": round(c.horizon_cost.value, 2),
            "owned total $": round(own_total, 2), "breakeven utilization": _num(c.breakeven_u.value),
            "months to break even": _num(c.breakeven_months.value), "like-for-like": c.like_for_like is None,
            "fabric": c.offer.fabric, "form factor": c.offer.form_factor,
            "observed": prices.observed_of(c.offer.key, c.offer.entry).isoformat(),
        })
    r.facts["owned $/GPU-h"] = round(own.per_gpu_hour.value, 4)
    r.facts["offers"] = rows
    return r


def _num(v: float) -> float | str:
    return round(v, 4) if math.isfinite(v) else "never"


def _jobs_result(i: TcoInputs, own: OnPremCost, comps: list[Comparison]) -> Result:
    r = Result("Per-job costs")
    prices_ = [("on-prem", own.per_gpu_hour)] + [(f"{c.offer.key} {c.term}", c.price) for c in comps]
    for label, p in prices_:
        if i.gpu_hours is not None:
            r.terms.append(jobs.training_run_cost(i.gpu_hours, p, label))
        if i.tokens_per_gpu_s is not None:
            r.terms.append(jobs.cost_per_million_tokens(i.tokens_per_gpu_s, p, label))
    return r


def _hybrid_result(plan: hybrid.HybridPlan, primary: Comparison) -> Result:
    r = Result(f"Hybrid: owned baseline + bursts to {primary.offer.key} {primary.term}",
               terms=[plan.baseline, plan.hybrid, plan.pure_onprem, plan.pure_cloud])
    best_pure = min(plan.pure_cloud.value, plan.pure_onprem.value)
    r.facts.update({"hours in profile": plan.hours, "owned baseline GPUs": plan.baseline.value,
                    "saving vs cheaper pure option $": round(best_pure - plan.hybrid.value, 2)})
    return r

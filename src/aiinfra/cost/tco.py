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
from aiinfra.cost.decision import Decision, Factors, Option, decide, rank
from aiinfra.cost.onprem import HOURS_PER_MONTH, HOURS_PER_YEAR, OnPremCost, OnPremInputs, check_utilization, onprem_cost
from aiinfra.cost.plot import Series
from aiinfra.errors import AiinfraError
from aiinfra.explain import Result, Term, quantity


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
    result: Result  # the one answer: facts, terms, assumptions, warnings
    own: OnPremCost
    comparisons: list[Comparison]
    plan: hybrid.HybridPlan | None
    decision: Decision
    options: list[Option]
    series: list[Series]
    breakevens: list[tuple[str, float]]
    horizon_months: float

    @property
    def results(self) -> list[Result]:  # the shells used to get several Results; one now
        return [self.result]


def _offers(i: TcoInputs, gpu: str) -> list[cloud.CloudOffer]:
    """The --cloud offers as named, else every IB/EFA offer for the GPU with the catalog's reference
    offer (the one plan and infer price the GPU with) first."""
    if i.clouds:
        return [cloud.offer(c) for c in i.clouds]
    found = [o for o in cloud.offers(gpu) if o.fabric in cloud.SCALE_OUT_FABRICS]
    if not found:
        raise AiinfraError(f"no cloud offer with an IB/EFA fabric for GPU '{gpu}' in the catalog; name one with --cloud")
    ref = prices.reference_offer(gpu)
    ref_key = ref[0] if ref else None
    return sorted(found, key=lambda o: (o.key != ref_key, o.key))


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
    """Owned vs rented (vs hybrid) for the same busy GPU-hours over the same horizon, and the cheapest
    option no stated constraint rules out. The reference offer (the first --cloud, else the catalog's
    reference offer for the GPU) prices the hybrid's bursts and the breakeven in the reasons."""
    if i.egress_tb_month < 0:
        raise AiinfraError(f"egress must be >= 0 TB/month, got {i.egress_tb_month:g}")
    op = i.onprem
    if i.demand is not None and op.gpus <= 0 and op.bom is None:
        op = replace(op, gpus=math.ceil(float(np.max(i.demand))))  # own the peak when nothing else is said
    check_utilization(op.utilization)
    own = onprem_cost(op)
    g, u, years = own.gpus, op.utilization, own.years
    months = years * 12
    own_total = own.per_year.value * years
    # After paying CapEx up front, owning costs this per month (running costs + the cost of capital
    # spread over the life), so capex + this × months is the owned total of the table and the plot.
    own_month = Term("owned $/month after CapEx", (own_total - own.capex.value) / months, "$/month",
                     "(owned $/year × years − capex) / (12 × years)",
                     {"owned $/year": own.per_year, "years": years, "capex": own.capex})
    form, fabric = _node_form(op)
    comparisons: list[Comparison] = []
    for o in _offers(i, _node_gpu(op)):
        w = cloud.like_for_like(o, form, fabric)
        comparisons += [_compare(i, own, own_month, o, t, w) for t in _terms_for(o, i.terms, bool(i.clouds))]
    if not comparisons:
        raise AiinfraError("no cloud offer could be priced at the requested terms; try --term all")
    primary = comparisons[0]

    options = [Option("on-prem", f"on-prem ({g} GPUs)", own_total, own.capex.value)]
    options += [Option("cloud", f"cloud {c.offer.key} {c.term}", c.horizon_cost.value) for c in comparisons]
    series = [Series(options[0].label, own.capex.value, own_month.value)]
    series += [Series(f"{c.offer.key} {c.term}", 0.0, c.month_cost.value) for c in comparisons]
    breakevens = [(f"{c.offer.key} {c.term}", c.breakeven_months.value) for c in comparisons]
    plan, factors = None, replace(i.factors, horizon_years=years)
    hybrid_facts = None
    if i.demand is not None:
        plan = hybrid.plan(i.demand, own.fixed_per_gpu_hour, own.energy, primary.price)
        scale = years * HOURS_PER_YEAR / plan.hours  # the profile repeats over the horizon
        b = plan.baseline.value
        upfront = own.capex.value * b / g
        h_total = plan.hybrid.value * scale
        label = f"hybrid (own {b:g} GPUs + burst to {primary.offer.key} {primary.term})"
        options.append(Option("hybrid", label, h_total, upfront))
        series.append(Series(label, upfront, (h_total - upfront) / months))
        best_pure = min(plan.pure_cloud.value, plan.pure_onprem.value)
        hybrid_facts = {
            "burst_offer": f"{primary.offer.key} {primary.term}",
            "hours_in_profile": plan.hours,
            "owned_baseline_gpus": b,
            "hybrid_total_usd": quantity(round(h_total, 2), "$"),
            "profile_hybrid_usd": quantity(round(plan.hybrid.value, 2), "$"),
            "profile_pure_cloud_usd": quantity(round(plan.pure_cloud.value, 2), "$"),
            "profile_pure_onprem_usd": quantity(round(plan.pure_onprem.value, 2), "$"),
            "saving_vs_cheaper_pure_option_usd": quantity(round(best_pure - plan.hybrid.value, 2), "$"),
        }
        if factors.steadiness is None and np.max(i.demand) > 0:
            factors.steadiness = float(np.mean(i.demand) / np.max(i.demand))
    decision = decide(options, factors, utilization=u, breakeven_u=primary.breakeven_u.value,
                      payback_months=primary.breakeven_months.value)

    terms = own.terms() + [own_month]
    for c in comparisons:
        terms += [c.price, c.horizon_cost, c.breakeven_u, c.breakeven_months]
    jobs_rows = _jobs(i, own, comparisons, terms)
    if plan is not None:
        terms += [plan.baseline, plan.hybrid, plan.pure_onprem, plan.pure_cloud]
    facts = _facts(own, op, years, own_total, comparisons, options, decision)
    if jobs_rows:
        facts["jobs"] = jobs_rows
    if hybrid_facts is not None:
        facts["hybrid"] = hybrid_facts
    title = f"TCO: {g} GPUs ({_node_label(op)}) over {years:g} years at {u:.0%} utilization"
    like = list(dict.fromkeys(c.like_for_like for c in comparisons if c.like_for_like))
    result = Result(title, terms=terms, facts=facts,
                    warnings=stale_warnings(terms) + like + list(i.warnings),
                    assumptions=_assumptions(own, op, comparisons, primary, plan))
    return TcoReport(result, own, comparisons, plan, decision, options, series, breakevens, months)


def _node_label(op: OnPremInputs) -> str:
    return op.node if op.bom is None else op.bom_source


def _facts(own: OnPremCost, op: OnPremInputs, years: float, own_total: float, comps: list[Comparison],
           options: list[Option], d: Decision) -> dict:
    rows = []
    for c in comps:
        rows.append({
            "offer": c.offer.key, "instance": c.offer.entry.get("instance", ""), "term": c.term,
            "usd_per_gpu_hour": round(c.price.value, 4), "cloud_total_usd": round(c.horizon_cost.value, 2),
            "owned_total_usd": round(own_total, 2), "breakeven_utilization": _num(c.breakeven_u.value),
            "months_to_break_even": _num(c.breakeven_months.value), "like_for_like": c.like_for_like is None,
            "fabric": c.offer.fabric, "form_factor": c.offer.form_factor,
            "observed": prices.observed_of(c.offer.key, c.offer.entry).isoformat(),
        })
    return {
        "owned_usd_per_gpu_hour": quantity(round(own.per_gpu_hour.value, 4), "$/GPU-h"),
        "capex": quantity(round(own.capex.value, 2), "$"),
        "owned_usd_per_year": quantity(round(own.per_year.value, 2), "$/year"),
        "owned_total_usd": quantity(round(own_total, 2), "$"),
        "gpus": own.gpus,
        "nodes": int(own.nodes) if float(own.nodes).is_integer() else own.nodes,
        "it_power_kw": quantity(round(own.it_power.value / 1000, 3), "kW"),
        "utilization": quantity(op.utilization, "fraction"),
        "life_years": quantity(years, "years"),
        "cost_of_capital": quantity(own.rate, "fraction/year"),
        "residual": quantity(op.residual, "fraction"),
        "capex_source": op.bom_source if op.bom is not None else f"per-node estimate ({op.node})",
        "offers": rows,
        "options": [{"option": o.label, "kind": o.kind, "total_usd": round(o.total_usd, 2),
                     "capex_usd": round(o.capex_usd, 2), "ruled_out_by": d.ruled_out.get(o.label)}
                    for o in sorted(options, key=rank)],
        "recommendation": d.choice,
        "recommended_option": d.option,
        "recommended_total_usd": quantity(round(d.total_usd, 2), "$"),
        "cheapest_option": d.cheapest,
        "recommendation_sentence": d.sentence,
        "reasons": d.reasons,
    }


def _assumptions(own: OnPremCost, op: OnPremInputs, comps: list[Comparison], primary: Comparison,
                 plan: hybrid.HybridPlan | None) -> list[str]:
    out = []
    node_src = "--node-price" if op.node_price is not None else "catalog"
    out.append(f"node {op.node}: price from {node_src}" + ("" if op.node_price is not None else
                                                          f" ({_describe_key('node', op.node)})"))
    seen = set()
    for c in comps:
        if c.offer.key in seen:
            continue
        seen.add(c.offer.key)
        out.append(f"cloud {c.offer.key}: {prices.describe(c.offer.key, c.offer.entry)}")
    out.append(f"reference offer {primary.offer.key} {primary.term} (${primary.price.value:,.4g}/GPU-h) prices the "
               "breakeven in the reasons" + (" and the hybrid's bursts" if plan is not None else ""))
    out.append(f"utilization {op.utilization:.0%} of owned GPU-hours is busy; the cloud options rent the same "
               "busy GPU-hours")
    out.append(f"horizon {own.years:g} years, cost of capital {own.rate:.1%}/year, residual {op.residual:.0%}")
    if plan is not None:
        out.append(f"the {plan.hours}-hour demand profile repeats over the horizon")
    return out


def _describe_key(kind: str, name: str) -> str:
    try:
        key, entry = prices.lookup(kind, name)
    except AiinfraError:
        return "not in the catalog"
    return prices.describe(key, entry)


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


def _num(v: float) -> float | str:
    return round(v, 4) if math.isfinite(v) else "never"


def _jobs(i: TcoInputs, own: OnPremCost, comps: list[Comparison], terms: list[Term]) -> list[dict]:
    """Per-job costs at each price: a training run of --gpu-hours, and $ per 1M tokens at --tokens-per-s."""
    rows = []
    if i.gpu_hours is None and i.tokens_per_gpu_s is None:
        return rows
    for label, p in [("on-prem", own.per_gpu_hour)] + [(f"{c.offer.key} {c.term}", c.price) for c in comps]:
        row: dict = {"option": label}
        if i.gpu_hours is not None:
            t = jobs.training_run_cost(i.gpu_hours, p, label)
            terms.append(t)
            row["training_run_usd"] = round(t.value, 2)
        if i.tokens_per_gpu_s is not None:
            t = jobs.cost_per_million_tokens(i.tokens_per_gpu_s, p, label)
            terms.append(t)
            row["usd_per_1m_tokens"] = round(t.value, 4)
        rows.append(row)
    return rows

"""TCO: owning vs renting GPUs, cumulative cost curves with the breakeven marked.

The same calls as `aiinfra tco` (cli/tco.py): cost.commands.report, and cost.plot.figure for the curves. The CLI's
file options come as their contents in the form: `demand` is the hourly demand CSV (cost.hybrid.parse_demand_csv),
`bom` the bill of materials as YAML or JSON (cost.capex.parse_bom, read through safeio's bounded YAML loader); no
request names a server-side file, and --plot is the page's own chart.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from markupsafe import Markup
from pydantic import Field
from aiinfra.cost.commands import TcoSpec
from aiinfra.render import fmt_money
from aiinfra.web.charts import div
from aiinfra.web.common import (
    Explainer,
    FormField,
    Outcome,
    Table,
    cli_json,
    gpu_names,
    has_module,
    register_aliases,
    require,
)
from aiinfra.web.templating import render_page

router = APIRouter()
LIBRARY = "aiinfra.cost.tco"


TEXT_LIMIT = 4 * 2**20  # a pasted demand CSV or BOM, bounded like the files the CLI reads


class TcoForm(TcoSpec):
    """`aiinfra tco` options as cost.commands.TcoSpec declares them (bounds included); `cloud` and `term`
    take comma-separated lists. `demand` and `bom` are the contents of the CLI's --demand and --bom files."""

    demand: str | None = Field(None, max_length=TEXT_LIMIT)
    bom: str | None = Field(None, max_length=TEXT_LIMIT)


def available() -> bool:
    return has_module(LIBRARY)


def report(s: TcoSpec) -> tuple[Any, float]:
    """The same call as `aiinfra tco` (cost.commands.report): the TcoReport and its utilization."""
    from aiinfra.cost.commands import report as tco_report

    profile = items = None
    demand, bom = getattr(s, "demand", None), getattr(s, "bom", None)
    if demand and demand.strip():
        from aiinfra.cost.hybrid import parse_demand_csv

        profile = parse_demand_csv(demand, "demand CSV")
    if bom and bom.strip():
        from aiinfra.cost.capex import parse_bom
        from aiinfra.safeio import load_yaml_text

        items = parse_bom(load_yaml_text(bom, "BOM"), "BOM")
    spec = TcoSpec(**s.model_dump(include=set(TcoSpec.model_fields)))
    rep = tco_report(spec, profile, items, "BOM in the form" if items is not None else "")
    return rep, float(rep.result.facts["utilization"]["value"])


def tco_view(s: TcoSpec, ex: Explainer) -> Outcome:
    from aiinfra.cost import plot as cost_plot

    rep, utilization = report(s)
    r = rep.result
    ex.add_result(r)
    out = Outcome()
    own = rep.own
    d = rep.decision
    out.headline.append(Markup("Owned: ") + ex.link(own.per_gpu_hour, _money(own.per_gpu_hour.value) + " per GPU-hour")
                        + Markup(f" for {own.gpus} GPUs at {utilization:.0%} utilization; CapEx ")
                        + ex.link(own.capex, _money(own.capex.value)))
    out.headline.append(Markup("Recommendation: <b>{}</b>: {}").format(d.choice, d.sentence))
    fig = cost_plot.figure_dict(rep.series, rep.horizon_months, rep.breakevens,
                                f"Cumulative cost, {own.gpus} GPUs at {utilization:.0%} utilization", recommended=d.option)
    out.charts.append(div(fig, "tco-chart", height=460))
    t = Table("Options over the horizon, cheapest first", ["option", "total $", "CapEx $", "ruled out by"], id="options")
    for o in r.facts["options"]:
        t.rows.append([o["option"], f"{o['total_usd']:,.0f}", f"{o['capex_usd']:,.0f}", o["ruled_out_by"] or ""])
    out.tables.append(t)
    t = Table("Cloud offers vs owning (same busy GPU-hours)",
              ["offer", "term", "$/GPU-h", "cloud total $", "breakeven utilization", "months to break even",
               "like-for-like"], id="offers")
    for c in rep.comparisons:
        bu, bm = c.breakeven_u.value, c.breakeven_months.value
        t.rows.append([
            c.offer.key, c.term, ex.link(c.price, f"{c.price.value:.4f}"),
            ex.link(c.horizon_cost, f"{c.horizon_cost.value:,.0f}"),
            ex.link(c.breakeven_u, "never" if not math.isfinite(bu) or bu > 1 else f"{bu:.0%}"),
            ex.link(c.breakeven_months, "never" if not math.isfinite(bm) else f"{bm:.1f}"),
            "yes" if c.like_for_like is None else f"no: {c.like_for_like}",
        ])
    out.tables.append(t)
    t = Table("Owning", ["item", "value"])
    for term in own.terms():
        t.rows.append([term.name, ex.link(term, fmt_money(term.value, term.unit))])
    out.tables.append(t)
    out.warnings += r.warnings
    return out


def _money(v: float) -> str:
    return f"${v:,.2f}" if abs(v) >= 1 else f"${v:.4f}"


FIELDS = [
    FormField("gpus", "GPUs to own"),
    FormField("gpu", "GPU", "select", gpu_names),
    FormField("utilization", "utilization", help="busy fraction in (0, 1]; blank: 0.7"),
    FormField("years", "years", help="blank: catalog depreciation"),
    FormField("rate", "cost of capital", help="blank: catalog"),
    FormField("pue", "PUE or preset", "text", ["hyperscale", "ai-datacenter", "colo", "industry-average"]),
    FormField("electricity", "$/kWh or region", "text", ["us-industrial", "iowa", "ohio", "new-york"]),
    FormField("facility", "facility", "select", ["colo", "owned"]),
    FormField("cloud", "cloud offers", "text", help="comma-separated; blank: every like-for-like offer"),
    FormField("term", "terms", "text", ["on-demand", "1y", "3y", "spot", "all"], help="comma-separated"),
    FormField("node_price", "node price $", help="blank: catalog"),
    FormField("design", "price the cluster designer's BOM", "checkbox"),
    FormField("preset", "design preset", "select", ["", "basepod", "dgx-pod", "superpod"]),
    FormField("su", "scalable units (preset)"),
    FormField("gpu_hours", "training run GPU-hours"),
    FormField("tokens_per_s", "inference tokens/s per GPU"),
    FormField("hybrid", "hybrid plan (generated demand unless a CSV is given)", "checkbox"),
    FormField("demand", "hourly GPU demand CSV (--demand)", "textarea",
              help="one row per hour; a 'gpus' or 'demand' column, else the last"),
    FormField("bom", "bill of materials YAML/JSON (--bom)", "textarea",
              help="line items: category, item, quantity, unit_power_w, reason[, unit_price]"),
    FormField("base", "steady GPUs (hybrid)"), FormField("peak", "burst GPUs (hybrid)"),
    FormField("sensitivity", "data sensitivity", "select", ["low", "medium", "high"]),
    FormField("staff", "staff to run servers", "checkbox"),
]
ALIASES = register_aliases({"preset": ["--preset"], "su": ["--su"], "node_price": ["--node-price"], "gpus": ["--gpus"], "staff_cost": ["--staff-cost"],
           "capex_budget": ["--capex-budget"], "cloud": ["instance", "offer"], "electricity": ["region"]})


@router.get("/tco", include_in_schema=False)
def tco_page(request: Request):
    return render_page(request, path="/tco", title="Cost of ownership",
                       intro="What a GPU-hour costs owned versus rented at your utilization, when owning breaks even, "
                             "and (hybrid) how much to own and burst. Prices are dated observations from the catalog.",
                       spec_cls=TcoForm, fields=FIELDS, compute=tco_view if available() else None, aliases=ALIASES,
                       cli="aiinfra tco --gpus … --gpu … --utilization … --explain", initial={"gpus": 256})


@router.post("/api/tco", tags=["tco"], summary="aiinfra tco --format json --explain")
def api_tco(spec: TcoForm) -> Any:
    require(LIBRARY)
    return cli_json(report(spec)[0].result)

"""TCO: owning vs renting GPUs, cumulative cost curves with the breakeven marked.

The same calls as `aiinfra tco` (cli/tco.py): cost.onprem.OnPremInputs, cost.tco.TcoInputs,
cost.tco.tco, and cost.plot.figure for the curves. File options (--bom, --demand, --plot) are not
offered on the web; the hybrid plan uses the CLI's generated steady + bursty profile.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from markupsafe import Markup
from pydantic import field_validator

from aiinfra.errors import AiinfraError
from aiinfra.web.charts import div
from aiinfra.web.common import (
    Explainer,
    FormField,
    Outcome,
    Table,
    WebSpec,
    cli_json,
    gpu_names,
    has_module,
    register_aliases,
    require,
)
from aiinfra.web.templating import render_page

router = APIRouter()
LIBRARY = "aiinfra.cost.tco"


class TcoSpec(WebSpec):
    """`aiinfra tco` options; `cloud` and `term` take comma-separated lists (the CLI repeats the option).

    The file options (--bom, --demand, --plot) are not offered: no request names a server-side file.
    """

    gpus: int = 0
    gpu: str = "h100-sxm"
    node: str | None = None
    node_price: float | None = None
    utilization: float | None = None
    years: float | None = None
    rate: float | None = None
    residual: float = 0.0
    pue: str = "ai-datacenter"
    electricity: str = "us-industrial"
    load: float = 0.75
    facility: str = "colo"
    colo: str = "colo-retail"
    support: float | None = None
    staff_cost: float | None = None
    spares: float = 0.0
    storage_tb: float = 0.0
    design: bool = False
    preset: str | None = None
    su: int | None = None
    dataset_tb: float = 0.0
    cloud: list[str] = []
    term: list[str] = ["on-demand"]
    egress_tb: float = 0.0
    gpu_hours: float | None = None
    tokens_per_s: float | None = None
    hybrid: bool = False
    base: float = 64
    peak: float = 256
    burst_hours: int = 72
    bursts: float = 12
    seed: int = 0
    sensitivity: str = "low"
    capex_budget: float | None = None
    staff: bool = True

    @field_validator("cloud", "term", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [x.strip() for x in v.split(",") if x.strip()]
        return v


def available() -> bool:
    return has_module(LIBRARY)


def report(s: TcoSpec) -> tuple[Any, float]:
    """cli/tco.py's body without its file options: the TcoReport and the utilization it assumed."""
    from aiinfra.cli.tco import _default_node
    from aiinfra.cost import hybrid
    from aiinfra.cost.decision import Factors
    from aiinfra.cost.onprem import OnPremInputs
    from aiinfra.cost.tco import TcoInputs, tco

    if s.facility not in ("colo", "owned"):
        raise AiinfraError(f"facility must be colo or owned, not '{s.facility}'")
    if s.sensitivity not in ("low", "medium", "high"):
        raise AiinfraError(f"sensitivity must be low, medium or high, not '{s.sensitivity}'")
    for name, v in (("--node-price", s.node_price), ("--staff-cost", s.staff_cost), ("--egress-tb", s.egress_tb),
                    ("--storage-tb", s.storage_tb), ("--capex-budget", s.capex_budget), ("--support", s.support),
                    ("--spares", s.spares)):
        if v is not None and v < 0:
            raise AiinfraError(f"{name} must be >= 0, got {v:g}; prices cannot be negative")
    profile = hybrid.generate_profile(8760, s.base, s.peak, s.burst_hours, s.bursts, s.seed) if s.hybrid else None
    if (s.preset is not None or s.su is not None) and not s.design:
        raise AiinfraError("--preset and --su need --design")
    items, source, extra = None, "", []
    if s.design:
        from aiinfra.cost.design_bom import design_bom, unpriced_warning

        d = design_bom(s.gpus if s.gpus > 0 else (math.ceil(profile.max()) if profile is not None else 0),
                       s.node or _default_node(s.gpu), s.preset, s.su, s.dataset_tb)
        items, source = d.items, "cluster designer BOM (aiinfra design)"
        extra = [w for w in [unpriced_warning(d)] if w]
    if s.gpus <= 0 and profile is None and items is None:
        raise AiinfraError("give the GPUs to own with --gpus N (or a demand profile with --demand/--hybrid)")
    utilization = s.utilization
    if utilization is None:
        utilization = float(profile.mean() / profile.max()) if profile is not None and profile.max() > 0 else 0.7
    colo_rate = None
    try:
        colo_rate = float(s.colo)
    except ValueError:
        pass
    op = OnPremInputs(
        gpus=s.gpus, node=s.node or _default_node(s.gpu), utilization=utilization, years=s.years, rate=s.rate,
        residual=s.residual, pue=s.pue, electricity=s.electricity, load=s.load, facility=s.facility,
        colo=s.colo if colo_rate is None else "colo-retail", colo_usd_per_kw_month=colo_rate,
        support_fraction=s.support, staff_usd_per_fte_year=s.staff_cost, spares_fraction=s.spares,
        storage_tb=s.storage_tb, node_price=s.node_price, bom=items, bom_source=source,
    )
    inputs = TcoInputs(op, clouds=list(s.cloud), terms=list(s.term or ["on-demand"]), egress_tb_month=s.egress_tb,
                       gpu_hours=s.gpu_hours, tokens_per_gpu_s=s.tokens_per_s, demand=profile,
                       factors=Factors(sensitivity=s.sensitivity, capex_budget=s.capex_budget, has_staff=s.staff),
                       warnings=extra)
    return tco(inputs), utilization


def tco_view(s: TcoSpec, ex: Explainer) -> Outcome:
    from aiinfra.cost import plot as cost_plot

    rep, utilization = report(s)
    for r in rep.results:
        ex.add_result(r)
    out = Outcome()
    own = rep.own
    out.headline.append(Markup("Owned: ") + ex.link(own.per_gpu_hour, _money(own.per_gpu_hour.value) + " per GPU-hour")
                        + Markup(f" for {own.gpus} GPUs at {utilization:.0%} utilization; CapEx ")
                        + ex.link(own.capex, _money(own.capex.value)))
    fig = cost_plot.figure(rep.series, rep.horizon_months, rep.breakevens,
                           f"Cumulative cost, {own.gpus} GPUs at {utilization:.0%} utilization")
    out.charts.append(div(fig, "tco-chart", height=460))
    if rep.comparisons:
        t = Table("Cloud offers vs owning (same busy GPU-hours)",
                  ["offer", "term", "$/GPU-h", "cloud total $", "breakeven utilization", "months to break even",
                   "like-for-like"], id="offers")
        for c in rep.comparisons:
            bu, bm = c.breakeven_u.value, c.breakeven_months.value
            t.rows.append([
                c.offer.key, c.term, ex.link(c.price, f"{c.price.value:.3f}"),
                ex.link(c.horizon_cost, f"{c.horizon_cost.value:,.0f}"),
                ex.link(c.breakeven_u, "never" if not math.isfinite(bu) or bu > 1 else f"{bu:.0%}"),
                ex.link(c.breakeven_months, "never" if not math.isfinite(bm) else f"{bm:.1f}"),
                "yes" if c.like_for_like is None else f"no: {c.like_for_like}",
            ])
        out.tables.append(t)
    for r in rep.results:
        out.warnings += r.warnings
        if "offers" in r.facts:
            continue
        if "choice" in r.facts:
            out.headline.append(Markup("Recommendation: <b>{}</b>: {}").format(r.facts["choice"],
                                                                              "; ".join(r.facts.get("reasons", []))))
            continue
        if not r.terms:
            continue
        t = Table(r.title, ["item", "value"])
        for term in r.terms:
            t.rows.append([term.name, ex.link(term, _fmt(term))])
        out.tables.append(t)
    return out


def _money(v: float) -> str:
    return f"${v:,.2f}" if abs(v) >= 1 else f"${v:.4f}"


def _fmt(term: Any) -> str:
    v = term.value
    if isinstance(v, int | float) and math.isfinite(v) and str(term.unit).startswith(("$", "USD")):
        return f"{v:,.2f} {term.unit}" if abs(v) >= 1 else f"{v:.4f} {term.unit}"
    from aiinfra.cli.output import fmt_value

    return fmt_value(v, term.unit)


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
    FormField("hybrid", "hybrid plan (generated demand)", "checkbox"),
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
                       spec_cls=TcoSpec, fields=FIELDS, compute=tco_view if available() else None, aliases=ALIASES,
                       cli="aiinfra tco --gpus … --gpu … --utilization … --explain", initial={"gpus": 256})


@router.post("/api/tco", tags=["tco"], summary="aiinfra tco --format json --explain")
def api_tco(spec: TcoSpec) -> Any:
    require(LIBRARY)
    return cli_json(report(spec)[0].results)

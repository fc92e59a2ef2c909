"""`aiinfra tco`: what a GPU-hour costs owned vs rented, when owning breaks even, how much to own."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from aiinfra.catalog.loader import default_catalog
from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, emit, fmt_value
from aiinfra.cost import hybrid, prices
from aiinfra.cost import plot as cost_plot
from aiinfra.cost.capex import read_bom
from aiinfra.cost.decision import Factors
from aiinfra.cost.design_bom import design_bom, unpriced_warning
from aiinfra.cost.onprem import OnPremInputs
from aiinfra.cost.tco import TcoInputs
from aiinfra.cost.tco import tco as run_tco
from aiinfra.errors import AiinfraError
from aiinfra.explain import Result


class Facility(str, Enum):
    colo = "colo"
    owned = "owned"


class Sensitivity(str, Enum):
    low = "low"
    medium = "medium"
    high = "high"


def _default_node(gpu: str) -> str:
    """The catalog node for a GPU key, DGX first (the configuration the published prices describe)."""
    try:
        gpu_key, known = default_catalog().resolve("gpus", gpu), None
    except AiinfraError as e:
        gpu_key, known = gpu.lower(), e
    nodes = sorted((k for k, e in prices.of_type("node").items() if e.get("gpu") == gpu_key),
                   key=lambda k: (not k.startswith("dgx"), k))
    if not nodes and known is not None:
        raise known  # not a GPU the catalog knows: suggest GPU names
    if not nodes:
        raise AiinfraError(f"no on-prem node with GPU '{gpu}' in the price catalog; "
                           f"known nodes: {', '.join(sorted(prices.of_type('node')))}")
    return nodes[0]


def tco(
    gpus: Annotated[int, typer.Option(help="GPUs to own (rounded up to whole nodes).")] = 0,
    gpu: Annotated[str, typer.Option(help="GPU model; picks the node and the like-for-like cloud offers.")] = "h100-sxm",
    node: Annotated[str | None, typer.Option(help="On-prem node from the price catalog (dgx-h100, hgx-h100, …).")] = None,
    node_price: Annotated[float | None, typer.Option(help="Override the node price ($).")] = None,
    utilization: Annotated[float | None, typer.Option(help="Busy fraction of owned GPU-hours, in (0, 1]. Default 0.7, or mean/peak of --demand.")] = None,
    years: Annotated[float | None, typer.Option(help="Life and horizon in years (default: catalog depreciation, 5).")] = None,
    rate: Annotated[float | None, typer.Option(help="Cost of capital per year (default: catalog, 0.08).")] = None,
    residual: Annotated[float, typer.Option(help="Resale value at end of life, fraction of CapEx.")] = 0.0,
    pue: Annotated[str, typer.Option(help="PUE number or preset: hyperscale, ai-datacenter, colo, industry-average.")] = "ai-datacenter",
    electricity: Annotated[str, typer.Option(help="$/kWh or a region: us-industrial, iowa, ohio, pennsylvania, new-york, illinois, connecticut.")] = "us-industrial",
    load: Annotated[float, typer.Option(help="Average node draw while busy, fraction of max power.")] = 0.75,
    facility: Annotated[Facility, typer.Option(help="Rent colocation space, or own the facility.")] = Facility.colo,
    colo: Annotated[str, typer.Option(help="Colocation preset (colo-retail, colo-wholesale) or $/kW-month.")] = "colo-retail",
    support: Annotated[float | None, typer.Option(help="Support per year as a fraction of node price (default: catalog, 0.20).")] = None,
    staff_cost: Annotated[float | None, typer.Option(help="$ per FTE-year (default: catalog).")] = None,
    spares: Annotated[float, typer.Option(help="Spares per year as a fraction of CapEx.")] = 0.0,
    storage_tb: Annotated[float, typer.Option(help="Usable storage to buy, TB.")] = 0.0,
    bom: Annotated[Path | None, typer.Option(help="Bill of materials (YAML/JSON line items: category, item, quantity, unit_power_w, reason) instead of per-node estimates.")] = None,
    design: Annotated[bool, typer.Option("--design", help="Size the cluster with the cluster designer (aiinfra design) and cost its BOM.")] = False,
    preset: Annotated[str | None, typer.Option(help="With --design: reference architecture basepod, dgx-pod or superpod.")] = None,
    su: Annotated[int | None, typer.Option(help="With --design --preset dgx-pod|superpod: scalable units.")] = None,
    dataset_tb: Annotated[float, typer.Option(help="With --design: dataset size in TB, for storage capacity.")] = 0.0,
    cloud: Annotated[list[str] | None, typer.Option("--cloud", help="Cloud offer(s) to compare (aws-p5, p5.48xlarge, gcp-a3-high, …). Default: every IB/EFA offer for --gpu.")] = None,
    term: Annotated[list[str] | None, typer.Option("--term", help="on-demand, 1y, 3y, spot, or all (repeatable).")] = None,
    egress_tb: Annotated[float, typer.Option(help="Cloud egress per month, TB.")] = 0.0,
    gpu_hours: Annotated[float | None, typer.Option(help="GPU-hours of a training run to cost.")] = None,
    tokens_per_s: Annotated[float | None, typer.Option(help="Inference tokens/s per GPU, for $ per 1M tokens.")] = None,
    demand: Annotated[Path | None, typer.Option(help="Hourly GPU demand CSV (one row per hour) for the hybrid plan.")] = None,
    hybrid_: Annotated[bool, typer.Option("--hybrid", help="Plan owned baseline + cloud bursts (generated profile if no --demand).")] = False,
    base: Annotated[float, typer.Option(help="Generated profile: steady GPUs.")] = 64,
    peak: Annotated[float, typer.Option(help="Generated profile: GPUs during bursts.")] = 256,
    burst_hours: Annotated[int, typer.Option(help="Generated profile: hours per burst.")] = 72,
    bursts: Annotated[float, typer.Option(help="Generated profile: bursts per year.")] = 12,
    seed: Annotated[int, typer.Option(help="Generated profile: random seed.")] = 0,
    sensitivity: Annotated[Sensitivity, typer.Option(help="Data sensitivity, for the recommendation.")] = Sensitivity.low,
    capex_budget: Annotated[float | None, typer.Option(help="Up-front budget ($), for the recommendation.")] = None,
    staff: Annotated[bool, typer.Option("--staff/--no-staff", help="Whether you have staff to run GPU servers.")] = True,
    plot: Annotated[Path | None, typer.Option(help="Write cumulative cost over time to FILE.html or FILE.png.")] = None,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Cost per GPU-hour owned vs rented, breakeven utilization and months, hybrid baseline, recommendation."""
    if plot is not None and plot.suffix.lower() not in (".html", ".png"):
        raise AiinfraError(f"plot file '{plot}' must end in .html or .png")
    for name, v in (("--node-price", node_price), ("--staff-cost", staff_cost), ("--egress-tb", egress_tb),
                    ("--storage-tb", storage_tb), ("--capex-budget", capex_budget), ("--support", support),
                    ("--spares", spares)):
        if v is not None and v < 0:
            raise AiinfraError(f"{name} must be >= 0, got {v:g}; prices cannot be negative")
    profile = None
    if demand is not None:
        profile = hybrid.read_demand_csv(demand)
    elif hybrid_:
        profile = hybrid.generate_profile(8760, base, peak, burst_hours, bursts, seed)
    if bom is not None and design:
        raise AiinfraError("give either --bom FILE or --design, not both")
    if (preset is not None or su is not None) and not design:
        raise AiinfraError("--preset and --su need --design")
    items, source, extra = (read_bom(bom), f"BOM file {bom}", []) if bom is not None else (None, "", [])
    if design:
        d = design_bom(gpus if gpus > 0 else (math.ceil(profile.max()) if profile is not None else 0),
                       node or _default_node(gpu), preset, su, dataset_tb)
        items, source = d.items, "cluster designer BOM (aiinfra design)"
        extra = [w for w in [unpriced_warning(d)] if w]
    if gpus <= 0 and profile is None and items is None:
        raise AiinfraError("give the GPUs to own with --gpus N (or a demand profile with --demand/--hybrid)")
    if utilization is None:
        utilization = float(profile.mean() / profile.max()) if profile is not None and profile.max() > 0 else 0.7
    colo_rate = None
    try:
        colo_rate = float(colo)
    except ValueError:
        pass
    op = OnPremInputs(
        gpus=gpus, node=node or _default_node(gpu), utilization=utilization, years=years, rate=rate,
        residual=residual, pue=pue, electricity=electricity, load=load, facility=facility.value,
        colo=colo if colo_rate is None else "colo-retail", colo_usd_per_kw_month=colo_rate,
        support_fraction=support, staff_usd_per_fte_year=staff_cost, spares_fraction=spares,
        storage_tb=storage_tb, node_price=node_price, bom=items, bom_source=source,
    )
    inputs = TcoInputs(op, clouds=list(cloud or []), terms=list(term or ["on-demand"]), egress_tb_month=egress_tb,
                       gpu_hours=gpu_hours, tokens_per_gpu_s=tokens_per_s, demand=profile,
                       factors=Factors(sensitivity=sensitivity.value, capex_budget=capex_budget, has_staff=staff),
                       warnings=extra)
    report = run_tco(inputs)
    if plot is not None:
        fig = cost_plot.figure(report.series, report.horizon_months, report.breakevens,
                               f"Cumulative cost, {report.own.gpus} GPUs at {utilization:.0%} utilization")
        written = cost_plot.write(fig, plot)
        report.results[0].facts["plot"] = str(written)
    emit(report.results, fmt, explain, _table)


def _table(r: Result) -> Table | None:
    if "offers" in r.facts:
        t = Table(title=f"{r.title} (owned: ${r.facts['owned $/GPU-h']:.2f}/GPU-h)")
        width = max(len(o["offer"]) for o in r.facts["offers"])
        for col in ("offer", "term", "$/GPU-h", "cloud total $", "owned total $", "breakeven util.",
                    "months to break even", "like-for-like", "observed"):
            t.add_column(col, justify="left" if col in ("offer", "term", "observed") else "right",
                         min_width=width if col == "offer" else None, no_wrap=col in ("offer", "observed"))
        for o in r.facts["offers"]:
            bu, bm = o["breakeven utilization"], o["months to break even"]
            t.add_row(o["offer"], o["term"], f"{o['$/GPU-h']:.3f}", f"{o['cloud total $']:,.0f}",
                      f"{o['owned total $']:,.0f}",
                      "never" if bu == "never" or bu > 1 else f"{bu:.0%}",
                      bm if bm == "never" else f"{bm:.1f}",
                      "yes" if o["like-for-like"] else f"no ({o['form factor']}, {o['fabric']})", o["observed"])
        return t
    if "choice" in r.facts:
        t = Table(title=f"{r.title}: {r.facts['choice']}", show_header=False)
        t.add_column("reason")
        for reason in r.facts["reasons"]:
            t.add_row(f"• {reason}")
        return t
    t = Table(title=r.title)
    t.add_column("item")
    t.add_column("value", justify="right")
    for term in r.terms:
        t.add_row(term.name, _money(term.value, term.unit))
    for k, v in r.facts.items():
        t.add_row(k, (f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:g}") if isinstance(v, float) else str(v))
    return t


def _money(value: float, unit: str) -> str:
    if unit.startswith("$") and isinstance(value, float | int) and math.isfinite(value):
        return f"{value:,.2f} {unit}" if abs(value) >= 1 else f"{value:.4f} {unit}"
    return fmt_value(value, unit)


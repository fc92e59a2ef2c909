"""`aiinfra tco`: what a GPU-hour costs owned vs rented, when owning breaks even, how much to own.

The CLI parses options into `cost.commands.TcoSpec` (which holds the bounds), reads the file options
through safeio, calls `cost.commands.report` and renders its one Result."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, console, emit, err_console
from aiinfra.errors import AiinfraError
from aiinfra.render import fmt_money

if TYPE_CHECKING:
    from rich.table import Table

    from aiinfra.explain import Result


class Facility(str, Enum):
    colo = "colo"
    owned = "owned"


class Sensitivity(str, Enum):
    low = "low"
    medium = "medium"
    high = "high"


def tco(
    ctx: typer.Context,
    gpus: Annotated[int, typer.Option(help="GPUs to own (rounded up to whole nodes).")] = 0,
    gpu: Annotated[str, typer.Option(help="GPU model; picks the node and the like-for-like cloud offers (with --node, the node's GPU).")] = "h100-sxm",
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
    colo: Annotated[str, typer.Option(help="Colocation preset (colo-retail, colo-wholesale) or $/kW-month (--facility colo only).")] = "colo-retail",
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
    from aiinfra.cost import commands as cc

    if plot is not None and plot.suffix.lower() not in (".html", ".png"):
        raise AiinfraError(f"plot file '{plot}' must end in .html or .png")
    # --gpu and --colo reach the spec only when given, so it can tell them from its defaults (a --gpu against --node,
    # a --colo with an owned facility are refused there)
    given = {k: v for k, v in (("gpu", gpu), ("colo", colo)) if _given(ctx, k)}
    spec = cc.TcoSpec(
        **given, gpus=gpus, node=node, node_price=node_price, utilization=utilization, years=years, rate=rate,
        residual=residual, pue=pue, electricity=electricity, load=load, facility=facility.value,
        support=support, staff_cost=staff_cost, spares=spares, storage_tb=storage_tb, design=design, preset=preset,
        su=su, dataset_tb=dataset_tb, cloud=list(cloud or []), term=list(term or ["on-demand"]), egress_tb=egress_tb,
        gpu_hours=gpu_hours, tokens_per_s=tokens_per_s, hybrid=hybrid_, base=base, peak=peak,
        burst_hours=burst_hours, bursts=bursts, seed=seed, sensitivity=sensitivity.value, capex_budget=capex_budget,
        staff=staff)
    profile = None
    if demand is not None:
        from aiinfra.cost.hybrid import read_demand_csv

        profile = read_demand_csv(demand)
    items = None
    if bom is not None:
        from aiinfra.cost.capex import read_bom

        items = read_bom(bom)
    rep = cc.report(spec, profile, items, f"BOM file {bom}" if bom is not None else "")
    result = rep.result
    if plot is not None:
        from aiinfra.cost import plot as cost_plot

        u = result.facts["utilization"]["value"]
        fig = cost_plot.figure(rep.series, rep.horizon_months, rep.breakevens,
                               f"Cumulative cost, {rep.own.gpus} GPUs at {u:.0%} utilization "
                               f"(recommended: {rep.decision.option})", recommended=rep.decision.option)
        result.facts["plot"] = str(cost_plot.write(fig, plot))
    if fmt is not Format.table:
        emit(result, fmt, explain)
        return
    show(result, explain)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave option `name` on the command line (not its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def show(r: Result, explain: bool) -> None:
    """The table view: every number printed here is a value in r.facts."""
    from rich.table import Table

    f = r.facts
    own = Table(title=r.title, show_header=False)
    own.add_column("item")
    own.add_column("value", justify="right")
    for label, key in (("owned $/GPU-h used", "owned_usd_per_gpu_hour"), ("CapEx", "capex"),
                       ("owned $/year", "owned_usd_per_year"), ("owned total over the life", "owned_total_usd")):
        own.add_row(label, fmt_money(f[key]["value"], f[key]["unit"]))
    own.add_row("GPUs / nodes", f"{f['gpus']} / {f['nodes']}")
    own.add_row("IT power", f"{f['it_power_kw']['value']:,} kW")
    own.add_row("utilization", f"{f['utilization']['value']:.0%}")
    own.add_row("life, cost of capital, residual",
                f"{f['life_years']['value']:g} years, {f['cost_of_capital']['value']:.1%}, {f['residual']['value']:.0%}")
    own.add_row("CapEx from", f["capex_source"])
    console.print(own)
    console.print(_offers_table(f))
    if "jobs" in f:
        jt = Table(title="Per-job costs")
        cols = [c for c in ("option", "training_run_usd", "usd_per_1m_tokens") if c in f["jobs"][0]]
        for c in cols:
            jt.add_column({"option": "option", "training_run_usd": "training run $",
                           "usd_per_1m_tokens": "$ / 1M tokens"}[c], justify="left" if c == "option" else "right")
        for row in f["jobs"]:
            jt.add_row(*[row[c] if c == "option" else f"{row[c]:,.2f}" if row[c] >= 1 else f"{row[c]:.4f}"
                         for c in cols])
        console.print(jt)
    if "hybrid" in f:
        h = f["hybrid"]
        ht = Table(title=f"Hybrid: owned baseline + bursts to {h['burst_offer']}", show_header=False)
        ht.add_column("item")
        ht.add_column("value", justify="right")
        ht.add_row("owned baseline GPUs", f"{h['owned_baseline_gpus']:g}")
        ht.add_row("hours in profile", f"{h['hours_in_profile']:,}")
        for label, key in (("hybrid over the profile", "profile_hybrid_usd"),
                           ("pure on-prem over the profile", "profile_pure_onprem_usd"),
                           ("pure cloud over the profile", "profile_pure_cloud_usd"),
                           ("saving vs the cheaper pure option", "saving_vs_cheaper_pure_option_usd"),
                           ("hybrid over the horizon", "hybrid_total_usd")):
            ht.add_row(label, fmt_money(h[key]["value"], "$"))
        console.print(ht)
    opt = Table(title="Options over the horizon, cheapest first")
    for c in ("option", "total $", "CapEx $", "ruled out by"):
        opt.add_column(c, justify="right" if "$" in c else "left")
    for o in f["options"]:
        opt.add_row(o["option"], f"{o['total_usd']:,.0f}", f"{o['capex_usd']:,.0f}", o["ruled_out_by"] or "")
    console.print(opt)
    console.print(f"[bold]Recommendation: {f['recommendation']}[/]: {f['recommendation_sentence']}")
    for reason in f["reasons"]:
        console.print(f"  • {reason}")
    if "plot" in f:
        console.print(f"plot written to {f['plot']}")
    if explain:
        from aiinfra.cli.output import explain_tree

        seen: dict = {}
        inner = {id(p) for t in r.terms for p in t.parts}
        for t in r.terms:
            if id(t) not in inner:
                console.print(explain_tree(t, seen=seen))
    for a in r.assumptions:
        err_console.print(f"[dim]assumed:[/] {a}")
    for w in r.warnings:
        err_console.print(f"[yellow]warning:[/] {w}")


def _offers_table(f: dict) -> Table:
    from rich.table import Table

    rows = f["offers"]
    t = Table(title=f"Cloud vs on-prem at the same busy GPU-hours (owned: ${f['owned_usd_per_gpu_hour']['value']:.4f}/GPU-h)")
    width = max(len(o["offer"]) for o in rows)
    for col in ("offer", "term", "$/GPU-h", "cloud total $", "breakeven util.", "months to break even",
                "like-for-like", "observed"):
        t.add_column(col, justify="left" if col in ("offer", "term", "observed") else "right",
                     min_width=width if col == "offer" else None, no_wrap=col in ("offer", "observed"))
    for o in rows:
        bu, bm = o["breakeven_utilization"], o["months_to_break_even"]
        t.add_row(o["offer"], o["term"], f"{o['usd_per_gpu_hour']:.4f}", f"{o['cloud_total_usd']:,.0f}",
                  "never" if bu == "never" or bu > 1 else f"{bu:.0%}",
                  bm if bm == "never" else f"{bm:.1f}",
                  "yes" if o["like_for_like"] else f"no ({o['form_factor']}, {o['fabric']})", o["observed"])
    return t

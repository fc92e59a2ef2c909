"""`aiinfra chargeback --prometheus URL --range 30d`: GPU-hours, kWh and USD by namespace, pod and job."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer
from rich.console import Group
from rich.table import Table

from aiinfra.cli.output import EndOpt, ExplainOpt, Format, PrometheusOpt, QueryTimeoutOpt, emit
from aiinfra.explain import Result

MAX_ROWS = 25


class ChargebackFormat(str, Enum):
    table = "table"
    json = "json"
    yaml = "yaml"
    csv = "csv"


def _h(v: float) -> str:
    return f"{v:,.2f}"


def _usd(v) -> str:
    return "–" if v is None else f"{v:,.2f}"


def tables(r: Result) -> Group:
    f = r.facts
    s = Table(title=r.title)
    s.add_column("item")
    s.add_column("value", justify="right")
    if f.get("status") != "ok":
        s.add_row("status", "NO DATA")
        return Group(s)
    for key, label in (("allocated_gpu_hours", "GPU-hours allocated"), ("busy_gpu_hours", "GPU-hours busy"),
                       ("idle_held_gpu_hours", "GPU-hours idle but held"), ("stranded_gpu_hours", "GPU-hours stranded (memory held, no owner)"),
                       ("unallocated_gpu_hours", "GPU-hours unallocated"), ("energy_kwh", "energy of owners")):
        q = f[key]
        s.add_row(label, f"{q['value']:,.2f} {q['unit']}")
    if f.get("cost_usd"):
        s.add_row("cost of allocated GPU-hours", f"{f['cost_usd']['value']:,.2f} USD")
    s.add_row("price", f["price_source"])
    s.add_row("queries sent", str(f["queries"]))
    parts: list = [s]

    def owner_table(title: str, rows: list[dict], keys: tuple[str, ...]) -> Table:
        t = Table(title=title)
        for k in keys:
            t.add_column(k)
        for c in ("allocated GPU·h", "busy", "idle held GPU·h", "kWh", "USD", "waste USD"):
            t.add_column(c, justify="right")
        for row in rows[:MAX_ROWS]:
            t.add_row(*[row.get(k) or "–" for k in keys], _h(row["allocated_gpu_hours"]), f"{100 * row['busy_ratio']:.0f} %",
                      _h(row["idle_held_gpu_hours"]), _h(row["energy_kwh"]), _usd(row["cost_usd"]), _usd(row["waste_usd"]))
        return t

    parts.append(owner_table("by namespace", f["by_namespace"], ("namespace",)))
    if f["by_job"]:
        parts.append(owner_table("by HPC job", f["by_job"], ("hpc_job",)))
    if f["top_wasters"]:
        parts.append(owner_table("top wasters (GPU-hours held while idle)", f["top_wasters"], ("namespace", "pod", "hpc_job")))
    parts.append(owner_table("by pod", f["by_pod"], ("namespace", "pod", "hpc_job")))
    return Group(*parts)


def chargeback_cmd(
    prometheus: PrometheusOpt,
    range_: Annotated[str, typer.Option("--range", "-r", help="Billing window, a Prometheus duration (24h, 7d, 30d).")] = "24h",
    end: EndOpt = None,
    idle_ratio: Annotated[float, typer.Option("--idle-below", help="Busy ratio under which a held GPU counts as idle.")] = 0.05,
    held_mib: Annotated[float, typer.Option("--held-mib", help="Framebuffer MiB at or above which an unowned GPU without work counts as stranded (as in analyze).")] = 1024.0,
    price: Annotated[float | None, typer.Option("--price-per-gpu-hour", help="USD per GPU-hour (default: the dated prices catalog, per GPU model).")] = None,
    top: Annotated[int, typer.Option("--top", help="How many top wasters to list.", min=1)] = 10,
    timeout: QueryTimeoutOpt = 60.0,
    fmt: Annotated[ChargebackFormat, typer.Option("--format", "-f", help="Output format; csv = one row per pod/job for finance.", case_sensitive=False)] = ChargebackFormat.table,
    explain: ExplainOpt = False,
) -> None:
    """Chargeback from Prometheus: GPU-hours allocated, busy, idle-but-held and stranded, kWh and USD by namespace, pod and job.

    Idle but held: a pod or HPC job holds the GPU and its busy ratio is below --idle-below. Stranded:
    no pod or job holds it, it does no work, yet --held-mib or more framebuffer is in use, so nobody
    can be given it. The same words as aiinfra analyze."""
    from aiinfra.fleet.chargeback import ChargebackOptions, chargeback, to_csv
    from aiinfra.fleet.prom import parse_duration

    opts = ChargebackOptions(range_s=parse_duration(range_), end=end, idle_ratio=idle_ratio, held_mib=held_mib, price_per_gpu_hour=price, top=top)
    result = chargeback(prometheus, opts, timeout_s=timeout)
    if fmt is ChargebackFormat.csv:
        sys.stdout.write(to_csv(result))
        for w in result.warnings:
            sys.stderr.write(f"warning: {w}\n")
        return
    emit(result, Format(fmt.value), explain, table=tables)

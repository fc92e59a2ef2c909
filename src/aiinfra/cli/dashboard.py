"""`aiinfra dashboard`: Grafana dashboard JSON (fleet, node and GPU rows; MIG-aware panels)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aiinfra.cli.output import ExplainOpt, Format, console, emit, err_console


def dashboard_cmd(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file (default: stdout).")] = None,
    title: Annotated[str, typer.Option("--title", help="Dashboard title.")] = "aiinfra GPU fleet",
    uid: Annotated[str, typer.Option("--uid", help="Dashboard uid (stable, so re-imports replace it).")] = "aiinfra-gpu-fleet",
    counters: Annotated[str | None, typer.Option("--counters", help="The exporter's field set: default, all, or a dcgm-exporter counters CSV. "
                                                 "Panels needing fields it does not serve are marked with the counter to enable.")] = None,
    only_served: Annotated[bool, typer.Option("--only-served", help="Leave out panels the counter set cannot fill (needs --counters).")] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table: the dashboard JSON itself; json|yaml: the answer envelope (dashboard under facts).", case_sensitive=False)] = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Grafana dashboard for dcgm-exporter / aiinfra exporter data: import it, pick the Prometheus data source."""
    from aiinfra.fleet.commands import dashboard
    from aiinfra.safeio import write_atomic  # here, not at the top: --help stays light

    r = dashboard(title, uid, counters, only_served)
    doc = r.facts["dashboard"]
    text = json.dumps(doc, indent=2) + "\n"
    if fmt is not Format.table:
        if out is not None:
            write_atomic(out, text, what="dashboard")
        emit(r, fmt, explain)
        return
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_atomic(out, text, what="dashboard")
        console.print(f"wrote {out}: {r.facts['panels']['value']} panels, {r.facts['queries']['value']} PromQL queries ({r.facts['counters']})")
    for w in r.warnings:
        err_console.print(f"[yellow]warning:[/] {w}")

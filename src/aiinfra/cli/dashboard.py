"""`aiinfra dashboard`: Grafana dashboard JSON (fleet, node and GPU rows; MIG-aware panels)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aiinfra.cli.analyze import write_atomic
from aiinfra.cli.output import console
from aiinfra.fleet.dashboard import dashboard, expressions


def dashboard_cmd(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file (default: stdout).")] = None,
    title: Annotated[str, typer.Option("--title", help="Dashboard title.")] = "aiinfra GPU fleet",
    uid: Annotated[str, typer.Option("--uid", help="Dashboard uid (stable, so re-imports replace it).")] = "aiinfra-gpu-fleet",
) -> None:
    """Grafana dashboard for dcgm-exporter / aiinfra exporter data: import it, pick the Prometheus data source."""
    doc = dashboard(title, uid)
    text = json.dumps(doc, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    write_atomic(out, text)
    console.print(f"wrote {out}: {len(doc['panels'])} panels, {len(expressions(doc))} PromQL queries")

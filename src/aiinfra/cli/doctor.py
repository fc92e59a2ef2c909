"""`aiinfra doctor`: is this GPU node ready for work? pass/warn/fail with a fix per check; exit 1 on a fail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, emit
from aiinfra.explain import Result

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def _table(r: Result) -> Table:
    t = Table(title=r.title, show_header=True)
    for col in ("status", "check", "detail", "fix"):
        t.add_column(col)
    for c in r.facts["checks"]:
        st = c["status"]
        t.add_row(f"[{_STYLE[st]}]{st}[/]", c["name"], c["detail"], c.get("fix", ""))
    return t


def doctor(
    simulate: Annotated[str | None, typer.Option("--simulate", help="Check a simulated node instead of NVML, e.g. gpus=8,model=h100-sxm,faults=dbe:g2@0.")] = None,
    sim_host: Annotated[int, typer.Option("--sim-host", help="Which simulated host to check.")] = 0,
    root: Annotated[Path, typer.Option("--root", help="Filesystem root for /sys and /proc (a fixture tree in tests).")] = Path("/"),
    cuda: Annotated[str | None, typer.Option("--cuda", help="CUDA toolkit version the workloads use, e.g. 12.4.")] = None,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Check drivers, GPU health, NVLink/PCIe, InfiniBand, GPUDirect modules and the fabric manager."""
    from aiinfra.telemetry import commands  # pydantic-backed facts model: imported on use, not at CLI start-up

    result = commands.doctor(simulate=simulate, sim_host=sim_host, root=root, cuda=cuda)
    emit(result, fmt, explain, table=_table)
    if result.facts["status"] == "fail":
        raise typer.Exit(1)

"""`aiinfra top`: live per-GPU view (busy, memory, power, temperature, XID, pod) from NVML, an exporter, Prometheus or a simulation."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.live import Live

from aiinfra.cli.output import console
from aiinfra.errors import AiinfraError
from aiinfra.fleet.top import collector_source, exporter_source, prometheus_source, render


def top_cmd(
    prometheus: Annotated[str | None, typer.Option("--prometheus", "-p", help="Read the fleet from this Prometheus URL.")] = None,
    exporter: Annotated[str | None, typer.Option("--exporter", "-e", help="Read one exporter's /metrics (dcgm-exporter or aiinfra exporter).")] = None,
    simulate: Annotated[str | None, typer.Option("--simulate", help="Show a simulated fleet, e.g. hosts=2,gpus=8,model=h100-sxm,seed=1.")] = None,
    interval: Annotated[float, typer.Option("--interval", "-n", help="Seconds between refreshes.", min=0.1)] = 2.0,
    iterations: Annotated[int, typer.Option("--iterations", help="Stop after this many refreshes (0 = until Ctrl-C).", min=0)] = 0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit (no live screen).")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Rows to show.", min=1)] = 64,
) -> None:
    """Live GPU table in the style of nvitop. Default source: the local GPUs through NVML."""
    chosen = [x for x in (prometheus, exporter, simulate) if x]
    if len(chosen) > 1:
        raise AiinfraError("choose one source: --prometheus, --exporter or --simulate (or none for local NVML)")
    if prometheus:
        read, name = prometheus_source(prometheus), prometheus
    elif exporter:
        read, name = exporter_source(exporter), exporter
    else:
        read, name = collector_source(simulate), f"simulated {simulate}" if simulate else "local NVML"
    if once:
        console.print(render(read(), name, limit))
        return
    done = 0
    try:
        with Live(render(read(), name, limit), console=console, refresh_per_second=4, transient=False) as live:
            done = 1
            while not iterations or done < iterations:
                time.sleep(interval)
                live.update(render(read(), name, limit))
                done += 1
    except KeyboardInterrupt:
        pass

"""`aiinfra top`: a per-GPU screen (header, bars, processes, lost/hot/throttled highlights); `q` quits."""

from __future__ import annotations

import os
import select
import sys
import time
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live

from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, console, emit
from aiinfra.errors import AiinfraError


@contextmanager
def _keys():
    """Yield a function that waits up to `timeout` s for a key and returns it ('' if none). Reads a
    terminal in cbreak mode (no Enter needed); a pipe or file as stdin just sleeps."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):  # closed, or replaced by an object without a descriptor
        fd = -1
    if fd < 0 or not os.isatty(fd):
        yield lambda timeout: (time.sleep(timeout), "")[1]
        return
    import termios
    import tty

    old = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def wait(timeout: float) -> str:
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 1).decode(errors="ignore") if ready else ""

    try:
        yield wait
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def top_cmd(
    prometheus: Annotated[str | None, typer.Option("--prometheus", "-p", help="Read the fleet from this Prometheus URL.")] = None,
    exporter: Annotated[str | None, typer.Option("--exporter", "-e", help="Read one exporter's /metrics (dcgm-exporter or aiinfra exporter).")] = None,
    simulate: Annotated[str | None, typer.Option("--simulate", help="Show a simulated fleet, e.g. hosts=2,gpus=8,model=h100-sxm,seed=1.")] = None,
    interval: Annotated[float, typer.Option("--interval", "-n", help="Seconds between refreshes.", min=0.1)] = 2.0,
    iterations: Annotated[int, typer.Option("--iterations", help="Stop after this many refreshes (0 = until q or Ctrl-C).", min=0)] = 0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit (for scripts; no live screen).")] = False,
    limit: Annotated[int, typer.Option("--limit", help="GPU rows to show.", min=1)] = 64,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """GPU screen in the style of nvitop: driver/CUDA header, per-GPU bars, processes; lost, hot, throttled
    and failing GPUs highlighted. Press q to quit. Default source: the local GPUs through NVML."""
    from aiinfra.fleet.commands import top, top_source
    from aiinfra.fleet.top import WIDTH, render

    chosen = [x for x in (prometheus, exporter, simulate) if x]
    if len(chosen) > 1:
        raise AiinfraError("choose one source: --prometheus, --exporter or --simulate (or none for local NVML)")
    if fmt is not Format.table:  # one frame as data, for scripts
        emit(top(prometheus, exporter, simulate), fmt, explain)
        return
    read = top_source(prometheus=prometheus, exporter=exporter, simulate=simulate)
    # At most 80 columns wide, as nvitop: a wider terminal gets the same layout, not wrapped tables.
    screen = Console(width=min(WIDTH, console.width), file=console.file, force_terminal=console.is_terminal)
    if once:
        screen.print(render(read(), limit=limit))
        return
    done = 0
    try:
        with _keys() as key, Live(render(read(), limit=limit), console=screen, refresh_per_second=4,
                                  transient=False, screen=screen.is_terminal) as live:
            done = 1
            while not iterations or done < iterations:
                if key(interval).lower() == "q":
                    break
                live.update(render(read(), limit=limit))
                done += 1
    except KeyboardInterrupt:
        pass

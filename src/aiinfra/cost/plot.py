"""Cumulative cost over time for each option, with the breakeven marked (plotly).

HTML is written by plotly itself; PNG goes through kaleido, which drives a Chrome/Chromium it
finds on the machine. Files are written to a temporary name and renamed, so a failed export never
leaves a half-written file behind.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from aiinfra.cost.breakeven import cumulative
from aiinfra.errors import AiinfraError


@dataclass
class Series:
    name: str
    upfront: float
    per_month: float


def figure(series: list[Series], months: float, breakevens: list[tuple[str, float]], title: str) -> go.Figure:
    """Lines of upfront + per_month × m for m in 0..months; a dotted line and label at each breakeven."""
    m = np.linspace(0, months, int(max(2, math.ceil(months))) + 1)
    fig = go.Figure()
    for s in series:
        fig.add_trace(go.Scatter(x=m, y=cumulative(m, s.upfront, s.per_month), mode="lines", name=s.name))
    for label, month in breakevens:
        if math.isfinite(month) and 0 < month <= months:
            fig.add_vline(x=month, line_dash="dot", annotation_text=f"breakeven {label}: {month:.1f} months")
    fig.update_layout(title=title, xaxis_title="months", yaxis_title="cumulative cost (USD)",
                      template="plotly_white", legend_title="option")
    return fig


def write(fig: go.Figure, path: str | Path) -> Path:
    """Write FILE.html or FILE.png atomically; anything else is bad input."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".html", ".png"):
        raise AiinfraError(f"plot file '{p}' must end in .html or .png")
    if not p.parent.exists():
        raise AiinfraError(f"plot folder '{p.parent}' does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.stem}-", suffix=suffix, dir=p.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the plot is an ordinary output file
    try:
        if suffix == ".html":
            fig.write_html(tmp, include_plotlyjs=True, full_html=True)
        else:
            try:
                fig.write_image(tmp, format="png", width=1000, height=600)
            except Exception as e:  # noqa: BLE001 - kaleido/choreographer raise many types when no browser is found
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise AiinfraError(f"PNG export needs kaleido and Chrome/Chromium ({first}); "
                                   "write an .html plot instead") from None
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p

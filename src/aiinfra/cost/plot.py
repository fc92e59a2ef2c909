"""Cumulative cost over time for each option, with the breakeven marked (plotly).

Each line starts at the option's up-front cost and ends at its total over the horizon, the same
totals the table ranks and the recommendation picks from. HTML comes from plotly itself; PNG goes
through kaleido, which drives a Chrome/Chromium it finds on the machine. Files are written through
safeio.write_atomic (temporary name, then rename), so a failed export never leaves half a file and
an unwritable folder is one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from typing import Any

import numpy as np

from aiinfra.cost.breakeven import cumulative
from aiinfra.errors import AiinfraError
from aiinfra.safeio import write_atomic


@dataclass
class Series:
    name: str
    upfront: float
    per_month: float


def figure_dict(series: list[Series], months: float, breakevens: list[tuple[str, float]], title: str,
                recommended: str | None = None) -> dict:
    """The chart as a plain plotly figure dict (no template): lines of upfront + per_month × m for
    m in 0..months, a dotted line and label at each breakeven, the recommended option drawn thicker.
    The web sends this dict as it is; `figure()` wraps it in a plotly Figure for files."""
    m = np.linspace(0, months, int(max(2, math.ceil(months))) + 1)
    data = [{"type": "scatter", "x": m.tolist(), "y": cumulative(m, s.upfront, s.per_month).tolist(),
             "mode": "lines", "name": s.name, "line": {"width": 4 if recommended and s.name == recommended else 2}}
            for s in series]
    shapes, notes = [], []
    for label, month in breakevens:
        if math.isfinite(month) and 0 < month <= months:
            shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": month, "x1": month, "y0": 0, "y1": 1,
                           "line": {"dash": "dot"}})
            notes.append({"xref": "x", "yref": "paper", "x": month, "y": 1, "showarrow": False, "xanchor": "left",
                          "yanchor": "top", "text": f"breakeven {label}: {month:.1f} months"})
    layout = {"title": {"text": title}, "xaxis": {"title": {"text": "months"}},
              "yaxis": {"title": {"text": "cumulative cost (USD)"}}, "legend": {"title": {"text": "option"}},
              "shapes": shapes, "annotations": notes}
    return {"data": data, "layout": layout}


def figure(series: list[Series], months: float, breakevens: list[tuple[str, float]], title: str,
           recommended: str | None = None, template: str | None = "plotly_white") -> Any:
    """`figure_dict` as a plotly Figure (for writing HTML or PNG files)."""
    import plotly.graph_objects as go

    fig = go.Figure(figure_dict(series, months, breakevens, title, recommended))
    if template:
        fig.update_layout(template=template)
    return fig


def write(fig: Any, path: str | Path) -> Path:
    """Write FILE.html or FILE.png atomically; anything else, or an unwritable place, is bad input."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".html", ".png"):
        raise AiinfraError(f"plot file '{p}' must end in .html or .png")
    if not p.parent.exists():
        raise AiinfraError(f"plot folder '{p.parent}' does not exist")
    if suffix == ".html":
        data: bytes | str = fig.to_html(include_plotlyjs=True, full_html=True)
    else:
        try:
            data = fig.to_image(format="png", width=1000, height=600)
        except Exception as e:  # noqa: BLE001 - kaleido/choreographer raise many types when no browser is found
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise AiinfraError(f"PNG export needs kaleido and Chrome/Chromium ({first}); "
                               "write an .html plot instead") from None
    return write_atomic(p, data, what="plot file")

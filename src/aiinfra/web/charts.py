"""Plotly figures → HTML divs. plotly.js itself is served locally (no CDN: the app works offline)."""

from __future__ import annotations

from functools import lru_cache

from markupsafe import Markup

PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def div(fig, div_id: str, height: int = 420) -> Markup:
    """The figure as a <div> plus the newPlot call; the page's <head> loads /static/plotly.min.js."""
    fig.update_layout(height=height, margin=dict(l=60, r=20, t=50, b=60), template="plotly_white")
    html = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG)
    return Markup(f'<div class="chart" data-chart="{div_id}">{html}</div>')


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped inside the installed plotly package."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()

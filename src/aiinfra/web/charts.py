"""Plotly figures → HTML divs. plotly.js and the chart template are served locally (no CDN: the app
works offline) and cached by the browser.

Speed: plotly deep-copies its template into every figure it builds and validates it again when it is
serialised; that was most of a chart page's CPU (34-39 pages/s under 20 clients). The web process
therefore builds figures with no template (`pio.templates.default = None`) and sends the figure's
JSON alone; the page applies the "plotly_white" template, served once as /static/plotly-template.js.
"""

from __future__ import annotations

import json
from functools import lru_cache

import plotly.io as pio
from markupsafe import Markup

PLOT_CONFIG = {"displaylogo": False, "responsive": True}
TEMPLATE = "plotly_white"

pio.templates.default = None  # figures made in the web process carry no template (see above)


def div(fig, div_id: str, height: int = 420) -> Markup:
    """The figure as a <div> plus the newPlot call; the page's <head> loads /static/plotly.min.js and the
    template. Width follows the container (responsive), so a chart fits a 375 px phone.

    `fig` is a plotly Figure or, faster, a plain figure dict {"data": [...], "layout": {...}} (plotly's
    object model validates every property it is given; a dict is only serialised)."""
    frame = {"height": height, "margin": dict(l=60, r=20, t=50, b=60), "autosize": True}
    if isinstance(fig, dict):
        payload = json.dumps({"data": fig.get("data", []), "layout": {**fig.get("layout", {}), **frame}},
                             default=_plain, allow_nan=False)
    else:
        fig.update_layout(**frame)
        payload = pio.to_json(fig, validate=False)
    safe_id = json.dumps(div_id)
    html = (f'<div id={safe_id} class="plotly-graph-div" style="height:{int(height)}px;width:100%"></div>'
            f"<script>(function(){{var f={_script_safe(payload)};"
            f"f.layout.template=window.AIINFRA_PLOTLY_TEMPLATE;"
            f"Plotly.newPlot({safe_id},f.data,f.layout,{json.dumps(PLOT_CONFIG)});}})();</script>")
    return Markup(f'<div class="chart" data-chart="{div_id}">{html}</div>')


def _plain(v):
    """numpy arrays and scalars in a figure dict, as JSON lists and numbers."""
    if hasattr(v, "tolist"):
        return v.tolist()
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


def _script_safe(js: str) -> str:
    """JSON inside <script>: '</' could close the tag early; escape it (and the line separators JS dislikes)."""
    return js.replace("</", "<\\/").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


@lru_cache(maxsize=1)
def template_js() -> str:
    """`window.AIINFRA_PLOTLY_TEMPLATE = {...}`: the plotly_white template, built once."""
    tpl = pio.templates[TEMPLATE].to_plotly_json()
    return f"window.AIINFRA_PLOTLY_TEMPLATE={_script_safe(json.dumps(tpl))};\n"


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped inside the installed plotly package."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()

"""Design: a GPU cluster's bill of materials and a fabric diagram (switch counts per tier).

The same function as `aiinfra design`: aiinfra.cluster.commands.design(DesignSpec). On the web the
model size is a parameter count (70B), never a config.json path.
"""

from __future__ import annotations

from copy import copy
from typing import Any

import plotly.graph_objects as go
from fastapi import APIRouter, Request
from markupsafe import Markup
from pydantic import create_model

from aiinfra.cluster import options
from aiinfra.web.charts import div
from aiinfra.web.common import (
    Explainer,
    FormField,
    Outcome,
    Table,
    WebSpec,
    cli_json,
    has_module,
    register_aliases,
    require,
)
from aiinfra.web.templating import render_page

router = APIRouter()
LIBRARY = "aiinfra.cluster.commands"
TIER_Y = {"node": 0, "leaf": 1, "spine": 2, "core": 3}
SHOWN = 16  # boxes drawn per tier; the label carries the full count


# The options this page offers, declared once in aiinfra.cluster.options.DesignSpec (type, default,
# bounds) and taken from there. One difference on purpose: the model size is text ("70B") only.
OFFERED = ("gpus", "node", "nics", "fabric", "oversubscription", "rail_optimized", "tiers", "storage_tier",
           "dataset_tb", "params", "rack_kw", "pue", "preset", "su", "ufm_links", "storage_switch", "copies",
           "checkpoints_kept", "bytes_per_param", "grad_bytes_per_param", "dp", "gds", "samples_per_s",
           "bytes_per_sample", "failure_rate", "load_factor", "storage_kw", "control_nodes")
_declared: dict[str, Any] = {name: (f.annotation, copy(f)) for name, f in options.DesignSpec.model_fields.items()
                             if name in OFFERED}
_declared["params"] = (str | None, None)
DesignSpec = create_model("DesignSpec", __base__=WebSpec, __module__=__name__,
                          __doc__="`aiinfra design` options (all but --model: the model size is a parameter count here).",
                          **_declared)


def available() -> bool:
    return has_module(LIBRARY)


def design_result(s: DesignSpec) -> Any:
    """cluster.commands.design with the options the page offers."""
    from aiinfra.cluster import commands

    spec = commands.DesignSpec(**s.model_dump(include=set(commands.DesignSpec.model_fields)))
    return commands.design(spec)


def fabric_figure(r: Any) -> go.Figure:
    """Nodes at the bottom, then leaf, spine and core switches of the compute fabric, with counts."""
    tiers = [row for row in r.facts["per_tier"] if row["fabric"] == "compute"]
    levels = [("node", int(_term(r, "nodes")), r.facts.get("node", "node"))]
    levels += [(row["tier"], int(row["switches"]), row["model"]) for row in tiers]
    fig = go.Figure()
    xs: dict[str, list[float]] = {}
    for tier, count, _ in levels:
        n = min(count, SHOWN)
        xs[tier] = [(i + 0.5) / n for i in range(n)]
    names = [lv[0] for lv in levels]
    for below, above in zip(names, names[1:], strict=False):
        ex, ey = [], []
        for i, x0 in enumerate(xs[below]):
            for j, x1 in enumerate(xs[above]):
                if len(xs[below]) * len(xs[above]) <= 256 or (i + j) % 3 == 0:
                    ex += [x0, x1, None]
                    ey += [TIER_Y.get(below, 0), TIER_Y.get(above, 0), None]
        fig.add_scatter(x=ex, y=ey, mode="lines", line=dict(color="#c8cfd9", width=1), hoverinfo="skip",
                        showlegend=False)
    for tier, count, model in levels:
        y = TIER_Y.get(tier, len(TIER_Y))
        fig.add_scatter(x=xs[tier], y=[y] * len(xs[tier]), mode="markers", name=f"{tier}: {count}",
                        marker=dict(symbol="square", size=14 if tier != "node" else 10,
                                    color="#1f6feb" if tier != "node" else "#54a24b"),
                        hovertemplate=f"{tier}: {count} × {model}<extra></extra>")
        more = f" (showing {SHOWN})" if count > SHOWN else ""
        fig.add_annotation(x=1.02, y=y, xref="x", yref="y", text=f"<b>{count}</b> {tier} × {model}{more}",
                           showarrow=False, xanchor="left")
    fig.update_layout(title="Compute fabric: switches per tier", showlegend=False,
                      xaxis=dict(visible=False, range=[-0.02, 1.5]),
                      yaxis=dict(tickvals=[TIER_Y[n] for n in names if n in TIER_Y], ticktext=names, range=[-0.5, len(names) - 0.5]))
    return fig


def _term(r: Any, name: str) -> float:
    return float(r.term(name).value)


def design_view(s: DesignSpec, ex: Explainer) -> Outcome:
    from aiinfra.cluster.commands import summary_rows

    r = design_result(s)
    ex.add_result(r)
    out = Outcome(warnings=list(r.warnings))
    out.headline.append(Markup("{} ({} scale; recommended: {})").format(
        r.title, r.facts.get("scale", ""), r.facts.get("recommended_preset", "")))
    out.charts.append(div(fabric_figure(r), "design-chart", height=380))
    names = {t.name: t for t in r.terms}
    summary = Table("Summary", ["item", "value"], id="summary")
    for t, text in summary_rows(r):
        summary.rows.append([t.name, ex.link(t, text)])
    out.tables.append(summary)
    tiers = Table("Per tier", ["fabric", "tier", "switches", "model", "switch transceivers", "links below", "cables below"],
                  id="tiers")
    for row in r.facts["per_tier"]:
        named = names.get(f"{row['tier']} switches") if row["fabric"] == "compute" else None
        how = {"fabric": row["fabric"], "tier": row["tier"], "model": row["model"], "links below": row["links_below"]}
        src = {"design": "aiinfra.cluster.design.per_tier_rows"}
        switches = ex.link(named, f"{row['switches']:,}") if named is not None else ex.fact(
            f"{row['fabric']} {row['tier']} switches", row["switches"], "switches", "leaf-spine sizing of this fabric",
            how, src, f"{row['switches']:,}")
        xcvr = "" if row["switch_transceivers"] is None else ex.fact(
            f"{row['fabric']} {row['tier']} switch transceivers", row["switch_transceivers"], "transceivers",
            "Σ per switch ⌈ports used / ports per cage⌉", how, src, f"{row['switch_transceivers']:,}")
        cables = ex.fact(f"{row['fabric']} cables {row['links_below']}", row["cables_below"], "cables",
                         "one cable per link below this tier", how, src, f"{row['cables_below']:,}")
        tiers.rows.append([row["fabric"], row["tier"], switches, row["model"], xcvr, row["links_below"], cables])
    out.tables.append(tiers)
    bom = Table("Bill of materials", ["category", "item", "qty", "unit W", "total kW", "reason"], id="bom")
    for i in r.facts["bom"]:
        qty = f"{i['quantity']:,.3f} {i['unit']}" if i["unit"] != "each" else f"{i['quantity']:,.0f}"
        src = {"part": f"catalog {i['table']}.{i['item']}"}
        bom.rows.append([
            i["category"], i["item"],
            ex.fact(f"{i['item']} quantity ({i['category']})", i["quantity"], i["unit"], i["reason"], {}, src, qty),
            ex.fact(f"{i['item']} unit power", i["unit_power_w"], "W", "catalog figure for this part", {}, src,
                    f"{i['unit_power_w']:,.0f}"),
            ex.fact(f"{i['item']} power ({i['category']})", i["power_w"] / 1000, "kW", "quantity × unit W / 1000",
                    {"quantity": i["quantity"], "unit W": i["unit_power_w"]}, src, f"{i['power_w'] / 1000:,.1f}"),
            i["reason"]])
    out.tables.append(bom)
    return out


FIELDS = [
    FormField("gpus", "GPUs"),
    FormField("node", "node type", "text", ["dgx-h100", "dgx-h200", "dgx-b200", "dgx-b300", "hgx-h100", "gb200-nvl72", "gb300-nvl72"],
              "blank: dgx-h100"),
    FormField("fabric", "fabric switch", "text", ["qm9700", "q3400", "sn5600", "qm8700"], "blank: the node's RA fabric"),
    FormField("oversubscription", "oversubscription", "text", help="e.g. 1:1, 2:1"),
    FormField("tiers", "tiers", help="blank: 2 if it fits, else 3"),
    FormField("storage_tier", "storage tier", "select", ["", "good", "better", "best"]),
    FormField("dataset_tb", "dataset TB"),
    FormField("params", "model parameters", "text", help="e.g. 70B, for checkpoints and all-reduce"),
    FormField("rack_kw", "rack kW budget"),
    FormField("pue", "PUE"),
    FormField("preset", "preset", "select", ["", "basepod", "dgx-pod", "superpod"]),
    FormField("su", "scalable units", help="with a preset"),
    FormField("ufm_links", "UFM links per compute leaf", help="blank: 4 on InfiniBand"),
    FormField("storage_switch", "storage switch", "text", ["qm9700", "sn5600"], "blank: qm9700 on IB, sn5600 on Ethernet"),
    FormField("copies", "dataset copies", help="blank: 3"),
    FormField("checkpoints_kept", "checkpoints kept", help="blank: 5"),
    FormField("bytes_per_param", "checkpoint bytes per parameter", help="blank: 14"),
    FormField("grad_bytes_per_param", "gradient bytes per parameter", help="2 = bf16"),
    FormField("dp", "data-parallel ranks", help="blank: all GPUs"),
    FormField("gds", "GPUDirect Storage", "checkbox"),
    FormField("samples_per_s", "samples/s per GPU", help="data-loading check"),
    FormField("bytes_per_sample", "bytes per sample", help="data-loading check"),
    FormField("failure_rate", "interruptions per GPU-hour", help="blank: Llama 3's 2.19e-5"),
    FormField("load_factor", "load factor", help="average / maximum power"),
    FormField("storage_kw", "storage kW", help="vendor figure"),
    FormField("control_nodes", "control-plane servers", help="blank: 5"),
]
ALIASES = register_aliases({"gpus": ["gpu count", "--gpus"], "su": ["--su"], "preset": ["--preset"], "fabric": ["switch"],
           "params": ["parameter count"], "node": ["system"]})


@router.get("/design", include_in_schema=False)
def design_page(request: Request):
    return render_page(request, path="/design", title="Cluster design",
                       intro="Compute fabric (leaf/spine/core), storage, management, racks and power for a GPU count, "
                             "with a bill of materials that gives the reason for every line.",
                       spec_cls=DesignSpec, fields=FIELDS, compute=design_view if available() else None,
                       aliases=ALIASES, cli="aiinfra design --gpus … --fabric … --explain", initial={"gpus": 1024})


@router.post("/api/design", tags=["design"], summary="aiinfra design --format json --explain")
def api_design(spec: DesignSpec) -> Any:
    require(LIBRARY)
    return cli_json(design_result(spec))

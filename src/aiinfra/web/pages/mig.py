"""MIG: pack workloads onto the fewest GPUs, draw each GPU's slots, and hand out the Kubernetes YAML.

The same library calls as `aiinfra mig plan`: aiinfra.sharing.commands (build_plan, mig_plan,
plan_manifests). The workloads come as YAML text in the form, read through safeio — never a path.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import plotly.graph_objects as go
from fastapi import APIRouter, Request
from pydantic import Field
from fastapi.responses import Response
from markupsafe import Markup

from aiinfra.sharing.workloads import MAX_GPUS, MAX_GPUS_PER_NODE
from aiinfra.web.charts import div
from aiinfra.web.common import (
    Explainer,
    FormField,
    Outcome,
    Table,
    WebSpec,
    gpu_names,
    has_module,
    require,
)
from aiinfra.web.templating import render_page

router = APIRouter()
LIBRARY = "aiinfra.sharing.packing"

EXAMPLE = """workloads:
  - {name: notebooks, count: 10, profile: 1g.10gb}
  - {name: llm-7b, count: 4, memory_gb: 30, compute_slices: 2}
  - {name: trainer, count: 2, profile: 3g.40gb}
"""
PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac", "#eeca3b"]


class MigPlanSpec(WebSpec):
    """`aiinfra mig plan` options; `workloads` is the YAML document itself (the CLI reads it from a file)."""

    gpu: str = Field(max_length=200)
    gpus: int | None = Field(None, ge=1, le=MAX_GPUS)
    nodes: int | None = Field(None, ge=1, le=MAX_GPUS)
    gpus_per_node: int = Field(default=8, ge=1, le=MAX_GPUS_PER_NODE)
    workloads: str = Field(max_length=4 * 2**20)  # bounded like a workloads file; entries and copies are bounded by the parser
    emit: str = Field("mig-parted", max_length=20)  # the manifests shown: mig-parted or dra (--emit)
    k8s_version: str = Field("1.34", max_length=10)
    mig_mode: str = Field("dynamic", max_length=10)


def available() -> bool:
    return has_module(LIBRARY)


def _sharing(name: str) -> Any:
    """aiinfra.sharing.<name>, imported when a form is drawn (the library may be absent: `available`)."""
    import importlib

    return importlib.import_module(f"aiinfra.sharing.{name}")


def _plan(s: MigPlanSpec) -> Any:
    from aiinfra.sharing.commands import build_plan

    return build_plan(s.gpu, s.workloads, gpus=s.gpus, nodes=s.nodes, gpus_per_node=s.gpus_per_node)


def plan_result(s: MigPlanSpec) -> Any:
    from aiinfra.sharing.commands import mig_plan

    return mig_plan(s.gpu, s.workloads, gpus=s.gpus, nodes=s.nodes, gpus_per_node=s.gpus_per_node)


def manifests(p: Any, s: MigPlanSpec) -> str:
    """The manifests `aiinfra mig plan --emit {s.emit}` writes for the plan."""
    from aiinfra.sharing.commands import plan_manifests

    return plan_manifests(p, s.emit, k8s_version=s.k8s_version, mig_mode=s.mig_mode).text()


def slot_figure(p: Any) -> tuple[go.Figure, int]:
    """Per GPU: its memory slots (0..slots−1) and compute slices, each instance a coloured block."""
    from aiinfra.sharing import mig

    g = p.gpu
    colors: dict[str, str] = {}
    seen: set[str] = set()
    fig = go.Figure()
    rows: list[str] = []
    for a in (p.mig.assignments if p.mig else []):
        check = mig.validate(g, a.geometry)
        mem_row, cmp_row = f"GPU {a.index} memory", f"GPU {a.index} compute"
        rows += [mem_row, cmp_row]
        c_at = 0
        for name, start, size in check.placement:
            color = colors.setdefault(name, PALETTE[len(colors) % len(PALETTE)])
            compute = g.profiles[name].compute
            show = name not in seen
            seen.add(name)
            fig.add_bar(y=[mem_row], x=[size], base=[start], orientation="h", name=name, legendgroup=name,
                        showlegend=show, marker=dict(color=color, line=dict(color="#333", width=1)), text=[name],
                        textposition="inside", insidetextanchor="middle",
                        hovertemplate=f"{name}: memory slots {start}–{start + size - 1}<extra>GPU {a.index}</extra>")
            fig.add_bar(y=[cmp_row], x=[compute], base=[c_at], orientation="h", name=name, legendgroup=name,
                        showlegend=False, marker=dict(color=color, line=dict(color="#333", width=1)),
                        text=[f"{compute}"], textposition="inside",
                        hovertemplate=f"{name}: {compute} compute slices<extra>GPU {a.index}</extra>")
            c_at += compute
    slots = max(g.memory_slots, g.compute_slices)
    fig.update_layout(
        barmode="overlay", title=f"MIG slots per GPU on {g.name}: {g.compute_slices} compute slices, {g.memory_slots} memory slots",
        xaxis=dict(range=[0, slots], dtick=1, title="slot"), yaxis=dict(autorange="reversed", categoryorder="array",
                                                                         categoryarray=rows),
        legend=dict(orientation="h", y=-0.15), bargap=0.25,
    )
    return fig, len(rows)


def plan_view(s: MigPlanSpec, ex: Explainer) -> Outcome:
    p = _plan(s)
    r = p.result
    ex.add_result(r)
    out = Outcome(warnings=list(r.warnings))
    links = [ex.link(t, "cannot place all" if t.value != t.value else f"{t.value:g}") + Markup(" {}").format(t.name)
             for t in r.terms]
    if links:
        out.headline.append(Markup("; ").join(links))
    if p.mig:
        fig, n_rows = slot_figure(p)
        out.charts.append(div(fig, "mig-chart", height=max(260, 60 + 34 * n_rows)))
        t = Table(f"Per-GPU geometry ({'optimal' if p.mig.optimal else 'feasible'}: {p.mig.status})",
                  ["GPU", "node", "device", "geometry", "workloads"], id="mig-gpus")
        from aiinfra.sharing.mig import geometry_label

        for a in p.mig.assignments:
            t.rows.append([str(a.index), str(a.node), str(a.local), geometry_label(a.geometry), ", ".join(a.workloads)])
        out.tables.append(t)
    text = manifests(p, s)
    query = urlencode({k: v for k, v in s.model_dump().items() if v is not None})
    what = ("mig-parted ConfigMap, node labels and example Pods" if s.emit == "mig-parted" else
            f"DRA ResourceClaims for Kubernetes {s.k8s_version} ({s.mig_mode} MIG)")
    out.extra.append(Markup(
        '<h2>Kubernetes manifests</h2><p><a class="button" id="yaml-download" href="/api/mig/yaml?{q}" download="mig-plan.yaml">'
        "Download YAML</a> {w}, as <code>aiinfra mig plan --emit {e} --manifests FILE</code> "
        'writes them.</p><pre class="yaml" id="yaml">{y}</pre>').format(q=query, w=what, e=s.emit, y=text))
    return out


FIELDS = [
    FormField("gpu", "GPU", "text", gpu_names, "catalog key, MIG table name or PCI ID"),
    FormField("gpus", "GPUs available", help="or give nodes"),
    FormField("nodes", "nodes available", help="GPUs = nodes × GPUs per node"),
    FormField("gpus_per_node", "GPUs per node"),
    FormField("workloads", "workloads (YAML)", "textarea",
              help="each: name, count, and profile or memory_gb (+ compute_slices, isolation hard|soft)"),
    FormField("emit", "manifests", "select", lambda: list(_sharing("commands").EMITS)),
    FormField("k8s_version", "Kubernetes release (dra)", "select", lambda: _sharing("dra").kube_versions()),
    FormField("mig_mode", "MIG mode (dra)", "select", lambda: list(_sharing("dra").MIG_MODES)),
]


@router.get("/mig", include_in_schema=False)
def mig_page(request: Request):
    return render_page(request, path="/mig", title="MIG planner",
                       intro="Pack workloads onto the fewest MIG-partitioned GPUs (exact integer program, compared with "
                             "nos's first-fit), see each GPU's compute and memory slots, and download the manifests.",
                       spec_cls=MigPlanSpec, fields=FIELDS, compute=plan_view if available() else None,
                       cli="aiinfra mig plan --gpu … --gpus … --workloads FILE --explain",
                       initial={"gpu": "h100-sxm", "gpus": 16, "workloads": EXAMPLE})


@router.post("/api/mig/plan", tags=["mig"], summary="aiinfra mig plan --format json --explain")
def api_mig_plan(spec: MigPlanSpec) -> dict:
    require(LIBRARY)
    return plan_result(spec).to_dict()


@router.get("/api/mig/yaml", tags=["mig"], summary="aiinfra mig plan --manifests FILE (as a download)")
def api_mig_yaml(gpu: str, workloads: str, gpus: int | None = None, nodes: int | None = None, gpus_per_node: int = 8,
                 emit: str = "mig-parted", k8s_version: str = "1.34", mig_mode: str = "dynamic") -> Response:
    require(LIBRARY)
    spec = MigPlanSpec(gpu=gpu, gpus=gpus, nodes=nodes, gpus_per_node=gpus_per_node, workloads=workloads, emit=emit,
                       k8s_version=k8s_version, mig_mode=mig_mode)
    text = manifests(_plan(spec), spec)
    return Response(text, media_type="application/yaml",
                    headers={"Content-Disposition": 'attachment; filename="mig-plan.yaml"'})

"""Fleet: utilization heatmap, GPUs without work (idle but held, stranded) and XID health, refreshed on an interval.

Both sources are library functions in `fleet.commands`; this page parses the form and renders.
- a Prometheus URL: `fleet.commands.analyze` (the function behind `aiinfra analyze`) sends its
  PromQL through the `fleet.prom` client (with a timeout); the URL is used for nothing else;
- a simulated fleet (`fleet.simfleet` over `telemetry.simulate`): the real NVML collector (`telemetry.nvml.Collector`)
  reads the simulated hosts, one column per refresh, in simulated time.
GPUs without work (busy below the idle ratio) are named as `aiinfra analyze` and `aiinfra chargeback`
name them: idle but held (a pod or HPC job holds it), stranded (no pod or job, yet memory held or a
process attached: nobody can be given it), idle (neither). The simulated fleet has no scheduler, so
its GPUs are stranded or idle. No activity metric → activity unknown (never idle). Lost GPUs
(GPU_IS_LOST, XID 79, or no longer reporting) are listed with the time they were last seen.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from fastapi import APIRouter, Request
from markupsafe import Markup

from aiinfra.errors import SpecError
from aiinfra.explain import Result, Term
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
SIM_LIBRARY = "aiinfra.telemetry.simulate"
PROM_LIBRARY = "aiinfra.fleet.commands"
PROM_TIMEOUT_S = 5.0


class FleetSpec(WebSpec):
    """Where the fleet's numbers come from, and the thresholds of `aiinfra analyze`."""

    source: str = "simulate"
    simulate: str = "hosts=2,gpus=8,model=h100-sxm,seed=1,faults=xid13:h1g2@300+xid79:g5@900"
    prometheus: str | None = None
    range: str = "1h"
    step_s: float = 60.0
    columns: int = 30
    idle_ratio: float = 0.05
    held_mib: float = 1024.0
    refresh_s: int = 30


def available() -> bool:
    return has_module(SIM_LIBRARY) or has_module(PROM_LIBRARY)


def _check(s: FleetSpec) -> None:
    if s.source not in ("simulate", "prometheus"):
        raise SpecError(f"source must be simulate or prometheus, not '{s.source}'")
    from aiinfra.fleet.simfleet import check_options

    check_options(s)  # step, columns, held MiB and idle ratio: finite and bounded, as the shared simulation needs
    if s.refresh_s < 0:
        raise SpecError(f"refresh must be 0 (off) or positive seconds, got {s.refresh_s}")


# --- Prometheus ----------------------------------------------------------------------------------


def prometheus(s: FleetSpec) -> Result:
    from aiinfra.fleet.commands import analyze

    _check(s)
    url = (s.prometheus or "").strip()
    if not url.startswith(("http://", "https://")):
        raise SpecError(f"prometheus URL must start with http:// or https://, got '{url}'")
    return analyze(url, s.range, idle_ratio=s.idle_ratio, held_mib=s.held_mib, timeout=PROM_TIMEOUT_S)


def fleet_result(s: FleetSpec) -> Result:
    if s.source == "prometheus":
        require(PROM_LIBRARY)
        return prometheus(s)
    require(SIM_LIBRARY)
    from aiinfra.fleet.commands import simulated_fleet

    _check(s)
    return simulated_fleet(s)


# --- view ----------------------------------------------------------------------------------------


def _heatmap(rows: list[str], times: list[float], values: list[list[Any]], title: str, x_title: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=[[None if v is None else v * 100 for v in row] for row in values], x=times, y=rows,
                               zmin=0, zmax=100, colorscale="Viridis", colorbar=dict(title="busy %"),
                               hovertemplate="%{y}<br>t=%{x}<br>busy %{z:.0f}%<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis=dict(autorange="reversed"))
    return fig


def fleet_view(s: FleetSpec, ex: Explainer) -> Outcome:
    r = fleet_result(s)
    ex.add_result(r)
    f = r.facts
    out = Outcome(warnings=list(r.warnings))
    if s.source == "prometheus" and f.get("status") != "ok":
        # No data is reported as such, never as a healthy fleet.
        out.headline.append(Markup("No GPU series in this window: {}").format(r.title))
        return out
    out.headline.append(Markup("{}: ").format(r.title) + Markup("; ").join(
        ex.link(t, _show(t)) + Markup(" {}").format(t.name) for t in r.terms))
    h = f["heatmap"]
    if s.source == "simulate":
        fig = _heatmap(h["rows"], h["times"], h["values"], "Utilization per GPU (simulated time)", "seconds")
        height = max(320, 90 + 16 * len(h["rows"]))
    else:
        import datetime as dt

        times = [dt.datetime.fromtimestamp(t, dt.UTC).strftime("%H:%M") for t in h.get("times", [])]
        fig = _heatmap(h.get("hosts", []), times, h.get("values", []), "Utilization per node", "time (UTC)")
        height = max(320, 90 + 22 * len(h.get("hosts", [])))
    out.charts.append(div(fig, "fleet-chart", height=min(height, 1400)))
    if s.source == "prometheus":
        out.tables.append(_no_work_table(f.get("idle_held", []), s, ex, "idle_held",
                                         "Idle but held GPUs (a pod or HPC job holds them, no work)"))
    out.tables.append(_no_work_table(f.get("stranded", []), s, ex, "stranded",
                                     f"Stranded GPUs (no pod or job, {s.held_mib:g} MiB or more memory held or a process attached, no work)"))
    xid = f.get("xid")
    t = Table("XID health", ["GPU", "XID", "seen", "meaning", "severity", "action"], id="xid")
    if isinstance(xid, str):
        t.rows.append([xid, "", "", "", "", ""])
    else:
        for row in xid or []:
            gpu = row.get("gpu") if s.source == "simulate" else f"{row.get('host', '')}/gpu{row.get('gpu', '')}"
            t.rows.append([gpu, str(row["xid"]), str(row.get("columns_seen", row.get("windows_with_events", ""))),
                           row["meaning"], row["severity"], row["action"]])
        if not xid:
            t.rows.append(["no XID events in the window", "", "", "", "", ""])
    out.tables.append(t)
    out.tables.append(_lost_table(f, s.source))
    unknown = f.get("activity_unknown") or []
    if unknown:
        t = Table("Activity unknown (no PROF activity, no GPU_UTIL: never counted as idle)", ["GPU", "model", "why"], id="unknown")
        for row in unknown:
            name = row.get("gpu") if s.source == "simulate" else f"{row.get('host', '')}/gpu{row.get('gpu', '')}"
            mig = f" mig{row['GPU_I_ID']}" if row.get("GPU_I_ID") else ""
            t.rows.append([name + mig, row.get("model") or row.get("modelName", ""), row.get("why", "no activity metric")])
        out.tables.append(t)
    if s.source == "prometheus":  # who holds and wastes the GPUs (attribution labels), same function as `aiinfra chargeback`
        from aiinfra.web.pages.fleet_chargeback import chargeback_tables

        tables, warnings = chargeback_tables(s, ex)
        out.tables.extend(tables)
        out.warnings.extend(warnings)
    if s.refresh_s:
        out.extra.append(Markup('<p class="refresh" data-refresh-seconds="{0}">Refreshes every {0} s{1}.</p>').format(
            s.refresh_s, " (each refresh adds one simulated column)" if s.source == "simulate" else ""))
    return out


def _no_work_table(rows: list[dict], s: FleetSpec, ex: Explainer, state: str, title: str) -> Table:
    """GPUs idle but held, or stranded: which, its busy average, why, and its GPU-hours without work."""
    t = Table(title, ["GPU", "model", "busy avg", "GPU-hours", "why"], id=state.replace("_", "-"))
    rule = {"idle_held": "idle but held: below idle_ratio while a pod or HPC job holds it",
            "stranded": "stranded: below idle_ratio, no pod or job, memory held (≥ held_mib) or a process attached"}[state]
    for row in rows:
        name = row.get("gpu") if s.source == "simulate" else f"{row.get('host', '')}/gpu{row.get('gpu', '')}"
        if row.get("GPU_I_ID"):
            name += f" mig{row['GPU_I_ID']}"
        busy = ex.fact(f"busy average ({name})", row["busy_avg"], "",
                       "mean engine activity over the window" if s.source == "simulate"
                       else "PromQL avg_over_time(busy[range]) for this GPU/MIG instance",
                       {"idle_ratio": s.idle_ratio, "held_mib": s.held_mib}, {"rule": rule}, f"{row['busy_avg']:.1%}")
        hours = row.get("low_activity_gpu_hours")
        t.rows.append([name, row.get("model") or row.get("modelName", ""), busy, "–" if hours is None else f"{hours:,.2f}",
                       row.get("why", "memory held or process attached")])
    if not t.rows:
        t.rows.append(["none", "", "", "", ""])
    return t


def _lost_table(f: dict, source: str) -> Table:
    """Lost GPUs with when each was last seen; a GPU-count drop (Prometheus) as its own row."""
    t = Table("Lost GPUs (GPU_IS_LOST, XID 79, or no longer reporting)", ["GPU", "why", "last seen"], id="lost")
    rows = f.get("lost_gpus") if source == "simulate" else f.get("lost")
    for row in rows or []:
        name = row.get("gpu") if source == "simulate" else f"{row.get('host', '')}/gpu{row.get('gpu', '')}"
        ago = row.get("last_seen_ago_s")
        seen = "reporting now" if row.get("reporting") else ("unknown" if ago is None else f"{ago:,.0f} s before the end")
        t.rows.append([name, ", ".join(row.get("reasons", [])), seen])
    for drop in (f.get("gpu_count") or {}).get("drops", []):
        t.rows.append([drop["host"], f"GPU count fell from {drop['seen']} to {drop['now']}", ""])
    if not t.rows:
        t.rows.append(["none", "", ""])
    return t


def _show(t: Term) -> str:
    v = float(t.value)
    if t.unit == "":
        return f"{v:.1%}" if v <= 1 else f"{v:,.3g}"
    if t.unit == "GPUs":  # the name says what is counted: "2 idle GPUs"
        return f"{v:,.0f}"
    return f"{v:,.0f} {t.unit}" if float(v).is_integer() else f"{v:,.2f} {t.unit}"


FIELDS = [
    FormField("source", "source", "select", ["simulate", "prometheus"]),
    FormField("simulate", "simulated fleet", "text",
              help="hosts, gpus, model, seed, workload, mig, faults (e.g. xid79:g5@900)"),
    FormField("prometheus", "Prometheus URL", "text", help="http://host:9090; used only for PromQL queries"),
    FormField("range", "range (Prometheus)", "text"),
    FormField("columns", "heatmap columns"),
    FormField("step_s", "simulated seconds per column"),
    FormField("idle_ratio", "idle ratio"),
    FormField("held_mib", "held MiB"),
    FormField("refresh_s", "refresh seconds", help="0 = off"),
]
ALIASES = register_aliases({"simulate": ["--simulate", "simulates"], "prometheus": ["prometheus url", "prometheus"],
                            "range": ["range", "duration"], "held_mib": ["held mib"], "step_s": ["step"]})


@router.get("/fleet", include_in_schema=False)
def fleet_page(request: Request):
    return render_page(request, path="/fleet", title="Fleet",
                       intro="Utilization heatmap, GPUs without work (idle but held by a pod or job; stranded: no owner "
                             "but memory held) and XID health, from a Prometheus that scrapes dcgm-exporter or from a "
                             "simulated fleet.",
                       spec_cls=FleetSpec, fields=FIELDS, compute=fleet_view if available() else None,
                       aliases=ALIASES, cli="aiinfra analyze --prometheus URL --range 1h", initial={})


@router.post("/api/fleet", tags=["fleet"], summary="aiinfra analyze --format json (or a simulated fleet)")
def api_fleet(spec: FleetSpec) -> Any:
    return cli_json(fleet_result(spec))

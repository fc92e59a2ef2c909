"""Fleet: utilization heatmap, stranded GPUs and XID health, refreshed on an interval.

Two sources:
- a Prometheus URL: `fleet.commands.analyze` (the function behind `aiinfra analyze`) sends its
  PromQL through the `fleet.prom` client (with a timeout); the URL is used for nothing else;
- a simulated fleet (`telemetry.simulate`): the real NVML collector (`telemetry.nvml.Collector`)
  reads the simulated hosts, one column per refresh, in simulated time. GPUs are classified with
  the same rules as `aiinfra analyze`: busy below the idle ratio and memory held or a process
  attached → stranded; busy below it with neither → idle; no activity metric → activity unknown
  (never idle). Lost GPUs (GPU_IS_LOST, XID 79, or no longer reporting) are listed with the time
  they were last seen.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
from fastapi import APIRouter, Request
from markupsafe import Markup

from aiinfra.catalog.loader import default_catalog
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
MAX_SIM_GPUS = 512  # one request must stay cheap: the web app is not a load generator
PROM_TIMEOUT_S = 5.0
MiB = 2.0**20


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
    if not 0 < s.idle_ratio < 1:
        raise SpecError(f"idle ratio must be between 0 and 1, got {s.idle_ratio}")
    if s.held_mib < 0:
        raise SpecError(f"held MiB must not be negative, got {s.held_mib}")
    if not 1 <= s.columns <= 240:
        raise SpecError(f"columns must be between 1 and 240, got {s.columns}")
    if s.step_s <= 0:
        raise SpecError(f"step must be positive seconds, got {s.step_s}")
    if s.refresh_s < 0:
        raise SpecError(f"refresh must be 0 (off) or positive seconds, got {s.refresh_s}")


# --- simulated fleet -----------------------------------------------------------------------------


@dataclass
class SimState:
    """One simulated fleet kept between refreshes: its clock, collectors and the columns so far."""

    fleet: Any
    clock: Any
    collectors: list[Any]
    times: deque = field(default_factory=lambda: deque(maxlen=240))
    busy: dict[str, deque] = field(default_factory=dict)  # entity → busy fraction per column (None = absent)
    held: dict[str, bool] = field(default_factory=dict)  # entity → memory held or process attached (latest)
    models: dict[str, str] = field(default_factory=dict)
    xids: dict[tuple[str, int], int] = field(default_factory=dict)  # (gpu, code) → columns it was seen in
    lost: set[str] = field(default_factory=set)
    last_seen: dict[str, float] = field(default_factory=dict)  # physical GPU → simulated time it last reported
    lock: threading.Lock = field(default_factory=threading.Lock)


_SIMS: OrderedDict[str, SimState] = OrderedDict()
_SIMS_LOCK = threading.Lock()


def _sim_state(spec_text: str) -> SimState:
    from aiinfra.telemetry.nvml import Collector
    from aiinfra.telemetry.simulate import ManualClock, fleet_from_spec

    with _SIMS_LOCK:
        if spec_text in _SIMS:
            _SIMS.move_to_end(spec_text)
            return _SIMS[spec_text]
        clock = ManualClock(0.0)
        fleet = fleet_from_spec(spec_text, clock=clock)
        n = fleet.spec.hosts * fleet.spec.gpus
        if n > MAX_SIM_GPUS:
            raise SpecError(f"the web app simulates at most {MAX_SIM_GPUS} GPUs, got {n}; use `aiinfra exporter --simulate` for more")
        collectors = [Collector(lib=h, host=h.name, clock=clock) for h in fleet.hosts]
        state = SimState(fleet, clock, collectors)
        _SIMS[spec_text] = state
        while len(_SIMS) > 4:
            _SIMS.popitem(last=False)
        return state


def _collect(state: SimState, s: FleetSpec) -> None:
    """One column: every collector reads its host once at the current simulated time."""
    col = len(state.times)
    seen: set[str] = set()
    for c in state.collectors:
        snap = c.collect()
        status = {g.index: g for g in snap.gpus}
        for e in snap.entities:
            ident = e.identity
            key = f"{c.host}/gpu{ident.gpu}" + (f"/gi{ident.gi_id}" if ident.gi_id is not None else "")
            # PROF activity where it exists (MIG instances, Hopper), else GPU_UTIL; None = activity unknown.
            busy = e.values.get("prof-gr-engine-active", e.values.get("gpu-util"))
            series = state.busy.setdefault(key, deque([None] * col, maxlen=240))
            series.append(busy)
            seen.add(key)
            st = status.get(ident.gpu)
            procs = bool(st and [p for p in st.processes if ident.gi_id is None or p.gi_id == ident.gi_id])
            state.held[key] = procs or e.values.get("fb-used", 0.0) >= s.held_mib * MiB
            state.models[key] = ident.model + (f" {ident.gi_profile}" if ident.gi_profile else "")
            state.last_seen[f"{c.host}/gpu{ident.gpu}"] = state.clock()
        for g in snap.gpus:
            for _, code in g.recent_xids:
                k = (f"{c.host}/gpu{g.index}", int(code))
                state.xids[k] = state.xids.get(k, 0) + 1
        for i in snap.lost:
            state.lost.add(f"{c.host}/gpu{i}")
    for key, series in state.busy.items():
        if key not in seen:
            series.append(None)
    state.times.append(state.clock())


def simulate(s: FleetSpec) -> tuple[Result, SimState]:
    _check(s)
    state = _sim_state(s.simulate)
    with state.lock:
        todo = s.columns if not state.times else 1
        for _ in range(todo):
            if state.times:
                state.clock.advance(s.step_s)
            _collect(state, s)
        return _sim_result(state, s), state


def _sim_result(state: SimState, s: FleetSpec) -> Result:
    window = min(s.columns, len(state.times))
    rows, idle, stranded = [], [], []
    lost = set(state.lost)
    unknown = []
    for key, series in sorted(state.busy.items()):
        vals = [v for v in list(series)[-window:] if v is not None]
        physical = key.split("/gi")[0]
        if physical in lost:
            rows.append({"gpu": key, "model": state.models.get(key, ""), "busy_avg": None, "state": "lost"})
            continue
        if not vals:
            row = {"gpu": key, "model": state.models.get(key, ""), "busy_avg": None, "state": "activity unknown"}
            rows.append(row)
            unknown.append(row)
            continue
        avg = sum(vals) / len(vals)
        row = {"gpu": key, "model": state.models.get(key, ""), "busy_avg": round(avg, 4), "columns": len(vals)}
        if avg < s.idle_ratio:
            (stranded if state.held.get(key) else idle).append(row)
            row["state"] = "stranded" if state.held.get(key) else "idle"
        else:
            row["state"] = "busy"
        rows.append(row)
    measured = [r["busy_avg"] for r in rows if r["busy_avg"] is not None]
    fleet_avg = sum(measured) / len(measured) if measured else 0.0
    src = {"collector": "aiinfra.telemetry.nvml.Collector over aiinfra.telemetry.simulate (seeded, simulated time)"}
    terms = [
        Term("fleet average utilization", fleet_avg, "", "mean over GPUs/MIG instances of mean(busy) over the window",
             {"entities": len(rows), "columns": window, "step_s": s.step_s}, src),
        Term("stranded GPUs", len(stranded), "GPUs", "count(mean busy < idle_ratio and (memory held ≥ held_mib or process attached))",
             {"idle_ratio": s.idle_ratio, "held_mib": s.held_mib}, {"rule": "same classification as aiinfra analyze"}),
        Term("idle GPUs", len(idle), "GPUs", "count(mean busy < idle_ratio and nothing held)", {"idle_ratio": s.idle_ratio}),
        Term("lost GPUs", len(state.lost), "GPUs", "GPUs whose NVML handle answered GPU_IS_LOST", {}, src),
        Term("activity unknown", len(unknown), "GPUs", "count(GPUs/MIG instances with neither PROF activity nor GPU_UTIL)",
             {}, {"rule": "never counted as idle"}),
    ]
    cat = default_catalog().table("xid")
    xids = []
    for (gpu, code), n in sorted(state.xids.items()):
        e = cat.get(str(code), {})
        xids.append({"gpu": gpu, "xid": code, "columns_seen": n, "meaning": e.get("err_msg") or e.get("meaning") or
                     "not in the XID catalog", "severity": e.get("severity", "unknown"),
                     "action": e.get("action", "look the code up in NVIDIA's XID catalog")})
    r = Result(f"Simulated fleet ({s.simulate}): {len(rows)} GPUs/MIG instances at t = {state.times[-1]:g} s", terms)
    r.facts = {"source": "simulate", "spec": s.simulate, "time_s": state.times[-1], "per_gpu": rows,
               "stranded": stranded, "idle": idle, "lost": sorted(state.lost), "activity_unknown": unknown,
               "lost_gpus": [{"gpu": g, "reasons": ["NVML: GPU is lost"], "last_seen": state.last_seen.get(g),
                              "last_seen_ago_s": None if g not in state.last_seen else state.times[-1] - state.last_seen[g]}
                             for g in sorted(state.lost)],
               "xid": xids,
               "heatmap": {"rows": sorted(state.busy), "times": list(state.times)[-window:],
                           "values": [list(state.busy[k])[-window:] for k in sorted(state.busy)]}}
    return r


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
    return simulate(s)[0]


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
    stranded = Table("Stranded GPUs (allocated but doing no work)", ["GPU", "model", "busy avg", "why"], id="stranded")
    for row in f.get("stranded", []):
        name = row.get("gpu") if s.source == "simulate" else f"{row.get('host', '')}/gpu{row.get('gpu', '')}"
        busy = ex.fact(f"busy average ({name})", row["busy_avg"], "",
                       "mean engine activity over the window" if s.source == "simulate"
                       else "PromQL avg_over_time(busy[range]) for this GPU/MIG instance",
                       {"idle_ratio": s.idle_ratio}, {"rule": "stranded: below idle_ratio with memory held or a pod"},
                       f"{row['busy_avg']:.1%}")
        stranded.rows.append([name, row.get("model") or row.get("modelName", ""), busy,
                              row.get("why", "memory held or process attached")])
    if not stranded.rows:
        stranded.rows.append(["none", "", "", ""])
    out.tables.append(stranded)
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
    if s.refresh_s:
        out.extra.append(Markup('<p class="refresh" data-refresh-seconds="{0}">Refreshes every {0} s{1}.</p>').format(
            s.refresh_s, " (each refresh adds one simulated column)" if s.source == "simulate" else ""))
    return out


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
                       intro="Utilization heatmap, stranded GPUs (memory held or a pod attached, no work) and XID "
                             "health, from a Prometheus that scrapes dcgm-exporter or from a simulated fleet.",
                       spec_cls=FleetSpec, fields=FIELDS, compute=fleet_view if available() else None,
                       aliases=ALIASES, cli="aiinfra analyze --prometheus URL --range 1h", initial={})


@router.post("/api/fleet", tags=["fleet"], summary="aiinfra analyze --format json (or a simulated fleet)")
def api_fleet(spec: FleetSpec) -> Any:
    return cli_json(fleet_result(spec))

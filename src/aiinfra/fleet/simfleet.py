"""A simulated fleet over time for the web Fleet page: the real NVML collector reads simulated hosts,
one column per refresh, in simulated time, and the GPUs are named as `aiinfra analyze` names them.
The simulation has no scheduler (no pod or job owns a GPU), so a GPU without work is stranded when
memory is held or a process attached (nobody can be given it), else idle; never idle but held.

State (clock, collectors, columns so far) is kept per fleet spec between refreshes, for a few specs.
Options are read from any object with `simulate`, `columns`, `step_s`, `idle_ratio`, `held_mib`.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from aiinfra.catalog.xid import xid_catalog
from aiinfra.errors import SpecError
from aiinfra.explain import Result, Term

MAX_SIM_GPUS = 512  # one request must stay cheap: the web app is not a load generator
MAX_STEP_S = 86400.0  # at most one simulated day per column
MiB = 2.0**20


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


def _collect(state: SimState, s: Any) -> None:
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


def check_options(s: Any) -> None:
    """Refuse what would move a shared simulated fleet into a state no later request can use.

    A fleet's clock and columns are shared by every request that names the same spec, so one
    request's step_s of 1e400 (read as inf) or nan used to set the clock to inf/nan for everyone,
    and every later refresh failed until restart."""
    step = s.step_s
    if isinstance(step, bool) or not isinstance(step, int | float) or not (math.isfinite(step) and 0 < step <= MAX_STEP_S):
        raise SpecError(f"step must be seconds between 0 and {MAX_STEP_S:g} (one simulated day per column), got {step}")
    if isinstance(s.columns, bool) or not isinstance(s.columns, int) or not 1 <= s.columns <= 240:
        raise SpecError(f"columns must be between 1 and 240, got {s.columns}")
    if not (isinstance(s.held_mib, int | float) and math.isfinite(s.held_mib) and s.held_mib >= 0):
        raise SpecError(f"held MiB must be finite and not negative, got {s.held_mib}")
    if not (isinstance(s.idle_ratio, int | float) and 0 < s.idle_ratio < 1):
        raise SpecError(f"idle ratio must be between 0 and 1, got {s.idle_ratio}")


def simulate(s: Any) -> tuple[Result, SimState]:
    check_options(s)  # before the shared state is touched
    state = _sim_state(s.simulate)
    with state.lock:
        todo = s.columns if not state.times else 1
        for _ in range(todo):
            if state.times:
                state.clock.advance(s.step_s)
            _collect(state, s)
        return _sim_result(state, s), state


def _sim_result(state: SimState, s: Any) -> Result:
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
        Term("stranded GPUs", len(stranded), "GPUs",
             "count(mean busy < idle_ratio and no owner and (memory held ≥ held_mib or process attached))",
             {"idle_ratio": s.idle_ratio, "held_mib": s.held_mib},
             {"rule": "as aiinfra analyze and chargeback name it; a simulated GPU has no pod or job owner"}),
        Term("idle GPUs", len(idle), "GPUs", "count(mean busy < idle_ratio and no owner and nothing held)", {"idle_ratio": s.idle_ratio}),
        Term("lost GPUs", len(state.lost), "GPUs", "GPUs whose NVML handle answered GPU_IS_LOST", {}, src),
        Term("activity unknown", len(unknown), "GPUs", "count(GPUs/MIG instances with neither PROF activity nor GPU_UTIL)",
             {}, {"rule": "never counted as idle"}),
    ]
    cat = xid_catalog(required=False)
    xids = []
    for (gpu, code), n in sorted(state.xids.items()):
        x = cat.get(code)
        xids.append({"gpu": gpu, "xid": code, "columns_seen": n, "meaning": (x.meaning if x else "") or "not in the XID catalog",
                     "severity": x.severity if x else "unknown",
                     "action": x.action if x else "look the code up in NVIDIA's XID catalog"})
    r = Result(f"Simulated fleet ({s.simulate}): {len(rows)} GPUs/MIG instances at t = {state.times[-1]:g} s", terms)
    r.facts = {"source": "simulate", "spec": s.simulate, "time_s": state.times[-1], "per_gpu": rows,
               "stranded": stranded, "idle": idle, "idle_held": [], "lost": sorted(state.lost), "activity_unknown": unknown,
               "lost_gpus": [{"gpu": g, "reasons": ["NVML: GPU is lost"], "last_seen": state.last_seen.get(g),
                              "last_seen_ago_s": None if g not in state.last_seen else state.times[-1] - state.last_seen[g]}
                             for g in sorted(state.lost)],
               "xid": xids,
               "heatmap": {"rows": sorted(state.busy), "times": list(state.times)[-window:],
                           "values": [list(state.busy[k])[-window:] for k in sorted(state.busy)]}}
    return r

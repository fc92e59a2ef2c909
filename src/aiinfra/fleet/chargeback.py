"""Chargeback: GPU-hours, energy and dollars by namespace, pod and HPC job, computed inside Prometheus.

Input: the exporter's series with attribution labels (`aiinfra exporter --kubernetes`, or
dcgm-exporter `--kubernetes`, `--hpc-job-mapping-dir`): a GPU, MIG instance or shared replica
carries `pod`/`namespace`/`container` (or `exported_*` behind a ServiceMonitor with
honorLabels: false, or `pod_name`/`pod_namespace` in the old naming) and `hpc_job` while someone
holds it, and no owner labels while nobody does.

Definitions over the window [end − range, end], sampled every `step` by PromQL subqueries:
- **allocated** GPU-hours: steps an owner held the device × step × share;
- **busy** GPU-hours: Σ busy ratio × step × share (busy = DCGM_FI_PROF_GR_ENGINE_ACTIVE, else GPU_UTIL/100);
- **idle-but-held** (`idle_held`): allocated steps with busy below the idle ratio: an owner holds
  the GPU and does no work;
- **stranded** (unowned rows): no owner label, busy below the idle ratio, yet framebuffer at or
  above `held_mib` is in use: something outside the scheduler holds it, so nobody can be given it;
- **unallocated**: no owner at all (free capacity, busy or not).
`aiinfra analyze` uses the same words for the same GPUs (its "idle" is an unallocated GPU without work
or memory); it classifies a series by its average and counts its steps below the idle ratio, where
the chargeback tests every step, so the two agree on GPUs that stay in one state.
share = MIG slices / the SKU's slices for a MIG instance, ÷ the owners at that step for a
time-sliced or MPS-shared device (NVML reports one busy value per device, so it is split evenly).
Energy: the counter DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ; J under exporter 4.9 names) as
rate() × step per owner series, split by the same share. Dollars: allocated GPU-hours × price —
a chargeback bills what a team holds; the waste column prices a pod's idle-but-held hours (stranded
hours have no owner to bill).

Seven grouped queries (plus two for discovery); Prometheus returns one row per owner × MIG profile × model, never raw samples.
"""

from __future__ import annotations

import csv
import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiinfra.catalog.loader import default_catalog
from aiinfra.contract import Facts, Quantity, command
from aiinfra.errors import AiinfraError
from aiinfra.explain import Result, Term, quantity
from aiinfra.fleet.prom import Prometheus, check_end, check_held_mib, check_price, even_step, fmt_duration, subquery_range
from aiinfra.fleet.promql import _catalog_spellings

OWNER_LABELS = {
    "exported_pod": ("exported_namespace", "exported_pod", "exported_container"),
    "pod": ("namespace", "pod", "container"),
    "pod_name": ("pod_namespace", "pod_name", "container_name"),
}
DEVICE_ON = "instance, UUID, uuid, GPU_I_ID"  # one device (MIG instance) across label generations
MiB = 1048576.0
_BUSY = [("DCGM_FI_PROF_GR_ENGINE_ACTIVE", 1.0), ("DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO", 1.0), ("DCGM_FI_DEV_GPU_UTIL", 0.01),
         ("DCGM_FI_DEV_GPU_UTIL_RATIO", 1.0), ("dcgm_gpu_utilization", 0.01)]
_FB_USED = [("DCGM_FI_DEV_FB_USED", MiB), ("DCGM_FI_DEV_FB_USED_BYTES", 1.0), ("dcgm_fb_used", MiB)]


def _energy_names() -> list[tuple[str, float]]:
    """Energy counter spellings → factor to joules, from the field catalog (legacy mJ, 4.9 J)."""
    entry = default_catalog().table("dcgm_fields").get("total-energy-consumption") or {}
    out: dict[str, float] = {}
    for name, factor in (_catalog_spellings(entry) if entry else []):
        out.setdefault(name, factor)  # legacy and DCGM 4.6 share a name
    return list(out.items()) or [("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 1e-3)]


@dataclass
class ChargebackOptions:
    range_s: float = 86400.0
    end: float | None = None
    idle_ratio: float = 0.05
    held_mib: float = 1024.0
    price_per_gpu_hour: float | None = None
    top: int = 10
    parallel: int = 4

    def __post_init__(self) -> None:
        if not 0 < self.idle_ratio < 1:
            raise AiinfraError(f"--idle-below must be between 0 and 1, got {self.idle_ratio}")
        check_price(self.price_per_gpu_hour)
        check_held_mib(self.held_mib)
        check_end(self.end)
        if self.range_s < 60:
            raise AiinfraError(f"--range must be at least 1m for a chargeback, got {self.range_s:g} s")

    @property
    def step_s(self) -> int:
        """Subquery resolution: about 720 steps per window, between 15 s and 5 min (up to 10 min
        where that divides the window), and a divisor of the window where one is near, so the steps
        of (end - range, end] add up to the window exactly."""
        return even_step(self.range_s, min(300, max(15, round(self.range_s / 720))))


class ChargebackFacts(Facts):
    status: str
    range_s: Quantity
    price_per_gpu_hour: Quantity | None
    price_source: str
    allocated_gpu_hours: Quantity
    busy_gpu_hours: Quantity
    idle_held_gpu_hours: Quantity
    stranded_gpu_hours: Quantity
    unallocated_gpu_hours: Quantity
    energy_kwh: Quantity
    cost_usd: Quantity | None
    by_namespace: list[dict[str, Any]]
    by_pod: list[dict[str, Any]]
    by_job: list[dict[str, Any]]
    top_wasters: list[dict[str, Any]]
    queries: int


# -- PromQL ---------------------------------------------------------------------------------------


@dataclass
class _Layout:
    busy: list[tuple[str, float]]
    energy: list[tuple[str, float]]
    fb_used: list[tuple[str, float]]
    owner: tuple[str, str, str]  # namespace, pod, container label names
    shared: bool = False  # some series carry `vgpu` (time-sliced / MPS replicas)


def _discover(prom: Prometheus, start: float, end: float) -> _Layout:
    match = ['{__name__=~"DCGM_.*|dcgm_.*"}']
    present = set(prom.label_values("__name__", match=match, start=start, end=end))
    labels = set(prom.labels(match=match, start=start, end=end)) if present else set()
    src = "exported_pod" if "exported_pod" in labels else ("pod_name" if "pod_name" in labels and "pod" not in labels else "pod")
    busy = [(n, f) for n, f in _BUSY if n in present]
    prof = [n for n, _ in busy if "PROF" in n]
    util = [n for n, _ in busy if "PROF" not in n]
    if prof and util:
        # GPU_UTIL is only a fallback for GPUs without PROF fields; drop it when every GPU has PROF.
        R = f"{int(end - start)}s"
        lacking = prom.query(f"count(({' or '.join(f'last_over_time({n}[{R}])' for n in util)}) unless on ({DEVICE_ON}) "
                             f"({' or '.join(f'last_over_time({n}[{R}])' for n in prof)}))", end)
        if not lacking or lacking[0].value == 0:
            busy = [(n, f) for n, f in busy if "PROF" in n]
    return _Layout(busy, [(n, f) for n, f in _energy_names() if n in present], [(n, f) for n, f in _FB_USED if n in present],
                   OWNER_LABELS[src], "vgpu" in labels)


class _Q:
    """The chargeback queries for one server. Owner series are split in two: not shared (no `vgpu`
    label: weight 1, no join) and shared replicas (weight 1 / owners of the device at that step, a
    join), so the common case pays for no join at all."""

    def __init__(self, lay: _Layout, o: ChargebackOptions):
        self.lay, self.o = lay, o
        ns, pod, _ = lay.owner
        self.owned = [f'{pod}!=""', 'hpc_job!=""']
        self.unowned = f'{pod}="",hpc_job=""'
        self.group = f"{ns}, {pod}, hpc_job, GPU_I_PROFILE, modelName"
        self.R = fmt_duration(o.range_s)
        self.RS = subquery_range(o.range_s)  # the steps of (end - range, end]: consecutive windows share none
        self.S = fmt_duration(o.step_s)

    def _alt(self, names: list[tuple[str, float]], selectors: list[str], fn=lambda s: s) -> str:
        parts = []
        for name, factor in names:
            for sel in selectors:
                e = fn(f"{name}{{{sel}}}")
                parts.append(f"({e})" if factor == 1.0 else f"(({e}) * {factor:.10g})")
        return " or ".join(parts)

    def _sel(self, shared: bool) -> list[str]:
        return [f'{s},vgpu{"!=" if shared else "="}""' for s in self.owned]

    def _per_owner(self, column) -> str:
        """Σ over owner series of sum_over_time(column(busy, rate, weight)), grouped by owner."""
        RS, S = self.RS, self.S
        parts = []
        for shared in ((False, True) if self.lay.shared else (False,)):
            sel = self._sel(shared)
            b = f"({self._alt(self.lay.busy, sel)})"
            rate = f"({self._alt(self.lay.energy, sel, lambda x: f'rate({x}[5m])')})" if self.lay.energy else ""
            w = f"(({b} * 0 + 1) / on ({DEVICE_ON}) group_left() count by ({DEVICE_ON}) ({b}))" if shared else None
            fn, expr = column(b, rate, w)
            parts.append(f"{fn}(({expr})[{RS}:{S}])")
        return f"sum by ({self.group}) ({' or '.join(parts)})"

    def queries(self) -> dict[str, str]:
        R, RS, S, thr = self.R, self.RS, self.S, f"{self.o.idle_ratio:g}"

        def steps(e: str, w: str | None) -> tuple[str, str]:
            """Steps where `e` has a value: counted, or weighted and summed for shared replicas."""
            return ("count_over_time", e) if w is None else ("sum_over_time", f"(({e}) * 0 + 1) * {w}")

        def total(e: str, w: str | None) -> tuple[str, str]:
            return ("sum_over_time", e if w is None else f"({e}) * {w}")

        q = {
            "allocated": self._per_owner(lambda b, r, w: steps(b, w)),
            "busy": self._per_owner(lambda b, r, w: total(b, w)),
            "idle_held": self._per_owner(lambda b, r, w: steps(f"{b} < {thr}", w)),
        }
        ub = f"({self._alt(self.lay.busy, [self.unowned])})"
        q["unallocated"] = f"sum by (GPU_I_PROFILE, modelName) (count_over_time({ub}[{RS}:{S}]))"
        if self.lay.fb_used:
            fb = self._alt(self.lay.fb_used, [self.unowned])
            held = self.o.held_mib * MiB
            q["stranded"] = (f"sum by (GPU_I_PROFILE, modelName) (count_over_time((({ub} < {thr}) and on ({DEVICE_ON}) "
                             f"(({fb}) >= {held:.0f}))[{RS}:{S}]))")
        if self.lay.energy:
            q["energy"] = self._per_owner(lambda b, r, w: total(r, w))  # J/s per step; the same series on both sides match 1:1
            dev = self._alt(self.lay.energy, ["UUID!=\"\""], lambda x: f"increase({x}[{R}])")
            q["energy_total"] = f"sum by (GPU_I_PROFILE, modelName) (max by (instance, UUID, uuid, GPU_I_ID, GPU_I_PROFILE, modelName) ({dev}))"
        return q


# -- price and share ------------------------------------------------------------------------------


def _mig_share(profile: str, model_name: str) -> float:
    from aiinfra.fleet.analysis import mig_share

    return mig_share(profile, model_name)


def _price(o: ChargebackOptions, models: set[str]) -> tuple[dict[str, float], str, list[str]]:
    """modelName → USD per GPU-hour, where it came from, and the models without one (analyze's lookup)."""
    from aiinfra.fleet.analysis import prices_by_model

    return prices_by_model(models, o.price_per_gpu_hour)


# -- the command ----------------------------------------------------------------------------------

_COLS = ("allocated", "busy", "idle_held", "stranded", "energy_j")


@command("chargeback", facts=ChargebackFacts)
def chargeback(prom: Prometheus | str, opts: ChargebackOptions | None = None, timeout_s: float = 60.0) -> Result:
    """GPU-hours allocated, busy, idle-but-held and stranded, kWh and USD by namespace, pod and job."""
    o = opts or ChargebackOptions()
    if isinstance(prom, str):
        with Prometheus(prom, timeout=timeout_s) as client:
            return chargeback(client, o)
    end = o.end if o.end is not None else time.time()
    start = end - o.range_s
    lay = _discover(prom, start, end)
    if not lay.busy:
        r = Result("GPU chargeback: NO DATA")
        r.facts = _empty_facts(o, prom)
        r.warnings.append(f"no GPU utilization series at {prom.url} in the window; nothing to charge")
        return r
    queries = _Q(lay, o).queries()
    with ThreadPoolExecutor(max_workers=o.parallel) as pool:
        futs = {k: pool.submit(prom.query, e, end) for k, e in queries.items()}
        res = {k: f.result() for k, f in futs.items()}
    return _report(prom, o, lay, res, end)


def _empty_facts(o: ChargebackOptions, prom: Prometheus) -> dict[str, Any]:
    zero = quantity(0.0, "GPU·h")
    return {"status": "no_data", "range_s": quantity(o.range_s, "s"), "price_per_gpu_hour": None, "price_source": "",
            "allocated_gpu_hours": zero, "busy_gpu_hours": zero, "idle_held_gpu_hours": zero, "stranded_gpu_hours": zero,
            "unallocated_gpu_hours": zero, "energy_kwh": quantity(0.0, "kWh"), "cost_usd": None,
            "by_namespace": [], "by_pod": [], "by_job": [], "top_wasters": [], "queries": prom.log.count}


def _report(prom: Prometheus, o: ChargebackOptions, lay: _Layout, res: dict[str, list], end: float) -> Result:
    step_h = o.step_s / 3600.0
    ns_l, pod_l, _ = lay.owner
    energy_factor = 1.0  # the energy queries already scale each spelling to joules
    owners: dict[tuple[str, str, str], dict[str, Any]] = {}
    models: set[str] = set()
    for col in ("allocated", "busy", "idle_held", "energy"):
        for s in res.get(col, []):
            lab = s.labels
            key = (lab.get(ns_l, ""), lab.get(pod_l, ""), lab.get("hpc_job", ""))
            model = lab.get("modelName", "")
            models.add(model)
            share = _mig_share(lab.get("GPU_I_PROFILE", ""), model)
            row = owners.setdefault(key, {"hours_by_model": {}, **{c: 0.0 for c in _COLS}})
            if col == "energy":
                row["energy_j"] += s.value * o.step_s * energy_factor * share
            else:
                row[col] += s.value * step_h * share
                if col == "allocated":
                    row["hours_by_model"][model] = row["hours_by_model"].get(model, 0.0) + s.value * step_h * share
    unalloc = stranded = 0.0
    unalloc_by_model: dict[str, float] = {}
    for s in res.get("unallocated", []):
        model = s.labels.get("modelName", "")
        models.add(model)
        h = s.value * step_h * _mig_share(s.labels.get("GPU_I_PROFILE", ""), model)
        unalloc += h
        unalloc_by_model[model] = unalloc_by_model.get(model, 0.0) + h
    for s in res.get("stranded", []):
        stranded += s.value * step_h * _mig_share(s.labels.get("GPU_I_PROFILE", ""), s.labels.get("modelName", ""))
    energy_total_j = sum(s.value * energy_factor * _mig_share(s.labels.get("GPU_I_PROFILE", ""), s.labels.get("modelName", ""))
                         for s in res.get("energy_total", []))

    prices, price_src, unpriced = _price(o, models)
    priced = bool(models) and not unpriced

    def usd(hours_by_model: dict[str, float]) -> float | None:
        if not priced:
            return None
        return sum(h * prices.get(m, 0.0) for m, h in hours_by_model.items())

    def waste_usd(row: dict[str, Any]) -> float | None:
        if not priced or row["allocated"] <= 0:
            return None
        return row["idle_held"] / row["allocated"] * (usd(row["hours_by_model"]) or 0.0)

    pod_rows = []
    for (ns, pod, job), row in owners.items():
        pod_rows.append({"namespace": ns, "pod": pod, "hpc_job": job, "allocated_gpu_hours": row["allocated"], "busy_gpu_hours": row["busy"],
                         "idle_held_gpu_hours": row["idle_held"], "busy_ratio": row["busy"] / row["allocated"] if row["allocated"] else 0.0,
                         "energy_kwh": row["energy_j"] / 3.6e6, "cost_usd": usd(row["hours_by_model"]), "waste_usd": waste_usd(row)})
    pod_rows.sort(key=lambda r: (-r["allocated_gpu_hours"], r["namespace"], r["pod"], r["hpc_job"]))

    def rollup(key: str) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for r in pod_rows:
            if not r[key]:
                continue
            agg = out.setdefault(r[key], {key: r[key], "allocated_gpu_hours": 0.0, "busy_gpu_hours": 0.0, "idle_held_gpu_hours": 0.0,
                                          "energy_kwh": 0.0, "cost_usd": 0.0 if priced else None, "waste_usd": 0.0 if priced else None, "pods": 0})
            for c in ("allocated_gpu_hours", "busy_gpu_hours", "idle_held_gpu_hours", "energy_kwh"):
                agg[c] += r[c]
            if priced:
                agg["cost_usd"] += r["cost_usd"] or 0.0
                agg["waste_usd"] += r["waste_usd"] or 0.0
            agg["pods"] += 1 if r["pod"] else 0
        rows = sorted(out.values(), key=lambda a: -a["allocated_gpu_hours"])
        for a in rows:
            a["busy_ratio"] = a["busy_gpu_hours"] / a["allocated_gpu_hours"] if a["allocated_gpu_hours"] else 0.0
        return rows

    by_ns, by_job = rollup("namespace"), rollup("hpc_job")
    wasters = sorted((r for r in pod_rows if r["idle_held_gpu_hours"] > 0), key=lambda r: -r["idle_held_gpu_hours"])[: o.top]

    tot = {c: sum(r[f"{c}_gpu_hours"] for r in pod_rows) for c in ("allocated", "busy", "idle_held")}
    energy_kwh = sum(r["energy_kwh"] for r in pod_rows)
    cost = sum(r["cost_usd"] or 0.0 for r in pod_rows) if priced else None
    hours = o.range_s / 3600.0
    src = {"busy": f"{lay.busy[0][0]} (PromQL, step {o.step_s} s)", "price": price_src}
    terms = [
        Term("allocated_gpu_hours", tot["allocated"], "GPU·h", "Σ owners Σ steps held × step × share",
             {"range_h": hours, "step_s": o.step_s, "owners": len(pod_rows)},
             {"share": "MIG slices / SKU slices (catalog mig_max_instances) ÷ owners of a shared device at that step"}),
        Term("busy_gpu_hours", tot["busy"], "GPU·h", "Σ owners Σ steps busy_ratio × step × share", {"step_s": o.step_s}, src),
        Term("idle_held_gpu_hours", tot["idle_held"], "GPU·h", f"Σ owners Σ steps with busy < {o.idle_ratio:g} × step × share",
             {"idle_ratio": o.idle_ratio}, src),
        Term("stranded_gpu_hours", stranded, "GPU·h", f"Σ unowned steps with busy < {o.idle_ratio:g} and framebuffer ≥ {o.held_mib:g} MiB × step × share",
             {"held_mib": o.held_mib}, {}),
        Term("unallocated_gpu_hours", unalloc, "GPU·h", "Σ steps with no pod and no job × step × share", {}, {}),
        Term("energy_kwh", energy_kwh, "kWh", "Σ owners Σ steps rate(energy[5m]) × step × share / 3.6e6",
             {"fleet_total_kwh": energy_total_j / 3.6e6},
             {"energy": f"{lay.energy[0][0]}" if lay.energy else "not exported (DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION)"}),
    ]
    if cost is not None:
        terms.append(Term("cost_usd", cost, "USD", "Σ allocated_gpu_hours(model) × price_per_gpu_hour(model)",
                          {"allocated_gpu_hours": tot["allocated"]}, {"price_per_gpu_hour": price_src}))
    single_price = next(iter(set(prices.values()))) if priced and len(set(prices.values())) == 1 else None

    r = Result(f"GPU chargeback over {hours:g} h: {len(by_ns)} namespaces, {sum(1 for p in pod_rows if p['pod'])} pods, {len(by_job)} jobs")
    r.terms = terms
    r.facts = {
        "status": "ok",
        "prometheus": prom.url,
        "range_s": quantity(o.range_s, "s"),
        "step_s": quantity(o.step_s, "s"),
        "end": end,
        "idle_ratio": o.idle_ratio,
        "price_per_gpu_hour": quantity(single_price, "USD/GPU·h") if single_price is not None else None,
        "price_source": price_src,
        "prices_by_model": {m: quantity(p, "USD/GPU·h") for m, p in sorted(prices.items())},
        "allocated_gpu_hours": quantity(tot["allocated"], "GPU·h"),
        "busy_gpu_hours": quantity(tot["busy"], "GPU·h"),
        "idle_held_gpu_hours": quantity(tot["idle_held"], "GPU·h"),
        "stranded_gpu_hours": quantity(stranded, "GPU·h"),
        "unallocated_gpu_hours": quantity(unalloc, "GPU·h"),
        "energy_kwh": quantity(energy_kwh, "kWh"),
        "fleet_energy_kwh": quantity(energy_total_j / 3.6e6, "kWh"),
        "cost_usd": quantity(cost, "USD") if cost is not None else None,
        "by_namespace": by_ns,
        "by_pod": pod_rows,
        "by_job": by_job,
        "top_wasters": wasters,
        "owner_labels": list(lay.owner) + ["hpc_job"],
        "queries": prom.log.count,
    }
    r.assumptions.append(f"price: {price_src}")
    r.assumptions.append(f"busy = {lay.busy[0][0]}; idle below {o.idle_ratio:g}; a shared GPU's hours and energy split evenly between its owners")
    if not priced:
        r.warnings.append("no price for every GPU model: dollars left out (" + price_src + ")")
    if not lay.energy:
        r.warnings.append("energy counter DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION not exported: kWh are 0")
    if not pod_rows:
        r.warnings.append("no series carry pod or hpc_job labels: enable attribution (aiinfra exporter --kubernetes / --hpc-job-dir)")
    return r


def to_csv(r: Result) -> str:
    """One row per namespace/pod/job, for finance: hours, kWh, USD and the price and its source on every row."""
    f = r.facts
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["namespace", "pod", "hpc_job", "allocated_gpu_hours", "busy_gpu_hours", "idle_held_gpu_hours", "energy_kwh",
                "cost_usd", "waste_usd", "range_hours", "price_source"])
    hours = f["range_s"]["value"] / 3600.0
    for row in f.get("by_pod", []):
        w.writerow([row["namespace"], row["pod"], row["hpc_job"], f"{row['allocated_gpu_hours']:.4f}", f"{row['busy_gpu_hours']:.4f}",
                    f"{row['idle_held_gpu_hours']:.4f}", f"{row['energy_kwh']:.4f}",
                    "" if row["cost_usd"] is None else f"{row['cost_usd']:.2f}", "" if row["waste_usd"] is None else f"{row['waste_usd']:.2f}",
                    f"{hours:g}", f.get("price_source", "")])
    return buf.getvalue()

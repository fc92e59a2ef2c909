"""Fleet report from a Prometheus that scrapes dcgm-exporter (or `aiinfra exporter`): every number is PromQL.

`analyze(prom, AnalysisOptions(range_s=86400))` sends about twenty requests, each an aggregate
that Prometheus computes over the whole window (`avg_over_time`, `increase`, subqueries), and
gets back one row per GPU, MIG instance or node — never raw samples. That is what lets the same
code serve one node or a Thanos/Mimir fleet of thousands of GPUs.

Robustness (telemetry reference §1, §3):
- metric spellings are discovered first (`/api/v1/label/__name__/values`), so queries name only
  what the server has, across naming generations, each scaled to one unit;
- `Hostname`/`hostname`/`instance` → `host`, `uuid` → `UUID`, and the workload pod comes from
  `exported_pod` when the scrape renamed it (honorLabels: false), else `pod`/`pod_name`;
- MIG: busy = PROF engine activity (GPU_UTIL is absent on instances); device-wide fields
  (throttling, ECC, power) are deduplicated by physical GPU (`max by (host, UUID)`); idle
  GPU-hours of an instance count its share of slices (3g of 7 → 3/7 of a GPU).

GPUs without work (busy below the idle ratio on average; the same words as `aiinfra chargeback`):
- **idle but held** (`idle_held`): a pod or an HPC job holds it (an owner label) and it does no work;
- **stranded**: no pod or job holds it, yet framebuffer at or above `held_mib` is in use, so the
  scheduler offers it to nobody and nobody works on it (a process outside the scheduler, a leak);
- **idle**: no owner and no memory held: free capacity doing nothing.
Their GPU-hours are the window's subquery steps at which the series reported and was below the idle
ratio, × step × the MIG share: never more than the time the GPU reported.

A window with no GPU series is reported as "no data", never as a healthy fleet; a field that is
not exported is reported as "not collected", never as zero errors.

Lost and unmeasured GPUs (issue 15):
- the inventory is every GPU / MIG instance with a series in the window (the series index, no
  samples read); a physical GPU with no sample at the end is "stopped reporting", and with
  `aiinfra_gpu_lost` = 1 or XID 79 it is lost too; each is listed with its last sample's time, and a
  node whose GPU count fell is a finding;
- an entity with neither PROF activity nor GPU_UTIL (an NVML-only A100 MIG instance) is "activity
  unknown", never idle.

Speed: every subquery steps at the data's own scrape interval or coarser; per-node and per-model
averages come from the per-GPU ones; range queries group by the exporter's label names (no
relabelling at every step); the below-idle share and the XID history are read only for the GPUs
that need them, in a second round.
"""

from __future__ import annotations

import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiinfra.catalog.loader import default_catalog
from aiinfra.catalog.xid import xid_catalog
from aiinfra.errors import AiinfraError
from aiinfra.explain import Result, Term
from aiinfra.explain import quantity as as_quantity
from aiinfra.fleet.prom import Prometheus, Series, check_end, check_held_mib, check_price, even_step, subquery_range
from aiinfra.fleet.promql import ALIASES, CLOCK_BITS, MiB, bit
from aiinfra.fleet.promql import DEVICE as RAW_DEVICE

ENTITY = ("host", "gpu", "UUID", "GPU_I_ID", "GPU_I_PROFILE", "modelName", "pod", "namespace", "hpc_job")
DEVICE = ("host", "gpu", "UUID", "modelName")
IDENT = ("host", "gpu", "UUID", "GPU_I_ID", "GPU_I_PROFILE", "modelName")  # one GPU or MIG instance, whoever runs on it
PHYSICAL = ("host", "gpu", "UUID")  # one physical GPU
# Families that say "this GPU is here", in order of preference: temperature is in every default
# counter set and repeats per MIG instance; activity last, as it is absent where nothing measures it.
INVENTORY = ("temp", "fb_used", "power", "gr_active", "gpu_util")
LOST_XIDS = {79: "XID 79: fell off the bus"}
NO_WORK = {"idle_held": "idle but held", "stranded": "stranded", "idle": "idle"}  # states without work, and their words
VIOLATIONS = {"thermal": "thermal_violation_ns", "power": "power_violation_ns", "board_limit": "board_limit_violation_ns",
              "sync_boost": "sync_boost_violation_ns", "reliability": "reliability_violation_ns"}
HEALTH_FIELDS = {"ecc_dbe_new": ("ecc_dbe_vol", "increase"), "ecc_sbe_new": ("ecc_sbe_vol", "increase"),
                 "ecc_dbe_lifetime": ("ecc_dbe_agg", "last"), "row_remap_failure": ("row_remap_failure", "max"),
                 "row_remap_pending": ("row_remap_pending", "max"), "remapped_rows_unc_new": ("remapped_rows_unc", "increase"),
                 "nvlink_errors_new": ("nvlink_errors", "increase"), "pcie_replays_new": ("pcie_replay", "increase")}


@dataclass
class AnalysisOptions:
    range_s: float = 86400.0
    end: float | None = None
    idle_ratio: float = 0.05  # below this busy ratio a GPU does no useful work
    held_mib: float = 1024.0  # framebuffer above this means a process holds the GPU
    oom_ratio: float = 0.90
    oom_horizon_s: float = 86400.0
    price_per_gpu_hour: float | None = None
    heatmap_columns: int = 48
    parallel: int = 4  # queries in flight at once

    def __post_init__(self) -> None:
        if not 0 < self.idle_ratio < 1:
            raise AiinfraError(f"idle ratio must be between 0 and 1, got {self.idle_ratio}")
        check_price(self.price_per_gpu_hour)
        check_held_mib(self.held_mib)
        check_end(self.end)

    @property
    def step_s(self) -> int:
        """Subquery resolution: fine enough to see short episodes, bounded so 24 h stays cheap."""
        return int(min(300, max(1, round(self.range_s / 720))))


@dataclass
class Discovery:
    present: set[str]
    pod_source: str  # label that carries the workload pod
    labels: set[str] = field(default_factory=set)
    factors: dict[str, float] = field(default_factory=dict)  # per-server scale overrides (see _discover)
    scrape_s: float = 0.0  # the data's sample interval, measured (0 = unknown)

    def has(self, quantity: str) -> bool:
        return any(n in self.present for n, _ in ALIASES[quantity])


# -- PromQL helpers ------------------------------------------------------------------------------


ACTIVITY_SOURCE = {"gr_active": "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gpu_util": "DCGM_FI_DEV_GPU_UTIL"}


def norm_labels(labels: dict[str, str], pod_source: str = "pod") -> dict[str, str]:
    """Python twin of `Q.norm`: host / UUID / pod / namespace from whichever spelling a series carries."""
    out = dict(labels)
    inst = re.match(r"([^:]+)", labels.get("instance", ""))
    host = labels.get("hostname") or labels.get("Hostname") or (inst.group(1) if inst else "")
    if host:
        out["host"] = host
    if labels.get("uuid"):
        out["UUID"] = labels["uuid"]
    if pod_source != "pod":
        ns = {"exported_pod": "exported_namespace", "pod_name": "pod_namespace"}[pod_source]
        out["pod"] = labels.get(pod_source, "")
        out["namespace"] = labels.get(ns, "")
    return out


class Q:
    """Builds the analysis queries for one server (its metric spellings and label layout)."""

    def __init__(self, d: Discovery, o: AnalysisOptions):
        self.d, self.o = d, o
        self.R = f"{int(round(o.range_s))}s"
        # A subquery finer than the data only re-reads the same samples: never step below the scrape interval.
        self.step = even_step(o.range_s, max(o.step_s, round(d.scrape_s)))
        self.S = f"{self.step}s"
        self.RS = subquery_range(o.range_s)  # the steps of (end - range, end], each step once

    def norm(self, e: str) -> str:
        """Copy the label spellings into host / UUID / pod / namespace."""
        e = f'label_replace({e}, "host", "$1", "instance", "([^:]+).*")'
        e = f'label_replace({e}, "host", "$1", "Hostname", "(.+)")'
        e = f'label_replace({e}, "host", "$1", "hostname", "(.+)")'
        e = f'label_replace({e}, "UUID", "$1", "uuid", "(.+)")'
        src = self.d.pod_source
        if src != "pod":
            ns = {"exported_pod": "exported_namespace", "pod_name": "pod_namespace"}[src]
            e = f'label_replace({e}, "pod", "$1", "{src}", "(.*)")'  # "(.*)": an empty source clears the target's pod
            e = f'label_replace({e}, "namespace", "$1", "{ns}", "(.*)")'
        return e

    def alt(self, quantity: str, fn, scaled: bool = True, selector: str = "") -> str:
        """fn(selector, factor) over the present spellings, or-combined."""
        parts = []
        for name, factor in ALIASES[quantity]:
            if name not in self.d.present:
                continue
            factor = self.d.factors.get(name, factor)
            sel = f"{name}{{{selector}}}" if selector else name
            e = fn(sel, factor)
            if scaled and factor != 1.0:
                e = f"({e}) * {factor:.10g}"
            parts.append(f"({e})")
        return " or ".join(parts)

    def agg(self, quantity: str, fn, labels=ENTITY, how: str = "max", scaled: bool = True, selector: str = "") -> str:
        inner = self.alt(quantity, fn, scaled, selector)
        return f"{how} by ({', '.join(labels)}) ({self.norm(inner)})" if inner else ""

    def busy(self, fn, scaled: bool = True, tag: bool = False, selector: str = "") -> str:
        """PROF engine activity where present (MIG-capable), else GPU_UTIL; per entity.

        `tag` adds an `activity` label saying which one answered (applied to the aggregate, so cheap)."""
        parts = []
        for q in ("gr_active", "gpu_util"):
            if self.d.has(q):
                e = self.agg(q, fn, scaled=scaled, selector=selector)
                if tag:
                    e = f'label_replace({e}, "activity", "{ACTIVITY_SOURCE[q]}", "", "")'
                parts.append(e)
        # `or` keeps the left side where both exist; the tag must not make the two sides differ.
        return (" or ignoring (activity) " if tag else " or ").join(f"({p})" for p in parts)


def _discover(prom: Prometheus, start: float, end: float) -> Discovery:
    match = ['{__name__=~"DCGM_.*|dcgm_.*|aiinfra_gpu_lost"}']
    present = set(prom.label_values("__name__", match=match, start=start, end=end))
    labels: set[str] = set(prom.labels(match=match, start=start, end=end)) if present else set()
    pod_source = "exported_pod" if "exported_pod" in labels else ("pod_name" if "pod_name" in labels and "pod" not in labels else "pod")
    d = Discovery(present, pod_source, labels)
    # DCGM 4.6 renamed GPU_UTIL to GPU_UTIL_RATIO but still fills it with 0-100; exporter 4.9 sends a
    # 0-1 ratio under the same name (dcgm_fields.yaml `percent_ambiguous`). Values above 1 settle it.
    for name, _ in ALIASES["gpu_util"]:
        if name in present and name.endswith("_RATIO"):
            top = prom.query(f"max(max_over_time({name}[{int(end - start)}s]))", end)
            if top and top[0].value > 1.0:
                d.factors[name] = 0.01
    return d


def _scrape_interval(prom: Prometheus, d: Discovery, inventory: dict[tuple, dict[str, str]], end: float) -> float:
    """Seconds between stored samples: the median gap of one GPU's raw samples over the last 15
    minutes of the window (one series, a few dozen samples). 0 when it cannot be told."""
    # Temperature first: every GPU of every generation reports it, while PROF activity is absent on an
    # NVML-only Ampere/Ada host, so the GPU picked below might have no activity series at all.
    name = next((n for q in ("temp", "gpu_util", "gr_active") for n, _ in ALIASES[q] if n in d.present), None)
    uuids = list(dict.fromkeys(i["UUID"] for i in inventory.values() if i.get("UUID")))
    label = "UUID" if "UUID" in d.labels else "uuid"
    if name is None or not uuids:
        return 0.0
    # A GPU that was lost (XID 79) stays in the inventory without fresh samples: try a few GPUs.
    for uuid in uuids[:3]:
        gaps: list[float] = []
        for ser in prom.raw(f'{name}{{{label}="{uuid}"}}', "15m", end):
            gaps += [b - a for a, b in zip(ser.times, ser.times[1:])]
        if gaps:
            return sorted(gaps)[len(gaps) // 2]
    return 0.0


def _inventory_names(d: Discovery) -> list[str]:
    for q in INVENTORY:
        names = [n for n, _ in ALIASES[q] if n in d.present]
        if names:
            return names
    return []


def _inventory(prom: Prometheus, d: Discovery, start: float, end: float) -> dict[tuple, dict[str, str]]:
    """Every GPU / MIG instance with a series in the window, from the series index (no samples read)."""
    names = _inventory_names(d)
    if not names:
        return {}
    out: dict[tuple, dict[str, str]] = {}
    for labels in prom.series(names, start, end):
        n = norm_labels(labels, d.pod_source)
        out.setdefault(_key(n, IDENT), {k: n[k] for k in IDENT if n.get(k)})
    return out


def _reporting_now(prom: Prometheus, d: Discovery, end: float) -> set[tuple]:
    """Physical GPUs with a sample in the last 5 minutes of the window (Prometheus' lookback)."""
    names = _inventory_names(d)
    if not names:
        return set()
    e = " or ".join(f"group by ({', '.join(RAW_DEVICE)}) ({n})" for n in names)
    return {_key(norm_labels(s.labels), PHYSICAL) for s in prom.query(e, end)}


def _last_seen(prom: Prometheus, d: Discovery, gone: list[tuple], step: int, start: float, end: float) -> dict[tuple, float]:
    """Time of the last sample of each physical GPU that stopped reporting, from its raw samples
    (those few GPUs only). Not a subquery: on scraped data a vanished series ends with a staleness
    marker, and a subquery's steps would land after it and find nothing."""
    names = _inventory_names(d)
    uuids = sorted({k[2] for k in gone if k[2]})
    if not names or not uuids:
        return {}
    regex = "|".join(re.escape(u) for u in uuids).replace("\\", "\\\\")
    out: dict[tuple, float] = {}
    for n in names:
        for label in ("UUID", "uuid"):
            if label in d.labels:
                for ser in prom.raw(f'{n}{{{label}=~"{regex}"}}', f"{int(end - start)}s", end):
                    if ser.times:
                        k = _key(norm_labels(ser.labels), PHYSICAL)
                        out[k] = max(out.get(k, 0.0), max(ser.times))
    return out


def _nvml_lost(prom: Prometheus, q: Q, end: float) -> set[tuple]:
    """Physical GPUs whose exporter said GPU_IS_LOST (`aiinfra_gpu_lost` = 1) during the window."""
    if "aiinfra_gpu_lost" not in q.d.present:
        return set()
    e = f"max by ({', '.join(RAW_DEVICE)}) (max_over_time(aiinfra_gpu_lost[{q.R}])) > 0"
    return {_key(norm_labels(s.labels), PHYSICAL) for s in prom.query(e, end)}


def _key(labels: dict[str, str], keys=ENTITY) -> tuple[str, ...]:
    return tuple(labels.get(k, "") for k in keys)


def _rows(samples, keys=ENTITY) -> dict[tuple, float]:
    return {_key(s.labels, keys): s.value for s in samples}


# -- catalog lookups -----------------------------------------------------------------------------


def sku_for_model_name(model_name: str) -> str | None:
    """Catalog GPU key for an NVML modelName ('NVIDIA H100 80GB HBM3' → 'h100-sxm'), or None."""
    cat = default_catalog()
    table = cat.table("gpus")
    for key, e in table.items():
        if model_name in [e.get("nvml_name"), *(e.get("nvml_names") or [])]:
            return key
    try:
        return cat.resolve("gpus", model_name.replace("NVIDIA ", ""))
    except AiinfraError:
        pass
    tokens = set(re.split(r"[\s\-_]+", model_name.lower())) - {"nvidia", ""}
    cands = sorted(k for k in table if k.split("-")[0] in tokens)  # family token: h100, a100, l40s …
    if not cands:
        return None
    for form in ("pcie", "nvl"):
        if form in tokens:
            picked = [k for k in cands if form in k]
            return picked[0] if picked else cands[0]
    mem = next((t for t in tokens if re.match(r"^\d+gb$", t)), None)
    sxm = [k for k in cands if "sxm" in k] or cands
    if mem:
        with_mem = [k for k in sxm if mem in k]
        if with_mem:
            return with_mem[0]
    return sorted(sxm, key=len)[0]


def _mig_share(profile: str, model_name: str) -> float:
    return mig_share(profile, model_name)


def mig_share(profile: str, model_name: str) -> float:
    """Fraction of a GPU a MIG instance holds: slices of the profile over the SKU's slice count."""
    if not profile:
        return 1.0
    m = re.match(r"(\d+)g\.", profile)
    if not m:
        return 1.0
    slices = 7
    sku = sku_for_model_name(model_name)
    if sku:
        slices = int(default_catalog().table("gpus")[sku].get("mig_max_instances") or 7)
    return min(1.0, int(m.group(1)) / slices)


def price_per_gpu_hour(sku: str | None) -> tuple[float, str] | None:
    """(USD per GPU-hour, source) for a GPU key from the `prices` catalog, or None.

    Cloud offers (`type: cloud`, `on_demand` per instance-hour unless `unit: gpu-hour`) are turned
    into $/GPU-hour and the median offer is used: idle cost is an opportunity cost, and the median
    is neither the cheapest neocloud nor the dearest hyperscaler. An entry with a plain
    `usd_per_gpu_hour` is used as given.
    """
    if not sku:
        return None
    table = default_catalog().table("prices")
    offers: list[tuple[float, str, dict]] = []
    for key, e in sorted(table.items()):
        if e.get("gpu") != sku:
            continue
        if isinstance(e.get("usd_per_gpu_hour"), int | float):
            offers.append((float(e["usd_per_gpu_hour"]), key, e))
        elif e.get("type") == "cloud" and isinstance(e.get("on_demand"), int | float):
            per_gpu = e.get("unit") == "gpu-hour"
            gpus = e.get("gpus") or 1
            offers.append((float(e["on_demand"]) if per_gpu else float(e["on_demand"]) / gpus, key, e))
    if not offers:
        return None
    offers.sort(key=lambda o: o[0])
    price, key, e = offers[len(offers) // 2]
    lo, hi = offers[0][0], offers[-1][0]
    spread = f"; median of {len(offers)} on-demand offers, {lo:.2f}–{hi:.2f} USD/GPU-h" if len(offers) > 1 else ""
    return price, f"prices catalog '{key}' ({e.get('source', 'no source')}, observed {e.get('observed', '?')}){spread}"


def prices_by_model(models, given: float | None = None) -> tuple[dict[str, float], str, list[str]]:
    """USD per GPU-hour for each NVML modelName, as analyze and chargeback both price GPU-hours.

    The user's price (--price-per-gpu-hour) applies to every model; otherwise each model's SKU is
    looked up in the dated prices catalog (`price_per_gpu_hour`). Returns the prices, a source text
    that names each price's origin, and the models without a price (with their catalog key), only those.
    """
    models = sorted(set(models))
    if given is not None:
        return {m: float(given) for m in models}, f"{given:g} USD/GPU-h given by the user (--price-per-gpu-hour)", []
    prices: dict[str, float] = {}
    sources, missing = [], []
    for m in models:
        sku = sku_for_model_name(m) if m else None
        found = price_per_gpu_hour(sku)
        if found is None:
            missing.append(f"{m} ({sku})" if m and sku else m or "GPUs without a modelName label")
            continue
        prices[m] = found[0]
        sources.append(f"{m}: {found[0]:.2f} USD/GPU-h from {found[1]}")
    src = "; ".join(sources)
    if missing:
        src += ("; " if src else "") + "no catalog price for " + ", ".join(missing) + " (give --price-per-gpu-hour)"
    return prices, src, missing


# -- the analysis ---------------------------------------------------------------------------------


def analyze(prom: Prometheus, o: AnalysisOptions) -> Result:
    end = o.end if o.end is not None else time.time()
    start = end - o.range_s
    d = _discover(prom, start, end)
    inventory = _inventory(prom, d, start, end)
    if not inventory:
        return _no_data(prom, o, start, end, d)
    d.scrape_s = _scrape_interval(prom, d, inventory, end)
    q = Q(d, o)
    R, thr = q.R, o.idle_ratio
    trend = f"{min(int(o.range_s), 3600)}s"
    now_w = f"{min(int(o.range_s), 600)}s"

    def rows(expr: str):
        return lambda: _rows(prom.query(expr, end)) if expr else {}

    jobs: dict[str, Any] = {
        "now": lambda: _reporting_now(prom, d, end),
        "nvml_lost": lambda: _nvml_lost(prom, q, end),
        "throttle": lambda: _throttling(prom, q, end),
        "xids": lambda: _xids(prom, q, start, end),
        "health": lambda: _health(prom, q, end),
    }
    if d.has("gr_active") or d.has("gpu_util"):
        jobs["busy_avg"] = lambda: _activity_rows(prom.query(q.busy(lambda s, f: f"avg_over_time({s}[{R}])", tag=True), end))
    if d.has("fb_used") and d.has("fb_free"):
        jobs["fb_used_avg"] = rows(q.agg("fb_used", lambda s, f: f"avg_over_time({s}[{R}])"))
        # "Now" is the last sample of the last 10 minutes: a GPU silent for longer is reported lost instead.
        jobs["fb_used_now"] = rows(q.agg("fb_used", lambda s, f: f"last_over_time({s}[{now_w}])"))
        jobs["fb_free_now"] = rows(q.agg("fb_free", lambda s, f: f"last_over_time({s}[{now_w}])"))
        jobs["fb_deriv"] = rows(q.agg("fb_used", lambda s, f: f"deriv({s}[{trend}])"))
    # The queries are independent: send them together and let Prometheus run them in parallel
    # (it evaluates up to --query.max-concurrency queries at once, 20 by default).
    with ThreadPoolExecutor(max_workers=o.parallel) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        res = {name: f.result() for name, f in futures.items()}
        # Second round, narrowed by the first: the share of time below the idle ratio (a subquery,
        # the costliest read) only for the GPUs whose average is below it, and the node heatmap
        # only over the activity fields that answered.
        busy_avg, sources = res.get("busy_avg", ({}, {}))
        low = sorted({k[2] for k, v in busy_avg.items() if v < thr and k[2]})
        answered = set(sources.values())
        second = {"heat": pool.submit(_heat, prom, q, start, end, answered)} if busy_avg else {}
        if low:
            second["low_steps"] = pool.submit(_low_steps, prom, q, low, end)
        res.update({name: f.result() for name, f in second.items()})
    fb: dict[str, dict] = {}
    if "fb_used_now" in res:
        used, free, slope = res["fb_used_now"], res["fb_free_now"], res["fb_deriv"]
        fb["used_avg"] = res["fb_used_avg"]
        fb["total"] = {k: used[k] + free[k] for k in used if k in free}
        fb["ratio"] = {k: used[k] / t for k, t in fb["total"].items() if t > 0}
        fb["ttf"] = {k: free[k] / slope[k] for k in fb["total"] if slope.get(k, 0) > 0}
    lost = _lost(prom, d, q, inventory, res["now"], res["nvml_lost"], res["xids"], start, end)
    return _report(prom, o, d, q.step, start, end, inventory, busy_avg, sources, res.get("low_steps", {}),
                   fb, res.get("heat", []), res["throttle"], res["xids"], res["health"], lost, res["now"])


def _activity_rows(samples) -> tuple[dict[tuple, float], dict[tuple, str]]:
    return {_key(s.labels): s.value for s in samples}, {_key(s.labels): s.labels.get("activity", "") for s in samples}


def _low_steps(prom: Prometheus, q: Q, uuids: list[str], end: float) -> dict[str, dict[tuple, float]]:
    """Per listed GPU/MIG instance series (by UUID): the subquery steps of the window at which it
    reported ("reported") and those with busy below the idle ratio ("low"). Hours are steps × step:
    a series counts only the time it was there (a GPU that joined halfway, the two series of a GPU
    whose pod moved), never the whole window."""
    regex = "|".join(re.escape(u) for u in uuids).replace("\\", "\\\\")
    RS, S, thr = q.RS, q.S, q.o.idle_ratio
    out: dict[str, dict[tuple, float]] = {}
    for name, fn in (("low", lambda s, f: f"sum_over_time((({s}) * {f:.10g} < bool {thr:g})[{RS}:{S}])"),
                     ("reported", lambda s, f: f"count_over_time(({s})[{RS}:{S}])")):
        parts = [q.busy(fn, scaled=False, selector=f'{lab}=~"{regex}"') for lab in ("UUID", "uuid") if lab in q.d.labels]
        out[name] = _rows(prom.query(" or ".join(f"({x})" for x in parts if x), end))
    return out


def _heat(prom: Prometheus, q: Q, start: float, end: float, used: set[str] | None = None) -> list[Series]:
    """Busy per node over time. Grouped by the raw host labels inside Prometheus (no per-step
    relabelling), merged per normalised host here; only the activity fields that answered (`used`)."""
    o = q.o
    step = max(q.step, o.range_s / o.heatmap_columns)
    # No per-entity grouping inside: one series is one GPU/instance, and `or` matches on labels
    # without the metric name, so an entity with both fields counts once (PROF first).
    parts = [q.alt(x, lambda s, f: s) for x in ("gr_active", "gpu_util")
             if q.d.has(x) and (used is None or ACTIVITY_SOURCE[x] in used)]
    inner = " or ".join(f"({p})" for p in parts if p)
    got = prom.query_range(f"avg by (instance, Hostname, hostname) ({inner})", start, end, step)
    merged: dict[str, dict[float, list[float]]] = {}
    for ser in got:
        slot = merged.setdefault(norm_labels(ser.labels).get("host", ""), {})
        for t, v in zip(ser.times, ser.values):
            slot.setdefault(t, []).append(v)
    out = []
    for host in sorted(merged):
        times = sorted(merged[host])
        out.append(Series({"host": host}, times, [sum(merged[host][t]) / len(merged[host][t]) for t in times]))
    return out


def _lost(prom: Prometheus, d: Discovery, q: Q, inventory: dict[tuple, dict], now: set[tuple], nvml_lost: set[tuple],
          xids: dict[str, Any], start: float, end: float) -> list[dict[str, Any]]:
    """Physical GPUs that stopped reporting, that NVML called lost, or that logged XID 79, with when each was last seen."""
    physical: dict[tuple, dict[str, str]] = {}
    for ident in inventory.values():
        physical.setdefault(_key(ident, PHYSICAL), ident)
    why: dict[tuple, list[str]] = {}
    for k in physical:
        if k not in now:
            why.setdefault(k, []).append("stopped reporting")
    for k in nvml_lost:
        why.setdefault(k, []).append("NVML: GPU is lost")
    for (dk, code), _ev in xids["events"].items():
        if code in LOST_XIDS:
            why.setdefault(_key(dict(zip(DEVICE, dk)), PHYSICAL), []).append(LOST_XIDS[code])
    gone = [k for k in why if k not in now]
    seen = _last_seen(prom, d, gone, q.step, start, end) if gone else {}
    out = []
    for k, reasons in sorted(why.items()):
        ident = physical.get(k, dict(zip(PHYSICAL, k)))
        last = seen.get(k) if k not in now else end
        out.append({**{n: ident[n] for n in ("host", "gpu", "UUID", "modelName") if ident.get(n)},
                    "reasons": reasons, "reporting": k in now,
                    "last_seen": last, "last_seen_ago_s": None if last is None else max(0.0, end - last),
                    "mig_instances": sum(1 for i in inventory.values() if _key(i, PHYSICAL) == k and i.get("GPU_I_ID"))})
    return out


def _throttling(prom: Prometheus, q: Q, end: float) -> dict[str, Any]:
    R, S, rs = q.R, q.S, q.o.range_s
    parts = []
    for reason, quantity in VIOLATIONS.items():
        e = q.agg(quantity, lambda s, f: f"increase({s}[{R}])", labels=DEVICE)
        if e:
            parts.append(f'label_replace(({e}) / 1e9 / {rs:g}, "reason", "{reason}", "", "")')
    source = "violation counters (ns)"
    if not parts and q.d.has("clock_reasons"):
        source = "clock-event reason bitmask"
        for reason, value in CLOCK_BITS.items():
            e = q.agg("clock_reasons", lambda s, f, v=value: f"avg_over_time({bit(s, v)}[{R}:{S}])", labels=DEVICE)
            parts.append(f'label_replace({e}, "reason", "{reason}", "", "")')
    if not parts:
        return {"collected": False, "note": "no throttling fields exported (enable DCGM_FI_DEV_*_VIOLATION or DCGM_FI_DEV_CLOCKS_EVENT_REASONS)"}
    rows = prom.query(" or ".join(parts), end)
    per_gpu: dict[tuple, dict[str, float]] = {}
    for s in rows:
        per_gpu.setdefault(_key(s.labels, DEVICE), {})[s.labels["reason"]] = min(1.0, max(0.0, s.value))
    fleet = {}
    for reason in {s.labels["reason"] for s in rows}:
        vals = [r.get(reason, 0.0) for r in per_gpu.values()]
        fleet[reason] = sum(vals) / len(vals) if vals else 0.0
    return {"collected": True, "source": source, "fleet_share": fleet, "per_gpu": per_gpu}


def _xids(prom: Prometheus, q: Q, start: float, end: float) -> dict[str, Any]:
    R = q.R
    out: dict[str, Any] = {"collected": q.d.has("xid_last") or q.d.has("xid_count"), "events": {}}
    if q.d.has("xid_last"):
        # Codes seen during the window: the last-code gauge is sticky, so sample it over the range
        # (only GPUs with a nonzero code come back) rather than comparing with `> 0` at one instant.
        # Grouped by the raw label names: label_replace in a range query would run at every step.
        # Two steps: an instant max_over_time finds the few GPUs that showed any code; only their series
        # are then sampled over the range (a range query over every GPU would read the whole fleet per step).
        flagged = prom.query(f"max by ({', '.join(RAW_DEVICE)}) ({q.alt('xid_last', lambda s, f: f'max_over_time({s}[{R}])')}) > 0", end)
        uuids = sorted({norm_labels(s.labels).get("UUID", "") for s in flagged} - {""})
        regex = "|".join(re.escape(u) for u in uuids).replace("\\", "\\\\")
        parts = [q.alt("xid_last", lambda s, f: s, selector=f'{lab}=~"{regex}"') for lab in ("UUID", "uuid") if lab in q.d.labels]
        expr = f"max by ({', '.join(RAW_DEVICE)}) ({' or '.join(f'({x})' for x in parts)}) > 0"
        step = max(q.step, q.o.range_s / 240)
        for ser in (prom.query_range(expr, start, end, step) if uuids and parts else []):
            k = _key(norm_labels(ser.labels), DEVICE)
            for code in {int(v) for v in ser.values if v > 0}:
                out["events"].setdefault((k, code), {"windows": 0, "sticky": False})
            if ser.values and ser.times[-1] >= end - 1.5 * step:  # the code still shows at the end
                out["events"][(k, int(ser.values[-1]))]["sticky"] = True
    if q.d.has("xid_count"):
        has_code = 'xid!=""'
        # One look per window (5 min, or range/12 for short ranges): a burst counts once per window.
        look = f"{int(min(300, max(q.o.step_s, q.o.range_s / 12)))}s"
        e = f"count_over_time(({q.agg('xid_count', lambda s, f: s, labels=DEVICE + ('xid',), selector=has_code)} > 0)[{R}:{look}])"
        for s in prom.query(e, end):
            if not s.labels.get("xid", "").isdigit():
                continue
            k = (_key(s.labels, DEVICE), int(s.labels["xid"]))
            out["events"].setdefault(k, {"windows": 0, "sticky": False})["windows"] = int(s.value)
    return out


def _health(prom: Prometheus, q: Q, end: float) -> dict[str, Any]:
    R = q.R
    parts, collected = [], []
    fns = {"increase": lambda s, f: f"increase({s}[{R}])", "last": lambda s, f: f"last_over_time({s}[{R}])",
           "max": lambda s, f: f"max_over_time({s}[{R}])"}
    for name, (quantity, how) in HEALTH_FIELDS.items():
        e = q.agg(quantity, fns[how], labels=DEVICE, how="sum" if quantity == "nvlink_errors" else "max")
        if e:
            collected.append(name)
            parts.append(f'label_replace({e}, "field", "{name}", "", "")')
    per_gpu: dict[tuple, dict[str, float]] = {}
    if parts:
        for s in prom.query(" or ".join(parts), end):
            per_gpu.setdefault(_key(s.labels, DEVICE), {})[s.labels["field"]] = s.value
    missing = [n for n in HEALTH_FIELDS if n not in collected]
    return {"collected": collected, "not_collected": missing, "per_gpu": per_gpu}


def _no_data(prom: Prometheus, o: AnalysisOptions, start: float, end: float, d: Discovery) -> Result:
    r = Result("GPU fleet report: NO DATA")
    r.facts = {"status": "no_data", "prometheus": prom.url, "range_s": o.range_s, "start": start, "end": end,
               "queries": prom.log.count, "metric_names_found": sorted(d.present)}
    r.warnings.append(f"no GPU series (temperature, memory, power or activity) in the last {o.range_s:g} s at {prom.url}: "
                      "nothing can be said about this fleet (check the scrape job and the range)")
    return r


def _gpu_id(k: tuple) -> dict[str, str]:
    return {n: v for n, v in zip(ENTITY, k) if v}


def _report(prom, o, d, step, start, end, inventory, busy_avg, sources, low_steps, fb, heat, throttle, xids, health,
            lost, now) -> Result:
    hours = o.range_s / 3600.0
    step_h = step / 3600.0
    low_n, reported_n = low_steps.get("low", {}), low_steps.get("reported", {})
    held = o.held_mib * MiB
    lost_keys = {_key(row, PHYSICAL) for row in lost}
    shares: dict[tuple[str, str], float] = {}

    def mig_share(profile: str, model: str) -> float:  # one catalog lookup per (profile, model), not per GPU
        if (profile, model) not in shares:
            shares[(profile, model)] = _mig_share(profile, model)
        return shares[(profile, model)]

    gpus, idle, idle_held, stranded, unknown = [], [], [], [], []
    hours_by = {"idle": 0.0, "idle_held": 0.0, "stranded": 0.0}
    measured: set[tuple] = set()
    for k, avg in sorted(busy_avg.items()):
        ident = _gpu_id(k)
        measured.add(_key(ident, IDENT))
        share = mig_share(ident.get("GPU_I_PROFILE", ""), ident.get("modelName", ""))
        pod = ident.get("pod", "")
        used_avg = fb.get("used_avg", {}).get(k)
        low_h = low_n.get(k, 0.0) * step_h * share  # GPU-hours below the idle ratio, while it reported
        row = {**ident, "busy_avg": avg, "activity_source": sources.get(k, ""), "gpu_share": share,
               "fb_used_ratio": fb.get("ratio", {}).get(k), "fb_used_avg_bytes": used_avg}
        if avg < o.idle_ratio:
            n = reported_n.get(k, 0.0)
            row.update({"reported_gpu_hours": n * step_h * share, "low_activity_gpu_hours": low_h,
                        "low_activity_share": low_n.get(k, 0.0) / n if n else None})
        gpus.append(row)
        if _key(ident, PHYSICAL) in lost_keys:
            row["state"] = "lost"  # its time without work is a fault, not idle capacity
        elif avg < o.idle_ratio:
            job = ident.get("hpc_job", "")
            if pod or job:  # an owner holds it and does no work
                row["state"] = "idle_held"
                ns = ident.get("namespace", "")
                row["why"] = (f"pod {ns}/{pod}" if ns else f"pod {pod}") if pod else f"HPC job {job}"
                idle_held.append(row)
            elif used_avg is not None and used_avg >= held:  # nobody owns it, something holds its memory
                row["state"] = "stranded"
                row["why"] = f"{used_avg / MiB:,.0f} MiB held, no pod or job"
                stranded.append(row)
            else:
                row["state"] = "idle"
                idle.append(row)
            hours_by[row["state"]] += low_h
        else:
            row["state"] = "busy"
    for ik, ident in sorted(inventory.items()):
        if ik in measured:
            continue
        # No PROF activity and no GPU_UTIL: nothing says whether it works, so it is never called idle.
        row = {**ident, "busy_avg": None, "state": "lost" if _key(ident, PHYSICAL) in lost_keys else "activity unknown",
               "why": ("MIG instance: DCGM_FI_DEV_GPU_UTIL is not reported per instance and no DCGM_FI_PROF_GR_ENGINE_ACTIVE "
                       "is exported (profiling fields need DCGM; NVML's GPM exists only on Hopper and newer)")
               if ident.get("GPU_I_ID") else "neither DCGM_FI_PROF_GR_ENGINE_ACTIVE nor DCGM_FI_DEV_GPU_UTIL is exported for it",
               "gpu_share": mig_share(ident.get("GPU_I_PROFILE", ""), ident.get("modelName", ""))}
        gpus.append(row)
        if row["state"] == "activity unknown":
            unknown.append(row)
    counts = _gpu_counts(inventory, now)

    prices, price_src, unpriced = prices_by_model({g.get("modelName", "") for g in gpus}, o.price_per_gpu_hour)
    no_work = idle + idle_held + stranded
    idle_h, idle_held_h, stranded_h = hours_by["idle"], hours_by["idle_held"], hours_by["stranded"]
    wasted_models = {g.get("modelName", "") for g in no_work if g.get("low_activity_gpu_hours")}
    priced = not (wasted_models - set(prices))  # every model with hours to price has a price
    price = next(iter(set(prices.values()))) if prices and not unpriced and len(set(prices.values())) == 1 else None
    terms = [
        Term("idle_gpu_hours", idle_h, "GPU·h", "Σ low_activity_steps × step_s / 3600 × gpu_share over idle GPUs (no owner, no memory held)",
             {"step_s": step, "idle_ratio": o.idle_ratio, "gpus": len(idle)},
             {"low_activity_steps": f"PromQL sum_over_time((busy < bool {o.idle_ratio:g})[range - 1ms:step]) per GPU/MIG instance "
                                    "series: the steps of (end - range, end] at which it reported and was below the idle ratio"}),
        Term("idle_held_gpu_hours", idle_held_h, "GPU·h",
             "Σ low_activity_steps × step_s / 3600 × gpu_share over GPUs idle but held (a pod or HPC job owns them)",
             {"step_s": step, "idle_ratio": o.idle_ratio, "gpus": len(idle_held)},
             {"owner": f"label {d.pod_source} or hpc_job on the GPU's series"}),
        Term("stranded_gpu_hours", stranded_h, "GPU·h",
             f"Σ low_activity_steps × step_s / 3600 × gpu_share over stranded GPUs (no owner, framebuffer ≥ {o.held_mib:g} MiB)",
             {"step_s": step, "idle_ratio": o.idle_ratio, "held_mib": o.held_mib, "gpus": len(stranded)},
             {"gpu_share": "MIG profile slices / SKU slices (catalog mig_max_instances)"}),
    ]
    fleet_avg = sum(busy_avg.values()) / len(busy_avg) if busy_avg else None
    if fleet_avg is not None:
        terms.insert(0, Term("fleet_busy_ratio", fleet_avg, "ratio", "mean over GPUs/MIG instances of avg_over_time(busy[range])",
                             {"gpus": len(busy_avg), "range_s": o.range_s},
                             {"busy": "DCGM_FI_PROF_GR_ENGINE_ACTIVE where exported (works per MIG instance), else DCGM_FI_DEV_GPU_UTIL / 100"}))
    if priced:
        cost = sum((g.get("low_activity_gpu_hours") or 0.0) * prices.get(g.get("modelName", ""), 0.0) for g in no_work)
        terms.append(Term("idle_cost_usd", cost, "USD",
                          "Σ (idle + idle-but-held + stranded GPU-hours of a model) × price_per_gpu_hour(model)",
                          {"idle_gpu_hours": idle_h, "idle_held_gpu_hours": idle_held_h, "stranded_gpu_hours": stranded_h,
                           **({"price_per_gpu_hour": price} if price is not None else {"models_priced": len(prices)})},
                          {"price_per_gpu_hour": price_src}))
        terms.append(Term("idle_cost_usd_per_day", cost * 24 / hours, "USD/day",
                          "idle_cost_usd × 24 / range_h", {"range_h": hours}, {"price_per_gpu_hour": price_src}))

    oom = []
    for k, ratio in sorted(fb.get("ratio", {}).items(), key=lambda kv: -kv[1]):
        ttf = fb.get("ttf", {}).get(k)
        if ratio >= o.oom_ratio or (ttf is not None and math.isfinite(ttf) and ttf <= o.oom_horizon_s):
            oom.append({**_gpu_id(k), "fb_used_ratio": ratio, "fb_total_bytes": fb["total"].get(k),
                        "time_to_full_s": ttf if ttf is not None and math.isfinite(ttf) else None})

    soonest = min((row for row in oom if row["time_to_full_s"] is not None), key=lambda row: row["time_to_full_s"], default=None)
    if soonest is not None:
        terms.append(Term("soonest_time_to_full", soonest["time_to_full_s"], "s", "fb_free / deriv(fb_used[trend])",
                          {"gpu": f"{soonest.get('host')}/gpu{soonest.get('gpu')}", "fb_used_ratio": soonest["fb_used_ratio"],
                           "fb_total_bytes": soonest["fb_total_bytes"], "trend_window_s": min(o.range_s, 3600)},
                          {"deriv": "PromQL deriv(): least-squares slope of the framebuffer used over the trend window"}))

    xid_cat = xid_catalog(required=False)
    xid_rows = []
    for (k, code), ev in sorted(xids["events"].items(), key=lambda kv: (kv[0][1], kv[0][0])):
        x = xid_cat.get(code)
        xid_rows.append({**{n: v for n, v in zip(DEVICE, k) if v}, "xid": code, "windows_with_events": ev["windows"],
                         "sticky_now": ev["sticky"], "meaning": x.meaning if x else "not in the XID catalog",
                         "severity": x.severity if x else "unknown", "action": x.action if x else "look the code up in NVIDIA's XID catalog"})

    throttled = []
    if throttle.get("collected"):
        for k, shares in sorted(throttle["per_gpu"].items()):
            if any(v > 0.01 for v in shares.values()):
                throttled.append({**{n: v for n, v in zip(DEVICE, k) if v}, **{f"{r}_share": v for r, v in shares.items()}})

    health_rows = []
    for k, vals in sorted(health["per_gpu"].items()):
        bad = {n: v for n, v in vals.items() if v > 0 and n != "ecc_dbe_lifetime"}
        if bad or vals.get("ecc_dbe_lifetime", 0) > 0:
            health_rows.append({**{n: v for n, v in zip(DEVICE, k) if v}, **vals})

    dist = {"lt_5%": 0, "5-25%": 0, "25-50%": 0, "50-75%": 0, "ge_75%": 0}
    for avg in busy_avg.values():  # entities of unknown activity are counted apart, never as < 5 %
        b = "lt_5%" if avg < 0.05 else "5-25%" if avg < 0.25 else "25-50%" if avg < 0.5 else "50-75%" if avg < 0.75 else "ge_75%"
        dist[b] += 1

    by_host, by_model = _mean_by(gpus, "host"), _mean_by(gpus, "modelName")
    gone = [row for row in lost if not row["reporting"]]
    title = f"GPU fleet report: {len(gpus)} GPUs/MIG instances over {o.range_s / 3600:g} h"
    if lost:
        title += f", {len(lost)} lost or failing ({len(gone)} no longer reporting)"
    if unknown:
        title += f", {len(unknown)} of unknown activity"
    r = Result(title)
    r.terms = terms
    r.facts = {
        "status": "ok",
        "prometheus": prom.url,
        "range_s": o.range_s,
        "step_s": step,
        "start": start,
        "end": end,
        "naming": sorted(n for n in d.present if n in {a for v in ALIASES.values() for a, _ in v}),
        "pod_label": d.pod_source,
        "gpus": len(gpus),
        "gpu_count": counts,
        "lost": lost,
        "activity_unknown": unknown,
        "utilization": {"fleet_avg": fleet_avg, "distribution": {**dist, "unknown": len(unknown)},
                        "by_node": by_host, "by_model": by_model},
        "held_mib": o.held_mib,
        "idle": idle,
        "idle_held": idle_held,
        "stranded": stranded,
        "idle_gpu_hours": as_quantity(idle_h, "GPU·h"),
        "idle_held_gpu_hours": as_quantity(idle_held_h, "GPU·h"),
        "stranded_gpu_hours": as_quantity(stranded_h, "GPU·h"),
        "price_per_gpu_hour": price,
        "prices_by_model": prices,
        "price_source": price_src,
        "oom_risk": oom if fb else "not collected (DCGM_FI_DEV_FB_USED/FB_FREE not exported)",
        "throttling": {"source": throttle.get("source"), "fleet_share": throttle.get("fleet_share"), "gpus": throttled}
        if throttle.get("collected") else throttle["note"],
        "xid": xid_rows if xids["collected"] else "not collected (DCGM_FI_DEV_XID_ERRORS / DCGM_EXP_XID_ERRORS_COUNT not exported)",
        "health": {"gpus": health_rows, "collected": health["collected"], "not_collected": health["not_collected"]},
        "heatmap": {"hosts": [s.labels.get("host", "") for s in heat], "times": heat[0].times if heat else [],
                    "values": [s.values for s in heat]},
        "per_gpu": gpus,
        "queries": prom.log.count,
    }
    r.facts["no_work_by_node"] = idle_by_host(r)  # the table's per-node GPU-hours and USD, for JSON too
    for drop in counts["drops"]:
        r.warnings.append(f"GPU count on {drop['host']} fell from {drop['seen']} to {drop['now']} during the window: "
                          "a GPU that stops reporting is lost until shown otherwise (see lost)")
    for row in lost:
        when = "still reporting" if row["reporting"] else (
            f"last seen {_ago(row['last_seen_ago_s'])} ago" if row["last_seen_ago_s"] is not None else "last seen: unknown")
        r.warnings.append(f"GPU {row.get('host', '?')}/gpu{row.get('gpu', '?')} ({row.get('UUID', '')}): "
                          f"{', '.join(row['reasons'])}; {when}")
    if unknown:
        r.warnings.append(f"{len(unknown)} GPUs/MIG instances have no activity metric (PROF or GPU_UTIL): reported as "
                          "activity unknown, never as idle")
    if not priced:
        r.warnings.append(f"idle cost shown in GPU-hours only: {price_src}")
    if health["not_collected"]:
        r.warnings.append("not collected, so not reported as healthy: " + ", ".join(health["not_collected"]))
    return r


def _mean_by(gpus: list[dict], label: str) -> dict[str, float]:
    """Mean busy ratio per node or model over the entities that measure activity (computed here from
    the per-GPU averages, rather than asking Prometheus for the same average again)."""
    acc: dict[str, list[float]] = {}
    for g in gpus:
        if g.get("busy_avg") is not None:
            acc.setdefault(g.get(label, ""), []).append(g["busy_avg"])
    return {k: sum(v) / len(v) for k, v in sorted(acc.items())}


def _gpu_counts(inventory: dict[tuple, dict], now: set[tuple]) -> dict[str, Any]:
    """Physical GPUs per node seen during the window vs reporting at its end; a drop is a finding."""
    seen: dict[str, set] = {}
    for ident in inventory.values():
        seen.setdefault(ident.get("host", ""), set()).add(_key(ident, PHYSICAL))
    rows = []
    for host, keys in sorted(seen.items()):
        n_now = len(keys & now)
        if n_now < len(keys):
            rows.append({"host": host, "seen": len(keys), "now": n_now})
    total_seen = sum(len(v) for v in seen.values())
    total_now = sum(len(v & now) for v in seen.values())
    return {"seen": total_seen, "now": total_now, "drops": rows}


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def heat_series(r: Result) -> list[Series]:
    h = r.facts.get("heatmap", {})
    return [Series({"host": n}, h["times"], v) for n, v in zip(h.get("hosts", []), h.get("values", []))]


# -- HTML ------------------------------------------------------------------------------------------


def idle_by_host(r: Result) -> dict[str, dict[str, float]]:
    """GPU-hours without useful work per node, split idle / idle_held / stranded, and their USD (None
    where a model has no price), from the per-GPU PromQL aggregates."""
    if "no_work_by_node" in r.facts:
        return r.facts["no_work_by_node"]
    out: dict[str, dict[str, float]] = {}
    prices = r.facts.get("prices_by_model") or {}
    for g in r.facts.get("per_gpu", []):
        if g.get("state") in NO_WORK:
            slot = out.setdefault(g.get("host", ""), {**{k: 0.0 for k in NO_WORK}, "usd": 0.0})
            h = g.get("low_activity_gpu_hours") or 0.0
            slot[g["state"]] += h
            price = prices.get(g.get("modelName", ""))
            slot["usd"] = None if slot["usd"] is None or (price is None and h) else slot["usd"] + h * (price or 0.0)
    return out


def to_html(r: Result) -> str:
    """A self-contained page: utilization heatmap (node × time) and idle cost per node."""
    import datetime as dt

    import plotly.graph_objects as go
    import plotly.io as pio
    from plotly.subplots import make_subplots

    f = r.facts
    if f.get("status") != "ok":
        body = f"<h1>{r.title}</h1><p>{'; '.join(r.warnings)}</p>"
        return f"<!doctype html><html><head><meta charset='utf-8'><title>{r.title}</title></head><body>{body}</body></html>"
    heat = f["heatmap"]
    times = [dt.datetime.fromtimestamp(t, dt.timezone.utc) for t in heat["times"]]
    costs = idle_by_host(r)
    hosts = sorted(costs)
    in_usd = bool(hosts) and all(costs[h]["usd"] is not None for h in hosts)
    unit = "USD" if in_usd else "GPU-hours"
    fig = make_subplots(rows=2, cols=1, subplot_titles=("GPU busy ratio per node", f"Cost of GPUs without work per node ({unit})"),
                        vertical_spacing=0.15, row_heights=[0.6, 0.4])
    fig.add_trace(go.Heatmap(z=heat["values"], x=times, y=heat["hosts"], zmin=0, zmax=1, colorscale="Viridis",
                             colorbar={"title": "busy", "len": 0.55, "y": 0.75}), row=1, col=1)
    def scaled(h: str, state: str) -> float:  # a host's USD split between the states by their hours
        c = costs[h]
        hours = sum(c[k] for k in NO_WORK)
        return c[state] if not in_usd else (c["usd"] * c[state] / hours if hours else 0.0)

    for state, label in NO_WORK.items():
        fig.add_trace(go.Bar(name=label, x=hosts, y=[scaled(h, state) for h in hosts]), row=2, col=1)
    fig.update_layout(barmode="stack", title=r.title, height=max(700, 18 * len(heat["hosts"]) + 400),
                      legend={"orientation": "h", "x": 0.0, "y": -0.08})
    return pio.to_html(fig, full_html=True, include_plotlyjs=True)

"""Grafana dashboard JSON for GPU fleets: fleet, node and GPU rows, template variables, MIG-aware panels.

Improves on the stock dcgm-exporter dashboard (grafana.com 12239, telemetry reference §7.3):
- busy ratio = PROF engine activity, falling back to GPU_UTIL/100, so MIG instances show up;
- power and temperature are deduplicated per physical GPU (`max by (UUID, …)`) before any sum;
- framebuffer is shown in bytes (the exporter's MiB × 2^20), and as used / (used + free);
- XID, ECC, row-remap and throttling panels; every metric name matched in all naming generations;
- legends use `{{Hostname}}{{hostname}}`, so either label spelling prints;
- built for a field set (`build(..., served)`): a panel whose queries need fields the exporter's
  counter set does not serve is marked with the counter to enable (or left out), so no panel sits
  empty without saying why.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiinfra.fleet.promql import ALIASES, DEVICE, ENTITY, alt, bit, by

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance", gpu=~"$gpu"'
LEGEND_GPU = "{{Hostname}}{{hostname}} gpu{{gpu}} {{GPU_I_PROFILE}}"
LEGEND_DEV = "{{Hostname}}{{hostname}} gpu{{gpu}}"
ANY_GPU = '{__name__=~"DCGM_FI_DEV_GPU_TEMP|DCGM_FI_DEV_GPU_TEMP_CELSIUS|dcgm_gpu_temp", job=~"$job"}'


def busy(selector: str = SEL) -> str:
    return (f"(max {by(ENTITY)} ({alt('gr_active', selector=selector)}))"
            f" or (max {by(ENTITY)} ({alt('gpu_util', selector=selector)}))")


def fb_ratio(selector: str = SEL) -> str:
    used = f"max {by(ENTITY)} ({alt('fb_used', selector=selector)})"
    free = f"max {by(ENTITY)} ({alt('fb_free', selector=selector)})"
    return f"{used} / ({used} + {free})"


def device(quantity: str, fn=lambda s: s, selector: str = SEL) -> str:
    return f"max {by(DEVICE)} ({alt(quantity, fn, selector=selector)})"


def _panel(kind: str, title: str, exprs: list[tuple[str, str]], unit: str, w: int, h: int, x: int, y: int,
           extra: dict | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {
        "type": kind,
        "title": title,
        "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": " ".join(e.split()), "legendFormat": legend}
                    for i, (e, legend) in enumerate(exprs)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if extra:
        p.update(extra)
    return p


def _row(title: str, y: int) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}


def _var(name: str, label: str, query: str) -> dict[str, Any]:
    return {"type": "query", "name": name, "label": label, "datasource": DS, "query": {"query": query, "refId": name},
            "definition": query, "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*",
            "current": {"text": "All", "value": "$__all"}, "sort": 1}


def panels() -> list[dict[str, Any]]:
    thermal = f"({device('thermal_violation_ns', lambda s: f'rate({s}[$__rate_interval])')}) / 1e9"
    power_cap = f"({device('power_violation_ns', lambda s: f'rate({s}[$__rate_interval])')}) / 1e9"
    fleet_sel = 'job=~"$job"'
    out: list[dict[str, Any]] = [_row("Fleet", 0)]
    out += [
        _panel("stat", "GPUs reporting (physical)", [(f"count(count by (UUID, uuid) ({alt('temp', selector=fleet_sel)}))", "")], "none", 4, 4, 0, 1),
        _panel("stat", "Fleet busy (avg)", [(f"avg({busy(fleet_sel)})", "")], "percentunit", 4, 4, 4, 1),
        _panel("stat", "Idle GPUs (busy < 5 % for 1 h)", [(f"count(avg_over_time(({busy(fleet_sel)})[1h:1m]) < 0.05)", "")], "none", 4, 4, 8, 1),
        _panel("stat", "Fleet power (MIG counted once)", [(f"sum({device('power', selector=fleet_sel)})", "")], "watt", 4, 4, 12, 1),
        _panel("stat", "Memory-full GPUs (> 95 %)", [(f"count(({fb_ratio(fleet_sel)}) > 0.95)", "")], "none", 4, 4, 16, 1),
        _panel("stat", "GPUs with an XID code set", [(f"count({device('xid_last', selector=fleet_sel)} > 0)", "")], "none", 4, 4, 20, 1),
        _panel("timeseries", "Busy ratio by node", [(f"avg by (instance, Hostname, hostname) ({busy(fleet_sel)})", "{{Hostname}}{{hostname}}")],
               "percentunit", 12, 8, 0, 5),
        _panel("timeseries", "Power by node (MIG counted once)", [(f"sum by (instance, Hostname, hostname) ({device('power', selector=fleet_sel)})", "{{Hostname}}{{hostname}}")],
               "watt", 12, 8, 12, 5),
    ]
    out.append(_row("Node ($instance)", 13))
    out += [
        _panel("timeseries", "Busy ratio per GPU / MIG instance", [(busy(), LEGEND_GPU)], "percentunit", 12, 8, 0, 14),
        _panel("timeseries", "Framebuffer used / (used + free)", [(fb_ratio(), LEGEND_GPU)], "percentunit", 12, 8, 12, 14),
        _panel("timeseries", "Framebuffer used", [(f"max {by(ENTITY)} ({alt('fb_used', selector=SEL)})", LEGEND_GPU)], "bytes", 8, 8, 0, 22),
        _panel("timeseries", "Power per GPU", [(device("power"), LEGEND_DEV)], "watt", 8, 8, 8, 22),
        _panel("timeseries", "Temperature per GPU", [(device("temp"), LEGEND_DEV)], "celsius", 8, 8, 16, 22),
        _panel("timeseries", "Tensor pipe active", [(f"max {by(ENTITY)} ({alt('tensor_active', selector=SEL)})", LEGEND_GPU)], "percentunit", 12, 8, 0, 30),
        _panel("timeseries", "Time throttled by reason", [(thermal, "thermal " + LEGEND_DEV), (power_cap, "power " + LEGEND_DEV)],
               "percentunit", 12, 8, 12, 30),
    ]
    out.append(_row("GPU health ($gpu)", 38))
    out += [
        _panel("table", "Last XID code (sticky until reset)", [(device("xid_last") + " > 0", LEGEND_DEV)], "none", 8, 8, 0, 39,
               {"targets": [{"refId": "A", "datasource": DS, "expr": device("xid_last") + " > 0", "format": "table", "instant": True}]}),
        _panel("timeseries", "XID events per window", [(f"max by (instance, gpu, UUID, uuid, Hostname, hostname, xid) (DCGM_EXP_XID_ERRORS_COUNT{{{SEL}, xid!=\"\"}})", "xid {{xid}} " + LEGEND_DEV)],
               "none", 8, 8, 8, 39),
        _panel("timeseries", "Uncorrectable ECC errors (new)", [(device("ecc_dbe_vol", lambda s: f"increase({s}[$__rate_interval])"), LEGEND_DEV)], "none", 8, 8, 16, 39),
        _panel("timeseries", "Row remapping", [(device("row_remap_failure"), "failed " + LEGEND_DEV),
                                               (device("remapped_rows_unc"), "uncorrectable rows " + LEGEND_DEV)], "none", 8, 8, 0, 47),
        _panel("timeseries", "PCIe replays / s", [(device("pcie_replay", lambda s: f"rate({s}[$__rate_interval])"), LEGEND_DEV)], "none", 8, 8, 8, 47),
        _panel("timeseries", "Clock-event reasons set (power cap, HW slowdown, thermal)",
               [(f"max {by(DEVICE)} ({alt('clock_reasons', lambda s, v=v: bit(s, v), selector=SEL)})", f"{name} " + LEGEND_DEV)
                for name, v in (("power_cap", 4), ("hw_slowdown", 8), ("sw_thermal", 32), ("hw_thermal", 64))],
               "none", 8, 8, 16, 47),
    ]
    return out


def dashboard(title: str = "aiinfra GPU fleet", uid: str = "aiinfra-gpu-fleet") -> dict[str, Any]:
    return {
        "title": title,
        "uid": uid,
        "tags": ["gpu", "dcgm", "aiinfra"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"type": "datasource", "name": "datasource", "label": "Prometheus", "query": "prometheus", "current": {}},
            _var("job", "job", "label_values(up, job)"),
            _var("instance", "node", f"label_values({ANY_GPU}, instance)"),
            _var("gpu", "GPU", "label_values(" + ANY_GPU.replace("}", ', instance=~"$instance"}') + ", gpu)"),
        ]},
        "panels": panels(),
    }


# Quantities of which any one is enough (the busy ratio falls back from PROF activity to GPU_UTIL).
ANY_OF = ({"gr_active", "gpu_util"},)
_NAME_TO_QUANTITY = {n: q for q, names in ALIASES.items() for n, _ in names}


def needs(expr: str) -> list[set[str]]:
    """Groups of quantities an expression reads; each group needs one served member."""
    used = {_NAME_TO_QUANTITY[t] for t in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr) if t in _NAME_TO_QUANTITY}
    groups = [g & used for g in ANY_OF if g & used]
    grouped = set().union(*groups) if groups else set()
    return groups + [{q} for q in sorted(used - grouped)]


def _served(q: str, names: set[str]) -> bool:
    return any(n in names for n, _ in ALIASES[q])


def enable_hint(groups: list[set[str]], names: set[str]) -> list[str]:
    """The counters to add for the unmet groups: the dcgm-exporter (legacy) spelling of each."""
    return [" or ".join(ALIASES[q][0][0] for q in sorted(g, key=lambda q: (q != "gr_active", q)))  # PROF first
            for g in groups if not any(_served(q, names) for q in g)]


def served_names(counters: str | Path | None) -> tuple[set[str] | None, str]:
    """Metric names a counter set makes the exporter serve, every naming generation of each field.

    None → no field set given (every panel as built); "default" / "all" → the exporter's sets;
    otherwise a dcgm-exporter counters CSV (read by the telemetry package, as the exporter reads it)."""
    if counters is None:
        return None, "every field (no counter set given)"
    from aiinfra.telemetry import fields as tf

    if str(counters) in ("default", "all"):
        rows = [r.field for r in tf.default_rows("legacy", str(counters))]
        label = f"dcgm-exporter's {counters} counter set" if counters == "default" else "every field aiinfra collects"
    else:
        rows = [r.field for r in tf.read_counters_csv(counters)]
        label = f"counters file {counters}"
    names: set[str] = set()
    for f in rows:
        for gen in ("legacy", "dcgm46", "dcgm49", "v1"):
            n = getattr(f, gen, None)
            if isinstance(n, str) and n:
                names.add(n)
        names.update(str(a) for a in (getattr(f, "aliases", None) or ()))
    return names, label


def build(title: str = "aiinfra GPU fleet", uid: str = "aiinfra-gpu-fleet", served: set[str] | None = None,
          only_served: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The dashboard for a field set, and the panels that need fields it does not serve.

    A panel shows data when one of its targets has every quantity it reads served. Others are left
    out (`only_served`) or kept with "needs <counter>" in the title and a description saying which
    row to enable in the counters CSV."""
    d = dashboard(title, uid)
    if served is None:
        return d, []
    kept, missing = [], []
    for p in d["panels"]:
        if p["type"] == "row":
            kept.append(p)
            continue
        per_target = [needs(t["expr"]) for t in p.get("targets", [])]
        ok = any(all(any(_served(q, served) for q in g) for g in groups) for groups in per_target)
        if ok:
            kept.append(p)
            continue
        enable = sorted({h for groups in per_target for h in enable_hint(groups, served)})
        missing.append({"title": p["title"], "enable": enable})
        if not only_served:
            p["title"] = f"{p['title']} (needs {', '.join(enable)})"
            p["description"] = ("No data with this exporter's counter set: enable " + ", ".join(enable)
                                + " in its counters CSV (dcgm-exporter -f) or run aiinfra exporter --counters all.")
            kept.append(p)
    d["panels"] = kept
    return d, missing


def expressions(d: dict[str, Any]) -> list[str]:
    """Every PromQL expression in a dashboard (tests run each against a real Prometheus)."""
    return [t["expr"] for p in d["panels"] for t in p.get("targets", [])]


def substitute(expr: str, instance: str = ".*", gpu: str = ".*", job: str = ".*", rate_interval: str = "1m") -> str:
    """Replace Grafana variables the way Grafana does before sending a query."""
    return (expr.replace("$__rate_interval", rate_interval).replace("$instance", instance)
            .replace("$gpu", gpu).replace("$job", job))

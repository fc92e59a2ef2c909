"""Prometheus alerting and recording rules for GPU fleets, written to avoid the §7.1 pitfalls.

How each community pitfall (telemetry reference §7.1) is avoided:
1. `XID_ERRORS > 0` fires forever after one benign XID → only *fatal* codes (catalog severity
   critical) fire on the sticky last-code gauge; they need a reset anyway, which clears it.
   Recurring XIDs use the windowed count `DCGM_EXP_XID_ERRORS_COUNT`.
2. `increase()` on the XID gauge → never; XID is a code, not a counter.
3. `FB_TOTAL` is not exported by default → memory ratio is used / (used + free).
4. `FB_USED / FB_FREE` → never.
5. `rate(NVLINK_BANDWIDTH_TOTAL)` → bandwidth is not used in rules; NVLink *error counters* get increase().
6. Absolute temperatures → the device's own margin/slowdown fields, and per-SKU limits from the GPU catalog.
7. `sum(power)` over MIG → power is deduplicated per physical GPU (`max by (UUID, …)`) before summing.
8. `exported_pod` and `Hostname`/`hostname` → every grouping lists all spellings; the pod label is a parameter.

No crying wolf (issue 15): every alert has an explicit `for:`, and a summary that claims a duration
states either that `for:` ("for 10 minutes") or a look-back window ("over the last 6h") whose start
is checked to hold data (`and <series> offset <window>`), so a host that just appeared cannot be
"idle for 6 hours" seconds after its first scrape. `test_rules_generation` holds every rule to this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from aiinfra.catalog.loader import default_catalog
from aiinfra.catalog.xid import xid_catalog
from aiinfra.errors import AiinfraError
from aiinfra.fleet.promql import DEVICE, ENTITY, POD_LABELS, alt, bit, by, model_names

# Per-SKU temperature limit fields the GPU catalog may carry (°C); the first one present is used.
TEMP_LIMIT_FIELDS = ("gpu_max_op_temp_c", "max_op_temp_c", "slowdown_temp_c")


@dataclass
class RuleOptions:
    job_regex: str = ".*dcgm.*|.*gpu.*|aiinfra.*"
    pod_label: str = "exported_pod"  # Helm ServiceMonitor default honorLabels: false → exported_pod
    idle_ratio: float = 0.05
    stranded_window: str = "2h"
    idle_window: str = "6h"
    memory_full_ratio: float = 0.95
    temp_margin_c: float = 5.0
    throttle_share: float = 0.10
    pcie_replays_10m: int = 100
    sku_temp_limits: dict[str, float] = field(default_factory=dict)  # modelName → °C; filled from the catalog
    sku_tdp_w: dict[str, tuple[float, str]] = field(default_factory=dict)  # modelName → (W, key); from the catalog
    power_over_tdp: float = 1.05  # board power this far above TDP for 5 min: limit misconfigured or sensor fault

    def __post_init__(self) -> None:
        if self.pod_label not in POD_LABELS:
            raise AiinfraError(f"pod label must be one of {', '.join(POD_LABELS)}, not '{self.pod_label}'")
        if not 0 < self.idle_ratio < 1:
            raise AiinfraError("idle ratio must be between 0 and 1")


def _rule(alert: str, expr: str, severity: str, summary: str, action: str, for_: str) -> dict[str, Any]:
    """`for_` is required: "0s" for an event (a counter that increased), a duration for a state."""
    r: dict[str, Any] = {"alert": alert, "expr": " ".join(expr.split()), "for": for_}
    r["labels"] = {"severity": severity}
    r["annotations"] = {"summary": summary, "action": action}
    return r


GPU = "{{ $labels.Hostname }}{{ $labels.hostname }} GPU {{ $labels.gpu }} ({{ $labels.UUID }}{{ $labels.uuid }})"


def sku_temp_limits() -> dict[str, float]:
    """modelName → temperature limit (°C), for every catalog GPU that records one."""
    out: dict[str, float] = {}
    for key, entry in default_catalog().table("gpus").items():
        limit = next((entry[f] for f in TEMP_LIMIT_FIELDS if entry.get(f)), None)
        if limit is not None:
            for n in model_names(key, entry):
                out[n] = float(limit)
    return out


def sku_tdp() -> dict[str, tuple[float, str]]:
    """modelName → (TDP in W, catalog key) for every catalog GPU."""
    out: dict[str, tuple[float, str]] = {}
    for key, entry in default_catalog().table("gpus").items():
        if entry.get("tdp_w"):
            for n in model_names(key, entry):
                out[n] = (float(entry["tdp_w"]), key)
    return out


def recording_rules(o: RuleOptions) -> dict[str, Any]:
    pod = POD_LABELS[o.pod_label]
    ent = by(ENTITY + pod)
    dev = by(DEVICE)
    used = f"max {ent} ({alt('fb_used')})"
    free = f"max {ent} ({alt('fb_free')})"
    return {
        "name": "aiinfra-gpu-recording",
        "rules": [
            # Busy ratio: PROF engine activity where it exists (works per MIG instance), else GPU_UTIL/100.
            {"record": "aiinfra:gpu_busy:ratio", "expr": f"max {ent} ({alt('gr_active')}) or max {ent} ({alt('gpu_util')})"},
            {"record": "aiinfra:gpu_fb_used:bytes", "expr": used},
            {"record": "aiinfra:gpu_fb_free:bytes", "expr": free},
            {"record": "aiinfra:gpu_fb_used:ratio", "expr": "aiinfra:gpu_fb_used:bytes / (aiinfra:gpu_fb_used:bytes + aiinfra:gpu_fb_free:bytes)"},
            # Device-wide fields repeat once per MIG instance: dedupe by physical GPU before any sum.
            {"record": "aiinfra:gpu_power:watts", "expr": f"max {dev} ({alt('power')})"},
            {"record": "aiinfra:node_power:watts", "expr": "sum by (instance, Hostname, hostname) (aiinfra:gpu_power:watts)"},
            {"record": "aiinfra:gpu_temp:celsius", "expr": f"max {dev} ({alt('temp')})"},
        ],
    }


def alert_groups(o: RuleOptions, xids: dict | None = None) -> list[dict[str, Any]]:
    xids = xids if xids is not None else xid_catalog()
    fatal = sorted(c for c, x in xids.items() if x.fatal)
    if not fatal:
        raise AiinfraError("the XID catalog marks no code as critical; cannot write the fatal-XID rule")
    pod_l, ns_l, _ = POD_LABELS[o.pod_label]
    dev = by(DEVICE)
    ent = by(ENTITY)
    job = f'job=~"{o.job_regex}"'
    fatal_re = "|".join(str(c) for c in fatal)
    sw, iw = o.stranded_window, o.idle_window
    any_gpu_series = '{__name__=~"DCGM_FI_.*|dcgm_.*"}'
    # Physical GPUs per exporter (MIG instances collapse on UUID).
    gpu_count = f"count by (instance) (count by (instance, UUID, uuid) ({alt('temp')}))"

    thermal_bits = lambda s: "clamp_max(" + " + ".join(bit(s, v) for v in (32, 64, 8)) + ", 1)"  # noqa: E731
    thermal_parts = [
        f"max {dev} ({alt('thermal_violation_ns', lambda s: f'rate({s}[5m])')}) / 1e9",
        f"max {dev} ({alt('clock_reasons', lambda s: f'avg_over_time({thermal_bits(s)}[5m:])')})",
    ]
    power_parts = [
        f"max {dev} ({alt('power_violation_ns', lambda s: f'rate({s}[5m])')}) / 1e9",
        f"max {dev} ({alt('clock_reasons', lambda s: f'avg_over_time({bit(s, 4)}[5m:])')})",
    ]
    temp_rules = [
        _rule("AiinfraGPUTemperatureNearLimit",
              f"(max {dev} ({alt('temp_margin')}) < {o.temp_margin_c:g})"
              f" or (max {dev} ({alt('temp')}) >= on (UUID, uuid) group_left() (max by (UUID, uuid) ({alt('slowdown_temp')}) - {o.temp_margin_c:g}))",
              "warning", f"{GPU} has been within {o.temp_margin_c:g} °C of its slowdown temperature for 10 minutes",
              "check airflow and inlet temperature; the GPU will throttle at its limit", "10m"),
    ]
    # One rule per alert, its limit chosen by modelName: promtool's duplicate-rules lint (--lint-fatal) refuses two
    # rules with one name and one label set, and a label told apart per model would change every alert's labels.
    limits = o.sku_temp_limits or sku_temp_limits()
    if limits:
        temp_rules.append(
            _rule("AiinfraGPUTemperatureAboveSKULimit",
                  _per_model(limits, lambda sel, limit: f"max {dev} ({alt('temp', selector=sel)}) > {limit:g}"),
                  "warning", f"{GPU} has been above the temperature limit the GPU catalog gives for {{{{ $labels.modelName }}}} for 10 minutes",
                  "check cooling; sustained operation above the limit throttles clocks", "10m"))
    tdp = o.sku_tdp_w or sku_tdp()
    if tdp:
        temp_rules.append(
            _rule("AiinfraGPUPowerAboveTDP",
                  _per_model({name: watts for name, (watts, _key) in tdp.items()},
                             lambda sel, watts: f"max {dev} ({alt('power', selector=sel)}) > {watts * o.power_over_tdp:g}"),
                  "warning", f"{GPU} has drawn more than {o.power_over_tdp:.0%} of the TDP the GPU catalog gives for {{{{ $labels.modelName }}}} for 5 minutes",
                  "check the power limit (nvidia-smi -q -d POWER) and the power sensor", "5m"))

    return [
        {"name": "aiinfra-gpu-pipeline", "rules": [
            _rule("AiinfraGPUExporterDown", f"up{{{job}}} == 0", "critical",
                  "GPU exporter {{ $labels.instance }} has been down for 5 minutes: GPU health on that node is unknown",
                  "check the exporter pod/service and the node", "5m"),
            _rule("AiinfraGPULost", "max by (instance, gpu, UUID, uuid, Hostname, hostname) (aiinfra_gpu_lost) > 0",
                  "critical", "{{ $labels.Hostname }}{{ $labels.hostname }} GPU {{ $labels.gpu }} ({{ $labels.UUID }}) is lost: NVML says it fell off the bus",
                  "drain the node and reboot it; check power, cooling and PCIe seating if it recurs (XID 79)", "0s"),
            _rule("AiinfraGPUSeriesMissing",
                  f"{gpu_count} < on (instance) max_over_time(({gpu_count})[1h:1m])",
                  "warning", "exporter {{ $labels.instance }} has reported fewer GPUs than it did in the last hour for 5 minutes",
                  "a GPU stopped reporting (lost, driver error or removed): check nvidia-smi on the node", "5m"),
            # Per GPU, not per series: a pod label that changes starts a new series, which is not a loss.
            _rule("AiinfraGPUStoppedReporting",
                  f"(group {dev} ({alt('temp', lambda s: f'last_over_time({s}[1h])')}) unless on ({', '.join(DEVICE)}) group {dev} ({alt('temp')}))"
                  f" and on (instance) (max by (instance) (up{{{job}}}) == 1)",
                  "critical", f"{GPU} reported during the last hour but has been silent for 5 minutes while its exporter is up (lost, driver error or removed)",
                  "check nvidia-smi and the kernel log (XID 79: fell off the bus) on the node; drain it if the GPU is gone", "5m"),
            _rule("AiinfraGPUExporterNoGPUSeries",
                  f"(max by (instance, job) (up{{{job}}}) == 1) unless on (instance) count by (instance) ({any_gpu_series})",
                  "warning", "GPU exporter {{ $labels.instance }} has answered without GPU series for 10 minutes (DCGM or driver wedged)",
                  "check nv-hostengine, the driver (nvidia-smi) and the exporter log", "10m"),
        ]},
        {"name": "aiinfra-gpu-health", "rules": [
            _rule("AiinfraGPUXidFatal",
                  f"max {ent} ({' or '.join(f'({n} == {c})' for n in _names('xid_last') for c in fatal)})",
                  "critical", f"{GPU} reported fatal XID {{{{ $value }}}}",
                  "drain the node and follow the catalog action for this XID (reset the GPU, reboot, or RMA)", "0s"),
            _rule("AiinfraGPUXidFatalEvent",
                  f'max {by(ENTITY + ("xid",))} (DCGM_EXP_XID_ERRORS_COUNT{{xid=~"{fatal_re}"}}) > 0',
                  "critical", f"{GPU} had fatal XID {{{{ $labels.xid }}}} in the exporter's last window",
                  "drain the node and follow the catalog action for this XID", "0s"),
            _rule("AiinfraGPUXidRecurring",
                  f'count_over_time((max by ({", ".join(ENTITY)}, xid) (DCGM_EXP_XID_ERRORS_COUNT{{xid!=""}}) > 0)[1h:5m]) >= 3',
                  "warning", f"{GPU} keeps reporting XID {{{{ $labels.xid }}}} (in 3 or more 5-minute windows within an hour)",
                  "an application XID (13, 31, 43) that recurs across jobs points at the node, not the job", "0s"),
            _rule("AiinfraGPUUncorrectableECC",
                  f"max {dev} ({alt('ecc_dbe_vol', lambda s: f'increase({s}[15m])')}) > 0",
                  "critical", f"{GPU} had an uncorrectable (double-bit) ECC error",
                  "drain, reset the GPU and watch for row-remap failure; repeated errors → RMA", "0s"),
            _rule("AiinfraGPURowRemapFailure", f"max {dev} ({alt('row_remap_failure')}) > 0",
                  "critical", f"{GPU} failed to remap a memory row", "RMA the GPU (row-remap failure is not recoverable)", "0s"),
            _rule("AiinfraGPURowRemapPending", f"max {dev} ({alt('row_remap_pending')}) > 0",
                  "warning", f"{GPU} has had a row remap pending a GPU reset for 30 minutes", "schedule a GPU reset when the node is drained", "30m"),
            _rule("AiinfraGPUUncorrectableRowRemaps",
                  f"max {dev} ({alt('remapped_rows_unc', lambda s: f'increase({s}[1h])')}) > 0",
                  "warning", f"{GPU} remapped rows for uncorrectable errors in the last hour",
                  "watch for further remaps; reset to apply pending ones", "0s"),
            _rule("AiinfraGPUNVLinkErrors",
                  f"max {dev} ({alt('nvlink_errors', lambda s: f'increase({s}[15m])')}) > 0",
                  "warning", f"{GPU} NVLink error counters increased in the last 15 minutes",
                  "check the NVLink/NVSwitch fabric (nvidia-smi nvlink -e) and the fabric manager", "0s"),
            _rule("AiinfraGPUPCIeReplays",
                  f"max {dev} ({alt('pcie_replay', lambda s: f'increase({s}[10m])')}) > {o.pcie_replays_10m}",
                  "warning", f"{GPU} had more than {o.pcie_replays_10m} PCIe replays in 10 minutes",
                  "check the PCIe link (lspci -vv link speed/width), riser and seating", "0s"),
        ]},
        {"name": "aiinfra-gpu-thermal-power", "rules": temp_rules + [
            _rule("AiinfraGPUThermalThrottling", f"({' or '.join(thermal_parts)}) > {o.throttle_share:g}",
                  "warning", f"{GPU} has spent more than {o.throttle_share:.0%} of its time thermally throttled for 10 minutes",
                  "check cooling; thermal throttling lowers clocks and slows the job", "10m"),
            _rule("AiinfraGPUPowerThrottling", f"({' or '.join(power_parts)}) > {o.throttle_share:g}",
                  "warning", f"{GPU} has spent more than {o.throttle_share:.0%} of its time power-capped for 15 minutes",
                  "check the power limit (nvidia-smi -q -d POWER) and rack power budget", "15m"),
            _rule("AiinfraGPUPowerBrake",
                  f"max {dev} ({alt('clock_reasons', lambda s: bit(s, 128))}) > 0",
                  "critical", f"{GPU} has been held by an external power brake (HW_POWER_BRAKE) for 1 minute",
                  "check PSUs and the chassis power controller", "1m"),
        ]},
        {"name": "aiinfra-gpu-capacity", "rules": [
            _rule("AiinfraGPUMemoryNearFull", f"aiinfra:gpu_fb_used:ratio > {o.memory_full_ratio:g}",
                  "warning", f"{GPU} framebuffer has been more than {o.memory_full_ratio:.0%} used for 5 minutes: the next allocation may OOM",
                  "reduce batch size or KV-cache fraction, or move the job to a larger GPU", "5m"),
            _rule("AiinfraGPUMemoryFullSoon",
                  "predict_linear(aiinfra:gpu_fb_used:ratio[30m], 3600) > 1 and aiinfra:gpu_fb_used:ratio > 0.5"
                  " and aiinfra:gpu_fb_used:ratio offset 30m",
                  "warning", f"{GPU} framebuffer use has risen over the last 30m and will be full within an hour at this rate (for 10 minutes)",
                  "look for a memory leak or a growing cache in the job on this GPU", "10m"),
            # The names analyze and chargeback use: idle but held (an owner holds it), stranded (no owner, memory held).
            _rule("AiinfraGPUIdleHeld",
                  f"avg_over_time(aiinfra:gpu_busy:ratio[{sw}]) < {o.idle_ratio:g}"
                  f" and aiinfra:gpu_busy:ratio offset {sw}"  # the window's start holds data: not a host that just appeared
                  f' and aiinfra:gpu_busy:ratio{{{pod_l}!=""}}',
                  "info", f"{GPU} is held by pod {{{{ $labels.{pod_l} }}}} but averaged less than {o.idle_ratio:.0%} busy over the last {sw} (for 15 minutes)",
                  "ask the owner to release it; an idle GPU that is held costs money and blocks other jobs", "15m"),
            _rule("AiinfraGPUStranded",
                  f"avg_over_time(aiinfra:gpu_busy:ratio[{sw}]) < {o.idle_ratio:g}"
                  f" and aiinfra:gpu_busy:ratio offset {sw}"
                  f' and aiinfra:gpu_fb_used:ratio > 0.05 unless aiinfra:gpu_busy:ratio{{{pod_l}!=""}}',
                  "info", f"{GPU} has no pod but holds memory, and averaged less than {o.idle_ratio:.0%} busy over the last {sw} (for 15 minutes): no scheduler can hand it out",
                  "find the process holding it (nvidia-smi on the node: a leftover or a job outside Kubernetes) and stop it", "15m"),
            _rule("AiinfraGPUIdleUnallocated",
                  f"avg_over_time(aiinfra:gpu_busy:ratio[{iw}]) < 0.01"
                  f" and aiinfra:gpu_busy:ratio offset {iw}"  # the window's start holds data: not a host that just appeared
                  f' unless (aiinfra:gpu_busy:ratio{{{pod_l}!=""}} or aiinfra:gpu_fb_used:ratio > 0.05)',
                  "info", f"{GPU} averaged under 1% busy with no pod and no memory held over the last {iw} (for 15 minutes)",
                  "free capacity: schedule work on it or scale the node pool down", "15m"),
        ]},
    ]


def _models_by_value(per_model: dict[str, float]) -> list[tuple[float, str]]:
    """One (limit, modelName matcher) per distinct catalog limit, so GPUs that share a limit share a branch: an exact
    `modelName="…"` for one name, else `modelName=~"…|…"` over the names escaped (PromQL anchors the regex)."""
    grouped: dict[float, list[str]] = {}
    for model_name, value in per_model.items():
        grouped.setdefault(value, []).append(model_name)
    out = []
    for value, models in sorted(grouped.items()):
        models.sort()
        sel = f"modelName={_quote(models[0])}" if len(models) == 1 else f"modelName=~{_quote('|'.join(_regex_escape(m) for m in models))}"
        out.append((value, sel))
    return out


def _per_model(per_model: dict[str, float], branch: Callable[[str, float], str]) -> str:
    """`(branch(matcher, limit)) or (…)` over the distinct limits: one expression, each model held to its own."""
    parts = [branch(sel, value) for value, sel in _models_by_value(per_model)]
    return parts[0] if len(parts) == 1 else " or ".join(f"({p})" for p in parts)


def _regex_escape(s: str) -> str:
    return "".join("\\" + c if c in ".+*?()[]{}|^$\\" else c for c in s)


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _names(quantity: str) -> list[str]:
    from aiinfra.fleet.promql import names

    return names(quantity)


def rule_groups(o: RuleOptions | None = None, xids: dict | None = None, pods: Any = None) -> dict[str, Any]:
    o = o or RuleOptions()
    from aiinfra.fleet.pod_rules import pod_idle_group  # a pod holding an idle GPU (attribution); pods: PodIdleOptions

    return {"groups": [recording_rules(o)] + alert_groups(o, xids) + [pod_idle_group(o.pod_label, o.idle_ratio, pods)]}


def prometheus_rule(doc: dict[str, Any], name: str = "aiinfra-gpu-rules", namespace: str | None = None,
                    labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Wrap rule groups as a prometheus-operator PrometheusRule object."""
    meta: dict[str, Any] = {"name": name, "labels": labels or {"app.kubernetes.io/name": "aiinfra", "role": "alert-rules"}}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": meta, "spec": {"groups": doc["groups"]}}


def alert_names(doc: dict[str, Any]) -> list[str]:
    return [r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r]


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, width=10_000)

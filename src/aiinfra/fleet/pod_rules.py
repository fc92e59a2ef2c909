"""Alert: a pod holds a GPU (or MIG instance, or shared replica) and has done nothing with it for a while.

One rule per namespace that has its own threshold (`namespaces={"research": "4h"}`) and one for
every other namespace (`default_for`). The condition is the *current* busy ratio below the idle
ratio; `for:` is the threshold, so the alert fires only after the pod stayed idle the whole time,
and the summary quotes that same duration (it is built from the same string). The pod, its
namespace and container are labels of the alert, so the notification names who to ask.

Label spellings: `exported_pod` (ServiceMonitor honorLabels: false), `pod` or `pod_name`, as the
other aiinfra rules take them (`RuleOptions.pod_label`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiinfra.errors import AiinfraError
from aiinfra.fleet.prom import parse_duration
from aiinfra.fleet.promql import HOST, POD_LABELS, alt

ALERT = "AiinfraPodHoldsIdleGPU"


@dataclass
class PodIdleOptions:
    default_for: str = "1h"
    namespaces: dict[str, str] = field(default_factory=dict)  # namespace → its own idle threshold
    severity: str = "warning"

    def __post_init__(self) -> None:
        for ns, d in {"(default)": self.default_for, **self.namespaces}.items():
            parse_duration(d)  # one sentence when a threshold is not a duration
            if not ns or '"' in ns or "\\" in ns:
                raise AiinfraError(f"namespace '{ns}' is not a Kubernetes namespace name")


def parse_idle_for(items: list[str]) -> PodIdleOptions:
    """`["2h", "research=4h"]` → default 2h, research 4h (the CLI's --pod-idle-for)."""
    default, per_ns = "1h", {}
    for item in items:
        ns, eq, d = item.partition("=")
        if eq:
            per_ns[ns.strip()] = d.strip()
        else:
            default = item.strip()
    return PodIdleOptions(default_for=default, namespaces=per_ns)


def _quote_re(names: list[str]) -> str:
    return "|".join(n.replace(".", "\\\\.") for n in sorted(names))


def pod_idle_group(pod_label: str = "exported_pod", idle_ratio: float = 0.05, o: PodIdleOptions | None = None) -> dict[str, Any]:
    o = o or PodIdleOptions()
    if pod_label not in POD_LABELS:
        raise AiinfraError(f"pod label must be one of {', '.join(POD_LABELS)}, not '{pod_label}'")
    pod, ns, container = POD_LABELS[pod_label]
    keep = ("instance", "gpu", "UUID", "uuid", "modelName", *HOST, "GPU_I_ID", "GPU_I_PROFILE", ns, pod, container, "vgpu")
    by = "by (" + ", ".join(keep) + ")"
    gpu = "{{ $labels.Hostname }}{{ $labels.hostname }} GPU {{ $labels.gpu }} ({{ $labels.UUID }}{{ $labels.uuid }})"  # MIG: GPU_I_ID label
    who = f"{{{{ $labels.{ns} }}}}/{{{{ $labels.{pod} }}}}"

    def rule(selector: str, duration: str, scope: str) -> dict[str, Any]:
        sel = f'{pod}!="",{selector}' if selector else f'{pod}!=""'
        busy = f"(max {by} ({alt('gr_active', selector=sel)}) or max {by} ({alt('gpu_util', selector=sel)}))"
        return {
            "alert": ALERT,
            "expr": f"{busy} < {idle_ratio:g}",
            "for": duration,
            "labels": {"severity": o.severity, "idle_threshold": duration},
            "annotations": {
                "summary": f"pod {who} holds {gpu} and kept it under {idle_ratio:.0%} busy for more than {duration}",
                "action": f"ask the owner of {who} ({scope}) to release the GPU or scale the workload to zero; "
                          "idle held GPUs are billed and block other jobs",
            },
        }

    rules = [rule(f'{ns}="{n}"', d, f"namespace {n} allows {d}") for n, d in sorted(o.namespaces.items())]
    rest = f'{ns}!~"{_quote_re(list(o.namespaces))}"' if o.namespaces else ""
    rules.append(rule(rest, o.default_for, f"default threshold {o.default_for}"))
    return {"name": "aiinfra-gpu-pods", "rules": rules}

"""The fleet commands as library functions: `analyze`, `rules`, `dashboard`, `top`.

Each takes plain arguments, does the work and returns an `explain.Result`; the CLI (`cli/analyze.py`,
`cli/rules.py`, `cli/dashboard.py`, `cli/top.py`) and the web Fleet page only parse input, call these
and render the Result.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiinfra.contract import Facts, Quantity, command
from aiinfra.errors import AiinfraError
from aiinfra.explain import Result, quantity


class AnalyzeFacts(Facts):
    status: str  # ok | no_data
    prometheus: str
    range_s: float
    gpus: int | None = None
    idle_gpu_hours: Quantity | None = None  # no owner, no memory held, no work
    idle_held_gpu_hours: Quantity | None = None  # a pod or HPC job holds it, no work
    stranded_gpu_hours: Quantity | None = None  # no owner, memory held, no work
    lost: list[dict[str, Any]] | None = None
    activity_unknown: list[dict[str, Any]] | None = None
    gpu_count: dict[str, Any] | None = None


class RulesFacts(Facts):
    kind: str
    alerts: list[str]
    records: list[str]
    document: dict[str, Any]
    text: str


class DashboardFacts(Facts):
    panels: Quantity
    queries: Quantity
    counters: str
    panels_needing_fields: list[dict[str, Any]]
    dashboard: dict[str, Any]


class TopFacts(Facts):
    source: str
    driver: str
    cuda: str
    gpus: list[dict[str, Any]]
    processes: list[dict[str, Any]]
    lost: Quantity


@command("analyze", facts=AnalyzeFacts)
def analyze(prometheus: str, range: str = "24h", end: float | None = None, idle_ratio: float = 0.05,
            price_per_gpu_hour: float | None = None, held_mib: float = 1024.0, timeout: float = 60.0,
            keep_heatmap: bool = True) -> Result:
    """Fleet report from Prometheus: utilization, GPUs idle but held, stranded and idle with their cost, lost GPUs, OOM risk, throttling, XIDs, ECC."""
    from aiinfra.fleet.analysis import AnalysisOptions
    from aiinfra.fleet.analysis import analyze as run
    from aiinfra.fleet.prom import Prometheus, parse_duration

    opts = AnalysisOptions(range_s=parse_duration(range), end=end, idle_ratio=idle_ratio,
                           price_per_gpu_hour=price_per_gpu_hour, held_mib=held_mib)
    with Prometheus(prometheus, timeout=timeout) as prom:
        r = run(prom, opts)
    if not keep_heatmap:  # the node × time matrix is for charts; JSON for scripts stays readable
        r.facts = {k: v for k, v in r.facts.items() if k != "heatmap"}
    return r


def check_with_promtool(text: str) -> None:
    """Run `promtool check rules` on plain rule groups; raise with promtool's first complaint."""
    exe = shutil.which("promtool")
    if not exe:
        raise AiinfraError("--check needs promtool (Debian package 'prometheus')")
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        f.write(text)
        f.flush()
        out = subprocess.run([exe, "check", "rules", f.name], capture_output=True, text=True)
    if out.returncode != 0:
        lines = [ln.strip() for ln in (out.stderr + out.stdout).splitlines() if ln.strip() and "Checking" not in ln]
        raise AiinfraError(f"promtool rejects the generated rules: {lines[0] if lines else 'no output'}")


@command("rules", facts=RulesFacts)
def rules(kind: str = "plain", namespace: str | None = None, pod_label: str = "exported_pod", job_regex: str | None = None,
          idle_ratio: float = 0.05, check: bool = False, pod_idle_for: list[str] | None = None) -> Result:
    """Alerting and recording rules, as a plain rules file or a prometheus-operator PrometheusRule.

    `pod_idle_for`: when a pod holding an idle GPU alerts, "1h" or per namespace "research=4h"."""
    from aiinfra.fleet.pod_rules import parse_idle_for
    from aiinfra.fleet.rules import RuleOptions, dump, prometheus_rule, rule_groups

    if kind not in ("plain", "prometheusrule"):
        raise AiinfraError(f"kind must be plain or prometheusrule, not '{kind}'")
    opts = RuleOptions(pod_label=pod_label, idle_ratio=idle_ratio, **({"job_regex": job_regex} if job_regex else {}))
    doc = rule_groups(opts, pods=parse_idle_for(pod_idle_for or []))
    if check:
        check_with_promtool(dump(doc))
    out = prometheus_rule(doc, namespace=namespace) if kind == "prometheusrule" else doc
    r = Result(f"GPU alerting rules ({kind})")
    r.facts = {"kind": kind, "alerts": [x["alert"] for g in doc["groups"] for x in g["rules"] if "alert" in x],
               "records": [x["record"] for g in doc["groups"] for x in g["rules"] if "record" in x],
               "groups": [{"name": g["name"], "rules": [x.get("alert") or x.get("record") for x in g["rules"]]} for g in doc["groups"]],
               "document": out, "text": dump(out)}
    r.assumptions.append(f"workload pod label: {pod_label} (the Helm ServiceMonitor default honorLabels: false gives exported_pod)")
    r.assumptions.append(f"GPU exporter scrape jobs match /{opts.job_regex}/")
    return r


@command("dashboard", facts=DashboardFacts)
def dashboard(title: str = "aiinfra GPU fleet", uid: str = "aiinfra-gpu-fleet", counters: str | Path | None = None,
              only_served: bool = False) -> Result:
    """Grafana dashboard; with a counters CSV, panels whose fields it does not serve are marked (or left out)."""
    from aiinfra.fleet.dashboard import build, expressions, served_names

    names, label = served_names(counters)
    doc, missing = build(title, uid, names, only_served=only_served)
    n_panels = sum(1 for p in doc["panels"] if p["type"] != "row")
    r = Result(f"Grafana dashboard '{title}': {n_panels} panels for {label}")
    r.facts = {"panels": quantity(n_panels, "panels"), "queries": quantity(len(expressions(doc)), "queries"),
               "counters": label, "panels_needing_fields": missing, "dashboard": doc}
    if missing:
        verb = "left out" if only_served else "marked 'needs …'"
        r.warnings.append(f"{len(missing)} panels need fields the counter set does not serve ({verb}): "
                          + "; ".join(f"{m['title']} ← {', '.join(m['enable'])}" for m in missing))
    r.assumptions.append(f"fields served: {label}")
    return r


def top_source(prometheus: str | None = None, exporter: str | None = None, simulate: str | None = None) -> Callable[[], Any]:
    """A function that reads one `top` frame from the chosen source (local NVML when none is given)."""
    from aiinfra.fleet.top import collector_source, exporter_source, prometheus_source

    chosen = [x for x in (prometheus, exporter, simulate) if x]
    if len(chosen) > 1:
        raise AiinfraError("choose one source: --prometheus, --exporter or --simulate (or none for local NVML)")
    if prometheus:
        return prometheus_source(prometheus)
    if exporter:
        return exporter_source(exporter)
    return collector_source(simulate)


@command("top", facts=TopFacts)
def top(prometheus: str | None = None, exporter: str | None = None, simulate: str | None = None) -> Result:
    """One `top` frame as data: header, per-GPU rows (lost ones with when last seen), processes."""
    f = top_source(prometheus, exporter, simulate)()
    gpus = []
    for row in f.rows:
        gpus.append({"host": row.host, "gpu": row.gpu, "mig": row.mig, "model": row.model, "uuid": row.uuid, "pod": row.pod,
                     "busy": None if row.busy is None else quantity(row.busy, "ratio"),
                     "memory_used": None if "fb_used" not in row.values else quantity(row.values["fb_used"], "B"),
                     "memory_used_ratio": None if row.fb_ratio is None else quantity(row.fb_ratio, "ratio"),
                     "power": None if "power" not in row.values else quantity(row.values["power"], "W"),
                     "temperature": None if "temp" not in row.values else quantity(row.values["temp"], "°C"),
                     "xid": row.xid, "lost": row.lost, "last_seen": row.last_seen, "hot": row.hot,
                     "throttle_reasons": row.throttle_reasons, "failing": row.failing})
    procs = [{"host": p.host, "gpu": p.gpu, "mig": p.mig, "pid": p.pid, "user": p.user,
              "memory": None if p.memory_bytes is None else quantity(p.memory_bytes, "B"),
              "busy": None if p.busy is None else quantity(p.busy, "ratio"), "command": p.command} for p in f.procs]
    lost = sum(1 for g in gpus if g["lost"])
    r = Result(f"aiinfra top: {len(gpus)} GPUs/instances from {f.source}" + (f", {lost} lost" if lost else ""))
    import time as _time

    r.facts = {"source": f.source, "driver": f.driver, "cuda": f.cuda, "hosts": f.hosts, "time": f.time,
               "local_time": _time.strftime("%Y-%m-%d %H:%M:%S", _time.localtime(f.time)),  # as the header prints it
               "gpus": gpus, "processes": procs, "lost": quantity(lost, "GPUs")}
    return r


def simulated_fleet(options: Any) -> Result:
    """The web Fleet page's simulated source: one more column of a simulated fleet (kept between calls),
    classified as `analyze` does. `options` has simulate, columns, step_s, idle_ratio, held_mib."""
    from aiinfra.fleet.simfleet import simulate

    return simulate(options)[0]


# The chargeback command lives in its own module; importing it here registers it with the others.
from aiinfra.fleet import chargeback as _chargeback  # noqa: E402,F401

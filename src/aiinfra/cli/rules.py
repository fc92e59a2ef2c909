"""`aiinfra rules`: Prometheus alerting + recording rules for GPU fleets (plain file or PrometheusRule)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from aiinfra.cli.output import ExplainOpt, Format, console, emit

JOB_REGEX = ".*dcgm.*|.*gpu.*|aiinfra.*"  # the library's RuleOptions default, repeated here to keep --help light


class Kind(str, Enum):
    plain = "plain"
    prometheusrule = "prometheusrule"


def rules_cmd(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file (default: stdout).")] = None,
    kind: Annotated[Kind, typer.Option("--kind", help="plain rules file, or a prometheus-operator PrometheusRule object.")] = Kind.plain,
    namespace: Annotated[str | None, typer.Option("--namespace", help="metadata.namespace of the PrometheusRule.")] = None,
    pod_label: Annotated[str, typer.Option("--pod-label", help="Label that holds the workload pod: exported_pod (honorLabels: false), pod, pod_name.")] = "exported_pod",
    job_regex: Annotated[str, typer.Option("--job", help="Regex of the scrape jobs that are GPU exporters.")] = JOB_REGEX,
    idle_ratio: Annotated[float, typer.Option("--idle-below", help="Busy ratio under which an allocated GPU counts as stranded.")] = 0.05,
    check: Annotated[bool, typer.Option("--check", help="Validate with promtool check rules before writing.")] = False,
    pod_idle_for: Annotated[list[str] | None, typer.Option("--pod-idle-for", help="Alert when a pod holds an idle GPU this long: 1h (default) or NAMESPACE=4h for one namespace (repeatable).")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table: the rules file itself; json|yaml: the answer envelope (rules under facts).", case_sensitive=False)] = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Alerting and recording rules: exporter down, lost GPUs, fatal/recurring XIDs, ECC, row remap, throttling, OOM risk, stranded GPUs, NVLink/PCIe."""
    from aiinfra.fleet.commands import rules
    from aiinfra.safeio import write_atomic  # here, not at the top: --help stays light

    r = rules(kind.value, namespace, pod_label, job_regex, idle_ratio, check, pod_idle_for)
    text = r.facts["text"]
    if out is not None:
        write_atomic(out, text, what="rules file")
    if fmt is not Format.table:
        emit(r, fmt, explain)
        return
    if out is None:
        typer.echo(text, nl=False)
        return
    t = Table(title=f"wrote {out}")
    t.add_column("group")
    t.add_column("rules")
    for g in r.facts["groups"]:
        t.add_row(g["name"], ", ".join(g["rules"]))
    console.print(t)

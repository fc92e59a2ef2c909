"""`aiinfra rules`: Prometheus alerting + recording rules for GPU fleets (plain file or PrometheusRule)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from aiinfra.cli.analyze import write_atomic
from aiinfra.cli.output import console
from aiinfra.errors import AiinfraError
from aiinfra.fleet.rules import RuleOptions, dump, prometheus_rule, rule_groups


class Kind(str, Enum):
    plain = "plain"
    prometheusrule = "prometheusrule"


def check_with_promtool(text: str) -> None:
    """Run `promtool check rules` on the plain groups; raise with promtool's first complaint."""
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


def rules_cmd(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file (default: stdout).")] = None,
    kind: Annotated[Kind, typer.Option("--kind", help="plain rules file, or a prometheus-operator PrometheusRule object.")] = Kind.plain,
    namespace: Annotated[str | None, typer.Option("--namespace", help="metadata.namespace of the PrometheusRule.")] = None,
    pod_label: Annotated[str, typer.Option("--pod-label", help="Label that holds the workload pod: exported_pod (honorLabels: false), pod, pod_name.")] = "exported_pod",
    job_regex: Annotated[str, typer.Option("--job", help="Regex of the scrape jobs that are GPU exporters.")] = RuleOptions.job_regex,
    idle_ratio: Annotated[float, typer.Option("--idle-below", help="Busy ratio under which an allocated GPU counts as stranded.")] = 0.05,
    check: Annotated[bool, typer.Option("--check", help="Validate with promtool check rules before writing.")] = False,
    pod_idle_for: Annotated[list[str] | None, typer.Option("--pod-idle-for", help="Alert when a pod holds an idle GPU this long: 1h (default) or NAMESPACE=4h for one namespace (repeatable).")] = None,
) -> None:
    """Alerting and recording rules: exporter down, fatal/recurring XIDs, ECC, row remap, throttling, OOM risk, stranded GPUs, NVLink/PCIe."""
    opts = RuleOptions(job_regex=job_regex, pod_label=pod_label, idle_ratio=idle_ratio)
    from aiinfra.fleet.pod_rules import parse_idle_for

    doc = rule_groups(opts, pods=parse_idle_for(pod_idle_for or []))
    if check:
        check_with_promtool(dump(doc))
    text = dump(prometheus_rule(doc, namespace=namespace) if kind is Kind.prometheusrule else doc)
    if out is None:
        typer.echo(text, nl=False)
        return
    write_atomic(out, text)
    t = Table(title=f"wrote {out}")
    t.add_column("group")
    t.add_column("rules")
    for g in doc["groups"]:
        t.add_row(g["name"], ", ".join(r.get("alert") or r.get("record") for r in g["rules"]))
    console.print(t)

"""`aiinfra k8s render|rollout|lint`: manifests for MIG, time-slicing, MPS, the GPU and Network
Operators, node runbooks, and a linter for existing configs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from aiinfra.cli.output import (
    ExplainOpt,
    Format,
    FormatOpt,
    console,
    emit,
    err_console,
    explain_tree,
)
from aiinfra.errors import SpecError
from aiinfra.explain import Result
from aiinfra.sharing import k8s, lint, mig, packing, timeslice
from aiinfra.sharing.workloads import load_workloads

app = typer.Typer(help="Kubernetes manifests for GPU sharing, rollout runbooks and a config linter.", no_args_is_help=True)
render = typer.Typer(help="Render manifests (YAML to stdout or --output FILE).", no_args_is_help=True)
rollout = typer.Typer(help="Print the ordered, safe kubectl steps for a node change.", no_args_is_help=True)
app.add_typer(render, name="render")
app.add_typer(rollout, name="rollout")

OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write the manifests to this file (atomically) instead of stdout.")]
NodeOpt = Annotated[list[str] | None, typer.Option("--node", help="Node name (repeatable).")]
RenderFormat = Annotated[Format, typer.Option("--format", "-f", help="yaml: the manifests; json: manifests + labels + notes; table: same as yaml.", case_sensitive=False)]


def _out(bundle: k8s.Bundle, fmt: Format, output: Path | None, plan: Result | None = None, explain: bool = False) -> None:
    text = json.dumps(bundle.to_dict(), indent=2) + "\n" if fmt is Format.json else bundle.text()
    if output is not None:
        k8s.write_text_atomic(output, text)
        err_console.print(f"wrote {output}")
    else:
        sys.stdout.write(text)
    if plan is not None:
        if explain:
            for term in plan.terms:
                err_console.print(explain_tree(term))
        for w in plan.warnings:
            err_console.print(f"[yellow]warning:[/] {w}")


@render.command("mig")
def render_mig(
    gpu: Annotated[str, typer.Option("--gpu", help="GPU type (catalog key, MIG table name or PCI ID).")],
    geometry: Annotated[str | None, typer.Option("--geometry", help="One geometry for every GPU, e.g. 3g.40gb,2g.20gb,1g.10gb,1g.10gb.")] = None,
    workloads: Annotated[Path | None, typer.Option("--workloads", help="Plan from workloads instead (needs --gpus).")] = None,
    gpus: Annotated[int | None, typer.Option("--gpus", help="GPUs available (with --workloads).", min=1)] = None,
    nodes: Annotated[int | None, typer.Option("--nodes", help="Nodes available (with --workloads), instead of --gpus.", min=1)] = None,
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", min=1)] = 8,
    node: NodeOpt = None,
    output: OutputOpt = None,
    fmt: RenderFormat = Format.yaml,
    explain: ExplainOpt = False,
) -> None:
    """mig-parted ConfigMap (key config.yaml), node labels nvidia.com/mig.config and example Pods."""
    from aiinfra.cli.mig import plan_bundle, pool_size

    g = mig.mig_gpu(gpu)
    if (geometry is None) == (workloads is None):
        raise SpecError("give exactly one of --geometry or --workloads")
    if geometry is not None:
        counts = dict(mig.parse_geometry(geometry))
        nodes = node or ["gpu-node-0"]
        bundle = k8s.render_mig(g, {n: [("all", counts)] for n in nodes})
        _out(bundle, fmt, output)
        return
    p = packing.plan(g, load_workloads(workloads), pool_size(gpus, nodes, gpus_per_node), gpus_per_node)
    _out(plan_bundle(p, node), fmt, output, p.result, explain)


def _sharing(mode: str, gpu: str, workloads: Path, replicas: int | None, node: list[str] | None, output: Path | None, fmt: Format, explain: bool) -> None:
    mem = timeslice.gpu_memory(gpu)
    r = timeslice.plan_sharing(mode, mem, load_workloads(workloads), replicas)
    cfg = k8s.device_plugin_config(mode, int(r.facts["replicas"]))
    nodes = node or ["gpu-node-0"]
    bundle = k8s.render_sharing(mode, {n: cfg for n in nodes})
    bundle.notes.insert(0, f"{r.facts['copies']} copies need {r.facts['GPUs needed']} {mem.name} GPUs at {r.facts['replicas']} replicas each")
    _out(bundle, fmt, output, r, explain)


@render.command("timeslice")
def render_timeslice(
    gpu: Annotated[str, typer.Option("--gpu")],
    workloads: Annotated[Path, typer.Option("--workloads", help="Workloads with memory_gb.")],
    replicas: Annotated[int | None, typer.Option("--replicas", help="Replicas per GPU (default: what fits in memory).")] = None,
    node: NodeOpt = None,
    output: OutputOpt = None,
    fmt: RenderFormat = Format.yaml,
    explain: ExplainOpt = False,
) -> None:
    """Device-plugin time-slicing ConfigMap, node labels and an example Pod; warns on memory overcommit."""
    _sharing("timeslice", gpu, workloads, replicas, node, output, fmt, explain)


@render.command("mps")
def render_mps(
    gpu: Annotated[str, typer.Option("--gpu")],
    workloads: Annotated[Path, typer.Option("--workloads", help="Workloads with memory_gb.")],
    replicas: Annotated[int | None, typer.Option("--replicas", help="MPS clients per GPU (≤ 48).")] = None,
    node: NodeOpt = None,
    output: OutputOpt = None,
    fmt: RenderFormat = Format.yaml,
    explain: ExplainOpt = False,
) -> None:
    """Device-plugin MPS ConfigMap with per-client memory limits, node labels and an example Pod."""
    _sharing("mps", gpu, workloads, replicas, node, output, fmt, explain)


@render.command("operator")
def render_operator(
    mig_strategy: Annotated[str, typer.Option("--mig-strategy", help="none | single | mixed")] = "mixed",
    mig_config: Annotated[str, typer.Option("--mig-config", help="ConfigMap with the mig-parted config ('' = generated by mig-manager).")] = "custom-mig-config",
    device_plugin_config: Annotated[str | None, typer.Option("--device-plugin-config", help="ConfigMap with device-plugin configs.")] = None,
    device_plugin_default: Annotated[str, typer.Option("--device-plugin-default", help="Default key in that ConfigMap.")] = "",
    rdma: Annotated[bool, typer.Option("--rdma", help="driver.rdma.enabled (nvidia-peermem for GPUDirect RDMA).")] = False,
    host_mofed: Annotated[bool, typer.Option("--host-mofed", help="MOFED installed on the host, not by the Network Operator.")] = False,
    gds: Annotated[bool, typer.Option("--gds", help="Enable GPUDirect Storage.")] = False,
    helm: Annotated[bool, typer.Option("--helm", help="Print the GPU Operator chart values instead of the ClusterPolicy.")] = False,
    output: OutputOpt = None,
    fmt: RenderFormat = Format.yaml,
) -> None:
    """GPU Operator ClusterPolicy (with the Helm values equivalent as comments), or --helm values."""
    kw = {"mig_strategy": mig_strategy, "mig_config": mig_config or None, "device_plugin_config": device_plugin_config,
          "device_plugin_default": device_plugin_default, "rdma": rdma, "use_host_mofed": host_mofed, "gds": gds}
    if helm:
        bundle = k8s.Bundle(docs=[k8s.helm_values(k8s.cluster_policy(**kw))])
        bundle.notes.append("helm upgrade --install gpu-operator nvidia/gpu-operator -n gpu-operator --create-namespace -f values.yaml")
    else:
        bundle = k8s.render_operator(**kw)
    _out(bundle, fmt, output)


@render.command("rdma")
def render_rdma(
    mode: Annotated[str, typer.Option("--mode", help="shared (RDMA shared device + MacvlanNetwork) | hostdev (SR-IOV host device + HostDeviceNetwork)")] = "shared",
    master: Annotated[str, typer.Option("--master", help="Parent netdev for macvlan.")] = "ens1f0",
    cidr: Annotated[str, typer.Option("--cidr", help="whereabouts IP range.")] = "192.168.2.0/24",
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs the example Pod requests.", min=1)] = 1,
    output: OutputOpt = None,
    fmt: RenderFormat = Format.yaml,
) -> None:
    """Network Operator NicClusterPolicy + network, ClusterPolicy with driver.rdma, and an RDMA Pod."""
    _out(k8s.render_rdma(mode, master, cidr, gpus), fmt, output)


def _runbook(title: str, book: dict, fmt: Format) -> None:
    r = Result(title=title, facts={"steps": book["steps"], "rollback": book["rollback"]}, warnings=book["warnings"])
    if fmt is not Format.table:
        emit(r, fmt, False)
        return
    console.print(f"[bold]{title}[/]")
    for i, s in enumerate(book["steps"], 1):
        console.print(f"{i:>2}. {s}", soft_wrap=True, highlight=False)
    console.print("[bold]rollback[/]")
    for i, s in enumerate(book["rollback"], 1):
        console.print(f"{i:>2}. {s}", soft_wrap=True, highlight=False)
    for w in book["warnings"]:
        err_console.print(f"[yellow]warning:[/] {w}")


@rollout.command("mig")
def rollout_mig(
    node: Annotated[list[str], typer.Option("--node", help="Node to reconfigure (repeatable; done one at a time).")],
    config: Annotated[str, typer.Option("--config", help="mig-configs key to apply.")],
    previous: Annotated[str, typer.Option("--previous", help="Config to roll back to.")] = "all-disabled",
    gpu: Annotated[str | None, typer.Option("--gpu", help="With --geometry: print the allocatable to expect.")] = None,
    geometry: Annotated[str | None, typer.Option("--geometry", help="Geometry the config creates on each GPU.")] = None,
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", min=1)] = 8,
    fmt: FormatOpt = Format.table,
) -> None:
    """cordon → drain GPU pods → label → wait for mig.config.state=success → verify → uncordon."""
    expect = None
    if gpu and geometry:
        g = mig.mig_gpu(gpu)
        check = mig.validate(g, geometry)
        if not check.valid:
            raise SpecError(f"geometry {geometry} is not valid on {g.name}: {'; '.join(check.reasons)}")
        expect = {g.profiles[p].resource_name: n * gpus_per_node for p, n in check.counts.items()}
    _runbook(f"MIG reconfiguration to '{config}'", k8s.rollout_mig(node, config, previous, expect=expect), fmt)


@rollout.command("driver")
def rollout_driver(
    node: Annotated[list[str], typer.Option("--node", help="Node to upgrade (repeatable; done one at a time).")],
    version: Annotated[str, typer.Option("--version", help="Target driver version, e.g. 595.91.07.")],
    previous: Annotated[str, typer.Option("--previous", help="Version to roll back to.")],
    fmt: FormatOpt = Format.table,
) -> None:
    """cordon → drain GPU pods → restart the driver pod → wait Ready → verify → uncordon."""
    _runbook(f"GPU driver upgrade to {version}", k8s.rollout_driver(node, version, previous), fmt)


@app.command("lint")
def lint_cmd(
    files: Annotated[list[Path], typer.Argument(help="mig-parted, device-plugin, ClusterPolicy, Helm values or Network Operator YAML.")],
    fmt: FormatOpt = Format.table,
) -> None:
    """Report every violation of the sharing checklist with file, YAML path and fix; exit 1 on errors."""
    findings = lint.lint_files(files)
    errors = sum(f.severity == "error" for f in findings)
    if fmt is Format.table:
        # One finding per line, like a compiler: file, YAML path, severity, rule, message, fix.
        for f in findings:
            style = {"error": "red", "warning": "yellow"}.get(f.severity, "cyan")
            console.print(f"{f.file}: {f.path or '<root>'}: [{style}]{f.severity}[/] \\[{f.rule}] {f.message} — fix: {f.fix}", soft_wrap=True, highlight=False)
        console.print(f"{len(findings)} findings ({errors} errors) in {len(files)} file(s)", highlight=False)
    else:
        emit(Result(title="lint", facts={"findings": [f.to_dict() for f in findings], "errors": errors}), fmt, False)
    if errors:
        raise typer.Exit(1)

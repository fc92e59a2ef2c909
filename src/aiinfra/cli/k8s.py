"""`aiinfra k8s render|rollout|lint`: parse options, call sharing/commands.py, render the Result.

Render commands print the manifests (YAML) by default (or write them with --output); with --format
json|yaml they print the Result envelope every command prints, whose facts carry the manifests,
documents, node labels and notes. Every command takes --explain (the Result's terms, when it has any)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, console, emit, err_console, explain_tree
from aiinfra.explain import Result

app = typer.Typer(help="Kubernetes manifests for GPU sharing and DRA, rollout runbooks and a config linter.", no_args_is_help=True)
render = typer.Typer(help="Render manifests (YAML to stdout or --output FILE).", no_args_is_help=True)
rollout = typer.Typer(help="Print the ordered, safe kubectl steps for a node change.", no_args_is_help=True)
app.add_typer(render, name="render")
app.add_typer(rollout, name="rollout")

OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write the manifests to this file (atomically, 0644) instead of stdout.")]
NodeOpt = Annotated[list[str] | None, typer.Option("--node", help="Node name (repeatable).")]
RenderFormat = Annotated[Format, typer.Option("--format", "-f", help="table: the manifests (YAML stream); json|yaml: the result envelope whose facts carry the manifests, documents, labels and notes.", case_sensitive=False)]
K8sVersionOpt = Annotated[str, typer.Option("--k8s-version", help="Kubernetes release the objects are for (1.32–1.36).")]


def _out(r: Result, fmt: Format, output: Path | None, explain: bool = False) -> None:
    """table (the default): the manifests on stdout (or in --output); json/yaml: the Result envelope
    (facts carry the manifests, documents, labels and notes), and with --output the manifests go to the file."""
    from aiinfra.safeio import write_atomic

    if output is not None:
        write_atomic(output, r.facts["manifests"], what="manifests")
        err_console.print(f"wrote {output}")
    if fmt is not Format.table:
        emit(r, fmt, explain)
        return
    if output is None:
        sys.stdout.write(r.facts["manifests"])
    if explain:
        for term in r.terms:
            err_console.print(explain_tree(term))
    for w in r.warnings:
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
    fmt: RenderFormat = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """mig-parted ConfigMap (key config.yaml), node labels nvidia.com/mig.config and example Pods."""
    from aiinfra.sharing.commands import k8s_render_mig

    _out(k8s_render_mig(gpu, geometry, workloads, gpus, nodes, gpus_per_node, node), fmt, output, explain)


@render.command("timeslice")
def render_timeslice(
    gpu: Annotated[str, typer.Option("--gpu")],
    workloads: Annotated[Path, typer.Option("--workloads", help="Workloads with memory_gb.")],
    replicas: Annotated[int | None, typer.Option("--replicas", help="Replicas per GPU (default: what fits in memory).")] = None,
    node: NodeOpt = None,
    output: OutputOpt = None,
    fmt: RenderFormat = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Device-plugin time-slicing ConfigMap, node labels and an example Pod; warns on memory overcommit."""
    from aiinfra.sharing.commands import k8s_render_timeslice

    _out(k8s_render_timeslice(gpu, workloads, replicas, node), fmt, output, explain)


@render.command("mps")
def render_mps(
    gpu: Annotated[str, typer.Option("--gpu")],
    workloads: Annotated[Path, typer.Option("--workloads", help="Workloads with memory_gb.")],
    replicas: Annotated[int | None, typer.Option("--replicas", help="MPS clients per GPU (≤ 48).")] = None,
    node: NodeOpt = None,
    output: OutputOpt = None,
    fmt: RenderFormat = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Device-plugin MPS ConfigMap with per-client memory limits, node labels and an example Pod."""
    from aiinfra.sharing.commands import k8s_render_mps

    _out(k8s_render_mps(gpu, workloads, replicas, node), fmt, output, explain)


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
    fmt: RenderFormat = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """GPU Operator ClusterPolicy (with the Helm values equivalent as comments), or --helm values."""
    from aiinfra.sharing.commands import k8s_render_operator

    _out(k8s_render_operator(mig_strategy, mig_config, device_plugin_config, device_plugin_default, rdma, host_mofed, gds, helm), fmt, output, explain)


@render.command("rdma")
def render_rdma(
    mode: Annotated[str, typer.Option("--mode", help="shared (RDMA shared device + MacvlanNetwork) | hostdev (SR-IOV host device + HostDeviceNetwork)")] = "shared",
    master: Annotated[str, typer.Option("--master", help="Parent netdev for macvlan.")] = "ens1f0",
    cidr: Annotated[str, typer.Option("--cidr", help="Subnet of the nv-ipam IPPool the RDMA network takes addresses from.")] = "192.168.2.0/24",
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs the example Pod requests.", min=1)] = 1,
    per_node_ips: Annotated[int, typer.Option("--per-node-ips", help="Addresses nv-ipam reserves for each node (the pool's perNodeBlockSize).")] = 16,
    output: OutputOpt = None,
    fmt: RenderFormat = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Network Operator NicClusterPolicy, nv-ipam IPPool and network, ClusterPolicy with driver.rdma, and an RDMA Pod."""
    from aiinfra.sharing.commands import k8s_render_rdma

    _out(k8s_render_rdma(mode, master, cidr, gpus, per_node_ips), fmt, output, explain)


@render.command("dra")
def render_dra(
    gpu: Annotated[str, typer.Option("--gpu", help="GPU type (catalog key).")],
    k8s_version: K8sVersionOpt = "1.34",
    namespace: Annotated[str, typer.Option("--namespace", help="Namespace of claims and Pods.")] = "default",
    gpus_per_claim: Annotated[int, typer.Option("--gpus-per-claim", help="Whole GPUs per claim in the whole-GPU template (0: none).", min=0)] = 1,
    mig: Annotated[list[str] | None, typer.Option("--mig", help="MIG profiles to claim, e.g. 1g.10gb,3g.40gb (repeatable).")] = None,
    mig_mode: Annotated[str, typer.Option("--mig-mode", help="static: mig-manager pre-creates the instances; dynamic: the driver creates them on demand.")] = "static",
    share: Annotated[str | None, typer.Option("--share", help="timeslice or mps: one GPU shared by several Pods through the driver's GpuConfig.")] = None,
    interval: Annotated[str, typer.Option("--interval", help="Time-slice interval: Default, Short, Medium, Long.")] = "Default",
    mps_threads: Annotated[int | None, typer.Option("--mps-threads", help="MPS default active thread percentage (1–100).")] = None,
    mps_memory: Annotated[str | None, typer.Option("--mps-memory", help="MPS pinned device memory limit per client, e.g. 10Gi.")] = None,
    compute_domain_nodes: Annotated[int, typer.Option("--compute-domain-nodes", help="A ComputeDomain spanning this many nodes (multi-node NVLink).", min=0)] = 0,
    kueue_quota: Annotated[int, typer.Option("--kueue-quota", help="Kueue ResourceFlavor/ClusterQueue with this many devices per class (0: none).", min=0)] = 0,
    no_gpu_cluster: Annotated[bool, typer.Option("--no-gpu-cluster", help="Leave out the GPU Operator GPUCluster (driver installed by its Helm chart).")] = False,
    output: OutputOpt = None,
    fmt: RenderFormat = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """DRA: DeviceClasses, ResourceClaimTemplates (whole GPUs, MIG, shared), ComputeDomain, Pods, GPUCluster, Kueue quota."""
    from aiinfra.sharing.commands import k8s_render_dra

    r = k8s_render_dra(gpu, k8s_version, namespace, gpus_per_claim, mig, mig_mode, share, interval, mps_threads, mps_memory,
                       compute_domain_nodes, kueue_quota, not no_gpu_cluster)
    _out(r, fmt, output, explain)  # a file that cannot be written fails first, as its one line
    for n in r.facts["notes"]:
        err_console.print(f"note: {n}", highlight=False, soft_wrap=True)


def _runbook(r: Result, fmt: Format, explain: bool = False) -> None:
    if fmt is not Format.table:
        emit(r, fmt, explain)
        return
    console.print(f"[bold]{r.title}[/]")
    for i, s in enumerate(r.facts["steps"], 1):
        console.print(f"{i:>2}. {s}", soft_wrap=True, highlight=False)
    console.print("[bold]rollback[/]")
    for i, s in enumerate(r.facts["rollback"], 1):
        console.print(f"{i:>2}. {s}", soft_wrap=True, highlight=False)
    if explain:
        for term in r.terms:
            console.print(explain_tree(term))
    for w in r.warnings:
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
    explain: ExplainOpt = False,
) -> None:
    """cordon → drain GPU pods → label → wait for mig.config.state=success → verify → uncordon."""
    from aiinfra.sharing.commands import k8s_rollout_mig

    _runbook(k8s_rollout_mig(node, config, previous, gpu, geometry, gpus_per_node), fmt, explain)


@rollout.command("driver")
def rollout_driver(
    node: Annotated[list[str], typer.Option("--node", help="Node to upgrade (repeatable; done one at a time).")],
    version: Annotated[str, typer.Option("--version", help="Target driver version, e.g. 595.91.07.")],
    previous: Annotated[str, typer.Option("--previous", help="Version to roll back to.")],
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """cordon → drain GPU pods → restart the driver pod → wait Ready → verify → uncordon."""
    from aiinfra.sharing.commands import k8s_rollout_driver

    _runbook(k8s_rollout_driver(node, version, previous), fmt, explain)


@rollout.command("dra")
def rollout_dra(
    node: Annotated[list[str], typer.Option("--node", help="Node to move to DRA (repeatable; done one at a time).")],
    gpu: Annotated[str, typer.Option("--gpu", help="GPU type of the nodes (catalog key), for the test claim.")],
    k8s_version: K8sVersionOpt = "1.34",
    namespace: Annotated[str, typer.Option("--namespace", help="Namespace of the GPU Operator and the DRA driver.")] = "gpu-operator",
    driver_version: Annotated[str, typer.Option("--driver-version", help="NVIDIA DRA driver chart version for the interim install.")] = "v0.4.0",
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Device plugin + ClusterPolicy → DRA driver, node by node, then ClusterPolicy → GPUCluster; verify and roll back."""
    from aiinfra.sharing.commands import k8s_rollout_dra

    _runbook(k8s_rollout_dra(node, gpu, k8s_version, namespace, driver_version), fmt, explain)


@app.command("lint")
def lint_cmd(
    files: Annotated[list[Path], typer.Argument(help="mig-parted, device-plugin, ClusterPolicy, Helm values, DRA, Kueue or Network Operator YAML.")],
    k8s_version: K8sVersionOpt = "1.34",
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Report every violation with file, YAML path and fix; exit 1 on errors."""
    from aiinfra.sharing.commands import k8s_lint

    r = k8s_lint(files, k8s_version)
    errors = r.facts["errors"]
    if fmt is Format.table:
        # One finding per line, like a compiler: file, YAML path, severity, rule, message, fix.
        for f in r.facts["findings"]:
            style = {"error": "red", "warning": "yellow"}.get(f["severity"], "cyan")
            console.print(f"{escape(f['file'])}: {escape(f['path'] or '<root>')}: [{style}]{f['severity']}[/] \\[{f['rule']}] "
                          f"{escape(f['message'])} — fix: {escape(f['fix'])}", soft_wrap=True, highlight=False)
        console.print(f"{len(r.facts['findings'])} findings ({errors} errors) in {len(files)} file(s)", highlight=False)
        if explain:
            for term in r.terms:
                console.print(explain_tree(term))
    else:
        emit(r, fmt, explain)
    if errors:
        raise typer.Exit(1)

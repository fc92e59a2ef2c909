"""`aiinfra mig profiles|geometries|validate|plan`: parse options, call sharing/commands.py, render."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, console, emit, err_console, fmt_value
from aiinfra.explain import Result

app = typer.Typer(help="MIG profiles, valid geometries, geometry checks and exact packing plans.", no_args_is_help=True)

GpuArg = Annotated[str, typer.Argument(help="GPU: catalog key (h100-sxm), MIG table name (a100-80gb) or PCI ID (0x2330).")]


def _profiles_table(r: Result) -> Table:
    if "assumed" in r.facts:
        t = Table(title=r.title)
        for c in ("GPU", "item", "status", "source"):
            t.add_column(c)
        for row in r.facts["assumed"]:
            t.add_row(row["gpu"], row["item"], row["status"], row["source"])
        return t
    t = Table(title=r.title, caption=f"placements: {r.facts.get('placements')} — {r.facts.get('placements source')}")
    for c in ("profile", "GI id", "compute", "mem slots", "starts", "max", "usable GiB", "resource", "min driver"):
        t.add_column(c)
    for row in r.facts["profiles"]:
        t.add_row(
            row["profile"], str(row["gi_id"] if row["gi_id"] is not None else "-"), str(row["compute_slices"]), str(row["memory_slots"]),
            "{" + ",".join(map(str, row["starts"])) + f"}}:{row['memory_slots']}", str(row["max"]),
            f"{row['usable_gib']:.2f}" if row["usable_gib"] else "-", row["resource"], row["min_driver"] or "-",
        )
    return t


@app.command()
def profiles(
    gpu: Annotated[str | None, typer.Argument(help="GPU: catalog key, MIG table name or PCI ID (optional with --assumed).")] = None,
    assumed: Annotated[bool, typer.Option("--assumed", help="List what the MIG tables assume or derive instead of reading it from a primary source.")] = False,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Profiles of a GPU: slices, placements (nvidia-smi mig -lgipp), caps, resource names, and their source."""
    from aiinfra.sharing.commands import mig_profiles

    emit(mig_profiles(gpu, assumed), fmt, explain, table=_profiles_table)


@app.command()
def geometries(
    gpu: GpuArg,
    variants: Annotated[bool, typer.Option("--variants", help="Include +me/-me/+gfx profiles.")] = False,
    maximal: Annotated[bool, typer.Option("--maximal", help="Only geometries no profile can be added to.")] = False,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Every valid geometry of a GPU (placement search over the slot model)."""
    from aiinfra.sharing.commands import mig_geometries

    def table(res: Result) -> Table:
        t = Table(title=res.title)
        for c in ("#", "geometry", "compute", "slots", "placement"):
            t.add_column(c)
        for i, row in enumerate(res.facts["geometries"], 1):
            t.add_row(str(i), row["geometry"], str(row["compute"]), str(row["slots"]), row["placement"])
        return t

    emit(mig_geometries(gpu, variants, maximal), fmt, explain, table=table)


@app.command("validate")
def validate_cmd(
    gpu: GpuArg,
    geometry: Annotated[str, typer.Argument(help="Profiles, e.g. 3g.40gb,2g.20gb,1g.10gb,1g.10gb or 1g.10gb:7 or with starts 3g.40gb@4.")],
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Check a geometry; print one placement when valid, every reason when not (exit 1)."""
    from aiinfra.sharing.commands import mig_validate

    r = mig_validate(gpu, geometry)
    emit(r, fmt, explain)
    if not r.facts["valid"]:
        raise typer.Exit(1)


@app.command()
def plan(
    gpu: Annotated[str, typer.Option("--gpu", help="GPU type of the pool (catalog key, MIG table name or PCI ID).")],
    workloads: Annotated[Path, typer.Option("--workloads", help="YAML list of workloads (profile or memory_gb, count, isolation).")],
    gpus: Annotated[int | None, typer.Option("--gpus", help="GPUs available in all (or give --nodes).", min=1)] = None,
    nodes: Annotated[int | None, typer.Option("--nodes", help="Nodes available; GPUs = nodes × --gpus-per-node.", min=1)] = None,
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", help="GPUs per node.", min=1)] = 8,
    manifests: Annotated[Path | None, typer.Option("--manifests", help="Write the manifests (see --emit) to this file.")] = None,
    emit_kind: Annotated[str | None, typer.Option("--emit", help="mig-parted (ConfigMap, labels, Pods; default with --manifests) or dra (ResourceClaims, GPUCluster); without --manifests the YAML goes to stdout.")] = None,
    k8s_version: Annotated[str, typer.Option("--k8s-version", help="Kubernetes release for --emit dra (1.32–1.36).")] = "1.34",
    mig_mode: Annotated[str, typer.Option("--mig-mode", help="--emit dra: dynamic (driver creates MIG on demand) or static (mig-parted pre-creates).")] = "dynamic",
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Pack workloads on the fewest GPUs (exact, HiGHS) and compare with nos's first-fit."""
    from aiinfra.safeio import write_atomic
    from aiinfra.sharing.commands import mig_plan

    kind = emit_kind or ("mig-parted" if manifests is not None else None)
    r = mig_plan(gpu, workloads, gpus, nodes, gpus_per_node, emit=kind, k8s_version=k8s_version, mig_mode=mig_mode)
    text = r.facts.pop("manifests", None)
    notes = r.facts.pop("manifest notes", [])
    if text is not None and manifests is not None:
        write_atomic(manifests, text, what="manifests")
        err_console.print(f"wrote {manifests}")
    elif text is not None and fmt is not Format.table:
        r.facts["manifests"] = text  # scripts get the manifests inside the JSON/YAML answer
    elif text is not None:
        sys.stdout.write(text)
        for n in notes:
            err_console.print(f"note: {n}", highlight=False)
        return
    emit(r, fmt, explain, table=_plan_table)


def _plan_table(r: Result) -> Table:
    t = Table(title=r.title)
    for c in ("gpu", "node", "device", "geometry", "workloads"):
        t.add_column(c)
    for row in r.facts.get("per GPU", []):
        t.add_row(str(row["gpu"]), str(row["node"]), str(row["device"]), row["geometry"], ", ".join(row["workloads"]))
    console.print(t)
    s = Table(title="summary")
    s.add_column("item")
    s.add_column("value", justify="right")
    for term in r.terms:
        nan = isinstance(term.value, float) and term.value != term.value
        s.add_row(term.name, "cannot place all" if nan else fmt_value(term.value, term.unit))
    for k in ("method", "optimal", "GPUs available", "GPUs used", "nos first-fit GPUs", "time-sliced GPUs", "time-slicing replicas"):
        if k in r.facts:
            s.add_row(k, str(r.facts[k]))
    return s

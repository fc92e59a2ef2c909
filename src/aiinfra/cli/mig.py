"""`aiinfra mig profiles|geometries|validate|plan`: MIG tables, placements and exact packing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, console, emit, fmt_value
from aiinfra.explain import Result, Term
from aiinfra.sharing import k8s, mig, packing
from aiinfra.sharing.workloads import load_workloads

app = typer.Typer(help="MIG profiles, valid geometries, geometry checks and exact packing plans.", no_args_is_help=True)

GpuArg = Annotated[str, typer.Argument(help="GPU: catalog key (h100-sxm), MIG table name (a100-80gb) or PCI ID (0x2330).")]


def profiles_result(gpu: mig.MigGpu) -> Result:
    rows = mig.placement_table(gpu)
    terms = []
    if gpu.total_memory_mib:
        for p in gpu.profiles.values():
            if p.usable_gib is None:
                continue
            gb = mig.profile_name_gb(p.usable_gib * 1024, gpu.total_memory_mib)
            terms.append(
                Term(
                    f"{p.name} name GB",
                    gb,
                    "GB",
                    formula="round(ceil(mem / total × 8) / 8 × ceil(total GiB))",
                    inputs={"mem (MiB)": p.usable_gib * 1024, "total (MiB)": gpu.total_memory_mib},
                    sources={"formula": "NVIDIA/go-nvlib getMigMemorySizeGB", "mem": gpu.source},
                )
            )
    return Result(
        title=f"MIG profiles of {gpu.name} (PCI {', '.join(gpu.pci_device_ids)})",
        terms=terms,
        facts={"gpu": gpu.catalog_gpu or gpu.name, "memory slots": gpu.memory_slots, "compute slices": gpu.compute_slices, "profiles": rows, "source": gpu.source},
    )


def _profiles_table(r: Result) -> Table:
    t = Table(title=r.title)
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
def profiles(gpu: GpuArg, fmt: FormatOpt = Format.table, explain: ExplainOpt = False) -> None:
    """Profiles of a GPU: slices, placements (nvidia-smi mig -lgipp), caps, resource names."""
    emit(profiles_result(mig.mig_gpu(gpu)), fmt, explain, table=_profiles_table)


@app.command()
def geometries(
    gpu: GpuArg,
    variants: Annotated[bool, typer.Option("--variants", help="Include +me/-me/+gfx profiles.")] = False,
    maximal: Annotated[bool, typer.Option("--maximal", help="Only geometries no profile can be added to.")] = False,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Every valid geometry of a GPU (placement search over the slot model)."""
    g = mig.mig_gpu(gpu)
    geos = mig.geometries(g, variants=variants, maximal=maximal)
    count = Term("geometries", len(geos), "", formula="count of multisets with a non-overlapping placement",
                 inputs={"variants": variants, "maximal only": maximal}, sources={"placement rules": g.layout_source})
    rows = []
    for geo in geos:
        check = mig.validate(g, geo)
        rows.append({"geometry": mig.geometry_label(geo), "profiles": geo, "compute": check.compute_used, "slots": check.slots_used,
                     "placement": ", ".join(f"{p}@{s}" for p, s, _ in check.placement)})
    r = Result(title=f"{len(geos)} {'maximal ' if maximal else ''}geometries of {g.name}", terms=[count], facts={"gpu": g.catalog_gpu or g.name, "count": len(geos), "geometries": rows})

    def table(res: Result) -> Table:
        t = Table(title=res.title)
        for c in ("#", "geometry", "compute", "slots", "placement"):
            t.add_column(c)
        for i, row in enumerate(res.facts["geometries"], 1):
            t.add_row(str(i), row["geometry"], str(row["compute"]), str(row["slots"]), row["placement"])
        return t

    emit(r, fmt, explain, table=table)


@app.command("validate")
def validate_cmd(
    gpu: GpuArg,
    geometry: Annotated[str, typer.Argument(help="Profiles, e.g. 3g.40gb,2g.20gb,1g.10gb,1g.10gb or 1g.10gb:7 or with starts 3g.40gb@4.")],
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Check a geometry; print one placement when valid, every reason when not (exit 1)."""
    g = mig.mig_gpu(gpu)
    c = mig.validate(g, geometry)
    terms = [
        Term("compute slices", c.compute_used, "slices", formula="Σ compute of the instances", inputs={"limit": g.compute_slices}),
        Term("memory slots", c.slots_used, "slots", formula="Σ memory slots of the instances", inputs={"limit": g.memory_slots}, sources={"slots": g.layout_source}),
    ]
    facts = {"gpu": g.catalog_gpu or g.name, "geometry": mig.geometry_label(c.counts), "valid": c.valid}
    if c.valid:
        facts["placement"] = ", ".join(f"{p}@{s}" for p, s, _ in c.placement)
    else:
        facts["reasons"] = "; ".join(c.reasons)
    r = Result(title=f"{'valid' if c.valid else 'INVALID'} on {g.name}", terms=terms, facts=facts, warnings=c.notes)
    emit(r, fmt, explain)
    if not c.valid:
        raise typer.Exit(1)


@app.command()
def plan(
    gpu: Annotated[str, typer.Option("--gpu", help="GPU type of the pool (catalog key, MIG table name or PCI ID).")],
    workloads: Annotated[Path, typer.Option("--workloads", help="YAML list of workloads (profile or memory_gb, count, isolation).")],
    gpus: Annotated[int | None, typer.Option("--gpus", help="GPUs available in all (or give --nodes).", min=1)] = None,
    nodes: Annotated[int | None, typer.Option("--nodes", help="Nodes available; GPUs = nodes × --gpus-per-node.", min=1)] = None,
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", help="GPUs per node.", min=1)] = 8,
    manifests: Annotated[Path | None, typer.Option("--manifests", help="Also write the mig-parted ConfigMap, labels and Pods here.")] = None,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Pack workloads on the fewest GPUs (exact, HiGHS) and compare with nos's first-fit."""
    g = mig.mig_gpu(gpu)
    p = packing.plan(g, load_workloads(workloads), pool_size(gpus, nodes, gpus_per_node), gpus_per_node)
    if manifests is not None:
        k8s.write_text_atomic(manifests, plan_bundle(p).text())
    emit(p.result, fmt, explain, table=_plan_table)


def pool_size(gpus: int | None, nodes: int | None, gpus_per_node: int) -> int:
    """GPUs available: --gpus, or --nodes × --gpus-per-node (e.g. 4 nodes × 8 H100), within the bounds."""
    from aiinfra.sharing.workloads import pool

    return pool(gpus, nodes, gpus_per_node).gpus


def plan_bundle(p: packing.Plan, node_names: list[str] | None = None) -> k8s.Bundle:
    layout = packing.node_layout(p)
    names = node_names or [f"gpu-node-{i}" for i in range(len(layout))]
    if len(names) < len(layout):
        from aiinfra.errors import SpecError

        raise SpecError(f"the plan uses {len(layout)} nodes but only {len(names)} --node names were given")
    per_node = {names[n]: entries for n, entries in layout.items() if any(geo for _, geo in entries)}
    bundle = k8s.render_mig(p.gpu, per_node) if per_node else k8s.Bundle()
    if p.shared_gpus:
        first = p.mig.gpus_used if p.mig else 0
        shared_node_ids = sorted({i // p.gpus_per_node for i in range(first, first + p.shared_gpus)})
        shared_nodes = {names[n]: k8s.device_plugin_config("timeslice", p.replicas, mig_strategy="mixed") for n in shared_node_ids}
        ts = k8s.render_sharing("timeslice", shared_nodes)
        bundle.docs += ts.docs
        for node, labels in ts.labels.items():
            bundle.labels.setdefault(node, {}).update(labels)
        bundle.notes += ts.notes
    return bundle


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

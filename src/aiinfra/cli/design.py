"""`aiinfra design`: parse the options, call aiinfra.cluster.commands.design, render its Result."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Group
from rich.table import Table

from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, emit
from aiinfra.explain import Result


def design(
    gpus: Annotated[int | None, typer.Option("--gpus", "-n", help="GPU count (rounded up to whole nodes).")] = None,
    node: Annotated[str | None, typer.Option(help="Node type: dgx-h100, dgx-h200, dgx-b200, dgx-b300, hgx-h100, gb200-nvl72, gb300-nvl72, …")] = None,
    nics: Annotated[int | None, typer.Option(help="Compute NICs per node (generic HGX only, 2–8).")] = None,
    fabric: Annotated[str | None, typer.Option(help="Compute switch or fabric: qm9700/ndr, q3400/xdr, sn5600/roce (Spectrum-X), qm8700/hdr (default: the node's RA fabric).")] = None,
    oversubscription: Annotated[str | None, typer.Option("--oversubscription", "-o", help="Leaf down:up ratio, e.g. 1:1, 2:1, 4:3.")] = None,
    rail_optimized: Annotated[bool | None, typer.Option("--rail-optimized/--no-rail-optimized", help="Rail r of every node on leaf r of its SU.")] = None,
    tiers: Annotated[int | None, typer.Option(help="Fabric tiers 1, 2 or 3 (default: 2 if it fits, else 3).")] = None,
    ufm_links: Annotated[int | None, typer.Option(help="UFM links on compute leaves (default 4 on InfiniBand).")] = None,
    storage_tier: Annotated[str | None, typer.Option(help="RA storage tier: good, better, best.")] = None,
    storage_switch: Annotated[str | None, typer.Option(help="Storage-fabric switch (default qm9700 on IB, sn5600 on Ethernet).")] = None,
    dataset_tb: Annotated[float, typer.Option(help="Dataset size in TB (1e12 B).")] = 0.0,
    copies: Annotated[int | None, typer.Option(help="Working copies of the datasets (default 3).")] = None,
    checkpoints_kept: Annotated[int | None, typer.Option(help="Full checkpoints kept on the file system (default 5).")] = None,
    params: Annotated[str | None, typer.Option(help="Model parameters, e.g. 70B (for checkpoints and all-reduce).")] = None,
    model: Annotated[str | None, typer.Option(help="Catalog model or config.json instead of --params.")] = None,
    bytes_per_param: Annotated[float | None, typer.Option(help="Checkpoint bytes per parameter (default 14).")] = None,
    grad_bytes: Annotated[float, typer.Option("--grad-bytes-per-param", help="Gradient bytes per parameter (2 = bf16).")] = 2.0,
    dp: Annotated[int | None, typer.Option(help="Data-parallel ranks in the all-reduce (default: all GPUs).")] = None,
    gds: Annotated[bool, typer.Option("--gds/--no-gds", help="GPUDirect Storage on or off.")] = True,
    samples_per_s: Annotated[float | None, typer.Option(help="Samples/s each GPU consumes (data-loading check).")] = None,
    bytes_per_sample: Annotated[float | None, typer.Option(help="Bytes read per sample (data-loading check).")] = None,
    failure_rate: Annotated[float | None, typer.Option(help="Job interruptions per GPU-hour (default: Llama 3's 2.19e-5).")] = None,
    rack_kw: Annotated[float | None, typer.Option(help="Rack power budget in kW (default 41: 4 × DGX H100).")] = None,
    pue: Annotated[float | None, typer.Option(help="Power usage effectiveness (default 1.3).")] = None,
    load_factor: Annotated[float, typer.Option(help="Average / maximum power for energy per year.")] = 1.0,
    storage_kw: Annotated[float, typer.Option(help="Storage-system power in kW (vendor figure).")] = 0.0,
    control_nodes: Annotated[int | None, typer.Option(help="Control-plane servers (default 5).")] = None,
    preset: Annotated[str | None, typer.Option(help="Reference architecture: basepod, dgx-pod, superpod (GB200/GB300 NVL72: superpod).")] = None,
    su: Annotated[int | None, typer.Option(help="Scalable units for --preset dgx-pod|superpod (32 DGX, or 8 NVL72 racks).")] = None,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Design a GPU cluster: fabric, storage, management, racks, power and cooling, and a BOM with reasons."""
    from aiinfra.cluster.commands import DesignSpec
    from aiinfra.cluster.commands import design as run

    spec = DesignSpec(
        gpus=gpus, node=node, nics=nics, fabric=fabric, oversubscription=oversubscription, rail_optimized=rail_optimized,
        tiers=tiers, ufm_links=ufm_links, storage_tier=storage_tier, storage_switch=storage_switch, dataset_tb=dataset_tb,
        copies=copies, checkpoints_kept=checkpoints_kept, params=params, model=model, bytes_per_param=bytes_per_param,
        grad_bytes_per_param=grad_bytes, dp=dp, gds=gds, samples_per_s=samples_per_s, bytes_per_sample=bytes_per_sample,
        failure_rate=failure_rate, rack_kw=rack_kw, pue=pue, load_factor=load_factor, storage_kw=storage_kw,
        control_nodes=control_nodes, preset=preset, su=su,
    )
    emit(run(spec), fmt, explain, table=tables)


def tables(r: Result) -> Group:
    from aiinfra.cluster.commands import summary_rows

    summary = Table(title=r.title)
    summary.add_column("item")
    summary.add_column("value", justify="right")
    for t, text in summary_rows(r):
        summary.add_row(t.name, text)
    for key in ("scale", "recommended_preset", "cooling", "hops"):
        if r.facts.get(key):
            summary.add_row(key.replace("_", " "), str(r.facts[key]))

    bom = Table(title="Bill of materials")
    for col in ("category", "item", "qty", "unit W", "total kW", "reason"):
        bom.add_column(col, justify="right" if col in ("qty", "unit W", "total kW") else "left")
    for i in r.facts["bom"]:
        qty = f"{i['quantity']:,.3f} {i['unit']}" if i["unit"] != "each" else f"{i['quantity']:,.0f}"
        bom.add_row(i["category"], i["item"], qty, f"{i['unit_power_w']:,.0f}", f"{i['power_kw']:,.1f}", i["reason"])

    tiers = Table(title="Per tier")
    for col in ("fabric", "tier", "switches", "model", "switch transceivers", "links below", "cables below"):
        tiers.add_column(col)
    for row in r.facts["per_tier"]:
        xcvr = "" if row["switch_transceivers"] is None else f"{row['switch_transceivers']:,}"
        tiers.add_row(row["fabric"], row["tier"], str(row["switches"]), row["model"], xcvr,
                      row["links_below"], f"{row['cables_below']:,}")

    racks = Table(title="Rack plan")
    for col in ("racks", "nodes (U for network)", "kW per rack", "cooling"):
        racks.add_column(col, justify="right" if col.startswith(("nodes", "kW")) else "left")
    for row in r.facts["rack_plan"]:
        racks.add_row(row["rack"], str(row.get("nodes", row.get("units"))), f"{row['kW']:,.1f}", row["cooling"])
    parts = [summary, bom, tiers, racks]
    loading = r.facts.get("data_loading")
    if loading:
        dl = Table(title="Data loading")
        dl.add_column("check")
        dl.add_column("result")
        dl.add_row("GPUs fed", "yes" if loading["fed"] else "no")
        for remedy in loading["remedies"]:
            dl.add_row("remedy", remedy)
        parts.append(dl)
    return Group(*parts)

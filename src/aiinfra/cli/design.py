"""`aiinfra design`: a GPU cluster's compute fabric, storage, management, racks, power and BOM."""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich.console import Group
from rich.table import Table

from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, emit
from aiinfra.cluster.design import DesignInput, design_cluster
from aiinfra.cluster.reference import preset_settings
from aiinfra.errors import SpecError
from aiinfra.explain import Result, Term

_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_count(text: str | None) -> float | None:
    """'70B', '405e9', '1.5T' → a number of parameters."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmbgt]?)\s*", text.lower())
    if not m:
        raise SpecError(f"parameter count '{text}' is not a number like 70B, 405e9 or 1.5T")
    return float(m.group(1)) * (_SUFFIX[m.group(2)] if m.group(2) else 1.0)


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
    preset: Annotated[str | None, typer.Option(help="Reference architecture: basepod, dgx-pod, superpod.")] = None,
    su: Annotated[int | None, typer.Option(help="Scalable units for --preset dgx-pod|superpod.")] = None,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Design a GPU cluster: fabric, storage, management, racks, power and a BOM with reasons."""
    fields: dict = {}
    if preset is not None:
        fields.update(preset_settings(preset, su, gpus, node))
    elif su is not None:
        raise SpecError("--su needs --preset dgx-pod or --preset superpod")
    elif gpus is None:
        raise SpecError("give --gpus N, or --preset basepod|dgx-pod|superpod with --su N")
    else:
        fields["gpus"] = gpus
    explicit = {
        "node": node, "nics": nics, "fabric": fabric, "oversubscription": oversubscription, "rail_optimized": rail_optimized,
        "tiers": tiers, "ufm_links": ufm_links, "storage_tier": storage_tier, "storage_switch": storage_switch,
        "copies": copies, "checkpoints_kept": checkpoints_kept, "params": parse_count(params), "model": model,
        "bytes_per_param": bytes_per_param, "dp": dp, "samples_per_s": samples_per_s, "bytes_per_sample": bytes_per_sample,
        "failure_rate": failure_rate, "rack_kw": rack_kw, "pue": pue, "control_nodes": control_nodes,
    }
    fields.update({k: v for k, v in explicit.items() if v is not None})
    fields.update(dataset_tb=dataset_tb, grad_bytes_per_param=grad_bytes, gds=gds, load_factor=load_factor, storage_kw=storage_kw)
    result = design_cluster(DesignInput(**fields)).result()
    emit(result, fmt, explain, table=tables)


# Summary rows: (term name, how to print it).
_SUMMARY = [
    "GPUs", "nodes", "scalable units", "NVLink domains", "leaf switches", "spine switches", "core switches", "cables node→leaf", "cables leaf→spine",
    "cables spine→core", "switch-side transceivers", "node-side transceivers", "bisection bandwidth", "storage read per node", "storage read per SU", "storage read aggregate",
    "storage write aggregate", "storage capacity to provision", "checkpoint size", "checkpoint write time", "job MTBF",
    "checkpoint interval (Young/Daly)", "training stalled by checkpoints", "data demand per node", "in-band switches",
    "out-of-band switches", "storage leaf switches", "storage spine switches", "storage core switches", "UFM appliances",
    "control-plane servers", "racks", "rack PDUs", "compute racks", "compute rack power", "network racks", "power per SU",
    "liquid-cooled heat", "air-cooled heat", "facility water flow", "CDUs", "CRAH units",
    "IT power", "heat rejection", "facility power", "energy per year", "all-reduce volume per GPU per step", "all-reduce time per step",
]


def show(t: Term) -> str:
    """A Term's value in the unit a reader expects (Tb/s, GB/s, TB, min, kW/MW, %)."""
    v, u = t.value, t.unit
    if isinstance(v, str):
        return v
    if u == "b/s":
        return f"{v / 1e12:,.1f} Tb/s"
    if u == "B/s":
        return f"{v / 1e9:,.1f} GB/s"
    if u == "B":
        return f"{v / 1e12:,.2f} TB" if v >= 1e12 else f"{v / 1e9:,.1f} GB"
    if u == "s":
        return f"{v / 3600:,.2f} h" if v >= 7200 else (f"{v / 60:,.1f} min" if v >= 120 else f"{v:,.3g} s")
    if u == "W":
        return f"{v / 1e6:,.3f} MW" if v >= 1e6 else f"{v / 1e3:,.1f} kW"
    if u == "kWh":
        return f"{v / 1e3:,.0f} MWh"
    if u == "fraction":
        return f"{v * 100:.2f} %"
    return f"{v:,.6g} {u}".strip()


def tables(r: Result) -> Group:
    names = {t.name: t for t in r.terms}
    summary = Table(title=r.title)
    summary.add_column("item")
    summary.add_column("value", justify="right")
    for name in _SUMMARY:
        if name in names:
            summary.add_row(name, show(names[name]))
    for key in ("scale", "recommended_preset", "cooling", "hops"):
        if r.facts.get(key):
            summary.add_row(key.replace("_", " "), str(r.facts[key]))

    bom = Table(title="Bill of materials")
    for col in ("category", "item", "qty", "unit W", "total kW", "reason"):
        bom.add_column(col, justify="right" if col in ("qty", "unit W", "total kW") else "left")
    for i in r.facts["bom"]:
        qty = f"{i['quantity']:,.3f} {i['unit']}" if i["unit"] != "each" else f"{i['quantity']:,.0f}"
        bom.add_row(i["category"], i["item"], qty, f"{i['unit_power_w']:,.0f}", f"{i['power_w'] / 1000:,.1f}", i["reason"])

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

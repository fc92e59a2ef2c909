"""`aiinfra catalog gpus|models`: what the catalog knows, with sources."""

from __future__ import annotations

import typer
from rich.table import Table

from aiinfra.catalog.gpus import all_gpus
from aiinfra.catalog.models import all_models, model
from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, emit
from aiinfra.explain import Result
from aiinfra.sizing.params import param_counts

app = typer.Typer(help="Browse the dated catalog: GPUs and models.", no_args_is_help=True)


@app.command("gpus")
def gpus(fmt: FormatOpt = Format.table, explain: ExplainOpt = False) -> None:
    """GPU SKUs with memory, bandwidth, dense throughput, interconnect and power."""
    rows = [g.model_dump(mode="json") for g in all_gpus()]
    result = Result("GPU catalog", facts={"gpus": rows})

    def table(r: Result) -> Table:
        t = Table(title="GPU catalog (dense TFLOP/s; memory in GB = 1e9 B)")
        for col in ("key", "memory", "HBM/GDDR GB/s", "BF16", "FP8", "FP4", "NVLink GB/s", "form", "TDP W", "MIG"):
            t.add_column(col, justify="left" if col in ("key", "form") else "right")
        for g in rows:
            tf = g["tflops"]
            t.add_row(
                g["key"], f"{g['memory_gb']:g} GB {g['memory_type']}", f"{g['memory_bw_gbps']:,.0f}",
                f"{tf.get('bf16') or '-'}", f"{tf.get('fp8') or '-'}", f"{tf.get('fp4') or '-'}",
                f"{g['nvlink_gbps']:,.0f}", g["form_factor"], f"{g['tdp_w']:.0f}",
                str(g["mig_max_instances"]) if g["mig"] else "no",
            )
        return t

    emit(result, fmt, explain, table)


@app.command("models")
def models(fmt: FormatOpt = Format.table, explain: ExplainOpt = False) -> None:
    """Models with their architecture and exact parameter counts (total and active)."""
    rows = []
    for name in all_models():
        m = model(name)
        counts = param_counts(m)
        rows.append(
            {
                "key": name, "arch": m.arch, "layers": m.layers, "hidden": m.hidden, "heads": m.heads,
                "kv_heads": m.kv_heads, "experts": m.experts, "params_total": int(counts.total.value),
                "params_active": int(counts.active.value), "source": m.source,
            }
        )
    result = Result("Model catalog", facts={"models": rows})

    def table(r: Result) -> Table:
        t = Table(title="Model catalog")
        for col in ("key", "arch", "layers", "hidden", "heads/kv", "experts", "params total", "params active"):
            t.add_column(col, justify="left" if col in ("key", "arch") else "right")
        for m in rows:
            t.add_row(
                m["key"], m["arch"], str(m["layers"]), str(m["hidden"]), f"{m['heads']}/{m['kv_heads']}",
                str(m["experts"] or "-"), f"{m['params_total']:,}", f"{m['params_active']:,}",
            )
        return t

    emit(result, fmt, explain, table)

"""`aiinfra catalog gpus|models`: what the catalog knows, with sources."""

from __future__ import annotations

import typer

from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, emit
from aiinfra.explain import Result

# rich, the catalog and sizing are imported inside the commands: `aiinfra catalog --help` stays fast.

app = typer.Typer(help="Browse the dated catalog: GPUs and models.", no_args_is_help=True)


@app.command("gpus")
def gpus(fmt: FormatOpt = Format.table, explain: ExplainOpt = False) -> None:
    """GPU SKUs with memory, bandwidth, dense throughput, interconnect and power."""
    from rich.table import Table

    from aiinfra.catalog.gpus import all_gpus

    rows = [g.model_dump(mode="json") for g in all_gpus()]
    result = Result("GPU catalog", facts={"gpus": rows})

    def table(r: Result):  # -> rich Table
        # The datasheet's "80GB" is a product name (an H100's framebuffer is 81,559 MiB = 85.5 GB = 79.6 GiB), so
        # the measured total is printed beside it in both units where the catalog has it.
        t = Table(title="GPU catalog (dense TFLOP/s; memory: datasheet name, nvidia-smi total in GB = 1e9 B and "
                        "GiB = 2^30 B)")
        for col in ("key", "datasheet", "total GB", "total GiB", "HBM/GDDR GB/s", "BF16", "FP8", "FP4", "NVLink GB/s",
                    "form", "TDP W", "MIG"):
            t.add_column(col, justify="left" if col in ("key", "form") else "right")
        for g in rows:
            tf = g["tflops"]
            mib = g.get("memory_total_mib")
            t.add_row(
                g["key"], f"{g['memory_gb']:g}GB {g['memory_type']}",
                f"{mib * 2**20 / 1e9:,.1f}" if mib else "-", f"{mib / 1024:,.1f}" if mib else "-",
                f"{g['memory_bw_gbps']:,.0f}",
                f"{tf.get('bf16') or '-'}", f"{tf.get('fp8') or '-'}", f"{tf.get('fp4') or '-'}",
                f"{g['nvlink_gbps']:,.0f}", g["form_factor"], f"{g['tdp_w']:.0f}",
                str(g["mig_max_instances"]) if g["mig"] else "no",
            )
        return t

    emit(result, fmt, explain, table)


@app.command("models")
def models(fmt: FormatOpt = Format.table, explain: ExplainOpt = False) -> None:
    """Models with their architecture and exact parameter counts (total and active)."""
    from rich.table import Table

    from aiinfra.catalog.models import all_models, model
    from aiinfra.sizing.params import param_counts

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

    def table(r: Result):  # -> rich Table
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


@app.command("prices")
def prices_cmd(
    older_than: str | None = typer.Option(None, "--older-than", help="Only prices observed longer ago than this (6m, 90d, 1y)."),
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Dated prices (cloud, on-prem, rates) with their age and source; stale ones can be listed alone."""
    from rich.table import Table

    from aiinfra.catalog import prices as price_table

    max_age = price_table.parse_age(older_than) if older_than is not None else None
    rows = price_table.rows(max_age)
    result = Result("Price catalog", facts={"today": price_table.today().isoformat(), "prices": rows})
    if max_age is None:
        stale = [r for r in rows if r["age_days"] > price_table.STALE_AFTER.days]
        result.warnings += [f"{len(stale)} of {len(rows)} prices are older than 6 months; list them with --older-than 6m"] if stale else []

    def table(r: Result):  # -> rich Table
        t = Table(title=f"Price catalog (today {r.facts['today']}; USD)")
        for col in ("key", "type", "figure", "observed", "age", "source"):
            t.add_column(col, justify="right" if col == "age" else "left", overflow="fold")
        for p in rows:
            age = f"{p['age_days'] / 30.44:.0f} mo"
            t.add_row(p["key"], p["type"], p["summary"], p["observed"] + (" (undated)" if p["undated"] else ""),
                      age, p["source"])
        return t

    emit(result, fmt, explain, table)

"""`aiinfra infer MODEL`: time to first token, time per output token, tokens/s per GPU and cost."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, console, emit, err_console

if TYPE_CHECKING:
    from rich.table import Table

    from aiinfra.explain import Result


def _table(r: Result) -> Table:
    from rich.table import Table

    t = Table(title=r.title)
    t.add_column("item")
    t.add_column("value", justify="right")
    for term in r.terms:
        v = float(term.value)
        shown = f"{v * 1e3:,.2f} ms" if term.unit == "s" else f"{v:,.2f} {term.unit}"
        t.add_row(term.name, shown)
    for k, v in r.facts.items():
        if isinstance(v, dict) and "unit" in v:  # a quantity: seconds print in ms like the terms above
            v = f"{v['value'] * 1e3:,.2f} ms" if v["unit"] == "s" else f"{v['value']:,.4g} {v['unit']}"
        t.add_row(f"[dim]{k.replace('_', ' ')}[/]", str(v))
    return t


def command(
    model: Annotated[str, typer.Argument(help="Catalog model or config.json path.")],
    gpu: Annotated[str, typer.Option(help="Catalog GPU.")] = "h100-sxm",
    prompt: Annotated[int, typer.Option(help="Prompt tokens per request.")] = 2048,
    output: Annotated[int, typer.Option(help="Output tokens per request.")] = 256,
    batch: Annotated[int, typer.Option(help="Concurrent requests per replica.")] = 1,
    tp: Annotated[int, typer.Option(help="Tensor-parallel GPUs per replica.")] = 1,
    quant: Annotated[str, typer.Option(help="Weights: bf16 | fp16 | fp8 | int8 | int4 | fp4.")] = "bf16",
    kv_dtype: Annotated[str, typer.Option(help="KV cache: bf16 | fp16 | fp8 | int8.")] = "bf16",
    price: Annotated[list[str] | None, typer.Option(help="USD per GPU-hour: 2.5 for --gpu, or gpu=2.5 (repeatable).")] = None,
    recommend: Annotated[bool, typer.Option("--recommend", help="Rank every catalog GPU for this workload.")] = False,
    catalog_prices: Annotated[bool, typer.Option("--catalog-prices", help="Price GPUs without --price from the catalog (the same lookup as tco), each with its source.")] = False,
    engine: Annotated[str | None, typer.Option(help="Use an engine's efficiencies fitted on its published benchmarks (tensorrt-llm) where they exist for the GPU.")] = None,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Prefill (compute-bound) and decode (bandwidth-bound) latency with calibrated efficiencies."""
    from aiinfra.catalog.gpus import gpu as lookup_gpu
    from aiinfra.catalog.models import model as lookup_model
    from aiinfra.catalog.prices import parse_prices
    from aiinfra.plan.recommend import InferenceQuery
    from aiinfra.serving.commands import infer

    from pydantic import ValidationError

    from aiinfra.errors import SpecError
    from aiinfra.render import validation_sentence

    try:
        q = InferenceQuery(model=model, gpu=gpu, prompt=prompt, output=output, batch=batch, tp=tp, quant=quant,
                           kv_dtype=kv_dtype, price=list(price or []), catalog_prices=catalog_prices)
    except ValidationError as e:
        raise SpecError(validation_sentence(e.errors()[0])) from None
    m = lookup_model(q.model)
    g = lookup_gpu(q.gpu)
    prices = parse_prices(q.price, g.key)
    res = infer(m, g, prompt=q.prompt, output=q.output, batch=q.batch, tp=q.tp, quant=q.quant, kv_dtype=q.kv_dtype,
                prices=prices, catalog_prices=q.catalog_prices, recommend=recommend, engine=engine)
    if recommend and fmt is Format.table:
        _show_ranking(res)
        return
    emit(res, fmt, explain, table=None if recommend else _table)


def _show_ranking(res: Result) -> None:
    from rich.table import Table

    t = Table(title=res.title)
    for c in ("gpu", "TP", "batch", "TTFT ms", "TPOT ms", "tokens/s/GPU", "$/GPU-h", "$ / 1M tokens", "NVLink"):
        t.add_column(c, justify="left" if c in ("gpu", "NVLink") else "right")
    for r in res.facts["ranking"]:
        if not r["fits"]:
            t.add_row(r["gpu"], "-", "", "", "", "", "", "", "[red]does not fit in 8 GPUs[/]")
            continue
        t.add_row(r["gpu"], str(r["tp"]), str(r["batch"]), f"{r['ttft_s'] * 1e3:,.1f}", f"{r['tpot_s'] * 1e3:,.2f}",
                  f"{r['tokens_per_s_gpu']:,.0f}", f"{r['usd_per_gpu_hour']:.2f}" if "usd_per_gpu_hour" in r else "",
                  f"{r['usd_per_1m']:.3f}" if "usd_per_1m" in r else "", r["nvlink"])
    console.print(t)
    for n in res.warnings:
        console.print(f"  {n}")
    for a in res.assumptions:
        err_console.print(f"[dim]assumed:[/] {a}")

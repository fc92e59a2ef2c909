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
        t.add_row(f"[dim]{k}[/]", str(v))
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
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Prefill (compute-bound) and decode (bandwidth-bound) latency with calibrated efficiencies."""
    from aiinfra.catalog.gpus import gpu as lookup_gpu
    from aiinfra.catalog.models import model as lookup_model
    from aiinfra.catalog.prices import gpu_hour_price, parse_prices
    from aiinfra.plan.recommend import InferenceQuery, inference_recommendation

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
    if recommend:
        res = inference_recommendation(m, prompt=q.prompt, output=q.output, batch=q.batch, quant=q.quant,
                                       prices=prices, catalog_prices=q.catalog_prices)
        if fmt is not Format.table:
            emit(res, fmt, False)
            return
        _show_ranking(res)
        return
    from aiinfra.perf.inference import inference_perf

    p = gpu_hour_price(g.key, given=prices, use_catalog=q.catalog_prices)
    res = inference_perf(m, g, prompt=q.prompt, output=q.output, batch=q.batch, tp=q.tp, quant=q.quant,
                         kv_dtype=q.kv_dtype, price_per_gpu_hour=p.usd_per_gpu_hour if p else None)
    if p is not None:
        res.assumptions.append(f"price of {p.assumption()}")
    emit(res, fmt, explain, table=_table)


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

"""`aiinfra serve-plan MODEL`: GPUs, layout and cost to serve a request rate within TTFT/TPOT targets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, console, emit
from aiinfra.errors import SpecError

if TYPE_CHECKING:
    from aiinfra.explain import Result

COLUMNS = ("gpu", "quant", "layout", "mode", "batch", "GPUs", "TTFT ms", "TPOT ms", "$/1M tok", "")


def _row(t: Table, r: dict, note: str = "") -> None:
    t.add_row(r["gpu"], r["quant"], r["layout"], r["mode"], str(r["max_batch"]), str(r["gpus"]),
              "-" if r["ttft_ms"] is None else f"{r['ttft_ms']:,.1f}", "-" if r["tpot_ms"] is None else f"{r['tpot_ms']:,.2f}",
              f"{r['usd_per_1m_tokens']:.4f}", note)


def _table(r: "Result") -> Table:
    f = r.facts
    t = Table(title=r.title)
    for col in COLUMNS:
        t.add_column(col, justify="left" if col in ("gpu", "quant", "layout", "mode", "") else "right")
    for i, row in enumerate(f["ranking"]):
        _row(t, row, "[bold green]winner[/]" if i == 0 else
             ("meets" if row.get("meets") == "meets both" else "[yellow]simulation misses[/]"))
    for row in f["cheaper_misses"]:
        _row(t, row, f"[yellow]cheaper; misses {_which(row['misses'])}[/]")
    for row in f["closest"]:
        _row(t, row, f"[red]closest; misses {_which(row['misses'])}[/]")
    return t


def _which(misses: str) -> str:
    return " + ".join(part.split(" ")[0] for part in misses.split("; "))


def command(
    model: Annotated[str, typer.Argument(help="Catalog model or config.json path.")],
    gpu: Annotated[list[str], typer.Option("--gpu", help="Candidate GPU and its price: h100-sxm=2.5 (USD per GPU-hour; repeatable).")],
    rate: Annotated[float | None, typer.Option(help="Requests per second (not with --trace).")] = None,
    prompt: Annotated[str, typer.Option(help="Prompt tokens: 2048, or mean:cv for a lognormal (2048:0.5).")] = "2048",
    output: Annotated[str, typer.Option(help="Output tokens: 256, or mean:cv (256:0.5).")] = "256",
    trace: Annotated[Path | None, typer.Option(help="CSV or JSONL of arrivals: arrival_s, prompt_tokens, output_tokens.")] = None,
    ttft_ms: Annotated[float, typer.Option(help="Time-to-first-token target in ms.")] = 1000.0,
    tpot_ms: Annotated[float, typer.Option(help="Time-per-output-token target in ms.")] = 50.0,
    percentile: Annotated[str, typer.Option(help="Percentile the targets hold at: p50 | p90 | p99.")] = "p99",
    quant: Annotated[list[str] | None, typer.Option(help="Weight quantizations to try (repeatable; default bf16, fp8).")] = None,
    engine: Annotated[str, typer.Option(help="vllm | sglang | tensorrt-llm (memory model and manifests).")] = "vllm",
    max_replicas: Annotated[int, typer.Option(help="Most replicas to consider per layout.")] = 64,
    disaggregated: Annotated[bool, typer.Option("--disagg/--no-disagg", help="Also try prefill/decode disaggregation.")] = True,
    manifests: Annotated[Path | None, typer.Option(help="Write the winner's Kubernetes manifests (YAML) here.")] = None,
    gpu_request: Annotated[str, typer.Option(help="How pods ask for GPUs: device-plugin | dra.")] = "device-plugin",
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Cheapest deployment (replicas × TP × batch × quantization × GPU, aggregated or disaggregated) meeting TTFT/TPOT."""
    from aiinfra.catalog.models import model as lookup_model
    from aiinfra.serving.commands import check_gpu_request, serve_plan, winner_manifests
    from aiinfra.serving.workload import Workload, parse_gpu_prices, parse_lengths, parse_targets, read_trace

    check_gpu_request(gpu_request)
    m = lookup_model(model)
    gpus, sources = parse_gpu_prices(gpu)
    if trace is not None:
        if rate is not None:
            raise SpecError("give either --rate with --prompt/--output, or --trace, not both")
        w = read_trace(str(trace))
    else:
        if rate is None:
            raise SpecError("give --rate (requests per second) or --trace FILE")
        w = Workload(rate, parse_lengths(prompt, "prompt"), parse_lengths(output, "output"))
    targets = parse_targets(ttft_ms, tpot_ms, percentile)
    result = serve_plan(m, w, targets, gpus, quants=quant, engine=engine, max_replicas=max_replicas,
                        disaggregated=disaggregated, price_sources=sources)
    if manifests is not None and result.facts["winner"]:
        from aiinfra.serving.manifest_io import write_yaml_docs

        docs = winner_manifests(result, m, engine=engine, gpu_request=gpu_request)
        write_yaml_docs(manifests, docs)
        result.facts["manifests"] = str(manifests)
    elif manifests is not None:
        result.warnings.append("no manifests written: no deployment meets the targets")
    emit(result, fmt, explain, _table)
    if fmt is Format.table:
        f = result.facts
        if f.get("why"):
            console.print(f"[bold]{f['why']}[/]")
            for line in f.get("why_not_cheaper", []):
                console.print(f"  cheaper: {line}")
        for row in f.get("closest", []):
            console.print(f"  closest: {row['gpus']} × {row['gpu']} {row['quant']} {row['layout']} ({row['mode']}) "
                          f"misses {row['misses']}")
        if f.get("manifests"):
            console.print(f"manifests written to {f['manifests']}")

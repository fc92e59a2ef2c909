"""`aiinfra size train|infer|fits`: will this model fit, and on how many GPUs of which kind."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from aiinfra.catalog.gpus import gpu as lookup_gpu
from aiinfra.catalog.models import model as lookup_model
from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, emit
from aiinfra.explain import Result
from aiinfra.sizing.inference import fits as fits_table
from aiinfra.sizing.inference import inference_memory
from aiinfra.sizing.params import param_counts
from aiinfra.sizing.training import fit_verdict, training_memory
from aiinfra.units import GiB

app = typer.Typer(help="Model memory for training and inference, and which GPUs fit it.", no_args_is_help=True)

ModelArg = Annotated[str, typer.Argument(help="Catalog model (e.g. llama-3.1-70b, meta-llama/Llama-3.1-8B) or a config.json path.")]


def _memory_table(r: Result) -> Table:
    t = Table(title=r.title)
    t.add_column("item")
    t.add_column("GB (1e9 B)", justify="right")
    t.add_column("GiB (2^30 B)", justify="right")
    for term in r.terms:
        style = "bold" if term.name.startswith("total") else None
        t.add_row(term.name, f"{float(term.value) / 1e9:,.2f}", f"{float(term.value) / GiB:,.2f}", style=style)
    for k, v in r.facts.items():
        if not isinstance(v, dict | list):
            t.add_row(f"[dim]{k}[/]", str(v), "")
    return t


def _verdict_line(v: dict) -> str:
    if v.get("fits"):
        return f"fits {v['gpu']} ({v['capacity_gb']:g} GB) with {v['headroom_gb']:,.2f} GB to spare"
    return f"does NOT fit {v['gpu']} ({v['capacity_gb']:g} GB): short by {-v['headroom_gb']:,.2f} GB"


@app.command("train")
def train(
    model: ModelArg,
    gpu: Annotated[str, typer.Option(help="Catalog GPU to check the fit against.")] = "h100-sxm",
    tp: Annotated[int, typer.Option(help="Tensor-parallel size.")] = 1,
    pp: Annotated[int, typer.Option(help="Pipeline-parallel size.")] = 1,
    dp: Annotated[int, typer.Option(help="Data-parallel size.")] = 1,
    cp: Annotated[int, typer.Option(help="Context-parallel size.")] = 1,
    ep: Annotated[int, typer.Option(help="Expert-parallel size (MoE).")] = 1,
    sp: Annotated[bool | None, typer.Option("--sp/--no-sp", help="Sequence parallelism (default: on when TP > 1).")] = None,
    interleave: Annotated[int, typer.Option(help="Virtual pipeline stages per GPU.")] = 1,
    zero: Annotated[int, typer.Option(help="ZeRO stage 0-3 (3 = FSDP).")] = 0,
    distributed_optimizer: Annotated[bool, typer.Option(help="Megatron distributed optimizer (shards optimizer states).")] = False,
    recompute: Annotated[str, typer.Option(help="none | selective | full")] = "none",
    seq: Annotated[int, typer.Option(help="Sequence length in tokens.")] = 4096,
    micro_batch: Annotated[int, typer.Option(help="Micro-batch size in sequences.")] = 1,
    num_microbatches: Annotated[int | None, typer.Option(help="Micro-batches per pipeline flush (default: ≥ PP).")] = None,
    precision: Annotated[str, typer.Option(help="fp32 | bf16 | fp16 | fp8")] = "bf16",
    optimizer: Annotated[str, typer.Option(help="adam | adamw | adam8bit | sgd")] = "adam",
    grad_dtype: Annotated[str | None, typer.Option(help="Gradient buffer dtype: fp32 (Megatron) | bf16 | bf16+fp32 (DeepSpeed ZeRO-2).")] = None,
    offload: Annotated[str, typer.Option(help="none | optimizer | optimizer+params (ZeRO-Offload).")] = "none",
    flash_attention: Annotated[bool, typer.Option("--flash/--no-flash", help="Flash attention removes the a·s² terms.")] = True,
    overhead_gib: Annotated[float | None, typer.Option(help="Fixed runtime overhead per GPU in GiB (default: catalog).")] = None,
    fragmentation: Annotated[float | None, typer.Option(help="Allocator fragmentation as a fraction of allocated bytes.")] = None,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Training memory per GPU: weights, gradients, optimizer, activations and overhead."""
    m = lookup_model(model)
    g = lookup_gpu(gpu)
    sp_on = tp > 1 if sp is None else sp
    mem = training_memory(
        m, seq=seq, micro_batch=micro_batch, tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, sp=sp_on, vp=interleave,
        num_microbatches=num_microbatches, zero=zero, distributed_optimizer=distributed_optimizer,
        recompute=recompute, precision=precision, optimizer=optimizer, grad_dtype=grad_dtype, offload=offload,
        flash_attention=flash_attention, overhead_bytes=None if overhead_gib is None else overhead_gib * GiB,
        fragmentation=fragmentation,
    )
    verdict = fit_verdict(float(mem.total.value), g)
    layout = f"TP{tp}·PP{pp}·DP{dp}" + (f"·CP{cp}" if cp > 1 else "") + (f"·EP{ep}" if ep > 1 else "")
    result = Result(
        f"Training memory per GPU: {m.name} on {g.key}, {layout}, {precision}, ZeRO-{zero}, recompute {recompute}",
        terms=mem.terms,
        facts={"model": m.name, "gpus": tp * pp * dp * cp, "layout": layout, "stage": str(mem.stage),
               "params_per_gpu": int(mem.params_per_gpu), **verdict},
    )
    if not verdict["fits"]:
        result.warnings.append(_verdict_line(verdict))
    emit(result, fmt, explain, _memory_table)
    if fmt is Format.table and verdict["fits"]:
        typer.echo(_verdict_line(verdict))


@app.command("infer")
def infer(
    model: ModelArg,
    gpu: Annotated[str, typer.Option(help="Catalog GPU.")] = "h100-sxm",
    quant: Annotated[str, typer.Option(help="Weights: bf16 | fp16 | fp8 | int8 | int4 | fp4")] = "bf16",
    kv_dtype: Annotated[str, typer.Option(help="KV cache: bf16 | fp16 | fp8 | int8")] = "bf16",
    context: Annotated[int, typer.Option(help="Tokens per sequence (prompt + output).")] = 4096,
    batch: Annotated[int, typer.Option(help="Concurrent sequences.")] = 1,
    tp: Annotated[int, typer.Option(help="Tensor-parallel size.")] = 1,
    pp: Annotated[int, typer.Option(help="Pipeline-parallel size.")] = 1,
    prompt: Annotated[int | None, typer.Option(help="Prompt tokens (default: the whole context).")] = None,
    gpu_memory_utilization: Annotated[float | None, typer.Option(help="Engine reservation (vLLM default 0.9).")] = None,
    max_batched_tokens: Annotated[int | None, typer.Option(help="Prefill chunk in tokens (vLLM default 8192).")] = None,
    overhead_gib: Annotated[float | None, typer.Option(help="Fixed runtime overhead per GPU in GiB.")] = None,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Inference memory per GPU, and how many KV tokens and sequences fit."""
    m = lookup_model(model)
    g = lookup_gpu(gpu)
    mem = inference_memory(
        m, quant=quant, kv_dtype=kv_dtype, context=context, batch=batch, tp=tp, pp=pp, prompt=prompt,
        max_batched_tokens=max_batched_tokens, overhead_bytes=None if overhead_gib is None else overhead_gib * GiB,
        gpu=g, gpu_memory_utilization=gpu_memory_utilization,
    )
    cap = mem.capacity
    result = Result(
        f"Inference memory per GPU: {m.name} on {g.key}, weights {quant}, KV {kv_dtype}, "
        f"{batch} × {context} tokens, TP{tp}·PP{pp}",
        terms=mem.terms,
        facts={"model": m.name, "kv_bytes_per_token": int(mem.kv_per_token.value), **cap},
    )
    if not cap["fits"]:
        result.warnings.append(
            f"does NOT fit {g.key} at gpu_memory_utilization {cap['gpu_memory_utilization']}: "
            f"short by {-cap['headroom_gb']:,.2f} GB; try `aiinfra size fits {m.name}`"
        )
    emit(result, fmt, explain, _memory_table)
    if fmt is Format.table and cap["fits"]:
        typer.echo(
            f"fits {g.key}: {cap['kv_tokens']:,} KV tokens in the engine budget "
            f"({cap['sequences_at_context']:,} sequences of {context} tokens)"
        )


@app.command("fits")
def fits(
    model: ModelArg,
    quant: Annotated[str, typer.Option(help="Weights: bf16 | fp16 | fp8 | int8 | int4 | fp4")] = "bf16",
    kv_dtype: Annotated[str, typer.Option(help="KV cache dtype.")] = "bf16",
    context: Annotated[int, typer.Option(help="Tokens per sequence.")] = 4096,
    batch: Annotated[int, typer.Option(help="Concurrent sequences.")] = 1,
    gpu_memory_utilization: Annotated[float | None, typer.Option(help="Engine reservation (vLLM default 0.9).")] = None,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """For every catalog GPU: the fewest GPUs that serve this model at this setting."""
    m = lookup_model(model)
    rows = fits_table(m, quant=quant, kv_dtype=kv_dtype, context=context, batch=batch,
                      gpu_memory_utilization=gpu_memory_utilization)
    counts = param_counts(m)
    result = Result(
        f"Fewest GPUs to serve {m.name}: weights {quant}, KV {kv_dtype}, {batch} × {context} tokens",
        terms=[counts.total, counts.active] if explain else [],
        facts={"model": m.name, "fits": rows},
    )

    def table(r: Result) -> Table:
        t = Table(title=r.title)
        for col in ("gpu", "GPUs", "layout", "per GPU GB", "capacity GB", "KV tokens", "interconnect"):
            t.add_column(col, justify="left" if col in ("gpu", "layout", "interconnect") else "right")
        for row in rows:
            if row["gpus"] is None:
                t.add_row(row["gpu"], "-", row.get("note", ""), "-", f"{row['capacity_gb']:g}", "-", "")
                continue
            link = "NVLink" if row["nvlink"] else ("PCIe" if row["gpus"] > 1 else "")
            t.add_row(row["gpu"], str(row["gpus"]), f"TP{row['tp']}·PP{row['pp']}", f"{row['per_gpu_gb']:,.2f}",
                      f"{row['capacity_gb']:g}", f"{row['kv_tokens']:,}", link)
        return t

    emit(result, fmt, explain, table)

"""`aiinfra size train|infer|fits`: will this model fit, and on how many GPUs of which kind."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from aiinfra.catalog.gpus import gpu as lookup_gpu
from aiinfra.catalog.models import model as lookup_model
from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, emit
from aiinfra.explain import Result
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
        if not isinstance(v, dict | list):  # a fact in GiB stands in the GiB column, every other in the first
            t.add_row(f"[dim]{k}[/]", *(("", str(v)) if k.endswith("_gib") else (str(v), "")))
    return t


@app.command("train")
def train(
    model: ModelArg,
    gpu: Annotated[str, typer.Option(help="Catalog GPU to check the fit against.")] = "h100-sxm",
    tp: Annotated[int, typer.Option(help="Tensor-parallel size.")] = 1,
    pp: Annotated[int, typer.Option(help="Pipeline-parallel size.")] = 1,
    dp: Annotated[int, typer.Option(help="Data-parallel size.")] = 1,
    cp: Annotated[int, typer.Option(help="Context-parallel size.")] = 1,
    ep: Annotated[int, typer.Option(help="Expert-parallel size (MoE).")] = 1,
    etp: Annotated[int | None, typer.Option(help="Expert TP size (MoE): 1 (whole experts, EP folded over TP) or TP (default).")] = None,
    sp: Annotated[bool | None, typer.Option("--sp/--no-sp", help="Sequence parallelism (default: on when TP > 1).")] = None,
    interleave: Annotated[int, typer.Option(help="Virtual pipeline stages per GPU.")] = 1,
    zero: Annotated[int, typer.Option(help="ZeRO stage 0-3 (3 = FSDP).")] = 0,
    distributed_optimizer: Annotated[bool, typer.Option(help="Megatron distributed optimizer (shards optimizer states).")] = False,
    recompute: Annotated[str, typer.Option(help="none | selective | full")] = "none",
    seq: Annotated[int, typer.Option(help="Sequence length in tokens.")] = 4096,
    micro_batch: Annotated[int, typer.Option(help="Micro-batch size in sequences.")] = 1,
    num_microbatches: Annotated[int | None, typer.Option(help="Micro-batches per pipeline flush (default: ≥ PP). With --interleave > 1 the stack's schedule must take them; Megatron-Core runs a count PP does not divide in larger groups, which hold more activations.")] = None,
    precision: Annotated[str, typer.Option(help="fp32 | bf16 | fp16 | fp8 | fp4 (FP4: NVFP4 linears, Blackwell)")] = "bf16",
    optimizer: Annotated[str, typer.Option(help="adam | adamw | adam8bit | sgd")] = "adam",
    grad_dtype: Annotated[str | None, typer.Option(help="Gradient buffer dtype: fp32 (Megatron) | bf16 | bf16+fp32 (DeepSpeed ZeRO-2).")] = None,
    offload: Annotated[str, typer.Option(help="none | optimizer | optimizer+params (ZeRO-Offload) | activations, or any "
                                             "'+' combination of optimizer, weights, activations; 'activations 50%' "
                                             "offloads those of the first half of each stage's layers.")] = "none",
    flash_attention: Annotated[bool, typer.Option("--flash/--no-flash", help="Flash attention removes the a·s² terms.")] = True,
    overhead_gib: Annotated[float | None, typer.Option(help="Fixed runtime overhead per GPU in GiB (default: catalog).")] = None,
    fragmentation: Annotated[float | None, typer.Option(help="Allocator fragmentation as a fraction of allocated bytes.")] = None,
    software: Annotated[str, typer.Option(help="Software stack whose selective recompute applies (catalog stacks.yaml), as in plan.")] = "megatron-core",
    recompute_modules: Annotated[str | None, typer.Option(help="What selective recompute drops, as Megatron's recompute_modules (core_attn, moe_act, layernorm, mla_up_proj, mlp, moe, shared_experts), as in plan.")] = None,
    pipeline_split: Annotated[str, typer.Option(help="Pipeline split as in plan: auto | even | account (embedding and loss take a layer's slot), or a Megatron pipeline layout string ('Et|(tt|)*30mL'; --interleave then follows from it).")] = "auto",
    mtp: Annotated[bool, typer.Option("--mtp/--no-mtp", help="The model's multi-token-prediction layers on the last stage, where its config has them (DeepSeek-V3), as in plan.")] = True,
    quantized_params: Annotated[bool, typer.Option("--quantized-params", help="FP8/FP4 weights with no 16-bit copy (Megatron --fp8-param-gather / --fp4-param-gather), as in plan; needs --precision fp8 or fp4 and ZeRO 1-3.")] = False,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Training memory per GPU: weights, gradients, optimizer, activations and overhead."""
    from aiinfra.sizing.commands import training_report, verdict_line

    result = training_report(
        lookup_model(model), lookup_gpu(gpu), tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, sp=sp, interleave=interleave,
        zero=zero, distributed_optimizer=distributed_optimizer, recompute=recompute, seq=seq, micro_batch=micro_batch,
        num_microbatches=num_microbatches, precision=precision, optimizer=optimizer, grad_dtype=grad_dtype,
        offload=offload, flash_attention=flash_attention, overhead_gib=overhead_gib, fragmentation=fragmentation,
        software=software, pipeline_split=pipeline_split, etp=etp, recompute_modules=recompute_modules, mtp=mtp,
        quantized_params=quantized_params,
    )
    emit(result, fmt, explain, _memory_table)
    if fmt is Format.table and result.facts["fits"]:
        typer.echo(verdict_line(result.facts))


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
    engine: Annotated[str | None, typer.Option(help="Also predict start-up KV tokens of: vllm | sglang | tensorrt-llm.")] = None,
    max_model_len: Annotated[int | None, typer.Option(help="Engine max_model_len (default: --context).")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Checkpoint folder, model.safetensors.index.json or .safetensors file: exact weight bytes from its headers.")] = None,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Inference memory per GPU, and how many KV tokens and sequences fit."""
    from aiinfra.sizing.commands import inference_report

    result, _ = inference_report(
        lookup_model(model), lookup_gpu(gpu), quant=quant, kv_dtype=kv_dtype, context=context, batch=batch, tp=tp,
        pp=pp, prompt=prompt, gpu_memory_utilization=gpu_memory_utilization, max_batched_tokens=max_batched_tokens,
        overhead_gib=overhead_gib, engine=engine, max_model_len=max_model_len, checkpoint=checkpoint,
    )
    cap = result.facts
    emit(result, fmt, explain, _memory_table)
    if fmt is Format.table and cap["fits"]:
        typer.echo(
            f"fits {cap['gpu']}: {cap['kv_tokens']:,} KV tokens in the engine budget "
            f"({cap['sequences_at_context']:,} sequences of {context} tokens)"
        )
    if fmt is Format.table and "engine" in cap:
        e = cap["engine"]
        typer.echo(f"{e['engine']} at start-up: GPU KV cache size {e['kv_tokens']:,} tokens; maximum concurrency for "
                   f"{e['max_model_len']:,} tokens per request {e['max_concurrency']:.2f}x"
                   + ("" if e["starts"] else " (will NOT start)"))


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
    from aiinfra.sizing.commands import fits_report

    result = fits_report(lookup_model(model), explain=explain, quant=quant, kv_dtype=kv_dtype, context=context,
                         batch=batch, gpu_memory_utilization=gpu_memory_utilization)
    rows = result.facts["fits"]

    def table(r: Result) -> Table:
        t = Table(title=r.title)
        for col in ("gpu", "GPUs", "layout", "per GPU GB", "capacity GB", "KV tokens", "interconnect"):
            t.add_column(col, justify="left" if col in ("gpu", "layout", "interconnect") else "right")
        for row in rows:
            if row["gpus"] is None:
                t.add_row(row["gpu"], "-", row.get("note", ""), "-", f"{row['capacity_gb']:g}", "-", "")
                continue
            link = row["interconnect"] if row["gpus"] > 1 else ""
            t.add_row(row["gpu"], str(row["gpus"]), f"TP{row['tp']}·PP{row['pp']}", f"{row['per_gpu_gb']:,.2f}",
                      f"{row['capacity_gb']:g}", f"{row['kv_tokens']:,}", link)
        return t

    emit(result, fmt, explain, table)

"""`aiinfra plan MODEL`: the best parallel layouts for a training job, or `--recommend` the GPU to use."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from aiinfra.catalog.gpus import gpu as lookup_gpu
from aiinfra.catalog.models import model as lookup_model
from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, console, emit, err_console
from aiinfra.errors import SpecError
from aiinfra.explain import Result

def _table(res: Result, tokens: float | None) -> Table:
    f = res.facts
    rows = f["layouts"]
    t = Table(title=f"{f['model']} on {f['gpus']} × {f['gpu']}: best layouts "
                    f"({f['candidates_evaluated']:,} candidates, {f['fit_in_memory']:,} fit)")
    cols = ["#", "layout", "mb", "v", "recomp", "ZeRO", "TP comm", "step s", "tokens/s", "TF/GPU", "MFU", "GB/GPU", "headroom"]
    if tokens:
        cols.append("days")
    if any("cost_usd" in w for w in rows):
        cols.append("cost $")
    for c in cols:
        t.add_column(c, justify="left" if c in ("layout", "recomp", "TP comm") else "right", no_wrap=True, min_width=len(c))
    mine = f.get("your_layout")
    shown = list(enumerate(rows, 1))
    if mine and not any(w["index"] == mine["index"] for w in rows):
        shown.append((mine["rank"], mine))
    for i, w in shown:
        tp_comm = {"ring": "overlap", "none": "blocking"}.get(w.get("tp_overlap", "none"), "-") if w["tp"] > 1 else "-"
        row = [str(i), w["layout"], str(w["mb"]), str(w["vp"]), w["recompute"], _zero_cell(w), tp_comm,
               f"{w['step_s']:.3f}",
               _compact(w["tokens_per_s"]), f"{w['tflops']:.0f}", f"{w['mfu']:.0%}", f"{w['memory_gb']:.1f}",
               f"{w['headroom_gb']:.1f}" + ("" if w.get("fits", True) else " OOM")]
        if tokens:
            row.append(f"{w['days']:,.1f}")
        if "cost_usd" in w:
            row.append(_compact(w["cost_usd"]))
        style = "bold" if i == 1 else None
        if mine and w["index"] == mine["index"]:
            row[1] += " (yours)"
            style = "bold cyan"
        t.add_row(*row, style=style)
    if any(_offload_suffix(w) for _, w in shown):  # never only in the JSON
        t.caption = OFFLOAD_CAPTION
    return t


OFFLOAD_CODES = {"optimizer": "opt", "weights": "wts", "activations": "act"}
OFFLOAD_CAPTION = ("+opt / +wts / +act: optimizer states / weights / activations offloaded to host memory "
                   "(+act50%: those of that share of each stage's layers)")


def _offload_suffix(w: dict) -> str:
    """'+opt', '+opt+act', '+act50%', … for what a layout offloads to the host; '' for none."""
    off = w["offload"]
    if off == "none":
        return ""
    return "".join("+" + OFFLOAD_CODES.get(name, name) + share
                   for name, _, share in (x.partition(" ") for x in off.split("+")))


def _zero_cell(w: dict) -> str:
    """ZeRO stage, with what the layout offloads to the host ('1+opt'), as ZeRO-Offload names it."""
    return str(w["zero"]) + _offload_suffix(w)


def _compact(x: float) -> str:
    """2,165,900 → '2.17M' so wide tables stay readable."""
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def _run_with_progress(fn, show: bool):
    if not show:
        return fn(None)
    with Progress(TextColumn("searching layouts"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("search", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return fn(tick)


def command(
    model: Annotated[str, typer.Argument(help="Catalog model (llama-3.1-405b, gpt3-175b, …) or a config.json path.")],
    gpu: Annotated[str, typer.Option(help="Catalog GPU.")] = "h100-sxm",
    gpus: Annotated[str, typer.Option(help="GPU count, list (512,1024) or range (512-2048).")] = "64",
    seq: Annotated[int, typer.Option(help="Sequence length in tokens.")] = 8192,
    global_batch_tokens: Annotated[str | None, typer.Option(help="Global batch in tokens, e.g. 16M (default 4Mi).")] = None,
    global_batch: Annotated[int | None, typer.Option(help="Global batch in sequences (instead of tokens).")] = None,
    tokens: Annotated[str | None, typer.Option(help="Token budget for time-to-train and cost, e.g. 15T.")] = None,
    price: Annotated[list[str] | None, typer.Option(help="USD per GPU-hour: 2.5 for --gpu, or gpu=2.5 (repeatable).")] = None,
    objective: Annotated[str, typer.Option(help="Rank by time or cost.")] = "time",
    top: Annotated[int, typer.Option(help="How many layouts to show.")] = 5,
    dtype: Annotated[str, typer.Option(help="Linear-layer dtype: bf16 | fp16 | fp8 | fp4 (attention stays 16-bit).")] = "bf16",
    zero: Annotated[str, typer.Option(help="ZeRO stages the search may use, e.g. 0,1.")] = "0,1,2,3",
    recompute: Annotated[str, typer.Option(help="Recompute modes the search may use: none,selective,full.")] = "none,selective,full",
    flash: Annotated[bool, typer.Option("--flash/--no-flash", help="Flash attention.")] = True,
    sp: Annotated[bool, typer.Option("--sp/--no-sp", help="Sequence parallelism with TP.")] = True,
    cp: Annotated[bool, typer.Option("--cp/--no-cp", help="Allow context parallelism.")] = True,
    overlap: Annotated[bool, typer.Option("--overlap/--no-overlap", help="Overlap DP gradient sync with backward.")] = True,
    layout: Annotated[str | None, typer.Option(
        help="Evaluate one layout and rank it, e.g. tp=8,pp=16,cp=1,dp=128,mb=1,vp=4,recompute=selective,zero=1 "
             "(also ep, etp, offload=optimizer+activations, offload_layers=40, tp_overlap=ring|none); keys left out "
             "are searched.")] = None,
    offload: Annotated[str, typer.Option(
        help="Offload the search may use, charged at host-link bandwidth: all, or none,optimizer,weights,activations "
             "and '+' combinations; activations from 25-100% of each stage's layers, as the stack allows.")] = "all",
    causal: Annotated[bool, typer.Option("--causal/--no-causal", help="Causal attention (half the attention FLOPs).")] = True,
    software: Annotated[str, typer.Option(help="Software stack profile (catalog stacks.yaml): megatron-core (as NeMo / Megatron-Bridge run it), megatron-lm (Megatron-LM's own script), torchtitan (torch.compile), torchtitan-eager (without it), llm-foundry (MosaicML Composer + PyTorch FSDP, MPT), deepspeed, llama3-meta, megatron-2021, megatron-2022.")] = "megatron-core",
    memory_reserve: Annotated[str | None, typer.Option(
        help="Fixed runtime reserve per GPU (CUDA context + NCCL buffers), e.g. 2GiB (default: catalog runtime).")] = None,
    grad_dtype: Annotated[str | None, typer.Option(
        help="Gradient buffers and their DP reduction: fp32 or bf16 (Megatron's grad_reduce_in_fp32 off); "
             "default fp32 (fp16 reduction for --dtype fp16).")] = None,
    ep_overlap: Annotated[bool, typer.Option(
        "--ep-overlap", help="MoE all-to-all overlapped with another micro-batch (Megatron --overlap-moe-expert-parallel-comm).")] = False,
    moe_dispatcher: Annotated[str, typer.Option(
        help="MoE token dispatcher: alltoall (every routed copy), deepep or hybridep (Megatron flex dispatcher: a "
             "token once per destination node over the NICs, once per rank inside it).")] = "alltoall",
    moe_sync_free: Annotated[bool, typer.Option(
        "--moe-sync-free", help="MoE dispatch without a host sync before each all-to-all (fixed-capacity dispatch "
                                "under full-iteration CUDA graphs): no host-bound MoE term (stacks.yaml moe_host).")] = False,
    pipeline_split: Annotated[str, typer.Option(
        help="Pipeline split: account (embedding and loss take a layer's slot, Megatron --account-for-embedding/loss-"
             "in-pipeline-split), even (layers only), auto (account where the LM head weighs half a layer or more; with "
             "trained MTP layers the loss stage takes 1 + 2 per MTP layer, the embedding none), or "
             "a Megatron --pipeline-model-parallel-layout string such as 'Et|(tt|)*30mL' (E embedding, t layer, m MTP "
             "layer, L loss; its stage count is PP × VP).")] = "auto",
    recompute_modules: Annotated[str | None, typer.Option(
        help="What selective recompute repeats, as Megatron-core's recompute_modules: core_attn (the default), "
             "moe_act, layernorm, mla_up_proj, mlp, moe, shared_experts, e.g. layernorm,moe_act.")] = None,
    mtp: Annotated[bool, typer.Option("--mtp/--no-mtp", help="Train the model's multi-token-prediction layers where its config has them (DeepSeek-V3: one), as Megatron --mtp-num-layers.")] = True,
    cuda_graph_scope: Annotated[str | None, typer.Option(
        help="Megatron's per-layer CUDA graphs (--cuda-graph-impl transformer_engine): attn, mlp, moe_router, "
             "moe_preprocess, e.g. attn,moe_router,moe_preprocess; the host then issues only the MoE layers' modules "
             "outside them. Default: eager.")] = None,
    quantized_params: Annotated[bool, typer.Option(
        "--quantized-params", help="Keep the weights in the FP8/FP4 --dtype and gather them so (Megatron "
                                   "--fp8-param-gather / --fp4-param-gather, NeMo fp8_params): half the parameter "
                                   "all-gather, no 16-bit weight copy; needs ZeRO 1-3 and no optimizer offload.")] = False,
    recommend: Annotated[bool, typer.Option("--recommend", help="Rank every catalog GPU for this job instead.")] = False,
    catalog_prices: Annotated[bool, typer.Option("--catalog-prices", help="With --recommend: price GPUs without --price from the catalog (the same lookup as tco), each with its source.")] = False,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Search every TP/PP/CP/EP/DP layout, micro-batch, recompute, ZeRO and interleave; rank by time or cost."""
    from aiinfra.plan.inputs import batch_sequences, build_options, parse_gpu_counts, parse_prices, parse_size

    m = lookup_model(model)
    g = lookup_gpu(gpu)
    if seq <= 0:
        raise SpecError(f"sequence length must be positive, got {seq}")
    if top <= 0:
        raise SpecError(f"--top must be positive, got {top}")
    if global_batch is not None and global_batch_tokens is not None:
        raise SpecError("give the global batch once: --global-batch (sequences) or --global-batch-tokens, not both")
    if catalog_prices and not recommend:
        raise SpecError("--catalog-prices prices the GPUs --recommend compares; add --recommend, or give --price")
    counts = parse_gpu_counts(gpus)
    b, batch_note = batch_sequences(global_batch_tokens, global_batch, seq)
    budget = parse_size(tokens, "--tokens") if tokens else None
    prices = parse_prices(price, g.key)
    opts = build_options(dtype, flash, sp, zero, recompute, cp, overlap, memory_reserve, causal=causal,
                         offload=offload, software=software, grad_dtype=grad_dtype, ep_overlap=ep_overlap,
                         moe_dispatcher=moe_dispatcher, moe_sync_free=moe_sync_free, pipeline_split=pipeline_split,
                         recompute_modules=recompute_modules, mtp=mtp, cuda_graph_scope=cuda_graph_scope,
                         quantized_params=quantized_params)
    if recommend:
        from aiinfra.plan.commands import check_moe_options

        check_moe_options(m, opts)
        _recommend(m, counts, b, seq, budget, prices, opts, fmt, batch_note, catalog_prices)
        return
    from aiinfra.plan.commands import plan_command

    res = _run_with_progress(
        lambda tick: plan_command(m, g, counts, global_batch=b, seq=seq, batch_note=batch_note, tokens=budget,
                                  price_per_gpu_hour=prices.get(g.key), objective=objective, top=top, options=opts,
                                  layout=layout, progress=tick),
        show=fmt is Format.table and len(counts) > 64,
    )
    if fmt is Format.table:
        console.print(_table(res, budget))
        if "your_layout_verdict" in res.facts:
            console.print(f"  [bold]{res.facts['your_layout_verdict']}[/]")
        f = res.facts
        console.print(f"  [dim]memory: fits when the total per GPU ≤ {f['device_memory']['value']:.1f} GB "
                      f"(device memory as nvidia-smi reports it; runtime reserve counted in the total)[/]")
        for line in f["why_not_the_others"] + f["notes"]:
            console.print(f"  [dim]{line}[/]")
        for w in res.warnings:
            if w != f.get("your_layout_verdict"):  # printed above
                err_console.print(f"[yellow]warning:[/] {w}")
        if explain:
            emit(Result(f"Why {f.get('your_layout', {}).get('layout') or f['best_layout']}", res.terms), fmt, True,
                 table=lambda _: None)
        return
    emit(res, fmt, explain)


def _recommend(m, counts, b, seq, budget, prices, opts, fmt, batch_note, catalog_prices=False) -> None:
    from aiinfra.plan.recommend import price_assumptions, recommend_training

    if len(counts) != 1:
        raise SpecError("--recommend compares GPU types at one GPU count; give --gpus N")
    rows, notes = recommend_training(m, counts[0], global_batch=b, seq=seq, tokens=budget, prices=prices, options=opts,
                                     catalog_prices=catalog_prices)
    res = Result(f"GPU recommendation: training {m.name} on {counts[0]} GPUs", [],
                 {"global_batch": batch_note, "ranking": rows}, notes, assumptions=price_assumptions(rows))
    if fmt is not Format.table:
        emit(res, fmt, False)
        return
    t = Table(title=res.title)
    for c in ("rank", "gpu", "layout", "tokens/s", "MFU", "GB/GPU", "days", "cost $", "needs NVLink"):
        t.add_column(c, justify="left" if c in ("gpu", "layout", "needs NVLink") else "right")
    for r in rows:
        if not r["fits"]:
            t.add_row("-", r["gpu"], "[red]does not fit[/]", "", "", "", "", "", r["why"].split("; ")[-1])
            continue
        t.add_row(str(r["rank_time"]), r["gpu"], r["layout"] + _offload_suffix(r), ("≥" if r.get("search") == "coarse" else "") + f"{r['tokens_per_s']:,.0f}", f"{r['mfu']:.1%}",
                  f"{r['memory_gb']:.1f}", f"{r['days']:,.1f}" if r.get("days") else "",
                  f"{r['cost_usd']:,.0f}" if r.get("cost_usd") else "", r["nvlink"])
    if any(_offload_suffix(r) for r in rows if r["fits"]):
        t.caption = OFFLOAD_CAPTION
    console.print(t)
    for n in notes:
        console.print(f"  {n}")


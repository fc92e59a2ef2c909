"""`aiinfra plan MODEL`: the best parallel layouts for a training job, or `--recommend` the GPU to use."""

from __future__ import annotations

import re
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
from aiinfra.plan.recommend import recommend_training
from aiinfra.plan.search import Options
from aiinfra.plan.space import RECOMPUTE_NAMES

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9, "t": 1e12, "p": 1e15}
_BINARY = {"ki": 2.0**10, "mi": 2.0**20, "gi": 2.0**30, "ti": 2.0**40}
PROGRESS_ABOVE = 200_000  # candidates; smaller searches finish before a bar could draw


def parse_size(text: str, what: str) -> float:
    """'16M' → 16e6, '15T' → 15e12, '2Mi' → 2·2^20, '1.5e9' → 1.5e9; must be positive."""
    s = str(text).strip().replace("_", "").replace(",", "")
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([a-zA-Z]{0,2})", s)
    unit = m.group(2).lower() if m else ""
    if not m or (unit not in _SUFFIX and unit not in _BINARY):
        raise SpecError(f"{what} '{text}' is not a number like 16M, 15T or 2048")
    value = float(m.group(1)) * (_BINARY.get(unit) or _SUFFIX[unit])
    if value <= 0:
        raise SpecError(f"{what} must be positive, got {text}")
    return value


MAX_COUNTS = 4096


def parse_gpu_counts(text: str) -> list[int]:
    """'1024', '512,1024,2048', a range '512-2048' (every multiple of 8 between) or '512-16384:512' (a step).

    A range never changes silently: more than 4,096 counts is an error that asks for a step."""
    s = str(text).strip()
    try:
        if "-" in s[1:]:
            span, _, step_text = s.partition(":")
            lo, hi = (int(x) for x in span.split("-", 1))
            if lo <= 0 or hi < lo:
                raise SpecError(f"GPU range '{text}' must be low-high with 0 < low ≤ high")
            step = int(step_text) if step_text else (8 if lo >= 8 else 1)
            if step <= 0:
                raise SpecError(f"GPU range step in '{text}' must be positive")
            out = list(range(lo, hi + 1, step))
            if len(out) > MAX_COUNTS:
                raise SpecError(f"GPU range '{text}' holds {len(out):,} counts (more than {MAX_COUNTS:,}); "
                                f"give a step, e.g. {lo}-{hi}:{-(-(-(-(hi - lo) // (MAX_COUNTS - 1))) // 8) * 8}")
            return out
        counts = [int(x) for x in s.split(",")]
    except ValueError:
        raise SpecError(f"--gpus '{text}' must be a count (1024), a list (512,1024) or a range (512-2048, "
                        "512-16384:512)") from None
    for n in counts:
        if n <= 0:
            raise SpecError(f"GPU count must be positive, got {n}")
    return counts


def parse_prices(items: list[str] | None, default_gpu: str) -> dict[str, float]:
    """'2.5' (for --gpu) or 'h100-sxm=2.5' (repeatable) → {gpu key: $/GPU-hour}."""
    out: dict[str, float] = {}
    for item in items or []:
        name, _, value = item.rpartition("=") if "=" in item else (default_gpu, "=", item)
        try:
            price = float(value)
        except ValueError:
            raise SpecError(f"--price '{item}' must be USD per GPU-hour, e.g. 2.5 or h100-sxm=2.5") from None
        if price <= 0:
            raise SpecError(f"price per GPU-hour must be positive, got {value}")
        out[lookup_gpu(name).key] = price
    return out


def batch_sequences(tokens_text: str | None, sequences: int | None, seq: int) -> tuple[int, str]:
    """Global batch in sequences, from --global-batch (sequences) or --global-batch-tokens."""
    if sequences is not None:
        if sequences <= 0:
            raise SpecError(f"global batch must be positive, got {sequences}")
        return sequences, f"{sequences} sequences"
    tokens = parse_size(tokens_text or "4Mi", "--global-batch-tokens")
    if tokens % seq and re.search(r"[kmgt]$", str(tokens_text).strip().lower()):
        # Literature batch sizes are powers of two: Llama 3's "16M tokens" is 2048 × 8192 = 16 Mi.
        binary = parse_size(str(tokens_text).strip() + "i", "--global-batch-tokens")
        if binary % seq == 0:
            tokens = binary
    b = round(tokens / seq)
    if b < 1:
        raise SpecError(f"global batch of {tokens:,.0f} tokens is less than one {seq}-token sequence")
    return b, f"{tokens:,.0f} tokens = {b} sequences of {seq}"


def _table(res: Result, tokens: float | None) -> Table:
    f = res.facts
    rows = f["layouts"]
    t = Table(title=f"{f['model']} on {f['gpus']} × {f['gpu']}: best layouts "
                    f"({f['candidates_evaluated']:,} candidates, {f['fit_in_memory']:,} fit)")
    cols = ["#", "layout", "mb", "v", "recomp", "ZeRO", "step s", "tokens/s", "TF/GPU", "MFU", "GB/GPU", "headroom"]
    if tokens:
        cols.append("days")
    if any("cost_usd" in w for w in rows):
        cols.append("cost $")
    for c in cols:
        t.add_column(c, justify="left" if c in ("layout", "recomp") else "right", no_wrap=True, min_width=len(c))
    mine = f.get("your_layout")
    shown = list(enumerate(rows, 1))
    if mine and not any(w["index"] == mine["index"] for w in rows):
        shown.append((mine["rank"], mine))
    for i, w in shown:
        row = [str(i), w["layout"], str(w["mb"]), str(w["vp"]), w["recompute"], str(w["zero"]), f"{w['step_s']:.3f}",
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
    return t


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


def _stack_key(name: str) -> str:
    from aiinfra.perf.training import stack

    return stack(name).key


OFFLOAD_NAMES = {"none": 0, "optimizer": 1, "weights": 2, "activations": 4}


def parse_offloads(text: str) -> tuple[int, ...]:
    """'all' or a list of none/optimizer/weights/activations and '+' combinations → bit-flag codes."""
    if text.strip().lower() == "all":
        return tuple(range(8))
    out = set()
    for item in text.split(","):
        code = 0
        for name in item.strip().lower().split("+"):
            if name not in OFFLOAD_NAMES:
                raise SpecError(f"--offload '{name}' is not one of all, none, optimizer, weights, activations "
                                "(combine with +, list with commas)")
            code |= OFFLOAD_NAMES[name]
        out.add(code)
    return tuple(sorted(out))


def _options(dtype: str, flash: bool, sp: bool, zero: str, recompute: str, cp: bool, overlap: bool,
             memory_reserve: str | None = None) -> Options:
    try:
        zero_stages = tuple(sorted({int(z) for z in zero.split(",")}))
    except ValueError:
        raise SpecError(f"--zero '{zero}' must list stages 0-3, e.g. 0,1") from None
    if not zero_stages or any(z not in (0, 1, 2, 3) for z in zero_stages):
        raise SpecError(f"--zero '{zero}' must list stages 0-3, e.g. 0,1")
    modes = tuple(x.strip() for x in recompute.split(","))
    bad = [x for x in modes if x not in RECOMPUTE_NAMES]
    if bad:
        raise SpecError(f"--recompute '{bad[0]}' is not one of none, selective, full")
    return Options(dtype=dtype, flash_attention=flash, sequence_parallel=sp, zero_stages=zero_stages,
                   recompute=tuple(RECOMPUTE_NAMES.index(x) for x in modes),
                   context_parallel=None if cp else (1,), overlap_dp=overlap,
                   memory_reserve=parse_size(memory_reserve, "--memory-reserve") if memory_reserve else None)


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
        help="Evaluate one layout and rank it, e.g. tp=8,pp=16,cp=1,dp=128,mb=1,vp=4,recompute=selective,zero=1; "
             "keys left out are searched.")] = None,
    offload: Annotated[str, typer.Option(
        help="Offload the search may use, charged at host-link bandwidth: all, or none,optimizer,weights,activations "
             "and '+' combinations.")] = "all",
    causal: Annotated[bool, typer.Option("--causal/--no-causal", help="Causal attention (half the attention FLOPs).")] = True,
    software: Annotated[str, typer.Option(help="Software stack profile: megatron-core, torchtitan, deepspeed, megatron-2021.")] = "megatron-core",
    memory_reserve: Annotated[str | None, typer.Option(
        help="Fixed runtime reserve per GPU (CUDA context + NCCL buffers), e.g. 2GiB (default: catalog runtime).")] = None,
    recommend: Annotated[bool, typer.Option("--recommend", help="Rank every catalog GPU for this job instead.")] = False,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Search every TP/PP/CP/EP/DP layout, micro-batch, recompute, ZeRO and interleave; rank by time or cost."""
    m = lookup_model(model)
    g = lookup_gpu(gpu)
    if seq <= 0:
        raise SpecError(f"sequence length must be positive, got {seq}")
    if top <= 0:
        raise SpecError(f"--top must be positive, got {top}")
    counts = parse_gpu_counts(gpus)
    b, batch_note = batch_sequences(global_batch_tokens, global_batch, seq)
    budget = parse_size(tokens, "--tokens") if tokens else None
    prices = parse_prices(price, g.key)
    opts = _options(dtype, flash, sp, zero, recompute, cp, overlap, memory_reserve)
    opts.causal = causal
    opts.offloads = parse_offloads(offload)
    opts.software = _stack_key(software)
    if recommend:
        _recommend(m, counts, b, seq, budget, prices, opts, fmt, batch_note)
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
        if explain:
            emit(Result(f"Why {f.get('your_layout', {}).get('layout') or f['best_layout']}", res.terms), fmt, True,
                 table=lambda _: None)
        return
    emit(res, fmt, explain)


def _recommend(m, counts, b, seq, budget, prices, opts, fmt, batch_note) -> None:
    if len(counts) != 1:
        raise SpecError("--recommend compares GPU types at one GPU count; give --gpus N")
    rows, notes = recommend_training(m, counts[0], global_batch=b, seq=seq, tokens=budget, prices=prices, options=opts)
    res = Result(f"GPU recommendation: training {m.name} on {counts[0]} GPUs", [],
                 {"global batch": batch_note, "ranking": rows}, notes)
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
        t.add_row(str(r["rank_time"]), r["gpu"], r["layout"], f"{r['tokens_per_s']:,.0f}", f"{r['mfu']:.1%}",
                  f"{r['memory_gb']:.1f}", f"{r['days']:,.1f}" if r.get("days") else "",
                  f"{r['cost_usd']:,.0f}" if r.get("cost_usd") else "", r["nvlink"])
    console.print(t)
    for n in notes:
        console.print(f"  {n}")


"""Plan: the best parallel layouts for a training job, and step time against memory headroom.

The same calls as `aiinfra plan`: plan.commands.plan_command, with plan/inputs.py's parsers for GPU
counts, batch, token budget, prices and search options (shared with the CLI).
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from fastapi import APIRouter, Request
from markupsafe import Markup
from pydantic import field_validator

from aiinfra.catalog.gpus import gpu as lookup_gpu
from aiinfra.errors import SpecError
from aiinfra.web.charts import div
from aiinfra.web.common import (
    Explainer,
    FormField,
    Outcome,
    Table,
    WebSpec,
    catalog_model,
    cli_json,
    comma_list,
    gpu_names,
    has_module,
    model_names,
    register_aliases,
    require,
    stack_names,
)
from aiinfra.web.templating import render_page

router = APIRouter()
LIBRARY = "aiinfra.plan.search"
CHART_TOP = 20  # layouts drawn in the scatter; the table shows `top`


class PlanSpec(WebSpec):
    """`aiinfra plan` options (model = catalog name). `price` is a comma-separated list like the repeated option."""

    model: str
    gpu: str = "h100-sxm"
    gpus: str = "64"
    seq: int = 8192
    global_batch_tokens: str | None = None
    global_batch: int | None = None
    tokens: str | None = None
    price: list[str] = []
    objective: str = "time"
    top: int = 5
    dtype: str = "bf16"
    zero: str = "0,1,2,3"
    recompute: str = "none,selective,full"
    flash: bool = True
    sp: bool = True
    cp: bool = True
    overlap: bool = True
    layout: str | None = None
    software: str = "megatron-core"
    offload: str = "all"
    causal: bool = True
    memory_reserve: str | None = None
    grad_dtype: str | None = None
    ep_overlap: bool = False
    moe_dispatcher: str = "alltoall"
    moe_sync_free: bool = False
    pipeline_split: str = "auto"
    recompute_modules: str | None = None
    mtp: bool = True
    cuda_graph_scope: str | None = None
    quantized_params: bool = False

    _split = field_validator("price", mode="before")(comma_list)


def available() -> bool:
    return has_module(LIBRARY)


def run_plan(s: PlanSpec, top: int | None = None) -> tuple[Any, Any, float | None]:
    """The plan command (without --recommend): the ranked rows, the Result, the token budget."""
    from aiinfra.plan.inputs import (
        batch_sequences,
        build_options,
        parse_gpu_counts,
        parse_prices,
        parse_size,
    )
    from aiinfra.plan.commands import plan_command

    m = catalog_model(s.model)
    g = lookup_gpu(s.gpu)
    if s.seq <= 0:
        raise SpecError(f"sequence length must be positive, got {s.seq}")
    if s.top <= 0:
        raise SpecError(f"--top must be positive, got {s.top}")
    counts = parse_gpu_counts(s.gpus)
    b, batch_note = batch_sequences(s.global_batch_tokens, s.global_batch, s.seq)
    budget = parse_size(s.tokens, "--tokens") if s.tokens else None
    prices = parse_prices(s.price, g.key)
    opts = build_options(s.dtype, s.flash, s.sp, s.zero, s.recompute, s.cp, s.overlap, s.memory_reserve or None,
                         causal=s.causal, offload=s.offload, software=s.software, grad_dtype=s.grad_dtype or None,
                         ep_overlap=s.ep_overlap, moe_dispatcher=s.moe_dispatcher, moe_sync_free=s.moe_sync_free,
                         pipeline_split=s.pipeline_split, recompute_modules=s.recompute_modules or None,
                         mtp=s.mtp, cuda_graph_scope=s.cuda_graph_scope or None,
                         quantized_params=s.quantized_params)
    res = plan_command(m, g, counts, global_batch=b, seq=s.seq, batch_note=batch_note, tokens=budget,
                       price_per_gpu_hour=prices.get(g.key), objective=s.objective, top=top or s.top, options=opts,
                       layout=s.layout or None)
    rows = res.facts["layouts"]
    res.facts["layouts"] = rows[: s.top]
    return rows, res, budget


def plan_view(s: PlanSpec, ex: Explainer) -> Outcome:
    rows, res, budget = run_plan(s, top=max(s.top, CHART_TOP))
    ex.add_result(res)
    f = res.facts
    win = rows[0]
    names = {t.name: t for t in res.terms}
    out = Outcome(warnings=[w for w in res.warnings if w != f.get("your_layout_verdict")])
    mine = f.get("your_layout")  # --layout: the explained terms are that layout's, not the winner's
    head = Markup("Best: <b>{}</b> mb{} {} recompute ZeRO-{}, offload {} on {} × {}").format(
        win["layout"], win["mb"], win["recompute"], win["zero"], win["offload"], win["gpus"], f["gpu"])
    if mine:
        out.headline.append(head)
        head = Markup("{}").format(f["your_layout_verdict"])
    for t in res.terms[:4]:
        head += Markup("; ") + ex.link(t) + Markup(" {}").format(t.name)
    out.headline.append(head)
    out.headline.append(Markup("{:,} candidates evaluated, {:,} fit in memory; global batch {}").format(
        f["candidates_evaluated"], f["fit_in_memory"], f["global_batch"]))
    cap = f["device_memory"]["value"]
    fig = go.Figure(go.Scatter(
        x=[w["headroom_gb"] for w in rows], y=[w["step_s"] for w in rows], mode="markers+text",
        text=[str(i) for i in range(1, len(rows) + 1)], textposition="top center",
        marker=dict(size=[14 if i == 0 else 9 for i in range(len(rows))],
                    color=[w["tokens_per_s"] for w in rows], colorscale="Viridis", showscale=True,
                    colorbar=dict(title="tokens/s")),
        customdata=[[w["layout"], w["mb"], w["recompute"], w["zero"]] for w in rows],
        hovertemplate="%{customdata[0]} mb%{customdata[1]} %{customdata[2]} ZeRO-%{customdata[3]}<br>"
                      "step %{y:.3f} s, headroom %{x:.1f} GB<extra></extra>"))
    fig.update_layout(title=f"Step time vs memory headroom ({len(rows)} best distinct layouts; 1 = winner)",
                      xaxis_title=f"memory headroom per GPU, GB (device memory {cap:.1f} GB)", yaxis_title="step time (s)")
    out.charts.append(div(fig, "plan-chart"))
    cols = ["#", "layout", "mb", "v", "recompute", "ZeRO", "offload", "step s", "tokens/s", "TFLOP/s per GPU", "MFU", "GB per GPU"]
    if budget:
        cols.append("days")
    t = Table(f"{f['model']} on {win['gpus']} × {f['gpu']}: best layouts"
              + (f"; yours is #{mine['rank']} of {mine['layouts_ranked']:,}" if mine else ""), cols, id="plans")
    shown = list(enumerate(rows[: s.top], 1))
    if mine and not any(w["index"] == mine["index"] for _, w in shown):
        shown.append((mine["rank"], mine))
    explained = mine["index"] if mine else rows[0]["index"]
    for i, w in shown:
        how = {"layout": w["layout"], "micro-batch": w["mb"], "recompute": w["recompute"], "ZeRO": w["zero"],
               "offload": w["offload"]}
        src = {"search": "aiinfra.plan.search.plan: vectorized sizing + perf over every layout"}
        if w["index"] == explained and "step time" in names:
            step = ex.link(names["step time"], f"{w['step_s']:.3f}")
        else:
            step = ex.fact(f"step time (#{i})", w["step_s"], "s", "Σ compute + exposed communication + bubble",
                           {**how, **{k: round(v, 4) for k, v in w.get("parts", {}).items()}}, src, f"{w['step_s']:.3f}")
        mark = " (yours)" if mine and w["index"] == mine["index"] else ""
        row = [str(i), w["layout"] + mark, str(w["mb"]), str(w["vp"]), w["recompute"], str(w["zero"]), w["offload"], step,
               ex.fact(f"tokens/s (#{i})", w["tokens_per_s"], "tokens/s", "global batch · seq / step time", how, src,
                       f"{w['tokens_per_s']:,.0f}"),
               ex.fact(f"TFLOP/s per GPU (#{i})", w["tflops"], "TFLOP/s", "hardware FLOPs per step / GPUs / step time",
                       how, src, f"{w['tflops']:.0f}"),
               ex.fact(f"MFU (#{i})", w["mfu"], "", "model FLOPs per step / GPUs / step time / 16-bit datasheet peak",
                       how, src, f"{w['mfu']:.0%}"),
               ex.fact(f"memory per GPU (#{i})", w["memory_gb"], "GB", "training_memory(...) total for this layout",
                       how, src, f"{w['memory_gb']:.1f}")]
        if budget:
            row.append(ex.fact(f"days (#{i})", w["days"], "days", "token budget / tokens/s / 86400",
                               {"tokens": budget, **how}, src, f"{w['days']:,.1f}"))
        t.rows.append(row)
    out.tables.append(t)
    out.warnings += [n for n in f["notes"] if n not in out.warnings]
    return out


FIELDS = [
    FormField("model", "model (catalog name)", "text", model_names),
    FormField("gpu", "GPU", "select", gpu_names),
    FormField("gpus", "GPUs", "text", help="count, list 512,1024 or range 512-2048"),
    FormField("seq", "sequence length"),
    FormField("global_batch_tokens", "global batch tokens", "text", help="e.g. 4M; blank: 4Mi"),
    FormField("tokens", "token budget", "text", help="e.g. 15T"),
    FormField("price", "$/GPU-hour", "text", help="2.5, or gpu=2.5, comma-separated"),
    FormField("objective", "rank by", "select", ["time", "cost"]),
    FormField("top", "layouts shown"),
    FormField("dtype", "linear-layer dtype", "select", ["bf16", "fp16", "fp8", "fp4"]),
    FormField("quantized_params", "FP8/FP4 parameters", "checkbox",
              help="weights kept and gathered in the FP8/FP4 dtype (Megatron --fp8-param-gather)"),
    FormField("zero", "ZeRO stages allowed", "text"),
    FormField("recompute", "recompute modes allowed", "text"),
    FormField("recompute_modules", "selective recompute modules", "text",
              help="Megatron's recompute_modules, e.g. layernorm,moe_act; blank: core_attn"),
    FormField("mtp", "train MTP layers", "checkbox", help="where the model's config has them (DeepSeek-V3)"),
    FormField("cuda_graph_scope", "CUDA graph scopes", "text",
              help="Megatron's per-layer graphs, e.g. attn,moe_router,moe_preprocess; blank: eager"),
    FormField("layout", "your layout", "text",
              help="e.g. tp=8,pp=16,dp=64,mb=1,vp=8: evaluated, explained and ranked; keys left out are searched"),
    FormField("software", "software stack", "select", stack_names),
    FormField("offload", "offload allowed", "text", help="all, or none,optimizer,weights,activations (+ combines)"),
    FormField("memory_reserve", "runtime reserve per GPU", "text", help="e.g. 2GiB; blank: the catalog's"),
]
ALIASES = register_aliases({"global_batch_tokens": ["--global-batch-tokens", "global batch of"],
                            "tokens": ["--tokens"], "top": ["--top"], "price": ["--price", "price per gpu-hour"],
                            "gpus": ["gpu count", "gpu range", "--gpus"], "seq": ["sequence length"],
                            "zero": ["--zero"], "recompute": ["--recompute"],
                            "recompute_modules": ["--recompute-modules", "recompute module"],
                            "layout": ["--layout", "tp", "pp", "dp", "ep", "etp", "mb", "vp", "dp·mb"],
                            "software": ["stack", "--software"], "offload": ["--offload"],
                            "memory_reserve": ["--memory-reserve"], "grad_dtype": ["--grad-dtype"],
                            "moe_dispatcher": ["dispatcher"], "pipeline_split": ["--pipeline-split"],
                            "cuda_graph_scope": ["--cuda-graph-scope", "CUDA graph scope"],
                            "quantized_params": ["--quantized-params", "fp8-param-gather"]})


@router.get("/plan", include_in_schema=False)
def plan_page(request: Request):
    return render_page(request, path="/plan", title="Training plan",
                       intro="Every TP/PP/CP/EP/DP layout, micro-batch, recompute mode, ZeRO stage and interleave, "
                             "filtered by memory and ranked by step time (or cost); the winner is explained.",
                       spec_cls=PlanSpec, fields=FIELDS, compute=plan_view if available() else None, aliases=ALIASES,
                       cli="aiinfra plan MODEL --gpu … --gpus … --seq … --explain", initial={"model": "llama-3.1-70b"})


@router.post("/api/plan", tags=["plan"], summary="aiinfra plan --format json --explain")
def api_plan(spec: PlanSpec) -> Any:
    require(LIBRARY)
    return cli_json(run_plan(spec)[1])

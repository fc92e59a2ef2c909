"""Size: training and inference memory per GPU, and the fewest GPUs of each SKU that serve a model.

The same library calls as `aiinfra size train|infer|fits` (cli/size.py), and the same Result.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from markupsafe import Markup

from aiinfra.catalog.gpus import gpu as lookup_gpu
from aiinfra.explain import Result, Term
from aiinfra.sizing.commands import fits_report, inference_report, training_report
from aiinfra.sizing.training import capacity_facts, capacity_text
from aiinfra.units import GB, GiB
from aiinfra.web.charts import div
from aiinfra.web.common import (
    Explainer,
    FormField,
    Outcome,
    Table,
    WebSpec,
    catalog_model,
    gpu_names,
    model_names,
    optional_engine_names,
    stack_names,
)
from aiinfra.web.templating import render_page

router = APIRouter()

ALIASES: dict[str, list[str]] = {}  # common.ALIASES covers the sizing sentences


class TrainSpec(WebSpec):
    """`aiinfra size train` options (model is a catalog name on the web, never a path)."""

    model: str
    gpu: str = "h100-sxm"
    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    etp: int | None = None
    sp: bool | None = None
    interleave: int = 1
    zero: int = 0
    distributed_optimizer: bool = False
    recompute: str = "none"
    seq: int = 4096
    micro_batch: int = 1
    num_microbatches: int | None = None
    precision: str = "bf16"
    optimizer: str = "adam"
    grad_dtype: str | None = None
    offload: str = "none"
    flash_attention: bool = True
    overhead_gib: float | None = None
    fragmentation: float | None = None
    software: str = "megatron-core"
    pipeline_split: str = "auto"
    recompute_modules: str | None = None
    mtp: bool = True
    quantized_params: bool = False


class InferSpec(WebSpec):
    """`aiinfra size infer` options."""

    model: str
    gpu: str = "h100-sxm"
    quant: str = "bf16"
    kv_dtype: str = "bf16"
    context: int = 4096
    batch: int = 1
    tp: int = 1
    pp: int = 1
    prompt: int | None = None
    gpu_memory_utilization: float | None = None
    max_batched_tokens: int | None = None
    overhead_gib: float | None = None
    engine: str | None = None
    max_model_len: int | None = None


class FitsSpec(WebSpec):
    """`aiinfra size fits` options."""

    model: str
    quant: str = "bf16"
    kv_dtype: str = "bf16"
    context: int = 4096
    batch: int = 1
    gpu_memory_utilization: float | None = None


# --- library calls: the same as cli/size.py ------------------------------------------------------


def train_result(s: TrainSpec) -> Result:
    return training_report(catalog_model(s.model), lookup_gpu(s.gpu), **s.model_dump(exclude={"model", "gpu"}))


def infer_result(s: InferSpec) -> Result:
    return _infer(s)[0]


def _infer(s: InferSpec) -> tuple[Result, Term]:
    """The Result, plus the KV-bytes-per-token Term the page links to (the CLI prints it as a fact)."""
    result, mem = inference_report(catalog_model(s.model), lookup_gpu(s.gpu), **s.model_dump(exclude={"model", "gpu"}))
    return result, mem.kv_per_token


def fits_result(s: FitsSpec, explain: bool = True) -> Result:
    return fits_report(catalog_model(s.model), explain=explain, **s.model_dump(exclude={"model"}))


# --- views ---------------------------------------------------------------------------------------


def _memory_table(r: Result, ex: Explainer) -> Table:
    t = Table(r.title, ["item", "GB (1e9 B)", "GiB (2^30 B)"], id="memory")
    for term in r.terms:
        v = float(term.value)
        t.rows.append([term.name, ex.link(term, f"{v / GB:,.2f}"), ex.link(term, f"{v / GiB:,.2f}")])
    return t


def _stack_chart(r: Result, capacities: list[tuple[str, float, float]], div_id: str) -> Any:
    """One stacked bar per GPU (the per-GPU memory parts) against each GPU's capacity line."""
    parts = [t for t in r.terms if t.name != "total per GPU"]
    names = [c[0] for c in capacities]
    # A plain figure dict: plotly's object model validates every property it is given, which was most
    # of this page's CPU (charts.div serialises a dict as it is).
    data: list[dict] = []
    for t in parts:
        gb = float(t.value) / GB
        data.append({"type": "bar", "name": t.name, "x": names, "y": [gb] * len(names),
                     "hovertemplate": f"{t.name}: %{{y:,.2f}} GB<extra></extra>"})
    shapes = []
    for label, caps, color in _capacity_lines(capacities):
        # One short horizontal line over each GPU's bar, at that GPU's capacity.
        shapes += [dict(type="line", x0=i - 0.45, x1=i + 0.45, y0=cap, y1=cap, xref="x", yref="y",
                        line=dict(color=color, width=3, dash="solid" if label == "capacity" else "dash"))
                   for i, cap in enumerate(caps) if cap]
        data.append({"type": "scatter", "x": names, "y": caps, "mode": "markers", "name": label,
                     "marker": {"color": color, "size": 9, "symbol": "diamond"},
                     "hovertemplate": f"{label}: %{{y:,.2f}} GB<extra></extra>"})
    fig = {"data": data, "layout": {"shapes": shapes, "barmode": "stack", "title": {"text": "Memory per GPU vs capacity"},
                                    "yaxis": {"title": {"text": "GB (1e9 bytes)"}},
                                    "legend": {"orientation": "h", "y": -0.2}}}
    return div(fig, div_id)


def _engine_total_gb(g: Any) -> float:
    """The total vLLM budgets from on `g` (nvidia-smi total − the driver's reserve, sizing.engine), in GB."""
    from aiinfra.catalog.loader import default_catalog
    from aiinfra.sizing.engine import visible_total_bytes

    return visible_total_bytes(g, default_catalog().entry("engines", "vllm")[1])[0] / 1e9


def _capacity_lines(capacities: list[tuple[str, float, float]]) -> list[tuple[str, list[float | None], str]]:
    """(label, value per GPU, colour): the capacity, and the engine budget when there is one (inference)."""
    lines = [("capacity", [c[1] for c in capacities], "#b42318")]
    budgets = [c[2] for c in capacities]
    if any(budgets):
        lines.append(("engine budget", [float(b) if b else None for b in budgets], "#9a6700"))
    return lines


COMPARE = ("h100-sxm", "h200-sxm", "b200", "a100-80gb-sxm", "l40s", "mi300x")  # common SKUs to read the bar against


def _compare_gpus(chosen: str) -> list[Any]:
    """The chosen GPU first, then common catalog GPUs, so the bar reads against each capacity."""
    from aiinfra.catalog.gpus import all_gpus

    g = lookup_gpu(chosen)
    others = [o for o in all_gpus() if o.key != g.key]
    others.sort(key=lambda o: (COMPARE.index(o.key) if o.key in COMPARE else len(COMPARE), o.key))
    return [g] + others[:5]


def train_view(s: TrainSpec, ex: Explainer) -> Outcome:
    r = train_result(s)
    ex.add_result(r)
    f = r.facts
    total = r.term("total per GPU")
    verdict = ("fits" if f["fits"] else "does NOT fit") + f" {f['gpu']} ({capacity_text(f)})"
    head = ex.fact("headroom", f["headroom_gb"], "GB", "capacity_gb − total per GPU / 1e9",
                   {"capacity_gb": f["capacity_gb"], "total per GPU": total},
                   {"capacity_gb": f"catalog gpus.{f['gpu']}.memory_total_mib (nvidia-smi) × 2^20 / 1e9"},
                   text=f"{f['headroom_gb']:,.2f} GB")
    out = Outcome(
        headline=[ex.link(total) + f" per GPU on the most-loaded ({f['stage']}) pipeline stage: " + verdict + "; headroom " + head],
        warnings=r.warnings,
    )
    gpus = _compare_gpus(s.gpu)
    out.charts.append(_stack_chart(r, [(g.key, capacity_facts(g)["capacity_gb"], 0.0) for g in gpus], "size-chart"))
    out.tables.append(_memory_table(r, ex))
    return out


def infer_view(s: InferSpec, ex: Explainer) -> Outcome:
    r, per_tok = _infer(s)
    ex.add_result(r)
    f = r.facts
    total = r.term("total per GPU")
    ex.add(per_tok)
    tokens = ex.fact("KV tokens", f["kv_tokens"], "tokens",
                     "floor((gpu_memory_utilization · engine total − weights − workspace − fixed overhead) / KV bytes "
                     "per token)",
                     {"gpu_memory_utilization": f["gpu_memory_utilization"], "engine_total_gb": f["engine_total_gb"],
                      "kv_budget_gb": f["kv_budget_gb"], "KV bytes per token": per_tok},
                     {"gpu_memory_utilization": "vLLM EngineArgs.gpu_memory_utilization (catalog runtime.inference default)"},
                     text=f"{f['kv_tokens']:,}")
    verdict = "fits" if f["fits"] else "does NOT fit"
    out = Outcome(
        headline=[ex.link(total) + f" per GPU: {verdict} {f['gpu']} ({capacity_text(f)}, engine budget "
                  f"{f['engine_budget_gb']:,.2f} GB); room for " + tokens + " KV tokens at " + ex.link(per_tok)
                  + " per token"],
        warnings=r.warnings,
    )
    if "engine" in f:  # what the engine itself prints at start-up (size infer --engine)
        e = f["engine"]
        out.headline.append(f"{e['engine']} at start-up: GPU KV cache size {e['kv_tokens']:,} tokens; maximum "
                            f"concurrency for {e['max_model_len']:,} tokens per request {e['max_concurrency']:.2f}x"
                            + ("" if e["starts"] else " (will NOT start)"))
    util = f["gpu_memory_utilization"]
    gpus = _compare_gpus(s.gpu)
    out.charts.append(_stack_chart(r, [(g.key, capacity_facts(g)["capacity_gb"], util * _engine_total_gb(g))
                                       for g in gpus], "size-chart"))
    out.tables.append(_memory_table(r, ex))
    return out


def fits_view(s: FitsSpec, ex: Explainer) -> Outcome:
    r = fits_result(s)
    for t in r.terms:
        ex.add(t)
    rows = r.facts["fits"]
    t = Table(r.title, ["gpu", "GPUs", "layout", "per GPU GB", "capacity GB", "KV tokens", "interconnect"], id="fits")
    for row in rows:
        if row["gpus"] is None:
            t.rows.append([row["gpu"], "-", row.get("note", ""), "-", f"{row['capacity_gb']:,.2f}", "-", ""])
            continue
        link = row["interconnect"] if row["gpus"] > 1 else ""
        how = "fewest TP (inside a node) then PP (across nodes) whose per-GPU total fits the engine budget"
        t.rows.append([
            row["gpu"],
            _fits_fact(ex, row, "GPUs", row["gpus"], "gpus", how, f"{row['gpus']}"),
            f"TP{row['tp']}·PP{row['pp']}",
            _fits_fact(ex, row, "per GPU", row["per_gpu_gb"], "GB", "inference_memory(...).total at this layout / 1e9",
                       f"{row['per_gpu_gb']:,.2f}"),
            ex.fact(f"capacity ({row['gpu']})", row["capacity_gb"], "GB",
                    f"visible total (nvidia-smi MiB × 2^20) / 1e9; datasheet {row['memory']}", {},
                    {"memory_total_mib": f"catalog gpus.{row['gpu']}.memory_total_mib"}, f"{row['capacity_gb']:,.2f}"),
            _fits_fact(ex, row, "KV tokens", row["kv_tokens"], "tokens", "KV budget / KV bytes per token",
                       f"{row['kv_tokens']:,}"),
            link,
        ])
    fitted = [row for row in rows if row["gpus"] is not None]
    fig = {"data": [{"type": "bar", "x": [row["gpu"] for row in fitted], "y": [row["gpus"] for row in fitted],
                     "text": [f"TP{row['tp']}·PP{row['pp']}" for row in fitted], "marker": {"color": "#1f6feb"}}],
           "layout": {"title": {"text": "Fewest GPUs per SKU"}, "yaxis": {"title": {"text": "GPUs"}}}}
    head = [Markup("Parameters: ") + ex.link(r.terms[0], f"{float(r.terms[0].value):,.0f}") + " total, "
            + ex.link(r.terms[1], f"{float(r.terms[1].value):,.0f}") + " active"]
    return Outcome(headline=head, charts=[div(fig, "size-chart")], tables=[t])


def _fits_fact(ex: Explainer, row: dict, name: str, value: Any, unit: str, how: str, text: str):
    return ex.fact(f"{name} ({row['gpu']})", value, unit, how,
                   {"gpu": row["gpu"], "tp": row["tp"], "pp": row["pp"], "capacity_gb": row["capacity_gb"]},
                   {"method": "aiinfra.sizing.inference.min_gpus"}, text=text)


# --- forms ---------------------------------------------------------------------------------------

MODEL = FormField("model", "model (catalog name)", "text", model_names, "e.g. llama-3.1-70b")
GPU = FormField("gpu", "GPU", "select", gpu_names)
TRAIN_FIELDS = [
    MODEL, GPU,
    FormField("tp", "TP"), FormField("pp", "PP"), FormField("dp", "DP"), FormField("cp", "CP"), FormField("ep", "EP"),
    FormField("etp", "expert TP", help="1: whole experts; blank: TP"),
    FormField("interleave", "interleave (virtual stages)"),
    FormField("zero", "ZeRO stage", "select", ["0", "1", "2", "3"]),
    FormField("recompute", "recompute", "select", ["none", "selective", "full"]),
    FormField("recompute_modules", "selective recompute modules", "text",
              help="Megatron's recompute_modules, e.g. layernorm,moe_act; blank: core_attn"),
    FormField("mtp", "MTP layers", "checkbox", help="where the model's config has them (DeepSeek-V3)"),
    FormField("seq", "sequence length"), FormField("micro_batch", "micro-batch"),
    FormField("num_microbatches", "micro-batches per flush", help="blank: at least PP"),
    FormField("precision", "precision", "select", ["bf16", "fp16", "fp8", "fp4", "fp32"]),
    FormField("quantized_params", "FP8/FP4 parameters", "checkbox",
              help="weights kept in the FP8/FP4 precision, no 16-bit copy (Megatron --fp8-param-gather)"),
    FormField("optimizer", "optimizer", "select", ["adam", "adamw", "adam8bit", "sgd"]),
    FormField("grad_dtype", "gradient dtype", "select", ["", "fp32", "bf16", "bf16+fp32"]),
    FormField("offload", "offload", "select", ["none", "optimizer", "optimizer+params", "activations 25%",
                                               "activations 50%", "activations 75%", "activations"],
              help="activations: those of that share of the layers (megatron-core: PP 1, no recompute)"),
    FormField("distributed_optimizer", "distributed optimizer", "checkbox"),
    FormField("flash_attention", "flash attention", "checkbox"),
    FormField("overhead_gib", "overhead GiB", help="blank: catalog"),
    FormField("fragmentation", "fragmentation", help="fraction; blank: catalog"),
    FormField("software", "software stack", "select", stack_names, help="whose selective recompute applies"),
    FormField("pipeline_split", "pipeline split", "text", ["auto", "even", "account"],
              help="auto, even, account, or a Megatron layout such as Et|(tt|)*30mL"),
]
INFER_FIELDS = [
    MODEL, GPU,
    FormField("quant", "weights", "select", ["bf16", "fp16", "fp8", "int8", "int4", "fp4"]),
    FormField("kv_dtype", "KV cache", "select", ["bf16", "fp16", "fp8", "int8"]),
    FormField("context", "context tokens"), FormField("batch", "batch (sequences)"),
    FormField("tp", "TP"), FormField("pp", "PP"),
    FormField("prompt", "prompt tokens", help="blank: the whole context"),
    FormField("gpu_memory_utilization", "gpu_memory_utilization", help="blank: vLLM's 0.9"),
    FormField("max_batched_tokens", "max batched tokens", help="blank: 8192"),
    FormField("engine", "engine start-up", "select", optional_engine_names,
              help="also predict the KV tokens that engine reports at start-up"),
    FormField("max_model_len", "max_model_len", help="blank: the context"),
    FormField("overhead_gib", "overhead GiB", help="blank: catalog"),
]
FITS_FIELDS = [
    MODEL,
    FormField("quant", "weights", "select", ["bf16", "fp16", "fp8", "int8", "int4", "fp4"]),
    FormField("kv_dtype", "KV cache", "select", ["bf16", "fp16", "fp8", "int8"]),
    FormField("context", "context tokens"), FormField("batch", "batch (sequences)"),
    FormField("gpu_memory_utilization", "gpu_memory_utilization", help="blank: vLLM's 0.9"),
]
TABS = [("/size/train", "Training"), ("/size/infer", "Inference"), ("/size/fits", "Fits")]


@router.get("/size", include_in_schema=False)
def size_index() -> RedirectResponse:
    return RedirectResponse("/size/train")


@router.get("/size/train", include_in_schema=False)
def size_train_page(request: Request):
    return render_page(request, path="/size/train", title="Size: training memory", tabs=TABS,
                       intro="Per-GPU memory of a training job: weights, gradients, optimizer state, activations "
                             "(Korthikanti Table 2) and runtime overhead, against the GPU's capacity.",
                       spec_cls=TrainSpec, fields=TRAIN_FIELDS, compute=train_view, aliases=ALIASES,
                       cli="aiinfra size train MODEL --gpu … --tp … --explain",
                       initial={"model": "llama-3.1-70b", "tp": 8, "recompute": "selective"})


@router.get("/size/infer", include_in_schema=False)
def size_infer_page(request: Request):
    return render_page(request, path="/size/infer", title="Size: inference memory", tabs=TABS,
                       intro="Per-GPU memory to serve a model: quantized weights, KV cache, activation workspace "
                             "and runtime overhead, and how many KV tokens fit the engine's reservation.",
                       spec_cls=InferSpec, fields=INFER_FIELDS, compute=infer_view, aliases=ALIASES,
                       cli="aiinfra size infer MODEL --gpu … --quant … --explain", initial={"model": "llama-3.1-70b"})


@router.get("/size/fits", include_in_schema=False)
def size_fits_page(request: Request):
    return render_page(request, path="/size/fits", title="Size: which GPUs fit", tabs=TABS,
                       intro="For every catalog GPU, the fewest GPUs that serve this model at this setting.",
                       spec_cls=FitsSpec, fields=FITS_FIELDS, compute=fits_view, aliases=ALIASES,
                       cli="aiinfra size fits MODEL --quant … --explain", initial={"model": "llama-3.1-70b"})


@router.post("/api/size/train", tags=["size"], summary="aiinfra size train --format json --explain")
def api_size_train(spec: TrainSpec) -> dict:
    return train_result(spec).to_dict()


@router.post("/api/size/infer", tags=["size"], summary="aiinfra size infer --format json --explain")
def api_size_infer(spec: InferSpec) -> dict:
    return infer_result(spec).to_dict()


@router.post("/api/size/fits", tags=["size"], summary="aiinfra size fits --format json --explain")
def api_size_fits(spec: FitsSpec) -> dict:
    return fits_result(spec).to_dict()

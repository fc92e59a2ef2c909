"""Infer: time to first token, time per output token and $ per 1M tokens, for one GPU and per SKU.

The command `aiinfra infer` runs (serving.commands.infer): the chosen GPU, and with recommend=True (`--recommend`)
the per-SKU comparison. Each SKU's bar is re-evaluated with perf.inference.inference_perf at the TP the ranking
chose (with the same engine), so every bar has its explanation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from markupsafe import Markup
from pydantic import field_validator

from aiinfra.catalog.gpus import gpu as lookup_gpu
from aiinfra.plan.recommend import InferenceQuery
from aiinfra.web.charts import div
from aiinfra.web.common import (
    Explainer,
    FormField,
    Outcome,
    Table,
    catalog_model,
    cli_json,
    comma_list,
    gpu_names,
    has_module,
    model_names,
    optional_engine_names,
    register_aliases,
    require,
)
from aiinfra.web.templating import render_page

router = APIRouter()
LIBRARY = "aiinfra.perf.inference"


class InferPerfSpec(InferenceQuery):
    """`aiinfra infer` options with the bounds plan.recommend.InferenceQuery declares (model = catalog
    name); `price` is comma-separated like the repeated option. catalog_prices: price GPUs without a
    given price from the catalog (the one lookup tco uses too), each with its source."""

    engine: str | None = None  # the CLI's --engine: efficiencies fitted on that engine's benchmarks, where any

    _split = field_validator("price", mode="before")(comma_list)


def available() -> bool:
    return has_module(LIBRARY) and has_module("aiinfra.plan.recommend")


def _prices(s: InferPerfSpec, key: str) -> tuple[dict[str, float], dict[str, Any]]:
    """{gpu: $/GPU-h} from --price and (with catalog_prices) the catalog, and {gpu: its GpuHourPrice}."""
    from aiinfra.catalog.gpus import all_gpus
    from aiinfra.catalog.prices import parse_prices, price_table

    given = parse_prices(s.price, key)
    table = price_table([g.key for g in all_gpus()], given, s.catalog_prices)
    return {g: p.usd_per_gpu_hour for g, p in table.items()}, table


def _command(s: InferPerfSpec, recommend: bool) -> Any:
    """`aiinfra infer` itself (serving.commands.infer), as the CLI calls it."""
    from aiinfra.catalog.prices import parse_prices
    from aiinfra.serving.commands import infer

    g = lookup_gpu(s.gpu)
    return infer(catalog_model(s.model), g, prompt=s.prompt, output=s.output, batch=s.batch, tp=s.tp, quant=s.quant,
                 kv_dtype=s.kv_dtype, prices=parse_prices(s.price, g.key), catalog_prices=s.catalog_prices,
                 recommend=recommend, engine=s.engine or None)


def infer_result(s: InferPerfSpec) -> Any:
    return _command(s, recommend=False)


def recommend_result(s: InferPerfSpec) -> Any:
    return _command(s, recommend=True)


def infer_view(s: InferPerfSpec, ex: Explainer) -> Outcome:
    from aiinfra.perf.inference import inference_perf

    r = infer_result(s)
    ex.add_result(r)
    out = Outcome(warnings=list(r.warnings))
    head = Markup("{} × {}:").format(s.tp, r.facts["gpu"])
    for t in r.terms:
        head += Markup(" ") + ex.link(t, _show(t)) + Markup(" {};").format(t.name)
    out.headline.append(head)
    m = catalog_model(s.model)
    prices, price_table = _prices(s, lookup_gpu(s.gpu).key)
    rec = recommend_result(s)
    fitting = [row for row in rec.facts["ranking"] if row["fits"]]
    per_sku = []
    for row in fitting:
        res = inference_perf(m, lookup_gpu(row["gpu"]), prompt=s.prompt, output=s.output, batch=s.batch, tp=row["tp"],
                             quant=s.quant, kv_dtype=s.kv_dtype, price_per_gpu_hour=prices.get(row["gpu"]),
                             engine=s.engine or None)
        # Same Terms, labelled with their SKU so the explain panel tells the rows apart.
        res.terms = [replace(t, name=f"{t.name} ({row['gpu']}, TP{row['tp']})") for t in res.terms]
        per_sku.append((row, res))
    names = [f"{row['gpu']} (TP{row['tp']})" for row, _ in per_sku]
    priced = [(n, res) for n, (_, res) in zip(names, per_sku, strict=True) if _has(res, "cost per 1M output tokens")]
    fig = _three_bars(
        [("TTFT (ms)", names, [_term(res, "TTFT").value * 1e3 for _, res in per_sku], "#4c78a8"),
         ("TPOT (ms)", names, [_term(res, "TPOT").value * 1e3 for _, res in per_sku], "#f58518"),
         ("$ per 1M output tokens", [n for n, _ in priced],
          [_term(res, "cost per 1M output tokens").value for _, res in priced], "#54a24b")],
        f"{m.name} ({s.quant}), {s.prompt}→{s.output} tokens, batch {s.batch}, per GPU SKU")
    out.charts.append(div(fig, "infer-chart", height=440))
    t = Table("Per GPU SKU (smallest TP that serves the batch)",
              ["gpu", "TP", "batch served", "TTFT ms", "TPOT ms", "tokens/s per GPU", "$/GPU-h", "$ per 1M tokens"],
              id="skus")
    for row, res in per_sku:
        cost = ex.link(_term(res, "cost per 1M output tokens"), f"{_term(res, 'cost per 1M output tokens').value:.3f}") \
            if _has(res, "cost per 1M output tokens") else ""
        ph = price_table.get(row["gpu"])
        price_cell = "" if ph is None else f"{ph.usd_per_gpu_hour:.2f} ({'given' if ph.from_user else ph.offer})"
        t.rows.append([row["gpu"], str(row["tp"]), str(res.facts["batch_served"]),
                       ex.link(_term(res, "TTFT"), f"{_term(res, 'TTFT').value * 1e3:,.1f}"),
                       ex.link(_term(res, "TPOT"), f"{_term(res, 'TPOT').value * 1e3:,.2f}"),
                       ex.link(_term(res, "output tokens/s per GPU"), f"{_term(res, 'output tokens/s per GPU').value:,.0f}"),
                       price_cell, cost])
    for row in rec.facts["ranking"]:
        if not row["fits"]:
            t.rows.append([row["gpu"], "-", "", "", "", "", "", "does not fit in 8 GPUs"])
    out.tables.append(t)
    out.warnings += rec.warnings + rec.assumptions
    out.extra.append(Markup('<p class="calibration">Calibration: {}</p>').format(r.facts.get("calibration", "")))
    return out


def _three_bars(panels: list[tuple[str, list[str], list[float], str]], title: str) -> dict:
    """Three bar charts side by side as a plain plotly figure dict (what make_subplots(1, 3) builds)."""
    data, layout = [], {"title": {"text": title}, "showlegend": False, "annotations": []}
    width = 1 / len(panels)
    for i, (name, x, y, color) in enumerate(panels, 1):
        suffix = "" if i == 1 else str(i)
        data.append({"type": "bar", "x": x, "y": y, "name": name.split(" (")[0], "marker": {"color": color},
                     "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"})
        lo, hi = (i - 1) * width + 0.03, i * width - 0.03
        layout[f"xaxis{suffix}"] = {"domain": [lo, hi], "anchor": f"y{suffix}", "automargin": True}
        layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "automargin": True}
        layout["annotations"].append({"text": name, "x": (lo + hi) / 2, "y": 1.0, "xref": "paper", "yref": "paper",
                                      "xanchor": "center", "yanchor": "bottom", "showarrow": False})
    return {"data": data, "layout": layout}


def _has(res: Any, name: str) -> bool:
    return any(t.name == name or t.name.startswith(name + " (") for t in res.terms)


def _term(res: Any, name: str) -> Any:
    """A Term by its library name, also after the view added the SKU to it."""
    return next(t for t in res.terms if t.name == name or t.name.startswith(name + " ("))


def _show(t: Any) -> str:
    v = float(t.value)
    return f"{v * 1e3:,.2f} ms" if t.unit == "s" else f"{v:,.2f} {t.unit}"


FIELDS = [
    FormField("model", "model (catalog name)", "text", model_names),
    FormField("gpu", "GPU", "select", gpu_names),
    FormField("prompt", "prompt tokens"), FormField("output", "output tokens"),
    FormField("batch", "batch (requests)"), FormField("tp", "TP"),
    FormField("quant", "weights", "select", ["bf16", "fp16", "fp8", "int8", "int4", "fp4"]),
    FormField("kv_dtype", "KV cache", "select", ["bf16", "fp16", "fp8", "int8"]),
    FormField("price", "$/GPU-hour", "text", help="2.5 for the GPU, or gpu=2.5, comma-separated"),
    FormField("engine", "engine", "select", optional_engine_names,
              help="efficiencies fitted on that engine's published benchmarks, where they exist for the GPU"),
    FormField("catalog_prices", "fill prices from the catalog", "checkbox",
              help="the catalog's reference offer per GPU (the same price tco uses), with its date"),
]
ALIASES = register_aliases({"price": ["--price", "price per gpu-hour"], "tp": ["raise --tp"]})


@router.get("/infer", include_in_schema=False)
def infer_page(request: Request):
    return render_page(request, path="/infer", title="Inference performance",
                       intro="Prefill (compute-bound) time to first token, decode (bandwidth-bound) time per output "
                             "token, tokens/s per GPU and cost per 1M tokens, with calibrated efficiencies.",
                       spec_cls=InferPerfSpec, fields=FIELDS, compute=infer_view if available() else None,
                       aliases=ALIASES, cli="aiinfra infer MODEL --gpu … --prompt … --output … --batch … --explain",
                       initial={"model": "llama-3.1-8b"})


@router.post("/api/infer", tags=["infer"], summary="aiinfra infer --format json --explain")
def api_infer(spec: InferPerfSpec) -> Any:
    require(LIBRARY)
    return cli_json(infer_result(spec))


@router.post("/api/infer/recommend", tags=["infer"], summary="aiinfra infer --recommend --format json")
def api_infer_recommend(spec: InferPerfSpec) -> Any:
    require("aiinfra.plan.recommend")
    d = cli_json(recommend_result(spec))
    d.pop("explain", None)
    return d

"""Serve plan: the cheapest deployment that serves a request rate within TTFT/TPOT targets, and its manifests.

The same calls as `aiinfra serve-plan` (cli/serve_plan.py): serving.workload's parsers, serving.commands.serve_plan
and, for the winner, serving.commands.winner_manifests. On the web the workload is a rate with prompt and output
lengths (a trace is a file the server would have to read: CLI only).
"""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from pydantic import Field, field_validator

from aiinfra.errors import SpecError
from aiinfra.web.common import (
    Explainer,
    FormField,
    Outcome,
    Table,
    WebSpec,
    catalog_model,
    cli_json,
    comma_list,
    engine_names,
    has_module,
    model_names,
    register_aliases,
    require,
)
from aiinfra.web.templating import render_page

router = APIRouter()
LIBRARY = "aiinfra.serving.commands"


class ServePlanSpec(WebSpec):
    """`aiinfra serve-plan` options (model = catalog name). `gpu` and `quant` are comma-separated lists, like the
    repeated options: gpu=USD per GPU-hour items, e.g. "h100-sxm=2.5,l40s=1.0"."""

    model: str
    gpu: list[str] = Field(min_length=1, max_length=32)
    rate: float
    prompt: str = "2048"
    output: str = "256"
    ttft_ms: float = 1000.0
    tpot_ms: float = 50.0
    percentile: str = "p99"
    quant: list[str] | None = Field(None, max_length=8)
    engine: str = "vllm"
    max_replicas: int = 64
    disaggregated: bool = True
    gpu_request: str = "device-plugin"

    _split = field_validator("gpu", "quant", mode="before")(comma_list)


def available() -> bool:
    return has_module(LIBRARY)


def plan_result(s: ServePlanSpec, with_manifests: bool = False) -> tuple[Any, list[dict] | None]:
    """serve_plan with the page's options; with_manifests: the winner's Kubernetes manifests too (None without one)."""
    from aiinfra.serving.commands import check_gpu_request, serve_plan, winner_manifests
    from aiinfra.serving.workload import Workload, parse_gpu_prices, parse_lengths, parse_targets

    check_gpu_request(s.gpu_request)
    m = catalog_model(s.model)
    gpus, sources = parse_gpu_prices(s.gpu)
    w = Workload(s.rate, parse_lengths(s.prompt, "prompt"), parse_lengths(s.output, "output"))
    targets = parse_targets(s.ttft_ms, s.tpot_ms, s.percentile)
    res = serve_plan(m, w, targets, gpus, quants=s.quant, engine=s.engine, max_replicas=s.max_replicas,
                     disaggregated=s.disaggregated, price_sources=sources)
    docs = None
    if with_manifests and res.facts["winner"]:
        docs = winner_manifests(res, m, engine=s.engine, gpu_request=s.gpu_request)
    return res, docs


def _cell(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def serve_plan_view(s: ServePlanSpec, ex: Explainer) -> Outcome:
    res, docs = plan_result(s, with_manifests=True)
    ex.add_result(res)
    f = res.facts
    out = Outcome(warnings=list(res.warnings))
    win = f["winner"]
    if win:
        head = Markup("Winner: <b>{} × {}</b> {} {} ({}), max batch {}").format(
            win["gpus"], win["gpu"], win["quant"], win["layout"], win["mode"], win["max_batch"])
        for t in res.terms[:4]:
            head += Markup("; ") + ex.link(t) + Markup(" {}").format(t.name)
        out.headline.append(head)
        if f.get("why"):
            out.headline.append(Markup("{}").format(f["why"]))
    out.headline.append(Markup("{:,} deployments evaluated, {:,} meet both targets").format(
        f["candidates"], f["meeting_targets"]))
    t = Table("Cheapest deployments meeting the targets, then the cheaper ones that miss, then the closest",
              ["gpu", "quant", "layout", "mode", "batch", "GPUs", "TTFT ms", "TPOT ms", "$/1M tok", ""], id="deployments")
    rows = [(r, "winner" if i == 0 else "meets") for i, r in enumerate(f["ranking"])]
    rows += [(r, f"cheaper; misses {r['misses']}") for r in f["cheaper_misses"]]
    rows += [(r, f"closest; misses {r['misses']}") for r in f["closest"]]
    for r, note in rows:
        how = {"gpu": r["gpu"], "quant": r["quant"], "layout": r["layout"], "mode": r["mode"], "max batch": r["max_batch"]}
        src = {"search": "aiinfra.serving.search.evaluate: every replicas × TP × batch × quantization × GPU"}
        t.rows.append([r["gpu"], r["quant"], r["layout"], r["mode"], str(r["max_batch"]), str(r["gpus"]),
                       _cell(r["ttft_ms"], ",.1f"), _cell(r["tpot_ms"], ",.2f"),
                       ex.fact(f"$ per 1M tokens ({r['gpus']} × {r['gpu']} {r['quant']} {r['layout']})",
                               r["usd_per_1m_tokens"], "USD", "cluster $/hour / (tokens/s · 3600) · 1e6", how, src,
                               f"{r['usd_per_1m_tokens']:.4f}"),
                       note])
    out.tables.append(t)
    if docs:
        text = yaml.safe_dump_all(docs, sort_keys=False)
        out.extra.append(Markup(
            '<h2>Kubernetes manifests</h2><pre class="yaml" id="serve-yaml">{}</pre>').format(text))
    return out


FIELDS = [
    FormField("model", "model (catalog name)", "text", model_names),
    FormField("gpu", "GPUs and $/GPU-hour", "text", help="h100-sxm=2.5,l40s=1.0"),
    FormField("rate", "requests per second"),
    FormField("prompt", "prompt tokens", "text", help="2048, or mean:cv for a lognormal (2048:0.5)"),
    FormField("output", "output tokens", "text", help="256, or mean:cv (256:0.5)"),
    FormField("ttft_ms", "TTFT target ms"), FormField("tpot_ms", "TPOT target ms"),
    FormField("percentile", "targets hold at", "select", ["p50", "p90", "p99"]),
    FormField("quant", "quantizations", "text", help="comma-separated; blank: bf16,fp8"),
    FormField("engine", "engine", "select", engine_names),
    FormField("max_replicas", "most replicas per layout"),
    FormField("disaggregated", "also try prefill/decode disaggregation", "checkbox"),
    FormField("gpu_request", "pods ask for GPUs by", "select", ["device-plugin", "dra"]),
]
ALIASES = register_aliases({"rate": ["request rate", "--rate"], "prompt": ["--prompt"], "output": ["--output"],
                            "ttft_ms": ["ttft"], "tpot_ms": ["tpot"], "percentile": ["--percentile"],
                            "max_replicas": ["--max-replicas"], "gpu_request": ["--gpu-request"],
                            "gpu": ["--gpu", "candidate gpu"]})


@router.get("/serve-plan", include_in_schema=False)
def serve_plan_page(request: Request):
    return render_page(request, path="/serve-plan", title="Serving plan",
                       intro="The cheapest deployment (replicas × TP × batch × quantization × GPU, aggregated or "
                             "prefill/decode disaggregated) that serves a request rate within TTFT and TPOT targets, "
                             "checked by simulation, with its Kubernetes manifests.",
                       spec_cls=ServePlanSpec, fields=FIELDS, compute=serve_plan_view if available() else None,
                       aliases=ALIASES, cli="aiinfra serve-plan MODEL --gpu h100-sxm=2.5 --rate … --explain",
                       initial={"model": "llama-3.1-8b", "gpu": "h100-sxm=2.5,l40s=1.0", "rate": 10,
                                "ttft_ms": 800, "tpot_ms": 40})


@router.post("/api/serve-plan", tags=["serve-plan"], summary="aiinfra serve-plan --format json --explain")
def api_serve_plan(spec: ServePlanSpec) -> Any:
    require(LIBRARY)
    return cli_json(plan_result(spec)[0])


@router.post("/api/serve-plan/manifests", tags=["serve-plan"], summary="aiinfra serve-plan --manifests FILE")
def api_serve_plan_manifests(spec: ServePlanSpec) -> Response:
    require(LIBRARY)
    _, docs = plan_result(spec, with_manifests=True)
    if not docs:
        raise SpecError("no manifests: no deployment meets the targets")
    return Response(yaml.safe_dump_all(docs, sort_keys=False), media_type="application/yaml",
                    headers={"Content-Disposition": 'attachment; filename="serve-plan.yaml"'})

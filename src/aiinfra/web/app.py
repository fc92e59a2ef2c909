"""The FastAPI app: server-rendered pages, a JSON API that mirrors the CLI, and local static files.

Bad input anywhere becomes HTTP 422 carrying the one sentence the CLI would print (`error`),
plus the field it concerns when one can be named (`field`). Nothing in a request can name a
server-side file or run a command: models and GPUs are catalog names, and the fleet page's
Prometheus URL is only ever queried with PromQL through the prom.py client.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.middleware.trustedhost import TrustedHostMiddleware

import aiinfra
from aiinfra.errors import AiinfraError
from aiinfra.render import one_line
from aiinfra.web.charts import plotly_js, template_js
from aiinfra.web.common import (
    ALIASES,
    MISSING,
    MissingCapability,
    field_of,
    validation_message,
)
from aiinfra.web.guard import BUDGET_S, MAX_BODY, Guard
from aiinfra.web.pages import PAGE_MODULES, capability_status
from aiinfra.web.templating import PAGES, templates

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("aiinfra.web")


def create_app(allowed_hosts: list[str] | None = None, *, password: str | None = None, max_body: int = MAX_BODY,
               budget_s: float = BUDGET_S, slots: int = 4) -> FastAPI:
    """The app. `allowed_hosts`: Host headers to answer (others get 400), so a page on another site
    cannot reach the server through DNS rebinding; None answers any Host. `password`: HTTP Basic auth
    on everything but /healthz. `max_body`, `budget_s`, `slots`: see web/guard.py."""
    app = FastAPI(
        title="aiinfra",
        version=getattr(aiinfra, "__version__", "0.1.0"),
        description="The JSON API mirrors the CLI: each endpoint takes the command's options and returns what "
        "`--format json --explain` prints. Bad input → 422 with the CLI's one-line message in `error`.",
        # Swagger UI would load its JS from a CDN; /docs is served from here so it works offline.
        docs_url=None,
        redoc_url=None,
    )

    if allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.add_middleware(Guard, max_body=max_body, budget_s=budget_s, slots=slots, password=password)

    @app.exception_handler(AiinfraError)
    async def _aiinfra_error(request: Request, exc: AiinfraError) -> JSONResponse:
        try:  # name the field when the sentence mentions one of the request's keys
            body = await request.json()
            keys = list(body) if isinstance(body, dict) else []
        except Exception:  # noqa: BLE001 - no JSON body: no field to name
            keys = []
        msg = one_line(str(exc))
        return JSONResponse({"error": msg, "field": field_of(msg, keys, ALIASES)}, status_code=422)

    @app.exception_handler(ValidationError)
    async def _spec_error(request: Request, exc: ValidationError) -> JSONResponse:
        # A library spec (DesignInput, Workload, …) refused a value: the CLI's "invalid <field>: <msg>".
        msg, fld = validation_message(exc)
        return JSONResponse({"error": msg, "field": fld}, status_code=422)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        # Not bad input but a bug: a generic line and a reference for the user; the detail (which can
        # name files, values or internals) only in the server's log under that reference.
        ref = uuid.uuid4().hex[:12]
        log.error("request %s failed (reference %s)", request.url.path, ref, exc_info=exc)
        return JSONResponse({"error": f"internal error (a bug in aiinfra); reference {ref} in the server log"},
                            status_code=500)

    @app.exception_handler(MissingCapability)
    async def _missing(request: Request, exc: MissingCapability) -> JSONResponse:
        return JSONResponse({"error": f"{MISSING} (needs {exc})"}, status_code=501)

    @app.exception_handler(RequestValidationError)
    async def _request_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Only the first error is shown: rebuilding thousands (one per unknown key) cost 0.3 s a request.
        msg, fld = validation_message(ValidationError.from_exception_data("request", exc.errors()[:1]))
        return JSONResponse({"error": msg, "field": fld}, status_code=422)

    # plotly.js comes from the installed plotly package: the pages work with no internet access.
    @app.get("/static/plotly.min.js", include_in_schema=False)
    def _plotly() -> Response:
        return Response(plotly_js(), media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/static/plotly-template.js", include_in_schema=False)
    def _plotly_template() -> Response:
        return Response(template_js(), media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    def index(request: Request):
        cards = [(href, label, BLURBS.get(label, ""), status) for (href, label), status
                 in zip(PAGES, capability_status(), strict=True)]
        return templates.TemplateResponse(request, "index.html", {"title": "aiinfra", "path": "/", "pages": PAGES,
                                                                  "cards": cards})

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request):
        return templates.TemplateResponse(request, "docs.html", {"title": "API", "path": "/docs", "pages": PAGES,
                                                                 "endpoints": api_endpoints(app.openapi())})

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        # async: answered on the event loop, never queued behind computations in the thread pool
        return {"ok": True}

    for module in PAGE_MODULES:
        app.include_router(module.router)
    return app


def api_endpoints(schema: dict) -> list[dict]:
    """Each operation of the OpenAPI schema with its request fields (name, type, default)."""
    comps = schema.get("components", {}).get("schemas", {})
    out = []
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            fields = []
            ref = (op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref"))
            if ref:
                for name, prop in comps.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}).items():
                    kinds = [x.get("type", "") for x in prop.get("anyOf", [prop])]
                    fields.append((name, " | ".join(k for k in kinds if k), prop.get("default")))
            for prm in op.get("parameters", []):
                fields.append((prm["name"], prm.get("schema", {}).get("type", ""), prm.get("schema", {}).get("default")))
            out.append({"method": method.upper(), "path": path, "summary": op.get("summary", ""), "fields": fields})
    return out


BLURBS = {
    "Size": "training and inference memory per GPU, and which GPUs fit a model.",
    "Plan": "the best parallel layouts for a training job, ranked by step time.",
    "Infer": "time to first token, time per output token and $/1M tokens per GPU SKU.",
    "Design": "cluster bill of materials and fabric tiers for a GPU count.",
    "TCO": "cumulative cost of owning versus renting, with the breakeven.",
    "MIG": "MIG geometries per GPU for a set of workloads, and the Kubernetes YAML.",
    "Fleet": "utilization heatmap, stranded GPUs and XID health from Prometheus or a simulated fleet.",
}

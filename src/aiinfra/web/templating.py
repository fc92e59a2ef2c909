"""Jinja2 templates and the one function every page handler calls to render itself."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from aiinfra.errors import AiinfraError
from aiinfra.web.common import (
    MISSING,
    Explainer,
    FormField,
    Outcome,
    clean_query,
    field_of,
    form_values,
    render_views,
    validation_message,
)

log = logging.getLogger("aiinfra.web")
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

PAGES = [  # (path, nav label)
    ("/size", "Size"),
    ("/plan", "Plan"),
    ("/infer", "Infer"),
    ("/serve-plan", "Serve"),
    ("/design", "Design"),
    ("/tco", "TCO"),
    ("/mig", "MIG"),
    ("/fleet", "Fleet"),
]


def render_page(
    request: Request,
    *,
    path: str,
    title: str,
    intro: str,
    spec_cls: type,
    fields: list[FormField],
    compute: Callable[[Any, Explainer], Outcome] | None,
    aliases: dict[str, list[str]] | None = None,
    template: str = "page.html",
    cli: str = "",
    initial: dict[str, Any] | None = None,
    **ctx: Any,
):
    """Parse the query into the spec, run the library, and render form + result + explain panel.

    `initial` fills the form on a first visit with a worked example; the spec's own defaults are
    the CLI's, so an API call and a command with the same options give the same answer.
    Bad input (an AiinfraError or a pydantic error) → status 422, the sentence the CLI prints
    shown under the field it names, and every other input kept as the user typed it.
    """
    raw = clean_query(request.query_params.multi_items())
    error = error_field = None
    failed = False
    outcome: Outcome | None = None
    ex = Explainer()
    # A first visit shows the page's worked example already computed; a submitted form, its own inputs.
    data = raw or ({k: str(v) for k, v in initial.items()} if initial is not None else {})
    if compute is not None and (raw or initial is not None):
        try:
            spec = spec_cls.model_validate(data)
            outcome = compute(spec, ex)
        except AiinfraError as e:
            from aiinfra.render import one_line

            error = one_line(str(e))
            error_field = field_of(error, [f.name for f in fields], aliases)
        except ValidationError as e:
            error, error_field = validation_message(e)
        except Exception:  # noqa: BLE001 - a bug, not bad input: detail in the log, a reference on the page
            import uuid

            ref = uuid.uuid4().hex[:12]
            log.exception("page %s failed (reference %s)", path, ref)
            error, failed = f"internal error (a bug in aiinfra); reference {ref} in the server log", True
    context = {
        "title": title,
        "intro": intro,
        "path": path,
        "pages": PAGES,
        "fields": fields,
        "values": form_values(spec_cls, raw, initial),
        "error": error,
        "error_field": error_field,
        "outcome": outcome,
        "explain": render_views(ex.views()),
        "missing": MISSING if compute is None else None,
        "cli": cli,
        **ctx,
    }
    return templates.TemplateResponse(request, template, context, status_code=500 if failed else 422 if error else 200)

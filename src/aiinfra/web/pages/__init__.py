"""One module per page. Pages over capabilities that live on other branches import them lazily,
so a missing library module shows a plain "not in the library yet" message instead of numbers."""

from __future__ import annotations

from aiinfra.web.common import has_module
from aiinfra.web.pages import design, fleet, infer, mig, plan, serve_plan, size, tco

PAGE_MODULES = [size, plan, infer, serve_plan, design, tco, mig, fleet]

# The library module each page needs, in the order of templating.PAGES.
NEEDS = {
    "/size": "aiinfra.sizing.training",
    "/plan": "aiinfra.plan.search",
    "/infer": "aiinfra.perf.inference",
    "/serve-plan": "aiinfra.serving.commands",
    "/design": "aiinfra.cluster.design",
    "/tco": "aiinfra.cost.tco",
    "/mig": "aiinfra.sharing.packing",
    "/fleet": "aiinfra.telemetry.simulate",
}


def capability_status() -> list[bool]:
    from aiinfra.web.templating import PAGES

    return [has_module(NEEDS[path]) for path, _ in PAGES]

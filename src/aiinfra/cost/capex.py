"""Capital cost of owning: a bill of materials priced from the catalog, annualised with the CRF.

The bill of materials comes either from the cluster designer (`cluster.bom` line items: category,
item key, quantity, unit power, reason) or from per-node estimates made here when no design is
given. Either way each line is priced by its item key in `prices.yaml`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiinfra.catalog.loader import read_yaml
from aiinfra.cost import prices
from aiinfra.errors import AiinfraError, not_found
from aiinfra.explain import Term

# Item types whose entries carry a one-off `price`.
CAPEX_TYPES = ("node", "switch", "optics", "storage", "facility")
# No GPU cluster is financed over longer than a building; beyond this the annuity overflows floats.
MAX_YEARS = 50


def crf(rate: float, years: float) -> Term:
    """Capital recovery factor r(1+r)^L / ((1+r)^L − 1): the annual payment per $ of capital.

    Standard annuity formula (e.g. any engineering-economics text; r = 8 %, L = 5 → 0.2505).
    With r = 0 it is straight-line, 1/L.
    """
    if not 0 < years <= MAX_YEARS:
        raise AiinfraError(f"life must be more than 0 and at most {MAX_YEARS} years, got {years:g}")
    if rate < 0:
        raise AiinfraError(f"cost of capital must be >= 0, got {rate}")
    if rate == 0:
        return Term("CRF", 1.0 / years, "1/year", "1 / L", {"L": years})
    # expm1/log1p keep (1+r)^L − 1 exact for tiny r, where the naive form cancels to zero.
    growth_minus_1 = math.expm1(years * math.log1p(rate))
    value = rate * (growth_minus_1 + 1) / growth_minus_1
    return Term("CRF", value, "1/year", "r(1+r)^L / ((1+r)^L − 1)", {"r": rate, "L": years})


def annualised(capex: Term, rate: float, years: float, residual: float = 0.0) -> Term:
    """Equal annual cost of `capex` over `years` at `rate`, net of a resale value at the end.

    (C − S·(1+r)^−L) × CRF, with S = residual × C: the residual is discounted back to today.
    """
    if not 0 <= residual < 1:
        raise AiinfraError(f"residual value must be a fraction in [0, 1), got {residual}")
    f = crf(rate, years)
    net = capex.value - residual * capex.value * (1 + rate) ** (-years)
    return Term("annualised capex", net * f.value, "$/year", "(capex − residual·capex·(1+r)^−L) × CRF",
                {"capex": capex, "residual": residual, "r": rate, "L": years, "CRF": f})


@dataclass(frozen=True)
class LineItem:
    """One BOM line. `unit_price` overrides the catalog price when given."""

    category: str
    item: str
    quantity: float
    unit_power_w: float = 0.0
    reason: str = ""
    unit_price: float | None = None


def as_line_item(obj: Any) -> LineItem:
    """Accept the cluster designer's line items (objects or dicts) as well as our own."""
    if isinstance(obj, LineItem):
        return obj
    get = obj.get if isinstance(obj, dict) else lambda k, d=None: getattr(obj, k, d)
    item = get("item") or get("key") or get("item_key")
    power = get("unit_power_w")
    if power is None:
        power = get("unit_power", 0.0) or 0.0
    if item is None or get("quantity") is None:
        raise AiinfraError(f"BOM line {obj!r} needs an item key and a quantity")
    return LineItem(str(get("category", "") or ""), str(item), float(get("quantity")), float(power),
                    str(get("reason", "") or ""), get("unit_price"))


def price_of(item: str) -> tuple[str, dict]:
    """The catalog entry that prices a BOM item key (node, switch, optics, storage, facility)."""
    for t in CAPEX_TYPES:
        try:
            return prices.lookup(t, item)
        except AiinfraError:
            continue
    pool = [k for t in CAPEX_TYPES for k in prices.of_type(t)]
    raise not_found("priced item", item, pool)


def bom_capex(items: Iterable[Any]) -> tuple[Term, Term]:
    """(CapEx $, IT power W) of a BOM: Σ quantity × unit price, and Σ quantity × unit power."""
    lines = [as_line_item(i) for i in items]
    if not lines:
        raise AiinfraError("the bill of materials is empty")
    by_cat: dict[str, list[Term]] = {}
    power_parts: list[Term] = []
    for li in lines:
        if li.quantity < 0:
            raise AiinfraError(f"BOM line '{li.item}' has a negative quantity ({li.quantity})")
        if li.unit_price is not None:
            if li.unit_price < 0:
                raise AiinfraError(f"BOM line '{li.item}' has a negative price ({li.unit_price})")
            unit, src = float(li.unit_price), {li.item: "given with the design"}
        else:
            key, entry = price_of(li.item)
            unit, src = float(entry["price"]), {key: prices.describe(key, entry)}
        by_cat.setdefault(li.category or "other", []).append(
            Term(li.item, li.quantity * unit, "$", "quantity × unit_price",
                 {"quantity": li.quantity, "unit_price": unit}, src, note=li.reason))
        if li.unit_power_w:
            power_parts.append(Term(li.item, li.quantity * li.unit_power_w, "W", "quantity × unit_power",
                                    {"quantity": li.quantity, "unit_power_W": li.unit_power_w}))
    cats = [Term(c, sum(p.value for p in ps), "$", " + ".join(p.name for p in ps), parts=ps)
            for c, ps in by_cat.items()]
    capex = Term("capex", sum(c.value for c in cats), "$", " + ".join(c.name for c in cats), parts=cats)
    power = Term("IT power", sum(p.value for p in power_parts), "W",
                 " + ".join(p.name for p in power_parts) or "none given", parts=power_parts)
    return capex, power


def per_node_items(node_key: str, nodes: int, storage_tb: float = 0.0, switch: str = "qm9700",
                   cables: str = "ib-cables-per-node", storage: str = "flash-storage") -> list[LineItem]:
    """BOM estimate without a cluster design: nodes, a 2-tier fat tree, cables per node, storage.

    Fabric rule (Al-Fares 2008, as used for SuperPOD rail-optimised fabrics): one 400G link per
    GPU, leaves = ⌈links / (k/2)⌉ and spines = ⌈leaves / 2⌉ for a non-blocking 2-tier tree of
    radix k; a single leaf needs no spine.
    """
    if nodes <= 0:
        raise AiinfraError(f"node count must be > 0, got {nodes}")
    nkey, node = prices.lookup("node", node_key, "node")
    skey, sw = prices.lookup("switch", switch, "switch")
    links = nodes * int(node["gpus"])
    k = int(sw["ports"])
    leaves = math.ceil(links / (k / 2)) if links > k else 1
    spines = math.ceil(leaves / 2) if leaves > 1 else 0
    items = [
        LineItem("compute", nkey, nodes, float(node["power_kw"]) * 1000, f"{nodes} nodes × {node['gpus']} GPUs"),
        LineItem("fabric", skey, leaves + spines, 0.0,
                 f"{links} GPU links: {leaves} leaf + {spines} spine switches (radix {k}, non-blocking 2-tier); "
                 "switch power not counted"),
        LineItem("fabric", cables, nodes, 0.0, "InfiniBand cables and optics per node"),
    ]
    if storage_tb > 0:
        items.append(LineItem("storage", storage, storage_tb, 0.0, f"{storage_tb:g} TB usable"))
    return items


def read_bom(path: str | Path) -> list[LineItem]:
    """A bill of materials from YAML or JSON: a list of {category, item, quantity, unit_power_w,
    reason[, unit_price]} (or {items: [...]}), e.g. what the cluster designer writes."""
    return parse_bom(read_yaml(Path(path)), f"BOM file {path}")  # YAML is a superset of JSON


def parse_bom(doc: Any, where: str = "BOM") -> list[LineItem]:
    """Line items from a loaded BOM document (a list, or {items: [...]}); `where` names it in errors."""
    if isinstance(doc, dict):
        doc = doc.get("items", doc.get("lines", doc.get("bom")))
    if not isinstance(doc, list) or not doc:
        raise AiinfraError(f"{where} must hold a non-empty list of line items (or 'items: [...]')")
    out = []
    for n, line in enumerate(doc, start=1):
        if not isinstance(line, dict):
            raise AiinfraError(f"{where}: line item {n} must be a mapping, got {type(line).__name__}")
        try:
            out.append(as_line_item(line))
        except (TypeError, ValueError):
            raise AiinfraError(f"{where}: line item {n} has a non-numeric quantity, power or price") from None
    return out

"""The dated price table (`catalog/data/prices.yaml`, kind `prices`): typed lookups, validation, age,
and THE price of a GPU-hour per SKU and term that plan, infer and tco all use.

Prices are observations, not constants, so every lookup also says how old the figure is. A figure
observed more than `STALE_AFTER` before today yields a warning that names its date.

One price per GPU and term (`gpu_hour_price`): the user's `--price` when given; otherwise the
reference cloud offer, which is the cheapest offer for that GPU with a scale-out fabric (InfiniBand
or EFA, like an owned training cluster), or the cheapest offer of any kind when none has one. Each
price carries its source (the flag, or the catalog entry and its observed date) as an assumption.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from aiinfra.catalog.loader import default_catalog, normalize_name
from aiinfra.errors import AiinfraError, not_found

KIND = "prices"
STALE_AFTER = timedelta(days=183)  # "more than 6 months"

# Fields that hold money or rates; a negative value in any of them is bad input.
MONEY_FIELDS = (
    "on_demand", "reserved_1y", "reserved_3y", "spot", "reserved_1y_monthly", "reserved_3y_monthly",
    "price", "usd_per_kw_month", "usd_per_kwh", "usd_per_fte_year", "usd_per_gb", "fraction_per_year",
    "reserved_1y_discount", "reserved_3y_discount", "fraction", "rate", "power_kw", "pue",
    "servers_per_fte", "years", "gpus",
)


def today() -> date:
    """Today's date (a function so tests can pin it)."""
    return date.today()


def table() -> dict[str, dict]:
    """All price entries, validated (once per catalog: the catalog object is cached and not changed)."""
    cat = default_catalog()
    entries = cat.table(KIND)
    if getattr(cat, "_prices_validated", None) is not entries:
        for key, entry in entries.items():
            validate_entry(key, entry)
        cat._prices_validated = entries  # type: ignore[attr-defined]
    return entries


def validate_entry(key: str, entry: dict) -> None:
    """Reject negative or non-numeric money fields and missing dates/sources, naming the entry."""
    for f in MONEY_FIELDS:
        if f not in entry or entry[f] is None:
            continue
        v = entry[f]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise AiinfraError(f"price entry '{key}' field '{f}' must be a number, got {v!r}")
        if v < 0:
            raise AiinfraError(f"price entry '{key}' field '{f}' is negative ({v}); prices and rates must be >= 0")
    for f in ("reserved_1y_discount", "reserved_3y_discount", "fraction", "fraction_per_year"):
        if f in entry and entry[f] is not None and entry[f] >= 1:
            raise AiinfraError(f"price entry '{key}' field '{f}' is {entry[f]}; a fraction must be below 1")
    if "observed" not in entry:
        raise AiinfraError(f"price entry '{key}' has no 'observed:' date; every price must be dated")
    if not entry.get("source"):
        raise AiinfraError(f"price entry '{key}' has no 'source:'")
    observed_of(key, entry)


def observed_of(key: str, entry: dict) -> date:
    v = entry.get("observed")
    if isinstance(v, date):
        return v
    try:
        return date.fromisoformat(str(v))
    except ValueError:
        raise AiinfraError(f"price entry '{key}' has observed: {v!r}; write a date like 2026-11-22") from None


def of_type(kind: str) -> dict[str, dict]:
    return {k: e for k, e in table().items() if e.get("type") == kind}


def lookup(kind: str, name: str, label: str | None = None) -> tuple[str, dict]:
    """Entry of one type by key or alias; a miss names the closest entries of that type."""
    entries = of_type(kind)
    n = normalize_name(name)
    if n in entries:
        return n, entries[n]
    for key, entry in entries.items():
        if n in (normalize_name(a) for a in entry.get("aliases", [])):
            return key, entry
    pool = list(entries) + [normalize_name(a) for e in entries.values() for a in e.get("aliases", [])]
    raise not_found(label or kind, name, pool)


def age_warning(key: str, entry: dict, on: date | None = None, max_age: timedelta = STALE_AFTER) -> str | None:
    """'price X observed 2023-05-31 (…) is older than 6 months' or None when fresh enough."""
    observed = observed_of(key, entry)
    now = on or today()
    if now - observed > max_age:
        months = (now - observed).days / 30.44
        return f"price '{key}' was observed {observed.isoformat()} ({months:.0f} months ago); refresh it with --catalog"
    return None


def describe(key: str, entry: dict) -> str:
    """Source with its date, for Term.sources."""
    observed = observed_of(key, entry).isoformat()
    dated = f"undated, read {observed}" if entry.get("undated") else f"observed {observed}"
    return f"prices.yaml:{key} ({dated}): {entry.get('source', '')}"


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dwmy])\s*$", re.IGNORECASE)


def parse_age(text: str) -> timedelta:
    """'6m' → 183 days; accepts d(ays), w(eeks), m(onths, 30.44 d), y(ears, 365.25 d)."""
    m = _AGE.match(text or "")
    if not m:
        raise AiinfraError(f"age '{text}' is not understood; write a number and d, w, m or y, e.g. 6m")
    n, unit = float(m.group(1)), m.group(2).lower()
    days = {"d": 1.0, "w": 7.0, "m": 30.44, "y": 365.25}[unit] * n
    return timedelta(days=round(days))


def rows(max_age: timedelta | None = None, on: date | None = None) -> list[dict[str, Any]]:
    """One row per price entry with its age; with `max_age`, only those older than it."""
    now = on or today()
    out = []
    for key, entry in sorted(table().items()):
        observed = observed_of(key, entry)
        age = now - observed
        if max_age is not None and age <= max_age:
            continue
        out.append(
            {
                "key": key,
                "type": entry.get("type", ""),
                "observed": observed.isoformat(),
                "age_days": age.days,
                "undated": bool(entry.get("undated")),
                "summary": summary(entry),
                "source": entry.get("source", ""),
            }
        )
    return out


def summary(entry: dict) -> str:
    """The figure(s) an entry holds, in a few words."""
    t = entry.get("type")
    if t == "cloud":
        unit = "/GPU-h" if entry.get("unit") == "gpu-hour" else "/h"
        parts = [f"${entry['on_demand']:g}{unit} on-demand"] if "on_demand" in entry else []
        if parts and unit == "/h" and entry.get("gpus"):
            parts[0] += f" (${entry['on_demand'] / entry['gpus']:.3g}/GPU-h)"
        if "spot" in entry:
            parts.append(f"${entry['spot']:g}{unit} spot")
        for term in ("1y", "3y"):
            if f"reserved_{term}_monthly" in entry:
                parts.append(f"${entry[f'reserved_{term}_monthly']:,g}/month {term}")
            elif f"reserved_{term}_discount" in entry:
                parts.append(f"-{entry[f'reserved_{term}_discount']:.0%} {term}")
        return f"{entry.get('instance', '')}: " + ", ".join(parts)
    if t == "discount":
        return f"1y -{entry['reserved_1y_discount']:.0%}, 3y -{entry['reserved_3y_discount']:.0%}"
    if t in ("node", "switch", "optics", "storage", "facility"):
        per = f" per {entry['per']}" if "per" in entry else ""
        extra = f", {entry['power_kw']:g} kW" if "power_kw" in entry else ""
        return f"${entry['price']:,g}{per}{extra}"
    for f, fmt in (
        ("fraction_per_year", "{:.0%} per year"), ("usd_per_kw_month", "${:g}/kW-month"),
        ("usd_per_kwh", "${:g}/kWh"), ("pue", "PUE {:g}"), ("years", "{:g} years"),
        ("fraction", "{:.0%}"), ("rate", "{:.0%} per year"), ("usd_per_gb", "${:g}/GB"),
    ):
        if f in entry:
            return fmt.format(entry[f])
    if t == "staff":
        return f"1 FTE per {entry['servers_per_fte']:g} servers at ${entry['usd_per_fte_year']:,g}/year"
    return ""


# --- the price of a GPU-hour ----------------------------------------------------------------------

TERMS = ("on-demand", "1y", "3y", "spot")
SCALE_OUT_FABRICS = ("ib", "efa")  # fabrics that carry multi-node training like an owned IB cluster
TERM_FIELD = {"on-demand": "on_demand", "1y": "reserved_1y", "3y": "reserved_3y", "spot": "spot"}


@dataclass(frozen=True)
class GpuHourPrice:
    """$ per GPU-hour for one GPU at one term, and where the figure came from."""

    gpu: str
    term: str
    usd_per_gpu_hour: float
    source: str  # "given with --price" or "prices.yaml:<offer> <term>, observed <date>"
    offer: str | None = None  # the catalog offer, when the price is the catalog's
    observed: date | None = None

    @property
    def from_user(self) -> bool:
        return self.offer is None

    def assumption(self) -> str:
        return f"{self.gpu}: ${self.usd_per_gpu_hour:,.4g}/GPU-h ({self.term}), {self.source}"


def offer_gpu_hour(key: str, entry: dict, term: str = "on-demand") -> float | None:
    """An offer's own $/GPU-hour at `term` (its listed figure, per GPU or per instance / GPUs), or None
    when the entry lists no figure for that term (commitment discounts are cost.cloud's business)."""
    f = TERM_FIELD.get(term)
    if f is None or entry.get(f) is None:
        return None
    try:
        value = float(entry[f])
        per_gpu = value if entry.get("unit") == "gpu-hour" else value / float(entry.get("gpus") or 0)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return per_gpu if per_gpu > 0 else None


def reference_offer(gpu_key: str, term: str = "on-demand") -> tuple[str, dict, float] | None:
    """(offer key, entry, $/GPU-h): the cheapest offer for the GPU at `term` with a scale-out fabric,
    or the cheapest of any fabric when none has one; None when the catalog prices no such offer."""
    from aiinfra.catalog.loader import default_catalog

    cat = default_catalog()
    found: list[tuple[bool, float, str, dict]] = []
    for key, e in of_type("cloud").items():
        if not e.get("gpu"):
            continue
        try:
            g = cat.resolve("gpus", str(e["gpu"]))
        except AiinfraError:
            continue
        if g != gpu_key:
            continue
        price = offer_gpu_hour(key, e, term)
        if price is not None:
            found.append((e.get("fabric") not in SCALE_OUT_FABRICS, price, key, e))
    if not found:
        return None
    _, price, key, e = min(found, key=lambda x: (x[0], x[1], x[2]))
    return key, e, price


def gpu_hour_price(gpu_key: str, term: str = "on-demand", given: dict[str, float] | None = None,
                   use_catalog: bool = True) -> GpuHourPrice | None:
    """THE $/GPU-hour of a GPU at a term: the user's figure, else (with `use_catalog`) the reference
    catalog offer's, else None."""
    if given and gpu_key in given:
        return GpuHourPrice(gpu_key, term, float(given[gpu_key]), "given with --price")
    if not use_catalog:
        return None
    ref = reference_offer(gpu_key, term)
    if ref is None:
        return None
    key, e, price = ref
    observed = observed_of(key, e)
    return GpuHourPrice(gpu_key, term, price, f"catalog prices.yaml:{key} ({e.get('instance', key)}), "
                        f"observed {observed.isoformat()}", key, observed)


def price_table(gpu_keys: list[str], given: dict[str, float] | None, use_catalog: bool,
                term: str = "on-demand") -> dict[str, GpuHourPrice]:
    """{gpu: price} for every GPU that has one (the user's, or the catalog's with `use_catalog`)."""
    out = {}
    for g in gpu_keys:
        p = gpu_hour_price(g, term, given, use_catalog)
        if p is not None:
            out[g] = p
    return out


def parse_prices(items: list[str] | None, default_gpu: str) -> dict[str, float]:
    """'2.5' (for --gpu) or 'h100-sxm=2.5' (repeatable) → {gpu key: $/GPU-hour}; finite and positive."""
    import math

    from aiinfra.catalog.gpus import gpu as lookup_gpu
    from aiinfra.errors import SpecError

    out: dict[str, float] = {}
    for item in items or []:
        name, _, value = item.rpartition("=") if "=" in item else (default_gpu, "=", item)
        try:
            price = float(value)
        except ValueError:
            raise SpecError(f"--price '{item}' must be USD per GPU-hour, e.g. 2.5 or h100-sxm=2.5") from None
        if not math.isfinite(price) or price <= 0 or price > MAX_USD_PER_GPU_HOUR:
            raise SpecError(f"price per GPU-hour must be above 0 and at most {MAX_USD_PER_GPU_HOUR:g}, got {value}")
        out[lookup_gpu(name).key] = price
    return out


MAX_USD_PER_GPU_HOUR = 10_000.0  # no GPU rents for more; a larger figure is a typo

"""The dated price table (`catalog/data/prices.yaml`, kind `prices`): typed lookups, validation, age.

Prices are observations, not constants, so every lookup also says how old the figure is. A figure
observed more than `STALE_AFTER` before today yields a warning that names its date.
"""

from __future__ import annotations

import re
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
    """All price entries, validated."""
    entries = default_catalog().table(KIND)
    for key, entry in entries.items():
        validate_entry(key, entry)
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

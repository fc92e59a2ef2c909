"""Printing values for people, shared by both shells (the CLI's tables and the web's pages), so a
number reads the same everywhere. Nothing here imports numpy: a numpy scalar is unwrapped by duck
typing (`.item()`)."""

from __future__ import annotations

import math
from typing import Any

from aiinfra.units import fmt_bytes, fmt_number


def scalar(value: Any) -> Any:
    """A 0-d numpy array or numpy scalar as a plain Python number; anything else unchanged."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def fmt_value(value: Any, unit: str, byte_unit: str = "GB") -> str:
    """Print a Term value in its unit; bytes print in GB or GiB as chosen, with the unit named."""
    value = scalar(value)
    if isinstance(value, bool):
        return str(value)
    if unit == "B" and isinstance(value, float | int):
        if abs(value) < 1e7:  # per-token and per-layer sizes read better in bytes and KiB
            return f"{value:,.0f} B ({value / 1024:,.1f} KiB)"
        return fmt_bytes(float(value), byte_unit)
    if isinstance(value, float | int):
        return f"{fmt_number(value)} {unit}".strip()
    return f"{value} {unit}".strip()


def fmt_money(value: Any, unit: str = "$") -> str:
    """Dollar amounts with cents (4 decimals below $1); other units as fmt_value."""
    value = scalar(value)
    if unit.startswith("$") and isinstance(value, float | int) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:,.2f} {unit}" if abs(value) >= 1 else f"{value:.4f} {unit}"
    return fmt_value(value, unit)


def fmt_plain(value: Any) -> str:
    """An input value in an explanation: numbers compactly, anything else as text."""
    value = scalar(value)
    if isinstance(value, bool) or not isinstance(value, float | int):
        return str(value)
    return fmt_number(value)

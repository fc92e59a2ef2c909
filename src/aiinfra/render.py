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


def validation_sentence(err: dict[str, Any]) -> str:
    """One pydantic error as the sentence both shells print: a broken bound names the option and the
    bound ("batch must be positive, got 0", "gpus must be at most 1,000,000, got 2147483648");
    anything else is "invalid <field>: <pydantic's message>"."""
    loc = [str(x) for x in err.get("loc", ()) if x != "body"]
    name = ".".join(loc)
    ctx, got, kind = err.get("ctx") or {}, err.get("input"), err.get("type", "")

    def num(v: Any) -> str:
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
            v = int(v)
        return f"{v:,}" if isinstance(v, int) else f"{v:,g}" if isinstance(v, float) else str(v)

    # The value as given: -1 and -1.0 read the same whether it came from a CLI float or JSON.
    got = f"{got:g}" if isinstance(got, float) else got

    if name and kind == "greater_than_equal":
        ge = ctx.get("ge")
        return f"{name} must be positive, got {got}" if ge == 1 else f"{name} must be at least {num(ge)}, got {got}"
    if name and kind == "greater_than":
        gt = ctx.get("gt")
        return f"{name} must be positive, got {got}" if gt == 0 else f"{name} must be above {num(gt)}, got {got}"
    if name and kind == "less_than_equal":
        return f"{name} must be at most {num(ctx.get('le'))}, got {got}"
    if name and kind == "less_than":
        return f"{name} must be below {num(ctx.get('lt'))}, got {got}"
    msg = err.get("msg", "invalid input")
    if kind == "extra_forbidden":
        msg = "not an option of this command"
    return f"invalid {name}: {msg}" if name else msg


def one_line(message: str) -> str:
    """An error sentence as one printable line: a user's value echoed in it ("unknown model '\\n'")
    cannot break it into several lines or carry control characters to a terminal or a page."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in message)

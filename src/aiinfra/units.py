"""Unit constants and printing. Internal values are SI base units (bytes, s, FLOP, B/s, W).

GB = 1e9 bytes and GiB = 2**30 bytes are kept apart everywhere; print the unit the reference uses.
"""

from __future__ import annotations

KB, MB, GB, TB = 1e3, 1e6, 1e9, 1e12
KiB, MiB, GiB, TiB = 2.0**10, 2.0**20, 2.0**30, 2.0**40
TFLOPS = 1e12

_BYTE_UNITS = {"B": 1.0, "KB": KB, "MB": MB, "GB": GB, "TB": TB, "KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": TiB}


def to_unit(value_bytes: float, unit: str) -> float:
    return value_bytes / _BYTE_UNITS[unit]


def fmt_bytes(value_bytes: float, unit: str = "GB", digits: int = 2) -> str:
    """'140.00 GB' — the unit is always printed, so GB and GiB can never be confused."""
    return f"{to_unit(value_bytes, unit):,.{digits}f} {unit}"


def fmt_number(value: float, digits: int = 3) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        return f"{value:,.{digits}g}" if abs(value) < 1e15 else f"{value:.{digits}e}"
    return f"{value:,.{digits}f}".rstrip("0").rstrip(".")

"""Bytes per element of the number formats sizing uses (definitions, not measurements)."""

from __future__ import annotations

from aiinfra.errors import SpecError

BYTES = {"fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5, "fp4": 0.5}


def nbytes(dtype: str, what: str = "dtype") -> float:
    try:
        return BYTES[dtype]
    except KeyError:
        raise SpecError(f"unknown {what} '{dtype}'; choose one of {', '.join(BYTES)}") from None

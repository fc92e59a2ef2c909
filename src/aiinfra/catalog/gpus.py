"""GPU lookups: catalog/data/gpus.yaml → GpuSpec."""

from __future__ import annotations

from pydantic import ValidationError

from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import AiinfraError
from aiinfra.specs import GpuSpec


def gpu(name: str) -> GpuSpec:
    """Look up a GPU by key, alias or common spelling ("H100 SXM5", "h100")."""
    key, entry = default_catalog().entry("gpus", name)
    return _build(key, entry)


def all_gpus() -> list[GpuSpec]:
    cat = default_catalog()
    return [_build(k, e) for k, e in sorted(cat.table("gpus").items())]


def _build(key: str, entry: dict) -> GpuSpec:
    try:
        return GpuSpec(key=key, **entry)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise AiinfraError(f"catalog GPU '{key}' is invalid at '{where}': {err['msg']}") from None

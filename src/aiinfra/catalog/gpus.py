"""GPU lookups: catalog/data/gpus.yaml → GpuSpec."""

from __future__ import annotations

from aiinfra.catalog.loader import default_catalog, spec_from_entry
from aiinfra.specs import GpuSpec


def gpu(name: str) -> GpuSpec:
    """Look up a GPU by key, alias or common spelling ("H100 SXM5", "h100")."""
    key, entry = default_catalog().entry("gpus", name)
    return spec_from_entry(GpuSpec, "gpus", key, entry)


def all_gpus() -> list[GpuSpec]:
    cat = default_catalog()
    return [spec_from_entry(GpuSpec, "gpus", k, e) for k, e in sorted(cat.table("gpus").items())]

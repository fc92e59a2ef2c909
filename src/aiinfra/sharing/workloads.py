"""Workload specs for the partitioning planner: what each workload needs, read from YAML.

File format (safe_load only):

    workloads:
      - {name: notebooks, count: 10, profile: 1g.10gb}            # names a MIG profile
      - {name: llm-7b, count: 4, memory_gb: 30, compute_slices: 2}  # or gives its needs
      - {name: batch, count: 6, memory_gb: 12, isolation: soft}     # soft: may share by time-slicing
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aiinfra.errors import SpecError


# Bounds on one request (CLI file or web body), so the work of a plan is bounded by construction:
# the program has one variable per (candidate set, profile) and the assignment is linear in copies.
MAX_WORKLOADS = 10_000  # workload entries in one file
MAX_COPIES = 100_000  # Σ count over all entries (each copy becomes one MIG instance or shared slot)
MAX_GPUS = 100_000  # GPUs in the pool
MAX_GPUS_PER_NODE = 72  # an NVL72 rack is the largest node-like unit the operator labels


class Workload(BaseModel):
    """One kind of workload and how many copies of it run."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=253)
    count: int = Field(default=1, ge=1, le=MAX_COPIES)
    profile: str | None = None
    memory_gb: float | None = Field(default=None, gt=0, le=10_000)
    compute_slices: int = Field(default=1, ge=1, le=7)
    isolation: Literal["hard", "soft"] = "hard"

    @model_validator(mode="after")
    def _needs(self) -> Workload:
        if self.profile is None and self.memory_gb is None:
            raise ValueError(f"workload '{self.name}' needs either 'profile' or 'memory_gb'")
        return self

    @property
    def memory_bytes(self) -> float:
        return (self.memory_gb or 0.0) * 1e9


class Pool(BaseModel):
    """The GPUs a plan may use: bounded like the workloads."""

    model_config = ConfigDict(extra="forbid")

    gpus: int = Field(ge=1, le=MAX_GPUS)
    gpus_per_node: int = Field(default=8, ge=1, le=MAX_GPUS_PER_NODE)


def pool(gpus: int | None, nodes: int | None = None, gpus_per_node: int = 8) -> Pool:
    """GPUs available: `gpus`, or `nodes` × `gpus_per_node`; one line naming the bound when too big."""
    if (gpus is None) == (nodes is None):
        raise SpecError("give exactly one of --gpus (GPUs in all) or --nodes (with --gpus-per-node)")
    if not 1 <= gpus_per_node <= MAX_GPUS_PER_NODE:
        raise SpecError(f"--gpus-per-node must be between 1 and {MAX_GPUS_PER_NODE}, not {gpus_per_node}")
    total = gpus if gpus is not None else nodes * gpus_per_node
    if not 1 <= total <= MAX_GPUS:
        raise SpecError(f"the pool must have between 1 and {MAX_GPUS:,} GPUs, not {total:,}")
    return Pool(gpus=total, gpus_per_node=gpus_per_node)


def parse_workloads(doc: object, where: str = "workloads") -> list[Workload]:
    """Validate a parsed YAML document (a list, or a mapping with a 'workloads' list)."""
    items = doc.get("workloads") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise SpecError(f"{where}: expected a non-empty list under 'workloads'")
    if len(items) > MAX_WORKLOADS:
        raise SpecError(f"{where}: {len(items):,} workload entries; at most {MAX_WORKLOADS:,} are accepted")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise SpecError(f"{where}: workloads[{i}] must be a mapping with name and profile or memory_gb")
        try:
            out.append(Workload(**{str(k): v for k, v in item.items()}))
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise SpecError(f"{where}: workloads[{i}]{'.' + loc if loc else ''}: {err['msg']}") from None
    copies = sum(w.count for w in out)
    if copies > MAX_COPIES:
        raise SpecError(f"{where}: {copies:,} copies in all (Σ count); at most {MAX_COPIES:,} are accepted")
    dup = sorted(n for n, k in Counter(w.name for w in out).items() if k > 1)
    if dup:
        raise SpecError(f"{where}: workload names must be unique; repeated: {', '.join(dup)}")
    return out


def load_workloads(path: Path | str) -> list[Workload]:
    from aiinfra.safeio import load_yaml_file

    return parse_workloads(load_yaml_file(Path(path), what="workloads file"), str(path))

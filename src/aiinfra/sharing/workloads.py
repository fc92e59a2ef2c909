"""Workload specs for the partitioning planner: what each workload needs, read from YAML.

File format (safe_load only):

    workloads:
      - {name: notebooks, count: 10, profile: 1g.10gb}            # names a MIG profile
      - {name: llm-7b, count: 4, memory_gb: 30, compute_slices: 2}  # or gives its needs
      - {name: batch, count: 6, memory_gb: 12, isolation: soft}     # soft: may share by time-slicing
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aiinfra.catalog.loader import read_yaml
from aiinfra.errors import SpecError


class Workload(BaseModel):
    """One kind of workload and how many copies of it run."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    count: int = Field(default=1, ge=1, le=100_000)
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


def parse_workloads(doc: object, where: str = "workloads") -> list[Workload]:
    """Validate a parsed YAML document (a list, or a mapping with a 'workloads' list)."""
    items = doc.get("workloads") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise SpecError(f"{where}: expected a non-empty list under 'workloads'")
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
    names = [w.name for w in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpecError(f"{where}: workload names must be unique; repeated: {', '.join(dup)}")
    return out


def load_workloads(path: Path | str) -> list[Workload]:
    return parse_workloads(read_yaml(Path(path)), str(path))

"""The node commands as library functions: `doctor`.

Each takes plain arguments, does the work and returns an `explain.Result`; `cli/doctor.py` only
parses options, calls it and renders the Result (table, json or yaml).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from aiinfra.contract import Facts, command
from aiinfra.explain import Result


class DoctorCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    status: str  # pass | warn | fail | skip
    detail: str
    fix: str | None = None
    gpu: int | None = None


class DoctorFacts(Facts):
    status: str  # the worst check: pass | warn | fail
    passed: int = Field(alias="pass")
    warn: int
    fail: int
    skip: int
    checks: list[DoctorCheck]


@command("doctor", facts=DoctorFacts)
def doctor(simulate: str | None = None, sim_host: int = 0, root: Path = Path("/"), cuda: str | None = None) -> Result:
    """Is this GPU node (or one simulated host) ready for work? pass/warn/fail checks, each with a fix."""
    import os

    from aiinfra.errors import AiinfraError
    from aiinfra.telemetry import doctor as dr

    try:  # the tree the checks read (/sys, /proc, /var/log) must be a folder we can open
        if not os.path.isdir(root):
            raise AiinfraError(f"--root {str(root)[:120]} is not a folder (give / or a captured /sys,/proc tree)")
        os.listdir(root)
    except OSError as e:
        raise AiinfraError(f"cannot read --root {str(root)[:120]}: {e.strerror or e}") from None
    snap, why = dr.snapshot_for(simulate, sim_host)
    return dr.summary(dr.diagnose(snap, root=root, cuda=cuda, nvml_error=why))

"""Batch-job attribution by dcgm-exporter's HPC job-mapping convention (`--hpc-job-mapping-dir`).

A scheduler prolog writes one file per GPU into a directory and the epilog removes it:

    <dir>/0        job ids on GPU 0, one per line
    <dir>/2.1      job ids on MIG GPU instance 1 of GPU 2 (`<gpu>.<gpu instance>`)

Files whose names are not `<n>` or `<n>.<n>`, and folders, are ignored (as dcgm-exporter does).
Every series of that GPU or instance is repeated once per job with an `hpc_job` label; a GPU with
no file keeps its series without the label.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from aiinfra.telemetry.nvml import Identity

_NAME = re.compile(r"^\d+(\.\d+)?$")
MAX_JOBS_PER_GPU = 64  # a runaway file must not multiply every series without bound
MAX_FILE_BYTES = 64 * 1024


class JobDirError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def read_job_dir(path: str | Path) -> dict[str, tuple[str, ...]]:
    """`{"0": ("job1",), "2.1": ("job7", "job8")}`; JobDirError('missing'|'unreadable') when the folder is not there."""
    path = Path(path)
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        raise JobDirError("missing", f"HPC job mapping folder {path} does not exist") from None
    except (NotADirectoryError, PermissionError) as e:
        raise JobDirError("unreadable", f"cannot read HPC job mapping folder {path}: {e.strerror}") from None
    out: dict[str, tuple[str, ...]] = {}
    for e in entries:
        if not _NAME.match(e.name) or not e.is_file():
            continue
        try:
            with open(e.path, "rb") as f:
                raw = f.read(MAX_FILE_BYTES)
        except OSError:
            continue  # the epilog removed it between scandir and open
        jobs: list[str] = []
        for line in raw.decode("utf-8", "replace").splitlines():
            job = line.strip()
            if job and job not in jobs:
                jobs.append(job)
        if jobs:
            out[e.name] = tuple(jobs[:MAX_JOBS_PER_GPU])
    return out


def job_key(ident: Identity) -> str:
    return f"{ident.gpu}.{ident.gi_id}" if ident.gi_id is not None else str(ident.gpu)

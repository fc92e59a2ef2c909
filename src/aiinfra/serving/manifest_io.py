"""Write YAML documents whole or not at all (temp file + rename, through safeio)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from aiinfra.safeio import write_atomic


def write_yaml_docs(path: Path, docs: list[dict[str, Any]]) -> None:
    write_atomic(path, yaml.safe_dump_all(docs, sort_keys=False), what="manifests")

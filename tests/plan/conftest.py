"""A100-80GB SXM for the Narayanan/Korthikanti checks: the shared catalog's entry when present,
else a test-local user catalog entry (tests/perf/data/a100.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiinfra.catalog.loader import default_catalog, set_user_catalogs

A100_FILE = Path(__file__).parents[1] / "perf" / "data" / "a100.yaml"


@pytest.fixture
def a100():
    from aiinfra.catalog.gpus import gpu

    if "a100-80gb-sxm" not in default_catalog().table("gpus"):
        set_user_catalogs([A100_FILE])
    yield gpu("a100-80gb-sxm")
    set_user_catalogs([])

"""Shared fixtures for the performance-model tests."""

from __future__ import annotations

import pytest

from aiinfra.catalog.gpus import gpu


@pytest.fixture
def a100():
    """Narayanan et al. 2021 and Korthikanti et al. 2022 measured on Selene's A100-80GB SXM4."""
    return gpu("a100-80gb-sxm")

"""Pin 'today' to the date the price catalog was compiled, so staleness is deterministic."""

from __future__ import annotations

from datetime import date

import pytest

from aiinfra.catalog.loader import set_user_catalogs
from aiinfra.cost import prices

TODAY = date(2026, 11, 22)


@pytest.fixture(autouse=True)
def _pinned_today(monkeypatch):
    monkeypatch.setattr(prices, "today", lambda: TODAY)
    yield
    set_user_catalogs([])

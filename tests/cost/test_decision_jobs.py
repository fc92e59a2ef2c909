"""The recommendation and per-job costs."""

from __future__ import annotations

import math

import pytest

from aiinfra.cost import jobs
from aiinfra.cost.decision import Factors, decide
from aiinfra.errors import AiinfraError
from aiinfra.explain import Term


def test_sensitive_steady_work_goes_on_prem():
    d = decide(Factors(sensitivity="high", steadiness=0.9), utilization=0.8, breakeven_u=0.4,
               payback_months=14, capex=1e7)
    assert d.choice == "on-prem"
    assert any("sensitive" in r for r in d.reasons)


def test_bursty_no_capex_no_staff_goes_to_cloud():
    d = decide(Factors(steadiness=0.2, capex_budget=1e5, has_staff=False), utilization=0.2, breakeven_u=0.4,
               payback_months=math.inf, capex=1e7)
    assert d.choice == "cloud"
    assert any("budget" in r for r in d.reasons) and any("staff" in r for r in d.reasons)


def test_mixed_signals_with_hybrid_saving_give_hybrid():
    d = decide(Factors(steadiness=0.3), utilization=0.5, breakeven_u=0.4, payback_months=20, capex=1e6,
               hybrid_saving=2e5)
    assert d.choice == "hybrid"


def test_bad_sensitivity():
    with pytest.raises(AiinfraError, match="sensitivity"):
        decide(Factors(sensitivity="secret"), 0.5, 0.4, 10, 1e6)


def test_job_costs():
    """1,000 tokens/s per GPU at $6.88/GPU-h: 6.88 / 3.6e6 × 1e6 = $1.911 per 1M tokens;
    a 10,000 GPU-hour run at $6.88 = $68,800."""
    p = Term("p", 6.88, "$/GPU-h")
    assert jobs.cost_per_million_tokens(1000, p, "x").value == pytest.approx(1.9111, abs=1e-4)
    assert jobs.training_run_cost(10_000, p, "x").value == pytest.approx(68_800)
    with pytest.raises(AiinfraError):
        jobs.training_run_cost(0, p, "x")

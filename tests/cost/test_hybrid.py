"""Hybrid: own a baseline, burst the rest; demand CSV parsing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfra.cost import hybrid
from aiinfra.errors import AiinfraError
from aiinfra.explain import Term

F = Term("F", 1.5, "$/GPU-h")  # owned fixed per GPU-hour available
E = Term("e", 0.1, "$/GPU-h")  # energy per busy owned GPU-hour
P = Term("p", 6.88, "$/GPU-h")  # AWS p5 on-demand per GPU-hour (SkyPilot v8, 2026-11-09)


def _naive(d, b):
    return F.value * b * d.size + E.value * np.minimum(d, b).sum() + P.value * np.maximum(d - b, 0).sum()


def test_hybrid_beats_both_pure_options_on_bursty_profile():
    """Steady 64 GPUs with twelve 72-hour bursts to 256: owning the peak idles most GPUs, renting
    the base pays cloud rates all year; the optimum owns about the base and bursts the peaks.
    (Decision rule from cluster_tco_anchors.md §5.5: minimise own(N_base) + cloud × Σ max(0, d − N_base).)"""
    d = hybrid.generate_profile(8760, base=64, peak=256, burst_hours=72, bursts_per_year=12, seed=1)
    plan = hybrid.plan(d, F, E, P)
    assert plan.hybrid.value < plan.pure_cloud.value
    assert plan.hybrid.value < plan.pure_onprem.value
    assert 0 < plan.baseline.value < 256
    assert plan.baseline.value == 64


def test_flat_full_profile_equals_pure_onprem():
    """At 100 % flat demand owning everything is cheapest (F + e < p), so hybrid = pure on-prem."""
    d = np.full(8760, 128.0)
    plan = hybrid.plan(d, F, E, P)
    assert plan.baseline.value == 128
    assert plan.hybrid.value == pytest.approx(plan.pure_onprem.value)
    assert plan.hybrid.value == pytest.approx((1.5 + 0.1) * 128 * 8760)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 300, allow_nan=False), min_size=1, max_size=200))
def test_vectorised_costs_match_a_naive_loop(values):
    d = np.asarray(values)
    plan = hybrid.plan(d, F, E, P)
    naive = np.array([_naive(d, b) for b in plan.candidates])
    np.testing.assert_allclose(plan.cost, naive, rtol=1e-9, atol=1e-6)
    assert plan.hybrid.value == pytest.approx(naive.min())


def test_profile_is_reproducible_and_in_range():
    a = hybrid.generate_profile(1000, 10, 50, 24, 50, seed=3)
    assert np.array_equal(a, hybrid.generate_profile(1000, 10, 50, 24, 50, seed=3))
    assert set(np.unique(a)) <= {10.0, 50.0}


def test_csv_with_header_and_hour_column(tmp_path):
    f = tmp_path / "demand.csv"
    f.write_text("hour,gpus\n0,10\n1,12.5\n\n2,0\n")
    assert hybrid.read_demand_csv(f).tolist() == [10, 12.5, 0]


def test_csv_single_column_without_header(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("8\n16\n")
    assert hybrid.read_demand_csv(f).tolist() == [8, 16]


@pytest.mark.parametrize("text,line,what", [
    ("hour,gpus\n0,10\n1,ten\n", 3, "'ten' is not a GPU count"),
    ("hour,gpus\n0,10\n1,-4\n", 3, "out of range"),
    ("5\n6\nnan\n", 3, "out of range"),
    ("hour,gpus\n0,10\n1\n", 3, "1 column"),
])
def test_csv_bad_rows_name_the_line(tmp_path, text, line, what):
    f = tmp_path / "demand.csv"
    f.write_text(text)
    with pytest.raises(AiinfraError) as e:
        hybrid.read_demand_csv(f)
    assert f"demand.csv:{line}:" in str(e.value)
    assert what in str(e.value)


def test_csv_nul_byte_is_bad_input(tmp_path):
    f = tmp_path / "n.csv"
    f.write_text("4\n5\x00\n")
    with pytest.raises(AiinfraError):
        hybrid.read_demand_csv(f)


def test_csv_empty_or_missing(tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("gpus\n")
    with pytest.raises(AiinfraError, match="no demand rows"):
        hybrid.read_demand_csv(f)
    with pytest.raises(AiinfraError, match="does not exist"):
        hybrid.read_demand_csv(tmp_path / "missing.csv")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_csv_random_text_never_crashes(tmp_path_factory, text):
    f = tmp_path_factory.mktemp("h") / "d.csv"
    f.write_text(text)
    try:
        out = hybrid.read_demand_csv(f)
    except AiinfraError as e:
        assert "\n" not in str(e)
    else:
        assert out.size > 0 and np.all(out >= 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 60, allow_nan=False), min_size=1, max_size=100),
       st.floats(0.1, 5), st.floats(0, 1), st.floats(0.5, 20))
def test_breakpoint_candidates_find_the_same_minimum_as_every_whole_baseline(values, f, e, p):
    """cost(B) is piecewise linear with kinks at the hours' demands, so trying 0, the peak and ⌊d⌋, ⌈d⌉
    of every hour finds the minimum over all whole baselines 0..peak."""
    from aiinfra.explain import Term

    d = np.asarray(values)
    plan = hybrid.plan(d, Term("F", f, "$/GPU-h"), Term("e", e, "$/GPU-h"), Term("p", p, "$/GPU-h"))
    every = [f * b * d.size + e * np.minimum(d, b).sum() + p * np.maximum(d - b, 0).sum()
             for b in range(0, int(np.ceil(d.max())) + 1)]
    assert plan.hybrid.value == pytest.approx(min(every), rel=1e-9, abs=1e-6)


def test_a_huge_peak_is_refused_by_its_bound_and_a_large_one_stays_cheap():
    with pytest.raises(AiinfraError, match="1,000,000"):
        hybrid.plan(np.array([1.0, 5e7]), F, E, P)
    plan = hybrid.plan(np.array([1.0, 9e5]), F, E, P)
    assert plan.candidates.size <= 6

"""Properties of the owned-cost model over random valid inputs, and the no-half-written-file rule."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfra.cost import plot
from aiinfra.cost.onprem import OnPremInputs, onprem_cost
from aiinfra.errors import AiinfraError

inputs = st.builds(
    OnPremInputs,
    gpus=st.integers(1, 4096),
    utilization=st.floats(0.01, 1.0),
    years=st.floats(1, 8),
    rate=st.floats(0, 0.2),
    residual=st.floats(0, 0.5),
    pue=st.floats(1.0, 2.0),
    electricity=st.floats(0, 0.3),
    load=st.floats(0, 1),
    node=st.sampled_from(["dgx-h100", "hgx-h100", "dgx-b200"]),
)


@settings(max_examples=60, deadline=None)
@given(inputs)
def test_owned_cost_is_finite_positive_and_falls_with_utilization(i):
    """Owned $/GPU-h = F/u + e: positive, finite, and never higher at a higher utilization."""
    low = onprem_cost(i)
    assert math.isfinite(low.per_gpu_hour.value) and low.per_gpu_hour.value > 0
    assert low.gpus >= i.gpus and low.gpus % 8 == 0
    i.utilization = min(1.0, i.utilization * 1.5)
    assert onprem_cost(i).per_gpu_hour.value <= low.per_gpu_hour.value + 1e-12


@settings(max_examples=60, deadline=None)
@given(st.floats(-10, 10, allow_nan=False), st.floats(-1, 2, allow_nan=False))
def test_random_rates_give_a_result_or_a_one_line_error(rate, u):
    try:
        r = onprem_cost(OnPremInputs(gpus=8, rate=rate, utilization=u))
    except AiinfraError as e:
        assert "\n" not in str(e)
    else:
        assert rate >= 0 and 0 < u <= 1 and r.per_gpu_hour.value > 0


def test_failed_png_export_leaves_no_file(tmp_path, monkeypatch):
    fig = plot.figure([plot.Series("own", 1.0, 1.0)], 12, [], "t")
    monkeypatch.setattr(type(fig), "to_image", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no browser")))
    with pytest.raises(AiinfraError, match="PNG export needs kaleido and Chrome"):
        plot.write(fig, tmp_path / "c.png")
    assert list(tmp_path.iterdir()) == []

"""Random layouts and inputs: a finite answer or an AiinfraError, never a crash."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.plan.inputs import parse_gpu_counts, parse_size
from aiinfra.errors import AiinfraError
from aiinfra.perf import comm
from aiinfra.perf.training import step_time
from aiinfra.plan.search import plan
from aiinfra.sizing.training import device_memory

MODELS = ["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "gpt3-175b", "qwen2.5-7b"]
GPUS = ["h100-sxm", "a100-80gb-sxm", "l40s", "h200-sxm"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(MODELS), g=st.sampled_from(GPUS), gpus=st.sampled_from([1, 2, 4, 8, 16, 64, 96, 1024]),
       batch=st.integers(min_value=-2, max_value=4096), seq=st.sampled_from([0, 512, 2048, 8192, 32768]))
def test_plan_gives_layouts_or_one_error(name, g, gpus, batch, seq):
    try:
        r = plan(model(name), gpu(g), gpus, global_batch=batch, seq=seq, top=3)
    except AiinfraError as e:
        assert "\n" not in str(e)
        return
    for row in r.top:
        assert row["tp"] * row["pp"] * row["cp"] * row["dp"] == gpus
        assert math.isfinite(row["step_s"]) and row["step_s"] > 0
        assert row["memory_gb"] * 1e9 <= device_memory(gpu(g)).value and row["headroom_gb"] >= 0


@settings(max_examples=60, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), pp=st.integers(1, 16), dp=st.integers(1, 64), mb=st.integers(1, 8),
       vp=st.integers(1, 4), rc=st.integers(0, 2), zero=st.integers(0, 3))
def test_step_time_is_finite_and_positive(tp, pp, dp, mb, vp, rc, zero):
    r = step_time(model("gpt3-175b"), gpu("h100-sxm"), tp=tp, pp=pp, dp=dp, micro_batch=mb, vp=vp,
                  recompute=rc, zero=zero, global_batch=dp * mb * 4, seq=2048)
    assert math.isfinite(r.step.value) and r.step.value > 0
    assert 0 < r.mfu.value <= r.hfu.value < 1


@settings(max_examples=80, deadline=None)
@given(size=st.floats(0, 1e11), n=st.integers(1, 100_000), local=st.integers(1, 8))
def test_collectives_are_monotone_in_size(size, n, local):
    node = comm.node_for(gpu("h100-sxm"))
    a = comm.hierarchical_all_reduce(np.array([size, size * 2]), n, min(local, n), node).value
    assert np.all(np.isfinite(a)) and a[0] <= a[1]


@given(st.text(max_size=12))
def test_size_and_count_parsers_never_crash(text):
    for fn in (lambda t: parse_size(t, "x"), parse_gpu_counts):
        try:
            fn(text)
        except AiinfraError:
            pass

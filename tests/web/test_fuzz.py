"""Hypothesis: whatever a form or API request carries, the answer is a result (200) or one sentence
(422), never a server error or a traceback."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

values = st.one_of(
    st.integers(min_value=-10**6, max_value=10**6), st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", "0", "-1", "3", "1e9", "abc", "h100-sxm", "int4", "full", "nan", "inf", "../etc/passwd"]),
    st.text(max_size=12),
)
TRAIN = ["model", "gpu", "tp", "pp", "dp", "cp", "ep", "zero", "recompute", "seq", "micro_batch", "precision",
         "optimizer", "interleave", "fragmentation", "overhead_gib"]
INFER = ["model", "gpu", "quant", "kv_dtype", "context", "batch", "tp", "pp", "prompt", "gpu_memory_utilization",
         "max_batched_tokens"]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _one_line(r):
    assert r.status_code in (200, 422), (r.status_code, r.text[:500])
    if r.status_code == 422 and r.headers["content-type"].startswith("application/json"):
        msg = r.json()["error"]
        assert msg and "\n" not in msg and "Traceback" not in msg


@FUZZ
@given(st.dictionaries(st.sampled_from(INFER), values, max_size=5))
def test_infer_api_never_crashes(client, body):
    _one_line(client.post("/api/size/infer", json={"model": "llama-3.1-8b", **body}))


@FUZZ
@given(st.dictionaries(st.sampled_from(TRAIN), values, max_size=5))
@example({"fragmentation": "inf"})  # an infinite total once reached the chart's JSON and failed the page
def test_train_page_never_crashes(client, params):
    r = client.get("/size/train", params={"model": "llama-3.1-8b", **{k: str(v) for k, v in params.items()}})
    _one_line(r)
    assert "Traceback" not in r.text

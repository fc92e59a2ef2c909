"""Inference latency: calibrated prefill/decode against published measurements (memory_perf_anchors §1.10, §2e.4)."""

from __future__ import annotations

import pytest

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.errors import AiinfraError, DoesNotFitError
from aiinfra.perf import compute
from aiinfra.perf.inference import inference_perf


def test_decode_floor_llama31_8b_h100_is_4_8_ms():
    """§2e.4: Llama-3.1-8B bf16 at batch 1 on H100-SXM (3.35 TB/s) needs ≥ 4.8 ms per token (roofline)."""
    r = inference_perf(model("llama-3.1-8b"), gpu("h100-sxm"), prompt=16, output=16, batch=1)
    roof_ms = r.facts["roofline_tpot_uncalibrated"]["value"] * 1e3
    assert roof_ms == pytest.approx(4.8, rel=0.03)
    # Calibrated TPOT is slower than the roofline by 1/0.6 ≈ 1.67x, inside LLM-Viewer issue #4's 1.44–1.91x.
    assert 1.44 <= r.term("TPOT").value * 1e3 / roof_ms <= 1.91


def test_ttft_llama_7b_a100_against_trt_llm(a100):
    """LLM-Viewer issue #4 (A100, LLaMA-7B, TRT-LLM): measured first-token latency 120.5 ms at 2,048 prompt
    tokens and 16.1 ms at 128. Our calibrated TTFT: within 15% at 2,048 and 30% at 128 (where kernel launch
    overheads that no FLOP model sees dominate)."""
    m = model("llama-2-7b")
    long = inference_perf(m, a100, prompt=2048, output=128, batch=1).term("TTFT").value
    short = inference_perf(m, a100, prompt=128, output=128, batch=1).term("TTFT").value
    assert long == pytest.approx(120.5e-3, rel=0.15)
    assert short == pytest.approx(16.1e-3, rel=0.30)


def test_batch_raises_throughput_and_kv_caps_batch():
    m, g = model("llama-3.1-8b"), gpu("l40s")
    one = inference_perf(m, g, prompt=2048, output=256, batch=1)
    many = inference_perf(m, g, prompt=2048, output=256, batch=32)
    assert many.term("decode tokens/s per GPU").value > 10 * one.term("decode tokens/s per GPU").value
    huge = inference_perf(m, g, prompt=2048, output=256, batch=1000)
    assert huge.facts["batch_served"] == huge.facts["kv_sequences_that_fit"] < 1000
    assert any("capped" in w for w in huge.warnings)


def test_quantization_and_tp_speed_up_decode():
    m, g = model("llama-3.1-70b"), gpu("h100-sxm")
    bf16 = inference_perf(m, g, prompt=1024, output=128, batch=1, tp=4).term("TPOT").value
    fp8 = inference_perf(m, g, prompt=1024, output=128, batch=1, tp=4, quant="fp8").term("TPOT").value
    tp8 = inference_perf(m, g, prompt=1024, output=128, batch=1, tp=8).term("TPOT").value
    assert fp8 < bf16 and tp8 < bf16


def test_cost_per_million_tokens():
    """cost = $/GPU-hour / (tokens/s per GPU · 3600) · 1e6."""
    r = inference_perf(model("llama-3.1-8b"), gpu("l40s"), prompt=2048, output=256, batch=32, price_per_gpu_hour=1.5)
    tps = r.term("output tokens/s per GPU").value
    assert r.term("cost per 1M output tokens").value == pytest.approx(1.5 / (tps * 3600) * 1e6)
    assert "calibration" in r.facts and "1.4-1.9x" in r.facts["calibration"]


def test_does_not_fit_and_bad_numbers_are_one_sentence_errors():
    with pytest.raises(DoesNotFitError, match="does not fit on 1 × l40s"):
        inference_perf(model("llama-3.1-70b"), gpu("l40s"), prompt=2048, output=256, batch=1)
    with pytest.raises(AiinfraError, match="batch must be positive"):
        inference_perf(model("llama-3.1-8b"), gpu("l40s"), prompt=2048, output=256, batch=0)


def test_inference_calibration_from_catalog():
    cal = compute.inference_calibration()
    assert 1.4 <= 1 / cal.decode_bw_fraction <= 1.9


def test_a_one_token_prompt_takes_a_decode_step():
    """A one-token prefill is a decode step: both read the weights once. The prefill floor read them at the full HBM
    bandwidth while decode runs at the calibrated 0.60 of it (LLM-Viewer issue #4: rooflines over-estimate decode
    1.44-1.91x), so `infer llama-3.1-8b --prompt 1 --output 128` on an H100 gave TTFT 4.79 ms under a TPOT of 8.00 ms.
    Both now read the weights at the decode fraction: TTFT is the TPOT of a batch-1 step (within the one token of
    KV it does not read), and never below it for a short prompt."""
    r = inference_perf(model("llama-3.1-8b"), gpu("h100-sxm"), prompt=1, output=128, batch=1)
    ttft, tpot = r.term("TTFT").value, r.term("TPOT").value
    assert ttft == pytest.approx(tpot, rel=0.01)
    for prompt in (1, 16, 64):
        r = inference_perf(model("llama-3.1-8b"), gpu("h100-sxm"), prompt=prompt, output=2, batch=1)
        assert r.term("TTFT").value >= 0.99 * r.term("TPOT").value, prompt

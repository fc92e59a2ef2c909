"""The llm-analysis adapter (benchmarks/llm_analysis_adapter.py) drives the real package and its
docstring's description of llm-analysis 0.2.2 holds.

Source for every expected value: llm_analysis/analysis.py of the llm-analysis 0.2.2 wheel (PyPI),
read as documented in the adapter's module docstring. If llm-analysis is not installed these tests
fail with the install command (they are never skipped): run `make test-deps`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


@pytest.fixture(scope="module")
def lla():
    """Imported per test, not at collection, so a missing llm-analysis fails these tests (with the
    install command) instead of interrupting the whole suite's collection."""
    return importlib.import_module("llm_analysis_adapter")

H, L, A, V, F, S = 1024, 4, 16, 1000, 4096, 512
TINY = dict(
    hidden=H, layers=L, heads=A, kv_heads=A, ffn=F, vocab=V, max_seq_len=2048,
    gpu_memory_gb=80, gpu_bandwidth_gbps=2039, gpu_peak_tflops=312,
)
# 4h² attention + 2·h·ffn MLP + 2h LayerNorm per layer, one shared V·h embedding, final LayerNorm h.
PARAMS = L * (4 * H * H + 2 * H * F + 2 * H) + V * H + H


def test_params_and_18_bytes_per_parameter(lla):
    """llm-analysis counts 2 (bf16 weights) + 4 (fp32 grads) + 12 (fp32 master + Adam m, v) bytes."""
    m = lla.training_memory(**TINY, seq_len=S)
    assert m.params_total == PARAMS
    assert (m.weights, m.gradients, m.optimizer_state) == (2 * PARAMS, 4 * PARAMS, 12 * PARAMS)
    assert m.total == pytest.approx(m.weights + m.gradients + m.optimizer_state + m.activations)
    assert m.fits


@pytest.mark.parametrize(
    "zero,bytes_per_param",
    [(0, 18), (1, 2 + 4 + 12 / 64), (2, 2 + (4 + 12) / 64), (3, 18 / 64)],
)
def test_zero_stages_at_dp64(lla, zero, bytes_per_param):
    """ZeRO-1 shards optimizer state, ZeRO-2 also gradients, ZeRO-3 also weights (DeepSpeed stages) —
    with 18 bytes/param, not the ZeRO paper's 16."""
    m = lla.training_memory(**TINY, seq_len=S, dp=64, zero=zero)
    assert m.weights + m.gradients + m.optimizer_state == pytest.approx(bytes_per_param * PARAMS)


@pytest.mark.parametrize("b,last_stage_copies", [(1, 2), (2, 1)])
def test_activations_no_recompute(lla, b, last_stage_copies):
    """Per layer 33sbh + 4as²b bytes with 2-byte LayerNorm inputs (Korthikanti: 34sbh + 5as²b), plus the
    logits V·s·b·2 and one final LayerNorm s·b·h·2 — counted twice when the micro-batch is 1
    (training() adds them to its batch-1 figure and again after reusing that figure)."""
    m = lla.training_memory(**TINY, seq_len=S, layernorm_bytes=2, micro_batch=b)
    expected = b * L * (33 * S * H + 4 * A * S * S) + last_stage_copies * b * (V * S * 2 + S * H * 2)
    assert m.activations == pytest.approx(expected)


def test_activations_default_fp32_layernorm_and_full_recompute_tp(lla):
    """Default LayerNorm inputs are fp32 (+4 sbh per layer); full recompute keeps sbh·2/t per layer
    even without sequence parallelism."""
    base = lla.training_memory(**TINY, seq_len=S, layernorm_bytes=2)
    fp32_ln = lla.training_memory(**TINY, seq_len=S)
    assert fp32_ln.activations - base.activations == pytest.approx(L * 4 * S * H + 2 * 2 * S * H)
    full = lla.training_memory(**TINY, seq_len=S, tp=4, recompute="full", micro_batch=2)
    assert full.activations == pytest.approx(2 * (L * S * H * 2 / 4 + V * S * 2 / 4))


def test_flash_attention_adds_output_and_stats(lla):
    """Flash attention replaces 2as²b·2 bytes by (2sbh + 4asb)·2 bytes per layer."""
    plain = lla.training_memory(**TINY, seq_len=S, layernorm_bytes=2)
    flash = lla.training_memory(**TINY, seq_len=S, layernorm_bytes=2, flash_attention=True)
    assert plain.activations - flash.activations == pytest.approx(L * (4 * A * S * S - (4 * S * H + 8 * A * S)))


def test_kv_cache_and_weights_ignore_pp(lla):
    """KV = 2·b·ctx·(h/a)·max(kv/t, 1)·bytes·floor(L/p); inference weights count all L layers on each GPU."""
    one = lla.inference_memory(**{**TINY, "kv_heads": 2}, context=1024, batch=3)
    tp4 = lla.inference_memory(**{**TINY, "kv_heads": 2}, context=1024, batch=3, tp=4, pp=2)
    head_dim = H // A
    assert one.kv_cache == 2 * 3 * 1024 * head_dim * 2 * 2 * L
    assert tp4.kv_cache == 2 * 3 * 1024 * head_dim * 1 * 2 * (L // 2)  # one KV head per GPU (replicated)
    assert one.total == one.weights + one.kv_cache
    # With TP=4 > 2 KV heads, each GPU holds one replicated KV head: 4 KV heads' projections counted.
    per_layer = 2 * H * H + 2 * H * (H * 4 / A) + 2 * H * F + 2 * H
    assert tp4.weights == pytest.approx(2 * (L * per_layer + V * H + H) / 4)  # all L layers, not L/pp


def test_does_not_fit_still_gives_breakdown(lla):
    """llm-analysis asserts when memory overflows; the adapter re-runs unbounded and says fits=False."""
    small = {**TINY, "gpu_memory_gb": 0.5}
    m = lla.training_memory(**small, seq_len=S)
    assert not m.fits and m.weights == 2 * PARAMS
    i = lla.inference_memory(**{**TINY, "gpu_memory_gb": 0.001}, context=1024)
    assert not i.fits and i.weights > 0


def test_bad_inputs_raise_value_error(lla):
    with pytest.raises(ValueError, match="recompute"):
        lla.training_memory(**TINY, seq_len=S, recompute="some")
    with pytest.raises(ValueError, match="16-bit"):
        lla.training_memory(**TINY, seq_len=S, dtype_bits=32)
    with pytest.raises(ValueError, match="rejected"):
        lla.training_memory(**TINY, seq_len=4096)  # longer than max_seq_len


def test_evaluations_per_second_counts_real_calls(lla):
    assert lla.evaluations_per_second(3, **TINY, seq_len=S) > 0


def test_spec_kwargs_from_catalog(lla):
    """aiinfra's catalog specs map onto the adapter's arguments (Llama-3.1-70B on H200: 80 layers,
    8 KV heads, SwiGLU ffn 28672; H200 141 GB, 4,800 GB/s, 989.4 dense BF16 TFLOP/s)."""
    from aiinfra.catalog.gpus import gpu
    from aiinfra.catalog.models import model

    kw = lla.spec_kwargs(model("llama-3.1-70b"), gpu("h200"))
    assert (kw["layers"], kw["kv_heads"], kw["ffn"], kw["gated_mlp"]) == (80, 8, 28672, True)
    assert (kw["gpu_memory_gb"], kw["gpu_bandwidth_gbps"], kw["gpu_peak_tflops"]) == (141, 4800, 989.4)
    mem = lla.inference_memory(**kw, context=8192, batch=16, tp=8)
    assert mem.kv_cache == 2 * 16 * 8192 * 128 * 1 * 2 * 80  # one KV head per GPU at TP=8

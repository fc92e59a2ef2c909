"""FLOP counts against Narayanan et al. 2021 (SC'21) §5.1 (memory_perf_anchors §2a)."""

from __future__ import annotations

import numpy as np
import pytest

from aiinfra.catalog.models import model
from aiinfra.perf import flops
from aiinfra.sizing.params import param_counts

TABLE1 = ["gpt-1.7b", "gpt-3.6b", "gpt-7.5b", "gpt-18.4b", "gpt-39.1b", "gpt-76.1b", "gpt-145.6b",
          "gpt-310.1b", "mt-nlg-530b", "gpt-1t"]


@pytest.mark.parametrize("name", TABLE1)
def test_general_count_equals_narayanan_closed_form(name):
    """Narayanan eq.: 96·B·s·l·h²(1 + s/6h + V/16lh) with recompute, 72·…(1 + s/6h + V/12lh) without."""
    m = model(name)
    B, s = 512, 2048
    got = flops.training_flops(m, tokens=B * s, seq=s, recompute="full")
    assert got.hardware.value == pytest.approx(flops.narayanan_flops(B, s, m.layers, m.hidden, m.vocab).value, rel=1e-9)
    assert got.model.value == pytest.approx(
        flops.narayanan_flops(B, s, m.layers, m.hidden, m.vocab, recompute=False).value, rel=1e-9)


def test_gpt3_175b_300b_tokens_1024_gpus_140_tflops_is_34_days():
    """Narayanan et al. 2021 §5.1: GPT-3 175B, 300B tokens, 1,024 GPUs at 140 TF/s → about 34 days (33.9)."""
    days = flops.end_to_end_days(300e9, 175e9, 1024, 140e12)
    assert days.value == pytest.approx(33.9, abs=0.05)


def test_1t_450b_tokens_3072_gpus_163_tflops_is_84_days():
    """Narayanan et al. 2021 §5.1: 1T parameters, 450B tokens, 3,072 GPUs at 163 TF/s → ~84 days (83.2)."""
    assert flops.end_to_end_days(450e9, 1e12, 3072, 163e12).value == pytest.approx(83.2, abs=0.1)


def test_moe_uses_active_parameters():
    """Mixtral-8x7B: 12.9B active of 46.7B (memory_perf_anchors §2d); FLOPs/token ≈ 6 × active + attention."""
    m = model("mixtral-8x7b")
    pc = param_counts(m)
    per_token = flops.training_flops(m, tokens=1, seq=1).per_token.value
    # 6 FLOPs per active weight; the embedding is a lookup (no FLOPs), norms are not matmuls.
    assert per_token / 6 == pytest.approx(pc.active.value - pc.embedding, rel=0.001)
    assert pc.active.value == pytest.approx(12.88e9, rel=0.001)


def test_gqa_reduces_kv_projection_flops():
    """Llama-3.1-8B (32 heads, 8 KV heads): attention projections are h·(q + 2kv) + q·h, not 4h²."""
    m = model("llama-3.1-8b")
    dense, _ = flops.layer_flops(m)
    h, q, kv = 4096, 4096, 1024
    assert dense.matmul == 2 * (h * (q + 2 * kv) + q * h + 3 * h * 14336)


def test_causal_halving_and_selective_recompute():
    """Causal halves core attention (Megatron-LM 2024+, §1.4); selective recompute adds only core attention."""
    m = model("gpt-22b")
    s = 2048
    full = flops.training_flops(m, tokens=s, seq=s)
    half = flops.training_flops(m, tokens=s, seq=s, causal=True)
    core = 3 * m.layers * 4 * s * m.hidden * s  # per token 4·s·h per layer, × s tokens
    assert full.model.value - half.model.value == pytest.approx(core / 2)
    sel = flops.training_flops(m, tokens=s, seq=s, recompute="selective")
    assert sel.hardware.value - sel.model.value == pytest.approx(core / 3)


def test_arrays_broadcast_over_recompute_codes():
    m = model("gpt-1.7b")
    f = flops.training_flops(m, tokens=np.array([1e6, 1e6, 1e6]), seq=2048, recompute=np.array([0, 1, 2]))
    assert f.hardware.value[0] < f.hardware.value[1] < f.hardware.value[2]
    assert np.all(f.model.value == f.model.value[0])


def test_attention_follows_each_layers_window():
    """gpt-oss-120b's config.json alternates sliding (128-token window) and full attention layers (layer_types).
    Causal: a full layer attends s/2 positions per token on average, a sliding layer w − w²/2s once s > w (every
    token past the first w sees w). At s = 4,096: (2,048 + 128 − 2) / 2 per layer on average. Mistral-7B's 4,096
    window at s = 8,192: 4,096 − 1,024 = 3,072, not the 2,048 a halved window would give."""
    from aiinfra.catalog.models import model
    from aiinfra.perf.flops import attended_positions

    m = model("gpt-oss-120b")
    assert attended_positions(m, 4096, True) == pytest.approx((2048 + 128 - 128 * 128 / 8192) / 2, rel=1e-9)
    assert attended_positions(model("mistral-7b"), 8192, True) == pytest.approx(3072, rel=1e-9)
    assert attended_positions(model("llama-3.1-8b"), 8192, True) == 4096
    assert attended_positions(model("llama-3.1-8b"), 8192, False) == 8192

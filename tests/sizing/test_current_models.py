"""Current open models in the catalog: parameter counts against the published totals, and per-layer
attention patterns (full / sliding / chunked) read from each config.json."""

import pytest

from aiinfra.catalog.models import from_config, model
from aiinfra.errors import AiinfraError
from aiinfra.sizing.inference import cached_tokens_per_sequence, kv_bytes_per_sequence, kv_bytes_per_token
from aiinfra.sizing.params import param_counts
from aiinfra.units import GiB


@pytest.mark.parametrize(
    "name,total_b,active_b,rel",
    [
        # Model cards (HF Hub): Qwen3 "8.2B", "32.8B"; Qwen3-30B-A3B "30.5B total, 3.3B activated";
        # Qwen3-235B-A22B "235B total, 22B activated"; Mistral-Small-24B "24B" (23.57B);
        # DeepSeek-V3.1/R1 671B total, 37B activated; Llama 4 Maverick "400B total, 17B active".
        ("qwen3-8b", 8.19, 8.19, 0.005),
        ("qwen3-32b", 32.8, 32.8, 0.005),
        ("qwen3-30b-a3b", 30.5, 3.3, 0.02),
        ("qwen3-235b-a22b", 235.0, 22.0, 0.01),
        ("mistral-small-24b", 23.57, 23.57, 0.002),
        ("deepseek-v3.1", 671.0, 37.0, 0.015),
        ("deepseek-r1", 671.0, 37.0, 0.015),
        ("llama-4-maverick", 400.0, 17.0, 0.015),
        # Kimi K2 card: "1 trillion total parameters, 32 billion activated" (rounded figures)
        ("kimi-k2", 1000.0, 32.0, 0.03),
    ],
)
def test_total_and_active_parameters_match_model_cards(name, total_b, active_b, rel):
    c = param_counts(model(name))
    assert float(c.total.value) / 1e9 == pytest.approx(total_b, rel=rel)
    assert float(c.active.value) / 1e9 == pytest.approx(active_b, rel=max(rel, 0.03))


def test_qwen3_non_embedding_counts():
    """Qwen3 model cards: 8B has 6.95B non-embedding parameters, 32B has 31.2B (untied embeddings and head)."""
    for name, non_emb in (("qwen3-8b", 6.95), ("qwen3-32b", 31.2)):
        c = param_counts(model(name))
        assert (float(c.total.value) - c.embedding - c.lm_head) / 1e9 == pytest.approx(non_emb, abs=0.01)


def test_gpt_oss_counts_match_the_model_card_table():
    """gpt-oss model card: 120b 116.83B total / 5.13B active, 20b 20.91B / 3.61B. Its active count leaves out
    the input embedding (a table lookup), keeps the unembedding; experts and attention carry biases."""
    for name, total_b, active_b in (("gpt-oss-120b", 116.83, 5.13), ("gpt-oss-20b", 20.91, 3.61)):
        c = param_counts(model(name))
        assert float(c.total.value) / 1e9 == pytest.approx(total_b, abs=0.01)
        assert (float(c.active.value) - c.embedding) / 1e9 == pytest.approx(active_b, abs=0.01)


def test_llama4_scout_text_model():
    """Llama 4 Scout card: 17B active, 109B total including the vision encoder; the text model alone is
    ~107.8B (16 routed + 1 shared expert of 8,192 in every layer)."""
    m = model("llama-4-scout")
    c = param_counts(m)
    assert m.experts == 16 and m.shared_experts == 1 and m.moe_layers == 48
    assert float(c.active.value) / 1e9 == pytest.approx(17.0, rel=0.02)
    assert 106e9 < float(c.total.value) < 109e9
    mav = model("llama-4-maverick")
    assert mav.moe_layers == 24 and mav.dense_layers == 24 and mav.ffn == 16384  # interleave_moe_layer_step 2


def test_moe_details_shared_and_routed():
    """DeepSeek-V3 and Kimi K2: 1 shared + routed experts (256 / 384), top-8; first 3 / 1 layers dense."""
    ds, k2 = model("deepseek-r1"), model("kimi-k2")
    assert (ds.experts, ds.shared_experts, ds.experts_per_token, ds.dense_layers) == (256, 1, 8, 3)
    assert (k2.experts, k2.shared_experts, k2.experts_per_token, k2.dense_layers) == (384, 1, 8, 1)
    q = model("qwen3-235b-a22b")
    assert (q.experts, q.shared_experts, q.experts_per_token, q.moe_layers) == (128, 0, 8, 94)


def test_gemma3_five_local_to_one_global():
    """Gemma 3 technical report: 5 local layers (1,024-token window) for every global layer; 62 layers →
    10 global, 52 local. KV per layer-token = 2·16·128·2 B = 8 KiB. At 128K context the KV is
    10·131072·8 KiB + 52·1024·8 KiB = 10.41 GiB instead of 62 full layers' 62 GiB."""
    m = model("gemma-3-27b")
    assert m.attention_groups() == [("full", 10, None), ("sliding", 52, 1024)]
    assert m.layer_types[:6] == ("sliding",) * 5 + ("full",)
    seq = float(kv_bytes_per_sequence(m, 131072).value)
    assert seq == 8192 * (10 * 131072 + 52 * 1024)
    assert seq / GiB == pytest.approx(10.41, abs=0.01)
    assert float(kv_bytes_per_token(m).value) * 131072 / GiB == pytest.approx(62.0)


def test_gpt_oss_alternating_sliding_halves_the_kv():
    """gpt-oss config.json layer_types alternate sliding (128 tokens) and full attention: at 131,072 tokens the
    cache is about half of what one sliding window on every layer (or full everywhere) would say — the
    issue's "mis-sized by about half"."""
    m = model("gpt-oss-120b")
    per_tok = float(kv_bytes_per_token(m).value)
    assert per_tok == 2 * 36 * 8 * 64 * 2  # 73,728 B
    seq = float(kv_bytes_per_sequence(m, 131072).value)
    assert seq / (per_tok * 131072) == pytest.approx(0.5, abs=0.001)
    assert cached_tokens_per_sequence(m, 100) == pytest.approx(100)


def test_llama4_chunked_attention():
    """Llama 4: 3 of every 4 layers attend within 8,192-token chunks (attention_chunk_size), every 4th
    (the NoPE layer) globally: at 1M tokens 12 layers hold 1M tokens, 36 layers 8,192."""
    m = model("llama-4-scout")
    assert m.attention_groups() == [("full", 12, None), ("chunked", 36, 8192)]
    per_layer = float(kv_bytes_per_token(m).value) / 48
    assert float(kv_bytes_per_sequence(m, 1_000_000).value) == per_layer * (12 * 1_000_000 + 36 * 8192)


def test_linear_layers_keep_a_fixed_state():
    """Qwen3-Next style hybrid: linear-attention layers hold a fixed state, only every 4th layer grows."""
    cfg = {"model_type": "qwen3_next", "hidden_size": 2048, "num_hidden_layers": 8, "num_attention_heads": 16,
           "num_key_value_heads": 2, "head_dim": 256, "intermediate_size": 5120, "vocab_size": 1000,
           "full_attention_interval": 4}
    m = from_config(cfg, "tiny-next")
    assert m.attention_groups() == [("full", 2, None), ("linear", 6, 0)]
    short = float(kv_bytes_per_sequence(m, 1000).value)
    long = float(kv_bytes_per_sequence(m, 2000).value)
    assert long - short == 2 * 2 * 256 * 2 * 2 * 1000  # only the 2 full layers grow
    assert short > long - short  # the fixed linear state counts


def test_layer_types_from_config_and_bad_values():
    base = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 512, "vocab_size": 100, "sliding_window": 64}
    m = from_config({**base, "layer_types": ["sliding_attention", "full_attention"]}, "t")
    assert m.attention_groups() == [("full", 1, None), ("sliding", 1, 64)]
    with pytest.raises(AiinfraError, match="layer_types"):
        from_config({**base, "layer_types": ["sliding_attention", "weird"]}, "t")
    with pytest.raises(AiinfraError, match="layer_types lists 1 layers"):
        from_config({**base, "layer_types": ["full_attention"]}, "t")

"""Parameter counts from config fields must equal the published counts to the parameter."""

import pytest

from aiinfra.catalog.models import model
from aiinfra.sizing.params import param_counts


@pytest.mark.parametrize(
    "name,total,active",
    [
        ("llama-3.1-8b", 8_030_261_248, None),
        ("llama-3.1-70b", 70_553_706_496, None),
        ("llama-3.1-405b", 405_853_388_800, None),
        ("mistral-7b", 7_241_732_096, None),
        ("mixtral-8x7b", 46_702_792_704, 12_879_925_248),
        ("qwen2.5-7b", 7_615_616_512, None),
        ("qwen2.5-72b", 72_706_203_648, None),
        ("gpt2", 124_439_808, None),
    ],
)
def test_published_counts_exact(name, total, active):
    """memory_perf_anchors §2d 'Computed params' column (HF model cards: 8.03B, 70.6B, 405B, 7.24B,
    46.7B/12.9B active, 7.61B, 72.7B, 124M)."""
    c = param_counts(model(name))
    assert c.total.value == total
    assert c.active.value == (active if active is not None else total)


@pytest.mark.parametrize(
    "name,total",
    [("llama-2-7b", 6_738_415_616), ("llama-2-13b", 13_015_864_320), ("llama-2-70b", 68_976_648_192)],
)
def test_llama2_counts(name, total):
    """Llama-2 parameter counts as transformers reports them for meta-llama/Llama-2-{7,13,70}b-hf
    (model.num_parameters(); the Llama 2 paper rounds them to 7B/13B/70B)."""
    assert param_counts(model(name)).total.value == total


def test_qwen_non_embedding():
    """Qwen2.5 model cards: 7.61B total, 6.53B non-embedding (QKV bias included)."""
    c = param_counts(model("qwen2.5-7b"))
    non_emb = c.total.value - c.embedding - c.lm_head
    assert round(non_emb / 1e9, 2) == 6.53


def test_deepseek_v3_mla_moe():
    """DeepSeek-V3 technical report / §2d: 671B total (main model) with 37B activated per token, plus a
    14B multi-token-prediction module (685B on the Hub)."""
    c = param_counts(model("deepseek-v3"))
    assert round(c.total.value / 1e9, 2) == 671.03
    assert round(c.active.value / 1e9, 1) == 37.6  # "37B activated": 37.55B with embeddings and head
    assert 13e9 < c.mtp < 15e9
    assert round((c.total.value + c.mtp) / 1e9) == 684  # the Hub's "685B" rounds the safetensors total


@pytest.mark.parametrize(
    "name,billions",
    [("gpt-1.7b", 1.7), ("gpt-3.6b", 3.6), ("gpt-7.5b", 7.5), ("gpt-18.4b", 18.4), ("gpt-39.1b", 39.1),
     ("gpt-76.1b", 76.1), ("gpt-145.6b", 145.6), ("gpt-310.1b", 310.1), ("mt-nlg-530b", 529.6), ("gpt-1t", 1008.0)],
)
def test_narayanan_table1_params(name, billions):
    """Narayanan et al. 2021 Table 1 'Number of parameters (billion)' column; the paper's formula
    12·l·h²·(1 + 13/(12h) + (V + s)/(12·l·h)) reproduces it to 0.1B (memory_perf_anchors §2a)."""
    m = model(name)
    c = param_counts(m)
    l, h, V, s = m.layers, m.hidden, m.vocab, m.max_positions
    paper = 12 * l * h * h * (1 + 13 / (12 * h) + (V + s) / (12 * l * h))
    assert c.total.value == pytest.approx(paper + 2 * h)  # + the final LayerNorm the formula leaves out
    assert abs(c.total.value / 1e9 - billions) <= 0.1


@pytest.mark.parametrize("name,label_b", [("mcore-gpt-1.7b", 1.7), ("mcore-gpt-7.1b", 7.1), ("mcore-gpt-16b", 16),
                                          ("mcore-gpt-177b", 177), ("mcore-gpt-462b", 462)])
def test_megatron_lm_readme_models_with_an_untied_head(name, label_b):
    """Megatron-LM README.md model table (commit f2e5db4, 2024-07-15) labels its GPT models 1.7B ... 462B at a
    131,072-token vocabulary: 12·L·h² of layers plus an input embedding and a separate output layer (Megatron's
    --untie-embeddings-and-output-weights) round to those labels; with a tied head the 1.7B model would be 1.5B."""
    m = model(name)
    assert not m.tied_embeddings and m.vocab == 131_072
    total_b = param_counts(m).total.value / 1e9
    tied_b = total_b - m.vocab * m.hidden / 1e9
    assert abs(total_b - label_b) / label_b <= 0.035 and abs(total_b - label_b) < abs(tied_b - label_b)


def test_megatron_arguments_untie_and_position_embedding_type():
    """Megatron-LM arguments: untie_embeddings_and_output_weights adds a separate V·h output layer;
    position_embedding_type rope drops the learned position table (s·h); a value Megatron does not offer is refused."""
    from aiinfra.catalog.models import from_config
    from aiinfra.errors import SpecError

    base = {"model_type": "megatron-gpt", "hidden_size": 64, "num_layers": 2, "num_attention_heads": 4,
            "padded_vocab_size": 1000, "seq_length": 128}
    tied = param_counts(from_config(base, "t")).total.value
    untied = param_counts(from_config({**base, "untie_embeddings_and_output_weights": True}, "u")).total.value
    rope = param_counts(from_config({**base, "position_embedding_type": "rope"}, "r")).total.value
    assert untied - tied == 1000 * 64 and tied - rope == 128 * 64
    with pytest.raises(SpecError, match="position_embedding_type"):
        from_config({**base, "position_embedding_type": "alibi"}, "x")
    with pytest.raises(SpecError, match="untie_embeddings_and_output_weights"):
        from_config({**base, "untie_embeddings_and_output_weights": "yes"}, "x")

"""aiinfra vs llm-analysis 0.2.2 on the shared configurations of benchmarks/compare_llm_analysis.py.

Each assertion pins one documented agreement or difference (docs/llm-analysis-comparison.md), so a
change in either tool that breaks an explanation fails here. Source of the baseline: the PyPI package
llm-analysis 0.2.2 (cli99/llm-analysis), run offline through benchmarks/llm_analysis_adapter.py.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import compare_llm_analysis as cmp  # noqa: E402

from aiinfra.catalog.models import model  # noqa: E402
from aiinfra.sizing.params import param_counts  # noqa: E402

CASES = {c.name: c for c in cmp.CASES}


@pytest.fixture(scope="module")
def results():
    import llm_analysis.analysis  # noqa: F401  (make test installs it; missing, these tests error)

    return {name: (cmp.ours(c), cmp.theirs(c)) for name, c in CASES.items()}


def ratio(results, name, item):
    a, b = results[name]
    return float(a[item]) / float(b[item])


def test_at_least_five_shared_configurations(results):
    assert len(results) >= 5
    assert sum(c.mode == "train" for c in CASES.values()) >= 5


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("GPT")])
def test_model_states_agree_for_gpt(results, name):
    """Both use 18 B/param (bf16 weights, fp32 grads, fp32 master + Adam); for GPT-style models the only
    parameter difference is the biases llm-analysis omits (13h per layer vs 12h²), < 0.2%."""
    for item in ("weights", "gradients", "optimizer"):
        assert ratio(results, name, item) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize(
    "name,a,h,t",
    [("GPT-3 175B, TP8·PP8, b=1, no recompute", 96, 12288, 8), ("GPT 22B, TP8, b=4, no recompute", 64, 6144, 8)],
)
def test_no_recompute_activation_gap_is_the_dropout_masks(results, name, a, h, t):
    """Korthikanti Table 2 keeps s·b·h·(10 + 24/t + 5as/(ht)) per layer; llm-analysis (LayerNorm inputs in
    16-bit) keeps (9 + 24/t + 4as/(ht)): no MLP-dropout mask and no softmax-dropout mask."""
    s = 2048
    expected = (10 + 24 / t + 5 * a * s / (h * t)) / (9 + 24 / t + 4 * a * s / (h * t))
    assert ratio(results, name, "activations") == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("name", [n for n in CASES if "inference" in n])
def test_kv_cache_identical(results, name):
    """Both use 2·L·max(n_kv/t, 1)·d_head·bytes per token for GQA/MHA models at TP ≤ n_kv."""
    assert ratio(results, name, "kv_cache") == 1.0


@pytest.mark.parametrize(
    "name,key",
    [("Llama-2-7B inference, 1 GPU, 8 × 4096 bf16", "llama-2-7b"),
     ("Llama-3.1-8B, DP8, ZeRO-3, full recompute", "llama-3.1-8b")],
)
def test_untied_output_head_is_the_weight_gap(results, name, key):
    """llm-analysis hard-wires a shared embedding, so untied Llama models lose their V·h output head."""
    m = model(key)
    c = param_counts(m)
    expected = c.total.value / (c.total.value - c.lm_head)
    assert ratio(results, name, "weights") == pytest.approx(expected, rel=0.003)


def test_full_recompute_counts_working_layer_and_fp32_logits(results):
    """With full recompute we add the one layer rebuilt during its backward and fp32 cross-entropy logits
    (Megatron's 4·s·b·h·(1 + V/h)); llm-analysis keeps only the checkpoints and 16-bit logits, so ours is
    more than twice its figure here."""
    assert ratio(results, "Llama-3.1-8B, DP8, ZeRO-3, full recompute", "activations") > 2.0

"""Hypothesis: random model configs and layouts give a result or an AiinfraError, never a crash."""

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinfra.catalog.models import from_config
from aiinfra.errors import AiinfraError
from aiinfra.sizing.inference import inference_memory
from aiinfra.sizing.training import training_memory

small = st.one_of(st.integers(-4, 4096), st.sampled_from([0, -1, 1, 2, 3, 7, 8, 64, 128]))
maybe = lambda s: st.one_of(st.none(), s)  # noqa: E731

configs = st.fixed_dictionaries(
    {"model_type": st.sampled_from(["llama", "qwen2", "mixtral", "deepseek_v3", "gpt2", "megatron-gpt", "weird"])},
    optional={
        "hidden_size": small, "num_hidden_layers": small, "num_layers": small, "num_attention_heads": small,
        "num_key_value_heads": small, "intermediate_size": small, "vocab_size": small, "head_dim": small,
        "n_embd": small, "n_layer": small, "n_head": small, "n_positions": small,
        "num_local_experts": maybe(small), "num_experts_per_tok": small, "moe_intermediate_size": small,
        "kv_lora_rank": maybe(small), "qk_nope_head_dim": small, "qk_rope_head_dim": small, "v_head_dim": small,
        "first_k_dense_replace": small, "sliding_window": maybe(small), "tie_word_embeddings": st.booleans(),
        "max_position_embeddings": small, "hidden_act": st.text(max_size=3),
        "num_attention_heads_f": st.floats(allow_nan=True),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfg=configs,
    tp=st.integers(-1, 16), pp=st.integers(-1, 16), dp=st.integers(0, 8), cp=st.integers(0, 4), ep=st.integers(0, 8),
    seq=st.integers(-8, 8192), mb=st.integers(-1, 8), zero=st.integers(-1, 4),
    recompute=st.sampled_from(["none", "selective", "full", "bogus"]), sp=st.booleans(),
)
def test_random_training_specs(cfg, tp, pp, dp, cp, ep, seq, mb, zero, recompute, sp):
    try:
        m = from_config(cfg, "random")
        r = training_memory(m, seq=seq, micro_batch=mb, tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, zero=zero,
                            recompute=recompute, sp=sp)
    except AiinfraError as e:
        assert str(e) and "\n" not in str(e)
        return
    total = float(r.total.value)
    assert math.isfinite(total) and total > 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfg=configs, tp=st.integers(-1, 16), pp=st.integers(-1, 8), batch=st.integers(-2, 64), context=st.integers(-8, 1 << 17),
    quant=st.sampled_from(["bf16", "fp8", "int4", "fp4", "int3"]), kv=st.sampled_from(["bf16", "fp8", "fp2"]),
)
def test_random_inference_specs(cfg, tp, pp, batch, context, quant, kv):
    try:
        m = from_config(cfg, "random")
        r = inference_memory(m, quant=quant, kv_dtype=kv, context=context, batch=batch, tp=tp, pp=pp)
    except AiinfraError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert math.isfinite(float(r.total.value)) and float(r.total.value) > 0


CATALOG_MODELS = ["llama-3.1-8b", "mixtral-8x7b", "deepseek-v3", "gpt2", "qwen2.5-7b", "mistral-7b", "gpt-22b"]


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(CATALOG_MODELS), tp=st.sampled_from([1, 2, 4, 8, 16]), pp=st.sampled_from([1, 2, 3, 4, 8]),
    dp=st.integers(1, 64), cp=st.sampled_from([1, 2, 4]), ep=st.sampled_from([1, 2, 4, 8]), vp=st.sampled_from([1, 2]),
    seq=st.sampled_from([512, 2048, 4096, 8192]), mb=st.integers(1, 8), zero=st.integers(0, 3),
    recompute=st.sampled_from(["none", "selective", "full"]), sp=st.booleans(), flash=st.booleans(),
    offload=st.sampled_from(["none", "optimizer", "optimizer+params"]), precision=st.sampled_from(["bf16", "fp8", "fp32"]),
)
def test_catalog_models_random_layouts(name, tp, pp, dp, cp, ep, vp, seq, mb, zero, recompute, sp, flash, offload, precision):
    """Mostly valid layouts reach the formulas: totals are finite, positive and add up from their parts."""
    from aiinfra.catalog.models import model

    try:
        r = training_memory(model(name), seq=seq, micro_batch=mb, tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, vp=vp, zero=zero,
                            recompute=recompute, sp=sp, flash_attention=flash, offload=offload, precision=precision)
    except AiinfraError as e:
        assert "\n" not in str(e)
        return
    parts = [float(t.value) for t in r.terms[:-1]]
    assert all(math.isfinite(p) and p >= 0 for p in parts)
    assert float(r.total.value) == sum(parts) or abs(float(r.total.value) - sum(parts)) < 1e-6 * sum(parts)

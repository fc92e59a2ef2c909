"""Inference memory against published numbers (each test names its source)."""

import pytest

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.sizing.inference import (
    cached_tokens_per_sequence,
    fits,
    inference_memory,
    kv_bytes_per_token,
    model_weight_bytes,
    weight_bytes,
)
from aiinfra.units import GB, GiB


@pytest.mark.parametrize(
    "name,per_token",
    [
        ("llama-2-7b", 524_288),
        ("llama-2-13b", 819_200),
        ("llama-2-70b", 327_680),
        ("llama-3.1-70b", 327_680),
        ("llama-3.1-8b", 131_072),
        ("mistral-7b", 131_072),
        ("mixtral-8x7b", 131_072),
        ("llama-3.1-405b", 516_096),
        ("qwen2.5-7b", 57_344),
        ("qwen2.5-72b", 327_680),
        ("deepseek-v3", 70_272),
    ],
)
def test_kv_bytes_per_token_table(name, per_token):
    """memory_perf_anchors §2e.2 KV bytes/token (bf16): 2·L·n_kv·d_head·2 B; DeepSeek-V3 MLA caches
    (512 + 64)·2 B per layer = 70,272 B/token ("70 KB per token" in DeepSeek's report)."""
    assert kv_bytes_per_token(model(name)).value == per_token


@pytest.mark.parametrize(
    "name,gib_4k,gib_128k",
    [("llama-2-7b", 2.0, 64), ("llama-3.1-8b", 0.5, 16), ("llama-3.1-70b", 1.25, 40), ("qwen2.5-7b", 0.22, 7)],
)
def test_kv_per_sequence_table(name, gib_4k, gib_128k):
    """memory_perf_anchors §2e.2 columns '4K ctx, 1 seq' and '128K ctx, 1 seq' (GiB)."""
    per = kv_bytes_per_token(model(name)).value
    assert per * 4096 / GiB == pytest.approx(gib_4k, abs=0.005)
    assert per * 131072 / GiB == pytest.approx(gib_128k, abs=0.5)


@pytest.mark.parametrize(
    "params,quant,gb", [(7e9, "fp16", 14), (13e9, "fp16", 26), (70e9, "fp16", 140), (405e9, "bf16", 810), (70e9, "int4", 35)]
)
def test_textbook_weight_sizes(params, quant, gb):
    """The rule the field teaches (e.g. NVIDIA's inference-optimization primer, HF model-memory docs):
    weights = parameters × bytes per parameter; 7B fp16 = 14 GB, 13B = 26 GB, 70B = 140 GB, 405B = 810 GB,
    70B int4 = 35 GB (decimal GB)."""
    assert weight_bytes(params, quant).value == gb * GB


def test_weight_anchors_for_catalog_models():
    """memory_perf_anchors §2e.4: Llama-3.1-8B bf16 16.1 GB (15.0 GiB), Llama-3.1-70B 141.1 GB (131.4 GiB),
    405B 811.7 GB, Mixtral 93.4 GB, Qwen2.5-72B 145.4 GB."""
    for name, gb in (("llama-3.1-8b", 16.1), ("llama-3.1-70b", 141.1), ("llama-3.1-405b", 811.7),
                     ("mixtral-8x7b", 93.4), ("qwen2.5-72b", 145.4)):
        assert float(model_weight_bytes(model(name), "bf16").value) / GB == pytest.approx(gb, abs=0.05)
    assert float(model_weight_bytes(model("llama-3.1-8b"), "bf16").value) / GiB == pytest.approx(15.0, abs=0.05)


def test_int4_group_scales_cost_extra():
    """AWQ/GPTQ int4 with group size 128 stores a 16-bit scale and a 4-bit zero point per group, and keeps
    embeddings/head in 16-bit: a real 70B int4 checkpoint is about 40 GB, not the textbook 35 GB."""
    w = float(model_weight_bytes(model("llama-3.1-70b"), "int4").value) / GB
    assert 35.3 < w < 41


def test_70b_int4_fits_one_h200_not_one_l40s(cli):
    """The field's example: a 70B model at int4 (35 GB of weights) serves from one H200, but not from one
    L40S (48 GB) once its KV cache is counted: the issue's CLI setting, 16 sequences of 8,192 tokens."""
    m = model("llama-3.1-70b")
    h200 = inference_memory(m, quant="int4", context=8192, batch=16, gpu=gpu("h200"))
    l40s = inference_memory(m, quant="int4", context=8192, batch=16, gpu=gpu("l40s"))
    assert h200.capacity["fits"] and not l40s.capacity["fits"]
    r = cli("size", "infer", "llama-3.1-70b", "--gpu", "h200", "--quant", "int4", "--context", "8192", "--batch", "16",
            "--format", "json")
    assert r.code == 0 and r.json()["facts"]["fits"] is True
    r = cli("size", "infer", "llama-3.1-70b", "--gpu", "l40s", "--quant", "int4", "--context", "8192", "--batch", "16",
            "--format", "json")
    assert r.code == 0 and r.json()["facts"]["fits"] is False and "does NOT fit" in r.err


def test_kv_heads_replicate_beyond_tp():
    """vLLM/TRT-LLM shard KV heads over TP and replicate them when TP > n_kv: each rank keeps ≥ 1 head."""
    m = model("llama-3.1-70b")  # 8 KV heads
    assert kv_bytes_per_token(m, tp=8).value == 327_680 / 8
    assert kv_bytes_per_token(m, tp=16).value == 327_680 / 8  # still one head per GPU
    mla = model("deepseek-v3")
    assert kv_bytes_per_token(mla, tp=8).value == 70_272  # the MLA latent is replicated
    assert kv_bytes_per_token(m, kv_dtype="fp8").value == 327_680 / 2


def test_sliding_window_caps_cached_tokens():
    """Mistral-7B-v0.1 config: sliding_window 4096, so a 32K context caches 4,096 tokens per layer."""
    assert cached_tokens_per_sequence(model("mistral-7b"), 32768) == 4096
    assert cached_tokens_per_sequence(model("llama-3.1-8b"), 32768) == 32768


def test_engine_reservation_token_capacity():
    """vLLM sizes the KV pool as gpu_memory_utilization × the total PyTorch sees (nvidia-smi MiB less the
    driver's share, not 90% of a decimal 80 GB) − weights − activation peak − non-torch − CUDA graphs, then
    cuts it into blocks of 16 tokens (vLLM docs, 'gpu_memory_utilization'; vllm/v1/core/kv_cache_utils.py). On an
    H100 the driver keeps 438 MiB: nvidia-smi 81,559 MiB (vllm#55169) vs total_gpu_memory 79.22 GiB (vllm#10511)."""
    m, g = model("llama-3.1-8b"), gpu("h100-sxm")
    r = inference_memory(m, gpu=g, gpu_memory_utilization=0.9)
    budget = 0.9 * (81559 - 438) * 2**20 - float(r.weights.value) - float(r.workspace.value) - float(r.overhead.value)
    assert r.capacity["kv_tokens"] == int(budget // (131_072 * 16)) * 16
    assert r.capacity["sequences_at_context"] == r.capacity["kv_tokens"] // 4096


def test_fits_lists_every_gpu_with_min_count():
    m = model("llama-3.1-405b")
    rows = fits(m, quant="fp8", context=4096, batch=1)
    by = {r["gpu"]: r for r in rows}
    assert by["h100-sxm"]["gpus"] == 8  # 405 GB of fp8 weights need a full 8 × 80 GB node
    assert by["h200-sxm"]["gpus"] == 4
    for r in rows:
        if r["gpus"]:
            assert r["per_gpu_gb"] <= 0.9 * r["capacity_gb"]


def test_fits_names_the_real_scaleup_fabric(cli):
    """Issue 14: `size fits llama-3.1-405b --quant fp8` must not claim NVLink for PCIe cards or MI300X:
    the interconnect column comes from GpuSpec.scaleup_link/scaleup_domain/scaleup_name."""
    r = cli("size", "fits", "llama-3.1-405b", "--quant", "fp8", "--format", "json")
    assert r.code == 0
    out = r.json()
    rows = {row["gpu"]: row for row in out["facts"]["fits"]}
    assert rows["mi300x"]["interconnect"].startswith("Infinity Fabric")
    assert rows["h100-sxm"]["interconnect"].startswith("NVLink/NVSwitch") and not rows["h100-sxm"]["tp_over_pcie"]
    assert "PCIe" in rows["l40s"]["interconnect"] and rows["l40s"]["tp_over_pcie"]
    assert "PCIe between groups of 2" in rows["h100-pcie"]["interconnect"]
    assert any(w.startswith("l40s: TP8 all-reduces cross PCIe") for w in out["warnings"])
    assert not any(w.startswith(("mi300x", "h100-sxm:")) for w in out["warnings"])


def test_size_infer_json_carries_weights_and_kv(cli):
    """Issue 14: `size infer … --format json` carries weights and KV cache in facts without --explain."""
    r = cli("size", "infer", "mistral-7b", "--gpu", "l40s", "--format", "json")
    facts = r.json()["facts"]
    assert facts["weights"]["unit"] == "B" and facts["weights"]["value"] > 14e9
    assert facts["kv_cache"]["value"] == 131_072 * 4096
    assert "explain" not in r.json()


def test_size_infer_refuses_a_context_beyond_the_model(cli):
    """Llama 3.1 70B's config.json: max_position_embeddings 131072; vLLM refuses a longer max_model_len
    (vllm/config/model.py _get_and_verify_max_len). 131,072 tokens still size; a model whose config states no maximum
    (a Megatron table row such as gpt3-175b) is not checked; DeepSeek-V3's yarn rope gives 4,096 × 40 = 163,840."""
    from aiinfra.sizing.inference import max_context
    from tests.conftest import assert_one_line_error

    assert_one_line_error(cli("size", "infer", "llama-3.1-70b", "--context", "200000", "--tp", "8"),
                          "--context 200,000 tokens per sequence", "maximum context of 131,072 tokens")
    assert_one_line_error(cli("size", "infer", "llama-3.1-70b", "--context", "4096", "--tp", "8", "--engine", "vllm",
                              "--max-model-len", "140000"), "--max-model-len 140,000")
    assert cli("size", "infer", "llama-3.1-70b", "--context", "131072", "--tp", "8", "-f", "json").code == 0
    assert max_context(model("gpt3-175b")) is None
    assert max_context(model("deepseek-v3"))[0] == 163840 and max_context(model("gpt2"))[0] == 1024

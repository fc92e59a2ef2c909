"""Engine start-up KV capacity against published start-up logs (each test names its log)."""

import pytest

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.errors import AiinfraError
from aiinfra.sizing.engine import engine_memory, tokens_from_pool

GiB = 2**30


@pytest.mark.parametrize("max_model_len,blocks,fitted", [(20000, 1952, True), (29000, 1478, False)])
def test_vllm_llama31_8b_rtx3090_blocks(max_model_len, blocks, fitted):
    """vllm-project/vllm#10517 (comment by kaspersiminski): Llama-3.1-8B-Instruct on an RTX 3090, vLLM V0,
    gpu_memory_utilization 0.90, total_gpu_memory 23.58 GiB, chunked prefill off (profile over max_model_len
    tokens): "# GPU blocks: 1952" at max_model_len 20,000 and 1,478 at 29,000. The activation factor in
    engines.yaml was fitted on the 20,000 row; the 29,000 row is held out. Target: within 3%."""
    r = engine_memory(model("llama-3.1-8b"), None, engine="vllm", total_mib=23.58 * 1024, max_model_len=max_model_len,
                      max_num_batched_tokens=max_model_len, max_num_seqs=256, cuda_graphs=False,
                      scheduler="v0")
    assert r.kv_tokens / 16 == pytest.approx(blocks, rel=0.01 if fitted else 0.03)
    # and the engine's own verdict at 29,000: max_model_len above what the cache holds → it refused to start
    assert r.starts is (max_model_len == 20000)


def test_tokens_from_reported_pool_match_the_logs():
    """The pool → tokens step is exact up to block rounding:
    - LMCache/LMCache#1739: Qwen3-14B, "Available KV cache memory: 6.51 GiB" → "GPU KV cache size: 42,656 tokens";
    - vllm-project/vllm#21348: Qwen3-235B-A22B-FP8 on 4 × H100, TP4: 8.11 GiB → 178,880 tokens;
    - same issue, SGLang: "#tokens: 367404, K size: 8.23 GB, V size: 8.23 GB" (SGLang's GB are GiB)."""
    q14 = {"model_type": "qwen3", "hidden_size": 5120, "num_hidden_layers": 40, "num_attention_heads": 40,
           "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 17408, "vocab_size": 151936}
    from aiinfra.catalog.models import from_config

    m14 = from_config(q14, "qwen3-14b")
    assert tokens_from_pool(m14, 6.51 * GiB) == pytest.approx(42_656, rel=0.002)
    q = model("qwen3-235b-a22b")
    assert tokens_from_pool(q, 8.11 * GiB, tp=4) == pytest.approx(178_880, rel=0.015)
    assert tokens_from_pool(q, 2 * 8.23 * GiB, engine="sglang", tp=4) == pytest.approx(367_404, rel=0.001)


def test_sglang_qwen3_235b_fp8_h100_tp4():
    """vllm-project/vllm#21348: SGLang, Qwen3-235B-A22B-FP8, 4 × H100, --tp 4 --mem-fraction-static 0.93:
    367,404 tokens. (This row fixed engines.yaml sglang.load_overhead_*: a fit, not a prediction.)"""
    r = engine_memory(model("qwen3-235b-a22b"), gpu("h100-sxm"), engine="sglang", tp=4, quant="fp8", fraction=0.93)
    assert r.kv_tokens == pytest.approx(367_404, rel=0.03)


def test_vllm_refuses_a_max_model_len_the_pool_cannot_hold():
    """vLLM raises at start-up when one max_model_len request does not fit the KV pool (the "max seq len …
    is larger than the maximum number of tokens that can be stored in KV cache" error)."""
    m, g = model("llama-3.1-70b"), gpu("h100-sxm")
    ok = engine_memory(m, g, engine="vllm", tp=4, max_model_len=8192)
    assert ok.starts and ok.max_concurrency > 1
    no = engine_memory(m, g, engine="vllm", tp=4, max_model_len=131072, fraction=0.6)
    assert not no.starts
    # fewer sequences in the profile's sampler pass leave room: TP2 starts with --max-num-seqs 64
    assert not engine_memory(m, g, engine="vllm", tp=2, max_model_len=8192).starts
    assert engine_memory(m, g, engine="vllm", tp=2, max_model_len=8192, max_num_seqs=64).starts


def test_hybrid_models_report_concurrency_from_per_layer_windows():
    """vLLM's hybrid allocator: a gpt-oss request pins its full layers for max_model_len and its sliding layers
    for window + one step of batched tokens, so concurrency at 131,072 is about twice the all-full figure."""
    m, g = model("gpt-oss-120b"), gpu("h200-sxm")
    r = engine_memory(m, g, engine="vllm", quant="fp4", max_model_len=131072)
    per_tok = r.settings["kv_bytes_per_token"]
    all_full = float(r.kv_pool.value) / (per_tok * 131072)
    assert r.max_concurrency / all_full == pytest.approx(2.0, rel=0.08)


def test_engines_differ_and_bad_fraction():
    m, g = model("llama-3.1-8b"), gpu("h100-sxm")
    v = engine_memory(m, g, engine="vllm", max_model_len=8192)
    s = engine_memory(m, g, engine="sglang", max_model_len=8192)
    t = engine_memory(m, g, engine="tensorrt-llm", max_model_len=8192)
    assert len({v.kv_tokens, s.kv_tokens, t.kv_tokens}) == 3
    assert t.kv_tokens % 32 == 0 and v.kv_tokens % 16 == 0
    with pytest.raises(AiinfraError, match="gpu-memory-utilization must be in"):
        engine_memory(m, g, engine="vllm", fraction=1.5)
    with pytest.raises(AiinfraError):
        engine_memory(m, g, engine="nope")


def test_size_infer_engine_facts(cli):
    r = cli("size", "infer", "llama-3.1-8b", "--gpu", "h100-sxm", "--engine", "sglang", "--context", "8192",
            "--format", "json")
    assert r.code == 0
    f = r.json()["facts"]
    assert f["engine"]["engine"] == "sglang" and f["engine_kv_tokens"] > 100_000 and f["engine_starts"] is True


def test_vllm_v1_sampler_profile_and_the_held_out_moe_row():
    """vllm-project/vllm#23278: gpt-oss-120b on one H100 with vLLM 0.10.1 defaults loads 65.97 GiB of weights
    and reports "Available KV cache memory: -2.14 GiB" (it does not start): the V1 profile's sampler pass over
    1,024 sequences and the fused-MoE scratch are what a config-only budget misses (engines.yaml fits the
    sampler's size on this row).
    Held out: vllm-project/vllm#21348, Qwen3-235B-A22B-FP8 on 4 × H100 TP4 reported 178,880 tokens. With the
    fused-MoE buffers and NCCL's NVLS buffers (TP4 on an H100 NVSwitch; sizes from the NCCL log in vllm#9699)
    we land within 3% (the first pass, without them, was +31%)."""
    r = engine_memory(model("gpt-oss-120b"), gpu("h100-sxm"), engine="vllm", weights_bytes=65.9651 * GiB,
                      max_model_len=131072, cuda_graphs=False)
    assert not r.starts
    q = engine_memory(model("qwen3-235b-a22b"), gpu("h100-sxm"), engine="vllm", tp=4, quant="fp8",
                      max_model_len=40960, cuda_graphs=False)
    assert q.kv_tokens == pytest.approx(178_880, rel=0.03)


def test_nvls_buffers_only_where_nccl_uses_sharp():
    """vllm-project/vllm#9699: NCCL enables NVLink SHARP only for more than 2 GPUs on Hopper-or-later NVSwitch
    systems; its log shows nvlsPerRankSize 301,989,888 B with nHeads 8 (nvlsTotalSize 2,415,919,104 B)."""
    from aiinfra.sizing.engine import vllm_non_torch, engine_entry

    _, e = engine_entry("vllm")
    h100, a100 = gpu("h100-sxm"), gpu("a100-80gb-sxm")
    tp2 = vllm_non_torch(e, h100, 2, 1).inputs["NVLS buffers (B)"]
    tp8 = vllm_non_torch(e, h100, 8, 1).inputs["NVLS buffers (B)"]
    assert tp2 == 0 and vllm_non_torch(e, a100, 8, 1).inputs["NVLS buffers (B)"] == 0
    assert tp8 == 2 * 2_415_919_104  # two communicators per TP group, each nvlsTotalSize
    # V0-era NCCL (2.20/2.21) rounds each up to the 512 MiB multicast granularity: 2.25 → 2.5 GiB
    assert vllm_non_torch(e, h100, 8, 1, "v0").inputs["NVLS buffers (B)"] == 2 * 5 * 2**29


@pytest.mark.parametrize("tp,published", [(1, 53.29), (2, 71.29 - 7.48 - 3.58 - 1.26)])
def test_vllm_llama3_8b_h100_v0_profile(tp, published):
    """vllm-project/vllm#10511 (vLLM 0.6.5 V0, H100 80 GB, `vllm serve meta-llama/Meta-Llama-3-8B` [-tp 2]):
    71.29 GiB usable, weights 14.96 / 7.48 GiB, non-torch 1.79 / 3.58 GiB, activation peak 1.26 GiB →
    available KV 53.29 GiB at TP1 (and 58.97 GiB at TP2 from the same lines). These logs fix the V0 sampler
    copies (TP1 activation line) and the Hopper V0 non-torch figures, so the pools are a FIT check of the
    chain; the TP2 activation line (1.26 GiB again: the driver-rank sampler, not the TP-sharded forward) is
    predicted, not fitted."""
    r = engine_memory(model("llama-3.1-8b"), gpu("h100-sxm"), engine="vllm", tp=tp, max_model_len=8192,
                      max_num_batched_tokens=8192, max_num_seqs=256, cuda_graphs=False, scheduler="v0")
    assert float(r.kv_pool.value) / GiB == pytest.approx(published, rel=0.01)
    assert float(r.activation.value) / GiB == pytest.approx(1.26, rel=0.01)
    assert r.activation.inputs["sampler pass (B)"] > r.activation.inputs["forward peak (B)"]


def test_v0_profile_peak_is_the_larger_of_forward_and_sampler():
    """vllm/worker/model_runner.py (V0) frees the forward's activations before the top-k/top-p sampler runs, so the
    profile peak is max(forward, sampler), not their sum: vllm-project/vllm#10517's 20,000-token profile on an RTX
    3090 (256 sequences) is dominated by the forward (2.07 GiB measured), which the sampler (~1.26 GiB) must not add to."""
    r = engine_memory(model("llama-3.1-8b"), None, engine="vllm", total_mib=23.58 * 1024, max_model_len=20000,
                      max_num_batched_tokens=20000, max_num_seqs=256, cuda_graphs=False, scheduler="v0")
    assert r.activation.value == pytest.approx(r.activation.inputs["forward peak (B)"])
    assert r.activation.inputs["sampler pass (B)"] < r.activation.inputs["forward peak (B)"]


def test_llama_405b_h200_tp8_blocks_vllm_9699():
    """vllm-project/vllm#9699 (vLLM 0.6.3 V0, 8 × H200, `vllm serve meta-llama/Llama-3.1-405B -tp 8 --load-format
    dummy --max-num-seqs 1024 --max_num_batched_tokens 1024`): 17,595 GPU blocks with NCCL's NVLS on and 227xx with
    NCCL_NVLS_ENABLE=0 (block = 16 tokens × 64,512 B). Held out of every fit. The V0 profile samples 1,024 sequences
    with top-k/top-p on the driver rank (5.0 GiB), and the NVLS buffers of two communicators, each rounded up to
    NCCL's 512 MiB multicast granularity, take 5.0 GiB (published difference 4.90-4.99 GiB). We land at +4.7% / +3.9%
    (before these mechanisms: +52.5%); what is left is NCCL's non-NVLS buffers at TP8, known only at TP2."""
    kw = dict(engine="vllm", tp=8, max_model_len=131072, max_num_batched_tokens=1024, max_num_seqs=1024,
              cuda_graphs=False, scheduler="v0")
    on = engine_memory(model("llama-3.1-405b"), gpu("h200-sxm"), **kw)
    off = engine_memory(model("llama-3.1-405b"), gpu("h200-sxm"), nccl_nvls=False, **kw)
    assert on.kv_tokens / 16 == pytest.approx(17_595, rel=0.05)
    assert off.kv_tokens / 16 == pytest.approx(22_750, rel=0.05)
    nvls = float(on.non_torch.inputs["NVLS buffers (B)"])
    assert nvls == pytest.approx((22_750 - 17_595) * 16 * 64_512, rel=0.02)
    assert off.non_torch.inputs["NVLS buffers (B)"] == 0
    assert on.activation.inputs["sampler pass (B)"] / GiB == pytest.approx(10.3 * 1024 * 128_256 * 4 / GiB, rel=1e-6)


def test_size_infer_says_what_nvls_costs_and_what_turning_it_off_gives():
    """vllm-project/vllm#9699: on 8 × H200 NCCL's NVLink SHARP buffers cost about 5 GiB of KV per GPU (17,595 blocks
    with NVLS, 227xx with NCCL_NVLS_ENABLE=0). `size infer --engine vllm` at TP8 on an NVSwitch says how much NVLS takes
    and how many KV tokens NCCL_NVLS_ENABLE=0 would give; at TP2 (no NVLS) it says nothing."""
    from aiinfra.sizing.commands import size_infer

    r = size_infer(model("llama-3.1-70b"), gpu("h100-sxm"), tp=8, engine="vllm", context=8192)
    e = r.facts["engine"]
    assert e["nvls_buffers_gib"] == pytest.approx(2 * 288 * 8 / 1024, rel=0.01)  # V1: 2 communicators · 288 MiB · 8
    assert e["kv_tokens_with_nvls_off"] > r.facts["engine_kv_tokens"]
    gained = (e["kv_tokens_with_nvls_off"] - r.facts["engine_kv_tokens"]) * 8 * 2 * 128 * 2 * 80 / 8  # B per GPU
    assert gained / GiB == pytest.approx(e["nvls_buffers_gib"], rel=0.02)
    assert any("NCCL_NVLS_ENABLE=0" in a for a in r.assumptions)
    r2 = size_infer(model("llama-3.1-70b"), gpu("h100-sxm"), tp=2, engine="vllm", context=8192)
    assert "nvls_buffers_gib" not in r2.facts["engine"]
@pytest.mark.parametrize("engine,fields,where", [
    ("vllm", "{block_size: -16}", "block_size"),
    ("vllm", "{driver_reserved_mib: lots}", "driver_reserved_mib"),
    ("vllm", "{driver_reserved_mib_by_gpu: 5}", "driver_reserved_mib_by_gpu"),
    ("sglang", "{load_overhead_bytes: -1}", "load_overhead_bytes"),
])
def test_a_malformed_engine_entry_is_refused(cli, tmp_path, engine: str, fields: str, where: str):
    """An engine given through --catalog with a negative block size or a textual driver reserve used to size a KV
    pool from it (or crash, for a number where a map of GPUs belongs); each is refused in one line naming the field."""
    from tests.conftest import assert_one_line_error

    mine = tmp_path / "engine.yaml"
    mine.write_text(f"engines:\n  {engine}: {fields}\n")
    assert_one_line_error(cli("--catalog", str(mine), "size", "infer", "llama-3.1-8b", "--gpu", "h100-sxm",
                              "--engine", engine, "--format", "json"), f"engine '{engine}'", where)

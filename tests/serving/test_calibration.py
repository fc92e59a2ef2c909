"""Per-engine, per-GPU efficiencies against the engines' own published benchmarks.

Rows: catalog/data/engine_benchmarks.yaml — TensorRT-LLM docs/source/performance.md (static-batch tables for
v0.6.1 and v0.5, 2023-12): H100 FP8, A100 FP16 and L40S FP8, Llama 2 7B and 70B. The efficiencies in
engines.yaml were fitted on the `split: fit` rows only; the `held-out` rows and a second source
(LLM-Viewer issue #4, TRT-LLM A100 TTFT) are predictions.
"""

import math
import statistics

import pytest

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.loader import default_catalog
from aiinfra.catalog.models import model
from aiinfra.perf.inference import inference_perf
from aiinfra.serving.calibration import benchmark_rows, fit, predict, roofline


def _err(r, eff=None):
    return predict(r, eff) / r.value - 1


def test_every_row_names_its_source_and_split():
    rows = benchmark_rows()
    assert len(rows) >= 20
    for r in rows:
        assert r.source and r.split in ("fit", "held-out") and r.value > 0
    assert {r.gpu for r in rows if r.split == "held-out"} == {"h100-sxm", "a100-80gb-sxm", "l40s"}


@pytest.mark.parametrize("engine,g", [("tensorrt-llm", "h100-sxm"), ("tensorrt-llm", "a100-80gb-sxm"),
                                      ("tensorrt-llm", "l40s"), ("vllm", "a100-80gb-sxm")])
def test_stored_efficiencies_are_the_fit(engine, g):
    """Re-running the fit on the fit rows gives the stored constants (the loss is no better than theirs)."""
    stored = default_catalog().entry("engines", engine)[1]["efficiency"][g]
    fresh, rows = fit(engine, g)

    def loss(eff):
        return sum(math.log(predict(r, eff) / r.value) ** 2 for r in rows)

    assert loss(stored) <= loss(fresh) * 1.02 + 1e-4
    assert stored["decode_bw_fraction"] == pytest.approx(fresh["decode_bw_fraction"], rel=0.05)
    if engine == "tensorrt-llm":  # vLLM's batch-1 rows pin the GEMM scale only loosely
        assert stored["gemm_scale"] == pytest.approx(fresh["gemm_scale"], rel=0.05)


def test_vllm_qwen25_speed_benchmark_held_out_72b():
    """QwenLM/Qwen2.5 docs/source/benchmark/speed_benchmark.rst (vLLM 0.6.3, A100 80GB, batch 1, 2,048 generated
    tokens, CUDA graphs): Qwen2.5-72B-Instruct BF16 on 4 GPUs runs 31.37 / 29.90 / 30.10 / 27.53 tok/s after
    1 / 6,144 / 14,336 / 30,720 prompt tokens. vLLM's A100 efficiencies are fitted on the 7B rows of that page only;
    the 72B TP4 rows are held out and land within 5% (the uncalibrated roofline is 46-54% high)."""
    rows = [r for r in benchmark_rows("vllm") if r.model == "qwen2.5-72b" and r.engine_version == "0.6.3"]
    assert len(rows) == 4 and all(r.split == "held-out" and r.tp == 4 for r in rows)
    for r in rows:
        assert abs(_err(r)) < 0.05, r.key
        assert roofline(r) / r.value - 1 > 0.4


def test_fit_rows_and_held_out_rows():
    """Fit rows within 20% each but the 128/128 rows at batch 768 (H100, +30%) and 384 (A100, +21%): since prefill
    runs on kernel-level efficiencies, one GEMM scale per GPU cannot make those steps' 50-100k-token prefills of
    128-token prompts as slow as the batch-1 TTFT rows allow (+18% and +10% before); TensorRT-LLM's 14 held-out rows 11% on average (12% before prefill took the kernel-level efficiencies;
    the 10 held out before the A100 70B throughput rows were added: 21.7% before the pre-XQA GQA decode was
    modelled, 10.7% after); A100 70B TTFT and L40S held-out rows within 10%."""
    rows = benchmark_rows("tensorrt-llm")
    fit_errs = {r.key: abs(_err(r)) for r in rows if r.split == "fit"}
    held = {r.key: _err(r) for r in rows if r.split == "held-out"}
    assert fit_errs.pop("trtllm-h100-llama2-7b-128-128") < 0.31
    assert fit_errs.pop("trtllm-a100-llama2-7b-128-128") < 0.22
    assert max(fit_errs.values()) < 0.20
    assert statistics.mean(abs(e) for e in held.values()) < 0.12
    assert {r.engine for r in benchmark_rows() if r.split == "held-out"} == {"tensorrt-llm", "vllm"}
    for k in ("trtllm-a100-llama2-70b-ttft-128", "trtllm-a100-llama2-70b-ttft-2048",
              "trtllm-l40s-llama2-7b-128-2048", "trtllm-l40s-llama2-7b-2048-128"):
        assert abs(held[k]) < 0.10, k
    # the fitted engine beats the pure roofline on every held-out row
    for r in rows:
        if r.split == "held-out":
            assert abs(_err(r)) <= abs(roofline(r) / r.value - 1), r.key


def test_held_out_source_llm_viewer():
    """LLM-Viewer issue #4 (TRT-LLM, A100, LLaMA-7B, batch 1): TTFT 16.1 ms at 128 prompt tokens and 120.5 ms
    at 2,048 — a source the engine fit never saw; within 15%."""
    m, a100 = model("llama-2-7b"), gpu("a100-80gb-sxm")
    for prompt, ms in ((128, 16.1), (2048, 120.5)):
        r = inference_perf(m, a100, prompt=prompt, output=128, batch=1, quant="fp16", engine="tensorrt-llm")
        assert r.term("TTFT").value * 1e3 == pytest.approx(ms, rel=0.15)


def test_engine_without_fitted_efficiency_keeps_the_generic_calibration():
    m, g = model("llama-2-7b"), gpu("h100-sxm")
    a = inference_perf(m, g, prompt=512, output=128, batch=8, engine="vllm")
    b = inference_perf(m, g, prompt=512, output=128, batch=8)
    assert a.term("TPOT").value == b.term("TPOT").value


def test_pre_xqa_gqa_decode_rereads_the_kv_cache_per_query_head():
    """NVIDIA/TensorRT-LLM docs/source/blogs/XQA-kernel.md: the XQA generation kernel for MQA/GQA ("reducing data
    loading and conversion") came with v0.8, lifting Llama-70B 128/2048 on one H200 from 1,227 to 2,941 tok/s/GPU.
    The v0.6.1 tables ran the older kernel, which loads each KV head's cache once per query head (8x for
    Llama-2-70B). With that, the two H100 FP8 Llama-2-70B long-decode rows (TP4 batch 480 128/2048: 1,486
    tok/s/GPU; TP2 batch 64 2048/2048: 547), both held out, land within 20% (they were +73% and +88%); MHA models
    (Llama-2-7B, the fit rows) and releases from v0.8 read the cache once."""
    from aiinfra.perf.inference import gqa_kv_rereads

    m70, m7 = model("llama-2-70b"), model("llama-2-7b")
    assert gqa_kv_rereads(m70, "tensorrt-llm", "0.6.1")[0] == 8
    assert gqa_kv_rereads(m70, "tensorrt-llm", "0.8.0")[0] == 1
    assert gqa_kv_rereads(m70, "tensorrt-llm", None)[0] == 1
    assert gqa_kv_rereads(m7, "tensorrt-llm", "0.6.1")[0] == 1
    rows = {r.key: r for r in benchmark_rows("tensorrt-llm")}
    for k in ("trtllm-h100-llama2-70b-128-2048", "trtllm-h100-llama2-70b-2048-2048"):
        assert rows[k].split == "held-out"
        assert abs(_err(rows[k])) < 0.20, k
    # a current release (XQA) on the same row is faster than the v0.6.1 kernel by the re-read KV traffic
    r = rows["trtllm-h100-llama2-70b-2048-2048"]
    kw = dict(prompt=r.isl, output=r.osl, batch=r.batch, tp=r.tp, quant="fp8", kv_dtype="fp8",
              gpu_memory_utilization=0.95, engine="tensorrt-llm")
    old = inference_perf(m70, gpu("h100-sxm"), engine_version="0.6.1", **kw).term("output tokens/s per GPU").value
    new = inference_perf(m70, gpu("h100-sxm"), engine_version="0.8.0", **kw).term("output tokens/s per GPU").value
    assert 1.5 < new / old < 2.6


def test_vllm_second_source_qwen2_speed_benchmark_held_out():
    """QwenLM/Qwen2 docs/source/benchmark/speed_benchmark.rst (vLLM 0.4.2, A100 80GB, batch 1, 2,048 generated
    tokens): Qwen2-7B-Instruct 80.45 / 76.41 tok/s and Qwen2-72B-Instruct TP4 30.01 / 27.98 tok/s after 1 / 6,144
    prompt tokens — a source no fit saw; within 11%. After 14k-31k prompt tokens that release ran 16-42% below our
    figure (its own PagedAttention decode kernel, vllm-project/vllm#2744; not modelled), which this test records so
    that a model change that closes or widens the gap is noticed."""
    rows = {(r.model, r.isl): r for r in benchmark_rows("vllm") if r.engine_version == "0.4.2"}
    assert len(rows) == 8 and all(r.split == "held-out" for r in rows.values())
    for m in ("qwen2.5-7b", "qwen2.5-72b"):
        for isl in (1, 6144):
            assert abs(_err(rows[(m, isl)])) < 0.11, (m, isl)
        assert 0.15 < _err(rows[(m, 30720)]) < 0.45


@pytest.mark.parametrize("fields, needle", [
    ("0.7", "field 'efficiency.h100-sxm' must be a map"),
    ("{decode_bw_fraction: 7, gemm_scale: 1.0}", "decode_bw_fraction"),
    ("{decode_bw_fraction: 0.8, gemm_scale: -1}", "gemm_scale"),
    ("{decode_bw_fraction: 0.8, gemm_scale: 1.0, prefill_layer_overhead_us: x}", "prefill_layer_overhead_us"),
    ("{decode_bw_fraction: 0.8, gemm_scale: 1.0, decode_overhead_us: 3}", "decode_overhead_us"),
    ("{gemm_scale: 1.0}", "decode_bw_fraction"),
])
def test_a_malformed_engine_efficiency_is_refused(cli, tmp_path, fields: str, needle: str):
    """An engine efficiency given through --catalog used to crash both commands with a traceback (a number where the
    per-GPU map belongs, a textual overhead), to be used out of range (7x the HBM bandwidth), or to be dropped without
    a word (a misspelt overhead). Each is now refused in one line naming the field, by infer and serve-plan alike."""
    from tests.conftest import assert_one_line_error

    mine = tmp_path / "engine.yaml"
    mine.write_text(f"engines:\n  vllm:\n    efficiency:\n      h100-sxm: {fields}\n")
    assert_one_line_error(cli("--catalog", str(mine), "infer", "llama-3.1-8b", "--gpu", "h100-sxm", "--engine", "vllm",
                              "--prompt", "1000", "--output", "100", "--batch", "8"), "engine 'vllm'", needle)
    assert_one_line_error(cli("--catalog", str(mine), "serve-plan", "llama-3.1-8b", "--gpu", "h100-sxm=2.5",
                              "--rate", "5", "--engine", "vllm", "--format", "json"), "engine 'vllm'", needle)


def test_a_user_engine_efficiency_is_used(cli, tmp_path):
    """A well-formed efficiency for a GPU the catalog has no fit for is read, and infer says it used it."""
    mine = tmp_path / "engine.yaml"
    mine.write_text("engines:\n  vllm:\n    efficiency:\n      h100-sxm: {decode_bw_fraction: 0.8, gemm_scale: 1.0, "
                    "decode_layer_overhead_us: 3, fitted_on: my own runs}\n")
    r = cli("--catalog", str(mine), "infer", "llama-3.1-8b", "--gpu", "h100-sxm", "--engine", "vllm", "--prompt", "1000",
            "--output", "100", "--batch", "8", "--explain", "full")
    assert r.code == 0, r.err
    assert "my own runs" in r.out

"""serve-plan's step times are `aiinfra infer`'s: one decode-step function (perf.inference.decode_parts) serves both,
so the search cannot rank a layout differently from what infer says it runs at."""

import pytest

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.perf.inference import inference_perf
from aiinfra.serving.commands import serve_plan
from aiinfra.serving.search import build_configs, decode_step
from aiinfra.serving.workload import Lengths, Targets, Workload


def _configs(name: str, g: str, prompt: int, output: int, quants: list[str]):
    m = model(name)
    w = Workload(1.0, Lengths(prompt), Lengths(output))
    return m, build_configs(m, {g: (gpu(g), 2.5)}, w, quants=quants)


@pytest.mark.parametrize("name,g,quants,batches", [
    ("llama-3.1-70b", "h100-sxm", ["fp8", "bf16"], (1, 8, 64)),
    ("llama-3.1-8b", "h100-sxm", ["bf16", "fp8"], (1, 32, 128)),
    ("llama-3.1-8b", "l40s", ["bf16", "fp8"], (1, 16)),
    ("qwen3-30b-a3b", "h100-sxm", ["bf16"], (1, 16)),
])
def test_serve_plan_decode_step_is_infers_tpot(name, g, quants, batches):
    """For every TP-only layout the search builds, its decode step at n sequences equals `aiinfra infer`'s TPOT at
    batch n for the same model, GPU, TP, weights and mean context (bf16 KV, the search's). Before, the search charged
    each all-reduce the ring's 2(tp − 1) α while infer takes the faster of ring and tree (perf.comm.all_reduce), and
    sized its decode GEMM efficiency at batch 64: Llama 3.1 70B FP8 on H100 at batch 1 ran 13.94 ms at TP4 (infer
    12.34) and 15.78 ms at TP8 (infer 9.38), so TP8 looked slower than TP4."""
    prompt, output = 2048, 256
    m, cfgs = _configs(name, g, prompt, output, quants)
    checked = 0
    for c in cfgs:
        if c.pp > 1 or c.ep:
            continue
        for n in batches:
            r = inference_perf(m, gpu(g), prompt=prompt, output=output, batch=n, tp=c.tp, quant=c.quant)
            if r.facts["batch_served"] < n:
                continue
            assert float(decode_step(c.dec, n)) == pytest.approx(r.term("TPOT").value, rel=1e-9), (c.quant, c.tp, n)
            checked += 1
    assert checked >= 4


def test_tp8_decodes_faster_than_tp4_in_serve_plan():
    """The audit's case: Llama 3.1 70B FP8 on H100 at batch 1, infer 12.34 ms at TP4 and 9.38 ms at TP8. serve-plan
    ranks the same; with a 12 ms TPOT target at 0.2 req/s (aggregated) it used to find nothing and now finds TP8."""
    m, cfgs = _configs("llama-3.1-70b", "h100-sxm", 2048, 256, ["fp8"])
    step = {c.tp: float(decode_step(c.dec, 1)) for c in cfgs if c.pp == 1 and not c.ep}
    assert step[8] < step[4] < step[2]
    assert step[4] * 1e3 == pytest.approx(12.34, abs=0.01) and step[8] * 1e3 == pytest.approx(9.38, abs=0.01)
    r = serve_plan(m, Workload(0.2, Lengths(2048), Lengths(256)), Targets(1.0, 0.012, "p99"),
                   {"h100-sxm": (gpu("h100-sxm"), 2.5)}, disaggregated=False)
    assert r.facts["feasible"], r.warnings
    assert r.facts["winner"]["tp"] == 8 and r.facts["winner"]["tpot_ms"] <= 12


def test_the_first_output_token_comes_with_the_prefill():
    """vLLM benchmarks/benchmark_serving.py defines TPOT as (latency − TTFT) / (output − 1): the prefill step emits
    the first output token. infer's request latency is TTFT + (output − 1) · TPOT (it was TTFT + output · TPOT), so
    one output token takes exactly the TTFT."""
    m, g = model("llama-3.1-8b"), gpu("h100-sxm")
    one = inference_perf(m, g, prompt=512, output=1, batch=4)
    assert one.term("request latency").value == pytest.approx(one.term("TTFT").value, rel=1e-12)
    r = inference_perf(m, g, prompt=512, output=128, batch=4)
    ttft, tpot = r.term("TTFT").value, r.term("TPOT").value
    assert r.term("request latency").value == pytest.approx(ttft + 127 * tpot, rel=1e-12)
    assert r.term("output tokens/s per GPU").value == pytest.approx(4 * 128 / (ttft + 127 * tpot), rel=1e-12)


def test_serve_plan_holds_a_slot_for_output_minus_one_decode_steps():
    """serve-plan's queue the same way (and as its discrete-event simulation already ran it): aggregated, a request
    holds its slot for its prefill and output − 1 decode steps, so Little's law gives a decode concurrency of
    λ · (output − 1) · step / (1 − prefill load); with 11 output tokens that is 10 steps a request, not 11."""
    import numpy as np

    from aiinfra.serving.search import evaluate

    m = model("llama-3.1-8b")
    w = Workload(2.0, Lengths(1000), Lengths(11))
    cfgs = build_configs(m, {"h100-sxm": (gpu("h100-sxm"), 2.5)}, w, quants=["bf16"], tps=(1,))
    g = evaluate(m, w, Targets(10, 10, "p50"), cfgs, batches=(64,), max_replicas=1, disaggregated=False)
    n = float(g.cols["concurrency"][0])
    step = float(decode_step(cfgs[0].dec, n))
    rho = 2.0 * cfgs[0].pf_mean
    assert n == pytest.approx(2.0 * 10 * step / (1 - rho), rel=1e-3)
    assert np.isfinite(g.cols["tpot"][0])

"""`aiinfra plan` and `aiinfra infer` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import aiinfra
from aiinfra.plan.inputs import batch_sequences, parse_gpu_counts, parse_size
from aiinfra.errors import AiinfraError
from tests.conftest import assert_one_line_error


def test_plan_table_json_and_explain(cli):
    r = cli("plan", "llama-3.1-405b", "--gpu", "h100-sxm", "--gpus", "16384", "--seq", "8192",
            "--global-batch-tokens", "16M", "--tokens", "15T")
    assert r.code == 0, r.err
    assert "TP8·PP" in r.out and "runner-up" in r.out
    j = cli("plan", "llama-3.1-405b", "--gpus", "16384", "--global-batch-tokens", "16M", "--tokens", "15T",
            "--price", "2.5", "--format", "json", "--explain").json()
    assert j["facts"]["global_batch"].endswith("2048 sequences of 8192")
    assert j["facts"]["layouts"][0]["tp"] >= 4 and j["facts"]["layouts"][0]["pp"] > 1
    assert j["explain"][0]["name"] == "step time" and j["explain"][0]["parts"]
    assert any(t["name"] == "cost" for t in j["explain"])
    e = cli("plan", "llama-3.1-8b", "--gpus", "8", "--global-batch", "64", "--explain")
    assert e.code == 0 and "pipeline bubble" in e.out and "source" in e.out


def test_plan_table_says_what_a_layout_offloads(cli):
    """A layout that offloads shows it in the table (ZeRO column '1+opt', ZeRO-Offload's naming, and a caption that
    spells it out), not only in the JSON; tables without offload keep the plain stage."""
    r = cli("plan", "llama-3.1-8b", "--gpus", "8", "--global-batch", "64", "--layout",
            "tp=1,pp=1,zero=1,offload=optimizer")
    assert r.code == 0, r.err
    mine = next(line for line in r.out.splitlines() if "(yours)" in line)
    assert "1+opt" in mine and "offloaded to host memory" in r.out
    j = cli("plan", "llama-3.1-8b", "--gpus", "8", "--global-batch", "64", "--layout",
            "tp=1,pp=1,zero=1,offload=optimizer", "--format", "json").json()
    assert j["facts"]["your_layout"]["offload"] == "optimizer"
    plain = cli("plan", "llama-3.1-8b", "--gpus", "8", "--global-batch", "64", "--offload", "none")
    assert plain.code == 0 and "+opt" not in plain.out and "offloaded" not in plain.out
    rec = cli("plan", "llama-3.1-8b", "--recommend", "--gpus", "8", "--global-batch", "64", "--offload", "optimizer")
    assert rec.code == 0 and "DP8+opt" in rec.out and "offloaded to host memory" in rec.out
    rows = cli("plan", "llama-3.1-8b", "--recommend", "--gpus", "8", "--global-batch", "64", "--offload", "optimizer",
               "--format", "json").json()["facts"]["ranking"]
    assert all(r["offload"] == "optimizer" and {"mb", "vp", "recompute", "zero"} <= set(r) for r in rows if r["fits"])


def test_plan_fp4_on_a_gpu_with_fp4_tensor_cores(cli):
    """`plan --dtype fp4` (NVFP4 linears) plans on Blackwell: its memory counts NVFP4 weight copies and saved inputs
    rather than refusing the precision, and the best layout's linears run at the FP4 rate."""
    j = cli("plan", "llama-3.1-70b", "--gpu", "gb300", "--gpus", "64", "--seq", "8192", "--global-batch", "256",
            "--dtype", "fp4", "--format", "json").json()
    fp8 = cli("plan", "llama-3.1-70b", "--gpu", "gb300", "--gpus", "64", "--seq", "8192", "--global-batch", "256",
              "--dtype", "fp8", "--format", "json").json()
    best, best8 = j["facts"]["layouts"][0], fp8["facts"]["layouts"][0]
    assert best["fits"] and best["step_s"] < best8["step_s"]


def test_plan_recommend_and_infer(cli):
    r = cli("plan", "llama-3.1-8b", "--recommend", "--gpus", "64", "--tokens", "1T", "--price", "h100-sxm=2.5")
    assert r.code == 0, r.err
    assert "h100-sxm" in r.out and "fastest" in r.out
    i = cli("infer", "llama-3.1-8b", "--gpu", "l40s", "--prompt", "2048", "--output", "256", "--batch", "32",
            "--format", "json")
    assert i.code == 0, i.err
    doc = i.json()
    assert doc["facts"]["batch_served"] == 32 and "1.4-1.9x" in doc["facts"]["calibration"]
    # At these prices H100's 3.9x bandwidth wins per token; at $0.40/h the L40S (a PCIe card) is the better buy.
    dear = cli("infer", "llama-3.1-8b", "--recommend", "--batch", "32", "--price", "l40s=0.9", "--price", "h100-sxm=2.5")
    assert dear.code == 0 and "best by cost per 1M tokens: h100-sxm" in dear.out
    cheap = cli("infer", "llama-3.1-8b", "--recommend", "--batch", "32", "--price", "l40s=0.4", "--price", "h100-sxm=2.5")
    assert cheap.code == 0 and "PCIe inference cards are the better buy" in cheap.out


@pytest.mark.parametrize("argv,fragment", [
    (("plan", "llama-3.1-405b", "--gpus", "8", "--global-batch", "64", "--seq", "4096", "--offload", "none"),
     "needs at least"),
    (("plan", "llama-3.1-8b", "--offload", "disk"), "--offload 'disk'"),
    (("plan", "llama-3.1-8b", "--gpus", "1001"), "cannot be split"),
    (("plan", "llama-3.1-8b", "--gpus", "64", "--global-batch", "0"), "global batch must be between 1 and"),
    (("plan", "llama-3.1-8b", "--gpus", "64", "--tokens", "-5T"), "--tokens"),
    (("plan", "llama-3.1-8b", "--gpus", "64", "--tokens", "0"), "must be positive"),
    (("plan", "llama-3.1-8b", "--gpu", "h10"), "closest"),
    (("infer", "llama-3.1-8b", "--batch", "0"), "batch must be positive"),
    (("infer", "llama-3.1-70b", "--gpu", "l40s"), "does not fit"),
    (("plan", "llama-3.1-8b", "--gpu", "h100-sxm", "--gpus", "8", "--dtype", "fp4"), "has no dense fp4 throughput"),
    # what Megatron's TransformerConfig refuses with --overlap-moe-expert-parallel-comm (at d98e8a6)
    (("plan", "llama-3.1-8b", "--gpus", "8", "--ep-overlap"), "llama-3.1-8b is dense"),
    (("plan", "qwen3-30b-a3b", "--gpus", "16", "--ep-overlap", "--recompute", "full"), "no full recompute"),
    (("plan", "qwen3-30b-a3b", "--gpus", "16", "--ep-overlap", "--recompute-modules", "moe"), "drop moe"),
    (("plan", "qwen3-30b-a3b", "--gpus", "16", "--ep-overlap", "--layout", "pp=2,vp=1,ep=8"), "needs the interleaved"),
    (("plan", "qwen3-30b-a3b", "--gpus", "16", "--ep-overlap", "--layout", "ep=1"), "needs expert parallelism"),
    (("plan", "qwen3-30b-a3b", "--gpus", "16", "--ep-overlap", "--layout", "ep=8,recompute=full"), "no full recompute"),
    # what Megatron refuses with per-layer CUDA graphs (TransformerConfig.__post_init__ at d98e8a6)
    (("plan", "qwen3-30b-a3b", "--gpus", "8", "--cuda-graph-scope", "attention"), "is not one of"),
    (("plan", "qwen3-30b-a3b", "--gpus", "8", "--cuda-graph-scope", "moe_preprocess"), "needs moe_router"),
    (("plan", "qwen3-30b-a3b", "--gpus", "8", "--cuda-graph-scope", "moe"), "dropless"),
    (("plan", "llama-3.1-8b", "--gpus", "8", "--cuda-graph-scope", "moe_router"), "need a MoE model"),
    (("plan", "llama-3.1-8b", "--gpus", "8", "--recommend", "--cuda-graph-scope", "moe_router"), "need a MoE model"),
    (("plan", "qwen3-30b-a3b", "--gpus", "8", "--cuda-graph-scope", "attn", "--software", "torchtitan"),
     "no such option"),
    (("plan", "qwen3-30b-a3b", "--gpus", "8", "--cuda-graph-scope", "attn", "--recompute", "full"), "no full recompute"),
    (("plan", "qwen3-30b-a3b", "--gpus", "8", "--cuda-graph-scope", "attn", "--layout", "ep=8,recompute=full"),
     "no full recompute"),
    (("plan", "qwen3-30b-a3b", "--gpus", "8", "--cuda-graph-scope", "attn", "--offload", "activations"),
     "no activation offload"),
    (("plan", "qwen3-30b-a3b", "--gpus", "8", "--cuda-graph-scope", "moe_router", "--recompute-modules", "moe"),
     "recompute module moe"),
    # what Megatron refuses with --fp8-param-gather (arguments.py at d98e8a6: distributed optimizer or FSDP only;
    # optimizer CPU offload only under delayed scaling)
    (("plan", "llama-3.1-8b", "--gpus", "8", "--quantized-params"), "--dtype is bf16"),
    (("plan", "llama-3.1-8b", "--gpus", "8", "--dtype", "fp8", "--quantized-params", "--zero", "0"), "add 1, 2 or 3"),
    (("plan", "llama-3.1-8b", "--gpus", "8", "--dtype", "fp8", "--quantized-params", "--offload", "optimizer"),
     "no optimizer offload"),
    (("plan", "llama-3.1-8b", "--gpus", "8", "--dtype", "fp8", "--quantized-params", "--layout", "dp=8,zero=0"),
     "zero=0 is plain DDP"),
    (("size", "train", "llama-3.1-8b", "--precision", "fp8", "--quantized-params"), "--zero 1, 2 or 3"),
    (("size", "train", "llama-3.1-8b", "--quantized-params", "--zero", "1"), "--precision is bf16"),
])
def test_bad_input_one_line_exit_2(cli, argv, fragment):
    assert_one_line_error(cli(*argv), fragment)


def test_size_parsing():
    assert parse_size("16M", "x") == 16e6 and parse_size("15T", "x") == 15e12 and parse_size("2Mi", "x") == 2 * 2**20
    assert batch_sequences("16M", None, 8192) == (2048, "16,777,216 tokens = 2048 sequences of 8192")
    assert batch_sequences("1048576", None, 4096)[0] == 256
    assert parse_gpu_counts("512-528") == [512, 520, 528] and parse_gpu_counts("8,16") == [8, 16]
    assert parse_gpu_counts("512-2048:512") == [512, 1024, 1536, 2048]
    with pytest.raises(AiinfraError, match="give a step"):  # no silent power-of-two coercion
        parse_gpu_counts("8-65536")
    for bad in ("abc", "-3", "0"):
        with pytest.raises(AiinfraError):
            parse_size(bad, "x")


def test_console_script_subprocess():
    """The installed entry point path: python -m aiinfra plan … exits 0 and prints the table."""
    env = dict(os.environ, PYTHONPATH=str(Path(aiinfra.__file__).resolve().parents[1]))
    p = subprocess.run([sys.executable, "-m", "aiinfra", "plan", "llama-3.1-8b", "--gpus", "8", "--global-batch", "64"],
                       capture_output=True, text=True, env=env, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert "TP1·PP1·DP8" in p.stdout


def test_memory_reserve_takes_byte_units_and_moves_the_total_by_exactly_the_change(cli):
    """`--memory-reserve` is the fixed runtime reserve per GPU (CUDA context, NCCL buffers): written as a memory size
    (2GiB = 2·2^30 B, 2GB = 2e9 B, GB and GiB kept apart), it moves a fixed layout's memory per GPU by exactly the
    difference, and a size that is not one is refused in one line."""
    from aiinfra.plan.inputs import parse_bytes

    assert parse_bytes("2GiB", "x") == 2 * 2**30 and parse_bytes("2GB", "x") == 2e9
    assert parse_bytes("512MiB", "x") == 512 * 2**20 and parse_bytes("2G", "x") == 2e9 == parse_bytes("2e9", "x")
    assert parse_bytes("4096B", "x") == 4096  # bytes, not parse_size's "B" = billions

    def total(reserve):
        j = cli("plan", "llama-3.1-8b", "--gpus", "8", "--global-batch", "64", "--layout",
                "tp=1,pp=1,mb=1,zero=1,recompute=full,offload=none", "--memory-reserve", reserve, "--format", "json").json()
        return j["facts"]["your_layout"]["memory_gb"]

    assert total("8GiB") - total("2GiB") == pytest.approx(6 * 2**30 / 1e9, abs=1e-6)
    assert total("3GB") - total("2GB") == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(AiinfraError, match="too large to be a number"):
        parse_size("1e400", "--tokens")  # a float that overflows is refused, never read as infinity
    for bad, msg in (("lots", "is not a size like 2GiB"), ("0GiB", "must be positive"), ("1e999", "is not a size")):
        r = cli("plan", "llama-3.1-8b", "--gpus", "8", "--memory-reserve", bad)
        assert_one_line_error(r, msg)


def test_cuda_graph_scope_takes_the_graphed_modules_off_a_host_bound_moe_layer(cli):
    """Qwen3-30B-A3B at MBS 1 on 8 B200 is host-bound (stacks.yaml moe_host): graphing attention as well as the
    router (Megatron-Bridge 26.04.01's B200 recipe) leaves the host two of the layer's four linear modules, so the
    same layout runs faster; the answer says which scopes it assumed, and the search left full recompute out."""
    base = ("plan", "qwen3-30b-a3b", "--gpu", "b200", "--gpus", "8", "--seq", "4096", "--global-batch", "512",
            "--moe-dispatcher", "hybridep", "--layout", "tp=1,pp=1,ep=8,mb=1,recompute=none", "--format", "json")
    eager, graphed = cli(*base), cli(*base, "--cuda-graph-scope", "attn,moe_router,moe_preprocess")
    assert eager.code == 0 and graphed.code == 0, (eager.err, graphed.err)
    e, g = eager.json(), graphed.json()
    assert e["facts"]["your_layout"]["step_s"] > g["facts"]["your_layout"]["step_s"]
    assert any("eager MoE layers" in a for a in e["assumptions"])
    assert any("CUDA graphs of attn, moe_preprocess, moe_router" in a for a in g["assumptions"])
    assert all(x["recompute"] != "full" for x in g["facts"]["layouts"])


def test_quantized_params_search_keeps_what_megatron_allows(cli):
    """Megatron-LM arguments.py (d98e8a6): --fp8-param-gather runs only with the distributed optimizer or FSDP, and its
    optimizer CPU offload only under delayed scaling. With --quantized-params every ranked layout is ZeRO 1-3 with no
    optimizer offload, and the answer says what it assumed."""
    r = cli("plan", "llama-3.1-70b", "--gpus", "64", "--dtype", "fp8", "--quantized-params", "--top", "20",
            "--format", "json")
    assert r.code == 0, r.err
    doc = r.json()
    rows = doc["facts"]["layouts"]
    assert rows and all(x["zero"] >= 1 and "optimizer" not in x["offload"] for x in rows)
    assert any("--quantized-params" in a for a in doc["assumptions"])


@pytest.mark.parametrize("args,fragment", [
    (("--global-batch", "64", "--global-batch-tokens", "16M"), "--global-batch (sequences) or --global-batch-tokens"),
    (("--catalog-prices",), "add --recommend"),
    (("--moe-sync-free",), "llama-3.1-8b is dense"),
    (("--moe-sync-free", "--recommend"), "llama-3.1-8b is dense"),
    (("--layout", "zero=0,offload=optimizer"), "ZeRO-1, 2 or 3; ZeRO-0"),
    (("--layout", "offload=optimizer", "--software", "llm-foundry"), "runs no optimizer offload"),
])
def test_options_that_would_be_ignored_are_refused(cli, args, fragment):
    """Each of these was accepted and changed nothing, or was dropped for the other: --global-batch-tokens beside
    --global-batch, --catalog-prices without --recommend, --moe-sync-free on a dense model (as --ep-overlap is
    refused), an optimizer offload the stack does not run (stacks.yaml optimizer_offload). One line, exit 2."""
    assert_one_line_error(cli("plan", "llama-3.1-8b", "--gpus", "8", *args), fragment)

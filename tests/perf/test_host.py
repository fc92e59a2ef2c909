"""The host's work per Megatron-core MoE layer, counted in linear modules, and per-layer CUDA graphs (perf.host)."""

import pytest

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.errors import SpecError
from aiinfra.perf.host import (CUDA_GRAPH_SCOPES, check_cuda_graph_scope, layer_modules, parse_cuda_graph_scope,
                               recomputed_modules)
from aiinfra.perf.stacks import stack
from aiinfra.perf.training import step_time


def test_scopes_parse_as_megatron_names_them_and_refuse_what_it_refuses():
    """Megatron-LM TransformerConfig.cuda_graph_modules at d98e8a6 takes attn, mlp, moe, moe_router, moe_preprocess
    (mamba too, for Mamba layers, which no catalog model has), and __post_init__ refuses moe with moe_router,
    moe_preprocess without moe_router, MoE scopes on a dense model, mlp where every layer is MoE, the whole-layer moe
    scope without token drop, and recompute of the moe module under the moe_router graph."""
    assert parse_cuda_graph_scope("moe_router, attn,moe_preprocess") == ("attn", "moe_preprocess", "moe_router")
    assert parse_cuda_graph_scope(None) == parse_cuda_graph_scope("") == ()
    assert set(CUDA_GRAPH_SCOPES) == {"attn", "mlp", "moe", "moe_router", "moe_preprocess"}
    for bad, msg in (("attention", "not one of"), ("attn,attn", "twice")):
        with pytest.raises(SpecError, match=msg):
            parse_cuda_graph_scope(bad)
    q, dense, ds = model("qwen3-30b-a3b"), model("llama-3.1-8b"), model("deepseek-v3")
    check_cuda_graph_scope(q, ("attn", "moe_preprocess", "moe_router"))
    check_cuda_graph_scope(dense, ("attn", "mlp"))
    check_cuda_graph_scope(ds, ("mlp", "moe_router"))  # DeepSeek-V3's first three layers are dense
    for m, scope, mods, msg in ((q, ("moe", "moe_router"), (), "exclude"), (q, ("moe_preprocess",), (), "needs"),
                                (dense, ("moe_router",), (), "MoE model"), (q, ("mlp",), (), "every layer"),
                                (q, ("moe",), (), "dropless"), (q, ("moe_router",), ("moe",), "recompute module")):
        with pytest.raises(SpecError, match=msg):
            check_cuda_graph_scope(m, scope, mods)


def test_linear_modules_per_moe_layer_follow_the_layer_spec():
    """Megatron's Transformer Engine layer spec (d98e8a6): GQA attention is a fused QKV and an output projection;
    MLA (multi_latent_attention.py) has q down and up, kv down and up and the output (one q projection without a q
    LoRA rank); the routed experts are two grouped linears (fc1 with gate and up, fc2); DeepSeek-V3's shared expert
    two more. The attn graph takes the attention's, moe_router the shared experts' (captured with the router unless
    overlapped). Recompute of mla_up_proj repeats the two up-projections' forwards; moe the experts'."""
    q, ds, oss = model("qwen3-30b-a3b"), model("deepseek-v3"), model("gpt-oss-120b")
    assert layer_modules(q) == {"attention": 2, "routed experts": 2, "shared experts": 0}
    assert layer_modules(oss) == layer_modules(q)
    assert layer_modules(ds) == {"attention": 5, "routed experts": 2, "shared experts": 2}
    assert sum(layer_modules(ds, ("attn", "moe_preprocess", "moe_router")).values()) == 2
    assert sum(layer_modules(ds, ("moe_preprocess", "moe_router")).values()) == 7
    assert recomputed_modules(ds, (), {"mla_up_proj", "mlp"}) == 2
    assert recomputed_modules(ds, ("attn",), {"mla_up_proj"}) == 0  # inside the graph
    assert recomputed_modules(ds, (), {"moe"}) == 4 and recomputed_modules(ds, (), {"shared_experts"}) == 2
    assert recomputed_modules(q, (), {"mla_up_proj", "moe_act", "layernorm"}) == 0


def test_a_host_bound_layer_runs_at_its_modules_pace():
    """Where the GPU finishes a MoE layer sooner than the host issues it, the layer takes h per linear module
    (stacks.yaml megatron-core moe_host module_ms, forward + backward) and h/3 per recomputed forward: Qwen3-30B-A3B
    at MBS 1 on 8 B200 (the fit's layout) is host-bound, its four modules eager or with the router graphed, two with
    attention graphed too. With no stall charged, the exposed host part is M·L·(h·n − G) for the layer's GPU time G,
    so each module the graphs take off saves M·L·h while the host still sets the pace."""
    q, g = model("qwen3-30b-a3b"), gpu("b200")
    kw = dict(ep=8, dp=8, global_batch=512, micro_batch=1, seq=4096, dtype="fp8", moe_dispatcher="hybridep",
              recompute="none", moe_stall_ms=0.0)
    h = stack("megatron-core").moe_module_s

    def host(**more):
        r = step_time(q, g, **kw, **more)
        return next(float(p.value) for p in r.step.parts if p.name == "host-bound MoE layers (exposed)")

    M, L = 512 // 8, q.layers
    eager, router, attn = host(), host(cuda_graph_scope=("moe_preprocess", "moe_router")), host(
        cuda_graph_scope=("attn", "moe_preprocess", "moe_router"))
    assert eager == pytest.approx(router, rel=1e-9)  # the router's own ops are not counted as modules
    assert eager > 0 and eager - attn == pytest.approx(min(eager, M * L * 2 * h), rel=1e-6)
    ds = model("deepseek-v3")
    part = next(p for p in step_time(ds, g, pp=16, ep=8, dp=16, global_batch=4096, micro_batch=1, seq=4096,
                                     dtype="fp8", recompute="selective", recompute_modules=("mla_up_proj",),
                                     pipeline_split="Et*4|(t*4|)*14tmL", moe_dispatcher="hybridep").step.parts
                if p.name == "host-bound MoE layers (exposed)")
    assert part.inputs["n (linear modules the host issues per MoE layer)"] == {
        "attention": 5, "routed experts": 2, "shared experts": 2}
    assert part.inputs["r (module forwards recompute repeats)"] == pytest.approx(2.0)

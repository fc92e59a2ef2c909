"""Training memory against published numbers (each test names its source)."""

import numpy as np
import pytest

from aiinfra.catalog.models import model
from aiinfra.sizing.activations import layer_activation_bytes
from aiinfra.sizing.params import param_counts
from aiinfra.sizing.states import model_states, zero3_gather_buffer
from aiinfra.sizing.training import training_memory
from aiinfra.units import GB, GiB

KORTHIKANTI = [
    # model, micro-batch, tp, pp, interleave, params+opt GiB, act TP baseline GiB, act TP+SP+selective GiB
    ("gpt-22b", 4, 8, 1, 1, 45.56, 59.25, 9.56),
    ("gpt3-175b", 1, 8, 8, 3, 45.56, 66.84, 12.35),
    ("mt-nlg-530b", 1, 8, 35, 3, 31.64, 114.02, 23.08),
    ("gpt-1t", 1, 8, 64, 1, 32.96, 131.25, 26.56),
]


@pytest.mark.parametrize("name,b,tp,pp,vp,states_gib,act_base_gib,act_sel_gib", KORTHIKANTI)
def test_korthikanti_fig1(name, b, tp, pp, vp, states_gib, act_base_gib, act_sel_gib):
    """Korthikanti et al. 2022 Fig. 1 per-GPU memory (s = 2048; Table 3 layouts; memory_perf_anchors §2b.5).

    The paper's params + optimizer = 18 B × 12·L·h²/(t·p) counts transformer-layer weights only, so it is
    compared with our layer parameters per GPU at Megatron's 18 B/param (bf16 + fp32 grads + fp32 master +
    Adam). Activations are the transformer-layer part (the figure leaves out embedding/output terms), with
    the interleave penalty, and without flash attention (the paper predates it).
    """
    m = model(name)
    counts = param_counts(m)
    layer_params_gpu = m.layers / pp * (counts.dense_layer.attention + counts.dense_layer.mlp) / tp
    w, g, o = model_states(layer_params_gpu)
    states = float(w.value + g.value + o.value)
    assert states / layer_params_gpu == 18
    assert states / GiB == pytest.approx(states_gib, rel=1e-3)
    base = training_memory(m, seq=2048, micro_batch=b, tp=tp, pp=pp, vp=vp, recompute="none", flash_attention=False)
    sel = training_memory(m, seq=2048, micro_batch=b, tp=tp, pp=pp, vp=vp, sp=True, recompute="selective",
                          flash_attention=False)
    assert float(base.activations.parts[0].value) / GiB == pytest.approx(act_base_gib, rel=1e-3)
    assert float(sel.activations.parts[0].value) / GiB == pytest.approx(act_sel_gib, rel=1e-3)


def test_korthikanti_fig7_22b_ratios():
    """Korthikanti et al. 2022 Fig. 7, 22B: activation memory relative to the TP baseline is 66.8% with
    sequence parallelism, 49.4% with selective recompute, 16.2% with both and 7.6% with full recompute.
    The figure prints one decimal, and Table 2 gives 4.25/26.33 = 16.14% for both, so the tolerance is 0.1 pt."""
    m = model("gpt-22b")

    def act(**kw):
        r = training_memory(m, seq=2048, micro_batch=4, tp=8, flash_attention=False, **kw)
        return float(r.activations.parts[0].value)

    base = act(recompute="none")
    assert act(sp=True, recompute="none") / base == pytest.approx(0.668, abs=1e-3)
    assert act(recompute="selective") / base == pytest.approx(0.494, abs=1e-3)
    assert act(sp=True, recompute="selective") / base == pytest.approx(0.162, abs=1e-3)
    assert act(recompute="full") / base == pytest.approx(0.076, abs=1e-3)


@pytest.mark.parametrize("zero,expected_gb", [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_paper_7_5b(zero, expected_gb):
    """Rajbhandari et al. 2020 (ZeRO) Fig. 1: Ψ = 7.5B, K = 12 (Adam), N_d = 64, fp16 weights and
    gradients: 120 / 31.4 / 16.6 / 1.9 GB per device for baseline, P_os, P_os+g, P_os+g+p."""
    w, g, o = model_states(7.5e9, dp_shards=64, zero=zero, grad_dtype="fp16")
    assert float(w.value + g.value + o.value) / GB == pytest.approx(expected_gb, abs=0.05)


def test_megatron_bytes_per_param():
    """Megatron-LM issue #654 / theoretical_memory_usage.py: 18 B/param, or 6 + 12/d with the distributed
    optimizer. memory_perf_anchors §2e.1: Llama-3.1-70B at TP8 holds 8.82B params/GPU → 147.8 GiB, and
    61.6 GiB with the distributed optimizer at d = 8."""
    m = model("llama-3.1-70b")
    plain = training_memory(m, seq=4096, tp=8)
    dist = training_memory(m, seq=4096, tp=8, dp=8, distributed_optimizer=True)
    assert float(plain.params_per_gpu) / 1e9 == pytest.approx(8.82, abs=0.005)

    def states(r):
        return float(r.weights.value + r.gradients.value + r.optimizer.value)

    # The anchors are rounded from 8.82B × 18 B and × 7.5 B; our norms stay whole on every TP rank.
    assert states(plain) / GiB == pytest.approx(147.8, abs=0.1)
    assert states(dist) / GiB == pytest.approx(61.6, abs=0.1)
    assert states(dist) / float(dist.params_per_gpu) == pytest.approx(6 + 12 / 8)


T5_3B, T5_LARGEST = 2851e6, 32e6


def test_deepspeed_zero2_estimator_t5_3b():
    """DeepSpeed estimate_zero2_model_states_mem_needs (stage_1_and_2.py, current code): GPU = 2P + 18P/N;
    t5-3b (2,851M params) on 8 GPUs → 11.28 GiB (memory_perf_anchors §1.5; the doc page's 15.93 GB comes
    from the stale 4P + 16P/N formula). 18 = bf16 + fp32 grads (6) + fp32 master (4) + Adam (8)."""
    w, g, o = model_states(T5_3B, dp_shards=8, zero=2, grad_dtype="bf16+fp32")
    assert float(w.value + g.value + o.value) / GiB == pytest.approx(11.28, abs=0.005)


@pytest.mark.parametrize("offload,expected_gib", [("none", 6.09), ("optimizer", 0.78), ("optimizer+params", 0.12)])
def test_deepspeed_zero3_estimator_t5_3b(offload, expected_gib):
    """DeepSpeed estimate_zero3_model_states_mem_needs (docs memory.rst example): t5-3b, largest layer
    32M params, 1 node × 8 GPUs → 6.09 / 0.78 / 0.12 GiB per GPU for no offload, offload optimizer, offload
    params + optimizer. GPU = 4·largest_layer + 18P/N, + 2P/N, + 0. DeepSpeed's optimizer offload moves the fp32
    gradients with the optimizer states (stacks.yaml deepspeed optimizer_offload)."""
    from aiinfra.sizing.offload import optimizer_offload
    w, g, o = model_states(T5_3B, dp_shards=8, zero=3, offload=offload,
                           optimizer_offload_rule=optimizer_offload("deepspeed"))
    buf = zero3_gather_buffer(T5_LARGEST)
    assert float(w.value + g.value + o.value + buf.value) / GiB == pytest.approx(expected_gib, abs=0.005)


def test_vectorized_equals_scalar():
    """The planner's array path gives the same numbers as one explained call per layout."""
    m = model("llama-3.1-8b")
    tp = np.array([1, 2, 4, 8, 2])
    pp = np.array([1, 1, 2, 4, 2])
    rc = np.array([0, 1, 2, 1, 0])
    zero = np.array([0, 1, 2, 3, 1])
    arr = training_memory(m, seq=4096, micro_batch=2, tp=tp, pp=pp, dp=4, recompute=rc, zero=zero, sp=tp > 1)
    for i in range(len(tp)):
        one = training_memory(m, seq=4096, micro_batch=2, tp=int(tp[i]), pp=int(pp[i]), dp=4, recompute=int(rc[i]),
                              zero=int(zero[i]), sp=bool(tp[i] > 1))
        assert arr.total.value[i] == pytest.approx(float(one.total.value))


def test_pipeline_stages_and_moe_sharding():
    """Expert parallelism divides only the routed experts; dense parts stay whole (Megatron MoE sharding)."""
    m = model("mixtral-8x7b")
    ep1 = training_memory(m, seq=4096, tp=1, dp=8, ep=1)
    ep8 = training_memory(m, seq=4096, tp=1, dp=8, ep=8)
    c = param_counts(m)
    moved = float(ep1.params_per_gpu - ep8.params_per_gpu)
    assert moved == pytest.approx(m.moe_layers * c.moe_layer.experts * 7 / 8)


def test_overhead_is_its_own_line_and_configurable():
    m = model("llama-3.1-8b")
    r = training_memory(m, seq=2048, overhead_bytes=3 * GiB, fragmentation=0.0)
    assert float(r.overhead.value) == 3 * GiB
    names = [t.name for t in r.terms]
    assert "runtime overhead" in names and names[-1] == "total per GPU"
    assert float(r.total.value) == pytest.approx(sum(float(t.value) for t in r.terms[:-1]))


def test_fragmentation_must_be_a_share_below_one(cli):
    """The allocator's reserve is a share of the allocated bytes in [0, 1), as the catalog's runtime entry must be.
    `--fragmentation inf` (or nan) used to print an infinite total with exit 0, and the web page failed drawing it."""
    from tests.conftest import assert_one_line_error

    base = ("size", "train", "llama-3.1-8b", "--format", "json")
    assert cli(*base, "--fragmentation", "0").code == 0
    for v in ("inf", "nan", "1", "-0.1", "1e300"):
        assert_one_line_error(cli(*base, "--fragmentation", v), "fragmentation must be a share")


def test_uneven_pipeline_split_matches_llama3_405b():
    """Llama 3 paper (arXiv 2407.21783 §3.3.2): 126 layers on PP16 with one layer fewer on the first and
    the last stage (they carry the embedding and the output/loss): 7 + 14 × 8 + 7."""
    from aiinfra.sizing.pipeline import pipeline_layers
    first, middle, last = pipeline_layers(126, 16)
    assert (int(first), int(middle), int(last)) == (7, 8, 7)
    f, mid, la = pipeline_layers(126, np.array([16, 2, 1]), np.array([2, 1, 1]))
    assert list(mid) == [8, 63, 126] and list(la) == [7, 63, 126]


def test_size_train_and_plan_use_one_fit_rule():
    """`size train llama-3.1-405b --pp 16` no longer refuses 126 layers on 16 stages, and the layout `plan`
    ranks first for 405B on 1,024 H100s fits by the same rule (total ≤ 81,559 MiB from nvidia-smi), with whatever it
    offloads."""
    from aiinfra.catalog.gpus import gpu
    from aiinfra.plan.search import plan
    from aiinfra.sizing.report import training_report
    h100 = gpu("h100-sxm")
    r = plan(model("llama-3.1-405b"), h100, 1024, global_batch=512, seq=8192, top=1)
    w = r.top[0]
    res = training_report(model("llama-3.1-405b"), h100, tp=w["tp"], pp=w["pp"], dp=w["dp"], cp=w["cp"],
                          interleave=w["vp"], zero=w["zero"], recompute=w["recompute"], seq=8192,
                          micro_batch=w["mb"], num_microbatches=512 // (w["dp"] * w["mb"]), offload=w["offload"])
    assert res.facts["fits"] and res.facts["usable_gb"] == pytest.approx(85.52, abs=0.01)
    assert res.facts["headroom_gb"] == pytest.approx(w["headroom_gb"], abs=0.01)


def test_fp8_training_keeps_bf16_weights_and_fp8_caches():
    """FP8 training (Transformer Engine) keeps 16-bit model weights and caches each weight's FP8 copy and transpose
    across micro-batches: 2 + 1 + 1 = 4 B per parameter, not the 1 B an FP8 checkpoint would take."""
    from aiinfra.sizing.states import model_states

    w8, _, _ = model_states(1e9, precision="fp8")
    w16, _, _ = model_states(1e9, precision="bf16")
    assert w8.value == 4e9 and w16.value == 2e9


def test_torchtitan_op_level_selective_memory_matches_the_h200_run():
    """torchtitan benchmarks/llama3-8b_h200_202506_trainy-whitefiber.md: Llama 3.1 8B, FSDP over 32 H200, local batch 2,
    seq 8192, float8, op-level selective checkpointing (llama3_8b.toml at commit e7c0cae) → 47.96 GiB per GPU at
    step 100 (46.97 GiB on 64 GPUs). Its policy keeps the block input, the outputs of every other matmul (wq, wv, w1,
    w2) and the attention output, so the estimate is within 5%; Megatron's selective policy (everything except the
    core attention) would need about 88 GiB for the same run."""
    from aiinfra.catalog.models import model as lookup
    from aiinfra.sizing.recompute import selective_policy
    from aiinfra.sizing.training import training_memory

    m = lookup("llama-3.1-8b")
    kw = dict(seq=8192, micro_batch=2, dp=32, zero=3, recompute="selective", precision="fp8")
    titan = float(training_memory(m, selective=selective_policy("torchtitan"), **kw).total.value) / 2**30
    mega = float(training_memory(m, selective=selective_policy("megatron-core"), **kw).total.value) / 2**30
    assert abs(titan / 47.96 - 1) <= 0.05
    assert mega > 1.5 * titan


def test_te_fp8_keeps_linear_inputs_in_fp8_so_the_recipe_layout_fits():
    """Transformer Engine module/linear.py (NVIDIA/TransformerEngine, read 2026-12-02): in FP8 a linear layer keeps
    only the column-wise FP8 copy of its input for the weight gradient ("Discard row-wise data since it is not needed
    in backward pass"), 1 B per element instead of 2. Megatron-Bridge's Llama3 70B H100 FP8 recipe (TP4·PP8·VP5,
    micro-batch 1, seq 8192, no recompute, bf16 gradient buffers: grad_reduce_in_fp32 = False) runs on 80 GB H100s;
    counted with 16-bit inputs and fp32 gradients it would not fit, with FP8 inputs and bf16 gradients it does."""
    from aiinfra.catalog.gpus import gpu
    from aiinfra.sizing.activations import saved_input_bytes
    from aiinfra.sizing.training import device_memory

    m = model("llama-3.1-70b")
    cap = device_memory(gpu("h100-sxm")).value
    kw = dict(seq=8192, micro_batch=1, tp=4, pp=8, dp=2, sp=True, vp=5, num_microbatches=64, zero=1,
              recompute="none", precision="fp8")
    assert saved_input_bytes("megatron-core", "fp8") == 1.0 and saved_input_bytes("torchtitan", "fp8") == 2.0
    assert saved_input_bytes("megatron-core", "bf16") == 2.0
    te = float(training_memory(m, input_bytes=1.0, grad_dtype="bf16", **kw).total.value)
    old = float(training_memory(m, **kw).total.value)
    assert te <= cap < old
    h, f = 8192, 28672
    one = layer_activation_bytes(m, seq=8192, micro_batch=1, tp=4, sp=True).value
    q = layer_activation_bytes(m, seq=8192, micro_batch=1, tp=4, sp=True, input_bytes=1.0).value
    # 1 B saved on QKV and MLP inputs (U, split by SP), the attention-output input and the down-projection input (S)
    assert one - q == pytest.approx(8192 * (2 * h / 4 + h / 4 + f / 4), rel=1e-9)


def test_nvfp4_training_counts_its_quantized_copies_and_the_recipe_layouts_fit():
    """Transformer Engine's NVFP4 (NVFP4BlockScaling, TE >= 2.7): a quantized tensor holds 4-bit data plus one E4M3
    scale per 16-element block, 0.5625 B per element. FP4 training keeps bf16 weights with a cached NVFP4 copy and
    its transpose (2 + 2 x 0.5625 B per parameter) and saves each linear input as its NVFP4 copy. Megatron-Bridge
    26.04.01 ran Llama3 70B in NVFP4 on 64 GPUs, micro-batch 1, seq 8192, PP4·VP5, no recompute, bf16 gradients:
    TP1 on DGX-GB300 (288 GB) and TP2 on DGX-GB200 (186 GB), 7,296 and 4,864 tokens/s/GPU; both layouts fit."""
    from aiinfra.catalog.gpus import gpu
    from aiinfra.sizing.activations import saved_input_bytes
    from aiinfra.sizing.states import QUANTIZED_BYTES, model_states
    from aiinfra.sizing.training import device_memory

    assert QUANTIZED_BYTES["fp4"] == 0.5625
    w, _, _ = model_states(1e9, precision="fp4")
    assert float(w.value) == pytest.approx(3.125e9)
    assert saved_input_bytes("megatron-core", "fp4") == 0.5625 and saved_input_bytes("torchtitan", "fp4") == 2.0
    m = model("llama-3.1-70b")
    for key, tp in (("gb300", 1), ("gb200", 2)):
        mem = training_memory(m, seq=8192, micro_batch=1, tp=tp, pp=4, dp=16 // tp, sp=tp > 1, vp=5,
                              num_microbatches=16 * tp, zero=1, recompute="none", precision="fp4", grad_dtype="bf16",
                              input_bytes=saved_input_bytes("megatron-core", "fp4"))
        assert float(mem.total.value) <= device_memory(gpu(key)).value, key


def test_offloading_some_layers_activations_keeps_the_rest_on_the_gpu():
    """Megatron-LM cpu_offloading_num_layers = k of L layers (Transformer Engine's layer-wise CPU offload): the first
    k layers' activations go to the host and at most L − k sets stay. Megatron-Bridge's GB200 recipe for Llama3 70B
    FP8 (v0.4.1 LLAMA3_70B_PRETRAIN_CONFIG_GB200_FP8_CS_V2: Megatron FSDP over 64 GPUs, MBS 2, 40 of 80 layers, no
    recompute) then needs about half its activations: 190 GB against 186 GB usable on a GB200, within the
    allocator's fragmentation margin, where keeping every layer would need 343 GB."""
    from aiinfra.catalog.gpus import gpu
    from aiinfra.sizing.activations import saved_input_bytes
    from aiinfra.sizing.training import device_memory

    m = model("llama-3.1-70b")
    kw = dict(seq=8192, micro_batch=2, dp=64, zero=3, precision="fp8", num_microbatches=2,
              input_bytes=saved_input_bytes("megatron-core", "fp8"))

    def layers_act(**more):
        r = training_memory(m, **kw, **more)
        act = next(t for t in r.terms if t.name == "activations")
        return float(next(p.value for p in act.parts if p.name == "transformer layers")), float(r.total.value)

    kept, _ = layers_act()
    half, total = layers_act(offload="activations", offload_fraction=0.5)
    quarter, _ = layers_act(offload="activations", offload_fraction=0.25)
    assert half == pytest.approx(kept / 2) and quarter == pytest.approx(kept * 0.75)
    two, _ = layers_act(offload="activations")  # every layer: the two in flight stay
    assert two == pytest.approx(kept * 2 / 80)
    assert 1.0 < total / float(device_memory(gpu("gb200")).value) < 1.03


def test_size_train_reads_offload_as_plan_prints_it_and_keeps_megatrons_rules(cli):
    """`size train --offload` takes what `plan` prints ('optimizer+activations 75%': those of the first 75% of each
    stage's layers). Under megatron-core it refuses what Megatron-LM refuses (TransformerConfig: CPU offloading
    with pipeline parallelism, with recompute, or of every layer) in one line with exit 2; torchtitan, without that
    layer-wise scheme, offloads every layer's activations or none, on any layout."""
    from aiinfra.sizing.offload import parse_offload
    from tests.conftest import assert_one_line_error

    assert parse_offload("optimizer+activations 75%") == (5, 0.75)
    assert parse_offload("weights+activations") == (6, 1.0) and parse_offload("optimizer+params") == (3, 1.0)
    base = ("size", "train", "llama-3.1-70b", "--format", "json")
    assert cli(*base, "--offload", "activations 50%").code == 0
    assert cli(*base, "--offload", "activations", "--pp", "2", "--software", "torchtitan").code == 0
    for args, fragment in ((("--offload", "activations 50%", "--pp", "2"), "pipeline parallelism"),
                           (("--offload", "activations 50%", "--recompute", "full"), "with recompute"),
                           (("--offload", "activations"), "at most 79 of"),
                           (("--offload", "activations 0%"), "percentage"),
                           (("--offload", "optimizer 50%"), "unknown offload"),
                           (("--offload", "activations 50%", "--software", "torchtitan"), "or none")):
        assert_one_line_error(cli(*base, *args), fragment)


def test_moe_layer_keeps_the_dispatched_tokens_of_every_routed_expert():
    """Megatron-core's grouped experts (moe/experts.py TEGroupedMLP: linear_fc1 over the permuted tokens) and
    Transformer Engine's GroupedLinear (module/grouped_linear.py saves each expert's input for its weight gradient)
    keep the dispatched tokens, one copy per routed expert: k·h per token beside the norm output that the router and
    the shared experts read. With whole experts (ETP1) a rank routes its own s/t sequence shard; with experts split
    over TP the group's tokens are gathered first. Upper bound from recipes that ran: Megatron-Bridge 26.04's H100
    FP8-CS recipes run Qwen3-30B-A3B (16 GPUs, EP16, micro-batch 1, seq 4096) and Qwen3-235B-A22B (TP2·PP8·VP4·EP32,
    ETP1) with recompute off (perf_recipes/qwen/h100/qwen3_moe.py at 067f987): they must still fit an 80 GB H100."""
    from aiinfra.catalog.gpus import gpu
    from aiinfra.sizing.training import device_memory

    m = model("deepseek-v3")
    kw = dict(seq=4096, micro_batch=1, tp=2, sp=True, moe=True)
    whole = layer_activation_bytes(m, etp=1, **kw).value
    split = layer_activation_bytes(m, etp=2, **kw).value
    dense_like = layer_activation_bytes(m, seq=4096, micro_batch=1, tp=2, sp=True).value
    k, h = m.experts_per_token, m.hidden
    assert split - whole == pytest.approx(4096 * h * k * 2.0 / 2, rel=1e-9)  # ETP1 routes s/t tokens, ETP=TP all s
    fp8 = layer_activation_bytes(m, etp=1, input_bytes=1.0, **kw).value
    assert whole - fp8 > 4096 / 2 * h * k * 1.0  # the FP8 copies are 1 B each
    assert whole > dense_like  # same summed FFN width (8 + 1 experts × 2048 = 18,432), plus the routed copies
    cap = device_memory(gpu("h100-sxm")).value
    for name, lay in (("qwen3-30b-a3b", dict(tp=1, pp=1, dp=16, ep=16, sp=False, vp=1, num_microbatches=64)),
                      ("qwen3-235b-a22b", dict(tp=2, pp=8, dp=16, ep=32, etp=1, sp=True, vp=4, num_microbatches=512))):
        total = training_memory(model(name), seq=4096, micro_batch=1, zero=1, recompute="none", precision="fp8",
                                input_bytes=1.0, grad_dtype="bf16", **lay).total.value
        assert float(total) <= cap, name


def test_megatron_recompute_modules_drop_what_each_module_keeps():
    """Megatron-core TransformerConfig.recompute_modules (megatron/core/transformer/transformer_config.py): with
    selective granularity the named submodules are recomputed; layernorm, moe_act and mla_up_proj discard their
    outputs (output-discarding checkpoints), mlp, moe and shared_experts keep only their inputs; the default is
    core_attn alone, which is what the "attention" policy is. Per token and layer: moe_act drops the routed experts'
    activation output (k·f_moe at the saved-input width), layernorm a MoE layer's pre-MLP norm output (a dense
    layer's norms are fused into Transformer Engine's LayerNormLinear), mlp a dense layer's MLP input and
    intermediates, moe all a MoE layer keeps but its input. Megatron refuses unknown names, moe_act without MoE and
    mla_up_proj without MLA; a stack whose selective recompute is its own takes no names."""
    from aiinfra.errors import SpecError
    from aiinfra.sizing.recompute import check_recompute_modules, module_policy, parse_recompute_modules, policy_modules

    assert parse_recompute_modules("moe_act, layernorm") == ("layernorm", "moe_act")
    assert module_policy("megatron-core", ()) == "attention" == module_policy("megatron-core", ("core_attn",))
    assert policy_modules(module_policy("megatron-core", ("layernorm", "moe_act"))) == {"layernorm", "moe_act"}
    for bad in ("moe_act,bogus", "mlp,mlp", ",", " , "):
        with pytest.raises(SpecError):
            parse_recompute_modules(bad)
    for names in (("mlp",), ("core_attn",)):
        with pytest.raises(SpecError, match="torchtitan"):
            module_policy("torchtitan", names)
    with pytest.raises(SpecError, match="MoE"):
        check_recompute_modules(model("llama-3.1-8b"), ("moe_act",))
    with pytest.raises(SpecError, match="multi-latent"):
        check_recompute_modules(model("qwen3-30b-a3b"), ("mla_up_proj",))

    def act(m, policy, moe=False, **kw):
        return float(layer_activation_bytes(m, seq=4096, micro_batch=1, recompute=1, moe=moe, selective=policy,
                                            **kw).value)

    g = model("gpt-oss-120b")
    h, k, f = g.hidden, g.experts_per_token, g.moe_ffn
    base = act(g, "attention", moe=True)
    assert base - act(g, "modules:moe_act", moe=True) == pytest.approx(4096 * k * f * 2.0, rel=1e-9)
    assert base - act(g, "modules:layernorm", moe=True) == pytest.approx(4096 * h * 2.0, rel=1e-9)
    assert act(g, "modules:moe", moe=True) < act(g, "modules:layernorm,moe_act", moe=True) < base
    llama = model("llama-3.1-8b")
    dense = act(llama, "attention")
    assert act(llama, "modules:layernorm") == dense  # fused norms: nothing to drop
    h, f = llama.hidden, llama.ffn
    assert dense - act(llama, "modules:mlp") == pytest.approx(4096 * (2 * h + 2 * 2 * f + 2 * f), rel=1e-9)


def test_size_train_keeps_deepseeks_mtp_layer_on_the_last_stage(cli):
    """The MTP layer (with its h×2h projection; it shares the embedding and the head) and a second set of logits
    live where the loss is: on one GPU at PP1 the memory grows by about a layer's weights, gradients, optimizer share
    and activations; `--no-mtp` leaves it out. A model without MTP layers is unchanged."""
    m = model("deepseek-v3")
    kw = dict(seq=4096, micro_batch=1, tp=8, pp=1, dp=128, ep=64, sp=True, zero=1, recompute="none",
              precision="bf16", grad_dtype="bf16", num_microbatches=64)
    on = float(training_memory(m, **kw).total.value)
    off = float(training_memory(m, mtp=False, **kw).total.value)
    assert 0.5e9 < on - off < 5e9
    r_on, r_off = cli("size", "train", "deepseek-v3", "--tp", "8", "--dp", "128", "--ep", "64", "--zero", "1",
                      "-f", "json"), cli("size", "train", "deepseek-v3", "--tp", "8", "--dp", "128", "--ep", "64",
                                         "--zero", "1", "--no-mtp", "-f", "json")
    import json
    assert json.loads(r_on.out)["facts"]["params_per_gpu"] > json.loads(r_off.out)["facts"]["params_per_gpu"]
    llama = model("llama-3.1-8b")
    kw8 = dict(seq=4096, micro_batch=1, tp=1, pp=1, dp=8, zero=1, recompute="none")
    assert float(training_memory(llama, **kw8).total.value) == float(training_memory(llama, mtp=False, **kw8).total.value)


def test_quantized_parameters_drop_the_16_bit_weight_copy():
    """Megatron-LM --fp8-param-gather (arguments.py: "Keep the compute param in fp8 (do not use any other intermediate
    dtype) and perform the param all-gather in fp8"), NeMo fp8_params, Megatron-Bridge's FP8-CS recipe
    (fp8_param_gather = True): the weight is the FP8 tensor and its transpose, 2 x 1 B, where FP8 training otherwise
    keeps the bf16 weight and caches both quantized copies, 2 + 2 x 1 B. NVFP4 (fp4_param_gather): 2 x 0.5625 B
    (4-bit values and one 1-byte scale per 16). The fp32 master and Adam state are the optimizer's either way;
    bf16 training has no quantized weight to keep."""
    from aiinfra.errors import SpecError
    from aiinfra.sizing.states import model_states

    psi = 1e9
    plain = model_states(psi, precision="fp8")[0]
    kept = model_states(psi, precision="fp8", quantized_params=True)
    assert float(plain.value) == pytest.approx(4e9) and float(kept[0].value) == pytest.approx(2e9)
    assert "fp8-param-gather" in kept[0].sources["bytes_w"]
    assert float(model_states(psi, precision="fp4", quantized_params=True)[0].value) == pytest.approx(1.125e9)
    assert float(kept[2].value) == float(model_states(psi, precision="fp8")[2].value)  # master + Adam unchanged
    with pytest.raises(SpecError, match="FP8 or FP4"):
        model_states(psi, precision="bf16", quantized_params=True)


def test_optimizer_offload_moves_what_each_stack_moves(cli):
    """`--offload optimizer` puts in host memory what the stack's optimizer offload moves (stacks.yaml
    optimizer_offload). Megatron-Core's HybridDeviceOptimizer (--optimizer-cpu-offload) keeps the master weights and
    Adam states on the host, but megatron/core/distributed/param_and_grad_buffer.py (d98e8a6) allocates grad_data on
    torch.cuda.current_device(): Llama 3.1 70B at TP8 keeps its 8.82e9 parameters' fp32 gradients, 35.28 GB, on the
    GPU, as without offload (it printed 0.00 GB). DeepSpeed ZeRO-Offload moves the fp32 gradients too
    (stage_1_and_2.py estimate_zero2_model_states_mem_needs with cpu_offload: 2 B per parameter on the GPU), and
    torchtitan's FSDP2 CPUOffloadPolicy the parameters, gradients and optimizer states (config/configs.py
    enable_cpu_offload), so under ZeRO-3 its weight shard goes as well."""
    base = ("size", "train", "llama-3.1-70b", "--tp", "8", "--dp", "8", "--format", "json")

    def gb(*args):
        f = cli(*base, *args).json()["facts"]
        return {k: f[k]["value"] / 1e9 for k in ("weights", "gradients", "optimizer", "total_per_gpu")}

    plain, mc = gb("--zero", "1"), gb("--zero", "1", "--offload", "optimizer")
    assert mc["gradients"] == pytest.approx(35.28, abs=0.005) == pytest.approx(plain["gradients"], abs=0.005)
    assert mc["optimizer"] == 0 and mc["weights"] == plain["weights"]
    ds = gb("--zero", "1", "--offload", "optimizer", "--software", "deepspeed")
    assert ds["gradients"] == 0 and ds["optimizer"] == 0 and ds["weights"] == plain["weights"]
    tt = gb("--zero", "3", "--offload", "optimizer", "--software", "torchtitan", "--tp", "1")
    assert tt["weights"] == tt["gradients"] == tt["optimizer"] == 0
    assert gb("--zero", "2", "--offload", "optimizer", "--software", "torchtitan", "--tp", "1")["weights"] > 0
    j = cli(*base, "--zero", "1", "--offload", "optimizer").json()
    assert any("gradients and the weights on the GPU" in a for a in j["assumptions"])


@pytest.mark.parametrize("args,fragment", [
    (("--zero", "0"), "ZeRO-1, 2 or 3; ZeRO-0"),
    (("--zero", "0", "--software", "torchtitan"), "ZeRO-2 or 3; ZeRO-0"),
    (("--zero", "3", "--tp", "1", "--software", "llm-foundry"), "runs no optimizer offload"),
    (("--zero", "0", "--software", "megatron-2022"), "runs no optimizer offload"),
])
def test_optimizer_offload_refusals(cli, args, fragment):
    """Megatron's optimizer offload needs --use-precision-aware-optimizer, which runs only with the distributed
    optimizer (megatron/core/optimizer/__init__.py at d98e8a6): not at ZeRO-0; torchtitan applies CPUOffloadPolicy only
    in apply_fsdp (ZeRO-2/3); Composer 0.16.4 raises "FSDP CPU Offload not supported yet." (llm-foundry), and
    Megatron-LM of 2022 (cfd2e21) has no offload option. One line, exit 2."""
    from tests.conftest import assert_one_line_error
    assert_one_line_error(cli("size", "train", "llama-3.1-70b", "--tp", "8", "--dp", "8", "--offload", "optimizer",
                              *args), fragment)


@pytest.mark.parametrize("flag,n,fragment", [
    ("--num-microbatches", "0", "--num-microbatches must be between 1"),
    ("--num-microbatches", "-3", "--num-microbatches must be between 1"),
    ("--num-microbatches", str(10**30), "--num-microbatches must be between 1"),  # overflowed numpy: a traceback
    ("--seq", str(10**30), "sequence length must be between 1 and 16,777,216"),  # plan's bound
    ("--seq", "0", "sequence length must be between 1"),
    ("--micro-batch", "99999999999999", "--micro-batch must be between 1"),
])
def test_size_train_refuses_counts_out_of_range(cli, flag, n, fragment):
    """--num-microbatches 0 or -3 used to be accepted and change the answer (a pipeline flush holds at least one);
    10^30 micro-batches or tokens overflowed into a traceback."""
    from tests.conftest import assert_one_line_error
    assert_one_line_error(cli("size", "train", "llama-3.1-70b", "--tp", "8", "--dp", "8", "--pp", "2", flag, n), fragment)

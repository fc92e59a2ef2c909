"""`aiinfra plan --layout`: one layout evaluated, explained and ranked within the full search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.loader import set_user_catalogs
from aiinfra.catalog.models import model
from aiinfra.contract import registry
from aiinfra.errors import AiinfraError
from aiinfra.plan.commands import PlanFacts, parse_layout, plan_command
from aiinfra.plan.search import Options
from tests.conftest import assert_one_line_error

H100 = "h100-sxm"


def test_fixed_layout_is_ranked_and_explained():
    """Llama 3 paper Table 4 (arXiv 2407.21783): 405B on 16,384 H100s ran TP8·CP1·PP16·DP128, 16M-token batches
    of 8K sequences. The fixed layout comes back with its rank among the layouts that fit, the speed-up of #1
    and the step-time parts that make the difference; its explanation is the step time of that layout."""
    res = plan_command(model("llama-3.1-405b"), gpu(H100), [16384], global_batch=2048, seq=8192,
                       layout="tp=8,pp=16,cp=1,dp=128,mb=1")
    y = res.facts["your_layout"]
    assert (y["tp"], y["pp"], y["cp"], y["dp"], y["mb"]) == (8, 16, 1, 128, 1)
    assert y["rank"] >= 1 and y["layouts_ranked"] >= y["rank"] and y["speedup_of_best"] >= 1.0
    assert f"is #{y['rank']} of" in res.facts["your_layout_verdict"]
    assert res.terms[0].name == "step time" and res.terms[0].value == pytest.approx(y["step_s"])
    PlanFacts.model_validate(res.to_dict()["facts"])


def test_a_layout_its_own_split_beats_is_ranked_as_one_more_entry():
    """A fixed layout that is not the best completion of its own split counts as one more ranked entry: MPT-13B under
    llm-foundry (data parallelism only, so one split) on 8 H100s with ZeRO-3, where ZeRO-2 of the same split fits and
    runs faster, is #2 of 2, not "#2 of 1"; the best completion itself is #1 of 1."""
    kw = dict(global_batch=16, seq=2048, options=Options(software="llm-foundry"))
    res = plan_command(model("mpt-13b"), gpu(H100), [8], layout="dp=8,mb=2,recompute=none,zero=3", **kw)
    y = res.facts["your_layout"]
    assert (y["rank"], y["layouts_ranked"]) == (2, 2) and y["speedup_of_best"] > 1.0
    assert "is #2 of 2;" in res.facts["your_layout_verdict"]
    best = plan_command(model("mpt-13b"), gpu(H100), [8], layout="dp=8,mb=2,recompute=none,zero=2", **kw)
    assert (best.facts["your_layout"]["rank"], best.facts["your_layout"]["layouts_ranked"]) == (1, 1)


def test_keys_left_out_are_searched():
    """`--layout tp=8,pp=16` gives the best completion of that split (micro-batch, interleave, recompute, ZeRO, DP)."""
    res = plan_command(model("llama-3.1-405b"), gpu(H100), [16384], global_batch=2048, seq=8192, layout="tp=8,pp=16")
    y = res.facts["your_layout"]
    assert (y["tp"], y["pp"]) == (8, 16) and y["fits"]


def test_out_of_memory_layout_is_evaluated_and_marked():
    """70B with no model parallelism holds ~16 B/param of state per GPU: it cannot fit 85.5 GB, yet the layout is
    evaluated (step time, memory, shortfall) and marked, not refused."""
    res = plan_command(model("llama-3.1-70b"), gpu(H100), [64], global_batch=512, seq=4096,
                       layout="tp=1,pp=1,cp=1,dp=64,mb=1,recompute=none,zero=0,offload=none")
    y = res.facts["your_layout"]
    assert y["oom"] and y["headroom_gb"] < 0 and y["step_s"] > 0
    assert "does not fit" in res.facts["your_layout_verdict"] and res.warnings


@pytest.mark.parametrize("layout,fragment", [
    ("tp=8,pp=16,foo=1", "is not one of tp="),
    ("tp=8,pp=16,cp=1,dp=64", "is not the GPU count 16384"),
    ("tp=3", "TP=3 does not divide the 128 attention heads"),
    ("pp=127", "a stage would hold no layer"),
    ("pp=100,vp=2", "would leave a stage without a layer"),
    ("tp=8,recompute=some", "must be none, selective or full"),
    ("tp=8,pp=16,tp=4", "names tp twice"),  # two values for one key: neither wins silently
    ("tp=８", "must be a whole number"),  # digits are ASCII digits
    ("tp=1.5", "must be a whole number"),
    ("tp=-2", "must be ≥ 1"),
    (" , ", "names no key"),
])
def test_unbuildable_layouts_name_the_constraint(layout, fragment):
    with pytest.raises(AiinfraError, match=fragment):
        plan_command(model("llama-3.1-405b"), gpu(H100), [16384], global_batch=2048, seq=8192, layout=layout)


def test_cli_layout_table_and_bad_layout(cli):
    r = cli("plan", "llama-3.1-8b", "--gpus", "8", "--global-batch", "64", "--layout", "tp=2,pp=1,dp=4")
    assert r.code == 0, r.err
    assert "(yours)" in r.out and "your layout TP2·PP1·DP4" in r.out
    assert_one_line_error(cli("plan", "llama-3.1-8b", "--gpus", "8", "--layout", "tp=2,bogus=3"), "bogus=3")


def test_parse_layout():
    assert parse_layout("tp=8, pp=16,recompute=selective,zero=1") == {"tp": 8, "pp": 16, "recompute": 1, "zero": 1}
    assert parse_layout(None) == {}
    assert parse_layout("offload=optimizer+activations") == {"offload": 5}


def test_plan_is_a_registered_command_with_facts():
    assert registry()["plan"].facts is PlanFacts


@pytest.fixture
def nvl72():
    set_user_catalogs([Path(__file__).parent / "data" / "gb200_nvl72_like.yaml"])
    try:
        yield gpu("gb200-nvl72-test")
    finally:
        set_user_catalogs([])


def test_nvl72_domain_lets_ep_span_more_than_8_gpus_at_nvlink_speed(nvl72):
    """A GB200-like entry with scaleup_domain 72 (a user --catalog file): expert (and tensor) parallel groups
    beyond 8 GPUs stay on NVLink. For DeepSeek-V3 on 1,152 GPUs (16 racks), with the MoE all-to-all overlapped as
    Megatron-LM's MoE README advises for DeepSeek-V3-sized models (--overlap-moe-expert-parallel-comm), the best
    layout spans more than 8 GPUs with its expert group (EP × expert TP) inside the rack because it beats every layout
    that fits with TP and the expert group within 8 GPUs, and the note names NVLink. (Its experts are whole, EP64
    folded over TP2·DP: since routed-expert gradients sync over the expert-data-parallel group, a wide EP also
    shrinks that sync.) (Without the overlap every forward MoE layer waits on its host sync, stacks.yaml moe_host, and a few
    large micro-batches with no expert parallelism come out ahead.)"""
    import numpy as np

    from aiinfra.plan.search import Options, plan
    r = plan(model("deepseek-v3"), nvl72, 1152, global_batch=2304, seq=8192, keep=True, options=Options(ep_overlap=True))
    w = r.top[0]
    # the GPUs one MoE layer's experts span: EP × expert TP (EP folds over the TP ranks with expert TP 1)
    assert 8 < w["etp"] * w["ep"] <= 72
    ev = r.evaluated
    small = ev.fits & (np.maximum(ev.space.tp, ev.space.etp * ev.space.ep) <= 8)
    assert w["step_s"] < float(np.min(ev.step[small]))
    assert any("NVLink" in n and "72-GPU domain" in n for n in r.notes)
    b200 = plan(model("deepseek-v3"), gpu("b200"), 1152, global_batch=2304, seq=8192)
    assert all("72-GPU" not in n for n in b200.notes)


def test_tp_overlap_mode_is_searched_and_fixable():
    """Calculon searches tensor_par_overlap (none / ring / pipe); here the stack's modes (stacks.yaml
    tp_overlap_modes) are a knob: megatron-core offers blocking TP and userbuffers ring overlap, Meta's Llama 3 stack
    blocking only. A fixed --layout tp_overlap=… is evaluated in that mode; one the stack lacks is one line."""
    import pytest

    from aiinfra.catalog.gpus import gpu
    from aiinfra.catalog.models import model
    from aiinfra.errors import SpecError
    from aiinfra.plan.commands import plan_command
    from aiinfra.plan.search import Options

    m, g = model("llama-3.1-70b"), gpu("h100-sxm")
    kw = dict(global_batch=64, seq=4096, top=1, options=Options(offloads=(0,), recompute_fractions=(1.0,)))
    ring = plan_command(m, g, [32], layout="tp=8,pp=4,mb=1,vp=1,tp_overlap=ring", **kw).facts["your_layout"]
    none = plan_command(m, g, [32], layout="tp=8,pp=4,mb=1,vp=1,tp_overlap=none", **kw).facts["your_layout"]
    assert ring["tp_overlap"] == "ring" and none["tp_overlap"] == "none"
    assert ring["step_s"] < none["step_s"]
    with pytest.raises(SpecError, match="offers none"):
        plan_command(m, g, [32], layout="tp=8,tp_overlap=ring",
                     **{**kw, "options": Options(software="llama3-meta", offloads=(0,))})
    with pytest.raises(SpecError, match="ring or none|none or ring"):
        plan_command(m, g, [32], layout="tp=8,tp_overlap=pipe", **kw)


def test_size_train_accepts_what_plan_recommends_with_the_same_memory():
    """Issue 13: `size train llama-3.1-405b --pp 16` used to refuse a layout `plan` recommended. Both now count the
    same parts against the same usable memory (catalog memory_total_mib): plan's winner for 405B on 1,024 H100s,
    fed to `size train` with its layout, fits with the same bytes per GPU."""
    from aiinfra.catalog.gpus import gpu
    from aiinfra.catalog.models import model
    from aiinfra.plan.commands import plan_command
    from aiinfra.plan.search import Options
    from aiinfra.sizing.commands import training_report

    m, g = model("llama-3.1-405b"), gpu("h100-sxm")
    res = plan_command(m, g, [1024], global_batch=512, seq=8192, top=1,
                       options=Options(offloads=(0,), recompute_fractions=(1.0,)))
    w = res.facts["layouts"][0]
    assert w["offload"] == "none" and w["recompute"] in ("none", "selective", "full")
    size = training_report(m, g, tp=w["tp"], pp=w["pp"], dp=w["dp"], cp=w["cp"], interleave=w["vp"], zero=w["zero"],
                           recompute=w["recompute"], seq=8192, micro_batch=w["mb"],
                           num_microbatches=512 // (w["dp"] * w["mb"]), precision="bf16")
    assert size.facts["fits"]
    total = float(next(t for t in size.terms if t.name == "total per GPU").value)
    assert abs(total / 1e9 - w["memory_gb"]) < 1e-6 * w["memory_gb"]


def test_size_train_takes_plans_expert_tp_with_the_same_memory(cli):
    """`size train --etp 1` evaluates a MoE layout with whole experts (EP folded over TP), as plan's ETP1 rows
    print it: plan's winner for Qwen3-30B-A3B on 16 H100s at TP2·EP16 (EP beyond DP·CP needs ETP1), fed to size
    train with its layout, has the same bytes per GPU; an expert TP that is neither 1 nor TP is one line, exit 2."""
    from aiinfra.sizing.commands import training_report

    m, g = model("qwen3-30b-a3b"), gpu(H100)
    res = plan_command(m, g, [16], global_batch=256, seq=4096, top=1, layout="tp=2,ep=16,etp=1,zero=1",
                       options=Options(offloads=(0,), recompute_fractions=(1.0,)))
    w = res.facts["your_layout"]
    size = training_report(m, g, tp=2, pp=w["pp"], dp=w["dp"], cp=w["cp"], ep=16, etp=1, interleave=w["vp"],
                           zero=1, recompute=w["recompute"], seq=4096, micro_batch=w["mb"],
                           num_microbatches=256 // (w["dp"] * w["mb"]), precision="bf16")
    assert "EP16(ETP1)" in size.facts["layout"]
    total = float(next(t for t in size.terms if t.name == "total per GPU").value)
    assert abs(total / 1e9 - w["memory_gb"]) < 1e-6 * w["memory_gb"]
    assert_one_line_error(cli("size", "train", "qwen3-30b-a3b", "--tp", "2", "--ep", "16", "--dp", "8", "--etp", "3"),
                          "must be 1")
    assert_one_line_error(cli("size", "train", "llama-3.1-8b", "--etp", "1"), "MoE")


def test_expert_tp_layout_key_is_checked_in_one_line():
    """--layout etp=…: the experts' TP size is 1 or TP (Megatron expert_tensor_parallel_size), only for MoE models,
    and EP beyond DP·CP needs it at 1; each broken rule is one line, exit 2."""
    import subprocess
    import sys

    cases = {"llama-3.1-8b --gpus 8 --layout tp=2,etp=1": "applies to MoE models",
             "qwen3-30b-a3b --gpus 16 --layout tp=2,ep=16,etp=3": "must be 1",
             "qwen3-30b-a3b --gpus 16 --layout tp=2,ep=16": "set expert TP 1"}
    for args, msg in cases.items():
        r = subprocess.run([sys.executable, "-m", "aiinfra", "plan", *args.split(), "--global-batch", "64"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1 and not r.stdout


def test_pipeline_split_option_changes_the_stage_loads(cli):
    """`--pipeline-split even` deals the 80 layers of Llama 3 70B alone over PP8·VP5 (10 per GPU, the LM head on top
    of the last GPU's ten); `account` gives the embedding and the loss a slot each, as the Megatron-Bridge H100
    recipe's pipeline_model_parallel_layout does (9 + head on the last GPU, 11 on the busiest): faster. An unknown
    split, or `account` on a stack that splits evenly only, is one line and exit 2."""
    from aiinfra.plan.search import Options
    kw = dict(global_batch=256, seq=8192, layout="tp=4,pp=8,dp=2,mb=1,vp=5,recompute=none", top=1)
    even = plan_command(model("llama-3.1-70b"), gpu(H100), [64], options=Options(dtype="fp8", pipeline_split="even"), **kw)
    acc = plan_command(model("llama-3.1-70b"), gpu(H100), [64], options=Options(dtype="fp8", pipeline_split="account"), **kw)
    assert acc.facts["your_layout"]["step_s"] < 0.97 * even.facts["your_layout"]["step_s"]
    r = cli("plan", "llama-3.1-70b", "--gpu", H100, "--gpus", "64", "--global-batch", "256", "--seq", "8192",
            "--dtype", "fp8", "--layout", "tp=4,pp=8,dp=2,mb=1,vp=5", "--top", "1")
    assert r.code == 0 and "pipeline split auto (the embedding and the loss take a layer's slot each)" in r.out
    assert_one_line_error(cli("plan", "llama-3.1-8b", "--gpus", "8", "--pipeline-split", "diagonal"), "diagonal")
    assert_one_line_error(cli("plan", "gpt-1.7b", "--gpus", "32", "--software", "megatron-2021",
                              "--pipeline-split", "account"), "uneven")


def test_tp_overlap_without_sequence_parallelism_is_refused(cli):
    """Megatron-LM arguments.py refuses --tp-comm-overlap without --sequence-parallel; the search then offers only
    blocking TP, and a fixed layout that asks for both gets one line naming the constraint."""
    from aiinfra.plan.search import Options, tp_modes

    assert tp_modes(Options(sequence_parallel=False)) == (0,) and 1 in tp_modes(Options())
    assert_one_line_error(cli("plan", "llama-3.1-8b", "--gpus", "8", "--global-batch", "64", "--no-sp",
                              "--layout", "tp=8,tp_overlap=ring"), "sequence parallelism")


def test_moe_dispatcher_option_reaches_the_step_time(cli):
    """`--moe-dispatcher hybridep` (Options.moe_dispatcher) charges the MoE all-to-all once per destination node over
    the NICs, as Megatron-Bridge's Qwen3-30B-A3B H100 recipe runs it (v0.4.1 qwen3_workload_base_configs.py
    QWEN3_30B_A3B_PRETRAIN_CONFIG_H100_FP8_CS_V1, EP16, moe_flex_dispatcher_backend "hybridep"): the same layout on
    two DGX H100 nodes is faster than with the default alltoall dispatcher (by 11%, not the 45% the GPU work alone
    would give: the forward MoE layers then wait on the host, stacks.yaml moe_layer_host_ms). An unknown dispatcher is
    one line, exit 2."""
    from aiinfra.plan.search import Options
    kw = dict(global_batch=1024, seq=4096, layout="tp=1,pp=1,ep=16,dp=16,mb=1,vp=1,recompute=none", top=1)
    m = model("qwen3-30b-a3b")
    plain = plan_command(m, gpu(H100), [16], options=Options(dtype="fp8"), **kw)
    hybrid = plan_command(m, gpu(H100), [16], options=Options(dtype="fp8", moe_dispatcher="hybridep"), **kw)
    assert hybrid.facts["your_layout"]["step_s"] < 0.92 * plain.facts["your_layout"]["step_s"]
    assert_one_line_error(cli("plan", "qwen3-30b-a3b", "--gpus", "16", "--moe-dispatcher", "nccl"),
                          "unknown MoE dispatcher 'nccl'")


def test_moe_sync_free_drops_the_host_bound_term(cli):
    """`--moe-sync-free` is a dispatch without the host sync before each MoE all-to-all (Megatron-Bridge's 26.06
    recipes: fixed-capacity dispatch under full-iteration CUDA graphs). The fixed layout then carries no
    "host-bound MoE layers" part and runs faster; without the flag the part is there (stacks.yaml moe_host)."""
    argv = ("plan", "qwen3-30b-a3b", "--gpus", "16", "--dtype", "fp8", "--seq", "4096", "--global-batch", "1024",
            "--layout", "tp=1,pp=1,ep=16,dp=16,mb=1,vp=1,recompute=none", "--top", "1", "--format", "json", "--explain")
    plain, free = cli(*argv).json(), cli(*argv, "--moe-sync-free").json()

    def host_part(doc):
        step = next(t for t in doc["explain"] if t["name"] == "step time")
        return next(p["value"] for p in step["parts"] if p["name"] == "host-bound MoE layers (exposed)")

    assert host_part(plain) > 0 and host_part(free) == 0
    assert free["facts"]["your_layout"]["step_s"] < plain["facts"]["your_layout"]["step_s"]


def test_activation_offload_follows_megatrons_rules_in_search_and_layout(cli):
    """Megatron-LM's CPU offloading (TransformerConfig at d98e8a6) refuses pipeline parallelism, activation
    recompute and num_layers ≥ the model's layers; it offloads the first k layers' activations under the other
    layers' compute (Transformer Engine). The megatron-core search never ranks a layout breaking those rules (the
    1T / 4,096 A100 winner used to be TP4·PP8 with every layer's activations offloaded), `--layout offload_layers=40`
    runs Megatron-Bridge's GB200 70B FP8 recipe (v0.4.1: Megatron FSDP, MBS 2, cpu_offloading_num_layers=40) as 50%
    of the layers, and each broken rule is one line with exit 2. A stack without that scheme (torchtitan here) offloads
    every layer's activations or none."""
    from aiinfra.plan.search import plan

    r = plan(model("llama-3.1-70b"), gpu(H100), 64, global_batch=512, seq=8192, top=40, keep=True)
    ev, sp = r.evaluated, r.evaluated.space
    act = (sp.offload & 4) > 0
    assert act.any() and not np.isfinite(ev.step[act & (sp.pp > 1)]).any()
    assert not (act & (sp.recompute > 0)).any() and not (act & (sp.ofrac >= 1.0)).any()
    assert sorted(set(sp.ofrac[act].tolist())) == [0.25, 0.5, 0.75]
    for w in r.top:
        assert "activations" not in w["offload"] or (w["pp"] == 1 and w["recompute"] == "none")

    res = plan_command(model("llama-3.1-70b"), gpu("gb200"), [64], global_batch=256, seq=8192,
                       options=Options(dtype="fp8"), layout="tp=1,pp=1,dp=64,mb=2,zero=3,offload_layers=40")
    y = res.facts["your_layout"]
    assert y["offload"] == "activations 50%" and y["ofrac"] == 0.5 and y["recompute"] == "none"
    assert "offload activations 50%" in res.facts["your_layout_verdict"]
    base = ("plan", "llama-3.1-70b", "--gpu", "gb200", "--gpus", "64", "--global-batch", "256", "--dtype", "fp8",
            "--layout")
    for layout, fragment in (("pp=2,offload=activations", "pipeline parallelism"),
                             ("recompute=full,offload_layers=10", "with recompute"),
                             ("offload_layers=80", "at most 79 of"),
                             ("offload_layers=81", "has 80 layers"),
                             ("offload=optimizer,offload_layers=4", "add activations to offload=")):
        assert_one_line_error(cli(*base, layout), fragment)
    assert cli(*base[:-1], "--software", "torchtitan", "--layout", "pp=2,offload=activations",
               "--format", "json").code == 0
    # a stack without the layer-wise scheme offloads every layer's activations or none
    assert_one_line_error(cli(*base[:-1], "--software", "torchtitan", "--layout", "offload_layers=40"),
                          "every layer's activations or none")


def test_recompute_modules_option_is_megatrons_and_checked_in_one_line(cli):
    """`plan --recompute-modules` / `size train --recompute-modules` take Megatron-core's recompute_modules: the
    GPT-OSS-120B recipe for 64 B200s (Megatron-Bridge v0.4.2 gpt_oss_workload_base_configs.py: EP8, MBS 4,
    layernorm and moe_act) keeps less per GPU than without them (at one offload setting, none, so the search's choice
    of offload does not enter the comparison), and says what it recomputes. Unknown names, moe_act on a dense model, a
    stack with its own selective policy, or names without selective recompute: one line, exit 2."""
    args = ["plan", "gpt-oss-120b", "--gpu", "b200", "--gpus", "64", "--seq", "4096", "--global-batch", "1280",
            "--layout", "tp=1,pp=1,ep=8,dp=64,mb=4,vp=1,zero=1,recompute=selective,offload=none", "--top", "1",
            "-f", "json"]
    import json

    plain = json.loads(cli(*args).out)["facts"]["your_layout"]
    r = cli(*args, "--recompute-modules", "layernorm,moe_act")
    mods = json.loads(r.out)
    assert mods["facts"]["your_layout"]["memory_gb"] < plain["memory_gb"] - 10
    assert any("layernorm, moe_act" in a for a in mods["assumptions"])
    for bad, msg in ((["plan", "llama-3.1-8b", "--gpus", "8", "--recompute-modules", "bogus"], "bogus"),
                     (["plan", "llama-3.1-8b", "--gpus", "8", "--recompute-modules", "moe_act"], "MoE"),
                     (["plan", "llama-3.1-8b", "--gpus", "8", "--software", "torchtitan", "--recompute-modules", "mlp"],
                      "torchtitan"),
                     (["plan", "llama-3.1-8b", "--gpus", "8", "--recompute", "none,full", "--recompute-modules", "mlp"],
                      "selective"),
                     (["size", "train", "gpt-oss-120b", "--recompute-modules", "moe_act"], "selective")):
        assert_one_line_error(cli(*bad), msg)


def test_a_data_parallel_only_stack_is_searched_and_checked_as_such(cli):
    """stacks.yaml llm-foundry (parallelism: []): MosaicML's MPT benchmark runs (llm-foundry v0.3.0,
    scripts/train/benchmarking at b2a43a1) used PyTorch FSDP and no tensor, pipeline, context or expert parallelism.
    plan searches only TP1·PP1·CP1 layouts for that stack (torchtitan, which runs all four, gets the full space), and a
    fixed layout or a size train run that needs another axis is refused in one line, exit 2."""
    from aiinfra.errors import SpecError
    from aiinfra.sizing.layout import parse_parallelism, stack_parallelism

    m, g = model("mpt-30b"), gpu("h100-sxm")
    kw = dict(global_batch=1344, seq=2048, top=50)
    only_dp = plan_command(m, g, [32], options=Options(software="llm-foundry"), **kw)
    assert {(x["tp"], x["pp"], x["cp"]) for x in only_dp.facts["layouts"]} == {(1, 1, 1)}
    assert "the llm-foundry stack runs data parallelism only; the search keeps the other axes at 1" in \
        only_dp.assumptions
    every = plan_command(m, g, [32], options=Options(software="torchtitan"), **kw)
    assert any(x["tp"] > 1 for x in every.facts["layouts"]) and any(x["pp"] > 1 for x in every.facts["layouts"])
    assert not any("runs data parallelism" in a for a in every.assumptions)
    base = ("plan", "mpt-30b", "--gpu", "h100-sxm", "--gpus", "32", "--global-batch", "1344", "--seq", "2048",
            "--software", "llm-foundry")
    assert_one_line_error(cli(*base, "--layout", "tp=2"), "runs data parallelism only; tp=2 needs tensor")
    assert_one_line_error(cli(*base, "--layout", "pp=2,cp=2"), "pp=2, cp=2 needs pipeline and context")
    assert cli(*base, "--layout", "tp=1,pp=1,dp=32", "--format", "json").code == 0
    assert_one_line_error(cli("size", "train", "mpt-30b", "--gpu", "h100-sxm", "--tp", "2", "--software",
                              "llm-foundry"), "needs tensor parallelism")
    assert_one_line_error(cli("plan", "mixtral-8x7b", "--gpus", "64", "--software", "llm-foundry", "--ep-overlap"),
                          "runs no expert parallelism")
    assert stack_parallelism("megatron-core") == ("tp", "pp", "cp", "ep") and stack_parallelism("llm-foundry") == ()
    assert_one_line_error(cli("plan", "gpt-1.7b", "--gpus", "32", "--software", "megatron-2021", "--layout", "cp=2"),
                          "runs data, tensor and pipeline parallelism; cp=2 needs context parallelism")
    # DeepSpeed shards a sequence with Ulysses' all-to-alls, not the K,V ring the planner charges for CP
    assert_one_line_error(cli("plan", "llama-3.1-70b", "--gpus", "64", "--software", "deepspeed", "--layout", "cp=2"),
                          "the deepspeed stack runs data, tensor, pipeline and expert parallelism; cp=2 needs context")
    with pytest.raises(SpecError, match="parallelism must be a list of tp, pp, cp, ep, got 'none'"):
        parse_parallelism("s", "none")
    with pytest.raises(SpecError, match="got \\['dp'\\]"):
        parse_parallelism("s", ["dp"])


def test_the_search_and_the_checks_keep_to_the_zero_stages_a_stack_runs(cli, tmp_path):
    """stacks.yaml zero_stages: torchtitan's FSDP2 (fsdp_reshard_after_forward always / never, or replicas) and
    Composer's sharding strategies run ZeRO-0, 2 and 3 and nothing shards the optimizer states alone; Megatron-LM of
    2021-22 (cfd2e21) had no distributed optimizer; DeepSpeed's pipeline engine asserts ZeRO < 2. The planner used to
    rank ZeRO-1 layouts for torchtitan and ZeRO-2 for Narayanan's Megatron-LM, layouts those stacks cannot run. The
    search now leaves them out and says so; a fixed layout, --zero or `size train --zero` naming one is refused in one
    line; a user catalog's zero_stages is honoured."""
    from aiinfra.errors import SpecError
    from aiinfra.sizing.layout import parse_zero_stages

    base = ("plan", "llama-3.1-70b", "--gpu", "h100-sxm", "--gpus", "64", "--format", "json", "--top", "40")
    titan = cli(*base, "--software", "torchtitan").json()
    assert {x["zero"] for x in titan["facts"]["layouts"]} <= {0, 2, 3}
    assert ("the torchtitan stack shards as ZeRO-0, 2 or 3; the search leaves the other stages out"
            in titan["assumptions"])
    ds = cli(*base, "--software", "deepspeed").json()
    assert not [x for x in ds["facts"]["layouts"] if x["pp"] > 1 and x["zero"] >= 2]
    assert any(x["pp"] > 1 for x in ds["facts"]["layouts"])
    assert "with pipeline parallelism the deepspeed stack runs ZeRO-0 or 1 only" in ds["assumptions"]
    old = cli("plan", "gpt-1.7b", "--gpus", "32", "--software", "megatron-2021", "--format", "json").json()
    assert {x["zero"] for x in old["facts"]["layouts"]} == {0}
    assert_one_line_error(cli(*base, "--software", "torchtitan", "--layout", "zero=1"),
                          "the torchtitan stack shards as ZeRO-0, 2 or 3; zero=1 is none of them")
    assert_one_line_error(cli(*base, "--software", "deepspeed", "--layout", "pp=2,zero=3"),
                          "the deepspeed stack runs ZeRO-0 or 1 with pipeline parallelism; zero=3 with pp=2")
    assert_one_line_error(cli(*base, "--software", "llm-foundry", "--zero", "1"),
                          "the llm-foundry stack shards as ZeRO-0, 2 or 3; ZeRO 1 leaves none to search")
    assert_one_line_error(cli("size", "train", "llama-3.1-8b", "--gpu", "h100-sxm", "--software", "torchtitan",
                              "--zero", "1"), "zero=1 is none of them")
    assert cli(*base, "--software", "deepspeed", "--layout", "pp=2,zero=1").code == 0
    own = tmp_path / "zero.yaml"
    own.write_text("stacks:\n  megatron-core: {zero_stages: [3]}\n")
    mine = cli("--catalog", str(own), *base).json()
    assert {x["zero"] for x in mine["facts"]["layouts"]} == {3}
    for raw, pp, msg in (("none", None, "must be a list of ZeRO stages 0-3"), ([4], None, "got \\[4\\]"),
                         ([], None, "zero_stages must be"), ([True], None, "zero_stages must be"),
                         ([0, 2], [1], "must be among its zero_stages")):
        with pytest.raises(SpecError, match=msg):
            parse_zero_stages("s", raw, pp)


def test_a_tp_overlap_with_no_tensor_parallelism_is_refused(cli):
    """tp_overlap=ring overlaps tensor-parallel collectives. With tp=1 (or on llm-foundry, which runs no TP) there are
    none, and the search holds no such layout: `--layout tp=1,tp_overlap=ring` used to come back as the fastest
    layout that does not fit, TP1·PP1·CP8·DP1 at 158 GB per GPU, with a warning about its memory. It is refused in
    one line; tp_overlap=none with tp=1, and tp_overlap=ring with TP searched, still plan."""
    base = ("plan", "llama-3.1-8b", "--gpu", "h100-sxm", "--gpus", "8", "--format", "json")
    assert_one_line_error(cli(*base, "--layout", "tp=1,tp_overlap=ring"),
                          "tp_overlap=ring overlaps tensor-parallel communication, and tp=1 has none")
    assert_one_line_error(cli("plan", "mpt-7b", "--gpu", "h100-sxm", "--gpus", "8", "--software", "llm-foundry",
                              "--layout", "tp_overlap=ring"),
                          "the llm-foundry stack runs data parallelism only; tp_overlap=ring overlaps")
    assert cli(*base, "--layout", "tp=1,tp_overlap=none").code == 0
    r = cli(*base, "--layout", "tp_overlap=ring")
    assert r.code == 0 and r.err == "", r.err
    y = r.json()["facts"]["your_layout"]
    assert y["tp"] > 1 and y["tp_overlap"] == "ring" and not y["oom"]


def test_interleave_rules_follow_each_stack_schedule():
    """How each stack's interleaved schedule takes a step's micro-batches M on PP stages (stacks.yaml interleave).
    Megatron-Core (schedules.py at d98e8a6, forward_backward_pipelining_with_interleaving): groups of G in [PP, M]
    whose last group holds 0 or at least PP, so 120 on PP16 runs in groups of 20 (16 leaves 8, 17-19 leave 1, 12, 6);
    17 on PP16 in one group of 17. PyTorch's ScheduleInterleaved1F1B: max(1, M // PP) rounds that must divide M, so
    120 on PP16 (7 rounds) is refused, 128 runs rounds of 16, and 8 on PP16 one round of 8. Megatron before 2024-11:
    M a multiple of PP."""
    from aiinfra.sizing.pipeline import interleave_group, microbatch_group

    assert [microbatch_group(M, 16, "groups") for M in (128, 120, 17, 15)] == [16, 20, 17, 0]
    assert [microbatch_group(M, 16, "rounds") for M in (128, 120, 8, 48)] == [16, 0, 8, 16]
    assert [microbatch_group(M, 16, "multiple") for M in (128, 120)] == [16, 0]
    assert microbatch_group(128, 16, "none") == 0
    # no interleave (vp 1, or pp 1): the group is PP, whatever the rule
    assert list(interleave_group(np.array([120, 120, 120]), np.array([16, 16, 1]), np.array([2, 1, 2]), "multiple")) \
        == [0, 16, 1]


@pytest.mark.parametrize("software,batch,fragment", [
    ("megatron-2022", 1920, "cannot run 120 micro-batches per step on pp=16: it needs a number of micro-batches M"),
    ("torchtitan", 1920, "cannot run 120 micro-batches per step on pp=16: it needs M // PP rounds"),
    ("deepspeed", 2048, "deepspeed's pipeline has no interleaved schedule"),
])
def test_interleaved_layout_a_stack_cannot_schedule_is_one_line(software, batch, fragment):
    """A fixed interleaved layout whose micro-batch count the stack's schedule refuses is refused in one line."""
    with pytest.raises(AiinfraError, match=fragment):
        plan_command(model("llama-3.1-405b"), gpu(H100), [2048], global_batch=batch, seq=8192,
                     layout="tp=8,pp=16,vp=2,dp=16,mb=1", options=Options(software=software))


def test_megatron_core_interleaves_micro_batches_no_multiple_of_pp():
    """Megatron-Core runs 120 micro-batches on PP16 with VP2 in groups of 20 (Megatron-LM's error names only a last
    group of 1 to PP − 1): the planner ranks that layout, and its first stage warms up (v − 1)(G − p)/v = 2 more
    micro-batches' activations than the same layout at 128 micro-batches (Megatron-LM get_pp_rank_microbatches:
    (v − 1)·G + 2(p − 1) warm-up chunk forwards)."""
    from aiinfra.sizing.training import training_memory

    res = plan_command(model("llama-3.1-405b"), gpu(H100), [2048], global_batch=1920, seq=8192,
                       layout="tp=8,pp=16,vp=2,dp=16,mb=1")
    assert res.facts["your_layout"]["rank"] >= 1
    m = model("llama-3.1-405b")
    kw = dict(seq=8192, tp=8, pp=16, dp=16, sp=True, vp=2, zero=1)
    at = {M: training_memory(m, num_microbatches=M, **kw) for M in (120, 128)}
    # the first stage, now the fullest, holds p micro-batches × the interleave penalty 1 + (p − 1)/(p·v), plus 2
    first = at[120].activations.parts[0]
    assert float(first.inputs["in_flight"]) * float(first.inputs["interleave_penalty"]) == pytest.approx(
        16 * (1 + 15 / 32) + 2)
    assert at[120].total.value > at[128].total.value

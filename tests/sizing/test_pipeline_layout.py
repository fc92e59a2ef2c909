"""Megatron's custom pipeline layout strings (--pipeline-model-parallel-layout): parsed, checked and honoured."""

from __future__ import annotations

import pytest

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.errors import LayoutError, SpecError
from aiinfra.perf.training import step_time
from aiinfra.plan.commands import plan_command
from aiinfra.plan.search import Options
from aiinfra.sizing.pipeline import pipeline_edge_slots
from aiinfra.sizing.pipeline_layout import PipelineLayout
from aiinfra.sizing.training import training_memory
from tests.conftest import assert_one_line_error

DSV3_H100 = "Et|(tt|)*30mL"


def test_parse_unrolls_as_megatron_does():
    """Megatron-LM megatron/core/transformer/pipeline_parallel_layer_layout.py parse_str_to_list (read 2026-12-06 at
    d98e8a6): its docstring's example "Ettt|(tt|)*29,m|L" is [E,t,t,t] + [t,t]×29 + [m] + [L] (commas cosmetic); x*n
    repeats one symbol, (…)*n a group."""
    lay = PipelineLayout.parse("Ettt|(tt|)*29,m|L")
    assert lay.stages == ("Ettt",) + ("tt",) * 29 + ("m", "L")
    assert PipelineLayout.parse("Et*3|(tt|)*29,m|L").stages == lay.stages
    assert PipelineLayout.parse("Et*4|(t*4|)*14tmL").stages == ("Etttt",) + ("tttt",) * 14 + ("tmL",)


def test_stages_go_round_robin_over_the_ranks():
    """Megatron's layout documentation (docs/source/api-guide/pipeline_parallel_layout.md) places "Et*3|(tt|)*29,m|L"
    on PP16·VPP2 as: rank 0 the embedding + 3 layers, then 2; ranks 1-13 2 and 2; rank 14 2 and the MTP layer; rank
    15 2 and the loss. Decoder layers per GPU: 5 on the first, 4 on the fullest middle one, 2 on the last.
    Megatron-Bridge's DeepSeek-V3 H100 recipe layout "Et|(tt|)*30mL" on PP8 (VP4): 7, 8 and 6 (+ MTP and loss);
    its (8, 1) layout_map entry (recipes/deepseek/deepseek_v3.py, tag v0.5.1: embedding + 8, 8 × 6, 5 + mtp + loss)
    gives 8, 8, 5."""
    assert PipelineLayout.parse("Et*3|(tt|)*29,m|L").gpu_layers(16) == (5, 4, 2)
    lay = PipelineLayout.parse(DSV3_H100)
    assert (lay.n_stages, lay.vp(8), lay.gpu_layers(8)) == (32, 4, (7, 8, 6))
    assert PipelineLayout.parse("Et*8|(t*8|)*6t*5mL").gpu_layers(8) == (8, 8, 5)
    lay.check(61, 1, 8)  # DeepSeek-V3: 61 decoder layers, one MTP layer


@pytest.mark.parametrize(("text", "pp", "vp", "mtp", "message"), [
    ("Ex|L", 2, None, 1, "'x' is not a layer symbol"),
    ("(Et|tL", 2, None, 1, "'(' is not a layer symbol"),
    ("", 1, None, 1, "empty"),
    (DSV3_H100, 6, None, 1, "PP=6 does not divide"),
    (DSV3_H100, 8, 2, 1, "VP=2 conflicts"),
    (DSV3_H100, 1, None, 1, "needs PP > 1"),
    ("t|(tt|)*30mLE", 8, None, 1, "first layer must be the embedding"),
    ("Et|(tt|)*30Lm", 8, None, 1, "last layer must be the loss"),
    ("EEt|(tt|)*30mL", 8, None, 1, "exactly once"),
    ("Et|(tt|)*29t|mtL", 8, None, 1, "decoder layers must come before the MTP layers"),
    ("Ett|(tt|)*30mL", 8, None, 1, "places 62 decoder layers"),
    ("Et|(tt|)*30L", 8, None, 1, "--no-mtp"),
    ("Et|(tt|)*30mL", 8, None, 0, "places 1 MTP layers"),
    ("Et*3|(tt|)*29,m|L", 16, None, 1, "standalone MTP"),
])
def test_what_megatron_refuses_is_refused(text, pp, vp, mtp, message):
    """validate_layer_layout's assertions (embedding first and once, loss last and once, the decoder and MTP counts,
    decoder layers before MTP), the stage count divisible by PP and VP matching it (TransformerConfig
    __post_init__), each as one sentence. MTP on another rank than the loss (Megatron's mtp_standalone) is accepted
    by Megatron but not modelled here: refused, not silently placed."""
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        PipelineLayout.parse(text).check(61, mtp, pp, vp)


def test_a_layout_that_spells_the_account_split_times_the_same():
    """Llama 3.1 405B on PP8·VP8 with the embedding and the loss each taking a layer's slot (Megatron-Bridge's
    account_for_embedding/loss_in_pipeline_split, 128 slots, 2 per virtual stage) is the layout
    "Et|(tt|)*62tL": the same per-GPU loads, so the same step time and memory."""
    m, g = model("llama-3.1-405b"), gpu("h100-sxm")
    kw = dict(tp=8, pp=8, dp=8, cp=2, vp=8, micro_batch=1, global_batch=1536, seq=8192, dtype="fp8")
    acc = step_time(m, g, pipeline_split="account", **kw)
    lay = step_time(m, g, pipeline_split="Et|(tt|)*62tL", **kw)
    assert float(lay.step.value) == pytest.approx(float(acc.step.value), rel=1e-12)
    mk = dict(seq=8192, tp=8, pp=8, dp=8, cp=2, vp=8, sp=True, micro_batch=1, num_microbatches=24, zero=1)
    edge = pipeline_edge_slots(m, True, "Et|(tt|)*62tL")
    assert float(training_memory(m, edge_slots=edge, **mk).total.value) == pytest.approx(
        float(training_memory(m, edge_slots=True, **mk).total.value), rel=1e-12)


def test_the_heaviest_stage_sets_the_pace():
    """Moving four layers off the last GPU onto the middle ones ("E|(t*…)…") changes which stage is slowest: a
    layout that loads one middle GPU with 12 layers of 405B's 126 is slower than the recipe's balanced split."""
    m, g = model("llama-3.1-405b"), gpu("h100-sxm")
    kw = dict(tp=8, pp=8, dp=16, vp=1, micro_batch=1, global_batch=1536, seq=8192, dtype="fp8")
    balanced = step_time(m, g, pipeline_split="Et*15|(t*16|)*6t*15L", **kw)
    lopsided = step_time(m, g, pipeline_split="Et*15|t*24|(t*14|)*5t*17L", **kw)
    assert float(lopsided.step.value) > 1.3 * float(balanced.step.value)


def test_plan_searches_only_the_stages_the_layout_names(cli):
    """A layout string fixes PP·VP: the search tries each PP dividing its 32 stages (VP the quotient), the fixed
    layout is ranked among them, and the note names each GPU's load."""
    m, g = model("deepseek-v3"), gpu("h100-sxm")
    opt = Options(dtype="fp8", pipeline_split=DSV3_H100, moe_dispatcher="hybridep", recompute=(0, 1))
    res = plan_command(m, g, [1024], global_batch=8192, seq=4096, options=opt, top=3,
                       layout="tp=2,pp=8,ep=64,etp=1,mb=1")
    y = res.facts["your_layout"]
    assert (y["pp"], y["vp"]) == (8, 4)
    assert all(r["pp"] * r["vp"] == 32 for r in res.facts["layouts"])
    assert any("first / fullest middle / last GPU" in n for n in res.facts["notes"])
    base = ["plan", "deepseek-v3", "--gpu", "h100-sxm", "--gpus", "1024", "--global-batch", "8192", "--seq", "4096"]
    assert_one_line_error(cli(*base, "--pipeline-split", DSV3_H100, "--layout", "tp=2,pp=8,vp=2"), "VP=2 conflicts")
    assert_one_line_error(cli(*base, "--pipeline-split", DSV3_H100, "--layout", "tp=2,vp=3"), "VP=3 does not divide")
    assert_one_line_error(cli(*base, "--pipeline-split", DSV3_H100, "--no-mtp"), "places 1 MTP layers")
    assert_one_line_error(cli(*base, "--pipeline-split", "Et|(tt|)*30mX"), "'X' is not a layer symbol")
    assert_one_line_error(cli(*base, "--pipeline-split", "accout"), "must be one of auto, even, account or a Megatron")
    assert_one_line_error(cli("plan", "gpt-1.7b", "--gpus", "32", "--software", "megatron-2021",
                              "--pipeline-split", "Et|tL"), "uneven")


def test_size_train_takes_the_interleave_from_the_layout(cli):
    """`size train --pp 8 --pipeline-split 'Et|(tt|)*30mL'` is VP4 without --interleave; a different --interleave
    is refused, as Megatron refuses a VP that conflicts with the layout."""
    base = ["size", "train", "deepseek-v3", "--gpu", "h100-sxm", "--tp", "2", "--pp", "8", "--dp", "64", "--ep", "64",
            "--etp", "1", "--seq", "4096", "--zero", "1", "--precision", "fp8"]
    r = cli(*base, "--pipeline-split", DSV3_H100, "--format", "json")
    v4 = cli(*base, "--pipeline-split", DSV3_H100, "--interleave", "4", "--format", "json")
    assert r.code == 0 and r.json() == v4.json()
    assert_one_line_error(cli(*base, "--pipeline-split", DSV3_H100, "--interleave", "2"), "VP=2 conflicts")
    assert_one_line_error(cli(*base, "--pipeline-split", "Et|(tt|)*29mL"), "PP=8 does not divide")
    with pytest.raises(LayoutError):
        pipeline_edge_slots(model("deepseek-v3"), True, DSV3_H100).check(61, 1, 8, 2)

"""`aiinfra plan` says how its step time did on the published runs of the same model (plan.validation.track_record)."""

from __future__ import annotations

import json

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.plan import fidelity, validation
from aiinfra.plan.commands import plan_command

OSS_LAYOUT = "tp=1,pp=4,ep=8,dp=16,mb=1,vp=1,recompute=none,zero=1"


def test_a_model_whose_published_runs_all_ran_slower_gets_a_warning(cli, monkeypatch):
    """GPT-OSS-120B: Megatron-Bridge 26.04.01 ran it on 64 DGX-H100, B200, B300, GB200 and GB300 (5,824 / 13,568 /
    15,232 / 16,640 / 19,200 tokens/s/GPU; catalog training_validation.yaml). `plan` carries every run with its
    prediction in the facts and the error range in a note; with the H100 run now within 5% the runs sit on both
    sides, so no warning. Of its runs, the two on DGX-B200 and DGX-B300 (EP8 inside a node) both ran slower than this
    model predicts, by 1.23x or more: held to those two, `plan` says so on stderr, and stdout stays one JSON
    document."""
    args = ("plan", "gpt-oss-120b", "--gpus", "64", "--seq", "4096", "--global-batch", "1280", "--layout", OSS_LAYOUT)
    r = cli(*args, "--format", "json")
    assert r.code == 0, r.err
    runs = json.loads(r.out)["facts"]["published_runs"]
    assert {x["gpu"]: x["published_tokens_per_gpu"] for x in runs} == {
        "h100-sxm": 5824, "b200": 13568, "b300": 15232, "gb200": 16640, "gb300": 19200}
    assert not any(x["fitted_on"] for x in runs) and min(x["error"] for x in runs) < 0.15
    assert "ran slower" not in r.err
    ep8 = [x for x in runs if x["gpu"] in ("b200", "b300")]
    assert all(x["error"] > 0.2 for x in ep8)
    monkeypatch.setattr(validation, "track_record", lambda m: [dict(x) for x in ep8])
    r = cli(*args, "--format", "json")
    assert r.code == 0 and len(json.loads(r.out)["facts"]["published_runs"]) == 2
    assert "every published run of gpt-oss-120b in the validation set (2) ran slower than this model predicts" in r.err
    table = cli(*args)
    assert table.code == 0 and "published runs of gpt-oss-120b: 2" in table.out and "ran slower" in table.err


def test_a_config_json_of_the_same_architecture_has_the_same_runs(tmp_path):
    """Runs belong to an architecture, not a name: GPT-OSS-120B's config.json under another directory name gets the
    catalog model's five runs; a changed architecture (another vocabulary) gets none."""
    from aiinfra.catalog.loader import DATA_DIR

    cfg = json.loads((DATA_DIR / "models" / "gpt-oss-120b.json").read_text())
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text(json.dumps(cfg))
    assert len(validation.track_record(model(str(tmp_path / "mine" / "config.json")))) == 5
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "config.json").write_text(json.dumps({**cfg, "vocab_size": cfg["vocab_size"] + 64}))
    assert validation.track_record(model(str(tmp_path / "cut" / "config.json"))) == []


def test_runs_on_both_sides_give_a_note_and_no_warning_and_a_model_without_runs_neither():
    """Qwen3-30B-A3B has nine fully specified Megatron-Bridge runs (two of them the MoE host fit; 26.04.01's H100 run
    since its recipe fixes recompute) on H100, B200, B300, GB200 and GB300, predicted within about ±10% on both
    sides: a note with the range, no warning. A model with no published run carries an empty list. Each run's
    prediction is the fidelity report's for that row."""
    res = plan_command(model("qwen3-30b-a3b"), gpu("b200"), [8], global_batch=512, seq=4096,
                       layout="tp=1,pp=1,ep=8,dp=8,mb=4,vp=1,recompute=none,zero=1")
    runs = res.facts["published_runs"]
    assert len(runs) == 9 and sum(x["fitted_on"] for x in runs) == 2
    assert min(x["error"] for x in runs) < 0 < max(x["error"] for x in runs)
    assert any(n.startswith("published runs of qwen3-30b-a3b: 9") and "2 fitted on" in n for n in res.facts["notes"])
    assert not any("published run" in w for w in res.warnings)
    row = next(r for r in fidelity.rows() if r["key"] == runs[0]["row"])
    assert runs[0]["error"] == round(fidelity.predict(row).error, 4)
    none = plan_command(model("mistral-small-24b"), gpu("h100-sxm"), [8], global_batch=64, seq=4096,
                        layout="tp=1,pp=1,dp=8,mb=1,vp=1,recompute=full,zero=1")
    assert none.facts["published_runs"] == [] and not any("published runs" in n for n in none.facts["notes"])


def test_the_note_gives_the_range_on_the_gpu_planned_for():
    """Llama 3.1 8B's published runs span A100 to GB300, and MLPerf v5.1's 512-GPU strong-scaling runs on GB200/GB300
    (0.09 s steps) run about 1.7x their published rate in the model: the overall range alone would tell someone
    planning on an H100 SXM that the model may be +68% off. The note also gives the range over the runs on the GPU
    planned for (here Megatron-Bridge's and NeMo's three h100-sxm rows and Cisco's two MLPerf v5.1 runs, one sequence
    per data-parallel rank, at TP1 +14% and TP2 +47%), and leaves it out where every run is on it."""
    res = plan_command(model("llama-3.1-8b"), gpu("h100-sxm"), [8], global_batch=128, seq=8192,
                       layout="tp=1,pp=1,dp=8,mb=1,vp=1,recompute=none,zero=1")
    note = next(n for n in res.facts["notes"] if n.startswith("published runs of llama-3.1-8b"))
    here = [x["error"] for x in res.facts["published_runs"] if x["gpu"] == "h100-sxm"]
    assert len(here) == 5 and f"on h100-sxm (5): {min(here):+.0%} to {max(here):+.0%}" in note
    assert max(x["error"] for x in res.facts["published_runs"]) > 0.6 > max(here)
    single = plan_command(model("llama-2-7b"), gpu("h100-sxm"), [8], global_batch=128, seq=4096,
                          layout="tp=1,pp=1,dp=8,mb=1,vp=1,recompute=none,zero=1")
    note = next(n for n in single.facts["notes"] if n.startswith("published runs of llama-2-7b: 1 (h100-sxm)"))
    assert "on h100-sxm (" not in note


def test_one_micro_batch_per_rank_layouts_get_the_regime_note():
    """MLPerf Training v5.1's Llama 3.1 8B runs take one sequence per data-parallel rank per step under the
    distributed optimizer (NVIDIA's on GB200/GB300, Lambda's, Cisco's H100 runs, Dell's B200/B300 runs, and the DGX
    B200 runs of University of Florida, Oracle and Verda on 8 to 256 GPUs; catalog training_validation.yaml): the
    model ran 12 of those 18 more than 10% fast (−6% to +69%). A plan whose layout
    takes one micro-batch per rank per step under ZeRO 1-2 says so in a note, any model; one that accumulates
    micro-batches, or shards with ZeRO-3, does not."""
    from aiinfra.plan.commands import REGIME_FAST

    runs = validation.single_microbatch_record()
    rows = {r["key"]: r for r in fidelity.rows()}
    assert len(runs) == 18 and all(rows[x["row"]]["batch"] == fidelity.split(rows[x["row"]])[3] * rows[x["row"]]["mb"]
                                   and rows[x["row"]]["zero"] in (1, 2) for x in runs)
    errs = [x["error"] for x in runs]
    fast = sum(e > REGIME_FAST for e in errs)
    assert fast == 12 and min(errs) < 0 < max(errs)

    def regime_notes(res):
        return [n for n in res.facts["notes"] if "one micro-batch per data-parallel rank" in n]

    short = plan_command(model("llama-3.1-8b"), gpu("h100-sxm"), [128], global_batch=64, seq=8192)
    w = short.facts["layouts"][0]
    assert w["dp"] * w["mb"] == 64 and w["zero"] in (1, 2)
    (note,) = regime_notes(short)
    assert note.startswith("the #1 layout takes one") and f"{len(runs)} published runs" in note
    assert f"{min(errs):+.0%} to {max(errs):+.0%}" in note and f"{fast} of them more than 10% fast" in note
    yours = plan_command(model("qwen2.5-7b"), gpu("h100-sxm"), [16], global_batch=16, seq=4096,
                         layout="tp=1,pp=1,dp=16,mb=1,zero=1")
    assert [n.split(" takes")[0] for n in regime_notes(yours)] == ["your layout"]
    long = plan_command(model("llama-3.1-8b"), gpu("h100-sxm"), [128], global_batch=1024, seq=8192)
    assert regime_notes(long) == []
    fsdp = plan_command(model("llama-3.1-8b"), gpu("h100-sxm"), [8], global_batch=8, seq=8192,
                        layout="tp=1,pp=1,dp=8,mb=1,zero=3")
    assert regime_notes(fsdp) == []

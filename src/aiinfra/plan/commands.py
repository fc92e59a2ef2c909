"""`aiinfra plan`: the library function behind the command (search, or one fixed layout ranked in it).

The CLI and the web page parse their input, call `plan_command` and render the Result; every number
the table shows is in its facts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from aiinfra.contract import Facts, Quantity, command
from aiinfra.errors import LayoutError, SpecError
from aiinfra.explain import Result, quantity
from aiinfra.perf.host import check_cuda_graph_scope, check_graphed_layout
from aiinfra.perf.stacks import TP_MODES, stack
from aiinfra.plan.search import REASON, Options, PlanResult, distinct_layouts, edge_slots, plan, tp_modes
from aiinfra.plan.space import RECOMPUTE_NAMES
from aiinfra.sizing.layout import (PARALLEL_AXES, ZERO_STAGES, check_kv_split, check_layout, check_stack_parallelism,
                                   check_stack_zero, parallelism_phrase, stack_parallelism, stack_zero_stages,
                                   zero_phrase)
from aiinfra.sizing.offload import (check_activation_offload, check_optimizer_offload, optimizer_offload,
                                   parse_offload)
from aiinfra.sizing.pipeline import EdgeSlots, check_interleave
from aiinfra.sizing.pipeline_layout import PipelineLayout
from aiinfra.sizing.recompute import check_recompute_modules
from aiinfra.sizing.states import check_quantized_params
from aiinfra.sizing.training import device_memory
from aiinfra.specs import GpuSpec, ModelSpec

LAYOUT_KEYS = ("tp", "pp", "cp", "dp", "ep", "etp", "mb", "vp", "recompute", "zero", "offload", "offload_layers",
               "tp_overlap")


class PlanFacts(Facts):
    model: str
    gpu: str
    gpus: int
    seq: int
    global_batch_sequences: int
    global_batch: str
    candidates_evaluated: int
    fit_in_memory: int
    objective: str
    best_layout: str
    micro_batch: int
    interleave: int
    recompute: str
    zero: int
    tp_overlap: str
    step_time: Quantity
    tokens_per_second: Quantity
    tflops_per_gpu: Quantity
    mfu: Quantity
    mfu_full_attention: Quantity
    memory_per_gpu: Quantity
    device_memory: Quantity
    headroom: Quantity
    layouts: list[dict]
    why_not_the_others: list[str]
    notes: list[str]
    published_runs: list[dict]


# Beyond this the published runs of a model all ran slower (or all faster) than predicted: say so with the answer.
SYSTEMATIC_GAP = 0.15


def _add_track_record(res: Result, m: ModelSpec, gpu_key: str | None = None) -> None:
    """How this step-time model did on the published runs of `m` (catalog training_validation.yaml): every run in
    the facts, their error range in the notes (and the range on `gpu_key`, the GPU planned for, where it has runs
    and others do too), and a warning when every run erred the same way by more than 15%."""
    from aiinfra.plan.validation import track_record

    runs = track_record(m)
    res.facts["published_runs"] = runs
    if not runs:
        return
    errs = [x["error"] for x in runs]
    lo, hi = min(errs), max(errs)
    fitted = sum(x["fitted_on"] for x in runs)
    where = ", ".join(sorted({x["gpu"] for x in runs})) + (f"; {fitted} fitted on" if fitted else "")
    here = [x["error"] for x in runs if x["gpu"] == gpu_key]
    on_gpu = f"; on {gpu_key} ({len(here)}): {min(here):+.0%} to {max(here):+.0%}" if 0 < len(here) < len(runs) else ""
    res.facts["notes"].append(f"published runs of {m.name}: {len(runs)} ({where}); on them this model predicted "
                              f"{lo:+.0%} to {hi:+.0%} tokens/s against the measured{on_gpu} (catalog "
                              "training_validation.yaml)")
    if len(runs) >= 2 and (lo > SYSTEMATIC_GAP or hi < -SYSTEMATIC_GAP):
        way, ratio = ("slower", (1 + lo, 1 + hi)) if lo > 0 else ("faster", (1 / (1 + lo), 1 / (1 + hi)))
        res.warnings.append(
            f"every published run of {m.name} in the validation set ({len(runs)}) ran {way} than this model predicts, "
            f"by {min(ratio):.2f}-{max(ratio):.2f}x: a cost particular to this model is "
            f"{'missing' if lo > 0 else 'overcharged'}; read its step time as {'optimistic' if lo > 0 else 'pessimistic'}")


# A published run counts as fast in the regime note when the model predicted it this much faster than it ran.
REGIME_FAST = 0.10


def _add_regime_record(res: Result, which: str, layout: dict, global_batch: int) -> None:
    """Where `layout` takes one micro-batch per data-parallel rank per step under ZeRO 1-2, a note with how this
    step-time model did on the published runs of that regime (plan.validation.single_microbatch_record): it has run
    most of them fast."""
    from aiinfra.plan.validation import one_microbatch_per_rank, single_microbatch_record

    if not one_microbatch_per_rank(layout["zero"], global_batch, layout["dp"], layout["mb"]):
        return
    runs = single_microbatch_record()
    if not runs:
        return
    errs = [x["error"] for x in runs]
    fast = sum(e > REGIME_FAST for e in errs)
    res.facts["notes"].append(
        f"{which} takes one micro-batch per data-parallel rank per step (ZeRO {layout['zero']}): on the "
        f"{len(runs)} published runs that do, this model predicted {min(errs):+.0%} to {max(errs):+.0%} tokens/s "
        f"against the measured, {fast} of them more than {REGIME_FAST:.0%} fast, so read its step time as optimistic "
        "(catalog training_validation.yaml)")


def parse_layout(text: str | None) -> dict[str, Any]:
    """'tp=8,pp=16,cp=1,dp=128,mb=1,vp=4,recompute=selective,zero=1' → constraints; keys left out are searched."""
    if text is None or text == "":
        return {}
    out: dict[str, Any] = {}
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        value = value.strip().lower()
        if not sep or key not in LAYOUT_KEYS:
            raise SpecError(f"--layout '{item}' is not one of {', '.join(k + '=…' for k in LAYOUT_KEYS)}")
        if key in out:  # two values for one key: neither is silently the answer
            raise SpecError(f"--layout names {key} twice")
        if key == "offload":  # as size train reads it, less the share, which offload_layers gives here
            try:
                code, share = parse_offload(value)
            except SpecError:
                code, share = 0, 0.0
            if share != 1.0:
                raise SpecError(f"--layout offload={value} must combine none, optimizer, weights, activations with + "
                                "(the activations of some layers: offload_layers=N)")
            out[key] = code
            continue
        if key == "tp_overlap":
            if value not in TP_MODES:
                raise SpecError(f"--layout tp_overlap={value} must be {' or '.join(TP_MODES)}")
            out[key] = TP_MODES.index(value)
            continue
        if key == "recompute":
            if value not in RECOMPUTE_NAMES:
                raise SpecError(f"--layout recompute={value} must be none, selective or full")
            out[key] = RECOMPUTE_NAMES.index(value)
            continue
        if not (value.isascii() and value.removeprefix("-").isdigit()):
            raise SpecError(f"--layout {key}={value} must be a whole number")
        n = int(value)
        if key == "zero" and n not in (0, 1, 2, 3):
            raise SpecError(f"--layout zero={n} must be 0, 1, 2 or 3")
        if key != "zero" and n < 1:
            raise SpecError(f"--layout {key}={n} must be ≥ 1")
        out[key] = n
    if not out:
        raise SpecError(f"--layout '{text}' names no key; give one or more of {', '.join(k + '=…' for k in LAYOUT_KEYS)}")
    return out


def _pipeline_fixed(lay: dict, edge: bool | EdgeSlots | PipelineLayout) -> tuple[int, int]:
    """(PP, VP) to check a fixed layout with. Under a pipeline layout string VP is its stage count over PP; with PP
    left out, a VP given fixes PP, and otherwise any divisor will do for the checks (the search tries each)."""
    if not isinstance(edge, PipelineLayout):
        return lay.get("pp", 1), lay.get("vp", 1)
    pp = lay.get("pp")
    if pp is None and "vp" in lay:
        if edge.n_stages % lay["vp"]:
            raise LayoutError(f"VP={lay['vp']} does not divide the {edge.n_stages} stages of the pipeline layout "
                              f"'{edge.text}'")
        pp = edge.n_stages // lay["vp"]
    pp = edge.n_stages if pp is None else pp
    return pp, lay.get("vp", edge.vp(pp))


def _check_buildable(m: ModelSpec, gpus: list[int], lay: dict, global_batch: int, seq: int,
                     edge: bool | EdgeSlots | PipelineLayout, mtp: bool = True, software: str = "megatron-core") -> None:
    """One sentence naming the first constraint a fixed layout breaks (`edge`: the embedding and the loss
    take a pipeline slot, or Megatron's pipeline layout places every layer: plan.search.edge_slots; `software`: the
    stack whose interleaved schedule must take the micro-batches)."""
    if "etp" in lay and not m.is_moe:
        raise LayoutError(f"etp (the experts' tensor-parallel size) applies to MoE models; {m.name} is dense")
    pp, vp = _pipeline_fixed(lay, edge)
    model_par = lay.get("tp", 1) * lay.get("pp", 1) * lay.get("cp", 1)
    check_layout(m, tp=lay.get("tp", 1), pp=pp, cp=lay.get("cp", 1), vp=vp, seq=seq, edge_slots=edge, mtp=mtp)
    check_kv_split(m, lay.get("tp", 1), software)
    for n in gpus:
        if "dp" in lay and model_par * lay["dp"] != n and all(k in lay for k in ("tp", "pp", "cp")):
            raise LayoutError(f"tp·pp·cp·dp = {model_par * lay['dp']} is not the GPU count {n}")
        if n % model_par:
            raise LayoutError(f"tp·pp·cp = {model_par} does not divide the GPU count {n}")
    dp = lay.get("dp", gpus[0] // model_par)
    check_layout(m, tp=lay.get("tp", 1), pp=pp, dp=dp, cp=lay.get("cp", 1), ep=lay.get("ep", 1),
                 vp=vp, seq=seq, etp=lay.get("etp"), edge_slots=edge, mtp=mtp)
    mb = lay.get("mb", 1)
    if global_batch % (dp * mb):
        raise LayoutError(f"dp·mb = {dp * mb} does not divide the global batch of {global_batch} sequences")
    pp_fixed = "pp" in lay or (isinstance(edge, PipelineLayout) and "vp" in lay)
    if pp_fixed:
        check_interleave(global_batch // (dp * mb), pp, vp, stack(software).interleave, software + "'s")


def _check_ep_overlap(lay: dict, edge: bool | EdgeSlots | PipelineLayout) -> None:
    """One sentence naming what Megatron refuses with --overlap-moe-expert-parallel-comm (TransformerConfig
    __post_init__ at d98e8a6) in a fixed layout: EP 1, PP > 1 without interleaving, full recompute."""
    if lay.get("ep", 2) == 1:
        raise LayoutError("--ep-overlap needs expert parallelism: ep=1 leaves no all-to-all to overlap")
    pp, vp = _pipeline_fixed(lay, edge)
    if "pp" in lay and pp > 1 and vp == 1 and ("vp" in lay or isinstance(edge, PipelineLayout)):
        raise LayoutError(f"--ep-overlap with pp={pp} needs the interleaved schedule (Megatron requires vp > 1)")
    if lay.get("recompute") == 2:
        raise LayoutError("--ep-overlap runs no full recompute (Megatron refuses the pair): use recompute=selective "
                          "or none")


def _graph_assumption(m: ModelSpec, opt: Options) -> list[str]:
    """What the answer assumes about CUDA graphs, where it matters: the host time of a MoE model's layers."""
    graphs = ", ".join(opt.cuda_graph_scope)
    if m.is_moe and stack(opt.software).moe_module_s:
        return [f"per-layer CUDA graphs of {graphs}: the host issues only the MoE layers' linear modules outside them"
                if graphs else "eager MoE layers: no CUDA graphs (--cuda-graph-scope captures Megatron's per-layer "
                "scopes)"]
    return [f"per-layer CUDA graphs of {graphs}: no host time is charged for dense layers, so they change nothing "
            "here"] if graphs else []


def _check_offload(m: ModelSpec, lay: dict, software: str) -> None:
    """One sentence naming the activation-offload rule a fixed layout breaks: offload_layers' own (it counts layers
    whose activations go, so offload must include activations) and its stack's (sizing.offload
    check_activation_offload), and the stack's optimizer-offload rule (check_optimizer_offload: whether it runs one,
    at which ZeRO stages)."""
    if lay.get("offload", 0) & 1:
        check_optimizer_offload(software, lay.get("zero"))
    if "offload_layers" in lay:
        if "offload" in lay and not lay["offload"] & 4:
            raise LayoutError(f"offload_layers={lay['offload_layers']} counts layers whose activations are offloaded; "
                              "add activations to offload= or drop offload_layers")
        if lay["offload_layers"] > m.layers:
            raise LayoutError(f"offload_layers={lay['offload_layers']}: {m.name} has {m.layers} layers")
    if lay.get("offload", 0) & 4 or "offload_layers" in lay:
        # a share is searched unless offload_layers fixes it; only a fixed one can break every_layer
        check_activation_offload(m, software, share=lay.get("offload_layers", 0) / m.layers, pp=lay.get("pp", 1),
                                 recompute=lay.get("recompute", 0))


def check_moe_options(m: ModelSpec, opt: Options) -> None:
    """One line for a MoE-only option on a dense model (--ep-overlap, --moe-sync-free), which would change nothing."""
    for flag, on, what in (("--ep-overlap", opt.ep_overlap, "overlaps the MoE all-to-all"),
                           ("--moe-sync-free", opt.moe_sync_free, "drops the host sync before each MoE all-to-all")):
        if on and not m.is_moe:
            raise SpecError(f"{flag} {what}; {m.name} is dense")


def _offload_assumption(software: str, offloads: tuple[int, ...]) -> list[str]:
    """What the stack's optimizer offload puts in host memory, where the search may offload the optimizer."""
    rule = optimizer_offload(software)
    if not any(o & 1 for o in offloads):
        return []
    if not rule.runs:
        return [f"the {software} stack runs no optimizer offload; the search leaves it out"]
    zero = "" if rule.zero_stages == ZERO_STAGES else f", at {zero_phrase(rule.zero_stages)} only"
    return [f"optimizer offload as the {software} stack runs it: {rule.phrase()}{zero} "
            f"(catalog stacks.{software}.optimizer_offload)"]


def _zero_assumption(software: str) -> list[str]:
    """What the search leaves out of ZeRO for a stack that cannot run every stage (stacks.yaml zero_stages)."""
    own, with_pp = stack_zero_stages(software)
    out = [f"the {software} stack shards as {zero_phrase(own)}; the search leaves the other stages out"
           ] if own != ZERO_STAGES else []
    return out + ([f"with pipeline parallelism the {software} stack runs {zero_phrase(with_pp)} only"]
                  if with_pp != own else [])


def _check_tp_overlap(lay: dict, software: str) -> None:
    """A TP overlap mode other than none overlaps tensor-parallel collectives: with tp=1, or on a stack that runs no
    TP, there are none, and the search has no such layout to complete (it used to answer with an out-of-memory one)."""
    mode = lay.get("tp_overlap", 0)
    if not mode:
        return
    axes = stack_parallelism(software)
    if "tp" not in axes:
        raise LayoutError(f"the {software} stack runs {parallelism_phrase(axes)}; "
                          f"tp_overlap={TP_MODES[mode]} overlaps tensor-parallel communication")
    if lay.get("tp") == 1:
        raise LayoutError(f"tp_overlap={TP_MODES[mode]} overlaps tensor-parallel communication, and tp=1 has none: "
                          "drop tp_overlap or set tp above 1")


def _widen(m: ModelSpec, opt: Options, lay: dict) -> Options:
    """The search space must hold the fixed values, whatever the default lists say."""
    def add(values: tuple | None, key: str) -> tuple | None:
        if values is None:  # None already means every value that divides
            return None
        return tuple(sorted(set(values) | ({lay[key]} if key in lay else set())))

    if "tp_overlap" in lay and lay["tp_overlap"] not in tp_modes(opt):
        if not opt.sequence_parallel:
            raise SpecError(f"--layout tp_overlap={TP_MODES[lay['tp_overlap']]} needs sequence parallelism "
                            "(Megatron-LM overlaps TP communication only with --sequence-parallel); drop --no-sp")
        offered = " or ".join(TP_MODES[i] for i in tp_modes(opt))
        raise SpecError(f"--layout tp_overlap={TP_MODES[lay['tp_overlap']]}: the {opt.software} stack offers {offered} "
                        "(catalog stacks.yaml tp_overlap_modes)")
    fractions = {"offload_fractions": (lay["offload_layers"] / m.layers,)} if "offload_layers" in lay else {}
    return Options(**{**opt.__dict__, "micro_batches": add(opt.micro_batches, "mb"),
                      "interleaves": add(opt.interleaves, "vp"), "recompute": add(opt.recompute, "recompute"),
                      "zero_stages": add(opt.zero_stages, "zero"), "context_parallel": add(opt.context_parallel, "cp"),
                      "offloads": add(opt.offloads, "offload"), **fractions})


def _yours(r: PlanResult, lay: dict) -> dict | None:
    """The best candidate matching the fixed keys (fitting if any fits), with its rank among layouts."""
    ev = r.evaluated
    sp = ev.space
    # the layout's keys are the space's field names but for tp_overlap (field tpo); offload_layers is searched as the
    # share of the layers it is (plan.search offload_fractions)
    fixed = {("tpo" if k == "tp_overlap" else k): v for k, v in lay.items() if k != "offload_layers"}
    if lay.get("recompute") == 2:  # "full" means every layer; partial shares are searched only when left out
        fixed["rfrac"] = 1.0
    idx = sp.matching(**fixed)
    if idx.size == 0:
        return None
    raw = ev.seconds_per_token * (sp.gpus if r.objective == "cost" else 1.0)
    fitting = idx[ev.fits[idx]]
    pool = fitting if fitting.size else idx
    i = int(pool[np.argmin(raw[pool])])
    row = r.row_of(i)
    # Rank among distinct layouts (best candidate of each), counting only fitting ones. A fitting layout that is not
    # the best completion of its own split is ranked as one more entry, so its split's best can outrank it
    # ("#2 of 2", never "#2 of 1").
    score = np.where(ev.fits, raw, np.inf)
    bests = np.asarray(distinct_layouts(sp, score, sp.n_base), dtype=np.int64)
    better = int(np.sum(raw[bests] < raw[i] * (1 - 1e-9)))
    row["rank"] = better + 1
    fits = bool(ev.fits[i])
    row["layouts_ranked"] = int(bests.size) + int(fits and i not in bests)
    row["oom"] = not fits
    win = int(bests[0]) if bests.size else i
    row["speedup_of_best"] = float(raw[i] / raw[win])
    pa = ev.parts_at([i, win])
    diff = {k: v[0] - v[1] for k, v in pa.items()}
    row["why_slower"] = [f"{REASON.get(k, k)} +{diff[k] * 1e3:,.0f} ms" for k in sorted(diff, key=diff.get, reverse=True)
                         if diff[k] > 0][:3]
    return row


def _fixed_sentence(y: dict, best: dict) -> str:
    what = f"{y['layout']} mb{y['mb']} v{y['vp']} {y['recompute']} recompute ZeRO-{y['zero']}" + (
        f" offload {y['offload']}" if y.get("offload", "none") != "none" else "") + (
        f" TP overlap {y['tp_overlap']}" if y.get("tp", 1) > 1 else "")
    if y["oom"]:
        return (f"your layout {what} does not fit: {y['memory_gb']:.1f} GB per GPU, {-y['headroom_gb']:.1f} GB over; "
                f"the best layout that fits is {best['layout']}")
    if y["rank"] == 1 and y["speedup_of_best"] <= 1.0 + 1e-9:
        return f"your layout {what} is #1 of {y['layouts_ranked']} layouts that fit"
    why = "; ".join(y["why_slower"]) or "small differences across every part"
    return (f"your layout {what} is #{y['rank']} of {y['layouts_ranked']}; #1 {best['layout']} mb{best['mb']} "
            f"v{best['vp']} {best['recompute']} is {y['speedup_of_best']:.2f}x faster because of {why} per step")


@command("plan", facts=PlanFacts)
def plan_command(
    m: ModelSpec,
    gpu: GpuSpec,
    gpus: list[int],
    *,
    global_batch: int,
    seq: int,
    batch_note: str = "",
    tokens: float | None = None,
    price_per_gpu_hour: float | None = None,
    objective: str = "time",
    top: int = 5,
    options: Options | None = None,
    layout: str | dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Result:
    """Search every layout (or rank one fixed `layout` within that search) and explain the best."""
    opt = options or Options()
    check_recompute_modules(m, opt.recompute_modules)
    check_cuda_graph_scope(m, opt.cuda_graph_scope, opt.recompute_modules)
    check_moe_options(m, opt)
    split = edge_slots(m, opt)
    if isinstance(split, PipelineLayout):  # its layer counts whatever PP the search gives it
        split.check_model(m.layers, m.mtp_layers if opt.mtp else 0)
    lay = parse_layout(layout) if isinstance(layout, str) or layout is None else dict(layout)
    if lay:
        if opt.recompute_modules and lay.get("recompute", 1) != 1:
            raise SpecError(f"--recompute-modules names what selective recompute repeats; the layout's recompute is "
                            f"{RECOMPUTE_NAMES[lay['recompute']]}")
        _check_buildable(m, gpus, lay, global_batch, seq, split, opt.mtp, opt.software)
        check_stack_parallelism(opt.software, **{a: lay.get(a) for a in PARALLEL_AXES})
        _check_tp_overlap(lay, opt.software)
        check_stack_zero(opt.software, lay.get("zero"), lay.get("pp"))
        if opt.ep_overlap:
            _check_ep_overlap(lay, split)
        if opt.cuda_graph_scope:
            check_graphed_layout(lay.get("recompute"), bool(lay.get("offload", 0) & 4 or "offload_layers" in lay))
        if opt.quantized_params:  # what the fixed keys set that Megatron refuses beside quantized parameters
            check_quantized_params(opt.dtype, lay.get("zero") != 0, bool(lay.get("offload", 0) & 1),
                                   zero_fix="the layout's zero=0 is plain DDP (use zero=1, 2 or 3)")
        _check_offload(m, lay, opt.software)
        if "offload_layers" in lay:  # a count of layers whose activations go: activations are offloaded
            lay["offload"] = lay.get("offload", 0) | 4
        opt = _widen(m, opt, lay)
    r = plan(m, gpu, gpus, global_batch=global_batch, seq=seq, tokens=tokens, price_per_gpu_hour=price_per_gpu_hour,
             objective=objective, top=top, options=opt, progress=progress, keep=bool(lay))
    w = r.top[0]
    cap = float(device_memory(gpu).value)
    facts: dict[str, Any] = {
        "model": m.name, "gpu": gpu.key, "gpus": w["gpus"], "seq": seq, "global_batch_sequences": global_batch,
        "global_batch": batch_note or f"{global_batch} sequences of {seq}", "candidates_evaluated": r.candidates,
        "fit_in_memory": r.feasible, "objective": objective, "best_layout": w["layout"], "micro_batch": w["mb"],
        "interleave": w["vp"], "recompute": w["recompute"], "zero": w["zero"], "tp_overlap": w["tp_overlap"],
        "step_time": quantity(w["step_s"], "s"), "tokens_per_second": quantity(w["tokens_per_s"], "tokens/s"),
        "tflops_per_gpu": quantity(w["tflops"], "TFLOP/s"), "mfu": quantity(w["mfu"], ""),
        "mfu_full_attention": quantity(w["mfu_full_attention"], ""),
        "memory_per_gpu": quantity(w["memory_gb"], "GB"), "device_memory": quantity(cap / 1e9, "GB"),
        "headroom": quantity(w["headroom_gb"], "GB"),
        "layouts": [{"rank": i, **{k: v for k, v in x.items() if k != "parts"}} for i, x in enumerate(r.top, 1)],
        "why_not_the_others": list(r.rejected), "notes": list(r.notes),
    }
    for k, unit in (("days", "days"), ("gpu_hours", "GPU·h"), ("cost_usd", "USD")):
        if k in w:
            facts[k] = quantity(w[k], unit)
    axes = stack_parallelism(opt.software)
    assumptions = [f"software stack {opt.software}: overlaps from catalog stacks.{opt.software}",
                   *([f"the {opt.software} stack runs {parallelism_phrase(axes)}; the search keeps the other axes "
                      "at 1"] if axes != PARALLEL_AXES else []),
                   *_zero_assumption(opt.software),
                   *_offload_assumption(opt.software, opt.offloads),
                   f"linear layers in {opt.dtype}; attention and norms in 16-bit",
                   *([f"weights kept and gathered in {opt.dtype} (--quantized-params: Megatron --{opt.dtype}-param-"
                      "gather), ZeRO 1-3 only, no optimizer offload"] if opt.quantized_params else []),
                   "selective recompute repeats the Megatron modules " + ", ".join(opt.recompute_modules)
                   if opt.recompute_modules else f"selective recompute as the {opt.software} stack runs it",
                   *_graph_assumption(m, opt),
                   *([f"{m.mtp_layers} multi-token-prediction layer(s) trained with the loss on the last stage "
                      "(--no-mtp leaves them out)" if opt.mtp else "the model's multi-token-prediction layers left "
                      "out (--no-mtp)"] if m.mtp_layers else []),
                   "MFU counts causal attention at half (Megatron-LM 2024 / Llama 3); mfu_full_attention counts it whole "
                   "(Narayanan 2021 / PaLM)" if opt.causal else "attention FLOPs counted in full (--no-causal)",
                   f"fits when total per GPU ≤ {cap / 2**20:,.0f} MiB (catalog memory_total_mib); the runtime reserve "
                   "(CUDA context, NCCL buffers, fragmentation) is part of the total"]
    title = f"Plan: {m.name} on {w['gpus']} × {gpu.key}"
    res = Result(title, r.winner_terms, facts, [], assumptions)
    _add_track_record(res, m, gpu.key)
    if lay:
        y = _yours(r, lay)
        if y is None:
            raise LayoutError(f"no candidate matches --layout {layout}: the search space cannot build it")
        y = {k: v for k, v in y.items() if k != "parts"}
        _add_regime_record(res, "your layout", y, global_batch)
        res.facts["your_layout"] = y
        res.facts["your_layout_verdict"] = _fixed_sentence(y, w)
        res.terms = r.explain_index(y["index"])
        res.title = f"Plan: {m.name} on {w['gpus']} × {gpu.key}, your layout {y['layout']} explained"
        if y["oom"]:
            res.warnings.append(res.facts["your_layout_verdict"])
    else:
        _add_regime_record(res, "the #1 layout", w, global_batch)
    return res

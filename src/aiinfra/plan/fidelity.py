"""How far the step-time model is from published training results (catalog training_validation.yaml).

Each row (plan.validation) fixes what its source published (GPUs, TP/PP/CP/DP, micro-batch, interleave, dtype,
stack); a row that leaves the rest (for example recompute) open is predicted at the planner's best completion that
fits in memory, exactly as `aiinfra plan --layout` finds it. The error is predicted / published − 1 in the row's own
metric. The one end-to-end constant (framework_efficiency: the value at which the median of published/predicted
over the rows marked `fit` is 1) is fitted per architecture family where the catalog gives the family its own value
(Hopper), and on Narayanan Table 1 (A100) for every other family. `leave_one_source_out` refits the held-out source's
constant without it (on the other sources' fit rows of its family; failing those, the family's other rows;
failing those, the default constant's fit rows) and predicts the held-out source with it. megatron-core's two MoE
host constants (stacks.yaml moe_host) are solved on the two rows marked fit_moe_host (`solve_moe_host`); every other
MoE row is out of that fit. A power-limited GPU's sustained_compute_fraction (gpus.yaml) is solved on the rows marked
fit_sustained_clock on it (`solve_sustained_clock`); its other rows are out of that fit. An unfused stack's elementwise
factor (stacks.yaml elementwise) is solved on the rows marked fit_elementwise on it (`solve_elementwise_factor`).
"""

from __future__ import annotations

import numpy as np

from aiinfra.catalog.gpus import gpu as lookup_gpu
from aiinfra.catalog.models import model as lookup_model
from aiinfra.errors import LayoutError
from aiinfra.perf.flops import RECOMPUTE
from aiinfra.perf.stacks import TP_MODES
from aiinfra.perf.training import fitted_architectures
from aiinfra.plan.commands import plan_command
from aiinfra.plan.search import Options
from aiinfra.plan.validation import (Prediction, fully_specified, predict_fixed, row_hardware, row_metric,
                                     row_options, rows, split)
from aiinfra.sizing.offload import parse_offload
from aiinfra.specs import arch_family


# the layout keys a row may fix, which `plan --layout` then holds while it searches the rest
LAYOUT_KEYS = ("tp", "pp", "cp", "dp", "ep", "etp", "mb", "vp", "recompute", "zero", "tp_overlap", "offload")


def predict(row: dict, framework_eff: float | None = None, moe_module_ms: float | None = None,
            moe_stall_ms: float | None = None, sustained: float | None = None,
            elementwise: float | None = None) -> Prediction:
    """The model's value for one published row: one step_time call where the row fixes its layout
    (validation.predict_fixed), else the best completion of its unknown keys that fits, as `plan --layout` finds it.
    The fitted constants' overrides are as predict_fixed's; the MoE host and elementwise ones need a fixed layout."""
    if fully_specified(row) or row["metric"] == "layer_ms" or elementwise is not None:
        return predict_fixed(row, framework_eff, moe_module_ms, moe_stall_ms, sustained, elementwise)
    if moe_module_ms is not None or moe_stall_ms is not None:
        raise ValueError(f"{row['key']}: a host-time fit row must fix mb, vp and recompute")
    m, g = row_hardware(row, sustained)
    gpus, seq, batch = int(row["gpus"]), int(row["seq"]), int(row["batch"])
    tp, pp, cp, dp = split(row)
    offload = parse_offload(row["offload"])[0] if "offload" in row else None
    fixed = {k: row[k] for k in LAYOUT_KEYS if k in row}
    fixed["dp"] = dp
    if isinstance(fixed.get("recompute"), str):
        fixed["recompute"] = RECOMPUTE[fixed["recompute"]]
    if offload is not None:
        fixed["offload"] = offload
    if "tp_overlap" in fixed:
        if tp == 1:  # TP1 has no TP collectives to overlap
            del fixed["tp_overlap"]
        else:
            fixed["tp_overlap"] = TP_MODES.index(fixed["tp_overlap"])
    opt = row_options(row, framework_eff)
    res = plan_command(m, g, [gpus], global_batch=batch, seq=seq, options=opt, layout=fixed, top=1)
    y = res.facts["your_layout"]
    value = row_metric(row, y["tokens_per_s"], gpus, y["tflops"], y["mfu"], y["step_s"], m.layers,
                       y["mfu_full_attention"] * g.datasheet_flops(g.half_dtype) / 1e12)
    lay = (f"{y['layout']} mb{y['mb']} v{y['vp']} {y['recompute']}"
           + (f" offload {y['offload']}" if y["offload"] != "none" else "") + (" OOM" if y["oom"] else ""))
    return Prediction(row["key"], row["table"], float(row["value"]), value, row["metric"], lay, bool(row.get("fit")),
                      arch_family(g.architecture))


def predict_all(framework_eff: float | None = None, only: set[str] | None = None) -> list[Prediction]:
    return [predict(r, framework_eff) for r in rows() if only is None or r["table"] in only]


def table_errors(preds: list[Prediction]) -> dict[str, tuple[float, float, int]]:
    """{table: (mean |error|, max |error|, rows)}."""
    out: dict[str, list[float]] = {}
    for p in preds:
        out.setdefault(p.table, []).append(abs(p.error))
    return {t: (float(np.mean(e)), float(np.max(e)), len(e)) for t, e in out.items()}


def _ratio(p: Prediction) -> float:
    """published / predicted, for higher-is-better metrics (layer_ms inverted): above 1 means the model is slow."""
    return p.predicted / p.published if p.metric == "layer_ms" else p.published / p.predicted


def fit_framework_efficiency(preds: list[Prediction], at: float = 1.0) -> float:
    """One step of the median rule: `at` × the median of published/predicted over rows predicted at
    framework_efficiency `at`. The prediction is not proportional to the constant (exposed communication and the
    bubble's share of it are wall time, not stretched), so one step from `at` = 1 leaves the median row off by the
    communication's share; `solve_framework_efficiency` repeats the step until the median row is exact."""
    return at * float(np.median([_ratio(p) for p in preds]))


def solve_framework_efficiency(keys: list[str], start: float, tol: float = 5e-4, steps: int = 6) -> float:
    """The framework_efficiency at which the median of published/predicted over the rows `keys` is 1 (half the rows
    run slower than predicted, half faster): the median rule's fixed point, reached from `start` by repeating
    fit_framework_efficiency on the rows predicted at the last value."""
    wanted = set(keys)
    chosen = [r for r in rows() if r["key"] in wanted]
    fw = start
    for _ in range(steps):
        nxt = fit_framework_efficiency([predict(r, fw) for r in chosen], fw)
        if abs(nxt - fw) < tol:
            return nxt
        fw = nxt
    return fw


def fit_rows(at_one: list[Prediction], arch: str, without: str | None = None) -> list[Prediction]:
    """The rows `arch`'s framework_efficiency is fitted on, leaving table `without` out: the fit rows of that
    family when it has its own constant, else the default constant's fit rows (families without their own); with
    a table held out and none of those left, the family's rows from its other sources."""
    own = fitted_architectures()
    rest = [p for p in at_one if p.table != without]
    if arch in own:
        return [p for p in rest if p.fit and p.arch == arch]
    default = [p for p in rest if p.fit and p.arch not in own]
    if any(p.arch == arch for p in default) or without is None:
        return default
    return [p for p in rest if p.arch == arch] or default


def _solve(at_one: list[Prediction], arch: str, without: str | None, cache: dict) -> float:
    """The fixed point on fit_rows(at_one, arch, without), started from the one-step value at 1 (cached per row set)."""
    chosen = fit_rows(at_one, arch, without)
    keys = frozenset(p.key for p in chosen)
    if keys not in cache:
        cache[keys] = solve_framework_efficiency(sorted(keys), fit_framework_efficiency(chosen))
    return cache[keys]


def refit(at_one: list[Prediction], cache: dict | None = None) -> dict[str, float]:
    """{"default" and every family with its own constant: framework_efficiency refitted on its fit rows}."""
    cache = {} if cache is None else cache
    return {a: _solve(at_one, a, None, cache) for a in ("default", *fitted_architectures())}


def moe_host_fit_rows() -> dict[str, dict]:
    """{"layer" | "stall": the row marked fit_moe_host with it}: the stack's host time per linear module of a MoE layer
    is solved on a host-bound row, its stall after each forward sync on a row whose GPU work outlasts the host."""
    return {r["fit_moe_host"]: r for r in rows() if r.get("fit_moe_host")}


def _bisect(f, hi: float = 50.0, tol: float = 0.005, lo: float = 0.0) -> float:
    """The x in [lo, hi] where the increasing f(x) − 1 changes sign (lo when f(lo) >= 1 already, hi when f never
    reaches 1)."""
    if f(lo) >= 1:
        return lo
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < 1 else (lo, mid)
    return (lo + hi) / 2


def solve_moe_host(rounds: int = 4) -> tuple[float, float]:
    """(h, S) in ms: the host time per linear module of a MoE layer (perf.host) and the stall after each forward sync
    at which both fit_moe_host rows are met exactly (published/predicted = 1); each is solved by bisection with the
    other held, in turn, since a host-bound row hardly depends on S and a GPU-bound one not at all on h."""
    fit = moe_host_fit_rows()
    h, st = 0.0, 0.0
    for _ in range(rounds):
        h = _bisect(lambda x: _ratio(predict(fit["layer"], moe_module_ms=x, moe_stall_ms=st)))
        st = _bisect(lambda x: _ratio(predict(fit["stall"], moe_module_ms=h, moe_stall_ms=x)))
    return h, st


def _marked(flag: str, group) -> dict[str, list[dict]]:
    """{group(row): the rows marked `flag`}: what a per-GPU or per-stack constant is solved on."""
    out: dict[str, list[dict]] = {}
    for r in rows():
        if r.get(flag):
            out.setdefault(group(r), []).append(r)
    return out


def sustained_clock_fit_rows() -> dict[str, list[dict]]:
    """{GPU key: the rows marked fit_sustained_clock on it}: what each power-limited GPU's sustained fraction is
    solved on."""
    return _marked("fit_sustained_clock", lambda r: lookup_gpu(r["gpu"]).key)


def solve_sustained_clock(gpu_key: str, tol: float = 5e-4) -> float:
    """The sustained_compute_fraction of a power-limited GPU at which its fit_sustained_clock rows err by zero on
    average (mean of predicted/published = 1), by bisection between 0.5 and 1 (the prediction rises with it)."""
    fit = sustained_clock_fit_rows().get(gpu_key)
    if not fit:
        raise ValueError(f"no row is marked fit_sustained_clock on {gpu_key}")
    return _bisect(lambda f: float(np.mean([1 / _ratio(predict(r, sustained=f)) for r in fit])), hi=1.0, tol=tol,
                   lo=0.5)


def elementwise_fit_rows() -> dict[str, list[dict]]:
    """{stack: the rows marked fit_elementwise on it}: what each stack's elementwise factor is solved on."""
    return _marked("fit_elementwise", lambda r: r["stack"])


def solve_elementwise_factor(stack_key: str, tol: float = 5e-4) -> float:
    """The stack's elementwise factor at which its fit_elementwise rows err by zero on average (mean of
    published/predicted = 1), by bisection between 1 (fused) and 10 (the prediction falls as it grows)."""
    fit = elementwise_fit_rows().get(stack_key)
    if not fit:
        raise ValueError(f"no row is marked fit_elementwise on stack {stack_key}")
    return 1.0 + _bisect(lambda x: float(np.mean([_ratio(predict(r, elementwise=1.0 + x)) for r in fit])), hi=9.0,
                         tol=tol)


def leave_one_source_out(at_one: list[Prediction] | None = None,
                         cache: dict | None = None) -> dict[str, tuple[float, float, float]]:
    """{table: (refit framework_efficiency without it, mean |error|, max |error|) on the held-out table}."""
    at_one = predict_all(1.0) if at_one is None else at_one
    cache = {} if cache is None else cache
    tables = sorted({p.table for p in at_one})
    out = {}
    for t in tables:
        arch = next(p.arch for p in at_one if p.table == t)
        fw = _solve(at_one, arch, t, cache)
        held = predict_all(fw, only={t})
        e = [abs(p.error) for p in held]
        out[t] = (fw, float(np.mean(e)), float(np.max(e)))
    return out


def published_rank(row: dict) -> dict:
    """Where the row's published split (TP, PP, CP, DP) ranks in the full search with the row's stack and
    dtype, and why #1 beats it (the step-time parts that grow most)."""
    tp, pp, cp, dp = split(row)
    if row["stack"] == "megatron-2021":  # what Megatron-LM could do then: fp16, full recompute of every layer (partial
        # "block" recompute came 2021-08, Megatron-LM c1e0689), no SP/CP/ZeRO/offload
        opt = Options(dtype=row["dtype"], flash_attention=False, sequence_parallel=False, zero_stages=(0,),
                      recompute=(2,), recompute_fractions=(1.0,), context_parallel=(1,), overlap_dp=False,
                      causal=False, software=row["stack"], offloads=(0,))
    else:
        opt = row_options(row)
    try:
        res = plan_command(lookup_model(row["model"]), lookup_gpu(row["gpu"]), [int(row["gpus"])],
                           global_batch=int(row["batch"]), seq=int(row["seq"]), options=opt,
                           layout={"tp": tp, "pp": pp, "cp": cp, "dp": dp}, top=1)
    except LayoutError as err:  # a schedule the search cannot run (DeepSeek-V3's DualPipe batch under Megatron's rules)
        return {"key": row["key"], "rank": None, "layouts": 0, "best": "-", "speedup_of_best": float("nan"),
                "why": [f"not ranked: {err}"]}
    y = res.facts["your_layout"]
    why = list(y["why_slower"])
    if y["offload"] != "none" and "offload" not in row:  # a completion the published run did not use
        why.insert(0, f"its best completion offloads {y['offload']}, which the run did not state")
    return {"key": row["key"], "rank": y["rank"], "layouts": y["layouts_ranked"], "best": res.facts["best_layout"],
            "speedup_of_best": y["speedup_of_best"], "why": why}

"""How far the step-time model is from published training results (catalog training_validation.yaml).

Each row fixes what its source published (GPUs, TP/PP/CP/DP, micro-batch, interleave, dtype, stack)
and leaves the rest (for example recompute) to the planner's best completion that fits in memory,
exactly as `aiinfra plan --layout` does. The error is predicted / published − 1 in the row's own
metric. The one end-to-end constant (framework_efficiency: the value at which the median of published/predicted
over the rows marked `fit` is 1) is fitted per architecture family where the catalog gives the family its own value (Hopper), and
on Narayanan Table 1 (A100) for every other family. `leave_one_source_out` refits the held-out source's
constant without it (on the other sources' fit rows of its family; failing those, the family's other rows;
failing those, the default constant's fit rows) and predicts the held-out source with it. megatron-core's two MoE
host constants (stacks.yaml moe_host) are solved on the two rows marked fit_moe_host (`solve_moe_host`); every other
MoE row is out of that fit. A power-limited GPU's sustained_compute_fraction (gpus.yaml) is solved on the rows marked
fit_sustained_clock on it (`solve_sustained_clock`); its other rows are out of that fit. An unfused stack's elementwise
factor (stacks.yaml elementwise) is solved on the rows marked fit_elementwise on it (`solve_elementwise_factor`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from aiinfra.catalog.gpus import gpu as lookup_gpu
from aiinfra.catalog.loader import DATA_DIR, read_yaml
from aiinfra.catalog.models import model as lookup_model
from aiinfra.errors import LayoutError, SpecError
from aiinfra.perf.flops import RECOMPUTE
from aiinfra.perf.host import check_cuda_graph_scope, check_graphed_layout, graphed_search, parse_cuda_graph_scope
from aiinfra.perf.stacks import TP_MODES, stack
from aiinfra.perf.training import fitted_architectures, step_time
from aiinfra.plan.inputs import quantized_search
from aiinfra.plan.search import Options
from aiinfra.sizing.offload import parse_offload
from aiinfra.sizing.recompute import parse_recompute_modules
from aiinfra.sizing.states import check_quantized_params
from aiinfra.specs import ModelSpec, arch_family

FILE = DATA_DIR / "training_validation.yaml"
LAYOUT_KEYS = ("tp", "pp", "cp", "dp", "ep", "etp", "mb", "vp", "recompute", "zero", "tp_overlap", "offload")


@dataclass
class Prediction:
    key: str
    table: str
    published: float
    predicted: float
    metric: str
    layout: str
    fit: bool
    arch: str = ""  # the GPU's architecture family, which selects its framework_efficiency

    @property
    def error(self) -> float:
        return self.predicted / self.published - 1


# what a row may set: a key outside these would be ignored by predict(), so it is refused instead
ROW_KEYS = frozenset({
    "table", "model", "gpu", "dtype", "stack", "seq", "gpus", "tp", "pp", "cp", "dp", "ep", "etp", "vp", "mb", "batch",
    "zero", "recompute", "recompute_layers", "recompute_modules", "offload", "offload_layers", "sp", "tp_overlap",
    "ep_overlap", "overlap_grad_reduce", "grad_dtype", "pipeline_split", "moe_dispatcher", "mtp", "cuda_graph_scope",
    "quantized_params", "flash", "causal", "value", "metric", "unknown", "fit", "fit_elementwise", "fit_moe_host",
    "fit_sustained_clock"})


def split(row: dict) -> tuple[int, int, int, int]:
    """The row's (tp, pp, cp, dp); dp, where the row leaves it out, is what the GPU count leaves over."""
    tp, pp, cp = int(row.get("tp", 1)), int(row.get("pp", 1)), int(row.get("cp", 1))
    return tp, pp, cp, int(row.get("dp", int(row.get("gpus", 0)) // (tp * pp * cp)))


def rows() -> list[dict]:
    """Every validation row with the file's and its table's defaults applied; a key no prediction reads, or a split
    (tp·pp·cp·dp) that is not the row's GPU count, is refused."""
    doc = read_yaml(FILE)
    base = doc.get("defaults", {})
    per_table = doc.get("table_defaults", {})
    out = [{"key": k, **base, **per_table.get(e["table"], {}), **e} for k, e in doc["entries"].items()]
    for r in out:
        extra = sorted(set(r) - ROW_KEYS - {"key"})
        if extra:
            raise ValueError(f"training_validation.yaml {r['key']}: unknown key {extra[0]!r}")
        ranks, gpus = int(np.prod(split(r))), int(r.get("gpus", 0))
        if ranks != gpus:  # a typo here would predict a run nobody made
            raise ValueError(f"training_validation.yaml {r['key']}: tp·pp·cp·dp = {ranks}, not its {gpus} GPUs")
        if r.get("quantized_params"):
            try:
                check_quantized_params(r["dtype"], int(r.get("zero", 0)) > 0,
                                       bool("offload" in r and parse_offload(r["offload"])[0] & 1),
                                       dtype_flag="its dtype", zero_fix="the row's zero is 0")
            except SpecError as err:
                raise ValueError(f"training_validation.yaml {r['key']}: {err}") from None
    return out


def sources() -> dict[str, str]:
    return dict(read_yaml(FILE).get("sources", {}))


def _metric(row: dict, tokens_per_s: float, gpus: int, tflops_hw: float, mfu: float, step: float, layers: int,
            tflops_full: float) -> float:
    return {"tflops_hw": tflops_hw, "mfu": mfu, "tokens_per_gpu": tokens_per_s / gpus,
            "layer_ms": step / layers * 1e3, "tflops_full": tflops_full}[row["metric"]]


def _row_options(row: dict, framework_eff: float | None = None) -> Options:
    """The search options a row's source fixes (dtype, attention, stack, gradient dtype, EP overlap, pipeline split,
    sequence parallelism, MoE dispatcher, MTP, CUDA graphs); the rest stays the planner's. With CUDA graphs the search
    leaves out what Megatron refuses beside them (full recompute, activation offload), as `plan` does."""
    scope = parse_cuda_graph_scope(row.get("cuda_graph_scope"))
    recompute, offloads = graphed_search(scope, Options().recompute, Options().offloads)
    zero_stages = Options().zero_stages
    quantized = bool(row.get("quantized_params", False))
    if quantized:
        zero_stages, offloads = quantized_search(row["dtype"], zero_stages, offloads)
    return Options(dtype=row["dtype"], flash_attention=bool(row["flash"]), causal=bool(row["causal"]),
                   software=row["stack"], framework_efficiency=framework_eff, grad_dtype=row.get("grad_dtype"),
                   ep_overlap=bool(row.get("ep_overlap", False)), pipeline_split=row.get("pipeline_split", "auto"),
                   sequence_parallel=bool(row.get("sp", True)), moe_dispatcher=row.get("moe_dispatcher", "alltoall"),
                   recompute_modules=parse_recompute_modules(row.get("recompute_modules")), overlap_dp=_overlap_dp(row),
                   mtp=bool(row.get("mtp", True)), cuda_graph_scope=scope,
                   recompute=recompute, offloads=offloads, zero_stages=zero_stages, quantized_params=quantized)


def _overlap_dp(row: dict) -> bool:
    """Whether the run overlaps its gradient reduction: the row's `overlap_grad_reduce` where its recipe sets it,
    else every stack but 2021 Megatron-LM's."""
    return bool(row.get("overlap_grad_reduce", row["stack"] != "megatron-2021"))


def fitted_on(row: dict) -> bool:
    """A row some constant was fitted on: framework_efficiency (fit), the MoE host constants (fit_moe_host), a
    power-limited GPU's sustained fraction (fit_sustained_clock) or a stack's elementwise factor (fit_elementwise)."""
    return bool(row.get("fit") or row.get("fit_moe_host") or row.get("fit_sustained_clock")
                or row.get("fit_elementwise"))


def fully_specified(row: dict) -> bool:
    """A row that fixes micro-batch, interleave and recompute is one step_time call; without them, a search."""
    return all(k in row for k in ("mb", "vp", "recompute"))


def _graph_scope(m, row: dict) -> tuple[str, ...]:
    """The row's per-layer CUDA graphs, refused as Megatron would refuse them."""
    scope = parse_cuda_graph_scope(row.get("cuda_graph_scope"))
    check_cuda_graph_scope(m, scope, parse_recompute_modules(row.get("recompute_modules")))
    if scope:
        check_graphed_layout(RECOMPUTE.get(row.get("recompute")), "offload_layers" in row)
    return scope


def predict(row: dict, framework_eff: float | None = None, moe_module_ms: float | None = None,
            moe_stall_ms: float | None = None, sustained: float | None = None,
            elementwise: float | None = None) -> Prediction:
    """The model's value for one published row (best completion of its unknown keys that fits). `moe_module_ms` and
    `moe_stall_ms` override the stack's MoE host constants (rows with every layout key known only: the fit solves
    them); `sustained` overrides the GPU's sustained_compute_fraction (its fit solves it); `elementwise` the stack's
    elementwise factor (the same)."""
    m, g = lookup_model(row["model"]), lookup_gpu(row["gpu"])
    software = row["stack"]
    if elementwise is not None:
        if not fully_specified(row):
            raise ValueError(f"{row['key']}: an elementwise fit row must fix mb, vp and recompute")
        software = replace(stack(row["stack"]), elementwise_factor=float(elementwise))
    if sustained is not None:
        g = g.model_copy(update={"sustained_compute_fraction": float(sustained)})
    gpus, seq, batch = int(row["gpus"]), int(row["seq"]), int(row["batch"])
    tp, pp, cp, dp = split(row)
    # what the run offloads, named as size train names it ("none", "optimizer", ...), as an offload code
    offload = parse_offload(row["offload"])[0] if "offload" in row else None
    if fully_specified(row) or row["metric"] == "layer_ms":
        r = step_time(m, g, tp=tp, pp=pp, dp=dp, cp=cp, ep=int(row.get("ep", 1)), etp=row.get("etp"),
                      micro_batch=int(row.get("mb", 1)), vp=int(row.get("vp", 1)),
                      recompute=row.get("recompute", "none"), zero=int(row.get("zero", 0)), global_batch=batch,
                      recompute_fraction=int(row.get("recompute_layers", m.layers)) / m.layers,
                      tp_overlap=TP_MODES.index(row["tp_overlap"]) if "tp_overlap" in row else None,
                      grad_reduce=row.get("grad_dtype"), ep_overlap=bool(row.get("ep_overlap", False)),
                      pipeline_split=row.get("pipeline_split", "auto"), sp=bool(row.get("sp", True)),
                      moe_dispatcher=row.get("moe_dispatcher", "alltoall"), seq=seq, dtype=row["dtype"],
                      flash_attention=bool(row["flash"]), causal=bool(row["causal"]),
                      overlap_dp=_overlap_dp(row), software=software, framework_eff=framework_eff,
                      moe_module_ms=moe_module_ms, moe_stall_ms=moe_stall_ms,
                      offload=(offload or 0) | (4 if "offload_layers" in row else 0),
                      offload_fraction=int(row.get("offload_layers", m.layers)) / m.layers,
                      recompute_modules=parse_recompute_modules(row.get("recompute_modules")),
                      mtp=bool(row.get("mtp", True)),
                      cuda_graph_scope=_graph_scope(m, row),
                      quantized_params=bool(row.get("quantized_params", False)))
        # a per-layer time (Korthikanti Table 4) times the layers' forward + backward only: no optimizer step or DP sync
        outside = sum(float(p.value) for p in r.step.parts if p.name in ("optimizer step", "DP communication (exposed)"))
        value = _metric(row, float(r.tokens_per_s.value), gpus, float(r.tflops_per_gpu.value), float(r.mfu.value),
                        float(r.step.value) - (outside if row["metric"] == "layer_ms" else 0.0), m.layers,
                        float(r.mfu_full.value) * g.datasheet_flops(g.half_dtype) / 1e12)
        rl = f" {row['recompute_layers']}/{m.layers} layers" if "recompute_layers" in row else ""
        rl += f" offload activations {row['offload_layers']}/{m.layers} layers" if "offload_layers" in row else ""
        rl += f" ({','.join(parse_recompute_modules(row['recompute_modules']))})" if "recompute_modules" in row else ""
        ep_s = f"·EP{row['ep']}" + ("(ETP1)" if row.get("etp", tp) != tp else "") if row.get("ep", 1) > 1 else ""
        lay = (f"TP{tp}·PP{pp}·CP{cp}{ep_s}·DP{dp} mb{row.get('mb', 1)} v{row.get('vp', 1)} "
               f"{row.get('recompute', 'none')}{rl}" + ("" if row.get("sp", True) or tp == 1 else " no-SP"))
        return Prediction(row["key"], row["table"], float(row["value"]), value, row["metric"], lay, bool(row.get("fit")),
                          arch_family(g.architecture))
    if moe_module_ms is not None or moe_stall_ms is not None:
        raise ValueError(f"{row['key']}: a host-time fit row must fix mb, vp and recompute")
    from aiinfra.plan.commands import plan_command

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
    opt = _row_options(row, framework_eff)
    res = plan_command(m, g, [gpus], global_batch=batch, seq=seq, options=opt, layout=fixed, top=1)
    y = res.facts["your_layout"]
    value = _metric(row, y["tokens_per_s"], gpus, y["tflops"], y["mfu"], y["step_s"], m.layers,
                    y["mfu_full_attention"] * g.datasheet_flops(g.half_dtype) / 1e12)
    lay = (f"{y['layout']} mb{y['mb']} v{y['vp']} {y['recompute']}"
           + (f" offload {y['offload']}" if y["offload"] != "none" else "") + (" OOM" if y["oom"] else ""))
    return Prediction(row["key"], row["table"], float(row["value"]), value, row["metric"], lay, bool(row.get("fit")),
                      arch_family(g.architecture))


def _runs(keep) -> tuple[dict, ...]:
    """The validation rows in tokens/s/GPU whose layout the file fixes completely and that `keep(row)` accepts,
    each with this model's prediction."""
    out = []
    for r in rows():
        if r["metric"] != "tokens_per_gpu" or not fully_specified(r) or not keep(r):
            continue
        p = predict(r)
        out.append({"row": r["key"], "source": r["table"], "gpu": r["gpu"], "gpus": int(r["gpus"]), "layout": p.layout,
                    "published_tokens_per_gpu": p.published, "predicted_tokens_per_gpu": round(p.predicted, 1),
                    "error": round(p.error, 4), "fitted_on": fitted_on(r)})
    return tuple(out)


@lru_cache(maxsize=32)
def _track_record(m: ModelSpec) -> tuple[dict, ...]:
    # the same architecture: a config.json of it carries another name and source
    return _runs(lambda r: lookup_model(r["model"]).model_copy(update={"name": m.name, "source": m.source}) == m)


def track_record(m: ModelSpec) -> list[dict]:
    """The published runs of model `m` (the same architecture, catalog or config.json) whose layout the validation
    file fixes completely (micro-batch, interleave and recompute; a row leaving one to the search would cost a whole
    search), each with this model's prediction: error = predicted / published − 1, above 0 when the model is faster
    than the run was; fitted_on marks the rows a constant was fitted on."""
    return [dict(x) for x in _track_record(m)]  # copies: the cached runs stay as computed


def one_microbatch_per_rank(zero: int, batch: int, dp: int, mb: int) -> bool:
    """A layout takes one micro-batch per data-parallel rank per step under ZeRO 1-2: the regime of
    single_microbatch_record, for a validation row and for a plan's layout alike."""
    return 1 <= int(zero) <= 2 and int(batch) == int(dp) * int(mb)


@lru_cache(maxsize=1)
def _single_microbatch_record() -> tuple[dict, ...]:
    return _runs(lambda r: one_microbatch_per_rank(r.get("zero", 1), r["batch"], split(r)[3], r["mb"]))


def single_microbatch_record() -> list[dict]:
    """The published runs, of any model, that take one micro-batch per data-parallel rank per step under a sharded
    optimizer (ZeRO 1-2) and whose layout the validation file fixes completely, each with this model's error
    (predicted / published − 1): the regime of MLPerf's Llama 3.1 8B runs, where steps last a fraction of a second
    and nothing is accumulated between optimizer steps. Fields as track_record's."""
    return [dict(x) for x in _single_microbatch_record()]


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
    from aiinfra.plan.commands import plan_command

    tp, pp, cp, dp = split(row)
    if row["stack"] == "megatron-2021":  # what Megatron-LM could do then: fp16, full recompute of every layer (partial
        # "block" recompute came 2021-08, Megatron-LM c1e0689), no SP/CP/ZeRO/offload
        opt = Options(dtype=row["dtype"], flash_attention=False, sequence_parallel=False, zero_stages=(0,),
                      recompute=(2,), recompute_fractions=(1.0,), context_parallel=(1,), overlap_dp=False,
                      causal=False, software=row["stack"], offloads=(0,))
    else:
        opt = _row_options(row)
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

"""The published training runs the step-time model is checked on (catalog training_validation.yaml), and its
prediction of a run whose layout the row fixes: one step_time call, no search.

Each row fixes what its source published (GPUs, TP/PP/CP/DP, micro-batch, interleave, dtype, stack); `rows()`
applies the file's defaults and refuses a key no prediction reads. The runs of a model (`track_record`) and of the
one-micro-batch-per-rank regime (`single_microbatch_record`) are what `aiinfra plan` reports beside its answer.
plan.fidelity completes the rows that leave keys to the search and fits the constants.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from aiinfra.catalog.gpus import gpu as lookup_gpu
from aiinfra.catalog.loader import DATA_DIR, read_yaml
from aiinfra.catalog.models import model as lookup_model
from aiinfra.errors import SpecError
from aiinfra.perf.flops import RECOMPUTE
from aiinfra.perf.host import check_cuda_graph_scope, check_graphed_layout, graphed_search, parse_cuda_graph_scope
from aiinfra.perf.stacks import TP_MODES, stack
from aiinfra.perf.training import step_time
from aiinfra.plan.inputs import quantized_search
from aiinfra.plan.search import Options
from aiinfra.sizing.offload import parse_offload
from aiinfra.sizing.recompute import parse_recompute_modules
from aiinfra.sizing.states import check_quantized_params
from aiinfra.specs import GpuSpec, ModelSpec, arch_family

FILE = DATA_DIR / "training_validation.yaml"


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


def row_metric(row: dict, tokens_per_s: float, gpus: int, tflops_hw: float, mfu: float, step: float, layers: int,
            tflops_full: float) -> float:
    return {"tflops_hw": tflops_hw, "mfu": mfu, "tokens_per_gpu": tokens_per_s / gpus,
            "layer_ms": step / layers * 1e3, "tflops_full": tflops_full}[row["metric"]]


def row_options(row: dict, framework_eff: float | None = None) -> Options:
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
                   recompute_modules=parse_recompute_modules(row.get("recompute_modules")), overlap_dp=overlaps_dp(row),
                   mtp=bool(row.get("mtp", True)), cuda_graph_scope=scope,
                   recompute=recompute, offloads=offloads, zero_stages=zero_stages, quantized_params=quantized)


def overlaps_dp(row: dict) -> bool:
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


def row_hardware(row: dict, sustained: float | None = None) -> tuple[ModelSpec, GpuSpec]:
    """The row's model and GPU, the GPU at `sustained` of its clock where a fit gives one."""
    g = lookup_gpu(row["gpu"])
    if sustained is not None:
        g = g.model_copy(update={"sustained_compute_fraction": float(sustained)})
    return lookup_model(row["model"]), g


def predict_fixed(row: dict, framework_eff: float | None = None, moe_module_ms: float | None = None,
                  moe_stall_ms: float | None = None, sustained: float | None = None,
                  elementwise: float | None = None) -> Prediction:
    """The model's value for a published row whose layout is fixed (micro-batch, interleave and recompute given, or a
    per-layer time): one step_time call. `moe_module_ms` and `moe_stall_ms` override the stack's MoE host constants
    (the fit solves them); `sustained` the GPU's sustained_compute_fraction (its fit solves it); `elementwise` the
    stack's elementwise factor (the same)."""
    if elementwise is not None and not fully_specified(row):
        raise ValueError(f"{row['key']}: an elementwise fit row must fix mb, vp and recompute")
    if not (fully_specified(row) or row["metric"] == "layer_ms"):
        raise ValueError(f"{row['key']}: a fixed-layout prediction needs mb, vp and recompute")
    m, g = row_hardware(row, sustained)
    software = row["stack"]
    if elementwise is not None:
        software = replace(stack(row["stack"]), elementwise_factor=float(elementwise))
    gpus, seq, batch = int(row["gpus"]), int(row["seq"]), int(row["batch"])
    tp, pp, cp, dp = split(row)
    # what the run offloads, named as size train names it ("none", "optimizer", ...), as an offload code
    offload = parse_offload(row["offload"])[0] if "offload" in row else None
    r = step_time(m, g, tp=tp, pp=pp, dp=dp, cp=cp, ep=int(row.get("ep", 1)), etp=row.get("etp"),
                  micro_batch=int(row.get("mb", 1)), vp=int(row.get("vp", 1)),
                  recompute=row.get("recompute", "none"), zero=int(row.get("zero", 0)), global_batch=batch,
                  recompute_fraction=int(row.get("recompute_layers", m.layers)) / m.layers,
                  tp_overlap=TP_MODES.index(row["tp_overlap"]) if "tp_overlap" in row else None,
                  grad_reduce=row.get("grad_dtype"), ep_overlap=bool(row.get("ep_overlap", False)),
                  pipeline_split=row.get("pipeline_split", "auto"), sp=bool(row.get("sp", True)),
                  moe_dispatcher=row.get("moe_dispatcher", "alltoall"), seq=seq, dtype=row["dtype"],
                  flash_attention=bool(row["flash"]), causal=bool(row["causal"]),
                  overlap_dp=overlaps_dp(row), software=software, framework_eff=framework_eff,
                  moe_module_ms=moe_module_ms, moe_stall_ms=moe_stall_ms,
                  offload=(offload or 0) | (4 if "offload_layers" in row else 0),
                  offload_fraction=int(row.get("offload_layers", m.layers)) / m.layers,
                  recompute_modules=parse_recompute_modules(row.get("recompute_modules")),
                  mtp=bool(row.get("mtp", True)),
                  cuda_graph_scope=_graph_scope(m, row),
                  quantized_params=bool(row.get("quantized_params", False)))
    # a per-layer time (Korthikanti Table 4) times the layers' forward + backward only: no optimizer step or DP sync
    outside = sum(float(p.value) for p in r.step.parts if p.name in ("optimizer step", "DP communication (exposed)"))
    value = row_metric(row, float(r.tokens_per_s.value), gpus, float(r.tflops_per_gpu.value), float(r.mfu.value),
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


def _runs(keep) -> tuple[dict, ...]:
    """The validation rows in tokens/s/GPU whose layout the file fixes completely and that `keep(row)` accepts,
    each with this model's prediction."""
    out = []
    for r in rows():
        if r["metric"] != "tokens_per_gpu" or not fully_specified(r) or not keep(r):
            continue
        p = predict_fixed(r)
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



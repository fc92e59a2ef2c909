"""Compute time: datasheet peak × a calibrated efficiency, plus memory-bound elementwise time.

The efficiency depends on matmul size (small GEMMs cannot fill the GPU) through a curve whose
shape is Calculon's A100 matrix table, scaled by one plateau fraction fitted once on Narayanan et
al. 2021 Table 1. Both live in catalog/data/calibration.yaml with their sources; nothing here is
tuned per model or per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aiinfra.catalog.loader import default_catalog, is_share
from aiinfra.errors import AiinfraError
from aiinfra.explain import Number, Term
from aiinfra.specs import GpuSpec


@dataclass(frozen=True)
class TrainingCalibration:
    peak_fraction: float
    size_curve: tuple[tuple[float, float], ...]  # (GFLOP, factor)
    elementwise_traffic: float
    source: str


@dataclass(frozen=True)
class InferenceCalibration:
    decode_bw_fraction: float
    source: str


def training_calibration(name: str = "training") -> TrainingCalibration:
    key, e = default_catalog().entry("calibrations", name)
    try:
        return TrainingCalibration(float(e["peak_fraction"]), tuple((float(a), float(b)) for a, b in e["size_curve_gflop"]),
                                   float(e["elementwise_traffic"]), e.get("source", ""))
    except (KeyError, TypeError, ValueError) as err:
        raise AiinfraError(f"calibration '{key}' needs peak_fraction, size_curve_gflop and elementwise_traffic ({err})") from None


def inference_calibration(name: str = "inference") -> InferenceCalibration:
    key, e = default_catalog().entry("calibrations", name)
    try:
        return InferenceCalibration(float(e["decode_bw_fraction"]), e.get("source", ""))
    except (KeyError, TypeError, ValueError) as err:  # the prefill curve is read by perf.inference.prefill_calibration
        raise AiinfraError(f"calibration '{key}' needs decode_bw_fraction ({err})") from None


def log_interp(x: Number, points: tuple[tuple[float, float], ...]) -> np.ndarray | float:
    xs = np.log2(np.array([p[0] for p in points]) + 1.0)
    ys = np.array([p[1] for p in points])
    v = np.interp(np.log2(np.maximum(np.asarray(x, dtype=float), 0.0) + 1.0), xs, ys)
    return float(v) if np.ndim(v) == 0 else v


def matmul_efficiency(gemm_gflop: Number, cal: TrainingCalibration | None = None) -> Term:
    """Fraction of dense peak reached by matmuls whose largest GEMM is `gemm_gflop` GFLOP per GPU."""
    cal = cal or training_calibration()
    curve = log_interp(gemm_gflop, cal.size_curve)
    value = cal.peak_fraction * curve
    return Term("matmul efficiency", value, "", "peak_fraction × size_curve(GEMM GFLOP)",
                {"peak_fraction": cal.peak_fraction, "GEMM GFLOP": gemm_gflop, "size_curve": curve},
                {"calibration": cal.source})


def peak(gpu: GpuSpec, dtype: str) -> Term:
    """Dense peak FLOP/s of a GPU for a dtype, from the GPU catalog (what it sustains at its power limit)."""
    return Term(f"peak {dtype}", gpu.peak_flops(dtype), "FLOP/s",
                "catalog dense TFLOP/s × 1e12 × sustained fraction at the power limit",
                {"gpu": gpu.key, "TFLOP/s": gpu.tflops.get(dtype),
                 "sustained fraction": gpu.sustained_compute_fraction}, {gpu.key: gpu.source})


def datasheet_peak(gpu: GpuSpec, dtype: str) -> Term:
    """Dense peak FLOP/s of a GPU for a dtype as its datasheet gives it: what MFU and HFU divide by (Megatron-LM,
    Llama 3, PaLM), whatever clock the part sustains at its power limit."""
    return Term(f"datasheet peak {dtype}", gpu.datasheet_flops(dtype), "FLOP/s", "catalog dense TFLOP/s × 1e12",
                {"gpu": gpu.key, "TFLOP/s": gpu.tflops.get(dtype)}, {gpu.key: gpu.source})


def matmul_time(flops: Number, gemm_gflop: Number, gpu: GpuSpec, dtype: str = "bf16",
                cal: TrainingCalibration | None = None, name: str = "matmul time") -> Term:
    """FLOPs / (peak(dtype) × efficiency(size))."""
    pk = peak(gpu, dtype)
    eff = matmul_efficiency(gemm_gflop, cal)
    value = np.asarray(flops, dtype=float) / (pk.value * eff.value)
    return Term(name, _s(value), "s", "FLOPs / (peak × matmul efficiency)", {"FLOPs": flops, "peak": pk, "efficiency": eff})


def elementwise_time(activation_bytes: Number, gpu: GpuSpec, cal: TrainingCalibration | None = None,
                     name: str = "elementwise time") -> Term:
    """Memory-bound work: activation bytes × traffic factor / HBM bandwidth."""
    cal = cal or training_calibration()
    value = np.asarray(activation_bytes, dtype=float) * cal.elementwise_traffic / gpu.memory_bw
    return Term(name, _s(value), "s", "activation bytes × traffic / HBM bandwidth",
                {"activation bytes": activation_bytes, "traffic": cal.elementwise_traffic, "HBM B/s": gpu.memory_bw},
                {"calibration": cal.source, gpu.key: gpu.source})


Curve = tuple[tuple[float, float], ...]  # (tokens per kernel call, fraction of peak), ascending tokens

# A flash-attention figure given as one number holds at every length; the measured 8k point it stands for.
ATTENTION_REFERENCE_TOKENS = 8192.0
# The head dimension the attention figures are measured at, the one their _d64 figures are, and the query/key one of
# their _d192 figures (multi-head latent attention: 192 for Q·K, 128 for V, DeepSeek-V3's shape).
ATTENTION_REFERENCE_HEAD_DIM = 128
ATTENTION_THIN_HEAD_DIM = 64
ATTENTION_WIDE_HEAD_DIM = 192


def _attention_curve(value) -> Curve:
    """A kernels.yaml attention figure: one fraction of peak, or [[tokens, fraction], ...] measured by sequence
    length (each kernel call's query length)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, (int, float)):
            points = ((ATTENTION_REFERENCE_TOKENS, float(value)),)
        else:
            points = tuple(sorted((float(a), float(b)) for a, b in value))
    except (TypeError, ValueError):
        points = ()
    if not points or any(a <= 0 or not 0 < b <= 1 for a, b in points):
        raise ValueError(f"attention figure {value!r}: fractions in (0, 1] at positive token counts")
    return points


def _at_length(curve: Curve, tokens):
    """The curve at `tokens` (scalar or array), interpolated in log size as the GEMM size curve is (_interp) and
    held flat beyond its ends; a one-point curve holds everywhere."""
    out = _interp(tokens, curve)
    return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class KernelTable:
    """Kernel-level efficiencies of one GPU architecture (catalog/data/kernels.yaml)."""

    arch: str
    gemm_plateau: dict
    size_curve_us: tuple[tuple[float, float], ...]
    fp8_cast_bytes: float
    source: str
    curve_source: str
    # {"" (the bf16 figure) or route (key bf16_<route>): (fwd Curve, bwd Curve)}, causal and without a mask
    attention_routes: dict = field(default_factory=dict)
    attention_full: dict = field(default_factory=dict)
    attention_d64: dict = field(default_factory=dict)  # the same kernels at head dim 64 (causal), where measured
    attention_d192: dict = field(default_factory=dict)  # ... at Q·K head dim 192 and V 128 (MLA, causal), where measured

    def attention(self, route: str = "", tokens=ATTENTION_REFERENCE_TOKENS, causal: bool = True,
                  head_dim: int = ATTENTION_REFERENCE_HEAD_DIM) -> tuple:
        """(forward, backward) flash-attention efficiencies of the kernel route a stack calls (stacks.yaml
        attention_kernel: kernels.yaml keys bf16_<route>, e.g. bf16_fa2), falling back to the bf16 figures where
        the architecture has no measurement of that route, at `tokens` query positions per kernel call (the
        sequence one GPU holds, s/cp): short sequences run below the long-sequence plateau. Without a causal mask
        the route's no-mask figures apply where measured (every tile is full, none on the diagonal), else its
        causal ones. Below head dim 128 the route's head-dim-64 figures (attention_fwd_d64), where measured, scale
        both by their ratio to the causal head-dim-128 ones, linearly in head dim between 64 and 128 and held
        below 64: a thinner head does half the matmul work per score element while the softmax work per element
        stays. Above 128 (`head_dim` is the query/key one) the MLA figures (attention_fwd_d192: Q·K at 192, V at
        128) scale them the same way, linearly between 128 and 192 and held beyond."""
        key = route if route in self.attention_routes else ""
        fwd, bwd = self.attention_routes[key]
        run_fwd, run_bwd = (fwd, bwd) if causal else self.attention_full.get(key, (fwd, bwd))
        f_fwd, f_bwd = _at_length(run_fwd, tokens), _at_length(run_bwd, tokens)
        if head_dim < ATTENTION_REFERENCE_HEAD_DIM:
            other, edge = self.attention_d64.get(key), ATTENTION_THIN_HEAD_DIM
        else:
            other, edge = self.attention_d192.get(key), ATTENTION_WIDE_HEAD_DIM
        if other is None or head_dim == ATTENTION_REFERENCE_HEAD_DIM:
            return f_fwd, f_bwd
        # the share of the way from the reference head dim to the measured one: 1 there and beyond
        w = min(1.0, (head_dim - ATTENTION_REFERENCE_HEAD_DIM) / (edge - ATTENTION_REFERENCE_HEAD_DIM))
        return tuple(f * (1.0 + w * (_at_length(t, tokens) / _at_length(c, tokens) - 1.0))
                     for f, t, c in ((f_fwd, other[0], fwd), (f_bwd, other[1], bwd)))

    def plateau(self, dtype: str, path: str = "") -> float:
        """Plateau of `dtype` GEMMs; `path` names the kernel route a stack calls (e.g. fp8 via
        torch._scaled_mm reads `fp8_scaled_mm`), falling back to the dtype's own figure."""
        if path and f"{dtype}_{path}" in self.gemm_plateau:
            return float(self.gemm_plateau[f"{dtype}_{path}"])
        return float(self.gemm_plateau.get(dtype, self.gemm_plateau.get("bf16", 0.75)))


def _route_curves(fwd: dict, bwd: dict) -> dict:
    """{"" for key bf16, route for key bf16_<route>: (forward Curve, backward Curve)} of a kernels.yaml pair."""
    return {("" if k == "bf16" else k[len("bf16_"):]): (_attention_curve(fwd[k]), _attention_curve(bwd[k]))
            for k in fwd}


def kernel_row(gpu: GpuSpec) -> tuple[str, dict]:
    """(key, entry) of the kernels.yaml row a GPU reads: its own row where it has one (a per-SKU measurement),
    else its architecture's, else the catalog's `default` row."""
    table = default_catalog().table("kernels")
    arch = gpu.key if gpu.key in table else gpu.architecture if gpu.architecture in table else "default"
    return arch, table[arch]


def kernel_table(gpu: GpuSpec) -> KernelTable:
    """The kernel table for a GPU, from its kernels.yaml row (kernel_row)."""
    arch, e = kernel_row(gpu)
    c = default_catalog().entry("kernels", "size_curve")[1]
    try:
        fwd, bwd = dict(e["attention_fwd"]), dict(e["attention_bwd"])
        fwd = {k: v for k, v in fwd.items() if k == "bf16" or k.startswith("bf16_")}
        routes = _route_curves(fwd, bwd)
        if "" not in routes:
            raise KeyError("bf16")
        # a row measured on its own GPU (aiinfra kernels) may carry its own size curve
        own = "gemm_size_curve_us" in e
        plateau = dict(e["gemm_plateau"])
        curve = tuple((float(a), float(b)) for a, b in (e if own else c)["gemm_size_curve_us"])
        cast_bytes = float(c["fp8_cast_bytes"])
        full_fwd, full_bwd = dict(e.get("attention_fwd_full") or {}), dict(e.get("attention_bwd_full") or {})
        thin_fwd, thin_bwd = dict(e.get("attention_fwd_d64") or {}), dict(e.get("attention_bwd_d64") or {})
        wide_fwd, wide_bwd = dict(e.get("attention_fwd_d192") or {}), dict(e.get("attention_bwd_d192") or {})
    except (KeyError, TypeError, ValueError) as err:
        raise AiinfraError(f"kernel table '{arch}' needs gemm_plateau, attention_fwd/bwd.bf16 (and each bf16_<route> "
                           f"in both) and a size curve ({err})") from None
    if set(k for k in bwd if k.startswith("bf16_")) != set(k for k in fwd if k.startswith("bf16_")):
        raise AiinfraError(f"kernel table '{arch}': attention_fwd and attention_bwd name different routes")
    # no-mask, head-dim-64 and MLA figures (optional): in pairs, for bf16 or a route attention_fwd names
    extra = {}
    for suffix, (f, b) in (("full", (full_fwd, full_bwd)), ("d64", (thin_fwd, thin_bwd)),
                           ("d192", (wide_fwd, wide_bwd))):
        if set(f) != set(b) or not set(f) <= set(fwd):
            raise AiinfraError(f"kernel table '{arch}': attention_fwd_{suffix} and attention_bwd_{suffix} must name "
                               f"the same keys, each one attention_fwd names")
        try:
            extra[suffix] = _route_curves(f, b)
        except ValueError as err:
            raise AiinfraError(f"kernel table '{arch}': attention_fwd_{suffix} / attention_bwd_{suffix} ({err})") from None
    bad = {k: v for k, v in plateau.items() if not is_share(v)}
    if bad or not plateau:
        raise AiinfraError(f"kernel table '{arch}': gemm_plateau maps each dtype to a fraction of its peak in (0, 1], "
                           f"got {bad or plateau!r}")
    if not cast_bytes > 0:
        raise AiinfraError(f"kernel table '{arch}': fp8_cast_bytes must be a number of bytes > 0, got {cast_bytes!r}")
    if not curve or any(a < 0 or not 0 < b <= 1 for a, b in curve) or list(curve) != sorted(curve):
        raise AiinfraError(f"kernel table '{arch}': gemm_size_curve_us must be [[microseconds at peak, fraction of "
                           f"the plateau in (0, 1]], ...] in ascending order")
    curve_source = e.get("source", "") if own else c.get("source", "")
    return KernelTable(arch, plateau, curve, cast_bytes, e.get("source", ""), curve_source, routes, extra["full"],
                       extra["d64"], extra["d192"])


def _interp(x, points: tuple[tuple[float, float], ...]):
    xs = np.log2(np.array([p[0] for p in points]) + 1.0)
    ys = np.array([p[1] for p in points])
    return np.interp(np.log2(np.maximum(np.asarray(x, dtype=float), 0.0) + 1.0), xs, ys)


def gemm_time(M, N, K, gpu: GpuSpec, dtype: str, kt: KernelTable, path: str = "", group: Number = 1) -> np.ndarray:
    """Seconds for one M×N×K GEMM: 2MNK / (peak × plateau × size_curve(time at peak)). `group`: the GEMM is one
    of that many equal problems launched together (a grouped GEMM, or GEMMs on concurrent streams), which fill
    the GPU as one large GEMM does, so the size curve reads the whole group's time at peak."""
    flops = 2.0 * np.asarray(M, dtype=float) * np.asarray(N, dtype=float) * np.asarray(K, dtype=float)
    pk = gpu.peak_flops(dtype)
    eff = kt.plateau(dtype, path) * _interp(flops * np.asarray(group, dtype=float) / pk * 1e6, kt.size_curve_us)
    return flops / (pk * eff)


def _s(v):
    return float(v) if np.ndim(v) == 0 else v

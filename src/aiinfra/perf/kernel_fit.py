"""Kernel measurements (GEMMs by shape, flash attention by length) → a kernels.yaml row for one GPU, and how far
the catalog's published figures sit from them.

The measurements come from `perf.kernel_measure` run on the GPU itself, or from a file in the same format
(`kind: kernel-measurements`) that holds someone else's published kernel benchmark. FLOPs are counted as
kernels.yaml counts them: a GEMM 2·M·N·K; attention forward 4·b·h·s²·d (half of it under a causal mask), the
backward 2.5× the forward. Efficiencies are fractions of the GPU's dense peak as the step-time model reads it
(`GpuSpec.peak_flops`: datasheet × sustained fraction), so the row drops into the model unchanged.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aiinfra.errors import AiinfraError
from aiinfra.explain import quantity
from aiinfra.perf.compute import ATTENTION_THIN_HEAD_DIM, ATTENTION_WIDE_HEAD_DIM, KernelTable, gemm_time
from aiinfra.specs import GpuSpec

# A fitted size curve is read on kernels.yaml's axis, time at peak (2MNK / peak, in µs), so it moves to a faster
# GPU; it needs GEMMs at this many sizes (a factor 2 apart) to say more than the shared curve does.
MIN_CURVE_KNOTS = 3
ATTENTION_ROUTES = ("cudnn", "fa2", "fa3")
HALF = ("bf16", "fp16")  # the 16-bit GEMMs: one tensor-core rate, one plateau, as the catalog rows hold it


def _half_peak(gpu: GpuSpec) -> float:
    """The 16-bit dense peak attention efficiencies are fractions of (kernels.yaml: "of the BF16 dense peak")."""
    return gpu.peak_flops(gpu.half_dtype)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GemmRecord(_Record):
    dtype: Literal["bf16", "fp16", "fp8"]
    route: Literal["", "scaled_mm"] = ""  # fp8 through torch._scaled_mm reads kernels.yaml fp8_scaled_mm
    m: int = Field(gt=0)
    n: int = Field(gt=0)
    k: int = Field(gt=0)
    seconds: float | None = Field(None, gt=0)
    tflops: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_measure(self):
        if (self.seconds is None) == (self.tflops is None):
            raise ValueError("give seconds or tflops, not both or neither")
        return self

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k

    @property
    def time_s(self) -> float:
        return self.seconds if self.seconds is not None else self.flops / (self.tflops * 1e12)

    def efficiency(self, gpu: GpuSpec) -> float:
        """Achieved fraction of the GPU's dense peak for this dtype."""
        return self.flops / self.time_s / gpu.peak_flops(self.dtype)

    @property
    def plateau_key(self) -> str:
        return f"{self.dtype}_{self.route}" if self.route else self.dtype


class AttentionRecord(_Record):
    route: Literal["cudnn", "fa2", "fa3"]
    causal: bool
    seq: int = Field(gt=0)
    batch: int = Field(gt=0)
    heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)  # of Q and K
    head_dim_v: int | None = Field(None, gt=0)  # of V where it differs (MLA: Q·K 192, V 128)
    window: int | None = Field(None, gt=0)  # causal sliding window: each query attends at most this many keys
    fwd_seconds: float | None = Field(None, gt=0)
    bwd_seconds: float | None = Field(None, gt=0)
    fwd_tflops: float | None = Field(None, gt=0)
    bwd_tflops: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_measure(self):
        for p in ("fwd", "bwd"):
            if (getattr(self, f"{p}_seconds") is None) == (getattr(self, f"{p}_tflops") is None):
                raise ValueError(f"give {p}_seconds or {p}_tflops, not both or neither")
        if self.window is not None and not self.causal:
            raise ValueError("a sliding window needs a causal mask")
        return self

    @property
    def fwd_flops(self) -> float:
        """2·b·h·(d_qk + d_v) per attended (query, key) pair (4·b·h·d where they are equal): s² without a mask, s²/2
        causal, and with a window w < s the w²/2 of the first w queries plus w for each one after."""
        s, w = float(self.seq), self.window
        pairs = s * s if not self.causal else (w * w / 2 + (s - w) * w if w and w < s else s * s / 2)
        return 2.0 * self.batch * self.heads * pairs * (self.head_dim + (self.head_dim_v or self.head_dim))

    @property
    def thin(self) -> bool:
        """A run at head dim 64 or below: it belongs to kernels.yaml's attention_*_d64 figures."""
        return self.head_dim <= ATTENTION_THIN_HEAD_DIM

    @property
    def band(self) -> str:
        """Which kernels.yaml figures a run belongs to: 'd64' (head dim 64 or below), 'd192' (Q·K head dim 192 or
        above, MLA's) or '' (the head-dim-128 ones)."""
        return "d64" if self.thin else "d192" if self.head_dim >= ATTENTION_WIDE_HEAD_DIM else ""

    def flops(self, part: str) -> float:
        """FLOPs of the forward or backward pass (backward counted as 2.5× the forward)."""
        return self.fwd_flops * (1.0 if part == "fwd" else 2.5)

    def achieved(self, part: str) -> float:
        """FLOP/s of the forward or backward pass."""
        secs = getattr(self, f"{part}_seconds")
        return self.flops(part) / secs if secs is not None else getattr(self, f"{part}_tflops") * 1e12


class Measurements(_Record):
    kind: Literal["kernel-measurements"]
    device: str = Field(min_length=1)
    date: dt.date
    source: str = Field(min_length=1)
    software: dict[str, str] = {}
    gemm: list[GemmRecord] = []
    attention: list[AttentionRecord] = []
    skipped: list[str] = []  # kernels the GPU or the PyTorch build could not run, as the measuring run saw them

    @model_validator(mode="after")
    def _something(self):
        if not self.gemm and not self.attention:
            raise ValueError("no gemm or attention records")
        return self


def _sig(v: float) -> float:
    """Three significant digits, as kernels.yaml writes its fractions (0.651), without rounding a slow kernel to 0."""
    return float(f"{float(v):.3g}")


def parse_measurements(doc, source: str = "measurements") -> Measurements:
    """Validate a measurement document; anything unknown or out of range is one line naming the field."""
    try:
        return Measurements.model_validate(doc)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "document"
        raise AiinfraError(f"{source}: {where}: {err['msg']}") from None


def _plateaus(meas: Measurements, gpu: GpuSpec) -> dict[str, float]:
    """Best fraction of dense peak per dtype/route over the measured shapes (MAMF: the best shape sets it)."""
    best: dict[str, float] = {}
    for r in meas.gemm:
        best[r.plateau_key] = max(best.get(r.plateau_key, 0.0), r.efficiency(gpu))
    return best


def _size_curve(meas: Measurements, gpu: GpuSpec, plateau16: float) -> list[list[float]] | None:
    """Fraction of the plateau by time at peak, from the 16-bit GEMMs. The points are taken smallest first in
    groups spanning at most a factor 2 of time at peak; each group gives a knot (geometric-mean time, median
    fraction), made non-decreasing (on the curve a bigger GEMM is never slower per FLOP) and capped at 1."""
    pts = sorted((r.flops / gpu.peak_flops(r.dtype) * 1e6, r.efficiency(gpu) / plateau16)
                 for r in meas.gemm if r.dtype in HALF and not r.route)
    groups: list[list[tuple[float, float]]] = []
    for p in pts:
        if groups and p[0] < 2 * groups[-1][0][0]:
            groups[-1].append(p)
        else:
            groups.append([p])
    if len(groups) < MIN_CURVE_KNOTS:
        return None
    xs = [float(np.exp(np.mean(np.log([p[0] for p in g])))) for g in groups]
    ys = np.minimum(np.maximum.accumulate([float(np.median([p[1] for p in g])) for g in groups]), 1.0)
    return [[0.0, _sig(ys[0])]] + [[_sig(x), _sig(y)] for x, y in zip(xs, ys, strict=True)]


def _fitted(r: AttentionRecord) -> bool:
    """Whether a run enters a kernels.yaml curve: the head-dim-128 figures are full or causal attention; the
    head-dim-64 ones causal, with or without a window (their published source measures a 1,024-token window); the
    MLA ones causal without a window."""
    if r.band == "d64":
        return r.causal
    return r.window is None and (r.causal or r.band == "")


def _attention_curves(meas: Measurements, gpu: GpuSpec, causal: bool, band: str = "") -> tuple[dict, dict]:
    """{bf16 or bf16_<route>: [[seq, fraction], ...]} forward and backward, for one mask, from the runs of one head
    dim band (AttentionRecord.band: kernels.yaml attention_*_d64, attention_*_d192, or the head-dim-128 figures)."""
    pk = _half_peak(gpu)
    fwd: dict[str, list] = {}
    bwd: dict[str, list] = {}
    for route in ATTENTION_ROUTES:
        rows = sorted((r for r in meas.attention if r.route == route and r.causal == causal and _fitted(r)
                       and r.band == band), key=lambda r: r.seq)
        if rows:
            fwd[f"bf16_{route}"] = [[r.seq, _sig(r.achieved("fwd") / pk)] for r in rows]
            bwd[f"bf16_{route}"] = [[r.seq, _sig(r.achieved("bwd") / pk)] for r in rows]
    # the bf16 key is the kernel a stack gets when it names no route: cuDNN (Transformer Engine) where measured
    default = next((f"bf16_{r}" for r in ATTENTION_ROUTES if f"bf16_{r}" in fwd), None)
    if default:  # copies, so that a YAML dump writes the numbers twice instead of an anchor and an alias
        fwd["bf16"], bwd["bf16"] = [list(p) for p in fwd[default]], [list(p) for p in bwd[default]]
    return fwd, bwd


def _check_peaks(meas: Measurements, gpu: GpuSpec) -> None:
    for r in meas.gemm:
        eff = r.efficiency(gpu)
        if eff > 1.0:
            raise AiinfraError(f"{r.dtype} GEMM {r.m}x{r.n}x{r.k} ran at {eff:.0%} of the {gpu.key} dense peak: "
                               f"the measurements come from a faster GPU than {gpu.key} (or its catalog peak is wrong)")
    pk = _half_peak(gpu)
    for a in meas.attention:
        for part in ("fwd", "bwd"):
            if a.achieved(part) > pk:
                raise AiinfraError(f"{a.route} attention at {a.seq} tokens ran {part} above the {gpu.key} dense peak: "
                                   f"the measurements come from a faster GPU than {gpu.key}")


def fit_row(meas: Measurements, gpu: GpuSpec, base: KernelTable, base_row: dict) -> tuple[dict, list[str]]:
    """A kernels.yaml row for `gpu` from the measurements: measured figures where measured, the catalog row's
    (`base_row`, the row `base` was read from) elsewhere, each named in the row's source. Returns (row, notes)."""
    _check_peaks(meas, gpu)
    notes: list[str] = []
    plateaus = _plateaus(meas, gpu)
    half = max((v for k, v in plateaus.items() if k in HALF), default=None)
    if half is not None:  # a measured 16-bit plateau holds for both 16-bit types
        plateaus.update({k: half for k in HALF})
    row_plateau = {**{k: float(v) for k, v in base.gemm_plateau.items()}, **{k: _sig(v) for k, v in plateaus.items()}}
    carried = sorted(set(row_plateau) - set(plateaus))
    row: dict = {"gemm_plateau": row_plateau}
    curve = _size_curve(meas, gpu, half) if half is not None else None
    if curve:
        row["gemm_size_curve_us"] = curve
    elif half is not None:
        notes.append(f"the 16-bit GEMMs span fewer than {MIN_CURVE_KNOTS} sizes a factor 2 apart (time at peak): "
                     "the shared size curve stays")
    for causal, band, suffix in ((True, "", ""), (False, "", "_full"), (True, "d64", "_d64"), (True, "d192", "_d192")):
        fwd, bwd = _attention_curves(meas, gpu, causal, band)
        base_fwd = base_row.get(f"attention_fwd{suffix}") or {}
        base_bwd = base_row.get(f"attention_bwd{suffix}") or {}
        merged_f = {**base_fwd, **fwd}
        merged_b = {**base_bwd, **bwd}
        if merged_f:
            row[f"attention_fwd{suffix}"] = merged_f
            row[f"attention_bwd{suffix}"] = merged_b
    if "attention_fwd" not in row:
        raise AiinfraError("no causal attention measured and the catalog row has none to keep")
    for dim in ("64", "192"):  # a head-dim-64 or MLA figure scales its route's head-dim-128 one: it needs one
        orphan = sorted(set(row.get(f"attention_fwd_d{dim}", {})) - set(row["attention_fwd"]))
        if orphan:
            raise AiinfraError(f"head-dim-{dim} attention measured for {', '.join(orphan)} without causal runs at head "
                               f"dim 128 of the same route, and the catalog row has none to keep")
    skipped = sum(1 for a in meas.attention if not _fitted(a))
    if skipped:
        notes.append(f"{skipped} attention runs (no mask at head dim 64 or below or at 192 and above, or a window "
                     "above 64) are compared, not fitted: the catalog holds head-dim-64 and MLA figures for causal "
                     "attention only, and its other figures without a window")
    measured_att = sorted({f"{a.route} {'causal' if a.causal else 'no mask'}{' ' + a.band if a.band else ''}"
                           f"{' window' if a.window else ''}" for a in meas.attention})
    sw = ", ".join(f"{k} {v}" for k, v in sorted(meas.software.items()))
    row["source"] = (
        f"Measured on {meas.device} on {meas.date.isoformat()}" + (f" ({sw})" if sw else "") + f": {meas.source.rstrip('.')}. "
        f"GEMM plateau from the best shape of {len(meas.gemm)} GEMMs ({', '.join(sorted(plateaus)) or 'none'}); "
        f"attention by length from {len(meas.attention)} runs ({'; '.join(measured_att) or 'none'}). "
        f"Kept from the catalog row '{base.arch}': " + (", ".join(f"gemm_plateau.{k}" for k in carried) or "no plateau")
        + ("" if "gemm_size_curve_us" in row else ", the shared size curve") + ", and any attention route not measured."
    )
    return row, notes


def compare(meas: Measurements, gpu: GpuSpec, kt: KernelTable) -> list[dict]:
    """Each measurement beside what the catalog's kernel table predicts for it: the catalog time (or efficiency)
    over the measured one. Above 1: the catalog is slower than the GPU measured; below 1: it is faster."""
    out = []
    for r in meas.gemm:
        predicted = float(gemm_time(r.m, r.n, r.k, gpu, r.dtype, kt, r.route))
        out.append({"kernel": f"GEMM {r.plateau_key}", "shape": f"{r.m}x{r.n}x{r.k}", "catalog_time": quantity(predicted, "s"),
                    "measured_time": quantity(r.time_s, "s"), "catalog_over_measured": predicted / r.time_s})
    pk = _half_peak(gpu)
    for a in meas.attention:
        eff = dict(zip(("fwd", "bwd"), kt.attention(a.route, a.seq, causal=a.causal, head_dim=a.head_dim), strict=True))
        for part in ("fwd", "bwd"):
            catalog_s, measured_s = a.flops(part) / (pk * eff[part]), a.flops(part) / a.achieved(part)
            out.append({"kernel": f"attention {a.route} {part}{'' if a.causal else ' no mask'}",
                        "shape": f"s={a.seq} b={a.batch} h={a.heads}/{a.kv_heads} d={a.head_dim}"
                                 + (f"/{a.head_dim_v}" if a.head_dim_v and a.head_dim_v != a.head_dim else "")
                                 + (f" window {a.window}" if a.window else ""),
                        "catalog_time": quantity(catalog_s, "s"), "measured_time": quantity(measured_s, "s"),
                        "catalog_over_measured": catalog_s / measured_s})
    return out


def catalog_document(gpu_key: str, row: dict, observed: dt.date) -> dict:
    """The user catalog file (`aiinfra --catalog FILE …`) that puts the fitted row in front of the shipped ones."""
    return {"kind": "kernels", "observed": observed.isoformat(), "entries": {gpu_key: row}}

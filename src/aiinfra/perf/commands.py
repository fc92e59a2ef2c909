"""`aiinfra kernels`: measure (or read) GEMM and flash-attention throughput of one GPU, turn it into a
kernels.yaml row the step-time model can use (`aiinfra --catalog FILE plan …`), and say how far the catalog's
published figures are from it. The CLI only parses options, reads or writes files and renders this Result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aiinfra.contract import Facts, Quantity, command
from aiinfra.explain import Result, quantity
from aiinfra.specs import GpuSpec


class KernelsFacts(Facts):
    gpu: str
    device: str
    date: str
    catalog_row: str  # the kernels.yaml row the comparison is against
    gemm_deviation: Quantity  # mean |catalog time / measured time − 1| over the GEMMs
    attention_deviation: Quantity  # the same over the attention passes
    comparison: list[dict]
    row: dict  # the fitted kernels.yaml row
    catalog_file: dict  # the user catalog document holding it
    measurements: dict


def _mean_dev(rows: list[dict], prefix: str) -> float | None:
    r = [x["catalog_over_measured"] for x in rows if x["kernel"].startswith(prefix)]
    return float(np.mean(np.abs(np.array(r) - 1.0))) if r else None


@command("kernels", facts=KernelsFacts)
def kernels(gpu: GpuSpec, measurements: dict | None = None, source: str = "measurements", quick: bool = False,
            progress: Callable[[str], None] | None = None) -> Result:
    """Fit a kernels.yaml row for `gpu` from kernel measurements (taken now on this machine's GPU with PyTorch when
    `measurements` is None; `quick` runs a smaller grid) and compare the catalog's figures with them."""
    from aiinfra.perf import kernel_fit as kf
    from aiinfra.perf.compute import kernel_row, kernel_table

    if measurements is None:
        from aiinfra.perf import kernel_measure as km

        measurements = km.measure(progress=progress, **(km.QUICK_GRID if quick else {}))
        source = "this machine's GPU"
    meas = kf.parse_measurements(measurements, source)
    arch, base_row = kernel_row(gpu)
    kt = kernel_table(gpu)
    row, notes = kf.fit_row(meas, gpu, kt, base_row)
    rows = kf.compare(meas, gpu, kt)
    gemm_dev, att_dev = _mean_dev(rows, "GEMM"), _mean_dev(rows, "attention")
    res = Result(f"Kernel measurements on {meas.device} against the catalog row '{arch}' ({gpu.key})")
    res.facts = {
        "gpu": gpu.key, "device": meas.device, "date": meas.date.isoformat(), "catalog_row": arch,
        "gemm_deviation": quantity(gemm_dev, ""), "attention_deviation": quantity(att_dev, ""),
        "comparison": rows, "row": row, "catalog_file": kf.catalog_document(gpu.key, row, meas.date),
        "measurements": meas.model_dump(mode="json", exclude_defaults=True),
    }
    res.warnings = [*notes, *(f"not measured: {s}" for s in meas.skipped)]
    family = gpu.key.split("-")[0]  # h100, h200, a100, b200, gb200: the part of the key a device name carries
    if family not in meas.device.lower().replace(" ", ""):
        res.warnings.insert(0, f"the measured device '{meas.device}' does not name {family.upper()}: the efficiencies "
                               f"are fractions of {gpu.key}'s peak; check --gpu")
    res.assumptions = [
        "FLOPs as kernels.yaml counts them: GEMM 2·M·N·K; attention forward 4·b·h·s²·d, halved under a causal mask, "
        "backward 2.5× the forward",
        f"efficiencies are fractions of {gpu.key}'s dense peak as the step-time model reads it (datasheet × sustained "
        f"fraction {gpu.sustained_compute_fraction:g}); a measurement above that peak is refused",
        "catalog_over_measured: the catalog's time for the same kernel over the measured time (> 1: the catalog is "
        "slower than this GPU; < 1: faster)",
        f"the compared catalog figures come from the row '{arch}': {kt.source[:200]}…",
    ]
    return res

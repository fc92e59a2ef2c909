"""Own a baseline, burst the rest to the cloud: pick the baseline that minimises total cost.

For hourly demand d_t (GPUs) and an owned baseline B:

    cost(B) = F × B × H  +  e × Σ min(d_t, B)  +  p × Σ max(0, d_t − B)

F is the owned fixed cost per GPU-hour available, e the energy per busy owned GPU-hour, p the cloud
price per GPU-hour and H the number of hours (cluster_tco_anchors.md §5.5, "Hybrid"). Every
candidate B is evaluated at once: the demand is sorted once and Σ max(0, d − B) comes from a
prefix sum and a binary search per candidate, so no Python loop runs over hours or candidates.

cost(B) is piecewise linear in B with kinks only where B equals an hour's demand, so its minimum
over whole GPUs lies at 0, the peak, or the floor or ceiling of some hour's demand. Those are the
candidates: at most 2 × hours + 2 of them whatever the peak (a 5e7-GPU peak no longer means 5e7
candidates), and the answer is the same as trying every whole number of GPUs.

Bounds (shared by the CLI and the web): at most `MAX_HOURS` rows and `MAX_GPUS` GPUs in any hour.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aiinfra.errors import AiinfraError
from aiinfra.explain import Term

_HEADER_NAMES = ("gpus", "demand", "gpu_demand", "gpus_needed")
MAX_HOURS = 10 * 8784  # ten years of hourly rows
MAX_GPUS = 1_000_000  # GPUs in one hour's demand (the largest clusters are ~1e5)


def read_demand_csv(path: str | Path) -> np.ndarray:
    """Hourly GPU demand from a CSV: one row per hour; the GPU count is the 'gpus'/'demand' column
    when a header names one, else the last column. A bad row is an error that names its line.
    The file is read through safeio (size cap, UTF-8, not binary)."""
    from aiinfra.safeio import read_text

    p = Path(path)
    return parse_demand_csv(read_text(p, what="demand file"), str(p))


def parse_demand_csv(text: str, p: str = "demand") -> np.ndarray:
    """The same profile from CSV text (the web form's field); `p` names it in errors."""
    try:
        return _parse(p, text, [], -1)
    except csv.Error as e:
        raise AiinfraError(f"{p}: not a CSV file ({e})") from None


def _parse(p: str, text: str, values: list[float], col: int) -> np.ndarray:
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if lineno == 1 and not values and not _is_number(row[col].strip()):
            names = [c.strip().lower() for c in row]
            col = next((names.index(n) for n in _HEADER_NAMES if n in names), -1)
            continue
        if col >= len(row) or (col < -len(row)):
            raise AiinfraError(f"{p}:{lineno}: row has {len(row)} column(s), expected the GPU column")
        cell = row[col].strip()
        if not _is_number(cell):
            raise AiinfraError(f"{p}:{lineno}: '{cell}' is not a GPU count; write a number >= 0")
        v = float(cell)
        if not math.isfinite(v) or v < 0 or v > MAX_GPUS:
            raise AiinfraError(f"{p}:{lineno}: GPU demand {cell} is out of range; write a number from 0 to {MAX_GPUS:,}")
        values.append(v)
        if len(values) > MAX_HOURS:
            raise AiinfraError(f"{p} holds more than {MAX_HOURS:,} hourly rows (ten years); shorten the profile")
    if not values:
        raise AiinfraError(f"{p} holds no demand rows; write one GPU count per hour")
    return np.asarray(values, dtype=float)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def generate_profile(hours: int = 8760, base: float = 64, peak: float = 256, burst_hours: int = 72,
                     bursts_per_year: float = 12, seed: int = 0) -> np.ndarray:
    """A steady + bursty demand: `base` GPUs always, plus bursts to `peak` lasting `burst_hours`,
    starting at random (seeded, so the same arguments give the same profile)."""
    if not (0 < hours <= MAX_HOURS) or base < 0 or peak < base or peak > MAX_GPUS or burst_hours <= 0 \
            or bursts_per_year < 0 or bursts_per_year > hours:
        raise AiinfraError(f"profile needs 0 < hours <= {MAX_HOURS:,}, 0 <= base <= peak <= {MAX_GPUS:,}, "
                           "burst hours > 0 and 0 <= bursts <= hours")
    rng = np.random.default_rng(seed)
    n = round(bursts_per_year * hours / 8760)
    starts = rng.integers(0, hours, size=n)
    # Mark burst hours with a difference array, so bursts are laid down without a loop.
    delta = np.zeros(hours + 1)
    np.add.at(delta, starts, 1)
    np.add.at(delta, np.minimum(starts + burst_hours, hours), -1)
    bursting = np.cumsum(delta[:hours]) > 0
    return np.where(bursting, float(peak), float(base))


@dataclass
class HybridPlan:
    candidates: np.ndarray
    cost: np.ndarray  # total cost per candidate baseline over the profile
    owned: np.ndarray
    burst: np.ndarray
    best: int  # index into candidates
    hours: int
    pure_cloud: Term
    pure_onprem: Term
    hybrid: Term
    baseline: Term


def plan(demand: np.ndarray, fixed_per_gpu_hour: Term, energy: Term, cloud_price: Term,
         step: int = 1) -> HybridPlan:
    """Keep the cheapest baseline. step 1: the exact candidates (0, peak, ⌊d⌋ and ⌈d⌉ of every hour);
    step > 1: every step-th whole number of GPUs up to the peak."""
    d = np.asarray(demand, dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise AiinfraError("demand must be a non-empty list of hourly GPU counts")
    if np.any(d < 0) or not np.all(np.isfinite(d)) or d.max() > MAX_GPUS or d.size > MAX_HOURS:
        raise AiinfraError(f"demand must be finite, 0 to {MAX_GPUS:,} GPUs every hour, over at most {MAX_HOURS:,} hours")
    if step < 1:
        raise AiinfraError(f"baseline step must be >= 1 GPU, got {step}")
    F, e, p = fixed_per_gpu_hour.value, energy.value, cloud_price.value
    peak = math.ceil(d.max())
    if step == 1:
        cand = np.unique(np.concatenate([[0.0, float(peak)], np.floor(d), np.ceil(d)]))
    else:
        cand = np.unique(np.append(np.arange(0, peak + 1, step), peak)).astype(float)
    srt = np.sort(d)
    prefix = np.concatenate([[0.0], np.cumsum(srt)])
    idx = np.searchsorted(srt, cand, side="right")
    above = d.size - idx
    overflow = (prefix[-1] - prefix[idx]) - cand * above  # Σ max(0, d − B)
    served = prefix[-1] - overflow  # Σ min(d, B)
    owned = F * cand * d.size + e * served
    burst = p * overflow
    cost = owned + burst
    best = int(np.argmin(cost))
    inputs = {"F": fixed_per_gpu_hour, "e": energy, "p": cloud_price, "hours": int(d.size)}
    formula = "F × B × H + e × Σ min(d, B) + p × Σ max(0, d − B)"
    pure_cloud = Term("pure cloud", float(cost[0]), "$", formula + " with B = 0", {**inputs, "B": 0.0})
    pure_onprem = Term("pure on-prem", float(cost[-1]), "$", formula + " with B = peak", {**inputs, "B": cand[-1]})
    hybrid = Term("hybrid", float(cost[best]), "$", formula + " at the cheapest B",
                  {**inputs, "B": float(cand[best]), "owned": float(owned[best]), "burst": float(burst[best])})
    baseline = Term("owned baseline", float(cand[best]), "GPUs", "argmin_B cost(B)",
                    {"candidates": int(cand.size), "peak": float(peak), "mean demand": float(d.mean())})
    return HybridPlan(cand, cost, owned, burst, best, int(d.size), pure_cloud, pure_onprem, hybrid, baseline)

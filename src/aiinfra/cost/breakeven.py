"""When owning beats renting: the breakeven utilization and the months to break even.

Owning costs F per GPU-hour whether the GPU is busy or not (capex × CRF + fixed opex, spread over
8760 h) plus energy e per busy GPU-hour. Renting costs p per busy GPU-hour. At utilization u the
owned cost per busy GPU-hour is F/u + e, so owning wins when

    u > u* = F / (p − e)                      (never, when p <= e)

This refines the reference note's u* = own_cost_per_hour / cloud_price (cluster_tco_anchors.md
§5.5) by keeping energy, which is only paid while busy, on the variable side.

Months to break even: the up-front CapEx is paid back by the monthly saving of running owned GPUs
(with the cost of capital spread over the life) instead of renting the same busy GPU-hours.
"""

from __future__ import annotations

import math

import numpy as np

from aiinfra.explain import Term


def breakeven_utilization(fixed_per_gpu_hour: Term, energy: Term, cloud_price: Term, label: str = "") -> Term:
    """u* = F / (p − e); a value above 1 (or inf) means renting is cheaper at any utilization."""
    margin = cloud_price.value - energy.value
    value = fixed_per_gpu_hour.value / margin if margin > 0 else math.inf
    return Term(f"breakeven utilization {label}".strip(), value, "", "F / (p − e)",
                {"F": fixed_per_gpu_hour, "p": cloud_price, "e": energy},
                note="owning is cheaper above this utilization" if value <= 1 else
                "renting is cheaper at every utilization")


def breakeven_months(capex: Term, own_month: Term, cloud_month: Term, label: str = "") -> Term:
    """CapEx / (cloud $/month − owned running $/month); inf when owning never pays back."""
    saving = cloud_month.value - own_month.value
    value = capex.value / saving if saving > 0 else math.inf
    return Term(f"months to break even {label}".strip(), value, "months", "capex / (cloud $/month − owned $/month after CapEx)",
                {"capex": capex, "owned running $/month": own_month, "cloud $/month": cloud_month},
                note="owned months include the cost of capital spread over the life" if saving > 0 else "owning never pays back at this utilization")


def cumulative(months: np.ndarray, upfront: float, per_month: float) -> np.ndarray:
    """Cumulative cash spent after each month: upfront + per_month × month."""
    return upfront + per_month * np.asarray(months, dtype=float)

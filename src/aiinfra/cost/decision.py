"""On-prem, cloud or hybrid: the seed's decision rule, made from the user's factors and the numbers.

The rule: sensitive data, steady work and long horizons favour owning; bursty work, no CapEx
budget and no specialised staff favour renting; mixed signals favour a hybrid (own the baseline,
burst the peaks). Each factor votes with a reason, and the numbers (utilization against breakeven,
horizon against payback) vote too, so the recommendation says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from aiinfra.errors import AiinfraError

SENSITIVITY = ("low", "medium", "high")


@dataclass
class Factors:
    sensitivity: str = "low"  # low | medium | high (regulated data that must stay on site)
    steadiness: float | None = None  # mean / peak demand, 0..1 (1 = flat)
    capex_budget: float | None = None  # $ available up front; None = not constrained
    has_staff: bool = True  # can run GPU servers and an InfiniBand fabric
    horizon_years: float = 4.0


@dataclass
class Decision:
    choice: str
    scores: dict[str, float]
    reasons: list[str] = field(default_factory=list)


def decide(f: Factors, utilization: float, breakeven_u: float, payback_months: float, capex: float,
           hybrid_saving: float | None = None) -> Decision:
    """Score 'on-prem' vs 'cloud'; a near tie, or a hybrid that saves money, gives 'hybrid'."""
    if f.sensitivity not in SENSITIVITY:
        raise AiinfraError(f"data sensitivity must be one of {', '.join(SENSITIVITY)}, got '{f.sensitivity}'")
    own, rent, reasons = 0.0, 0.0, []
    if f.sensitivity == "high":
        own += 3
        reasons.append("sensitive data: keeping it on hardware you control favours on-prem")
    elif f.sensitivity == "medium":
        own += 1
        reasons.append("moderately sensitive data leans towards on-prem")
    if f.steadiness is not None:
        if f.steadiness >= 0.7:
            own += 2
            reasons.append(f"steady demand (mean/peak {f.steadiness:.2f}) keeps owned GPUs busy")
        elif f.steadiness <= 0.4:
            rent += 2
            reasons.append(f"bursty demand (mean/peak {f.steadiness:.2f}) would leave owned GPUs idle")
    if f.capex_budget is not None and f.capex_budget < capex:
        rent += 3
        reasons.append(f"CapEx ${capex:,.0f} exceeds the budget ${f.capex_budget:,.0f}")
    if not f.has_staff:
        rent += 2
        reasons.append("no specialised staff to run GPU servers and the fabric")
    if breakeven_u <= 1 and utilization > breakeven_u:
        own += 2
        reasons.append(f"utilization {utilization:.0%} is above the breakeven {breakeven_u:.0%}")
    else:
        rent += 2
        be = "never" if not math.isfinite(breakeven_u) or breakeven_u > 1 else f"{breakeven_u:.0%}"
        reasons.append(f"utilization {utilization:.0%} is below the breakeven ({be})")
    if math.isfinite(payback_months) and payback_months <= f.horizon_years * 12:
        own += 1
        reasons.append(f"owning pays back in {payback_months:.0f} months, within the {f.horizon_years:g}-year horizon")
    else:
        rent += 1
        reasons.append(f"owning does not pay back within the {f.horizon_years:g}-year horizon")
    choice = "on-prem" if own > rent + 1 else "cloud" if rent > own + 1 else "hybrid"
    if hybrid_saving is not None and hybrid_saving > 0:
        reasons.append(f"a hybrid baseline saves ${hybrid_saving:,.0f} against the cheaper pure option")
        if choice != "hybrid" and not (choice == "on-prem" and f.sensitivity == "high"):
            choice = "hybrid"
    return Decision(choice, {"on-prem": own, "cloud": rent}, reasons)

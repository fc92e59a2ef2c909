"""On-prem, cloud or hybrid: the cheapest option over the horizon, unless a stated constraint rules it out.

Every option is costed over the same horizon and the same busy GPU-hours (the table the user sees).
The recommendation is the cheapest option that no constraint rules out, and when that is not the
cheapest option overall, the sentence names the constraint that ruled the cheaper one out:
- data that must stay on hardware you control (`--sensitivity high`) rules out renting;
- an up-front budget below an option's CapEx (`--capex-budget`) rules that option out;
- no staff to run GPU servers and a fabric (`--no-staff`) rules out owning (on-prem and hybrid).
Softer signals (moderately sensitive data, steady or bursty demand, payback against the horizon)
are reasons printed with the choice; they do not override the numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from aiinfra.errors import AiinfraError

SENSITIVITY = ("low", "medium", "high")
KINDS = ("on-prem", "cloud", "hybrid")


@dataclass
class Factors:
    sensitivity: str = "low"  # low | medium | high (regulated data that must stay on site)
    steadiness: float | None = None  # mean / peak demand, 0..1 (1 = flat)
    capex_budget: float | None = None  # $ available up front; None = not constrained
    has_staff: bool = True  # can run GPU servers and an InfiniBand fabric
    horizon_years: float = 4.0


@dataclass
class Option:
    """One way to get the GPU-hours: its kind, a label, its cost over the horizon and its CapEx."""

    kind: str  # on-prem | cloud | hybrid
    label: str
    total_usd: float
    capex_usd: float = 0.0


@dataclass
class Decision:
    choice: str  # the kind of the recommended option
    option: str  # its label
    total_usd: float
    sentence: str
    reasons: list[str] = field(default_factory=list)
    ruled_out: dict[str, str] = field(default_factory=dict)  # label -> the constraint that ruled it out
    cheapest: str = ""


def rank(o: Option) -> tuple:
    """Cheapest first, on the cents the options table prints, so totals it shows as equal tie-break by kind (a hybrid
    that owns no GPUs is the cloud offer it bursts to, up to float noise) instead of one being "cheaper" by a fraction
    of a cent; the table lists the options in this order."""
    return round(o.total_usd, 2), KINDS.index(o.kind), o.label


def constraint_against(o: Option, f: Factors) -> str | None:
    """The stated constraint that rules option `o` out, or None."""
    if f.sensitivity == "high" and o.kind != "on-prem":
        return "sensitive data must stay on hardware you control (--sensitivity high)"
    if not f.has_staff and o.kind in ("on-prem", "hybrid"):
        return "no staff to run GPU servers and the fabric (--no-staff)"
    if f.capex_budget is not None and o.capex_usd > f.capex_budget:
        return f"its CapEx ${o.capex_usd:,.0f} exceeds the budget ${f.capex_budget:,.0f} (--capex-budget)"
    return None


def decide(options: list[Option], f: Factors, *, utilization: float | None = None,
           breakeven_u: float | None = None, payback_months: float | None = None) -> Decision:
    """The cheapest option no constraint rules out; the sentence names what overrode a cheaper one."""
    if f.sensitivity not in SENSITIVITY:
        raise AiinfraError(f"data sensitivity must be one of {', '.join(SENSITIVITY)}, got '{f.sensitivity}'")
    if not options:
        raise AiinfraError("nothing to compare: no option could be costed")
    for o in options:
        if o.kind not in KINDS or not math.isfinite(o.total_usd):
            raise AiinfraError(f"option '{o.label}' cannot be compared (kind {o.kind}, total {o.total_usd})")
    ranked = sorted(options, key=rank)
    cheapest = ranked[0]
    ruled_out = {o.label: c for o in ranked if (c := constraint_against(o, f))}
    allowed = [o for o in ranked if o.label not in ruled_out]
    reasons = _reasons(f, utilization, breakeven_u, payback_months)
    if not allowed:
        why = "; ".join(sorted(set(ruled_out.values())))
        sentence = (f"no option meets every constraint ({why}); the cheapest is {cheapest.label} "
                    f"at ${cheapest.total_usd:,.0f}")
        return Decision(cheapest.kind, cheapest.label, cheapest.total_usd, sentence, reasons, ruled_out, cheapest.label)
    best = allowed[0]
    if best is cheapest:
        runner = next((o for o in ranked if o is not best), None)
        sentence = f"{best.label} is the cheapest option at ${best.total_usd:,.0f} over the horizon"
        if runner is not None:
            sentence += f" (next: {runner.label} at ${runner.total_usd:,.0f})"
    else:
        sentence = (f"{best.label} at ${best.total_usd:,.0f}: the cheaper {cheapest.label} "
                    f"(${cheapest.total_usd:,.0f}) is ruled out because {ruled_out[cheapest.label]}")
    return Decision(best.kind, best.label, best.total_usd, sentence, reasons, ruled_out, cheapest.label)


def _reasons(f: Factors, utilization: float | None, breakeven_u: float | None,
             payback_months: float | None) -> list[str]:
    """Context printed with the choice; none of it overrides the costs."""
    out = []
    if f.sensitivity == "medium":
        out.append("moderately sensitive data leans towards on-prem")
    if f.steadiness is not None:
        if f.steadiness >= 0.7:
            out.append(f"steady demand (mean/peak {f.steadiness:.2f}) keeps owned GPUs busy")
        elif f.steadiness <= 0.4:
            out.append(f"bursty demand (mean/peak {f.steadiness:.2f}) would leave owned GPUs idle")
    if utilization is not None and breakeven_u is not None:
        be = "never" if not math.isfinite(breakeven_u) or breakeven_u > 1 else f"{breakeven_u:.0%}"
        side = "above" if be != "never" and utilization > breakeven_u else "below"
        out.append(f"utilization {utilization:.0%} is {side} the breakeven ({be}) against the reference offer")
    if payback_months is not None:
        if math.isfinite(payback_months) and payback_months <= f.horizon_years * 12:
            out.append(f"owning pays back in {payback_months:.0f} months, within the {f.horizon_years:g}-year horizon")
        else:
            out.append(f"owning does not pay back within the {f.horizon_years:g}-year horizon against the reference offer")
    return out

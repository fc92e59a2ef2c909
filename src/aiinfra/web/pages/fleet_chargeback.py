"""The Fleet page's chargeback section: GPU-hours, kWh and USD by namespace and the top wasters.

Called by pages/fleet.py for a Prometheus source; it runs the same library function as
`aiinfra chargeback` (fleet.chargeback.chargeback) over the page's range and idle ratio.
"""

from __future__ import annotations

from typing import Any

from aiinfra.web.common import Explainer, Table

MAX_ROWS = 15


def chargeback_tables(s: Any, ex: Explainer, timeout_s: float = 5.0) -> tuple[list[Table], list[str]]:
    from aiinfra.errors import AiinfraError
    from aiinfra.fleet.chargeback import ChargebackOptions, chargeback
    from aiinfra.fleet.prom import parse_duration

    try:
        r = chargeback(s.prometheus.strip(), ChargebackOptions(range_s=max(60.0, parse_duration(s.range)), idle_ratio=s.idle_ratio,
                                                               held_mib=s.held_mib), timeout_s=timeout_s)
    except AiinfraError as e:
        return [], [f"chargeback: {e}"]
    ex.add_result(r)
    f = r.facts
    if f.get("status") != "ok":
        return [], list(r.warnings)

    def usd(v: Any) -> str:
        return "–" if v is None else f"{v:,.2f}"

    ns = Table(f"Chargeback by namespace ({f['price_source']})", ["namespace", "GPU-hours allocated", "busy", "idle but held GPU-h",
                                                                    "kWh", "USD", "waste USD"], id="chargeback")
    for row in f["by_namespace"][:MAX_ROWS]:
        hours = ex.fact(f"GPU-hours allocated ({row['namespace']})", row["allocated_gpu_hours"], "GPU·h",
                        "Σ steps held × step × share (MIG slices, shared replicas) over the namespace's pods, PromQL subqueries",
                        {"pods": row["pods"]}, {"source": "aiinfra chargeback"}, f"{row['allocated_gpu_hours']:,.1f}")
        ns.rows.append([row["namespace"], hours, f"{100 * row['busy_ratio']:.0f} %", f"{row['idle_held_gpu_hours']:,.1f}",
                        f"{row['energy_kwh']:,.1f}", usd(row["cost_usd"]), usd(row["waste_usd"])])
    if not ns.rows:
        ns.rows.append(["no pod or job labels (enable aiinfra exporter --kubernetes)", "", "", "", "", "", ""])
    top = Table("Top wasters (GPU-hours held while idle)", ["namespace", "pod", "HPC job", "idle but held GPU-h", "waste USD"], id="wasters")
    for row in f["top_wasters"][:MAX_ROWS]:
        top.rows.append([row["namespace"] or "–", row["pod"] or "–", row["hpc_job"] or "–", f"{row['idle_held_gpu_hours']:,.2f}", usd(row["waste_usd"])])
    if not top.rows:
        top.rows.append(["none", "", "", "", ""])
    return [ns, top], list(r.warnings)

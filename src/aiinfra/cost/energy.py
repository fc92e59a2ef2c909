"""Energy cost of owned GPUs: node power × average load × PUE × $/kWh, per GPU-hour.

Reference arithmetic (cluster_tco_anchors.md §4): DGX H100 at 10.2 kW, PUE 1.3, $0.08/kWh and full
load → 0.08 × 10.2 × 1.3 / 8 ≈ $0.133 per GPU-hour.
"""

from __future__ import annotations

from aiinfra.cost import prices
from aiinfra.errors import AiinfraError, NotFoundError, not_found
from aiinfra.explain import Term


def energy_per_gpu_hour(node_kw: float, gpus_per_node: int, load: float, pue: Term | float,
                        usd_per_kwh: Term | float) -> Term:
    """$ per GPU-hour of electricity for a node drawing `load` × its maximum power."""
    pue_v, kwh_v = float(pue), float(usd_per_kwh)
    if node_kw <= 0 or gpus_per_node <= 0:
        raise AiinfraError("node power and GPUs per node must be > 0")
    if not 0 <= load <= 1:
        raise AiinfraError(f"average load must be a fraction of maximum power in [0, 1], got {load}")
    if pue_v < 1:
        raise AiinfraError(f"PUE must be >= 1 (facility power / IT power), got {pue_v}")
    if kwh_v < 0:
        raise AiinfraError(f"electricity price must be >= 0 $/kWh, got {kwh_v}")
    return Term(
        "energy", kwh_v * node_kw * load * pue_v / gpus_per_node, "$/GPU-h",
        "$/kWh × node_kW × load × PUE / GPUs_per_node",
        {"$/kWh": usd_per_kwh, "node_kW": node_kw, "load": load, "PUE": pue, "GPUs_per_node": gpus_per_node},
    )


def pue(value: str | float) -> Term:
    """A PUE given as a number or a preset name (hyperscale, ai-datacenter, colo, industry-average)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        try:
            key, e = prices.lookup("pue", _prefixed("pue", str(value)), "PUE preset")
        except NotFoundError:
            presets = [k.removeprefix("pue-") for k in prices.of_type("pue")]
            raise not_found("PUE preset", str(value), presets) from None
        return Term("PUE", float(e["pue"]), "", "preset", {"preset": key}, {key: prices.describe(key, e)})
    if not 1 <= v <= 10:  # also false for nan; the worst facilities measured stay near 2.5
        raise AiinfraError(f"PUE must be between 1 and 10 (facility power / IT power), got {v:g}")
    return Term("PUE", v, "", "given")


def electricity(value: str | float) -> Term:
    """$/kWh given as a number or a region name (us-industrial, iowa, ohio, new-york, …)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        key, e = prices.lookup("electricity", str(value), "electricity region")
        return Term("electricity", float(e["usd_per_kwh"]), "$/kWh", "regional price", {"region": key},
                    {key: prices.describe(key, e)})
    if not 0 <= v <= 100:  # also false for nan; retail peaks stay far below $1/kWh
        raise AiinfraError(f"electricity price must be between 0 and 100 $/kWh, got {v:g}")
    return Term("electricity", v, "$/kWh", "given")


def _prefixed(prefix: str, name: str) -> str:
    n = name.strip().lower()
    return n if n.startswith(prefix + "-") else f"{prefix}-{n}"

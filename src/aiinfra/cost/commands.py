"""`aiinfra tco` as one library function: a validated spec in, one Result out.

`TcoSpec` holds every option of the command with its bounds, declared once here and used by the CLI
(cli/tco.py) and the web page (web/pages/tco.py) alike, so neither shell can send work the other
would refuse: GPUs and peaks up to 1,000,000, a life up to 50 years, fractions in [0, 1], money
finite and >= 0, lists of a few dozen names. Files (a demand CSV, a BOM) are read by the CLI through
safeio and passed in as data; the web never names a server-side file.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aiinfra.contract import Facts, Quantity, command
from aiinfra.errors import AiinfraError
from aiinfra.explain import Result

MAX_GPUS = 1_000_000
MAX_USD = 1e13  # more than any budget or price a cluster has had
Name = Field(default=None, max_length=80)


class TcoSpec(BaseModel):
    """`aiinfra tco` options (the web's form and JSON body use the same names)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    gpus: int = Field(0, ge=0, le=MAX_GPUS)
    gpu: str = Field("h100-sxm", max_length=80)
    node: str | None = Field(None, max_length=80)
    node_price: float | None = Field(None, ge=0, le=MAX_USD)
    utilization: float | None = Field(None, ge=0.001, le=1)  # below 0.1% busy the cost per busy hour is unbounded
    years: float | None = Field(None, gt=0, le=50)
    rate: float | None = Field(None, ge=0, le=1)
    residual: float = Field(0.0, ge=0, le=1)
    pue: str = Field("ai-datacenter", max_length=40)
    electricity: str = Field("us-industrial", max_length=40)
    load: float = Field(0.75, gt=0, le=1)
    facility: Literal["colo", "owned"] = "colo"
    colo: str = Field("colo-retail", max_length=40)
    support: float | None = Field(None, ge=0, le=1)
    staff_cost: float | None = Field(None, ge=0, le=1e8)
    spares: float = Field(0.0, ge=0, le=1)
    storage_tb: float = Field(0.0, ge=0, le=1e7)
    design: bool = False
    preset: Literal["basepod", "dgx-pod", "superpod"] | None = None
    su: int | None = Field(None, ge=1, le=1000)
    dataset_tb: float = Field(0.0, ge=0, le=1e7)
    cloud: list[str] = Field([], max_length=40)
    term: list[str] = Field(["on-demand"], max_length=5)
    egress_tb: float = Field(0.0, ge=0, le=1e7)
    gpu_hours: float | None = Field(None, gt=0, le=1e12)
    tokens_per_s: float | None = Field(None, ge=1e-3, le=1e9)
    hybrid: bool = False
    base: float = Field(64, ge=0, le=MAX_GPUS)
    peak: float = Field(256, ge=0, le=MAX_GPUS)
    burst_hours: int = Field(72, ge=1, le=8760)
    bursts: float = Field(12, ge=0, le=8760)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    sensitivity: Literal["low", "medium", "high"] = "low"
    capex_budget: float | None = Field(None, ge=0, le=MAX_USD)
    staff: bool = True

    @field_validator("cloud", "term", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        """A comma-separated string (the web form) or a list (the CLI repeats the option)."""
        if isinstance(v, str):
            return [x.strip() for x in v.split(",") if x.strip()]
        return v

    @field_validator("cloud", "term")
    @classmethod
    def _short_names(cls, v: list[str]) -> list[str]:
        for x in v:
            if len(x) > 80:
                raise ValueError("names are at most 80 characters")
        return v


class TcoFacts(Facts):
    """What `aiinfra tco --format json` promises under `facts`."""

    owned_usd_per_gpu_hour: Quantity
    capex: Quantity
    owned_usd_per_year: Quantity
    owned_total_usd: Quantity
    gpus: int
    nodes: float | int
    it_power_kw: Quantity
    utilization: Quantity
    life_years: Quantity
    cost_of_capital: Quantity
    residual: Quantity
    capex_source: str
    offers: list[dict[str, Any]]
    options: list[dict[str, Any]]
    recommendation: Literal["on-prem", "cloud", "hybrid"]
    recommended_option: str
    recommended_total_usd: Quantity
    cheapest_option: str
    recommendation_sentence: str
    reasons: list[str]


def default_node(gpu: str) -> str:
    """The catalog node for a GPU key, DGX first (the configuration the published prices describe)."""
    from aiinfra.catalog import prices
    from aiinfra.catalog.loader import default_catalog

    try:
        gpu_key, known = default_catalog().resolve("gpus", gpu), None
    except AiinfraError as e:
        gpu_key, known = gpu.lower(), e
    nodes = sorted((k for k, e in prices.of_type("node").items() if e.get("gpu") == gpu_key),
                   key=lambda k: (not k.startswith("dgx"), k))
    if not nodes and known is not None:
        raise known  # not a GPU the catalog knows: suggest GPU names
    if not nodes:
        raise AiinfraError(f"no on-prem node with GPU '{gpu}' in the price catalog; "
                           f"known nodes: {', '.join(sorted(prices.of_type('node')))}")
    return nodes[0]


def _check_node_gpu(node: str, gpu: str) -> None:
    """One line where --gpu names another GPU than the --node holds (the node's GPU is the one costed)."""
    from aiinfra.catalog import prices
    from aiinfra.catalog.loader import default_catalog

    nodes = prices.of_type("node")
    entry = nodes.get(node) or nodes.get(node.lower())
    if entry is None:
        return  # an unknown node: the cost model refuses it with the closest names
    try:
        gpu_key = default_catalog().resolve("gpus", gpu)
    except AiinfraError:
        gpu_key = gpu.lower()
    if entry.get("gpu") and entry["gpu"] != gpu_key:
        same = sorted(k for k, e in nodes.items() if e.get("gpu") == gpu_key)
        other = f" or name a node with {gpu_key} GPUs ({', '.join(same)})" if same else ""
        raise AiinfraError(f"--gpu {gpu} conflicts with --node {node}, which holds {entry['gpu']} GPUs; drop --gpu "
                           f"(the node decides){other}")


def report(spec: TcoSpec, demand: Any = None, bom: list | None = None, bom_source: str = "") -> Any:
    """The full TcoReport (the Result plus the series the plot draws). `demand`: hourly GPUs (from a
    CSV the CLI read); `bom`: line items (from a BOM file the CLI read)."""
    import numpy as np

    from aiinfra.cost import hybrid
    from aiinfra.cost.decision import Factors
    from aiinfra.cost.onprem import OnPremInputs
    from aiinfra.cost.tco import TcoInputs, tco

    s = spec
    profile = None
    if demand is not None:
        profile = np.asarray(demand, dtype=float)
    elif s.hybrid:
        if s.peak < s.base:
            raise AiinfraError(f"--peak ({s.peak:g}) must be at least --base ({s.base:g})")
        profile = hybrid.generate_profile(8760, s.base, s.peak, s.burst_hours, s.bursts, s.seed)
    if bom is not None and s.design:
        raise AiinfraError("give either --bom FILE or --design, not both")
    if (s.preset is not None or s.su is not None) and not s.design:
        raise AiinfraError("--preset and --su need --design")
    if s.dataset_tb and not s.design:
        raise AiinfraError("--dataset-tb sizes the storage of the cluster --design builds; add --design, or buy "
                           "storage with --storage-tb")
    if s.facility == "owned" and "colo" in s.model_fields_set:
        raise AiinfraError(f"--colo {s.colo} prices colocation space; --facility owned pays no colocation "
                           "(drop --colo, or use --facility colo)")
    if s.node is not None and "gpu" in s.model_fields_set:
        _check_node_gpu(s.node, s.gpu)
    items, source, extra = (bom, bom_source or "BOM file", []) if bom is not None else (None, "", [])
    if s.design:
        from aiinfra.cost.design_bom import design_bom, unpriced_warning

        d = design_bom(s.gpus if s.gpus > 0 else (math.ceil(profile.max()) if profile is not None else 0),
                       s.node or default_node(s.gpu), s.preset, s.su, s.dataset_tb)
        items, source = d.items, "cluster designer BOM (aiinfra design)"
        extra = [w for w in [unpriced_warning(d)] if w]
    if s.gpus <= 0 and profile is None and items is None:
        raise AiinfraError("give the GPUs to own with --gpus N (or a demand profile with --demand/--hybrid)")
    utilization = s.utilization
    if utilization is None:
        utilization = float(profile.mean() / profile.max()) if profile is not None and profile.max() > 0 else 0.7
    try:
        colo_rate: float | None = float(s.colo)
    except ValueError:
        colo_rate = None
    if colo_rate is not None and not (math.isfinite(colo_rate) and 0 <= colo_rate <= 1e5):
        raise AiinfraError(f"--colo {s.colo} $/kW-month is out of range; write 0 to 100000 or a preset")
    op = OnPremInputs(
        gpus=s.gpus, node=s.node or default_node(s.gpu), utilization=utilization, years=s.years, rate=s.rate,
        residual=s.residual, pue=s.pue, electricity=s.electricity, load=s.load, facility=s.facility,
        colo=s.colo if colo_rate is None else "colo-retail", colo_usd_per_kw_month=colo_rate,
        support_fraction=s.support, staff_usd_per_fte_year=s.staff_cost, spares_fraction=s.spares,
        storage_tb=s.storage_tb, node_price=s.node_price, bom=items, bom_source=source,
    )
    inputs = TcoInputs(op, clouds=list(s.cloud), terms=list(s.term or ["on-demand"]), egress_tb_month=s.egress_tb,
                       gpu_hours=s.gpu_hours, tokens_per_gpu_s=s.tokens_per_s, demand=profile,
                       factors=Factors(sensitivity=s.sensitivity, capex_budget=s.capex_budget, has_staff=s.staff),
                       warnings=extra)
    return tco(inputs)


@command("tco", facts=TcoFacts)
def tco_command(spec: TcoSpec, demand: Any = None, bom: list | None = None, bom_source: str = "") -> Result:
    """Cost per GPU-hour owned vs rented, breakeven utilization and months, hybrid baseline, recommendation."""
    return report(spec, demand, bom, bom_source).result

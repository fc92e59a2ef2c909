"""Compose a whole cluster: compute fabric, storage, management, racks, power, all-reduce, BOM.

`design_cluster(DesignInput(...))` returns a `ClusterDesign`; `.result()` turns it into an
explained `Result` (summary terms, BOM, per-tier table, rack plan) for the shells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aiinfra.cluster import allreduce, superpod
from aiinfra.cluster.bom import LineItem, merge, optic_item, total_power
from aiinfra.cluster.fabric import (
    Fabric,
    LeafSpine,
    design_fabric,
    fabric_optics,
    leaf_spine,
    parse_oversubscription,
)
from aiinfra.cluster.management import Management, plan_management
from aiinfra.cluster.parts import (
    SwitchSpec,
    SystemSpec,
    constant,
    service,
    switch,
    system,
)
from aiinfra.cluster.power import RackPlan, annual_energy, facility_power, plan_racks
from aiinfra.cluster.reference import recommend_preset
from aiinfra.cluster.storage import StoragePlan, plan_storage
from aiinfra.errors import SpecError
from aiinfra.explain import Result, Term, total
from aiinfra.units import TB


class DesignInput(BaseModel):
    """What the user asks for. GPU count, node type and fabric are required; the rest has defaults."""

    model_config = ConfigDict(extra="forbid")

    gpus: int
    node: str = "dgx-h100"
    nics: int | None = None
    fabric: str | None = None  # None: the system's RA fabric (qm9700 for DGX, q3400 for GB300 NVL72)
    oversubscription: str | float = "1:1"
    rail_optimized: bool = True
    tiers: int | None = None
    ufm_links: int | None = None
    storage_tier: str = "better"
    storage_switch: str | None = None
    dataset_tb: float = Field(0.0, ge=0)
    copies: int | None = None
    checkpoints_kept: int | None = None
    params: float | None = None
    model: str | None = None
    bytes_per_param: float | None = None
    grad_bytes_per_param: float = Field(2.0, gt=0)
    dp: int | None = None
    gds: bool = True
    samples_per_s: float | None = None
    bytes_per_sample: float | None = None
    failure_rate: float | None = None
    rack_kw: float | None = None
    pue: float | None = None
    load_factor: float = 1.0
    storage_kw: float = Field(0.0, ge=0)
    control_nodes: int | None = None
    ufm_appliances: int | None = None
    preset: str | None = None
    separate_storage_fabric: bool = True
    preset_source: str = ""
    fixed_nodes: int | None = None  # a preset that fixes the node count (127 at 4 SU) rather than a GPU count


@dataclass
class ClusterDesign:
    inp: DesignInput
    system: SystemSpec
    fabric: Fabric
    storage: StoragePlan
    storage_fabric: LeafSpine | None
    management: Management
    racks: RackPlan
    bom: list[LineItem]
    terms: list[Term]
    title: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def term(self, name: str) -> Term:
        """A summary term, or a part of one ("IT power: compute nodes" is a part of "IT power")."""
        for t in self.terms:
            if t.name == name:
                return t
            for p in t.parts:
                if p.name == name:
                    return p
        raise KeyError(name)

    def result(self) -> Result:
        return Result(self.title, terms=self.terms, facts=self.facts, warnings=self.warnings)


def model_params(inp: DesignInput) -> tuple[float | None, str]:
    """Parameter count from --params or a catalog model (exact count from its architecture)."""
    if inp.params is not None and inp.model:
        raise SpecError("give either --params or --model, not both")
    if inp.params is not None:
        return inp.params, "given"
    if inp.model:
        from aiinfra.catalog.models import model
        from aiinfra.sizing.params import param_counts

        return float(param_counts(model(inp.model)).total.value), f"exact count of {inp.model} (aiinfra.sizing.params)"
    return None, ""


def scale_class(gpus: int) -> str:
    """The seed's scaling guidance: 1–8 one node, 16–64 BasePOD, 160–1000 POD/SuperPOD, 1000+ custom."""
    if gpus <= 8:
        return "one node (1–8 GPUs)"
    if gpus <= 64:
        return "DGX BasePOD class (16–64 GPUs)"
    if gpus < 160:
        return "between BasePOD and one SuperPOD SU (65–159 GPUs): a 1-SU rail-optimized fabric"
    if gpus <= 1024:  # "160–1000" in the guidance; 4 SU (the RA's focus) holds 1,016–1,024 GPUs
        return "DGX POD / SuperPOD class (160–1000 GPUs, up to 4 SU)"
    return "custom large-scale SuperPOD (1000+ GPUs): engage the vendor"


def design_cluster(inp: DesignInput) -> ClusterDesign:
    if inp.fixed_nodes is None and inp.gpus <= 0:
        raise SpecError(f"GPU count must be positive, not {inp.gpus}")
    sysm = system(inp.node)
    if sysm.part_of:
        raise SpecError(f"{sysm.key} is a tray of {sysm.part_of}; design with --node {sysm.part_of}")
    if sysm.rack_scale:
        from aiinfra.cluster.rackscale import design_rackscale

        return design_rackscale(inp, sysm)
    sysm = sysm.with_nics(inp.nics)
    sw = switch(inp.fabric or sysm.compute_fabric or "qm9700")
    o = parse_oversubscription(inp.oversubscription)
    warnings: list[str] = []
    if inp.fixed_nodes is not None:
        nodes = inp.fixed_nodes
    else:
        nodes = math.ceil(inp.gpus / sysm.gpus)
        if nodes * sysm.gpus != inp.gpus:
            warnings.append(f"{inp.gpus} GPUs is not a multiple of {sysm.gpus} per {sysm.key}; rounded up to {nodes} nodes = {nodes * sysm.gpus} GPUs")
    gpus = nodes * sysm.gpus
    infiniband = sw.protocol == "infiniband"
    # UFM links take compute-leaf ports on InfiniBand (RA Table 4); Ethernet fabrics have no UFM.
    ufm_links = inp.ufm_links if inp.ufm_links is not None else (service("ufm-appliance").fabric_links if infiniband else 0)
    fab = design_fabric(nodes, sysm, sw, o, inp.rail_optimized, inp.tiers, ufm_links)
    warnings += fab.warnings

    params, params_src = model_params(inp)
    stor = plan_storage(inp.storage_tier, sysm, nodes, fab.sus, params=params, bytes_per_param=inp.bytes_per_param,
                        dataset_bytes=inp.dataset_tb * TB, copies=inp.copies, checkpoints_kept=inp.checkpoints_kept, gpus=gpus,
                        failure_rate=inp.failure_rate, gds=inp.gds,
                        samples_per_s_per_gpu=inp.samples_per_s, bytes_per_sample=inp.bytes_per_sample)
    warnings += stor.warnings
    # The DGX SuperPOD presets follow RA V11 Tables 7–8 item by item (cluster/superpod.py).
    ra_mode = inp.preset in ("superpod", "dgx-pod") and infiniband and sysm.storage_ports > 0 and inp.separate_storage_fabric
    storage_terms: list[Term] = []
    if ra_mode:
        sfab, storage_terms = superpod.storage_fabric(sysm, nodes, fab.sus, switch(inp.storage_switch or "qm9700"), service("ufm-appliance").fabric_links)
    else:
        sfab = _storage_fabric(inp, sysm, sw, nodes, stor)

    bom: list[LineItem] = [LineItem("compute", sysm.key, nodes, sysm.max_power_w,
                                    f"⌈{gpus} GPUs / {sysm.gpus} per node⌉" if inp.fixed_nodes is None else f"preset: {nodes} nodes", "systems")]
    for layer in fab.layers:
        why = {"leaf": f"{fab.rails} rails × {fab.sus} SU" if fab.tiers > 1 else "single-tier rail switches",
               "spine": fab.term("spine switches").formula if fab.tiers > 1 else "", "core": "spines × (k/2) / k"}[layer.name]
        bom.append(LineItem("compute-fabric", sw.key, layer.switches, sw.max_power_w, f"{layer.name}: {why}", "switches"))
    if not ra_mode:
        for role, (key, qty) in fabric_optics(fab).items():
            how = {"switch transceivers": "per switch cage", "node transceivers": "per node cage", "UFM transceivers": "one per UFM link"}.get(role, "one per link")
            bom.append(optic_item("optics", key, qty, f"compute fabric {role} ({how})"))
    if sfab is not None:
        leaf_why = "storage leaf: ⌈DGX storage links / 32⌉ (32 down, 24 up ≈ 4:3) + 1 storage leaf per SU (1:1)" if ra_mode else "storage leaf: ⌈endpoints / down ports⌉ at ~4:3"
        bom.append(LineItem("storage-fabric", sfab.switch.key, sfab.leaves, sfab.switch.max_power_w, leaf_why, "switches"))
        bom.append(LineItem("storage-fabric", sfab.switch.key, sfab.spines, sfab.switch.max_power_w, "storage spine: smallest divisor of up ports", "switches"))
        bom.append(LineItem("storage-fabric", sfab.switch.key, sfab.cores, sfab.switch.max_power_w, "storage core: 3 tiers beyond the 2-tier reach", "switches"))
        if not ra_mode:
            o_keys = sfab.switch.optics
            bom.append(optic_item("optics", o_keys["switch"], sfab.cages, "storage fabric switch transceivers (per cage)"))
            bom.append(optic_item("optics", o_keys["node_single"], nodes * sysm.storage_ports, "storage fabric node-side transceivers (one per port)"))
            bom.append(optic_item("optics", o_keys["cable"], sfab.cables, "storage fabric cables (one per link)"))

    # Racks depend on switch counts (network racks) and management depends on racks (PDU ports).
    storage_switches = (sfab.leaves + sfab.spines + sfab.cores) if sfab else 0
    fabric_units = fab.switches * sw.rack_units + (storage_switches * sfab.switch.rack_units if sfab else 0)
    pre_racks = plan_racks(sysm, nodes, fabric_units, 0, inp.rack_kw)
    mgmt = plan_management(sysm, nodes, fab.switches + storage_switches, pre_racks.compute_racks + pre_racks.network_racks,
                           infiniband, inp.control_nodes, storage_on_inband=sfab is None,
                           ufm_appliances=inp.ufm_appliances)
    ra_items = None
    if ra_mode:
        assert sfab is not None
        ra_items = superpod.plan_items(sysm, nodes, fab, sfab, storage_terms)
        bom += ra_items.items
        mgmt.inband, mgmt.oob, mgmt.ufm_count, mgmt.control_count = ra_items.inband, ra_items.oob, ra_items.ufm, ra_items.bcm
        mgmt.terms = ra_items.terms
    else:
        bom += [
            LineItem("management", mgmt.inband_switch.key, mgmt.inband, mgmt.inband_switch.max_power_w, mgmt.terms[0].formula, "switches"),
            LineItem("management", mgmt.oob_switch.key, mgmt.oob, mgmt.oob_switch.max_power_w, mgmt.terms[1].formula, "switches"),
            LineItem("management", mgmt.ufm.key, mgmt.ufm_count, mgmt.ufm.max_power_w, f"UFM: {mgmt.terms[2].formula}", "cluster_services"),
            LineItem("management", mgmt.control.key, mgmt.control_count, mgmt.control.max_power_w, "BCM head nodes (HA) + service nodes", "cluster_services"),
            optic_item("optics", mgmt.inband_switch.optics["cable"], int(mgmt.terms[0].inputs["ports"]), "in-band cables (one per port)"),
            optic_item("optics", mgmt.oob_switch.optics["cable"], _oob_ports(mgmt.terms[1]),
                       "out-of-band cables (one per port)"),
        ]
    cap = stor.term("storage capacity to provision").value / TB
    bom.append(LineItem("storage", stor.tier.key, round(cap, 3), (inp.storage_kw * 1000 / cap) if cap and inp.storage_kw else 0.0,
                        f"RA '{stor.tier.key}' tier: capacity to provision (TB)", "storage_tiers", unit="TB"))
    bom = merge(bom)

    network_units = (fabric_units + (mgmt.inband * mgmt.inband_switch.rack_units) + mgmt.oob * mgmt.oob_switch.rack_units
                     + mgmt.ufm_count * mgmt.ufm.rack_units + mgmt.control_count * mgmt.control.rack_units)
    network_w = total_power(bom, ("compute-fabric", "storage-fabric", "management", "optics"))
    racks = plan_racks(sysm, nodes, network_units, network_w, inp.rack_kw)
    if ra_items is not None:  # the RA's own network/management racks replace the rack-unit estimate
        racks.network_racks = ra_items.network_racks
        racks.terms[-1] = Term("network racks", ra_items.network_racks, "racks", "1 network rack per SU + management racks",
                               {"total racks": ra_items.racks}, {"rule": superpod.SRC})
        racks.rows[-1] = {**racks.rows[-1], "rack": f"network × {ra_items.network_racks}"}
    warnings += racks.warnings

    it_parts = [
        Term("IT power: compute nodes", total_power(bom, ("compute",)), "W", "nodes × node max power", {"nodes": nodes, "node W": sysm.max_power_w}, {"node": sysm.source}),
        Term("IT power: fabrics and optics", total_power(bom, ("compute-fabric", "storage-fabric", "optics")), "W", "Σ switches and transceivers × max power"),
        Term("IT power: management", total_power(bom, ("management",)), "W", "Σ management switches and servers × max power"),
        Term("IT power: storage", inp.storage_kw * 1000, "W", "given --storage-kw", {"storage kW": inp.storage_kw},
             note="" if inp.storage_kw else "storage-system power not included; give --storage-kw for your vendor's figure"),
    ]
    it = total("IT power", it_parts)
    fac = facility_power(it.value, inp.pue)
    energy = annual_energy(fac.value, inp.load_factor)
    terms: list[Term] = [
        Term("GPUs", gpus, "GPUs", "nodes × GPUs per node", {"nodes": nodes, "GPUs per node": sysm.gpus}),
        Term("nodes", nodes, "nodes", "⌈GPUs / GPUs per node⌉" if inp.fixed_nodes is None else "preset", {"GPUs asked": inp.gpus, "GPUs per node": sysm.gpus}),
        *fab.terms, *stor.terms, *mgmt.terms, *racks.terms, it, fac, energy,
    ]
    ar = allreduce.plan(inp, params, params_src, fab, gpus)
    terms += ar

    title = f"Cluster design: {gpus:,} × {sysm.gpu} in {nodes} × {sysm.key} on {sw.key} ({fab.tiers}-tier{', rail-optimized' if fab.rail_optimized else ''})"
    facts = {
        "scale": scale_class(gpus),
        "recommended_preset": recommend_preset(gpus),
        "preset": inp.preset,
        "preset_source": inp.preset_source or None,
        "node": sysm.key,
        "fabric_switch": sw.key,
        "protocol": sw.protocol,
        "tiers": fab.tiers,
        "oversubscription": f"{o:g}:1",
        "scalable_units": fab.sus,
        "ufm_links_on_leaves": fab.ufm_links,
        "su_nodes": fab.su_nodes,
        "storage_tier": stor.tier.key,
        "cooling": racks.cooling,
        **fab.facts,
        **stor.facts,
        "per_tier": per_tier_rows(fab, sfab),
        "rack_plan": racks.rows,
        "bom": [i.to_dict() for i in bom],
        **(ra_items.facts if ra_items is not None else {}),
    }
    return ClusterDesign(inp, sysm, fab, stor, sfab, mgmt, racks, bom, terms, title, facts, warnings)


def _oob_ports(t: Term) -> int:
    i = t.inputs
    return int(i["node BMCs"] + i["switch mgmt"] + i["PDUs"] + i["servers"])


def _storage_fabric(inp: DesignInput, sysm: SystemSpec, compute_sw: SwitchSpec, nodes: int, stor: StoragePlan) -> LeafSpine | None:
    """A separate storage fabric: node storage ports plus storage-side ports for the tier's read rate."""
    if sysm.storage_ports == 0 or not inp.separate_storage_fabric:
        return None
    name = inp.storage_switch or ("qm9700" if compute_sw.protocol == "infiniband" else "sn5600")
    sw = switch(name)
    rate = sysm.storage_port_gbps
    if rate not in sw.speeds:
        raise SpecError(f"storage switch {sw.key} has no {rate:g} Gb/s ports for {sysm.key}'s storage NICs; choose --storage-switch")
    storage_side = math.ceil(stor.term("storage read aggregate").value * 8 / (rate * 1e9))
    o, _ = constant("storage-fabric-oversubscription")
    return leaf_spine(nodes * sysm.storage_ports + storage_side, sw, rate, o)


def per_tier_rows(fab: Fabric, sfab: LeafSpine | None) -> list[dict[str, Any]]:
    rows = []
    links = list(fab.cables.items())
    for layer, (link_name, cables) in zip(fab.layers, links, strict=False):
        rows.append({"fabric": "compute", "tier": layer.name, "switches": layer.switches, "model": fab.switch.key,
                     "ports_used": layer.ports_used, "switch_transceivers": layer.cages_used, "links_below": link_name, "cables_below": cables})
    if sfab is not None:
        rows.append({"fabric": "storage", "tier": "leaf", "switches": sfab.leaves, "model": sfab.switch.key, "ports_used": None,
                     "switch_transceivers": sfab.cages, "links_below": "node/storage→leaf", "cables_below": sfab.endpoints})
        k = sfab.switch.radix(sfab.link_gbps)
        core_links = sfab.spines * (k // 2) if sfab.cores else 0
        below_leaf = sfab.endpoints - sfab.storage_ports if sfab.storage_ports else sfab.endpoints
        if sfab.spines:
            rows.append({"fabric": "storage", "tier": "spine", "switches": sfab.spines, "model": sfab.switch.key, "ports_used": None,
                         "switch_transceivers": None, "links_below": "leaf→spine", "cables_below": sfab.cables - below_leaf - core_links})
        if sfab.cores:
            rows.append({"fabric": "storage", "tier": "core", "switches": sfab.cores, "model": sfab.switch.key, "ports_used": None,
                         "switch_transceivers": None, "links_below": "spine→core", "cables_below": core_links})
    return rows

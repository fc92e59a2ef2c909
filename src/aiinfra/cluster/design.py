"""Compose a whole cluster: compute fabric, storage, management, racks, power, all-reduce, BOM.

`design_cluster(DesignInput(...))` returns a `ClusterDesign`; `.result()` turns it into an
explained `Result` (summary terms, BOM, per-tier table, rack plan) for the shells. Rack-scale
systems (NVL72) go to rackscale.py; the input and result types live in options.py and
design_result.py, below both designers.
"""

from __future__ import annotations

import math

from aiinfra.cluster import allreduce, superpod
from aiinfra.cluster.bom import LineItem, merge, optic_item, total_power
from aiinfra.cluster.design_result import ClusterDesign, per_tier_rows
from aiinfra.cluster.fabric import (
    LeafSpine,
    design_fabric,
    fabric_optics,
    parse_oversubscription,
)
from aiinfra.cluster.management import plan_management
from aiinfra.cluster.options import DesignInput, model_params
from aiinfra.cluster.parts import (
    SwitchSpec,
    SystemSpec,
    service,
    switch,
    system,
)
from aiinfra.cluster.power import annual_energy, facility_power, network_it_power, plan_racks
from aiinfra.cluster.rackscale import design_rackscale
from aiinfra.cluster.reference import recommend_preset
from aiinfra.cluster.storage import StoragePlan, plan_storage, storage_fabric
from aiinfra.errors import SpecError
from aiinfra.explain import Term, total
from aiinfra.units import TB


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
            *mgmt.bom_items(),
            optic_item("optics", mgmt.inband_switch.optics["cable"], int(mgmt.terms[0].inputs["ports"]), "in-band cables (one per port)"),
            optic_item("optics", mgmt.oob_switch.optics["cable"], _oob_ports(mgmt.terms[1]),
                       "out-of-band cables (one per port)"),
        ]
    cap = stor.term("storage capacity to provision").value / TB
    bom.append(LineItem("storage", stor.tier.key, round(cap, 3), (inp.storage_kw * 1000 / cap) if cap and inp.storage_kw else 0.0,
                        f"RA '{stor.tier.key}' tier: capacity to provision (TB)", "storage_tiers", unit="TB"))
    bom = merge(bom)

    network_units = fabric_units + mgmt.rack_units()
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
        *network_it_power(bom),
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
    sw = switch(inp.storage_switch or ("qm9700" if compute_sw.protocol == "infiniband" else "sn5600"))
    return storage_fabric(sw, sysm, nodes * sysm.storage_ports, stor, "storage NICs")


__all__ = ["ClusterDesign", "DesignInput", "design_cluster", "model_params", "per_tier_rows", "scale_class"]

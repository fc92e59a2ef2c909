"""Rack-scale SuperPODs: GB200 / GB300 NVL72 racks, one 72-GPU NVLink domain each.

DGX SuperPOD GB200 RA (docs.nvidia.com, read 2026-12-02): a scalable unit is 8 DGX GB200 rack
systems (576 GPUs) with a TDP of 1.2 MW; the design scales beyond 128 racks (9,216 GPUs).
- Compute fabric: one NIC per GPU (4 per compute tray; NDR 400 on GB200, XDR 800 on GB300), rail-
  optimized by tray position: rail r = NIC r of every compute tray. The leaves are sized for whole
  SUs (the RA builds the full SU's leaves and leaf–spine cables), sized by fabric.design_fabric
  over compute trays.
- Storage and in-band: the trays' BlueField-3 ports on a Spectrum-4 Ethernet leaf–spine.
- Cooling: the rack is liquid-cooled (CDUs, facility water) with an air-cooled share (fans, power
  shelves) beside the air-cooled network and management racks (CRAHs).
- Water flow = liquid heat / (c_p × ΔT) (water: 4.18 kJ/(kg·K), ~1 kg/L).
"""

from __future__ import annotations

import math
from typing import Any

from aiinfra.cluster import allreduce
from aiinfra.cluster.bom import LineItem, merge, optic_item, total_power
from aiinfra.cluster.design_result import ClusterDesign, per_tier_rows
from aiinfra.cluster.fabric import design_fabric, fabric_optics, parse_oversubscription
from aiinfra.cluster.management import plan_management
from aiinfra.cluster.options import DesignInput, model_params
from aiinfra.cluster.parts import SystemSpec, constant, service, switch, system
from aiinfra.cluster.power import RackPlan, annual_energy, cooling_for, facility_power, network_it_power
from aiinfra.cluster.storage import plan_storage, storage_fabric
from aiinfra.errors import SpecError
from aiinfra.explain import Term, total
from aiinfra.units import TB

SRC_GB200 = "DGX SuperPOD GB200 RA: SU = 8 DGX GB200 racks, 1.2 MW TDP per SU, beyond 128 racks / 9,216 GPUs [D] (systems.yaml)"
MAX_SU = 16  # the GB200 RA's 128 racks


def tray_system(rack: SystemSpec) -> SystemSpec:
    """The compute tray as the fabric sees a node: 4 GPUs, one NIC per GPU (one rail each)."""
    tray = system(rack.tray)
    return tray.model_copy(update={"nic_gbps": rack.nic_gbps, "compute_nics": rack.rails, "gpus": rack.gpus // rack.compute_trays})


def network_racks(units: float, network_w: float) -> tuple[Term, float]:
    """Air-cooled racks for switches and servers: by rack units (6U kept for patching) and by the air rack budget."""
    rack_u, u_src = constant("rack-units")
    budget, b_src = constant("rack-budget-kw")
    n = max(1, math.ceil(units / (rack_u - 6)), math.ceil(network_w / 1000 / budget))
    return Term("network racks", n, "racks", "max(⌈rack units / (rack U − 6)⌉, ⌈network kW / air rack kW⌉)",
                {"units": units, "rack U": rack_u, "network kW": network_w / 1000, "air rack kW": budget}, {"rack U": u_src, "budget": b_src}), network_w / 1000 / n


def design_rackscale(inp: DesignInput, rack: SystemSpec) -> ClusterDesign:
    if inp.nics is not None:
        raise SpecError(f"{rack.key} has one NIC per GPU ({rack.compute_nics} per rack); --nics applies to generic HGX nodes")
    warnings: list[str] = []
    if inp.fixed_nodes is not None:
        racks = inp.fixed_nodes
    else:
        if inp.gpus <= 0:
            raise SpecError(f"GPU count must be positive, not {inp.gpus}")
        racks = math.ceil(inp.gpus / rack.gpus)
        if racks * rack.gpus != inp.gpus:
            warnings.append(f"{inp.gpus} GPUs is not a multiple of {rack.gpus} per {rack.key}; rounded up to {racks} racks = {racks * rack.gpus} GPUs")
    if racks <= 0:
        raise SpecError(f"rack count must be positive, not {racks}")
    gpus = racks * rack.gpus
    su_racks = rack.su_nodes
    sus = math.ceil(racks / su_racks)
    if sus > MAX_SU:
        warnings.append(f"{sus} SU is beyond the GB200 RA's 128 racks ({MAX_SU} SU); the same rules are extended")

    # Compute fabric over compute trays, sized for whole SUs (RA: build the full SU's leaves).
    sw = switch(inp.fabric or rack.compute_fabric or "qm9700")
    tray = tray_system(rack)
    o = parse_oversubscription(inp.oversubscription)
    trays = racks * rack.compute_trays
    full_trays = sus * su_racks * rack.compute_trays
    fab = design_fabric(full_trays, tray, sw, o, inp.rail_optimized, inp.tiers, 0)
    if full_trays != trays:
        per_nic = fab.cables["node→leaf"] // full_trays
        fab.nodes, fab.node_transceivers = trays, trays * math.ceil(tray.compute_nics / tray.nic_ports_per_cage)
        fab.cables["node→leaf"] = trays * per_nic
        warnings.append(f"{racks} racks fill {racks / su_racks:g} SU; the fabric is built for {sus} full SU ({full_trays} trays), as the RA asks for partial SUs")
    fab.terms = [t for t in fab.terms if t.name not in ("scalable units", "cables node→leaf")]
    fab.terms.append(Term("cables node→leaf", fab.cables["node→leaf"], "cables", "racks × 72 NICs (one per GPU)",
                          {"racks": racks, "NICs per rack": rack.compute_nics}, {"rule": "one cable per NIC"}))
    warnings += fab.warnings

    # Storage and in-band on Spectrum-4 Ethernet; the RA's per-node storage figures are applied per 8 GPUs.
    params, params_src = model_params(inp)
    nodes8, sus8 = math.ceil(gpus / 8), max(1, math.ceil(gpus / 256))
    stor = plan_storage(inp.storage_tier, tray, nodes8, sus8, params=params, bytes_per_param=inp.bytes_per_param,
                        dataset_bytes=inp.dataset_tb * TB, copies=inp.copies, checkpoints_kept=inp.checkpoints_kept, gpus=gpus,
                        failure_rate=inp.failure_rate, gds=inp.gds)
    warnings += stor.warnings
    ssw = switch(inp.storage_switch or rack.storage_fabric or "sn5600")
    sfab = storage_fabric(ssw, rack, racks * rack.storage_ports, stor, "BlueField-3 ports")

    infiniband = sw.protocol == "infiniband"
    nvl_trays, shelves = racks * rack.nvlink_switch_trays, racks * rack.power_shelves
    storage_switches = sfab.leaves + sfab.spines + sfab.cores
    fabric_units = fab.switches * sw.rack_units + storage_switches * ssw.rack_units
    # Management sees trays: in-band ports per compute tray; OOB for tray BMCs, NVLink trays, power shelves, switches, PDUs.
    mgmt = plan_management(tray, trays, fab.switches + storage_switches + nvl_trays + shelves, network_racks(fabric_units, 0)[0].value + racks,
                           infiniband, inp.control_nodes, ufm_appliances=inp.ufm_appliances)

    nvl = switch(rack.nvlink_tray)
    bom: list[LineItem] = [
        LineItem("compute", rack.key, racks, rack.max_power_w, f"⌈{gpus} GPUs / {rack.gpus} per rack⌉" if inp.fixed_nodes is None
                 else f"preset: {sus} SU × {su_racks} racks", "systems"),
        LineItem("compute", rack.tray, trays, 0, f"{rack.compute_trays} per rack; power counted in the rack line", "systems", included_in=rack.key),
        LineItem("compute", nvl.key, nvl_trays, 0, f"{rack.nvlink_switch_trays} per rack join the 72-GPU NVLink domain; power in the rack line", "switches", included_in=rack.key),
        LineItem("compute", "nvlink-copper-spine", racks, 0, "NVLink copper cable spine, one per rack", "optics", included_in=rack.key),
    ]
    for layer in fab.layers:
        why = {"leaf": f"{fab.rails} rails × {fab.sus} leaf groups of {fab.su_nodes} trays ({sus} SU)",
               "spine": fab.term("spine switches").formula, "core": "spines × (k/2) / k"}[layer.name]
        bom.append(LineItem("compute-fabric", sw.key, layer.switches, sw.max_power_w, f"{layer.name}: {why}", "switches"))
    for role, (key, qty) in fabric_optics(fab).items():
        bom.append(optic_item("optics", key, qty, f"compute fabric {role}"))
    bom += [
        LineItem("storage-fabric", ssw.key, sfab.leaves, ssw.max_power_w, "storage/in-band Ethernet leaf: ⌈BlueField-3 + storage ports / down ports⌉", "switches"),
        LineItem("storage-fabric", ssw.key, sfab.spines, ssw.max_power_w, "storage/in-band Ethernet spine", "switches"),
        LineItem("storage-fabric", ssw.key, sfab.cores, ssw.max_power_w, "storage/in-band Ethernet core (3 tiers)", "switches"),
        optic_item("optics", ssw.optics["switch"], sfab.cages, "storage fabric switch transceivers (per cage)"),
        optic_item("optics", "qsfp112-200g-eth-single", racks * rack.storage_ports, "storage fabric BlueField-3 transceivers (one per port)"),
        optic_item("optics", ssw.optics["cable"], sfab.cables, "storage fabric cables (one per link)"),
        *mgmt.bom_items(),
    ]
    cap = stor.term("storage capacity to provision").value / TB
    bom.append(LineItem("storage", stor.tier.key, round(cap, 3), 0.0, f"RA '{stor.tier.key}' tier: capacity to provision (TB)", "storage_tiers", unit="TB"))

    # Power and cooling.
    network_units = fabric_units + mgmt.rack_units()
    network_w = total_power(bom, ("compute-fabric", "storage-fabric", "management", "optics"))
    net_term, net_kw = network_racks(network_units, network_w)
    rack_w = racks * rack.max_power_w
    liquid_w = rack_w * rack.liquid_fraction
    air_w = rack_w - liquid_w + network_w
    cdu, crah = service("cdu"), service("crah")
    n_cdu = math.ceil(liquid_w / 1000 / cdu.capacity_kw) + 1
    n_crah = math.ceil(air_w / 1000 / crah.capacity_kw) + 1
    bom += [
        LineItem("cooling", "cdu", n_cdu, cdu.max_power_w, f"⌈liquid heat {liquid_w / 1e3:,.0f} kW / {cdu.capacity_kw:g} kW⌉ + 1 (N+1)", "cluster_services"),
        LineItem("cooling", "crah", n_crah, crah.max_power_w, f"⌈air heat {air_w / 1e3:,.0f} kW / {crah.capacity_kw:g} kW⌉ + 1 (N+1)", "cluster_services"),
    ]
    bom = merge(bom)
    dt, dt_src = constant("coolant-delta-t-k")
    cp, cp_src = constant("water-heat-capacity-kj-per-kg-k")
    liquid = Term("liquid-cooled heat", liquid_w, "W", "racks × rack max power × liquid share",
                  {"racks": racks, "rack W": rack.max_power_w, "liquid share": rack.liquid_fraction}, {"rack": rack.source})
    air = Term("air-cooled heat", air_w, "W", "racks × rack max power × (1 − liquid share) + network and management power",
               {"rack air W": rack_w - liquid_w, "network W": network_w})
    flow = Term("facility water flow", liquid_w / 1000 / (cp * dt) * 60, "L/min", "liquid heat kW / (c_p × ΔT) × 60 (1 kg ≈ 1 L)",
                {"liquid heat kW": liquid_w / 1000, "c_p kJ/(kg·K)": cp, "ΔT K": dt}, {"ΔT": dt_src, "c_p": cp_src})
    cooling_w = n_cdu * cdu.max_power_w + n_crah * crah.max_power_w
    it_parts = [
        Term("IT power: compute nodes", rack_w, "W", "racks × rack max power", {"racks": racks, "rack W": rack.max_power_w}, {"rack": rack.source}),
        *network_it_power(bom),
        Term("IT power: storage", inp.storage_kw * 1000, "W", "given --storage-kw", {"storage kW": inp.storage_kw}),
    ]
    it = total("IT power", it_parts)
    heat = Term("heat rejection", it.value + cooling_w, "W", "IT power + CDU pumps + CRAH fans (all reach the heat-rejection plant)",
                {"IT W": it.value, "CDU and CRAH W": cooling_w})
    su_w = su_racks * rack.max_power_w + network_w / sus
    per_su = Term("power per SU", su_w, "W", "8 racks × rack max power + network and management power / SU",
                  {"racks per SU": su_racks, "rack W": rack.max_power_w, "network W": network_w, "SU": sus}, {"RA": SRC_GB200},
                  note=f"the RA gives {rack.su_tdp_w / 1e6:g} MW TDP per SU" if rack.su_tdp_w else "")
    fac = facility_power(it.value, inp.pue)
    terms: list[Term] = [
        Term("GPUs", gpus, "GPUs", "racks × 72 GPUs", {"racks": racks, "GPUs per rack": rack.gpus}),
        Term("nodes", racks, "racks", "⌈GPUs / 72⌉ (one NVL72 rack is one NVLink domain)", {"GPUs asked": inp.gpus, "GPUs per rack": rack.gpus}),
        Term("scalable units", sus, "SU", "⌈racks / 8⌉", {"racks": racks, "racks per SU": su_racks}, {"SU": SRC_GB200}),
        Term("NVLink domains", racks, "domains", "one 72-GPU NVLink domain per rack", {"racks": racks}, {"rack": rack.source}),
        *fab.terms, *stor.terms, *mgmt.terms,
        Term("compute racks", racks, "racks", "NVL72 racks", {"racks": racks}),
        Term("compute rack power", rack.max_power_w / 1000, "kW", "rack max power", {"rack kW": rack.max_power_w / 1000}, {"rack": rack.source},
             note=f"cooling: liquid ({rack.liquid_fraction:.0%} of the heat) + air"),
        net_term, per_su, liquid, air, flow,
        Term("CDUs", n_cdu, "units", "⌈liquid heat / CDU capacity⌉ + 1", {"liquid kW": liquid_w / 1000, "CDU kW": cdu.capacity_kw}, {"CDU": cdu.source}),
        Term("CRAH units", n_crah, "units", "⌈air heat / CRAH capacity⌉ + 1", {"air kW": air_w / 1000, "CRAH kW": crah.capacity_kw}, {"CRAH": crah.source}),
        it, heat, fac, annual_energy(fac.value, inp.load_factor),
    ]
    terms += allreduce.plan(inp, params, params_src, fab, gpus, domain=rack.gpus)
    if su_w > rack.su_tdp_w > 0:
        warnings.append(f"one SU draws {su_w / 1e6:.2f} MW at nameplate, above the RA's {rack.su_tdp_w / 1e6:g} MW SU TDP; plan the feed for the higher figure")
    rows: list[dict[str, Any]] = [
        {"rack": f"{rack.key} × {racks}", "nodes": 1, "kW": rack.max_power_w / 1000, "cooling": f"liquid {rack.liquid_fraction:.0%} (CDU) + air {1 - rack.liquid_fraction:.0%}"},
        {"rack": f"network × {int(net_term.value)}", "units": network_units, "kW": round(net_kw, 2), "cooling": cooling_for(net_kw)[0]},
    ]
    title = f"Rack-scale design: {gpus:,} × {rack.gpu} in {racks} × {rack.key} ({sus} SU) on {sw.key} ({fab.tiers}-tier, rail-optimized per tray NIC)"
    facts: dict[str, Any] = {
        "scale": f"rack-scale SuperPOD: {racks} NVL72 racks in {sus} SU",
        "recommended_preset": f"superpod --su {sus} (8 NVL72 racks per SU)", "preset": inp.preset, "preset_source": inp.preset_source or None,
        "node": rack.key, "rack_scale": True, "nvlink_domain_gpus": rack.gpus, "fabric_switch": sw.key, "protocol": sw.protocol,
        "tiers": fab.tiers, "oversubscription": f"{o:g}:1", "scalable_units": sus, "racks_per_su": su_racks, "ufm_links_on_leaves": 0,
        "su_nodes": su_racks, "storage_tier": stor.tier.key, "storage_switch": ssw.key,
        "cooling": f"direct liquid cooling ({rack.liquid_fraction:.0%}) + air; {n_cdu} CDUs, {n_crah} CRAHs",
        **fab.facts, **stor.facts, "per_tier": per_tier_rows(fab, sfab), "rack_plan": rows, "bom": [i.to_dict() for i in bom],
    }
    rp = RackPlan(racks, 1, rack.max_power_w / 1000, "direct liquid cooling", int(net_term.value), net_kw, rows, [net_term], [])
    return ClusterDesign(inp, rack, fab, stor, sfab, mgmt, rp, bom, terms, title, facts, warnings)

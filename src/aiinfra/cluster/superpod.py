"""DGX SuperPOD H100/H200 reference architecture, item by item (RA-11333-001 V11, Tables 3, 4, 7, 8).

Tables 3–4 fix the compute fabric (fabric.py). Tables 7–8 list every other item for one size
(4 SU, 127 nodes): 38 racks, 4 UFM appliances, 4 BCM servers, 8 in-band and 8 OOB switches,
16 storage switches, 96 + 12 PDUs, and every cable and transceiver. The rules here reproduce that
row exactly and scale with the SU count (datacenter.yaml `ra-*` constants, each with the count it
was fitted on):

- storage fabric (InfiniBand, QM9700): DGX leaves of 32 node ports + 24 uplinks (near 4:3), one
  1:1 storage leaf per SU; spines split each leaf's uplinks evenly; a core layer when a 2-tier
  spine layer cannot reach every leaf (large SU counts);
- UFM: an HA pair per InfiniBand fabric (compute, storage), one more pair per 1,024 nodes;
- BCM: 2 head nodes + 2 Slurm nodes per 4 SU;
- in-band (SN4600C): MLAG leaf pairs (58 usable ports each) and a core pair;
- OOB (SN2201): one port per DGX BMC, switch, server and PDU, 40 usable ports per switch;
- racks: 4 DGX per rack, one network rack per SU, management racks by rack units; PDUs 3 per
  DGX rack, 2 per other rack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from aiinfra.cluster.bom import LineItem
from aiinfra.cluster.fabric import Fabric, LeafSpine
from aiinfra.cluster.parts import SwitchSpec, SystemSpec, constant, optic, service, switch
from aiinfra.explain import Term

SRC = "DGX SuperPOD H100 RA-11333-001 V11, Tables 7–8 (4 SU, 127 nodes) [V]"


def _c(name: str) -> tuple[int, str]:
    v, src = constant(name)
    return int(v), src


def _divisor_at_least(n: int, need: int) -> int | None:
    return next((s for s in range(max(1, need), n + 1) if n % s == 0), None)


def storage_fabric(system: SystemSpec, nodes: int, sus: int, sw: SwitchSpec, ufm_links: int) -> tuple[LeafSpine, list[Term]]:
    """The RA's InfiniBand storage fabric: DGX leaves, storage leaves, spines (and cores when needed)."""
    node_ports, src_n = _c("ra-storage-leaf-node-ports")
    up, src_u = _c("ra-storage-leaf-uplinks")
    per_su, src_s = _c("ra-storage-ports-per-su")
    k = sw.radix(400)
    ppc = sw.ports_per_cage(400)
    dgx_links = nodes * system.storage_ports
    # Storage leaves follow the SUs (the last SU may be partial; SU 1 gave a node to UFM).
    su_nodes = math.ceil(nodes / sus)
    nodes_in = [su_nodes] * sus
    nodes_in[-1] = nodes - su_nodes * (sus - 1)
    per_su_links = [n * system.storage_ports for n in nodes_in]
    leaf_links = [math.ceil(links / math.ceil(links / node_ports)) for links in per_su_links for _ in range(math.ceil(links / node_ports))]
    dgx_leaves = len(leaf_links)
    storage_ports = per_su * sus
    storage_leaves = sus
    store_up = per_su  # 1:1
    uplinks = dgx_leaves * up + storage_leaves * store_up
    need = math.ceil(uplinks / k)
    # Every leaf must send the same number of links to every spine: spines divide gcd of the uplink counts.
    spines = _divisor_at_least(math.gcd(up, store_up), need)
    cores = 0
    if spines is None:  # 2 tiers cannot reach every leaf: spines split k/2 down, k/2 up, plus a core layer
        spines = math.ceil(uplinks / (k // 2))
        cores = math.ceil(spines * (k // 2) / k)
    leaves = dgx_leaves + storage_leaves
    core_links = spines * (k // 2) if cores else 0
    cables = dgx_links + uplinks + core_links  # the storage-side downlinks are the 2x200G cables, counted apart
    # Switch-side cages: leaf ports used (storage downlinks are splitter DACs without transceivers),
    # spine and core ports, and one cage for the 4 UFM links at 200G (4 × NDR200 per twin-port cage).
    leaf_cages = sum(math.ceil((links + up) / ppc) for links in leaf_links)
    leaf_cages += storage_leaves * math.ceil(store_up / ppc)
    spine_ports = uplinks + core_links
    cages = leaf_cages + spines * math.ceil(spine_ports / spines / ppc) + (cores * math.ceil(core_links / cores / ppc) if cores else 0)
    cages += math.ceil(ufm_links / (2 * ppc)) if ufm_links else 0
    fab = LeafSpine(sw, 400, dgx_links + storage_ports, leaves, spines, cables, cages, cores=cores, storage_ports=storage_ports)
    terms = [
        Term("storage leaf switches", leaves, "switches", "Σ per SU ⌈DGX storage links / 32⌉ + 1 storage leaf per SU",
             {"DGX storage links": dgx_links, "node ports per leaf": node_ports, "SU": sus}, {"rule": SRC, "ports": src_n, "storage": src_s}),
        Term("storage spine switches", spines, "switches",
             "smallest divisor of the leaves' uplink counts ≥ ⌈uplinks / k⌉" if not cores else "⌈uplinks / (k/2)⌉ (3 tiers)",
             {"uplinks": uplinks, "k": k, "uplinks per DGX leaf": up, "uplinks per storage leaf": store_up}, {"rule": SRC, "uplinks": src_u}),
    ]
    if cores:
        terms.append(Term("storage core switches", cores, "switches", "⌈spines × (k/2) / k⌉", {"spines": spines, "k": k}, {"rule": SRC}))
    return fab, terms


@dataclass
class SuperPodItems:
    items: list[LineItem]
    terms: list[Term]
    inband: int
    oob: int
    ufm: int
    bcm: int
    racks: int
    network_racks: int
    facts: dict = field(default_factory=dict)


def plan_items(system: SystemSpec, nodes: int, fab: Fabric, sfab: LeafSpine, storage_terms: list[Term]) -> SuperPodItems:
    """Every RA Table 7–8 item for `nodes` DGX systems on `fab` (compute) and `sfab` (storage)."""
    sus = fab.sus
    inband_sw, oob_sw = switch("sn4600c"), switch("sn2201")
    ufm, bcm = service("ufm-appliance"), service("control-node")
    per_pair, src_ufm = _c("ra-ufm-nodes-per-pair")
    ufm_count = 2 * 2 * math.ceil(nodes / per_pair)  # a pair per fabric (compute, storage)
    heads, src_h = _c("ra-bcm-head-nodes")
    slurm, src_sl = _c("ra-slurm-nodes-per-4su")
    bcm_count = heads + slurm * math.ceil(sus / 4)
    ib_switches = fab.switches + sfab.leaves + sfab.spines + sfab.cores

    reserved, src_r = _c("ra-inband-leaf-reserved-ports")
    nfs, src_nfs = _c("ra-nfs-ports-per-su")
    oob_up, src_ou = _c("ra-oob-uplinks-per-switch")
    oob_res, src_or = _c("ra-oob-reserved-ports")
    dc_up, src_dc = _c("ra-inband-uplinks-to-dc")
    k_in = inband_sw.radix(inband_sw.top_gbps)
    k_oob = oob_sw.radix(oob_sw.top_gbps)
    pdu_dgx, src_pd = _c("ra-pdus-per-dgx-rack")
    pdu_other, src_po = _c("ra-pdus-per-other-rack")
    net_per_su, src_net = _c("ra-network-racks-per-su")
    mgmt_min, src_mr = _c("ra-management-racks-min")
    units, _ = constant("rack-units")

    dgx_racks = math.ceil(nodes / system.ra_nodes_per_rack)
    inband, oob = 2, 1
    for _ in range(6):  # in-band ports include the OOB uplinks and the OOB ports include the in-band switches
        inband_ports = nodes * system.inband_ports + bcm_count * bcm.mgmt_ports + nfs * sus + oob * oob_up
        leaves = 2 * math.ceil(inband_ports / (2 * (k_in - reserved)))
        cores = 0 if leaves <= 2 else 2 * math.ceil(leaves * 4 / (2 * (k_in - 4)))
        new_inband = leaves + cores
        mgmt_units = ((fab.switches - fab.count("leaf")) * fab.switch.rack_units + (sfab.leaves + sfab.spines + sfab.cores) * sfab.switch.rack_units
                      + new_inband * inband_sw.rack_units + oob * oob_sw.rack_units + ufm_count * ufm.rack_units + bcm_count * bcm.rack_units)
        mgmt_racks = max(mgmt_min, math.ceil(mgmt_units / (units - 6)))
        net_racks = net_per_su * sus
        other_racks = net_racks + mgmt_racks
        pdus = dgx_racks * pdu_dgx + other_racks * pdu_other
        oob_ports = nodes + ib_switches + new_inband + ufm_count + bcm_count + pdus
        new_oob = math.ceil(oob_ports / (k_oob - oob_res))
        if (new_inband, new_oob) == (inband, oob):
            break
        inband, oob = new_inband, new_oob
    racks = dgx_racks + other_racks

    ufm_links = fab.ufm_links
    items = [
        LineItem("management", "ufm-appliance", ufm_count, ufm.max_power_w, f"UFM: an HA pair per InfiniBand fabric (compute, storage) per {per_pair:,} nodes", "cluster_services"),
        LineItem("management", "control-node", bcm_count, bcm.max_power_w, f"BCM management servers: {heads} head nodes (HA) + {slurm} Slurm nodes per 4 SU", "cluster_services"),
        LineItem("management", inband_sw.key, inband, inband_sw.max_power_w,
                 f"in-band: {leaves} leaves (MLAG pairs, {k_in - reserved} usable ports) + {cores} core for {inband_ports} ports", "switches"),
        LineItem("management", oob_sw.key, oob, oob_sw.max_power_w, f"out-of-band: ⌈{oob_ports} ports / {k_oob - oob_res}⌉", "switches"),
        LineItem("facility", "rack-48u", racks, 0, f"{dgx_racks} DGX racks ({system.ra_nodes_per_rack} per rack) + {net_racks} network (1 per SU) + {mgmt_racks} management", "cluster_services"),
        LineItem("facility", "pdu-compute", dgx_racks * pdu_dgx, 0, f"{pdu_dgx} per DGX rack", "cluster_services"),
        LineItem("facility", "pdu-network", other_racks * pdu_other, 0, f"{pdu_other} per network/management rack", "cluster_services"),
    ]

    def cable(category: str, key: str, qty: int, reason: str) -> None:
        if qty > 0:
            items.append(LineItem(category, key, qty, optic(key).max_power_w, reason, "optics"))

    # Table 8, in-band Ethernet cables.
    cable("optics", "qsfp56-200g-aoc", nodes * system.inband_ports, "in-band: DGX systems (200G QSFP56 AOC)")
    cable("optics", "qsfp28-100g-aoc", bcm_count * bcm.mgmt_ports, "in-band: management nodes")
    cable("optics", "qsfp28-100g-cwdm4", dc_up, "in-band: uplinks to the core DC")
    cable("optics", "qsfp28-100g-dac", leaves, "in-band: ISL cables (2 per MLAG pair)")
    cable("optics", "qsfp28-100g-aoc", nfs * sus, "in-band: NFS (user) storage")
    cable("optics", "qsfp28-100g-aoc", leaves * 4 if cores else 0, "in-band: leaf–core cables (4 per leaf)")
    cable("optics", "qsfp28-100g-aoc", oob * oob_up, "OOB: two uplinks per OOB switch to the in-band network")
    # Table 8, OOB Ethernet cables (Cat5e).
    cable("optics", "rj45-cat5e", nodes, "OOB: DGX BMCs")
    cable("optics", "rj45-cat5e", ib_switches, "OOB: InfiniBand switches (compute + storage)")
    cable("optics", "rj45-cat5e", ufm_count + bcm_count, "OOB: management and UFM nodes")
    cable("optics", "rj45-cat5e", inband, "OOB: in-band Ethernet switches")
    cable("optics", "rj45-cat5e", ufm_count // 2, "UFM back-to-back (one per HA pair)")
    cable("optics", "rj45-cat5e", pdus, "OOB: rack PDUs")
    cable("optics", "qsfp-sfp-adapter", ufm_count, "OOB: UFM connections")
    cable("optics", "sfp-1g-baset", ufm_count, "OOB: UFM connections")
    # Table 8, compute InfiniBand cabling.
    sw_o = fab.switch.optics
    cable("optics", sw_o["cable"], fab.nodes * fab.rails + sum(n for name, n in fab.cables.items() if name != "node→leaf"),
          "compute: DGX to leaf, leaf to spine (and spine to core)")
    cable("optics", "ndr-200g-ufm-cable", math.ceil(ufm_links / 2), "compute: UFM to leaf ports")
    cable("optics", sw_o["switch"], sum(layer.cages_used for layer in fab.layers), "compute: leaf/spine/core switch transceivers (per twin-port cage)")
    cable("optics", sw_o["node_twin"] if system.nic_ports_per_cage == 2 else sw_o["node_single"], fab.node_transceivers, "compute: transceivers in the DGX systems")
    cable("optics", sw_o["node_single"], ufm_links, "compute: UFM system transceivers")
    # Table 8, storage InfiniBand cabling.
    st_o = sfab.switch.optics
    cable("optics", st_o["cable"], sfab.cables, "storage: DGX to leaf, leaf to spine")
    cable("optics", "ndr-2x200g-storage-cable", sfab.storage_ports, "storage: storage appliances (2x200G; depends on the storage selected)")
    cable("optics", st_o["node_single"], 4, "storage: UFM system transceivers")
    cable("optics", st_o["switch"], sfab.cages, "storage: leaf and spine switch transceivers (per twin-port cage)")
    cable("optics", "qsfp112-400g-ndr-single", nodes * system.storage_ports, "storage: DGX system transceivers (QSFP112)")
    cable("optics", "ndr-200g-ufm-cable", 2, "storage: UFM to leaf ports")
    cable("optics", "hdr-400g-2x200g-split", 2 * math.ceil(sus / 4) * 2 if slurm else 0, "storage: Slurm management nodes (400G to 2 × 200G)")

    src = {"rule": SRC}
    terms = [
        *storage_terms,
        Term("in-band switches", inband, "switches", "2 × ⌈ports / (2 × (radix − reserved))⌉ leaves + core pair",
             {"ports": inband_ports, "radix": k_in, "reserved": reserved, "leaves": leaves, "cores": cores}, {**src, "reserved": src_r, "NFS": src_nfs, "OOB uplinks": src_ou}),
        Term("out-of-band switches", oob, "switches", "⌈(DGX BMCs + switches + servers + PDUs) / (radix − reserved)⌉",
             {"node BMCs": nodes, "switch mgmt": ib_switches + inband, "servers": ufm_count + bcm_count, "PDUs": pdus, "radix": k_oob, "reserved": oob_res},
             {**src, "reserved": src_or}),
        Term("UFM appliances", ufm_count, "appliances", "2 fabrics × 2 (HA) × ⌈nodes / nodes per pair⌉", {"nodes": nodes, "nodes per pair": per_pair}, {"rule": src_ufm}),
        Term("control-plane servers", bcm_count, "servers", "BCM head nodes + Slurm nodes × ⌈SU / 4⌉", {"head nodes": heads, "Slurm nodes per 4 SU": slurm, "SU": sus},
             {"heads": src_h, "Slurm": src_sl}),
        Term("racks", racks, "racks", "DGX racks + network racks (1 per SU) + management racks", {"DGX racks": dgx_racks, "network racks": net_racks, "management racks": mgmt_racks},
             {**src, "network": src_net, "management": src_mr}),
        Term("rack PDUs", pdus, "PDUs", "3 × DGX racks + 2 × other racks", {"DGX racks": dgx_racks, "other racks": other_racks}, {"DGX": src_pd, "other": src_po}),
    ]
    facts = {"ra_items": {"racks": racks, "dgx_racks": dgx_racks, "network_racks": net_racks, "management_racks": mgmt_racks,
                          "ufm_appliances": ufm_count, "bcm_servers": bcm_count, "inband_switches": inband, "oob_switches": oob,
                          "compute_fabric_switches": fab.switches, "storage_fabric_switches": sfab.leaves + sfab.spines + sfab.cores,
                          "pdus_dgx_racks": dgx_racks * pdu_dgx, "pdus_other_racks": other_racks * pdu_other}}
    return SuperPodItems(items, terms, inband, oob, ufm_count, bcm_count, racks, net_racks + mgmt_racks, facts)

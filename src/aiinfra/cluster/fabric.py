"""Compute fabric: scalable units, leaf/spine/core counts, cables, transceivers, bisection.

Rules (cluster_tco_anchors.md §1.2, §2.3; NVIDIA DGX SuperPOD H100 RA V11 Tables 3–4):
- A leaf of radix k at oversubscription o (down:up) has down = ⌊k·o/(1+o)⌋ node ports and
  up = ⌈down/o⌉ spine ports (32/32 for k = 64 at 1:1).
- Rail-optimized: a scalable unit (SU) is `down` nodes; rail r (NIC r of every node) lands on
  leaf r of the SU, so an SU has one leaf per rail. Same-rail traffic inside an SU is one hop.
- Partial SUs get the full SU's leaves and leaf→spine cables (RA: "design to support the full SU").
- Every leaf sends the same number of links to every spine, so the spine count is the smallest
  divisor of `up` that carries all uplinks. This is why 3 SU gets 16 spines (the 4-SU spine
  layer) rather than 12: 32 uplinks do not split evenly over 12 spines.
- UFM takes leaf ports: NVIDIA removes one node in SU 1 to free them (127 nodes at 4 SU).
- Limits: 1 tier holds k endpoints per switch; 2 tiers k·down (k²/2 at 1:1); 3 tiers
  k·(k/2)·down (k³/4 at 1:1, Al-Fares et al., SIGCOMM 2008).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from aiinfra.cluster.parts import SwitchSpec, SystemSpec, optic
from aiinfra.errors import SpecError
from aiinfra.explain import Term

SRC_RA = "DGX SuperPOD H100 RA-11333-001 V11, Tables 3–4 (cluster_tco_anchors.md §1.2)"
SRC_FATTREE = "fat-tree sizing, cluster_tco_anchors.md §2.3; k-ary fat tree: Al-Fares, Loukissas, Vahdat, SIGCOMM 2008"
SRC_PARTIAL = "RA V11: a partial SU gets the full SU's leaf switches and leaf–spine cables"
SRC_UFM = "RA V11 Table 4 footnote: a DGX is removed in SU 1 to accommodate UFM connectivity"
SRC_CAGE = "transceivers per twin-port OSFP cage, not per logical port (RA V11 4-SU BOM; QM97xx manual)"


def parse_oversubscription(text: str | float) -> float:
    """'1:1', '2:1', '4:3' or a number → down/up ratio; below 1:1 is an error."""
    if isinstance(text, (int, float)):
        ratio = float(text)
    else:
        s = str(text).strip()
        try:
            if ":" in s:
                a, b = s.split(":", 1)
                ratio = float(a) / float(b)
            else:
                ratio = float(s)
        except (ValueError, ZeroDivisionError):
            raise SpecError(f"oversubscription '{text}' is not a ratio like 1:1, 2:1 or 4:3") from None
    if not math.isfinite(ratio) or ratio < 1:
        raise SpecError(f"oversubscription {text} is below 1:1; a leaf cannot have more uplink than downlink capacity in this model (use 1:1 or more)")
    return ratio


def leaf_split(k: int, o: float) -> tuple[int, int]:
    """(down, up) ports of a leaf with radix k at oversubscription o = down:up."""
    down = math.floor(k * o / (1 + o) + 1e-9)
    up = math.ceil(down / o - 1e-9)
    if down < 1 or up < 1 or down + up > k:
        raise SpecError(f"radix {k} cannot be split {o:g}:1 into node and spine ports")
    return down, up


def max_endpoints(k: int, tiers: int, o: float = 1.0) -> int:
    """Largest number of endpoints (NIC ports) a fat tree of radix k reaches in `tiers` tiers."""
    down, _ = leaf_split(k, o)
    if tiers == 1:
        return k
    if tiers == 2:
        return k * down  # k leaves, each with `down` node ports: k²/2 at 1:1
    if tiers == 3:
        return k * (k // 2) * down  # k pods of k/2 leaves: k³/4 at 1:1
    raise SpecError(f"tiers must be 1, 2 or 3, not {tiers}")


def spines_for(leaves: int, up: int, k: int) -> int:
    """Smallest spine count that carries every uplink and divides each leaf's uplinks evenly.

    When the only even split would more than double the spines (an awkward uplink count such
    as 43 at 2:1 on a 128-port switch), the minimum count is used and links split unevenly.
    """
    need = max(1, math.ceil(leaves * up / k))
    even = next(s for s in range(need, up + 1) if up % s == 0)  # s = up always divides
    return even if even <= 2 * need else need


@dataclass
class Layer:
    """One switch layer: how many switches and how many ports each uses."""

    name: str
    switches: int
    ports_used: int  # all switches together
    cages_used: int  # transceivers on the switch side (per cage)


@dataclass
class Fabric:
    """A compute fabric design; every count is also a Term in `terms` with its rule and source."""

    system: SystemSpec
    switch: SwitchSpec
    link_gbps: float
    nodes: int
    rails: int
    oversubscription: float
    rail_optimized: bool
    tiers: int
    su_nodes: int
    sus: int
    ufm_links: int
    layers: list[Layer]
    cables: dict[str, int]
    node_transceivers: int
    ufm_transceivers: int
    terms: list[Term] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def switches(self) -> int:
        return sum(layer.switches for layer in self.layers)

    @property
    def gpus(self) -> int:
        return self.nodes * self.system.gpus

    def count(self, layer: str) -> int:
        return next((lyr.switches for lyr in self.layers if lyr.name == layer), 0)

    def term(self, name: str) -> Term:
        return next(t for t in self.terms if t.name == name)


def _choose_tiers(k: int, leaves: int, nodes: int, rails: int, rail_optimized: bool, ufm_links: int, tiers: int | None) -> int:
    if tiers is None:
        return 2 if leaves <= k else 3
    if tiers == 1:
        endpoints = nodes * rails + ufm_links
        fits = (nodes + math.ceil(ufm_links / rails) <= k) if rail_optimized else endpoints <= k
        if not fits:
            raise SpecError(f"radix {k} is too small for 1 tier: {nodes} nodes × {rails} rails need more than {k} ports per switch; use --tiers 2")
    elif tiers == 2:
        if leaves > k:
            raise SpecError(
                f"radix {k} is too small for 2 tiers: {leaves} leaves exceed the {k} a spine can reach "
                f"(2-tier limit {max_endpoints(k, 2):,} endpoints at 1:1 = k²/2); use --tiers 3 or a larger switch"
            )
    elif tiers != 3:
        raise SpecError(f"tiers must be 1, 2 or 3, not {tiers}")
    return tiers


def design_fabric(
    nodes: int,
    system: SystemSpec,
    switch: SwitchSpec,
    oversubscription: float = 1.0,
    rail_optimized: bool = True,
    tiers: int | None = None,
    ufm_links: int = 0,
) -> Fabric:
    """Size the compute fabric for `nodes` nodes of `system` on `switch` (tiers=None picks 2 or 3)."""
    if nodes <= 0:
        raise SpecError(f"node count must be positive, not {nodes}")
    if switch.role != "compute":
        raise SpecError(f"switch {switch.key} is a {switch.role} switch; the compute fabric needs qm9700, q3400, sn5600 or qm8700")
    link = min(system.nic_gbps, switch.top_gbps)
    k = switch.radix(link)
    o = oversubscription
    if o < 1:
        raise SpecError(f"oversubscription {o:g}:1 is below 1:1")
    down, up = leaf_split(k, o)
    rails = system.compute_nics
    su_nodes = down
    ufm_slots = math.ceil(ufm_links / rails) if ufm_links else 0
    warnings: list[str] = []
    if link < system.nic_gbps:
        warnings.append(f"{system.key} NICs run {system.nic_gbps:g} Gb/s but {switch.key} tops out at {link:g} Gb/s; links run at {link:g} Gb/s")

    if ufm_slots and nodes % su_nodes == 0:
        # RA V11 Table 3 builds N full SUs on N SUs (8 SU = 256 nodes on 2 tiers); growing the fabric by an
        # SU only to land 4 UFM links would turn 8 SU into 9 SU on 3 tiers. Keep N SU; UFM goes elsewhere.
        warnings.append(
            f"{nodes} nodes fill {nodes // su_nodes} SU exactly (RA Table 3 rows), leaving no compute-leaf port for the {ufm_links} UFM links; "
            f"the fabric keeps {nodes // su_nodes} SU and UFM is not cabled to the compute leaves. Remove one node in SU 1 as the RA's "
            f"Table 4 does ({nodes - ufm_slots} nodes) to cable UFM to the leaves"
        )
        ufm_links, ufm_slots = 0, 0
    sus = math.ceil((nodes + ufm_slots) / su_nodes)
    leaves = rails * sus
    n_tiers = _choose_tiers(k, leaves, nodes, rails, rail_optimized, ufm_links, tiers)
    if n_tiers == 3 and nodes * rails > max_endpoints(k, 3, o):
        raise SpecError(f"radix {k} is too small even for 3 tiers: {nodes * rails:,} endpoints exceed k·(k/2)·down = {max_endpoints(k, 3, o):,}")

    ppc = switch.ports_per_cage(link)
    endpoints = nodes * rails
    node_links = endpoints + ufm_links
    inputs = {"nodes": nodes, "rails": rails, "k": k, "down": down, "up": up, "o": o}
    terms: list[Term] = [
        Term("leaf ports down/up", f"{down}/{up}", "", "down = ⌊k·o/(1+o)⌋, up = ⌈down/o⌉", {"k": k, "o": o}, {"rule": SRC_FATTREE}),
        Term("scalable units", sus, "SU", "⌈(nodes + UFM node slots) / SU nodes⌉",
             {"nodes": nodes, "UFM node slots": ufm_slots, "SU nodes": su_nodes},
             {"SU": "an SU is one leaf per rail with `down` nodes (32 for QM9700 at 1:1)", "partial SU": SRC_PARTIAL, "UFM": SRC_UFM}),
    ]
    layers: list[Layer] = []
    cables: dict[str, int] = {}

    if n_tiers == 1:
        sus, leaves = 1, 0
        if rail_optimized:
            rails_per_switch = min(rails, k // (nodes + ufm_slots))
            count = math.ceil(rails / rails_per_switch)
            formula = "⌈rails / ⌊k / nodes⌋⌉ (each rail on one switch; cross-rail traffic goes over NVLink/PXN)"
        else:
            count, formula = 1, "one switch holds every endpoint"
        cages = _cages_per_switches(node_links, count, ppc)
        layers.append(Layer("leaf", count, node_links, cages))
        cables["node→leaf"] = node_links
        terms[1] = Term("scalable units", 1, "SU", "single-tier fabric", {"nodes": nodes})
        terms.append(Term("leaf switches", count, "switches", formula, {"rails": rails, "k": k, "nodes": nodes}, {"rule": SRC_FATTREE}))
    else:
        # Nodes per SU: SU 1 gives up the UFM node slots; the last SU may be partial.
        per_su = [su_nodes] * sus
        per_su[0] -= ufm_slots
        per_su[-1] = nodes - sum(per_su[:-1]) if sus > 1 else nodes
        leaf_ports = []
        ufm_left = ufm_links
        for su_index, su_n in enumerate(per_su):
            for _ in range(rails):
                extra = 1 if ufm_left > 0 and su_index == 0 else 0  # UFM links land on SU 1's leaves
                ufm_left -= extra
                leaf_ports.append(su_n + extra + up)
        leaf_cages = sum(math.ceil(p / ppc) for p in leaf_ports)
        layers.append(Layer("leaf", leaves, sum(leaf_ports), leaf_cages))
        cables["node→leaf"] = node_links
        cables["leaf→spine"] = leaves * up
        terms.append(Term("leaf switches", leaves, "switches", "rails × SU", {"rails": rails, "SU": sus}, {"rule": SRC_RA}))
        if n_tiers == 2:
            spines = spines_for(leaves, up, k)
            per_spine = math.ceil(leaves * up / spines)
            layers.append(Layer("spine", spines, leaves * up, spines * math.ceil(per_spine / ppc)))
            terms.append(Term(
                "spine switches", spines, "switches",
                "smallest divisor of up ≥ ⌈leaves × up / k⌉, so every leaf sends the same number of links to every spine "
                "(⌈leaves × up / k⌉ itself if the divisor would double it)",
                {"leaves": leaves, "up": up, "k": k, "⌈leaves × up / k⌉": math.ceil(leaves * up / k)},
                {"rule": SRC_RA + "; 3 SU uses 16 spines, the 4-SU spine layer [V]"},
            ))
        else:
            spine_half = k // 2
            spines = math.ceil(leaves * up / spine_half)
            cores = math.ceil(spines * spine_half / k)
            layers.append(Layer("spine", spines, leaves * up + spines * spine_half, spines * math.ceil(k / ppc)))
            layers.append(Layer("core", cores, spines * spine_half, cores * math.ceil(spines * spine_half / cores / ppc)))
            cables["spine→core"] = spines * spine_half
            terms.append(Term("spine switches", spines, "switches", "⌈leaves × up / (k/2)⌉ (spines split k/2 down, k/2 up)",
                              {"leaves": leaves, "up": up, "k": k}, {"rule": SRC_RA + " (16 SU and more: 8 leaf + 8 spine + 4 core per SU)"}))
            terms.append(Term("core switches", cores, "switches", "⌈spines × (k/2) / k⌉", {"spines": spines, "k": k}, {"rule": SRC_RA}))

    for name, n in cables.items():
        terms.append(Term(f"cables {name}", n, "cables",
                          "nodes × rails + UFM links" if name == "node→leaf" else ("leaves × up" if name == "leaf→spine" else "spines × k/2"),
                          {**inputs, "UFM links": ufm_links} if name == "node→leaf" else inputs, {"rule": SRC_RA + "; one cable per link"}))

    node_xcvr = nodes * math.ceil(rails / system.nic_ports_per_cage)
    switch_xcvr = sum(layer.cages_used for layer in layers)
    terms.append(Term("switch-side transceivers", switch_xcvr, "transceivers", "Σ per switch ⌈ports used / ports per cage⌉",
                      {"ports per cage": ppc, "switches": sum(layer.switches for layer in layers)}, {"rule": SRC_CAGE}))
    terms.append(Term("node-side transceivers", node_xcvr, "transceivers", "nodes × ⌈rails / NIC ports per cage⌉",
                      {"nodes": nodes, "rails": rails, "NIC ports per cage": system.nic_ports_per_cage}, {"rule": SRC_CAGE, "system": system.source}))
    bisection = endpoints / 2 * link * 1e9 / o
    terms.append(Term("bisection bandwidth", bisection, "b/s", "(nodes × rails / 2) × link rate / oversubscription",
                      {"endpoints": endpoints, "link Gb/s": link, "o": o}, {"rule": "cluster_tco_anchors.md §1.2 (1,024 × 400 Gb/s → 204.8 Tb/s)"}))
    terms.append(Term(f"{n_tiers}-tier endpoint limit", max_endpoints(k, n_tiers, o), "endpoints",
                      {1: "k", 2: "k × down (k²/2 at 1:1)", 3: "k × (k/2) × down (k³/4 at 1:1)"}[n_tiers], {"k": k, "down": down}, {"rule": SRC_FATTREE}))

    hops = {1: "1 switch hop on a rail; cross-rail goes over NVLink (PXN)", 2: "same rail in an SU: 1 hop; cross-rail or cross-SU: 3 hops (leaf–spine–leaf)",
            3: "same rail in an SU: 1 hop; across SUs: 3 or 5 hops"}[n_tiers]
    facts = {
        "link_gbps": link,
        "radix": k,
        "rail_optimized": rail_optimized,
        "hops": hops if rail_optimized else f"{n_tiers * 2 - 1} switch hops at most between any two NICs",
        "rail_map": rail_map(sus, rails, su_nodes) if rail_optimized and n_tiers > 1 else [],
    }
    return Fabric(
        system=system, switch=switch, link_gbps=link, nodes=nodes, rails=rails, oversubscription=o,
        rail_optimized=rail_optimized, tiers=n_tiers, su_nodes=su_nodes, sus=sus, ufm_links=ufm_links,
        layers=layers, cables=cables, node_transceivers=node_xcvr, ufm_transceivers=ufm_links,
        terms=terms, facts=facts, warnings=warnings,
    )


def _cages_per_switches(ports: int, switches: int, ppc: int) -> int:
    per = math.ceil(ports / switches)
    return switches * math.ceil(per / ppc)


def rail_map(sus: int, rails: int, su_nodes: int) -> list[dict[str, Any]]:
    """Rail alignment: NIC r of every node in SU s lands on leaf s·rails + r."""
    return [
        {"su": s + 1, "nodes": f"{s * su_nodes}–{(s + 1) * su_nodes - 1}", "rail_leaves": {f"rail {r}": f"leaf {s * rails + r}" for r in range(rails)}}
        for s in range(sus)
    ]


def fabric_optics(fab: Fabric) -> dict[str, tuple[str, int]]:
    """BOM keys and counts for the fabric's transceivers and cables: {role: (optic key, count)}."""
    o = fab.switch.optics
    node_key = o["node_twin"] if fab.system.nic_ports_per_cage == 2 else o["node_single"]
    # Validate the keys now, so a broken catalog row fails with its name rather than later.
    for key in (o["switch"], node_key, o["node_single"], o["cable"]):
        optic(key)
    out = {
        "switch transceivers": (o["switch"], sum(layer.cages_used for layer in fab.layers)),
        "node transceivers": (node_key, fab.node_transceivers),
        "cables": (o["cable"], sum(fab.cables.values())),
    }
    if fab.ufm_transceivers:
        out["UFM transceivers"] = (o["node_single"], fab.ufm_transceivers)
    return out


@dataclass
class LeafSpine:
    """A plain (not rail-optimized) leaf–spine fabric, as used for the storage network."""

    switch: SwitchSpec
    link_gbps: float
    endpoints: int
    leaves: int
    spines: int
    cables: int
    cages: int
    cores: int = 0  # a 3-tier storage fabric (RA SuperPOD beyond the 2-tier reach)
    storage_ports: int = 0  # storage-appliance ports among the endpoints


def leaf_spine(endpoints: int, switch: SwitchSpec, link_gbps: float, oversubscription: float = 1.0) -> LeafSpine:
    """Leaves = ⌈endpoints / down⌉; spines as for the compute fabric; one leaf needs no spine."""
    k = switch.radix(link_gbps)
    down, up = leaf_split(k, oversubscription)
    if endpoints <= k:
        return LeafSpine(switch, link_gbps, endpoints, 1, 0, endpoints, math.ceil(endpoints / switch.ports_per_cage(link_gbps)))
    leaves = math.ceil(endpoints / down)
    ppc = switch.ports_per_cage(link_gbps)
    if leaves > k:  # beyond the 2-tier reach: spines split k/2 down, k/2 up to a core layer
        if leaves > k * (k // 2):
            raise SpecError(f"the storage fabric needs {leaves} leaves, more than a 3-tier fabric of radix {k} reaches; split the storage network")
        spines = math.ceil(leaves * up / (k // 2))
        cores = math.ceil(spines * (k // 2) / k)
        core_links = spines * (k // 2)
        cables = endpoints + leaves * up + core_links
        cages = leaves * math.ceil((down + up) / ppc) + spines * math.ceil(k / ppc) + cores * math.ceil(core_links / cores / ppc)
        return LeafSpine(switch, link_gbps, endpoints, leaves, spines, cables, cages, cores=cores)
    spines = spines_for(leaves, up, k)
    cables = endpoints + leaves * up
    cages = leaves * math.ceil((down + up) / ppc) + spines * math.ceil(leaves * up / spines / ppc)
    return LeafSpine(switch, link_gbps, endpoints, leaves, spines, cables, cages)

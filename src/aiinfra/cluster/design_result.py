"""What a cluster design produces: `ClusterDesign` (parts, BOM, terms, facts) and its per-tier table.

Shared by both designers: design.py (node-based fabrics) and rackscale.py (NVL72 racks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiinfra.explain import Result, Term

if TYPE_CHECKING:
    from aiinfra.cluster.bom import LineItem
    from aiinfra.cluster.fabric import Fabric, LeafSpine
    from aiinfra.cluster.management import Management
    from aiinfra.cluster.options import DesignInput
    from aiinfra.cluster.parts import SystemSpec
    from aiinfra.cluster.power import RackPlan
    from aiinfra.cluster.storage import StoragePlan


@dataclass
class ClusterDesign:
    """A designed cluster: its parts, BOM and summary terms, and the facts and warnings of its Result."""

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


def per_tier_rows(fab: Fabric, sfab: LeafSpine | None) -> list[dict[str, Any]]:
    """The per-tier table: switches, transceivers and cables of each compute (and storage) fabric tier."""
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

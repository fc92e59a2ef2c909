"""Bill of materials: a plain list of line items that a price catalog can cost.

Each `LineItem` names a catalog entry (`table` + `item` key), a quantity in `unit`, the unit's
maximum power in watts and the reason for the quantity. `cost` multiplies quantity by a unit
price looked up by (table, item); nothing here knows about prices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from aiinfra.cluster.parts import optic


@dataclass(frozen=True)
class LineItem:
    category: str  # compute, compute-fabric, storage-fabric, optics, management, storage
    item: str  # catalog key in `table`
    quantity: float
    unit_power_w: float
    reason: str
    table: str = ""  # catalog table of `item`: systems, switches, optics, cluster_services, storage_tiers
    unit: str = "each"  # "each", or "TB" for storage capacity
    included_in: str = ""  # a part of another line (an NVL72 tray is in its rack): counted, not priced again

    @property
    def power_w(self) -> float:
        return self.quantity * self.unit_power_w

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "power_w": self.power_w}


def optic_item(category: str, key: str, quantity: int, reason: str) -> LineItem:
    part = optic(key)
    return LineItem(category, key, quantity, part.max_power_w, reason, table="optics")


def total_power(items: list[LineItem], categories: tuple[str, ...] | None = None) -> float:
    """Σ quantity × unit power, optionally over some categories only."""
    return sum(i.power_w for i in items if categories is None or i.category in categories)


def merge(items: list[LineItem]) -> list[LineItem]:
    """Drop zero-quantity lines (a 2-tier fabric has no core line)."""
    return [i for i in items if i.quantity > 0]

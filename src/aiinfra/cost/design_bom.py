"""Cost the cluster designer's bill of materials (`aiinfra.cluster.design`) with the price catalog.

The designer counts every part (nodes, leaf/spine/core switches, transceivers per cage, cables,
management switches, UFM, control nodes, storage TB). The price catalog has dated prices for nodes,
InfiniBand switches, storage per TB and cabling per node, but none for individual transceivers or
management parts. So:

- optics lines are priced together by the catalog's cabling-per-node figure (their power is kept);
- storage lines in TB are priced per TB;
- lines with no dated price stay in the BOM at $0 (so their power still counts) and are listed, so
  the caller can warn about them; a user can add prices for them with `--catalog`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiinfra.cluster.design import DesignInput, design_cluster
from aiinfra.cluster.reference import preset_settings
from aiinfra.cost import capex as cx
from aiinfra.errors import AiinfraError

CABLING_ITEM = "ib-cables-per-node"
STORAGE_ITEM = "flash-storage"


@dataclass
class DesignBom:
    items: list[cx.LineItem]  # priceable lines, in the cost catalog's keys
    unpriced: list[cx.LineItem]  # designer lines with no dated price (in the BOM at $0)
    title: str
    optics_lines: int  # designer optics lines folded into the cabling-per-node line


def _priced(item: str) -> bool:
    try:
        cx.price_of(item)
    except AiinfraError:
        return False
    return True


def design_bom(gpus: int, node: str, preset: str | None = None, su: int | None = None,
               dataset_tb: float = 0.0) -> DesignBom:
    """Run the cluster designer and turn its BOM into priceable line items."""
    fields: dict = {"gpus": gpus, "node": node, "dataset_tb": dataset_tb}
    if su is not None and preset is None:
        preset = "superpod"  # --su alone means SuperPOD scalable units (8 racks for NVL72, 32 DGX otherwise)
    if preset is not None:
        fields.update(preset_settings(preset, su, gpus or None, node))
    elif gpus <= 0:
        raise AiinfraError("--design needs --gpus N (or --preset with --su)")
    design = design_cluster(DesignInput(**fields))
    items: list[cx.LineItem] = []
    unpriced: list[cx.LineItem] = []
    optics_w, optics_lines, nodes = 0.0, 0, 0.0
    for li in design.bom:
        if getattr(li, "included_in", ""):  # an NVL72 tray is priced and powered with its rack
            continue
        line = cx.as_line_item(li)
        if line.category == "compute":
            nodes += line.quantity
        if line.category == "optics":
            optics_w += line.quantity * line.unit_power_w
            optics_lines += 1
            continue
        if getattr(li, "unit", "each") == "TB":
            items.append(cx.LineItem(line.category, STORAGE_ITEM, line.quantity, 0.0,
                                     f"{line.quantity:g} TB, RA '{line.item}' tier (priced per TB)"))
            continue
        if _priced(line.item):
            items.append(line)
        else:  # kept at $0 so its power still counts, and listed so the gap is visible
            unpriced.append(line)
            items.append(cx.LineItem(line.category, line.item, line.quantity, line.unit_power_w,
                                     f"not priced (no dated price in the catalog; add one with --catalog): {line.reason}", 0.0))
    if optics_lines and nodes:
        items.append(cx.LineItem("optics", CABLING_ITEM, nodes, optics_w / nodes,
                                 f"{optics_lines} designer optics lines (transceivers, cables) priced as cabling per node; "
                                 "no per-part optics prices in the catalog"))
    return DesignBom(items, unpriced, design.title, optics_lines)


def unpriced_warning(b: DesignBom) -> str | None:
    if not b.unpriced:
        return None
    parts = ", ".join(f"{li.item} × {li.quantity:g}" for li in b.unpriced)
    return f"design BOM lines with no dated price are not in CapEx: {parts}; add prices with --catalog"

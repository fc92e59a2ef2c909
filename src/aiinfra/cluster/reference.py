"""Reference-architecture presets: DGX BasePOD, DGX POD (RA Table 3 rows) and DGX SuperPOD.

- basepod: 2–8 DGX on one tier of QM9700 rail switches; storage and in-band share the
  SN4600C Ethernet (no separate storage fabric); the control plane is 5 x86 servers and the
  managed QM9700 runs the subnet manager, so no UFM appliances (BasePOD RA V5 [D]).
- dgx-pod --su N: N full SUs of 32 DGX (RA Table 3 rows: 128 nodes at 4 SU, core from 16 SU).
- superpod --su N: N SUs with one DGX removed in SU 1 for the 4 UFM links (RA Table 4:
  31/63/95/127 nodes), storage tier Best, separate storage fabric.
"""

from __future__ import annotations

from typing import Any

from aiinfra.errors import SpecError

PRESETS = ("basepod", "dgx-pod", "superpod")
SRC_BASEPOD = "DGX BasePOD RA-11127-001 V5: NDR400 design for 2–8 DGX B200/H200/H100 on QM9700, SN4600C, SN2201 [D]"
SRC_SUPERPOD = "DGX SuperPOD H100 RA-11333-001 V11 Tables 3–4, 7–8 [V]"
SRC_GB200 = "DGX SuperPOD GB200 RA: SU = 8 DGX GB200 NVL72 racks (576 GPUs), 1.2 MW per SU [D]"


def preset_settings(preset: str, su: int | None, gpus: int | None, node: str | None) -> dict[str, Any]:
    """DesignInput fields a preset sets; the caller's explicit options override them."""
    p = preset.lower().strip()
    if p not in PRESETS:
        from aiinfra.errors import not_found

        raise not_found("preset", preset, PRESETS)
    if su is not None and su <= 0:
        raise SpecError(f"--su must be a positive number of scalable units, not {su}")
    node = node or "dgx-h100"
    from aiinfra.cluster.parts import system

    spec = system(node)
    if spec.rack_scale:  # GB200/GB300 NVL72: an SU is 8 racks (GB200 RA); the rack's own fabric
        if p != "superpod":
            raise SpecError(f"{spec.key} is a rack-scale system; use --preset superpod --su N (8 racks per SU) or --gpus")
        out_rs: dict[str, Any] = {"preset": p, "node": spec.key, "storage_tier": "best", "preset_source": SRC_GB200}
        if su is not None:
            out_rs.update(fixed_nodes=spec.su_nodes * su, gpus=0)
        elif gpus is not None:
            out_rs["gpus"] = gpus
        else:
            raise SpecError(f"--preset {p} needs --su N (scalable units) or --gpus")
        return out_rs
    if p == "basepod":
        if su is not None:
            raise SpecError("a BasePOD has no scalable units; give --gpus 16–64 (2–8 DGX) instead of --su")
        gpus = gpus if gpus is not None else 64
        if gpus > 64:
            raise SpecError(f"a BasePOD NDR400 holds 2–8 DGX (16–64 GPUs), not {gpus} GPUs; use --preset superpod --su N")
        return {"preset": p, "node": node, "gpus": gpus, "fabric": "qm9700", "tiers": 1, "ufm_links": 0, "ufm_appliances": 0, "storage_tier": "better",
                "separate_storage_fabric": False, "preset_source": SRC_BASEPOD}
    if su is None and gpus is None:
        raise SpecError(f"--preset {p} needs --su N (scalable units) or --gpus")
    out: dict[str, Any] = {"preset": p, "node": node, "fabric": "qm9700", "oversubscription": "1:1", "rail_optimized": True, "preset_source": SRC_SUPERPOD}
    if p == "dgx-pod":
        out.update(ufm_links=0, storage_tier="better")
        if su is not None:
            out.update(fixed_nodes=32 * su, gpus=0)
    else:
        out.update(ufm_links=4, storage_tier="best")
        if su is not None:
            out.update(fixed_nodes=32 * su - 1, gpus=0)
    if gpus is not None and su is None:
        out["gpus"] = gpus
    return out


def recommend_preset(gpus: int) -> str:
    """The seed's scaling guidance as a preset name (or 'single node' / 'custom')."""
    if gpus <= 8:
        return "single node"
    if gpus <= 64:
        return "basepod"
    if gpus <= 1024:
        return "superpod"
    return "custom (superpod rules beyond 4 SU: contact the vendor)"

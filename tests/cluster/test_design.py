"""Whole designs: presets, BOM line items, all-reduce planning, rounding and scale guidance."""

from __future__ import annotations

import pytest

from aiinfra.cluster.allreduce import volume_per_gpu
from aiinfra.cluster.bom import LineItem, total_power
from aiinfra.cluster.design import DesignInput, design_cluster, scale_class
from aiinfra.cluster.reference import preset_settings, recommend_preset
from aiinfra.errors import AiinfraError, SpecError


def _preset(name, su=None, gpus=None, **kw):
    return design_cluster(DesignInput(**{**preset_settings(name, su, gpus, None), **kw}))


def test_superpod_4su_bom():
    """RA V11 4 SU: 127 DGX H100, 48 QM9700 in the compute fabric, 1,536 switch transceivers, 2,040 NDR cables + 2 UFM cables."""
    d = _preset("superpod", 4)
    by = {}
    for item in d.bom:
        by.setdefault((item.category, item.item), 0)
        by[(item.category, item.item)] += item.quantity
    assert by[("compute", "dgx-h100")] == 127
    assert by[("compute-fabric", "qm9700")] == 48
    assert d.facts["storage_tier"] == "best"
    xcvr = [i for i in d.bom if i.item == "osfp-2x400g-ndr-switch" and "compute" in i.reason]
    assert xcvr[0].quantity == 1536
    cables = [i for i in d.bom if i.item == "mpo12-mmf-400g" and "compute" in i.reason]
    assert cables[0].quantity == 2040  # RA V11 Table 8: the 4 UFM links ride 2 separate NDR 200G cables
    assert sum(i.quantity for i in d.bom if i.item == "ndr-200g-ufm-cable" and "compute" in i.reason) == 2


def test_bom_is_a_plain_costable_list():
    """The cost package reads (category, item, table, quantity, unit, unit_power_w, reason) per line."""
    d = _preset("superpod", 1)
    assert all(isinstance(i, LineItem) and i.quantity > 0 and i.reason and i.table for i in d.bom)
    row = d.bom[0].to_dict()
    assert set(row) >= {"category", "item", "table", "quantity", "unit", "unit_power_w", "reason", "power_w"}
    it = d.term("IT power").value - d.term("IT power: storage").value
    assert total_power(d.bom) == pytest.approx(it)


def test_dgx_pod_table3_core_from_16_su():
    """RA V11 Table 3: 16 SU = 512 nodes, 128 leaf, 128 spine, 64 core."""
    d = _preset("dgx-pod", 16)
    assert d.fabric.nodes == 512
    assert (d.fabric.count("leaf"), d.fabric.count("spine"), d.fabric.count("core")) == (128, 128, 64)
    assert d.fabric.tiers == 3


def test_basepod():
    """BasePOD NDR400: 8 DGX on one QM9700 tier, no separate storage fabric, 5 control-plane servers."""
    d = _preset("basepod")
    assert d.fabric.nodes == 8 and d.fabric.tiers == 1 and d.storage_fabric is None
    assert d.management.control_count == 5
    with pytest.raises(SpecError, match="2–8 DGX"):
        preset_settings("basepod", None, 128, None)
    with pytest.raises(SpecError, match="no scalable units"):
        preset_settings("basepod", 2, None, None)
    with pytest.raises(AiinfraError, match="closest: superpod"):
        preset_settings("superpd", 1, None, None)


def test_roce_has_no_ufm():
    d = design_cluster(DesignInput(gpus=256, fabric="roce", node="hgx-h100"))
    assert d.management.ufm_count == 0 and d.fabric.ufm_links == 0
    assert d.fabric.switch.key == "sn5600" and d.fabric.link_gbps == 400
    # SN5600 at 400G: 128 logical ports in 64 cages → SU of 64 nodes, 8 leaves, 4 spines (k²/2 = 8,192).
    assert d.fabric.su_nodes == 64 and d.fabric.count("leaf") == 8


def test_gpu_count_rounds_up_with_warning():
    d = design_cluster(DesignInput(gpus=100))
    assert d.fabric.nodes == 13
    assert any("rounded up to 13 nodes = 104 GPUs" in w for w in d.warnings)


def test_gpu_count_must_be_positive():
    for n in (0, -8):
        with pytest.raises(SpecError, match="must be positive"):
            design_cluster(DesignInput(gpus=n))


def test_allreduce_volume_formula():
    """nccl-tests PERFORMANCE.md: ring all-reduce moves 2(n−1)/n of the buffer per rank."""
    assert volume_per_gpu(1e9, 8).value == pytest.approx(2 * 7 / 8 * 1e9)
    assert volume_per_gpu(1e9, 1).value == 0


def test_allreduce_on_design_uses_model_catalog():
    """--model uses the exact parameter count; gradient bytes = params × 2 (bf16)."""
    from aiinfra.catalog.models import model
    from aiinfra.sizing.params import param_counts

    d = design_cluster(DesignInput(gpus=256, model="llama-3.1-8b"))
    p = param_counts(model("llama-3.1-8b")).total.value
    vol = d.term("all-reduce volume per GPU per step")
    assert vol.value == pytest.approx(p * 2 * 2 * 255 / 256)
    t = d.term("all-reduce time per step").value
    # Hierarchical all-reduce: a node's 8 GPUs share its 8 × 400G NICs (8 × 50 GB/s line rate) and
    # NVLink runs 450 GB/s per direction; neither line rate can be beaten.
    assert t > vol.value / (8 * 50e9)
    assert t > vol.value / 450e9
    assert t < 10 * vol.value / (8 * 50e9)
    assert d.term("checkpoint size").value == pytest.approx(p * 14)
    with pytest.raises(SpecError, match="either"):
        design_cluster(DesignInput(gpus=8, model="llama-3.1-8b", params=1e9))


def test_scale_guidance():
    """The seed's guidance: 1–8 GPUs one node, 16–64 BasePOD, 160–1000 POD/SuperPOD, 1000+ custom."""
    assert scale_class(8).startswith("one node")
    assert "BasePOD" in scale_class(64) and recommend_preset(64) == "basepod"
    assert "SuperPOD" in scale_class(512) and recommend_preset(512) == "superpod"
    assert scale_class(4096).startswith("custom")


def test_basepod_storage_rides_the_inband_network():
    """BasePOD RA V5: management and storage share the SN4600C fabric, so storage ports are in-band ports."""
    d = _preset("basepod")
    ports = d.management.terms[0].inputs
    assert ports["of which storage"] == 8 * 2
    assert ports["ports"] == 8 * 2 + 8 * 2 + 5 * 2  # in-band + storage + control-plane servers


def test_b300_defaults_to_the_xdr_ra_fabric():
    """DGX SuperPOD B300 XDR RA: 72 DGX B300 per SU on Quantum-X800 Q3400; 4 SU = 288 nodes → 32 leaf + 18 spine."""
    d = design_cluster(DesignInput(gpus=2304, node="dgx-b300"))
    assert d.fabric.switch.key == "q3400" and d.fabric.link_gbps == 800
    assert (d.fabric.sus, d.fabric.count("leaf"), d.fabric.count("spine")) == (4, 32, 18)

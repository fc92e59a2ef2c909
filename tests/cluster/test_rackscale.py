"""Rack-scale SuperPODs of GB200 / GB300 NVL72 racks (DGX SuperPOD GB200 RA; B300 XDR RA fabric rows)."""

from __future__ import annotations

import pytest

from aiinfra.cluster.design import DesignInput, design_cluster
from aiinfra.cluster.reference import preset_settings
from aiinfra.errors import SpecError


def _su(node, su, **kw):
    return design_cluster(DesignInput(**{**preset_settings("superpod", su, None, node), **kw}))


def test_gb200_su_is_eight_racks_of_576_gpus():
    """DGX SuperPOD GB200 RA: an SU is 8 DGX GB200 rack systems = 576 GPUs; each SU needs a TDP of 1.2 MW.
    Nameplate 8 × 132 kW + network stays within ~3% of that figure."""
    d = _su("gb200-nvl72", 1)
    assert d.term("GPUs").value == 576 and d.term("nodes").value == 8 and d.term("scalable units").value == 1
    assert d.term("NVLink domains").value == 8
    assert d.facts["nvlink_domain_gpus"] == 72 and d.facts["rack_scale"] is True
    assert d.term("power per SU").value == pytest.approx(1.2e6, rel=0.03)
    assert d.fabric.switch.key == "qm9700"  # NDR 400 across racks on GB200


def test_gb200_ra_largest_size_128_racks():
    """DGX SuperPOD GB200 RA: 'beyond 128 racks with 9216 GPUs' = 16 SU."""
    d = _su("gb200-nvl72", 16)
    assert d.term("GPUs").value == 9216 and d.term("nodes").value == 128


@pytest.mark.parametrize("su, leaf, spine", [(1, 8, 4), (2, 16, 8), (4, 32, 18), (8, 64, 36), (16, 128, 72)])
def test_gb300_xdr_fabric_follows_the_xdr_ra_rows(su, leaf, spine):
    """DGX SuperPOD B300 XDR RA compute-fabric rows for 576 GPUs per SU on Q3400 (8/4, 16/8, 32/18, 64/36;
    144/72 at 18 SU): a GB300 NVL72 SU also has 576 × 800G ConnectX-8 endpoints, so the same leaf/spine
    counts; 16 SU (128 racks) stays on 2 tiers (128 leaves ≤ k = 144)."""
    d = _su("gb300-nvl72", su)
    assert (d.fabric.count("leaf"), d.fabric.count("spine"), d.fabric.tiers) == (leaf, spine, 2)
    assert d.fabric.cables["node→leaf"] == 576 * su


def test_liquid_cooling_and_water_flow():
    """Water flow = liquid heat / (c_p ΔT): 8 × 132 kW × 85% = 897.6 kW at 4.18 kJ/(kg·K) and 10 K →
    21.47 kg/s ≈ 1,288 L/min; CDUs N+1; the air share goes to CRAHs with the network racks."""
    d = _su("gb200-nvl72", 1)
    liquid = d.term("liquid-cooled heat").value
    assert liquid == pytest.approx(8 * 132e3 * 0.85)
    assert d.term("facility water flow").value == pytest.approx(liquid / 1000 / (4.18 * 10) * 60)
    assert d.term("CDUs").value == 2 and d.term("CRAH units").value >= 2
    assert d.term("heat rejection").value > d.term("IT power").value
    cats = {i.category for i in d.bom}
    assert {"compute", "compute-fabric", "storage-fabric", "management", "cooling", "optics"} <= cats
    assert all(i.reason for i in d.bom)


def test_trays_are_counted_inside_the_rack_line():
    """18 compute trays and 9 NVLink switch trays per rack (DGX GB200 user guide): listed, priced and powered once (the rack)."""
    d = _su("gb200-nvl72", 1)
    trays = {i.item: i for i in d.bom if i.included_in}
    assert trays["gb200-compute-tray"].quantity == 144 and trays["nvlink5-switch-tray"].quantity == 72
    assert all(i.power_w == 0 for i in trays.values())
    assert d.term("IT power: compute nodes").value == 8 * 132e3


def test_partial_su_builds_the_full_su_fabric():
    """RA: a partial SU gets the full SU's leaves and leaf–spine cables; node links follow the real racks."""
    d = design_cluster(DesignInput(gpus=1000, node="gb300-nvl72"))
    assert d.term("nodes").value == 14 and d.term("scalable units").value == 2
    assert d.fabric.count("leaf") == 16 and d.fabric.cables["node→leaf"] == 14 * 72
    assert any("rounded up to 14 racks" in w for w in d.warnings)


def test_spectrum_x_ethernet_fabric():
    """GB300 NVL72 with Spectrum-X: SN5600 at 800 GbE (k = 64) instead of Quantum-X800."""
    d = _su("gb300-nvl72", 1, fabric="sn5600")
    assert d.fabric.switch.protocol == "ethernet" and d.fabric.link_gbps == 800
    assert d.management.ufm_count == 0


@pytest.mark.parametrize("node", ["gb200-nvl72", "gb300-nvl72"])
def test_every_su_builds_and_grows(node):
    """Property over SU = 1..16 (the GB200 RA's 128 racks): every size builds; switch, CDU and rack counts
    never fall; no switch uses more ports than its radix."""
    prev = None
    for su in range(1, 17):
        d = _su(node, su)
        k = d.fabric.switch.radix(d.fabric.link_gbps)
        for layer in d.fabric.layers:
            assert layer.ports_used <= layer.switches * k
        now = (d.fabric.switches, d.storage_fabric.leaves + d.storage_fabric.spines + d.storage_fabric.cores,
               d.term("CDUs").value, d.term("network racks").value, d.management.inband, d.management.oob)
        if prev is not None:
            assert all(a >= b for a, b in zip(now, prev, strict=True)), (su, prev, now)
        prev = now


def test_tray_is_not_a_node_and_presets_are_checked():
    with pytest.raises(SpecError, match="tray of gb200-nvl72"):
        design_cluster(DesignInput(gpus=72, node="gb200-compute-tray"))
    with pytest.raises(SpecError, match="rack-scale"):
        preset_settings("basepod", None, 64, "gb200-nvl72")
    with pytest.raises(SpecError, match="one NIC per GPU"):
        design_cluster(DesignInput(gpus=72, node="gb200-nvl72", nics=4))


def test_allreduce_runs_over_the_72_gpu_nvlink_domain():
    """nccl-tests PERFORMANCE.md volume 2(n−1)/n per GPU; the hierarchical all-reduce keeps 72 ranks per
    NVLink domain on an NVL72 rack, so with the same 400G NIC per GPU as a DGX B200 (8 per node) the
    inter-node leg carries 1/9 of the data and the step's all-reduce is faster."""
    nvl = design_cluster(DesignInput(gpus=1152, node="gb200-nvl72", params=405e9))
    dgx = design_cluster(DesignInput(gpus=1152, node="dgx-b200", params=405e9))
    vol = nvl.term("all-reduce volume per GPU per step").value
    assert vol == pytest.approx(405e9 * 2 * 2 * 1151 / 1152)
    assert nvl.term("all-reduce time per step").value < dgx.term("all-reduce time per step").value
    assert nvl.term("all-reduce time per step").value > vol / 1800e9  # never beats NVLink 5 line rate


def test_gb200_scale_out_per_rack():
    """Azure ND GB200 v6 docs: an NVL72 rack (18 VMs of 4 GPUs, 4 × 400G CX-7 each) has 28.8 Tb/s of scale-out;
    the design's node links per rack × link rate give the same, and bisection is half of all NIC bandwidth."""
    d = _su("gb200-nvl72", 1)
    per_rack = d.fabric.cables["node→leaf"] / 8 * d.fabric.link_gbps * 1e9
    assert per_rack == pytest.approx(28.8e12)
    assert d.term("bisection bandwidth").value == pytest.approx(8 * 28.8e12 / 2)

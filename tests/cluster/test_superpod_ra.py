"""DGX SuperPOD H100 RA-11333-001 V11, table by table: every row the RA publishes, and the rules that
carry its 4-SU management, storage and rack counts to every SU count up to 64."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfra.cluster.design import DesignInput, design_cluster
from aiinfra.cluster.reference import preset_settings


def _preset(name, su=None, gpus=None, node=None):
    return design_cluster(DesignInput(**preset_settings(name, su, gpus, node)))


def _qty(d, item, text=""):
    return sum(i.quantity for i in d.bom if i.item == item and text in i.reason)


@pytest.fixture(scope="module")
def su4():
    return _preset("superpod", 4)


def test_table7_major_components_4su(su4):
    """RA V11 Table 7. Major components of the 4 SU, 127-node DGX SuperPOD with SLURM: 38 racks, 127 DGX
    H100, 4 UFM appliances, 4 BCM management servers, 8 in-band SN4600C, 8 OOB SN2201, 48 compute-fabric
    and 16 storage-fabric QM9700, 96 Raritan PX3-5878I2R and 12 PX3-5747V-V2 rack PDUs."""
    ra = su4.facts["ra_items"]
    assert ra["racks"] == 38 and _qty(su4, "rack-48u") == 38
    assert _qty(su4, "dgx-h100") == 127
    assert ra["ufm_appliances"] == 4 and _qty(su4, "ufm-appliance") == 4
    assert ra["bcm_servers"] == 4 and _qty(su4, "control-node") == 4
    assert ra["inband_switches"] == 8 and _qty(su4, "sn4600c") == 8
    assert ra["oob_switches"] == 8 and _qty(su4, "sn2201") == 8
    assert ra["compute_fabric_switches"] == 48
    assert ra["storage_fabric_switches"] == 16
    assert sum(i.quantity for i in su4.bom if i.category == "storage-fabric") == 16
    assert _qty(su4, "pdu-compute") == 96 and _qty(su4, "pdu-network") == 12


@pytest.mark.parametrize("item, text, count", [
    # In-band Ethernet cables
    ("qsfp56-200g-aoc", "DGX", 254), ("qsfp28-100g-aoc", "management nodes", 8), ("qsfp28-100g-cwdm4", "core DC", 4),
    ("qsfp28-100g-dac", "ISL", 6), ("qsfp28-100g-aoc", "NFS", 8), ("qsfp28-100g-aoc", "leaf–core", 24),
    ("qsfp28-100g-aoc", "OOB switch", 16),
    # OOB Ethernet cables
    ("rj45-cat5e", "BMC", 127), ("rj45-cat5e", "InfiniBand switches", 64), ("rj45-cat5e", "management and UFM", 8),
    ("rj45-cat5e", "in-band Ethernet", 8), ("rj45-cat5e", "back-to-back", 2), ("rj45-cat5e", "PDUs", 108),
    ("qsfp-sfp-adapter", "UFM", 4), ("sfp-1g-baset", "UFM", 4),
    # Compute InfiniBand cabling
    ("mpo12-mmf-400g", "compute", 2040), ("ndr-200g-ufm-cable", "compute", 2), ("osfp-2x400g-ndr-switch", "compute", 1536),
    ("osfp-2x400g-ndr-flat", "compute", 508), ("osfp-400g-ndr-single", "compute", 4),
    # Storage InfiniBand cabling
    ("mpo12-mmf-400g", "storage", 494), ("ndr-2x200g-storage-cable", "storage", 48), ("osfp-400g-ndr-single", "storage", 4),
    ("osfp-2x400g-ndr-switch", "storage", 369), ("qsfp112-400g-ndr-single", "storage", 254), ("ndr-200g-ufm-cable", "storage", 2),
    ("hdr-400g-2x200g-split", "Slurm", 4),
])
def test_table8_cables_4su(su4, item, text, count):
    """RA V11 Table 8. Estimate of cables required for a 4 SU, 127-node DGX SuperPOD: every row
    (in-band Ethernet, OOB Ethernet, compute InfiniBand and storage InfiniBand cabling)."""
    assert _qty(su4, item, text) == count


@pytest.mark.parametrize("su, nodes, gpus, leaf, spine, core, node_leaf, leaf_spine, spine_core", [
    (4, 128, 1024, 32, 16, 0, 1024, 1024, 0),
    (8, 256, 2048, 64, 32, 0, 2048, 2048, 0),
    (16, 512, 4096, 128, 128, 64, 4096, 4096, 4096),
    (32, 1024, 8192, 256, 256, 128, 8192, 8192, 8192),
    (64, 2048, 16384, 512, 512, 256, 16384, 16384, 16384),
])
def test_table3_larger_superpod_component_counts(su, nodes, gpus, leaf, spine, core, node_leaf, leaf_spine, spine_core):
    """RA V11 Table 3. Larger SuperPOD component counts (full SUs, QM9700): nodes, GPUs, leaf/spine/core
    switches and node–leaf, leaf–spine, spine–core cables for 4, 8, 16, 32 and 64 SU."""
    d = _preset("dgx-pod", su)
    f = d.fabric
    assert (f.nodes, f.gpus, f.sus) == (nodes, gpus, su)
    assert (f.count("leaf"), f.count("spine"), f.count("core")) == (leaf, spine, core)
    assert (f.cables["node→leaf"], f.cables["leaf→spine"], f.cables.get("spine→core", 0)) == (node_leaf, leaf_spine, spine_core)


def test_b200_ra_table3_two_su_row():
    """DGX SuperPOD B200 RA, larger SuperPOD component counts: the extra 2-SU row (64 nodes, 512 GPUs,
    16 leaf, 8 spine, 512 + 512 cables); the other rows equal the H100 RA's Table 3."""
    f = _preset("dgx-pod", 2, node="dgx-b200").fabric
    assert (f.nodes, f.gpus, f.count("leaf"), f.count("spine")) == (64, 512, 16, 8)
    assert (f.cables["node→leaf"], f.cables["leaf→spine"]) == (512, 512)


@pytest.mark.parametrize("su, nodes, leaf, spine, compute_ufm, spine_leaf", [
    (1, 31, 8, 4, 252, 256), (2, 63, 16, 8, 508, 512), (3, 95, 24, 16, 764, 768), (4, 127, 32, 16, 1020, 1024)])
def test_table4_compute_fabric_component_count(su, nodes, leaf, spine, compute_ufm, spine_leaf):
    """RA V11 Table 4. Compute fabric component count, through the superpod preset: 31/63/95/127 nodes,
    leaf 8/16/24/32, spine 4/8/16/16, compute + UFM cables 252/508/764/1020, spine–leaf 256/…/1024."""
    f = _preset("superpod", su).fabric
    assert (f.nodes, f.count("leaf"), f.count("spine")) == (nodes, leaf, spine)
    assert (f.cables["node→leaf"], f.cables["leaf→spine"]) == (compute_ufm, spine_leaf)


def test_gpu_count_that_fills_8_su_gives_8_su_on_two_tiers():
    """RA V11 Table 3: 2,048 GPUs = 256 DGX = 8 SU on a 2-tier fabric (64 leaf + 32 spine), not 9 SU on 3."""
    d = design_cluster(DesignInput(gpus=2048))
    assert (d.fabric.sus, d.fabric.tiers, d.fabric.count("leaf"), d.fabric.count("spine")) == (8, 2, 64, 32)


def test_superpod_64_su_builds_with_a_three_tier_storage_fabric():
    """RA V11: 'up to and beyond 64 SU with 2000+ DGX H100 nodes'; the storage fabric needs a core layer there."""
    d = _preset("superpod", 64)
    assert d.fabric.nodes == 2047 and d.fabric.tiers == 3
    assert d.storage_fabric.cores > 0


COUNTS = ("racks", "ufm_appliances", "bcm_servers", "inband_switches", "oob_switches", "compute_fabric_switches",
          "storage_fabric_switches", "pdus_dgx_racks", "pdus_other_racks")


@pytest.fixture(scope="module")
def every_su():
    return {su: _preset("superpod", su) for su in range(1, 65)}


def test_every_su_count_builds_and_counts_never_decrease(every_su):
    """Property over SU = 1..64 (the RA's Table 3 maximum): every size builds, and no item count falls as SUs grow."""
    prev = None
    for su in range(1, 65):
        d = every_su[su]
        assert d.fabric.sus == su
        now = {k: d.facts["ra_items"][k] for k in COUNTS}
        now["nodes"] = d.fabric.nodes
        if prev is not None:
            assert all(now[k] >= prev[k] for k in now), (su, {k: (prev[k], now[k]) for k in now if now[k] < prev[k]})
        prev = now


def test_ports_never_exceed_switch_radix(every_su):
    """Property over SU = 1..64: no switch layer uses more ports or cages than its switches have; in-band
    and OOB ports fit their switches."""
    for d in every_su.values():
        k = d.fabric.switch.radix(d.fabric.link_gbps)
        for layer in d.fabric.layers:
            assert layer.ports_used <= layer.switches * k and layer.cages_used <= layer.switches * d.fabric.switch.cages
        s = d.storage_fabric
        assert s.cages <= (s.leaves + s.spines + s.cores) * s.switch.cages
        inb = d.term("in-band switches").inputs
        assert inb["ports"] <= inb["leaves"] * (inb["radix"] - inb["reserved"])
        oob = d.term("out-of-band switches")
        ports = sum(oob.inputs[k] for k in ("node BMCs", "switch mgmt", "servers", "PDUs"))
        assert ports <= oob.value * oob.inputs["radix"]


@settings(max_examples=25, deadline=None)
@given(gpus=st.integers(1, 16384))
def test_any_gpu_count_up_to_64_su_builds(gpus):
    """Any GPU count up to the RA maximum (64 SU × 256 GPUs) gives a design; a full-SU count keeps its SUs."""
    d = design_cluster(DesignInput(gpus=gpus))
    nodes = -(-gpus // 8)
    assert d.fabric.nodes == nodes
    if nodes % 32 == 0:
        assert d.fabric.sus == nodes // 32


def test_table1_hardware_components(su4):
    """RA V11 Table 1. DGX SuperPOD / 4 SU hardware components: DGX H100 compute nodes; QM9700 NDR for the
    compute and the storage fabric; UFM Enterprise for fabric management; SN4600C in-band; SN2201 OOB."""
    by_cat = {}
    for i in su4.bom:
        by_cat.setdefault(i.category, set()).add(i.item)
    assert by_cat["compute"] == {"dgx-h100"}
    assert by_cat["compute-fabric"] == {"qm9700"} and by_cat["storage-fabric"] == {"qm9700"}
    assert {"ufm-appliance", "sn4600c", "sn2201", "control-node"} <= by_cat["management"]

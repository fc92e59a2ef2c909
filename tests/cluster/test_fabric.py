"""Compute-fabric sizing against the DGX SuperPOD reference architectures."""

from __future__ import annotations

import pytest

from aiinfra.cluster.fabric import (
    design_fabric,
    leaf_split,
    max_endpoints,
    parse_oversubscription,
    spines_for,
)
from aiinfra.cluster.parts import switch, system
from aiinfra.errors import AiinfraError, SpecError


@pytest.fixture(scope="module")
def h100():
    return system("dgx-h100")


@pytest.fixture(scope="module")
def qm9700():
    return switch("qm9700")


@pytest.mark.parametrize(
    "su, nodes, leaf, spine, node_leaf, leaf_spine",
    [(1, 31, 8, 4, 252, 256), (2, 63, 16, 8, 508, 512), (3, 95, 24, 16, 764, 768), (4, 127, 32, 16, 1020, 1024)],
)
def test_superpod_h100_table4(h100, qm9700, su, nodes, leaf, spine, node_leaf, leaf_spine):
    """DGX SuperPOD H100 RA-11333-001 V11, Table 4 (compute fabric, 1–4 SU, QM9700 NDR):
    nodes 31/63/95/127 (one DGX removed in SU 1 for UFM), leaf 8/16/24/32, spine 4/8/16/16,
    compute+UFM→leaf cables 252/508/764/1020, leaf→spine 256/512/768/1024."""
    fab = design_fabric(nodes, h100, qm9700, ufm_links=4)
    assert fab.sus == su
    assert fab.count("leaf") == leaf
    assert fab.count("spine") == spine
    assert fab.cables["node→leaf"] == node_leaf
    assert fab.cables["leaf→spine"] == leaf_spine
    assert fab.tiers == 2


def test_three_su_spine_is_provisioned_for_four(h100, qm9700):
    """RA V11 Table 4: 3 SU uses 16 spines, the 4-SU spine layer, not the 12 that ⌈24·32/64⌉ gives."""
    fab = design_fabric(95, h100, qm9700, ufm_links=4)
    assert fab.count("spine") == 16 == design_fabric(127, h100, qm9700, ufm_links=4).count("spine")
    assert spines_for(24, 32, 64) == 16 and 24 * 32 // 64 == 12


def test_four_su_transceivers_per_cage(h100, qm9700):
    """RA V11 4-SU compute fabric: 48 switches and 1,536 twin-port switch transceivers (32 cages each),
    2,040 NDR cables = 1,016 + 1,024 (cluster_tco_anchors.md §0 item 3, §1.2)."""
    fab = design_fabric(127, h100, qm9700, ufm_links=4)
    assert fab.switches == 48
    assert sum(layer.cages_used for layer in fab.layers) == 1536
    assert fab.nodes * 8 + fab.cables["leaf→spine"] == 2040
    assert fab.node_transceivers == 127 * 4  # DGX H100: 8 NICs in 4 twin-port OSFP cages


@pytest.mark.parametrize(
    "su, leaf, spine, core, per_tier",
    [(2, 16, 8, 0, 512), (4, 32, 16, 0, 1024), (8, 64, 32, 0, 2048), (16, 128, 128, 64, 4096), (32, 256, 256, 128, 8192), (64, 512, 512, 256, 16384)],
)
def test_superpod_table3(h100, qm9700, su, leaf, spine, core, per_tier):
    """DGX SuperPOD H100 RA V11 Table 3 (and the B200 RA's 2-SU row): full 32-node SUs; 2 tiers up to
    8 SU, a core layer from 16 SU (8 leaf + 8 spine + 4 core per SU); every tier carries 8 × nodes links."""
    fab = design_fabric(32 * su, h100, qm9700)
    assert (fab.count("leaf"), fab.count("spine"), fab.count("core")) == (leaf, spine, core)
    assert fab.cables["node→leaf"] == per_tier
    assert fab.cables["leaf→spine"] == per_tier
    assert fab.cables.get("spine→core", per_tier if core else None) == (per_tier if core else None)
    assert fab.tiers == (3 if su >= 16 else 2)


def test_endpoint_limits():
    """Fat-tree limits (cluster_tco_anchors.md §1.2; Al-Fares et al., SIGCOMM 2008): 2 tiers k²/2 = 2,048
    at k = 64 (= 8 SU of DGX H100), 3 tiers k³/4 = 65,536 at k = 64; Q3400 2-tier 144²/2 = 10,368."""
    assert max_endpoints(64, 2) == 64**2 // 2 == 2048
    assert max_endpoints(64, 3) == 64**3 // 4 == 65536
    assert max_endpoints(144, 2) == 10368
    assert max_endpoints(40, 3) == 40**3 // 4


def test_q3400_xdr_one_su(qm9700):
    """DGX SuperPOD B300 XDR RA (cluster_tco_anchors.md §1.3): 72 nodes (576 GPUs) per SU on Quantum-X800
    Q3400 (144 × 800G) → 8 leaf + 4 spine."""
    fab = design_fabric(72, system("dgx-b300"), switch("q3400"))
    assert fab.gpus == 576
    assert (fab.count("leaf"), fab.count("spine")) == (8, 4)
    assert fab.link_gbps == 800


@pytest.mark.parametrize("su, leaf, spine", [(2, 16, 8), (4, 32, 18), (8, 64, 36), (18, 144, 72)])
def test_q3400_xdr_larger(su, leaf, spine):
    """B300 XDR RA rows [D]: 2 SU 16/8, 4 SU 32/18, 8 SU 64/36, 18 SU 144/72. The 18 spines at 4 SU
    follow the same even-split rule as the H100 RA's 3-SU row (18 is the smallest divisor of 72 ≥ 16)."""
    fab = design_fabric(72 * su, system("dgx-b300"), switch("q3400"))
    assert (fab.count("leaf"), fab.count("spine")) == (leaf, spine)


def test_bisection_1024_h100(h100, qm9700):
    """cluster_tco_anchors.md §1.2: 1,024 H100 GPUs × 400 Gb/s, non-blocking → (1,024/2) × 400 Gb/s = 204.8 Tb/s."""
    fab = design_fabric(128, h100, qm9700)
    assert fab.term("bisection bandwidth").value == pytest.approx(204.8e12)
    half = design_fabric(128, h100, qm9700, oversubscription=2.0)
    assert half.term("bisection bandwidth").value == pytest.approx(102.4e12)


def test_partial_su_gets_full_su_fabric(h100, qm9700):
    """RA V11: a partial SU is built with the full SU's leaves and leaf–spine cables."""
    fab = design_fabric(40, h100, qm9700)
    assert fab.sus == 2
    assert fab.count("leaf") == 16
    assert fab.cables["leaf→spine"] == 16 * 32
    assert fab.cables["node→leaf"] == 40 * 8


def test_full_sus_keep_their_su_count_and_warn_about_ufm(h100, qm9700):
    """RA V11 Table 3: 128 nodes = 4 SU and 256 nodes = 8 SU on 2 tiers (64 leaf + 32 spine); UFM does not
    push a full design to one more SU (and 8 SU to 3 tiers). The warning names Table 4's 127-node fix."""
    fab = design_fabric(128, h100, qm9700, ufm_links=4)
    assert fab.sus == 4 and fab.ufm_links == 0
    assert any("127 nodes" in w for w in fab.warnings)
    eight = design_fabric(256, h100, qm9700, ufm_links=4)
    assert (eight.sus, eight.tiers, eight.count("leaf"), eight.count("spine")) == (8, 2, 64, 32)


def test_rail_map(h100, qm9700):
    """RA V11: rail r of every node in an SU lands on leaf r of that SU."""
    fab = design_fabric(64, h100, qm9700)
    assert fab.facts["rail_map"][1]["rail_leaves"]["rail 3"] == "leaf 11"


def test_oversubscription_split():
    """§2.3: leaf down = k·o/(1+o), up = k/(1+o): 32/32 at 1:1, 42/21 at 2:1 for k = 64."""
    assert leaf_split(64, 1.0) == (32, 32)
    assert leaf_split(64, 2.0) == (42, 21)
    assert parse_oversubscription("4:3") == pytest.approx(4 / 3)
    assert parse_oversubscription("2") == 2.0


@pytest.mark.parametrize("bad", ["1:2", "0.5", "0:1", "abc", "1:0", "nan"])
def test_oversubscription_below_one_is_an_error(bad):
    with pytest.raises(SpecError):
        parse_oversubscription(bad)


def test_radix_too_small_for_tier(h100, qm9700):
    """k = 64: 2 tiers reach 64 leaves (8 SU); 16 SU need 128 leaves, so --tiers 2 fails. 1 tier: 65 nodes > 64 ports."""
    with pytest.raises(SpecError, match="too small for 2 tiers"):
        design_fabric(512, h100, qm9700, tiers=2)
    with pytest.raises(SpecError, match="too small for 1 tier"):
        design_fabric(65, h100, qm9700, tiers=1)
    with pytest.raises(SpecError, match="too small even for 3 tiers"):
        design_fabric(40 * 40 * 20 // 8 * 2, h100.model_copy(update={"nic_gbps": 200}), switch("qm8700"), tiers=3)


def test_single_tier_basepod(h100, qm9700):
    """BasePOD NDR400 (2–8 DGX): 8 nodes × 8 rails = 64 ports, one QM9700 holds every rail."""
    fab = design_fabric(8, h100, qm9700, tiers=1)
    assert fab.switches == 1 and fab.cables == {"node→leaf": 64}
    assert design_fabric(16, h100, qm9700, tiers=1).switches == 2


def test_unknown_switch_and_node_suggest():
    with pytest.raises(AiinfraError, match="unknown switch 'qm970'; closest: qm9700"):
        switch("qm970")
    with pytest.raises(AiinfraError, match="unknown node type 'dgx-h10'; closest: dgx-h100"):
        system("dgx-h10")


def test_non_compute_switch_rejected(h100):
    with pytest.raises(SpecError, match="inband switch"):
        design_fabric(8, h100, switch("sn4600c"))


def test_hgx_nics(qm9700):
    """HGX nodes take 2–8 NICs (cluster_tco_anchors.md §1.5); 4 NICs → 4 rails → 4 leaves per SU."""
    hgx = system("hgx-h100").with_nics(4)
    fab = design_fabric(32, hgx, qm9700)
    assert fab.count("leaf") == 4 and fab.node_transceivers == 32 * 4
    with pytest.raises(SpecError):
        system("hgx-h100").with_nics(1)
    with pytest.raises(SpecError, match="fixed"):
        system("dgx-h100").with_nics(4)


def test_awkward_uplink_count_does_not_explode_spines():
    """SN5600 at 400G (k = 128) and 2:1: 85 down / 43 up; 43 is prime, so an even split would need 43
    spines for 4 leaves; the design uses ⌈4 × 43 / 128⌉ = 2 instead."""
    assert spines_for(4, 43, 128) == 2
    assert spines_for(24, 32, 64) == 16  # the RA's 3-SU case still rounds up to an even split

"""Property tests: any request gives a consistent design or one AiinfraError, never a crash."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfra.cluster.design import DesignInput, design_cluster
from aiinfra.cluster.fabric import design_fabric
from aiinfra.cluster.parts import switch, system
from aiinfra.errors import AiinfraError

NODES = ["dgx-h100", "dgx-b200", "dgx-b300", "hgx-h100"]
SWITCHES = ["qm9700", "q3400", "sn5600", "qm8700"]


@settings(max_examples=300, deadline=None)
@given(
    nodes=st.integers(-5, 3000),
    node=st.sampled_from(NODES),
    sw=st.sampled_from(SWITCHES),
    o=st.sampled_from([1.0, 4 / 3, 2.0, 3.0, 0.5]),
    tiers=st.sampled_from([None, 1, 2, 3, 4]),
    rail=st.booleans(),
    ufm=st.sampled_from([0, 4]),
)
def test_fabric_is_consistent_or_an_error(nodes, node, sw, o, tiers, rail, ufm):
    try:
        fab = design_fabric(nodes, system(node), switch(sw), o, rail, tiers, ufm)
    except AiinfraError:
        return
    k = fab.switch.radix(fab.link_gbps)
    for layer in fab.layers:
        assert layer.ports_used <= layer.switches * k  # no switch uses more ports than it has
        assert layer.cages_used <= layer.switches * fab.switch.cages
    assert fab.cables["node→leaf"] == fab.nodes * fab.rails + fab.ufm_links
    assert fab.term("bisection bandwidth").value > 0
    if fab.tiers > 1:
        assert fab.count("leaf") == fab.rails * fab.sus
        assert fab.sus * fab.su_nodes >= fab.nodes  # partial SUs are rounded up, never down


@settings(max_examples=40, deadline=None)
@given(gpus=st.integers(-8, 5000), tier=st.sampled_from(["good", "better", "best"]), params=st.sampled_from([None, 8e9, 405e9]),
       pue=st.sampled_from([None, 1.1, 1.5]), sw=st.sampled_from(SWITCHES))
def test_design_never_crashes(gpus, tier, params, pue, sw):
    try:
        d = design_cluster(DesignInput(gpus=gpus, storage_tier=tier, params=params, pue=pue, fabric=sw))
    except AiinfraError:
        return
    assert d.term("facility power").value >= d.term("IT power").value > 0
    assert d.fabric.gpus >= gpus

"""Racks, IT and facility power, cooling."""

from __future__ import annotations

import pytest

from aiinfra.cluster.design import DesignInput, design_cluster
from aiinfra.cluster.parts import system
from aiinfra.cluster.power import (
    annual_energy,
    cooling_for,
    facility_power,
    nodes_per_rack,
)
from aiinfra.cluster.reference import preset_settings
from aiinfra.errors import SpecError


def test_superpod_compute_power():
    """cluster_tco_anchors.md §4: 127 DGX H100 at 10.2 kW = 1.295 MW IT compute; × PUE 1.3 ≈ 1.68 MW."""
    s = preset_settings("superpod", 4, None, None)
    d = design_cluster(DesignInput(**s))
    compute = d.term("IT power: compute nodes").value
    assert compute == pytest.approx(127 * 10_200) == pytest.approx(1.2954e6)
    assert facility_power(compute, 1.3).value == pytest.approx(1.68e6, rel=0.005)
    # The whole IT load adds fabrics, optics and management on top of the nodes.
    assert d.term("IT power").value > compute
    assert d.term("facility power").value == pytest.approx(d.term("IT power").value * 1.3)


def test_nodes_per_rack():
    """RA V11: 4 DGX H100 per rack, > 40 kW (4 × 10.2 = 40.8 kW); a strict 40 kW budget holds 3;
    DGX B200 (14.3 kW) at the RA's '> 25 kW' racks: 2."""
    assert nodes_per_rack(system("dgx-h100")).value == 4
    assert nodes_per_rack(system("dgx-h100"), 40).value == 3
    assert nodes_per_rack(system("dgx-b200")).value == 2
    with pytest.raises(SpecError, match="rack budget"):
        nodes_per_rack(system("dgx-h100"), 8)


def test_cooling_classes():
    """§4: air ≤ ~30 kW, air with containment up to the RA's 40.8 kW racks, direct liquid to ~120 kW."""
    assert cooling_for(20)[0] == "air"
    assert "containment" in cooling_for(40.8)[0]
    assert cooling_for(60)[0] == "direct liquid cooling"
    assert cooling_for(200)[0].startswith("beyond")


def test_energy_per_year():
    """1 MW for 8,766 h = 8,766 MWh; at a 0.75 load factor (Epoch's average/max) 6,574.5 MWh."""
    assert annual_energy(1e6).value == pytest.approx(8.766e6)
    assert annual_energy(1e6, 0.75).value == pytest.approx(6.5745e6)
    with pytest.raises(SpecError):
        annual_energy(1e6, 0)
    with pytest.raises(SpecError):
        facility_power(1e6, 0.9)

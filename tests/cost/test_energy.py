"""Energy per GPU-hour from node power, load, PUE and $/kWh."""

from __future__ import annotations

import pytest

from aiinfra.cost import prices
from aiinfra.cost.energy import electricity, energy_per_gpu_hour, pue
from aiinfra.errors import AiinfraError


def test_dgx_h100_full_load():
    """DGX H100 at 10.2 kW, PUE 1.3, $0.08/kWh, full load → ≈ $0.133 per GPU-hour.

    Source: cluster_tco_anchors.md §4 (DGX H100 max power 10.2 kW from the DGX H100 user guide;
    the energy arithmetic 0.08 × 10.2 × 1.3 / 8 = 0.1326).
    """
    _, node = prices.lookup("node", "dgx-h100")
    t = energy_per_gpu_hour(node["power_kw"], node["gpus"], 1.0, 1.3, 0.08)
    assert node["power_kw"] == 10.2
    assert t.value == pytest.approx(0.133, abs=0.0005)


def test_presets_and_regions_come_from_the_catalog():
    """Epoch's PUE default for non-hyperscale data centers is 1.25; EIA Iowa industrial April 2025 6.04 c/kWh."""
    assert pue("ai-datacenter").value == 1.25
    assert pue("1.4").value == 1.4
    assert electricity("iowa").value == pytest.approx(0.0604)
    assert electricity(0.1).value == 0.1


@pytest.mark.parametrize("bad", [lambda: pue(0.9), lambda: electricity(-0.01), lambda: pue("arctic"),
                                 lambda: energy_per_gpu_hour(10.2, 8, 1.5, 1.3, 0.08)])
def test_bad_energy_inputs(bad):
    with pytest.raises(AiinfraError):
        bad()

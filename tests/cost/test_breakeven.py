"""Owned cost per GPU-hour, breakeven utilization and months to break even, checked by hand."""

from __future__ import annotations

import math

import pytest

from aiinfra.cost import breakeven as be
from aiinfra.cost import cloud
from aiinfra.cost.onprem import OnPremInputs, onprem_cost
from aiinfra.cost.tco import TcoInputs, tco
from aiinfra.errors import AiinfraError


def _one_node(u: float = 0.5) -> OnPremInputs:
    return OnPremInputs(gpus=8, node="dgx-h100", node_price=200_000, utilization=u, years=4, rate=0.0,
                        pue=1.0, electricity=0.10, load=1.0, colo_usd_per_kw_month=100, support_fraction=0.10,
                        staff_usd_per_fte_year=0)


def test_breakeven_hand_computed():
    """One DGX H100 (price set to $200,000) against AWS p5 on-demand ($6.88/GPU-h), by hand:

    capex = 200,000 node + 50,000 QM9700 (one leaf, no spine: 8 links ≤ 64) + 10,560 cables = 260,560
    r = 0, L = 4 → annualised 65,140 $/year
    fixed opex = colo 100 $/kW-month × 10.2 kW × 12 = 12,240 + support 10 % × 200,000 = 20,000 → 32,240
    F = (65,140 + 32,240) / (8 × 8760) = 1.389555 $/GPU-h;  e = 0.10 × 10.2 × 1.0 × 1.0 / 8 = 0.1275
    u* = F / (p − e) = 1.389555 / (6.88 − 0.1275) = 0.205784
    at u = 0.5: owned running = 32,240 / 12 + 0.1275 × 8 × 730 × 0.5 = 3,058.967 $/month,
    cloud = 6.88 × 8 × 730 × 0.5 = 20,089.6 $/month → months = 260,560 / 17,030.633 = 15.2994
    """
    own = onprem_cost(_one_node())
    assert own.capex.value == pytest.approx(260_560)
    assert own.fixed_per_gpu_hour.value == pytest.approx(1.389555, abs=1e-6)
    assert own.energy.value == pytest.approx(0.1275)
    price = cloud.gpu_hour_price(cloud.offer("aws-p5"))
    u_star = be.breakeven_utilization(own.fixed_per_gpu_hour, own.energy, price)
    assert u_star.value == pytest.approx(0.205784, abs=1e-6)
    report = tco(TcoInputs(_one_node(), clouds=["aws-p5"]))
    assert report.comparisons[0].breakeven_months.value == pytest.approx(15.2994, abs=1e-3)
    # At u*, owning and renting cost the same per busy GPU-hour.
    at = onprem_cost(_one_node(u_star.value))
    assert at.per_gpu_hour.value == pytest.approx(price.value)


def test_never_breaks_even_when_cloud_is_cheaper_than_energy():
    own = onprem_cost(_one_node())
    cheap = cloud.gpu_hour_price(cloud.offer("aws-p5"))
    cheap.value = 0.1  # below the 0.1275 energy cost
    assert math.isinf(be.breakeven_utilization(own.fixed_per_gpu_hour, own.energy, cheap).value)


@pytest.mark.parametrize("u", [0.0, -0.2, 1.01])
def test_utilization_outside_unit_interval(u):
    with pytest.raises(AiinfraError, match=r"utilization must be in \(0, 1\]"):
        onprem_cost(_one_node(u))


def test_owned_facility_and_spares_add_to_fixed_opex():
    """Owning the building instead of colo: $16.125M/MW × 0.0102 MW annualised over 15 years (r = 0)."""
    i = _one_node()
    i.facility = "owned"
    i.spares_fraction = 0.02
    own = onprem_cost(i)
    names = {p.name: p.value for p in own.fixed_opex.parts}
    assert names["facility (owned)"] == pytest.approx(16_125_000 * 0.0102 / 15)
    assert names["spares"] == pytest.approx(0.02 * 260_560)

"""Capital recovery factor, annualised CapEx, and BOM costing."""

from __future__ import annotations

import pytest

from aiinfra.cost import capex as cx
from aiinfra.errors import AiinfraError


def test_crf_8_percent_5_years():
    """CRF = r(1+r)^L / ((1+r)^L − 1) with r = 8 %, L = 5 → 0.2505 (standard annuity tables:
    the capital recovery factor (A/P, 8 %, 5) = 0.25046)."""
    assert cx.crf(0.08, 5).value == pytest.approx(0.2505, abs=5e-5)


def test_crf_zero_rate_is_straight_line():
    assert cx.crf(0.0, 4).value == 0.25


def test_annualised_with_residual():
    """$1M over 5 years at 8 % with 30 % resale: (1e6 − 0.3e6 × 1.08^−5) × CRF, hand-computed:
    1.08^5 = 1.469328; 0.3e6 / 1.469328 = 204,174.96; (1e6 − 204,174.96) × 0.250456 = 199,319.6."""
    t = cx.annualised(cx.bom_capex([cx.LineItem("x", "dgx-h100", 1, 0, "", 1e6)])[0], 0.08, 5, 0.3)
    assert t.value == pytest.approx(199_319.6, abs=1.0)


def test_per_node_fabric_matches_superpod_tables():
    """Per-node estimate of the 2-tier non-blocking fabric (radix 64, 8 links per DGX):
    32 nodes → 8 leaf + 4 spine; 128 nodes → 32 leaf + 16 spine. Source: DGX SuperPOD H100 RA
    (RA-11333-001 V11) Table 3 rows for 4 SU and Table 4 for 1 SU, via cluster_tco_anchors.md §1.2."""
    for nodes, switches in ((32, 12), (128, 48)):
        items = cx.per_node_items("dgx-h100", nodes)
        fabric = next(i for i in items if i.item == "qm9700")
        assert fabric.quantity == switches


def test_bom_capex_accepts_designer_line_items():
    """Line items as dicts (the cluster designer's shape): price × quantity from the catalog."""
    capex, power = cx.bom_capex([
        {"category": "compute", "item": "DGX H100", "quantity": 2, "unit_power_w": 10200, "reason": "2 nodes"},
        {"category": "fabric", "item": "qm9700", "quantity": 1, "unit_power_w": 0, "reason": "leaf"},
    ])
    assert capex.value == 2 * 270_000 + 50_000
    assert power.value == 20_400
    assert {p.name for p in capex.parts} == {"compute", "fabric"}


@pytest.mark.parametrize("items,msg", [
    ([], "empty"),
    ([{"item": "dgx-h100", "quantity": -1}], "negative quantity"),
    ([{"item": "dgx-h100", "quantity": 1, "unit_price": -5}], "negative price"),
    ([{"item": "warp-drive", "quantity": 1}], "unknown priced item 'warp-drive'"),
])
def test_bad_bom(items, msg):
    with pytest.raises(AiinfraError, match=msg):
        cx.bom_capex(items)


def test_bad_capital_inputs():
    with pytest.raises(AiinfraError):
        cx.crf(0.08, 0)
    with pytest.raises(AiinfraError):
        cx.crf(-0.1, 5)


def test_absurd_life_is_one_line_error(cli):
    """A horizon of 66,688 years overflowed the annuity formula into a traceback (found by the web fuzz)."""
    from tests.conftest import assert_one_line_error

    assert_one_line_error(cli("tco", "--gpus", "64", "--years", "66688"), "years must be at most 50, got 66688")

"""CapEx from the cluster designer's BOM (`aiinfra.cluster.design`) priced by the cost catalog."""

from __future__ import annotations

import pytest

from aiinfra.cost.design_bom import design_bom, unpriced_warning
from tests.conftest import assert_one_line_error


def test_design_bom_prices_nodes_switches_and_cabling():
    """256 GPUs on DGX H100 with a QM9700 fabric: the designer's 32 nodes, its compute and storage
    switches, and its optics folded into cabling per node (one line per node)."""
    b = design_bom(256, "dgx-h100")
    by_item: dict[str, float] = {}
    for li in b.items:
        by_item[li.item] = by_item.get(li.item, 0) + li.quantity
    assert by_item["dgx-h100"] == 32
    assert by_item["qm9700"] >= 12  # at least the 1-SU leaf + spine count
    assert by_item["ib-cables-per-node"] == 32
    assert b.optics_lines > 0
    # Management parts have no dated price: they stay at $0 (their power counts) and are named.
    assert {li.item for li in b.unpriced} >= {"sn4600c", "sn2201"}
    assert "sn4600c" in unpriced_warning(b)


def test_cli_design_uses_designer_bom(cli):
    r = cli("tco", "--gpus", "256", "--design", "--cloud", "aws-p5", "--format", "json")
    assert r.code == 0, r.err
    own = r.json()
    assert own["facts"]["capex_source"].startswith("cluster designer BOM")
    assert own["facts"]["nodes"] == 32
    assert any("not in CapEx" in w and "sn4600c" in w for w in own["warnings"])


def test_user_price_for_a_design_part_enters_capex(cli, tmp_path):
    """Adding a dated price for the in-band switch puts it into CapEx and out of the warning."""
    base = cli("tco", "--gpus", "256", "--design", "--cloud", "aws-p5", "--format", "json", "--explain").json()
    f = tmp_path / "mine.yaml"
    f.write_text("kind: prices\nentries:\n  sn4600c: {type: switch, price: 20000, observed: 2026-11-01, source: my quote}\n")
    r = cli("--catalog", str(f), "tco", "--gpus", "256", "--design", "--cloud", "aws-p5", "--format", "json", "--explain")
    mine = r.json()
    capex = {t["name"]: t["value"] for t in mine["explain"]}["capex"]
    base_capex = {t["name"]: t["value"] for t in base["explain"]}["capex"]
    assert capex - base_capex == pytest.approx(2 * 20000)
    assert not any("sn4600c" in w for w in mine["warnings"])


def test_design_and_bom_together_is_an_error(cli, tmp_path):
    f = tmp_path / "b.yaml"
    f.write_text("- {item: dgx-h100, quantity: 1, unit_power_w: 10200}\n")
    assert_one_line_error(cli("tco", "--gpus", "8", "--design", "--bom", str(f)), "not both")
    assert_one_line_error(cli("tco", "--gpus", "8", "--preset", "superpod"), "need --design")

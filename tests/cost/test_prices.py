"""The dated price catalog: every entry dated and sourced, stale prices warned with their date."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from aiinfra.catalog.loader import set_user_catalogs
from aiinfra.cost import prices
from aiinfra.cost.onprem import OnPremInputs
from aiinfra.cost.tco import TcoInputs, tco
from aiinfra.errors import AiinfraError

REQUIRED_CLOUD = {"p4d.24xlarge", "p4de.24xlarge", "p5.48xlarge", "p5en.48xlarge", "p6-b200.48xlarge",
                  "a3-highgpu-8g", "a3-megagpu-8g", "a3-ultragpu-8g", "Standard_ND96isr_H100_v5"}


def test_every_entry_is_dated_and_sourced():
    table = prices.table()
    assert len(table) > 40
    for key, e in table.items():
        assert isinstance(prices.observed_of(key, e), date), key
        assert e["source"], key
        assert e.get("type"), key


def test_catalog_covers_the_issue_list():
    instances = {e["instance"] for e in prices.of_type("cloud").values()}
    assert REQUIRED_CLOUD <= instances
    gpu_clouds = {e["provider"] for e in prices.of_type("cloud").values()} - {"aws", "gcp", "azure"}
    assert len(gpu_clouds) >= 4
    for t in ("node", "switch", "optics", "storage", "support", "colo", "electricity", "pue", "staff",
              "depreciation", "residual", "capital", "egress", "facility"):
        assert prices.of_type(t), t
    for e in prices.of_type("cloud").values():
        assert e["form_factor"] in ("sxm", "pcie", "nvl") and e["fabric"] in ("ib", "efa", "ethernet", "none", "unknown")


def test_stale_warning_names_the_date():
    """DGX H100 ~$270k is a SemiAnalysis estimate from May 2023: more than 6 months before 2026-11-22."""
    key, e = prices.lookup("node", "dgx-h100")
    w = prices.age_warning(key, e)
    assert "2023-05-31" in w and "dgx-h100" in w
    key, e = prices.lookup("cloud", "aws-p5")
    assert prices.age_warning(key, e) is None  # observed 2026-11-09


def test_tco_warns_only_for_stale_prices_it_used(tmp_path):
    fresh = tmp_path / "fresh.yaml"
    fresh.write_text("kind: prices\nentries:\n  dgx-h100: {observed: 2026-11-01, source: 'my quote', price: 280000}\n")
    report = tco(TcoInputs(OnPremInputs(gpus=8), clouds=["aws-p5"]))
    warns = " ".join(report.results[0].warnings)
    assert "dgx-h100" in warns and "2023-05-31" in warns
    assert "aws-p5'" not in warns
    set_user_catalogs([fresh])
    report = tco(TcoInputs(OnPremInputs(gpus=8), clouds=["aws-p5"]))
    assert "dgx-h100" not in " ".join(report.results[0].warnings)
    assert report.own.capex.parts[0].value == 280000


def test_negative_catalog_price_is_rejected(tmp_path):
    f = tmp_path / "neg.yaml"
    f.write_text("kind: prices\nentries:\n  aws-p5: {on_demand: -3, observed: 2026-11-20, source: x}\n")
    set_user_catalogs([f])
    with pytest.raises(AiinfraError, match="'aws-p5' field 'on_demand' (is negative|must be a number >= 0)"):
        prices.table()


def test_undated_user_price_is_rejected(tmp_path):
    f = tmp_path / "nodate.yaml"
    f.write_text("prices:\n  my-gpu-cloud: {type: cloud, on_demand: 2, gpus: 8, source: x}\n")
    set_user_catalogs([f])
    with pytest.raises(AiinfraError, match="no 'observed:' date"):
        prices.table()


@pytest.mark.parametrize("text,days", [("6m", 183), ("90d", 90), ("2w", 14), ("1y", 365)])
def test_parse_age(text, days):
    assert prices.parse_age(text) == timedelta(days=days)


def test_parse_age_rejects_nonsense():
    with pytest.raises(AiinfraError, match="not understood"):
        prices.parse_age("six months")


def test_rows_filtered_by_age():
    old = prices.rows(prices.parse_age("6m"))
    assert old and all(r["age_days"] > 183 for r in old)
    assert {r["key"] for r in old} < {r["key"] for r in prices.rows()}

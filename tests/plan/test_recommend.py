"""Hardware recommendation: every catalog GPU ranked by time and by cost."""

from __future__ import annotations

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.plan.recommend import (
    catalog_prices,
    recommend_inference,
    recommend_training,
)


def test_catalog_prices_are_per_gpu_hour_with_their_offer_and_date():
    """prices.yaml stores instance-hours for hyperscalers (p5.48xlarge $55.04 = 8 GPUs) and GPU-hours for
    neoclouds; the recommendation divides by the GPU count and names the offer and its date."""
    p = catalog_prices(need_fabric=True)
    usd, src = p["h100-sxm"]
    assert 1.0 < usd < 6.88 + 1e-9  # never above AWS's $55.04 / 8 on-demand
    assert "observed" in src


def test_training_ranking_by_time_and_cost():
    rows, notes = recommend_training(model("llama-3.1-8b"), 64, global_batch=512, seq=8192, tokens=1e12,
                                     candidates=[gpu("h100-sxm"), gpu("a100-80gb-sxm"), gpu("l4")])
    fits = [r for r in rows if r["fits"]]
    assert [r["rank_time"] for r in fits] == list(range(1, len(fits) + 1))
    assert fits[0]["gpu"] == "h100-sxm"
    assert all(r.get("rank_cost") for r in fits if r["cost_usd"] is not None)
    assert any(n.startswith("cheapest for the budget") for n in notes)


def test_inference_ranking_uses_given_prices_over_catalog():
    rows, notes = recommend_inference(model("llama-3.1-8b"), prompt=2048, output=256, batch=32,
                                      prices={"l40s": 0.4}, candidates=[gpu("h100-sxm"), gpu("l40s")])
    assert rows[0]["gpu"] == "l40s" and rows[0]["price_source"] == "given with --price"
    assert any("PCIe inference cards are the better buy" in n for n in notes)


def test_tp_over_nvlink_is_flagged():
    rows, _ = recommend_inference(model("llama-3.1-70b"), prompt=2048, output=256, batch=16,
                                  candidates=[gpu("h100-sxm")])
    assert rows[0]["tp"] > 1 and rows[0]["nvlink"].startswith("yes")

"""Hardware recommendation: every catalog GPU ranked by time and by cost, with prices from one lookup."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.catalog.prices import gpu_hour_price
from aiinfra.plan.recommend import (
    inference_recommendation,
    price_assumptions,
    recommend_inference,
    recommend_training,
)


def test_catalog_price_is_per_gpu_hour_with_its_offer_and_date():
    """prices.yaml stores instance-hours for hyperscalers (p6-b200.48xlarge $113.9328 = 8 GPUs) and GPU-hours for
    neoclouds; the lookup divides by the GPU count and names the offer and its date."""
    p = gpu_hour_price("b200")
    assert p.usd_per_gpu_hour == pytest.approx(113.9328 / 8) and p.offer == "aws-p6-b200"
    assert "observed 2026-11-09" in p.source


def test_one_price_per_gpu_in_plan_infer_and_tco(cli):
    """The B200 cost $6.69/GPU-h in plan and $14.24 in tco; now all three read the same lookup."""
    expected = gpu_hour_price("b200").usd_per_gpu_hour
    rows, _ = recommend_training(model("llama-3.1-8b"), 64, global_batch=512, seq=8192, tokens=1e11,
                                 candidates=[gpu("b200")], catalog_prices=True)
    assert rows[0]["usd_per_gpu_hour"] == pytest.approx(expected)
    rows, _ = recommend_inference(model("llama-3.1-8b"), prompt=2048, output=256, batch=8,
                                  candidates=[gpu("b200")], catalog_prices=True)
    assert rows[0]["usd_per_gpu_hour"] == pytest.approx(expected)
    r = cli("tco", "--gpus", "16", "--gpu", "b200", "--format", "json")
    assert r.json()["facts"]["offers"][0]["usd_per_gpu_hour"] == pytest.approx(expected, abs=1e-4)


def test_without_catalog_prices_only_given_prices_rank_by_cost():
    rows, notes = recommend_inference(model("llama-3.1-8b"), prompt=2048, output=256, batch=32,
                                      prices={"l40s": 0.4}, candidates=[gpu("h100-sxm"), gpu("l40s")])
    assert rows[0]["gpu"] == "l40s" and rows[0]["price_source"] == "given with --price"
    assert "usd_per_gpu_hour" not in rows[1]  # h100 has a catalog price but was not asked for
    assert "among priced GPUs only" in notes[0] and "h100-sxm" in notes[0]
    assert any("PCIe inference cards are the better buy" in n for n in notes)
    assert price_assumptions(rows) == ["price of l40s: $0.4/GPU-h, given with --price"]


def test_training_ranking_by_time_and_cost():
    rows, notes = recommend_training(model("llama-3.1-8b"), 64, global_batch=512, seq=8192, tokens=1e12,
                                     candidates=[gpu("h100-sxm"), gpu("a100-80gb-sxm"), gpu("l4")],
                                     catalog_prices=True)
    fits = [r for r in rows if r["fits"]]
    assert [r["rank_time"] for r in fits] == list(range(1, len(fits) + 1))
    assert fits[0]["gpu"] == "h100-sxm"
    assert all(r.get("rank_cost") for r in fits if r["cost_usd"] is not None)
    assert any(n.startswith("cheapest for the budget among priced GPUs") for n in notes)


def test_tp_over_nvlink_is_flagged():
    rows, _ = recommend_inference(model("llama-3.1-70b"), prompt=2048, output=256, batch=16,
                                  candidates=[gpu("h100-sxm")])
    assert rows[0]["tp"] > 1 and rows[0]["nvlink"].startswith("yes")


_INFER_GPUS = ["h100-sxm", "l40s", "a100-80gb-sxm", "l4", "b200"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(_INFER_GPUS), st.floats(0.05, 50), max_size=5), st.integers(1, 64))
def test_property_infer_recommend_names_the_cheapest_priced_gpu_or_the_fastest(prices, batch):
    """The GPU named best is the cheapest per 1M tokens among priced GPUs; with no price, the fastest."""
    r = inference_recommendation(model("llama-3.1-8b"), prompt=1024, output=128, batch=batch, prices=prices,
                                 candidates=[gpu(g) for g in _INFER_GPUS])
    ok = [row for row in r.facts["ranking"] if row["fits"]]
    priced = [row for row in ok if "usd_per_1m" in row]
    if priced:
        best = min(priced, key=lambda row: row["usd_per_1m"])
        assert r.facts["best_gpu"] == best["gpu"] and r.warnings[0].startswith(f"best by cost per 1M tokens: {best['gpu']} at ")
        assert "among priced GPUs only" in r.warnings[0]
        assert all(f"price of {g}:" in " ".join(r.assumptions) for g in prices if any(x["gpu"] == g for x in ok))
    else:
        fastest = max(ok, key=lambda row: row["tokens_per_s_gpu"])
        assert r.facts["best_gpu"] == fastest["gpu"] and "no GPU has a price" in r.warnings[0]


@settings(max_examples=6, deadline=None)
@given(st.dictionaries(st.sampled_from(["h100-sxm", "a100-80gb-sxm", "b200"]), st.floats(0.5, 20), max_size=3))
def test_property_plan_recommend_names_the_cheapest_priced_gpu_and_the_fastest(prices):
    rows, notes = recommend_training(model("llama-3.1-8b"), 64, global_batch=256, seq=4096, tokens=1e10,
                                     prices=prices, candidates=[gpu(g) for g in ("h100-sxm", "a100-80gb-sxm", "b200")])
    ok = [r for r in rows if r["fits"]]
    assert notes[0].startswith(f"fastest: {max(ok, key=lambda r: r['tokens_per_s'])['gpu']} ")
    priced = [r for r in ok if r.get("cost_usd") is not None]
    if priced:
        cheapest = min(priced, key=lambda r: r["cost_usd"])
        assert notes[1].startswith(f"cheapest for the budget among priced GPUs: {cheapest['gpu']} ")
        assert {r["gpu"] for r in priced} == set(prices)  # nothing priced that the user did not price
    else:
        assert "no GPU has a price" in notes[1]


def test_recommend_two_pass_keeps_the_full_search_answer_for_the_leaders(monkeypatch):
    """The coarse pass is a subset of the full space: every coarse row is a lower bound on that GPU's full search,
    and the GPUs given the full search (the fastest, the cheapest) report exactly the full search's answer."""
    from aiinfra.plan import recommend as rec
    from aiinfra.plan.search import plan

    monkeypatch.setattr(rec, "REFINE", 1)
    pool = [gpu(k) for k in ("h100-sxm", "a100-80gb-sxm", "l40s", "h200-sxm")]
    rows, notes = rec.recommend_training(model("llama-3.1-8b"), 32, global_batch=256, seq=4096, tokens=1e10,
                                         prices={"a100-80gb-sxm": 1.2}, candidates=pool)
    by = {r["gpu"]: r for r in rows}
    full = {g.key: plan(model("llama-3.1-8b"), g, 32, global_batch=256, seq=4096, top=1).top[0]["tokens_per_s"]
            for g in pool}
    assert max(full, key=full.get) == rows[0]["gpu"] and by[rows[0]["gpu"]]["search"] == "full"
    assert by["a100-80gb-sxm"]["search"] == "full"  # the only priced GPU is refined for cost
    for k, r in by.items():
        assert r["tokens_per_s"] <= full[k] * (1 + 1e-9)
        if r["search"] == "full":
            assert r["tokens_per_s"] == pytest.approx(full[k])
    assert any("coarse pass" in n for n in notes)

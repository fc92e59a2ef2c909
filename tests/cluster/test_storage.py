"""Storage tiers, checkpoints and data loading against the RA and published failure data."""

from __future__ import annotations

import pytest

from aiinfra.cluster.parts import storage_tier, system
from aiinfra.cluster.storage import job_mtbf, plan_storage, tier_bandwidth, young_daly
from aiinfra.errors import AiinfraError, SpecError

GB, TB = 1e9, 1e12


def test_best_tier_four_su():
    """DGX SuperPOD H100 RA V11 Table 6, 'Best': 4 SU aggregate ≥ 500 GB/s read and 250 GB/s write;
    per node 40 GB/s read and 20 GB/s write."""
    terms = {t.name: t.value for t in tier_bandwidth(storage_tier("best"), nodes=127, sus=4)}
    assert terms["storage read aggregate"] >= 500 * GB
    assert terms["storage write aggregate"] >= 250 * GB
    assert terms["storage read per node"] == 40 * GB
    assert terms["storage write per node"] == 20 * GB


@pytest.mark.parametrize("tier, read, write", [("good", 15, 7), ("better", 40, 20), ("best", 125, 62)])
def test_single_su_rows(tier, read, write):
    """RA V11 Table 6, single-SU aggregate rows: Good 15/7, Better 40/20, Best 125/62 GB/s."""
    terms = {t.name: t.value for t in tier_bandwidth(storage_tier(tier), nodes=31, sus=1)}
    assert terms["storage read aggregate"] == read * GB
    assert terms["storage write aggregate"] == write * GB


def test_small_cluster_capped_by_nodes():
    """Two nodes cannot read more than 2 × the per-node figure (Best: 2 × 40 = 80 < 125 GB/s)."""
    terms = {t.name: t.value for t in tier_bandwidth(storage_tier("best"), nodes=2, sus=1)}
    assert terms["storage read aggregate"] == 80 * GB


def test_young_daly_18_minutes():
    """cluster_tco_anchors.md §3.3 (Young 1974 / Daly 2006): δ = 60 s, MTBF = 2.8 h → τ = √(2·60·10,080) ≈ 18 min."""
    tau = young_daly(60, 2.8 * 3600)
    assert tau.value / 60 == pytest.approx(18.3, abs=0.1)


def test_job_mtbf_llama3():
    """Llama 3 (Meta 2024): 466 interruptions in 54 days on 16,384 H100 → job MTBF ≈ 2.8 h."""
    assert job_mtbf(16384).value / 3600 == pytest.approx(2.78, abs=0.05)
    assert job_mtbf(8192).value == pytest.approx(2 * job_mtbf(16384).value)


def test_checkpoint_70b_and_stall():
    """§3.3: 70B × 14 B/param = 0.98 TB; at the Best 4-SU write (250 GB/s) δ = 3.92 s; stall = δ/τ."""
    plan = plan_storage("best", system("dgx-h100"), 127, 4, params=70e9)
    assert plan.term("checkpoint size").value == pytest.approx(0.98 * TB)
    delta = plan.term("checkpoint write time").value
    assert delta == pytest.approx(0.98e12 / 250e9)
    tau = plan.term("checkpoint interval (Young/Daly)").value
    assert plan.term("training stalled by checkpoints").value == pytest.approx(delta / tau)


def test_capacity_formula():
    """Capacity = datasets × copies + checkpoints kept × size, provisioned with 20 % free space."""
    plan = plan_storage("better", system("dgx-h100"), 32, 1, params=8e9, dataset_bytes=10 * TB, copies=4, checkpoints_kept=3)
    used = 10 * TB * 4 + 3 * 8e9 * 14
    assert plan.term("storage capacity used").value == pytest.approx(used)
    assert plan.term("storage capacity to provision").value == pytest.approx(used / 0.8)


def test_data_loading_fed_and_remedies():
    """Demand = samples/s × bytes × 8 GPUs; Good (4 GB/s per node) cannot feed 8 × 1,000 × 1 MB = 8 GB/s,
    Better (8 GB/s per node) can; a 20 TB dataset fits the 30.72 TB local NVMe cache."""
    fed = plan_storage("better", system("dgx-h100"), 32, 1, samples_per_s_per_gpu=100, bytes_per_sample=1e6)
    assert fed.facts["data_loading"]["fed"]
    short = plan_storage("good", system("dgx-h100"), 4, 1, dataset_bytes=20 * TB, gds=False,
                         samples_per_s_per_gpu=1000, bytes_per_sample=1e6)
    loading = short.facts["data_loading"]
    assert not loading["fed"] and not loading["per_node_ok"]
    text = " ".join(loading["remedies"])
    assert "'better' tier" in text and "local NVMe" in text and "GPUDirect Storage" in text
    assert short.warnings


def test_storage_bad_input():
    with pytest.raises(SpecError):
        young_daly(0, 100)
    with pytest.raises(SpecError):
        job_mtbf(0)
    with pytest.raises(SpecError):
        plan_storage("best", system("dgx-h100"), 8, 1, samples_per_s_per_gpu=10)
    with pytest.raises(AiinfraError, match="unknown storage tier 'bset'; closest: best"):
        storage_tier("bset")


def test_a_storage_tier_with_a_negative_rate_is_refused(cli, tmp_path):
    """A tier given through --catalog with a negative read rate used to design storage from it without a word; every
    rate of a tier must be > 0 GB/s, and a bad one is refused in one line naming the field."""
    from tests.conftest import assert_one_line_error

    mine = tmp_path / "tier.yaml"
    mine.write_text("storage_tiers:\n  good: {node_read_gbs: -4}\n")
    assert_one_line_error(cli("--catalog", str(mine), "design", "--gpus", "1024", "--storage-tier", "good",
                              "--format", "json"), "storage_tier 'good'", "node_read_gbs")

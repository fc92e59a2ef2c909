"""Analysis building blocks that need no server: catalog lookups, MIG shares, prices, query text."""

from __future__ import annotations

import pytest
import yaml

from aiinfra.catalog.loader import set_user_catalogs
from aiinfra.errors import AiinfraError
from aiinfra.fleet.analysis import Q, AnalysisOptions, Discovery, mig_share, price_per_gpu_hour, sku_for_model_name
from aiinfra.fleet.promql import ALIASES, alt, bit


@pytest.mark.parametrize("name,key", [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"),   # NVML's name for the SXM part (§3.2)
    ("NVIDIA H100 SXM5 80GB", "h100-sxm"),   # the catalog's own name, as the simulator prints it
    ("NVIDIA L40S", "l40s"),
    ("NVIDIA H200", "h200-sxm"),
])
def test_model_names_map_to_catalog_gpus(name, key):
    assert sku_for_model_name(name) == key


def test_unknown_model_name_is_none():
    assert sku_for_model_name("Voodoo3 3000") is None


def test_mig_share_is_profile_slices_over_sku_slices():
    """A 3g instance holds 3 of the 7 compute slices of an H100 (MIG user guide, H100 profiles)."""
    assert mig_share("3g.40gb", "NVIDIA H100 80GB HBM3") == pytest.approx(3 / 7)
    assert mig_share("7g.80gb", "NVIDIA H100 80GB HBM3") == 1.0
    assert mig_share("", "NVIDIA H100 80GB HBM3") == 1.0


def test_price_is_the_median_cloud_offer_per_gpu_hour(tmp_path):
    """prices.yaml (branch cost) lists $/instance-hour for 8-GPU instances unless `unit: gpu-hour`."""
    f = tmp_path / "prices.yaml"
    f.write_text(yaml.safe_dump({"kind": "prices", "observed": "2026-11-01", "source": "test sheet", "entries": {
        "cloud-a": {"type": "cloud", "gpu": "test-gpu", "gpus": 8, "on_demand": 55.04},          # 6.88 / GPU-h
        "cloud-b": {"type": "cloud", "gpu": "test-gpu", "gpus": 8, "on_demand": 3.99, "unit": "gpu-hour"},
        "cloud-c": {"type": "cloud", "gpu": "test-gpu", "gpus": 8, "on_demand": 98.32},          # 12.29 / GPU-h
        "node-x": {"type": "node", "gpu": "test-gpu", "price": 300000}}}))
    set_user_catalogs([f])
    try:
        price, src = price_per_gpu_hour("test-gpu")  # a key no shipped offer uses, so only these three count
        assert price == pytest.approx(55.04 / 8)
        assert "cloud-a" in src and "median of 3" in src and "3.99–12.29" in src
        assert price_per_gpu_hour("l40s") is None
    finally:
        set_user_catalogs([])


def test_options_reject_nonsense():
    with pytest.raises(AiinfraError):
        AnalysisOptions(idle_ratio=0)
    with pytest.raises(AiinfraError):
        AnalysisOptions(price_per_gpu_hour=-1)
    assert AnalysisOptions(range_s=86400).step_s == 120
    assert AnalysisOptions(range_s=10).step_s == 1


def test_queries_name_only_present_spellings_and_rename_pod_labels():
    d = Discovery(present={"DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_GPU_UTIL"}, pod_source="exported_pod")
    q = Q(d, AnalysisOptions(range_s=3600))
    e = q.busy(lambda s, f: f"avg_over_time({s}[1h])")
    assert "DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO" not in e and "dcgm_gpu_utilization" not in e
    assert '"pod", "$1", "exported_pod", "(.*)"' in e
    assert '"host", "$1", "hostname", "(.+)"' in e and '"host", "$1", "Hostname", "(.+)"' in e
    assert e.index("GR_ENGINE") < e.index("GPU_UTIL")  # PROF first: it exists on MIG instances


def test_alias_scaling_to_si():
    """Legacy FB fields are MiB (§5.3), GPU_UTIL is percent (§5.1): factors 2^20 and 1/100."""
    assert dict(ALIASES["fb_used"])["DCGM_FI_DEV_FB_USED"] == 1048576
    assert dict(ALIASES["gpu_util"])["DCGM_FI_DEV_GPU_UTIL"] == 0.01
    assert dict(ALIASES["fb_used"])["DCGM_FI_DEV_FB_USED_BYTES"] == 1
    assert "* 1048576" in alt("fb_used")


def test_bit_extraction():
    assert bit("x", 64) == "(floor((x) / 64) % 2)"


def test_tagged_activity_keeps_prof_where_both_exist():
    """The `activity` tag differs per side, so a plain `or` would return a GPU twice (PROF and
    GPU_UTIL rows); `or ignoring (activity)` keeps PROF and falls back to GPU_UTIL per entity."""
    d = Discovery(present={"DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_GPU_UTIL"}, pod_source="pod")
    e = Q(d, AnalysisOptions(range_s=3600)).busy(lambda s, f: s, tag=True)
    assert ") or ignoring (activity) (" in e and e.index("PROF_GR_ENGINE") < e.index("GPU_UTIL")

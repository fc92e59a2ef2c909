"""Cloud prices per instance-hour and per GPU-hour, at each pricing term."""

from __future__ import annotations

import pytest

from aiinfra.cost import cloud
from aiinfra.errors import AiinfraError, NotFoundError


def test_p5_on_demand_per_gpu_hour():
    """AWS p5.48xlarge on-demand $55.04/h for 8 × H100 → $6.88 per GPU-hour.

    Source: SkyPilot catalog v8 catalogs/v8/aws/vms.csv @ 00148f2af367, us-east-1
    (cluster_tco_anchors.md §5.1).
    """
    o = cloud.offer("p5.48xlarge")
    assert o.key == "aws-p5"
    assert cloud.instance_hour_price(o, "on-demand").value == pytest.approx(55.04)
    assert cloud.gpu_hour_price(o, "on-demand").value == pytest.approx(6.88, abs=1e-9)


def test_gcp_a3_high_three_year_cud():
    """GCP a3-highgpu-8g 3-year CUD $28,371/month at 730 h/month over 8 GPUs ≈ $4.86 per GPU-hour.

    Source: Cyclenerd/google-cloud-pricing-cost-calculator pricing.yml @ fd66b26 (2026-07-30),
    as tabulated in cluster_tco_anchors.md §5.2 ("→ $7.67 and $4.86 /GPU-h").
    """
    o = cloud.offer("a3-highgpu-8g")
    assert cloud.gpu_hour_price(o, "3y").value == pytest.approx(4.86, abs=0.005)
    assert cloud.gpu_hour_price(o, "1y").value == pytest.approx(7.67, abs=0.005)
    # The CUD is about 56% off on-demand ($11.06/GPU-h), as the source states.
    od = cloud.gpu_hour_price(o, "on-demand").value
    assert od == pytest.approx(11.06, abs=0.005)
    assert 1 - cloud.gpu_hour_price(o, "3y").value / od == pytest.approx(0.561, abs=0.002)


def test_commitment_falls_back_to_dated_provider_discount():
    """AWS has no own 3-year price in the catalog: on-demand × (1 − 0.64), Epoch's AWS 3-year CUD estimate."""
    t = cloud.instance_hour_price(cloud.offer("aws-p5"), "3y")
    assert t.value == pytest.approx(55.04 * (1 - 0.64))
    assert any("aws-commit-discounts" in s for s in t.sources.values())


def test_per_gpu_priced_offer_scales_to_instance():
    """Lambda lists $3.99 per GPU-hour for 8 × H100 SXM: the instance is 8 × 3.99."""
    o = cloud.offer("lambda-h100-8x")
    assert cloud.instance_hour_price(o, "on-demand").value == pytest.approx(31.92)
    assert cloud.gpu_hour_price(o, "on-demand").value == pytest.approx(3.99)


def test_missing_spot_price_is_an_error_listing_terms():
    with pytest.raises(AiinfraError, match="no spot price"):
        cloud.instance_hour_price(cloud.offer("azure-nd-h100-v5"), "spot")


def test_unknown_instance_suggests_close_names():
    with pytest.raises(NotFoundError, match=r"unknown instance 'p5\.48xl'; closest: .*p5\.48xlarge"):
        cloud.offer("p5.48xl")


def test_like_for_like_flags_fabric_and_form_factor():
    """An SXM + IB cluster is not the same product as PCIe without a fabric, nor as Ethernet-only."""
    assert cloud.like_for_like(cloud.offer("aws-p5"), "sxm", "ib") is None
    w = cloud.like_for_like(cloud.offer("azure-nc40ads-h100-v5"), "sxm", "ib")
    assert "pcie" in w and "fabric 'none'" in w
    assert "ethernet" in cloud.like_for_like(cloud.offer("gcp-a3-high"), "sxm", "ib")


def test_cloud_cost_with_egress():
    """1,000 GPU-hours at $6.88 plus 2 TB egress at $0.09/GB = 6,880 + 180."""
    price = cloud.gpu_hour_price(cloud.offer("aws-p5"))
    t = cloud.cloud_cost(1000, price, 2, cloud.egress_price("aws"))
    assert t.value == pytest.approx(6880 + 180)
    with pytest.raises(AiinfraError):
        cloud.cloud_cost(-1, price)


def test_capacity_block_has_no_commitment_terms():
    """An EC2 Capacity Block is already a reservation: only its own price applies."""
    o = cloud.offer("aws-p5-capacity-block")
    assert o.terms() == ["on-demand"]
    with pytest.raises(AiinfraError, match="no 3y price"):
        cloud.instance_hour_price(o, "3y")

"""Time-slicing and MPS replicas from memory needs.

Sources: k8s-device-plugin v0.20.0 (replicas ≥ 2; replicas are node-wide and identical to the scheduler);
GPU Operator MPS docs (≤ 48 clients on Volta+, 16 before; each client an equal share of memory);
H100 SXM 80 GB from the catalog (gpus.yaml, NVIDIA datasheet).
"""

from __future__ import annotations

import pytest

from aiinfra.errors import DoesNotFitError, SpecError
from aiinfra.sharing.timeslice import gpu_memory, plan_sharing
from aiinfra.sharing.workloads import Workload

H100 = gpu_memory("h100-sxm")


def test_replicas_from_memory_and_gpus_needed():
    """80 GB / 12 GB → 6 replicas; 9 copies → ⌈9/6⌉ = 2 GPUs; no overcommit warning."""
    r = plan_sharing("timeslice", H100, [Workload(name="b", count=9, memory_gb=12)])
    assert r.facts["replicas"] == 6 and r.facts["GPUs needed"] == 2
    assert not any("exceed GPU memory" in w for w in r.warnings)


def test_warns_when_time_sliced_workloads_can_exceed_memory():
    """With replicas 8, the 8 largest copies (2×30 + 6×10 = 120 GB) can land on one 80 GB GPU."""
    ws = [Workload(name="big", count=2, memory_gb=30), Workload(name="small", count=10, memory_gb=10)]
    r = plan_sharing("timeslice", H100, ws, replicas=8)
    assert r.term("worst-case memory on one GPU").value == pytest.approx(120e9)
    assert any("exceed GPU memory" in w and "120.0 GB" in w for w in r.warnings)


def test_mps_client_limit_and_memory_share():
    """MPS: 80 GB / 10 clients = 8 GB per client; 5 GB needs → ⌊80/5⌋ = 16 clients (under the 48 cap)."""
    r = plan_sharing("mps", H100, [Workload(name="s", count=20, memory_gb=5)], replicas=10)
    assert r.term("memory limit per client").value == pytest.approx(8e9)
    auto = plan_sharing("mps", H100, [Workload(name="s", count=20, memory_gb=1)])
    assert auto.facts["replicas"] == 48  # ⌊80/1⌋ = 80 capped at 48
    pre = plan_sharing("mps", H100, [Workload(name="s", count=20, memory_gb=1)], pre_volta=True)
    assert pre.facts["replicas"] == 16


def test_mps_refuses_clients_over_their_share_and_over_48():
    with pytest.raises(DoesNotFitError, match="each gets 8.0 GB"):
        plan_sharing("mps", H100, [Workload(name="s", count=2, memory_gb=12)], replicas=10)
    with pytest.raises(SpecError, match="at most 48"):
        plan_sharing("mps", H100, [Workload(name="s", count=2, memory_gb=1)], replicas=64)


def test_sharing_needs_at_least_two_copies_per_gpu():
    with pytest.raises(DoesNotFitError, match="replicas ≥ 2"):
        plan_sharing("timeslice", H100, [Workload(name="x", count=2, memory_gb=50)])
    with pytest.raises(DoesNotFitError, match="cannot share a GPU"):
        plan_sharing("timeslice", H100, [Workload(name="x", count=2, memory_gb=90)])

"""α–β NCCL model against nccl-tests' bus-bandwidth definitions and measured busbw."""

from __future__ import annotations

import numpy as np
import pytest

from aiinfra.catalog.gpus import gpu
from aiinfra.errors import AiinfraError
from aiinfra.perf import comm

GiB = 2**30


def busbw_allreduce(size, n, t):
    """nccl-tests PERFORMANCE.md: busbw = algbw · 2(n−1)/n."""
    return size / t * 2 * (n - 1) / n


def test_nvlink4_ring_allreduce_busbw_matches_measured_370():
    """8 × H100 ring all-reduce, large buffer: ~370 GB/s busbw (nccl-tests #212, cluster_tco_anchors §2.5)."""
    node = comm.node_for(gpu("h100-sxm"))
    t = comm.all_reduce(8 * GiB, 8, node.scale_up, algo="ring")
    assert busbw_allreduce(8 * GiB, 8, t.value) == pytest.approx(370e9, rel=0.01)


def test_ndr_per_nic_busbw_46_to_48():
    """'For NDR @ 400Gbps you should see 46-48 GB/s per NIC' (nccl-tests #290, §2.5): 2 ranks over one NIC."""
    t = comm.all_reduce(8 * GiB, 2, comm.link("ib-ndr"), algo="ring")
    assert 46e9 <= busbw_allreduce(8 * GiB, 2, t.value) <= 48e9


def test_multinode_busbw_is_min_of_nvlink_and_nics():
    """§2.5 rule: multi-node ring busbw ≈ min(NVLink ring ~370, NICs × 46–48 GB/s); measured 330.9 GB/s on
    4 nodes × 8 H100 × 8 × 400G (Voltage Park benchmark). Our model must land between the two."""
    node = comm.node_for(gpu("h100-sxm"))
    t = comm.hierarchical_all_reduce(8 * GiB, 32, 8, node)
    bus = busbw_allreduce(8 * GiB, 32, t.value)
    assert 330.9e9 * 0.98 <= bus <= min(370e9, 8 * 48e9) * 1.01


def test_one_gpu_per_node_runs_at_nic_share():
    """TP = 8 leaves one DP rank per node: the gradient all-reduce runs at one NIC's ~47 GB/s (§2.5)."""
    node = comm.node_for(gpu("h100-sxm"))
    t = comm.hierarchical_all_reduce(8 * GiB, 64, 1, node)
    assert busbw_allreduce(8 * GiB, 64, t.value) == pytest.approx(47e9, rel=0.03)


def test_bus_factors_of_other_collectives():
    """nccl-tests PERFORMANCE.md: reduce-scatter/all-gather/all-to-all busbw = algbw·(n−1)/n, p2p = algbw."""
    lk = comm.link("ib-ndr")
    for fn in (comm.reduce_scatter, comm.all_gather, comm.all_to_all):
        t = fn(4 * GiB, 16, lk).value
        assert 4 * GiB / t * 15 / 16 == pytest.approx(lk.effective_bw, rel=0.01)
    assert comm.p2p(4 * GiB, lk).value == pytest.approx(4 * GiB / lk.effective_bw, rel=0.01)


def test_single_rank_costs_nothing_and_arrays_broadcast():
    lk = comm.link("nvlink-4")
    t = comm.all_reduce(np.array([1e9, 1e9, 1e9]), np.array([1, 2, 8]), lk)
    assert t.value[0] == 0 and 0 < t.value[1] < t.value[2]
    assert comm.p2p(0, lk).value == 0


def test_tree_beats_ring_on_latency_at_scale():
    """Small buffers over many ranks: the tree's 2·log2(n)·α wins over the ring's 2(n−1)·α (§2.4)."""
    lk = comm.link("ib-ndr")
    ring = comm.all_reduce(1e3, 1024, lk, "ring").value
    auto = comm.all_reduce(1e3, 1024, lk, "auto").value
    assert auto < ring / 10


def test_unknown_link_and_node_entry_are_errors():
    with pytest.raises(AiinfraError, match="closest"):
        comm.link("ib-ndx")
    with pytest.raises(AiinfraError, match="node layout"):
        comm.link("node-hopper-sxm")
    with pytest.raises(AiinfraError, match="algorithm"):
        comm.all_reduce(1, 2, comm.link("ib-ndr"), algo="butterfly")


def test_hierarchical_all_to_all_sends_the_off_node_share_over_the_nics():
    """An all-to-all over n ranks, `local` per node, each rank sending S bytes evenly: (local−1)/n of S stays on
    NVLink and (n−local)/n crosses the NICs; the legs run at once. On DGX H100 (NVLink 450 GB/s per direction,
    one 400 Gb/s NIC per GPU, interconnects.yaml) EP16 over two nodes is NIC-bound with half of S on the wire,
    and EP8 inside the node equals the single-link all-to-all."""
    from aiinfra.catalog.gpus import gpu
    from aiinfra.perf.comm import all_to_all, hierarchical_all_to_all, node_for

    node = node_for(gpu("h100-sxm"))
    S = 134e6
    two = hierarchical_all_to_all(S, 16, 8, node).value
    nic = node.scale_out_per_gpu()
    assert two == pytest.approx(S * 8 / 16 / nic.effective_bw + 7 * node.scale_up.alpha + 8 * nic.alpha, rel=1e-9)
    inside = hierarchical_all_to_all(S, 8, 8, node).value
    assert inside == pytest.approx(all_to_all(S, 8, node.scale_up).value, rel=1e-9)
    assert two > 3 * inside

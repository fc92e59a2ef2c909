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


def test_groups_hit_is_the_hypergeometric_expectation():
    """k experts drawn without replacement from E spread evenly over g groups: a group is missed with probability
    C(E − E/g, k)/C(E, k) (hypergeometric), so g·(1 − that) groups are hit. One expert hits one group, all E experts
    hit every group. Qwen3-30B-A3B (k = 8 of 128 experts) over 2 nodes: 1.994 nodes; over 16 ranks: 6.597 ranks."""
    from math import comb

    from aiinfra.perf.comm import groups_hit

    for k, E, g in ((8, 128, 2), (8, 128, 16), (8, 256, 8), (4, 8, 4), (22, 160, 32)):
        assert groups_hit(k, E, g) == pytest.approx(g * (1 - comb(E - E // g, k) / comb(E, k)), rel=1e-12)
    assert groups_hit(1, 128, 16) == pytest.approx(1.0)
    assert groups_hit(128, 128, 16) == pytest.approx(16.0)
    assert groups_hit(8, 128, 2) == pytest.approx(1.9938, abs=1e-4)


def test_relayed_dispatch_counts_what_deepep_counts():
    """DeepEP tests/legacy/test_internode.py (commit dd758ca) counts a dispatch's RDMA traffic as each token's distinct
    destination nodes (topk_idx // experts-per-node, made unique) times the hidden bytes, and its NVLink receives as
    the distinct destination ranks (is_token_in_rank). Sending a token over the NICs only to the same-index GPU of
    each remote node, which forwards it over NVLink (Hybrid-EP docs/Hybrid-EP_Implementation.md §8), a rank's NIC
    bytes are S·(N−1)·p_node and its NVLink bytes S·N·(local−1)·p_rank. A seeded simulation of uniform top-k routing
    (the force-balanced router of the Megatron-Bridge benchmark recipes) that counts the copies one by one agrees
    within 1%."""
    import numpy as np

    from aiinfra.perf.comm import relayed_bytes

    E, k, n, local = 128, 8, 16, 8
    nodes, per_rank = n // local, E // n
    rng = np.random.default_rng(7)
    tokens = 40_000
    topk = np.argsort(rng.random((tokens, E)), axis=1)[:, :k]  # k distinct experts per token
    src = 3  # the sending rank (node 0, local index 3)
    nic = nvl = 0
    for row in topk:
        ranks = set((row // per_rank).tolist())
        for node in {r // local for r in ranks}:
            mine = {r for r in ranks if r // local == node}
            if node == src // local:
                nvl += len(mine - {src})  # direct NVLink sends inside the own node
            else:
                nic += 1  # once to the landing GPU (same local index) of that node
                nvl += len(mine - {node * local + src % local})  # relayed by it over NVLink
    nvl_model, nic_model, _, _ = relayed_bytes(1.0, k, E, n, local)
    assert nic / tokens == pytest.approx(float(nic_model), rel=0.01)
    assert nvl / tokens == pytest.approx(float(nvl_model), rel=0.01)
    assert float(nic_model) == pytest.approx((nodes - 1) * 0.99690, rel=1e-4)


def test_relayed_nic_bytes_are_bounded_by_hybrid_ep_rdma_buffer():
    """Hybrid-EP docs/Hybrid-EP_Implementation.md §4.2 (DeepEP branch hybrid-ep, 94a9f8f) sizes a rank's RDMA token
    buffer max_tokens_per_rank × (num_nodes − 1) × hidden × sizeof(dtype): for its example of 8 ranks × 8 nodes,
    256 experts, BF16, hidden 7168, 4096 tokens per rank, 4096 × 7 × 7168 × 2 B (the table's "~392 MB", in MiB).
    A token that needs every node fills it exactly; top-8 routing sends less; one expert per token sends the plain
    all-to-all's off-node share (n − local)/n."""
    from aiinfra.perf.comm import relayed_bytes

    S = 4096 * 7168 * 2
    _, full, _, _ = relayed_bytes(S, 256, 256, 64, 8)
    assert float(full) == pytest.approx(4096 * 7 * 7168 * 2, rel=1e-12)
    assert float(full) / 2**20 == pytest.approx(392, abs=0.5)
    _, top8, _, _ = relayed_bytes(S, 8, 256, 64, 8)
    assert float(top8) < float(full)
    _, one, _, _ = relayed_bytes(S, 1, 256, 64, 8)
    assert float(one) == pytest.approx(S * (64 - 8) / 64, rel=1e-12)


def test_relayed_all_to_all_on_two_dgx_h100_nodes():
    """Qwen3-30B-A3B on 16 H100s (EP16, two DGX nodes, one 400 Gb/s NIC per GPU, NVLink 450 GB/s per direction:
    interconnects.yaml): the NIC leg carries 0.997 token copies instead of the plain all-to-all's k·(n−local)/n = 4,
    so the dispatch is NIC-bound at about a quarter of the all-to-all's time, with 1 NIC step instead of 8."""
    from aiinfra.catalog.gpus import gpu
    from aiinfra.perf.comm import hierarchical_all_to_all, node_for, relayed_all_to_all

    node = node_for(gpu("h100-sxm"))
    S = 4096 * 2048 * 2
    nic, up = node.scale_out_per_gpu(), node.scale_up
    t = relayed_all_to_all(S, 8, 128, 16, 8, node)
    assert t.value == pytest.approx(S * 0.996904 / nic.effective_bw + 7 * up.alpha + nic.alpha, rel=1e-5)
    assert t.inputs["p_node"] == pytest.approx(0.996904, abs=1e-6)
    plain = hierarchical_all_to_all(8 * S, 16, 8, node)
    bw_plain = plain.value - 7 * up.alpha - 8 * nic.alpha  # the bandwidth terms, without the latency steps
    bw_relayed = t.value - 7 * up.alpha - nic.alpha
    assert bw_plain / bw_relayed == pytest.approx(4 / 0.996904, rel=1e-5)


def _megatron_group_limited_topk(rng, tokens, E, k, G, g):
    """Megatron-LM moe_utils.group_limited_topk (d98e8a6) on random scores (the force-balanced benchmark router's random
    logits): each group scored by the sum of its top k/g experts, the top g groups kept, the top k experts inside."""
    s = rng.random((tokens, E))
    group_scores = np.sort(s.reshape(tokens, G, -1), axis=2)[:, :, -(k // g):].sum(axis=2)
    keep = np.zeros((tokens, G), bool)
    np.put_along_axis(keep, np.argsort(-group_scores, axis=1)[:, :g], True, axis=1)
    masked = np.where(np.repeat(keep, E // G, axis=1), s, -1.0)
    return np.argsort(-masked, axis=1)[:, :k]


@pytest.mark.parametrize("n,local", [(64, 8), (32, 8), (16, 4)])
def test_group_limited_routing_reaches_the_nodes_megatron_routes_to(n, local):
    """DeepSeek-V3's router (config n_group 8, topk_group 4; Megatron --moe-router-num-groups / --moe-router-group-topk)
    takes a token's 8 experts from 4 of 8 groups of 32, node-limited routing once a group is a node. A seeded run of
    Megatron's group_limited_topk counts the distinct nodes and ranks each token reaches; routed_parts_hit (nodes:
    groups_hit(4, 8, N) where nodes hold whole groups, 4 · groups_hit(2, 32, n/8) for ranks inside groups) agrees
    within 4% on nodes and 7% on ranks (a chosen group takes 2 experts on average, not always 2, so the ranks it
    reaches are fewer), where uniform routing over all 256 experts would put EP64's nodes at 5.3 instead of 4."""
    E, k, G, g = 256, 8, 8, 4
    top = _megatron_group_limited_topk(np.random.default_rng(11), 20_000, E, k, G, g)
    ranks = top // (E // n)
    nodes_hit = np.mean([len(set(r)) for r in ranks // local])
    ranks_hit = np.mean([len(set(r)) for r in ranks])
    assert float(comm.routed_parts_hit(k, E, n // local, G, g)) == pytest.approx(nodes_hit, rel=0.04)
    assert float(comm.routed_parts_hit(k, E, n, G, g)) == pytest.approx(ranks_hit, rel=0.07)
    assert float(comm.routed_parts_hit(k, E, n, 1, 1)) == pytest.approx(float(comm.groups_hit(k, E, n)))


def test_node_limited_routing_cuts_deepep_nic_bytes():
    """With 4 of 8 node-sized groups a token crosses the NICs to 3.5 remote nodes on average (4 chosen, the own node
    among them half the time) instead of 4.6 for routing over every node: DeepEP's RDMA leg carries 24% less."""
    from aiinfra.perf.comm import relayed_bytes
    _, free, _, _ = relayed_bytes(1.0, 8, 256, 64, 8)
    _, limited, p_node, _ = relayed_bytes(1.0, 8, 256, 64, 8, groups=8, group_topk=4)
    assert float(limited) == pytest.approx(3.5) and float(p_node) == pytest.approx(0.5)
    assert float(free) == pytest.approx(7 * float(comm.groups_hit(8, 256, 8)) / 8)


def test_ring_reduce_scatter_latency_is_nccls_own_price():
    """NCCL prices a ring reduce-scatter or all-gather of large messages (Simple protocol) in src/graph/tuning.cc
    (NVIDIA/nccl at 5067397): baseLatencies Ring/Simple 8.4 us, plus per step hwLatencies Ring/Simple 3.4 us over
    NVLink and 14.0 us over the network for the nodes − 1 steps that cross it, the other steps at least 3 x
    getNetOverhead (1 us on Intel, 2 us on AMD hosts) once the ring leaves the node. 16 DGX H100 with 8 ranks each:
    8.4 + 112 x 3.4 + 15 x 14 = 599.2 us; one node: 8.4 + 7 x 3.4 = 32.2 us; one rank per node on 16 nodes:
    8.4 + 15 x 14 = 218.4 us. On DGX A100 (AMD EPYC) the NVLink steps of a multi-node ring cost 3 x 2 = 6 us, in
    one node still 3.4 us. Latency grows with the rank count, so GPT-3's 448-way DP group (two ranks per node, MLPerf
    v4.0) pays 8.4 + 224 x 3.4 + 223 x 14 = 3,892 us per collective."""
    h100, a100 = comm.node_for(gpu("h100-sxm")), comm.node_for(gpu("a100-80gb-sxm"))
    us = lambda n, local, node: float(comm.ring_collective_latency(n, local, node).value) * 1e6  # noqa: E731
    assert us(128, 8, h100) == pytest.approx(599.2)
    assert us(8, 8, h100) == pytest.approx(32.2)
    assert us(16, 1, h100) == pytest.approx(218.4)
    assert us(448, 2, h100) == pytest.approx(3892.0)
    assert us(128, 8, a100) == pytest.approx(8.4 + 112 * 6.0 + 15 * 14.0)
    assert us(8, 8, a100) == pytest.approx(32.2)
    assert us(1, 1, h100) == 0.0
    pcie = comm.node_for(gpu("l40s"))
    assert us(8, 8, pcie) == pytest.approx(8.4 + 7 * 5.7)


def test_all_reduce_latency_is_nccls_ring_or_tree_whichever_prices_faster():
    """NCCL's tuner (src/graph/tuning.cc at 5067397, Simple protocol) prices a ring all-reduce at 8.4 us + 3.4 us per
    NVLink step + 14 us per network step, 2(n − 1) steps of which 2(nodes − 1) cross the network, and a tree at
    8.4 us + 2((ranks per node − 1) x 4.0 + log2(nodes) x 14) us moving data at 0.92 of the ring's bus bandwidth;
    it runs the faster. One DGX H100 (8 ranks): ring 8.4 + 14 x 3.4 = 56.0 us against tree 64.4 us. 16 nodes of 8:
    ring 8.4 + 224 x 3.4 + 30 x 14 = 1,190 us against tree 8.4 + 2(28 + 56) = 176.4 us, so a 1 MiB all-reduce runs as
    a tree, while an 8 GiB one, whose bandwidth time is ~46 ms, runs as a ring (8% of it outweighs the latency).
    Split into 10 buckets the latency is paid 10 times and the bytes once."""
    h100 = comm.node_for(gpu("h100-sxm"))

    def parts(size, n, local, pieces=1):
        t = comm.hierarchical_all_reduce(size, n, local, h100, pieces=pieces)
        bw = float(comm.all_reduce_bandwidth_time(size, n, local, h100).value)
        lat = next(p for p in t.parts if p.name.startswith("latency"))
        return float(t.value), bw, float(lat.value) * 1e6, lat.inputs["algorithm"]

    t, bw, lat, algo = parts(2**20, 8, 8)
    assert (algo, lat) == ("ring", pytest.approx(56.0)) and t == pytest.approx(bw + 56.0e-6)
    t, bw, lat, algo = parts(2**20, 128, 8)
    assert (algo, lat) == ("tree", pytest.approx(176.4)) and t == pytest.approx(bw / 0.92 + 176.4e-6)
    t, bw, lat, algo = parts(8 * GiB, 128, 8)
    assert (algo, lat) == ("ring", pytest.approx(1190.0)) and t == pytest.approx(bw + 1190.0e-6)
    t10, bw, _, _ = parts(GiB, 8, 8, pieces=10)
    assert t10 == pytest.approx(bw + 10 * 56.0e-6)
    assert comm.hierarchical_all_reduce(GiB, 1, 1, h100).value == 0.0
    # DGX A100's AMD hosts: a ring that leaves the node pays 3 x 2 us per NVLink step
    a100 = comm.node_for(gpu("a100-80gb-sxm"))
    lat = next(p for p in comm.hierarchical_all_reduce(8 * GiB, 16, 8, a100).parts if p.name.startswith("latency"))
    assert float(lat.value) * 1e6 == pytest.approx(8.4 + 28 * 6.0 + 2 * 14.0)


def test_a_malformed_nccl_tuner_entry_is_refused_in_one_line(monkeypatch):
    """interconnects.yaml nccl-tuner needs both algorithms' constants and a tree bandwidth factor in (0, 1]; a missing
    key or a factor that would make the tree faster than the wire is refused, not read as a default."""
    from aiinfra.catalog.loader import default_catalog

    key, good = default_catalog().entry("interconnects", "nccl-tuner")
    for bad in ({k: v for k, v in good.items() if k != "tree_hop_us"}, {**good, "tree_bw_factor": 1.5},
                {**good, "ring_hop_us": {"nvlink": 3.4}}):
        monkeypatch.setattr(type(default_catalog()), "entry", lambda self, table, name, _bad=bad: (key, _bad))
        with pytest.raises(AiinfraError, match="nccl-tuner") as err:
            comm.nccl_tuner()
        assert "\n" not in str(err.value)

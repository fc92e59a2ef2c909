"""NCCL collectives as an alpha-beta model: time = steps·α + traffic·S / (B·efficiency).

Bandwidth terms follow nccl-tests' `doc/PERFORMANCE.md` (cluster_tco_anchors §2.4): for n ranks,
all-reduce moves 2(n−1)/n of the buffer over each rank's link, reduce-scatter and all-gather
(n−1)/n of the full array, all-to-all (n−1)/n of what each rank sends, point-to-point 1×.
Latency of the collectives a training step is made of (all-reduce, reduce-scatter, all-gather across a node
and across nodes) is NCCL's own tuner price (src/graph/tuning.cc constants, interconnects.yaml `nccl-tuner`);
the single-link helpers, all-to-all and point-to-point keep the Thakur/Rabenseifner/Gropp (2005) step counts at
the link's α (a ring n−1 steps per phase, a double binary tree 2·log2(n)), for which NCCL has no tuner price.
B is per-rank bandwidth per direction and the efficiency is measured NCCL busbw divided by line rate
(catalog/data/interconnects.yaml, with sources).

Every function takes plain numbers or numpy arrays (broadcasting) and returns a `Term` in seconds,
so the planner evaluates millions of layouts with the same code that explains one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import AiinfraError
from aiinfra.explain import Number, Term
from aiinfra.specs import GpuSpec, arch_family

SRC_NCCL = "nccl-tests doc/PERFORMANCE.md bus-bandwidth factors (cluster_tco_anchors §2.4)"
SRC_ALPHA_BETA = "alpha-beta model, Thakur, Rabenseifner & Gropp 2005 (cluster_tco_anchors §2.4)"


@dataclass(frozen=True)
class Link:
    """One link class: per-rank bandwidth per direction (B/s), NCCL efficiency and per-step latency (s)."""

    key: str
    name: str
    type: str
    bw: float
    busbw_eff: float
    alpha: float
    source: str

    @property
    def effective_bw(self) -> float:
        """Bytes/s a large NCCL collective achieves per rank (bus bandwidth)."""
        return self.bw * self.busbw_eff

    def scaled(self, bw: float, why: str) -> Link:
        """The same link class at another line rate (e.g. a GPU's own NVLink figure)."""
        return replace(self, bw=bw, source=f"{self.source}; line rate {bw / 1e9:g} GB/s from {why}")


@dataclass(frozen=True)
class Node:
    """How a GPU type is wired: GPUs per node, scale-up link, scale-out NICs."""

    key: str
    gpus_per_node: int
    scale_up: Link
    nics_per_node: int
    scale_out: Link
    source: str
    host_memory_bw: float = 400e9  # B/s, all sockets; the optimizer step runs here when offloaded
    # NCCL's per-step host cost of an inter-node send (tuning.cc getNetOverhead): 1 µs on Intel x86 and other
    # CPUs, 2 µs on AMD x86 (interconnects.yaml nccl_net_overhead_us on the node)
    net_overhead: float = 1e-6

    @property
    def scale_out_bw_per_gpu(self) -> float:
        """Line rate of the node's NICs shared by its GPUs (rail-optimized: each GPU drives its share)."""
        return self.nics_per_node * self.scale_out.bw / self.gpus_per_node

    def scale_out_per_gpu(self) -> Link:
        return self.scale_out.scaled(
            self.scale_out_bw_per_gpu, f"{self.nics_per_node} NICs shared by {self.gpus_per_node} GPUs per node"
        )


def link(name: str) -> Link:
    """A link class from catalog/data/interconnects.yaml ("ib-ndr", "nvlink-4", "pcie-gen5")."""
    key, e = default_catalog().entry("interconnects", name)
    if e.get("type") == "node":
        raise AiinfraError(f"'{key}' is a node layout, not a link; use one of the nvlink/pcie/ib/roce entries")
    try:
        bw, eff, alpha = (float(e[k]) for k in ("bw_gbps", "busbw_eff", "alpha_us"))
        kind = e["type"]
    except (KeyError, TypeError, ValueError) as err:
        raise AiinfraError(f"catalog interconnect '{key}' needs bw_gbps, busbw_eff, alpha_us and type ({err})") from None
    if not (bw > 0 and 0 < eff <= 1 and alpha >= 0):
        raise AiinfraError(f"catalog interconnect '{key}': bw_gbps must be > 0, busbw_eff in (0, 1] and alpha_us >= 0, "
                           f"got {bw:g}, {eff:g}, {alpha:g}")
    return Link(key, e.get("name", key), kind, bw * 1e9, eff, alpha * 1e-6, e.get("source", ""))


def node_for(gpu: GpuSpec, scale_out: str | None = None, nics_per_node: int | None = None) -> Node:
    """The typical node for a GPU: NVLink at the GPU's own catalog rate for SXM/OAM parts, PCIe otherwise."""
    cat = default_catalog()
    if gpu.form_factor in ("sxm", "superchip"):
        key = f"node-{gpu.architecture}-sxm"
    elif gpu.form_factor == "oam":
        key = "node-oam"
    else:
        key = "node-pcie"
    if key not in cat.table("interconnects") and gpu.form_factor in ("sxm", "superchip"):
        key = f"node-{arch_family(gpu.architecture)}-sxm"
    if key not in cat.table("interconnects"):
        key = "node-hopper-sxm" if gpu.form_factor in ("sxm", "superchip") else "node-pcie"
    e = cat.table("interconnects")[key]
    if e["scale_up"] == "pcie":
        up = link(f"pcie-gen{gpu.pcie_gen}")
    else:
        up = link(e["scale_up"])
        if gpu.nvlink_gbps:
            up = up.scaled(gpu.nvlink_gbps / 2 * 1e9, f"{gpu.key} catalog nvlink_gbps / 2 (per direction)")
    out = link(scale_out or e["scale_out"])
    return Node(key, int(e["gpus_per_node"]), up, int(nics_per_node or e["nics_per_node"]), out, e.get("source", ""),
                float(e.get("host_memory_bw_gbps", 400)) * 1e9, float(e.get("nccl_net_overhead_us", 1.0)) * 1e-6)


def host_link(gpu: GpuSpec) -> Link:
    """The link a GPU's offloaded bytes cross to host memory, at this GPU's share of it: the catalog's host_link
    (NVLink-C2C on Grace parts, split over the GPUs one Grace serves), else the GPU's PCIe generation."""
    try:
        lk = link(gpu.host_link or f"pcie-gen{gpu.pcie_gen}")
    except AiinfraError as err:
        raise type(err)(f"gpu '{gpu.key}' host_link: {err}") from None
    if gpu.host_link_share > 1:
        lk = lk.scaled(lk.bw / gpu.host_link_share, f"{gpu.key}: {gpu.host_link_share} GPUs share one {lk.name}")
    return lk


def host_memory_bw_per_gpu(gpu: GpuSpec, node: Node) -> tuple[float, str]:
    """(B/s, source) of CPU memory one GPU has when its optimizer step runs on the host: the GPU's own figure
    where the catalog gives one (a Grace CPU per one or two GPUs), else the node's shared by all its GPUs."""
    if gpu.host_memory_bw_gbps:
        return gpu.host_memory_bw_gbps * 1e9, f"{gpu.key} host_memory_bw_gbps (gpus.yaml)"
    return node.host_memory_bw / node.gpus_per_node, node.source


def _inputs(size: Number, n: Number, lk: Link) -> dict:
    return {"S": size, "n": n, "B": lk.bw, "eff": lk.busbw_eff, "α": lk.alpha, "link": lk.key}


def _sources(lk: Link) -> dict:
    return {"bus factor": SRC_NCCL, "α steps": SRC_ALPHA_BETA, lk.key: lk.source}


def _ring(size: Number, n: Number, lk: Link, phases: int) -> np.ndarray | float:
    return _ring_steps_time(size, n, lk.effective_bw, lk.alpha, phases)


def _tree(size: Number, n: Number, lk: Link) -> np.ndarray | float:
    return _tree_time(size, n, lk.effective_bw, lk.alpha)


def _ring_steps_time(size: Number, n: Number, bw: Number, alpha: Number, phases: int) -> np.ndarray | float:
    n = np.maximum(n, 1)
    return phases * (n - 1) * alpha + phases * (n - 1) / n * size / bw


def _tree_time(size: Number, n: Number, bw: Number, alpha: Number) -> np.ndarray | float:
    n = np.maximum(n, 1)
    active = n > 1  # one rank moves nothing
    return np.where(active, 2 * np.log2(n) * alpha + 2 * size / bw, 0.0)


def all_reduce_seconds(size: Number, n: Number, bw: Number, alpha: Number) -> np.ndarray | float:
    """all_reduce's auto choice, the faster of ring and tree, with the link given as its effective bandwidth (B·eff,
    B/s) and per-step α (s), each a number or an array: for a grid whose elements run over different links (the
    serving search), where all_reduce takes one Link."""
    return np.minimum(_ring_steps_time(size, n, bw, alpha, 2), _tree_time(size, n, bw, alpha))


def all_reduce(size: Number, n: Number, lk: Link, algo: str = "auto", name: str = "all-reduce") -> Term:
    """Time to all-reduce a buffer of `size` bytes held by each of `n` ranks.

    ring: 2(n−1)·α + 2(n−1)/n · S/(B·eff);  tree: 2·log2(n)·α + 2·S/(B·eff);
    auto: the faster of the two, as NCCL's tuner picks per size (trees win on latency at large n).
    """
    ring = _ring(size, n, lk, 2)
    if algo == "ring":
        value, formula = ring, "2(n−1)·α + 2(n−1)/n · S/(B·eff)"
    elif algo == "tree":
        value, formula = _tree(size, n, lk), "2·log2(n)·α + 2·S/(B·eff)"
    elif algo == "auto":
        value = np.minimum(ring, _tree(size, n, lk))
        formula = "min(ring 2(n−1)·α + 2(n−1)/n·S/(B·eff), tree 2·log2(n)·α + 2·S/(B·eff))"
    else:
        raise AiinfraError(f"unknown all-reduce algorithm '{algo}'; use ring, tree or auto")
    return Term(name, _scalar(value), "s", formula, _inputs(size, n, lk), _sources(lk))


def reduce_scatter(size: Number, n: Number, lk: Link, name: str = "reduce-scatter") -> Term:
    """Reduce-scatter of a full array of `size` bytes over `n` ranks: (n−1)·α + (n−1)/n · S/(B·eff)."""
    return Term(name, _scalar(_ring(size, n, lk, 1)), "s", "(n−1)·α + (n−1)/n · S/(B·eff)",
                _inputs(size, n, lk), _sources(lk))


def all_gather(size: Number, n: Number, lk: Link, name: str = "all-gather") -> Term:
    """All-gather into a full array of `size` bytes over `n` ranks: (n−1)·α + (n−1)/n · S/(B·eff)."""
    return Term(name, _scalar(_ring(size, n, lk, 1)), "s", "(n−1)·α + (n−1)/n · S/(B·eff)",
                _inputs(size, n, lk), _sources(lk))


def all_to_all(size: Number, n: Number, lk: Link, name: str = "all-to-all") -> Term:
    """All-to-all where each rank sends `size` bytes in total: (n−1)·α + (n−1)/n · S/(B·eff)."""
    return Term(name, _scalar(_ring(size, n, lk, 1)), "s", "(n−1)·α + (n−1)/n · S/(B·eff)",
                _inputs(size, n, lk), _sources(lk))


def _placement(n: Number, local: Number) -> tuple[np.ndarray, np.ndarray]:
    """(n, local) for `n` ranks placed `local` per node: at least one rank, and 1 ≤ local ≤ n."""
    n = np.maximum(np.asarray(n), 1)
    return n, np.clip(np.asarray(local), 1, n)


def hierarchical_all_to_all(size: Number, n: Number, local: Number, node: Node,
                            name: str = "hierarchical all-to-all") -> Term:
    """All-to-all over `n` ranks placed `local` per node, each rank sending `size` bytes in total, evenly to every
    rank: (local−1)/n of it stays on the node's scale-up link, (n−local)/n crosses the NICs. The legs run at once,
    so the slower sets the pace: max(S·(local−1)/n / B_up, S·(n−local)/n / B_nic/GPU) + (local−1)·α_up +
    (n−local)·α_nic. With local = n it is the single-link all-to-all."""
    n, local = _placement(n, local)
    up, out = node.scale_up, node.scale_out_per_gpu()
    size = np.asarray(size, dtype=float)
    intra = size * (local - 1) / n / up.effective_bw
    inter = size * (n - local) / n / out.effective_bw
    value = np.maximum(intra, inter) + (local - 1) * up.alpha + (n - local) * out.alpha
    return Term(name, _scalar(value), "s",
                "max(S·(local−1)/n / B_up, S·(n−local)/n / B_nic/GPU) + (local−1)·α_up + (n−local)·α_nic",
                {"S": size, "n": n, "local": local, "B_up": up.bw, "B_nic/GPU": out.bw},
                {up.key: up.source, out.key: out.source, "α steps": SRC_ALPHA_BETA})


SRC_DEDUP = ("DeepEP tests/legacy/test_internode.py (commit dd758ca): a token's RDMA sends are its distinct "
             "destination nodes, its NVLink receives its distinct destination ranks (is_token_in_rank); Hybrid-EP "
             "docs/Hybrid-EP_Implementation.md (DeepEP branch hybrid-ep, 94a9f8f) §4.2: RDMA token buffer = tokens per "
             "rank × (nodes − 1) × hidden, §8: IB to the same-index GPU of each node, then NVLink inside it")


def groups_hit(k: Number, experts: Number, groups: Number) -> np.ndarray | float:
    """Expected number of distinct groups among `groups` equal groups of `experts` that k experts drawn without
    replacement land in: groups · (1 − C(E − E/g, k) / C(E, k)), the product form Π_{i<k} (1 − (E/g)/(E − i))
    (hypergeometric: a group is missed when all k draws fall outside its E/g experts)."""
    E, g = np.asarray(experts, dtype=float), np.maximum(np.asarray(groups, dtype=float), 1.0)
    miss = 1.0
    for i in range(int(k)):
        miss = miss * np.clip(1.0 - (E / g) / (E - i), 0.0, 1.0)
    return g * (1.0 - miss)


def routed_parts_hit(k: int, experts: Number, parts: Number, groups: int = 1, group_topk: int = 1):
    """Expected distinct parts (ranks or nodes, each holding an equal contiguous share of the experts) that one token's
    k experts land in. Unrestricted, groups_hit. With group-limited routing (Megatron --moe-router-num-groups G and
    --moe-router-group-topk g; DeepSeek-V3's n_group 8, topk_group 4) a token picks the g groups whose top k/g scores
    sum highest, then its k experts inside them (megatron/core/transformer/moe/moe_utils.py group_limited_topk at
    d98e8a6), so each chosen group takes about k/g of them: where every group spans parts/G parts that is
    g · groups_hit(k/g, E/G, parts/G); where every part holds G/parts whole groups, groups_hit(g, G, parts) (each chosen
    group hit). Groups that neither nest in parts nor tile them are taken as unrestricted [U]."""
    P = np.asarray(parts, dtype=float)
    free = groups_hit(k, experts, P)
    if groups <= 1 or group_topk >= groups:
        return free
    span = np.maximum(P / groups, 1.0)
    spans = np.where((P >= groups) & (np.mod(P, groups) == 0),
                     group_topk * groups_hit(max(k // group_topk, 1), np.asarray(experts, dtype=float) / groups, span),
                     free)
    return np.where((P < groups) & (np.mod(groups, np.maximum(P, 1.0)) == 0), groups_hit(group_topk, groups, P), spans)


def relayed_bytes(token_bytes: Number, k: Number, experts: Number, n: Number, local: Number, groups: int = 1,
                  group_topk: int = 1) -> tuple:
    """(NVLink bytes, NIC bytes, p_node, p_rank) one rank sends in a node-relayed dispatch (relayed_all_to_all);
    `groups` / `group_topk`: the router's group-limited routing (routed_parts_hit)."""
    n, local = _placement(n, local)
    nodes = n / local
    S = np.asarray(token_bytes, dtype=float)
    p_node = routed_parts_hit(k, experts, nodes, groups, group_topk) / nodes
    p_rank = routed_parts_hit(k, experts, n, groups, group_topk) / n
    return S * nodes * (local - 1) * p_rank, S * (nodes - 1) * p_node, p_node, p_rank


def relayed_all_to_all(token_bytes: Number, k: Number, experts: Number, n: Number, local: Number, node: Node,
                       name: str = "node-relayed all-to-all", groups: int = 1, group_topk: int = 1) -> Term:
    """MoE dispatch (or combine) that sends a token once per destination node over the NICs and once per destination
    rank inside a node (DeepEP normal kernels, Hybrid-EP): `token_bytes` per token per rank, each token routed to k of
    `experts` spread evenly over `n` ranks placed `local` per node (N = n/local nodes). A token crosses the NICs to the
    same-index GPU of each remote node it needs, which forwards it over NVLink to that node's other destination ranks:
      NIC bytes  = S · (N − 1) · p_node,  p_node = groups_hit(k, E, N) / N
      NVLink     = S · N · (local − 1) · p_rank,  p_rank = groups_hit(k, E, n) / n
    (direct sends inside the own node plus relays from the landing GPU), then as hierarchical_all_to_all the slower leg
    sets the pace: max(NVLink / B_up, NIC / B_nic/GPU) + (local−1)·α_up + (N−1)·α_nic. Combine is the mirror image
    (partial sums reduced inside the node before the NICs), the same bytes. With k = 1 the NIC leg equals the plain
    all-to-all's; with k experts it is (N−1)·p_node instead of k·(N−1)/N copies. A router limited to `group_topk` of
    `groups` expert groups (DeepSeek-V3: 4 of 8, node-limited routing) reaches fewer nodes (routed_parts_hit)."""
    n, local = _placement(n, local)
    nodes = n / local
    up, out = node.scale_up, node.scale_out_per_gpu()
    S = np.asarray(token_bytes, dtype=float)
    nvl, nic, p_node, p_rank = relayed_bytes(S, k, experts, n, local, groups, group_topk)
    value = np.maximum(nvl / up.effective_bw, nic / out.effective_bw) + (local - 1) * up.alpha + (nodes - 1) * out.alpha
    return Term(name, _scalar(value), "s",
                "max(S·N·(local−1)·p_rank / B_up, S·(N−1)·p_node / B_nic/GPU) + (local−1)·α_up + (N−1)·α_nic; "
                "p_node, p_rank = 1 − Π_{i<k}(1 − (E/groups)/(E − i)) for N nodes, n ranks"
                + (" (within the router's chosen expert groups)" if groups > 1 else ""),
                {"S (bytes per token)": S, "k": k, "E": experts, "n": n, "local": local, "N": nodes,
                 **({"router groups (chosen / all)": f"{group_topk} / {groups}"} if groups > 1 else {}),
                 "p_node": _scalar(p_node), "p_rank": _scalar(p_rank), "B_up": up.bw, "B_nic/GPU": out.bw},
                {up.key: up.source, out.key: out.source, "once per node / rank": SRC_DEDUP, "α steps": SRC_ALPHA_BETA})


def p2p(size: Number, lk: Link, name: str = "send/recv") -> Term:
    """Point-to-point transfer of `size` bytes: α + S/(B·eff) (0 when size is 0)."""
    value = np.where(np.asarray(size) > 0, lk.alpha + np.asarray(size) / lk.effective_bw, 0.0)
    return Term(name, _scalar(value), "s", "α + S/(B·eff)", {"S": size, "B": lk.bw, "eff": lk.busbw_eff,
                "α": lk.alpha, "link": lk.key}, _sources(lk))


def all_reduce_bandwidth_time(size: Number, n: Number, local: Number, node: Node,
                              name: str = "all-reduce bandwidth time") -> Term:
    """The bandwidth part of an all-reduce over `n` ranks placed `local` per node, latency aside.

    NCCL pipelines the intra- and inter-node legs (rings over channels, one NIC crossing per channel), so the
    slower leg sets the pace rather than their sum: 2(n−1)/n · S / min(B_up·eff_up, local · B_nic/GPU·eff_nic),
    where B_nic/GPU = nics_per_node · rate / gpus_per_node. For 8-GPU nodes this is the measured rule of
    cluster_tco_anchors §2.5: multi-node busbw ≈ min(NVLink ring ~370 GB/s, NICs × 46–48 GB/s). The same bytes make
    a reduce-scatter plus an all-gather (half each). With local = n the group sits in one node."""
    n, local = _placement(n, local)
    nodes = n // local
    up, out = node.scale_up, node.scale_out_per_gpu()
    moved = 2 * (n - 1) / n * np.asarray(size)
    intra = np.where(local > 1, moved / up.effective_bw, 0.0)
    inter = np.where(nodes > 1, moved / (local * out.effective_bw), 0.0)
    t_intra = Term("node-leg bandwidth time", _scalar(intra), "s", "2(n−1)/n · S / (B_up·eff)",
                   {"S": size, "n": n, "B_up": up.bw, "eff": up.busbw_eff}, {up.key: up.source})
    t_inter = Term("NIC-leg bandwidth time", _scalar(inter), "s", "2(n−1)/n · S / (local · B_nic/GPU·eff)",
                   {"S": size, "n": n, "local": local, "B_nic/GPU": out.bw, "eff": out.busbw_eff},
                   {out.key: out.source})
    return Term(name, _scalar(np.maximum(intra, inter)), "s", "max(node-leg, NIC-leg)",
                {"S": size, "n": n, "local": local, "nodes": nodes}, {"bus factor": SRC_NCCL, "layout": node.source},
                parts=[t_intra, t_inter])


def hierarchical_all_reduce(size: Number, n: Number, local: Number, node: Node,
                            name: str = "hierarchical all-reduce", pieces: Number = 1) -> Term:
    """All-reduce of `size` bytes over `n` ranks placed `local` per node (NVLink inside the node, NICs between
    nodes), split into `pieces` equal collectives: nccl_all_reduce of its all_reduce_bandwidth_time."""
    bw = all_reduce_bandwidth_time(size, n, local, node, "bandwidth time (all pieces)")
    return nccl_all_reduce(bw, n, local, node, name, pieces)


def nccl_all_reduce(bw: Term, n: Number, local: Number, node: Node, name: str = "all-reduce",
                    pieces: Number = 1, scale: Number = 1.0) -> Term:
    """`pieces` equal all-reduces over `n` ranks placed `local` per node that together move `scale` × the bytes whose
    bandwidth time is `bw` (all_reduce_bandwidth_time), each priced as NCCL's tuner prices it (src/graph/tuning.cc,
    Simple protocol) and run as the faster of its two algorithms:
      ring: bw + base_ring + 2·((n − nodes)·hop_intra + (nodes − 1)·hop_net)
            (hop_intra at least 3·net_overhead once the ring leaves the node);
      tree: bw / tree_bw_factor (0.92) + base_tree + 2·((local − 1)·tree_hop_intra + log2(nodes)·tree_hop_net),
    where bw is one piece's share. The total is pieces × the faster one."""
    tu = nccl_tuner()
    n, local = _placement(n, local)
    nodes = n // local
    k = np.maximum(np.asarray(pieces, dtype=float), 1.0)
    moved = np.asarray(bw.value) * scale
    per = moved / k
    ring_lat = tu.ring_base + 2 * _ring_steps(tu, node, n, nodes)
    tree_lat = tu.tree_base + 2 * ((local - 1) * tu.tree_hop[_intra_kind(node)] + np.log2(nodes) * tu.tree_hop["net"])
    ring_t, tree_t = per + ring_lat, per / tu.tree_bw_factor + tree_lat
    issued = (n > 1) & (moved > 0)  # one rank, or nothing to reduce: no collective
    one = np.where(issued, np.minimum(ring_t, tree_t), 0.0)
    lat = np.where(issued, np.where(ring_t <= tree_t, ring_lat, tree_lat), 0.0)
    inputs = {"n": n, "local": local, "nodes": nodes, "pieces": k, "net_overhead": node.net_overhead}
    if np.ndim(one) == 0:
        inputs["algorithm"] = "none" if not issued else "ring" if float(ring_t) <= float(tree_t) else "tree"
    t_lat = Term("latency (per collective)", _scalar(lat), "s",
                 "NCCL tuner, the faster algorithm: ring base + 2((n − nodes)·hop + (nodes − 1)·hop_net), or "
                 f"tree base + 2((local−1)·hop + log2(nodes)·hop_net) at bw / {tu.tree_bw_factor:g}", inputs,
                 {"NCCL tuner": tu.source})
    return Term(name, _scalar(k * one), "s",
                f"pieces × min(bw/pieces + ring latency, bw/(pieces·{tu.tree_bw_factor:g}) + tree latency)",
                {"n": n, "local": local, "nodes": nodes, "pieces": k, "bytes moved / bw's bytes": scale},
                {"bus factor": SRC_NCCL, "layout": node.source, "NCCL tuner": tu.source},
                parts=[*bw.parts, t_lat])


def _intra_kind(node: Node) -> str:
    """The tuner's link class for a step inside the node: pcie, or nvlink for every scale-up fabric."""
    return "pcie" if node.scale_up.type == "pcie" else "nvlink"


def _ring_steps(tu: TunerLatency, node: Node, n, nodes):
    """The step latency of one ring pass over `n` ranks on `nodes` nodes, base aside (tuning.cc): n − nodes steps
    inside nodes, each at least 3·net_overhead once the ring leaves the node, and nodes − 1 across the network. A
    reduce-scatter or all-gather makes one pass, an all-reduce two."""
    hop = tu.ring_hop[_intra_kind(node)]
    intra = np.where(nodes > 1, np.maximum(hop, 3 * node.net_overhead), hop)
    return (n - nodes) * intra + (nodes - 1) * tu.ring_hop["net"]


@dataclass(frozen=True)
class TunerLatency:
    """NCCL's tuner constants for large messages (Simple protocol): ring and tree base latency and per-step
    latency by the link class a step crosses (nvlink, pcie, net), in seconds, and the tree's bandwidth factor."""

    ring_base: float
    ring_hop: dict
    tree_base: float
    tree_hop: dict
    tree_bw_factor: float
    source: str


def nccl_tuner() -> TunerLatency:
    """The `nccl-tuner` entry of catalog/data/interconnects.yaml."""
    key, e = default_catalog().entry("interconnects", "nccl-tuner")
    try:
        hops = {a: {k: float(e[f"{a}_hop_us"][k]) * 1e-6 for k in ("nvlink", "pcie", "net")} for a in ("ring", "tree")}
        factor = float(e["tree_bw_factor"])
        if not 0 < factor <= 1:
            raise ValueError(f"tree_bw_factor {factor} is not in (0, 1]")
        return TunerLatency(float(e["ring_base_us"]) * 1e-6, hops["ring"], float(e["tree_base_us"]) * 1e-6,
                            hops["tree"], factor, e["source"])
    except (KeyError, TypeError, ValueError) as err:
        raise AiinfraError(f"catalog interconnects '{key}' needs ring_base_us, tree_base_us, ring_hop_us and "
                           f"tree_hop_us {{nvlink, pcie, net}}, tree_bw_factor in (0, 1] and source ({err})") from None


def ring_collective_latency(n: Number, local: Number, node: Node, name: str = "ring latency") -> Term:
    """Latency of one reduce-scatter or all-gather over `n` ranks placed `local` per node, as NCCL's tuner prices a
    ring of large messages (src/graph/tuning.cc, Simple protocol): NCCL runs these two as rings only (no tree), so
    every rank is a step, and each step across nodes pays the network's per-hop latency:
      t = base + (n − nodes)·max(hop_intra, 3·net_overhead if nodes > 1) + (nodes − 1)·hop_net.
    A collective split into k buckets pays it k times; the bandwidth term does not change
    (all_reduce_bandwidth_time charges it)."""
    tu = nccl_tuner()
    n, local = _placement(n, local)
    nodes = n // local
    value = np.where(n > 1, tu.ring_base + _ring_steps(tu, node, n, nodes), 0.0)
    return Term(name, _scalar(value), "s", "base + (n − nodes)·max(hop_intra, 3·net_overhead) + (nodes − 1)·hop_net",
                {"n": n, "local": local, "nodes": nodes, "base": tu.ring_base,
                 "hop_intra": tu.ring_hop[_intra_kind(node)], "hop_net": tu.ring_hop["net"],
                 "net_overhead": node.net_overhead}, {"NCCL tuner": tu.source})


def _scalar(value):
    """0-d arrays back to floats so scalar calls print as numbers."""
    return float(value) if np.ndim(value) == 0 else value

"""All-reduce planning: gradient volume per step and its time on the designed fabric.

Volume per GPU per step = gradient bytes × 2(N−1)/N (nccl-tests PERFORMANCE.md). The time
comes from the perf package's α–β NCCL model (`aiinfra.perf.comm.hierarchical_all_reduce`):
NVLink inside a node, the node's NICs (one per rail) between nodes, at the fabric's link rate.
A leaf oversubscription o > 1 divides the NIC leg's bandwidth by o when the job spans SUs.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from aiinfra.errors import NotFoundError, SpecError
from aiinfra.explain import Term
from aiinfra.perf import comm

if TYPE_CHECKING:
    from aiinfra.cluster.fabric import Fabric
    from aiinfra.cluster.options import DesignInput

SRC_VOLUME = "nccl-tests doc/PERFORMANCE.md: all-reduce bus factor 2(n−1)/n (cluster_tco_anchors.md §2.4)"
# Fabric generation → perf's interconnect catalog key (interconnects.yaml on the perf branch).
_SCALE_OUT = {("infiniband", 200): "ib-hdr", ("infiniband", 400): "ib-ndr", ("infiniband", 800): "ib-xdr",
              ("ethernet", 100): "roce-100g", ("ethernet", 200): "roce-200g", ("ethernet", 400): "roce-400g", ("ethernet", 800): "roce-800g"}
_SCALE_UP = {"h100-sxm": "nvlink-4", "h200-sxm": "nvlink-4", "b200": "nvlink-5", "b300": "nvlink-5", "gb200": "nvlink-5", "gb300": "nvlink-5"}


def volume_per_gpu(grad_bytes: float, n: int) -> Term:
    """Bytes each GPU sends (and receives) in one ring all-reduce of `grad_bytes` over n ranks."""
    if n <= 0 or grad_bytes < 0:
        raise SpecError("all-reduce needs a positive rank count and non-negative gradient bytes")
    return Term("all-reduce volume per GPU per step", grad_bytes * 2 * (n - 1) / n, "B", "gradient bytes × 2(N−1)/N",
                {"gradient bytes": grad_bytes, "N": n}, {"bus factor": SRC_VOLUME})


def fabric_node(fab: Fabric) -> comm.Node:
    """perf's Node for this design: NVLink per the GPU, one NIC per rail at the fabric's link rate."""
    key = _SCALE_OUT.get((fab.switch.protocol, int(fab.link_gbps)))
    if key is None:
        raise SpecError(f"no NCCL link model for {fab.switch.protocol} at {fab.link_gbps:g} Gb/s")
    out = comm.link(key)
    rate = fab.link_gbps * 1e9 / 8
    if abs(out.bw - rate) > 1:
        out = out.scaled(rate, f"{fab.switch.key} at {fab.link_gbps:g} Gb/s")
    if fab.oversubscription > 1 and fab.sus > 1:
        out = out.scaled(out.bw / fab.oversubscription, f"leaf oversubscription {fab.oversubscription:g}:1 across SUs")
    try:
        from aiinfra.catalog.gpus import gpu

        up = comm.node_for(gpu(fab.system.gpu)).scale_up  # NVLink at the GPU's catalog rate
    except NotFoundError:
        up = comm.link(_SCALE_UP.get(fab.system.gpu, "nvlink-4"))
    return comm.Node(fab.system.key, fab.system.gpus, up, fab.rails, out, fab.system.source)


def plan(inp: DesignInput, params: float | None, params_src: str, fab: Fabric, gpus: int, domain: int | None = None) -> list[Term]:
    """Terms for the all-reduce of one step's gradients, or nothing when no model size is known.

    domain: GPUs in one NVLink domain when it spans more than a fabric node (an NVL72 rack of
    compute trays): the intra-node leg runs over NVLink across the whole domain, and the domain's
    NICs (one per GPU) carry the inter-domain leg.
    """
    if params is None:
        return []
    n = inp.dp or gpus
    if n > gpus:
        raise SpecError(f"data-parallel size {n} exceeds the {gpus} GPUs of the design")
    grad = Term("gradient bytes", params * inp.grad_bytes_per_param, "B", "parameters × gradient bytes per parameter",
                {"parameters": params, "bytes/param": inp.grad_bytes_per_param}, {"parameters": params_src})
    vol = volume_per_gpu(grad.value, n)
    vol.inputs["gradient bytes"] = grad
    node = fabric_node(fab)
    if domain is not None and domain > node.gpus_per_node:
        scale = domain // node.gpus_per_node
        node = dataclasses.replace(node, gpus_per_node=domain, nics_per_node=node.nics_per_node * scale)
    t = comm.hierarchical_all_reduce(grad.value, n, min(node.gpus_per_node, n), node, name="all-reduce time per step")
    return [vol, t]

"""Storage: RA Good/Better/Best bandwidth, capacity, checkpoints (Young/Daly), data loading.

Bandwidth follows the DGX SuperPOD H100 RA V11 Tables 5–6 (GB/s, 1e9 B/s): per node, per SU
and per 4 SU. A cluster of n SU gets the 4-SU figure × n/4 (one SU: the SU figure), never more
than nodes × the per-node figure. Checkpoints: Young's first-order optimum τ = √(2·δ·MTBF)
(Young 1974; Daly 2006), with the job MTBF from a per-GPU interruption rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from aiinfra.cluster.fabric import LeafSpine, leaf_spine
from aiinfra.cluster.parts import StorageTier, SwitchSpec, SystemSpec, constant, storage_tier
from aiinfra.errors import SpecError
from aiinfra.explain import Term
from aiinfra.units import GB, TB

SRC_TIERS = "DGX SuperPOD H100 RA V11 Tables 5–6 (catalog storage_tiers)"
SRC_YOUNG = "Young/Daly optimum τ = √(2·δ·MTBF): J. W. Young, CACM 1974; J. T. Daly, FGCS 2006 (cluster_tco_anchors.md §3.3)"
TIER_ORDER = ("good", "better", "best")


def tier_bandwidth(tier: StorageTier, nodes: int, sus: int) -> list[Term]:
    """Read/write bandwidth per node and for the cluster, in B/s."""
    if nodes <= 0 or sus <= 0:
        raise SpecError("storage sizing needs at least one node and one SU")
    out = [
        Term("storage read per node", tier.node_read_gbs * GB, "B/s", "RA per-node read", {"tier": tier.key}, {"tier": SRC_TIERS}),
        Term("storage write per node", tier.node_write_gbs * GB, "B/s", "RA per-node write", {"tier": tier.key}, {"tier": SRC_TIERS}),
    ]
    for op in ("read", "write"):
        out.append(Term(f"storage {op} per SU", getattr(tier, f"su_{op}_gbs") * GB, "B/s", f"RA single-SU aggregate {op}",
                        {"tier": tier.key}, {"tier": SRC_TIERS}))
    for op in ("read", "write"):
        su_figure = getattr(tier, f"su_{op}_gbs")
        su4_figure = getattr(tier, f"su4_{op}_gbs")
        node_figure = getattr(tier, f"node_{op}_gbs")
        scaled = su_figure if sus <= 1 else su4_figure * sus / 4
        value = min(scaled, nodes * node_figure)
        out.append(Term(
            f"storage {op} aggregate", value * GB, "B/s",
            "min(SU figure if 1 SU else 4-SU figure × SU/4, nodes × per-node figure)",
            {"tier": tier.key, "SU": sus, "nodes": nodes, "SU figure GB/s": su_figure, "4-SU figure GB/s": su4_figure, "per-node GB/s": node_figure},
            {"tier": SRC_TIERS},
        ))
    return out


def young_daly(delta_s: float, mtbf_s: float) -> Term:
    """Optimal checkpoint interval τ = √(2·δ·MTBF) for a blocking checkpoint of δ seconds."""
    if delta_s <= 0 or mtbf_s <= 0:
        raise SpecError("checkpoint time and MTBF must be positive")
    return Term("checkpoint interval (Young/Daly)", math.sqrt(2 * delta_s * mtbf_s), "s", "√(2 · δ · MTBF)",
                {"δ (s)": delta_s, "MTBF (s)": mtbf_s}, {"formula": SRC_YOUNG})


def job_mtbf(gpus: int, rate_per_gpu_hour: float | None = None) -> Term:
    """Mean time between job interruptions = 1 / (GPUs × per-GPU interruption rate)."""
    if gpus <= 0:
        raise SpecError(f"GPU count must be positive, not {gpus}")
    src = "given"
    if rate_per_gpu_hour is None:
        rate_per_gpu_hour, src = constant("gpu-interruptions-per-hour")
    if rate_per_gpu_hour <= 0:
        raise SpecError("the per-GPU interruption rate must be positive")
    return Term("job MTBF", 3600.0 / (gpus * rate_per_gpu_hour), "s", "1 / (GPUs × interruptions per GPU-hour)",
                {"GPUs": gpus, "interruptions per GPU-hour": rate_per_gpu_hour}, {"rate": src})


@dataclass
class StoragePlan:
    tier: StorageTier
    terms: list[Term]
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def term(self, name: str) -> Term:
        return next(t for t in self.terms if t.name == name)


def plan_storage(
    tier_name: str,
    system: SystemSpec,
    nodes: int,
    sus: int,
    params: float | None = None,
    bytes_per_param: float | None = None,
    dataset_bytes: float = 0.0,
    copies: int | None = None,
    checkpoints_kept: int | None = None,
    gpus: int | None = None,
    failure_rate: float | None = None,
    gds: bool = True,
    samples_per_s_per_gpu: float | None = None,
    bytes_per_sample: float | None = None,
) -> StoragePlan:
    """Bandwidth, capacity, checkpoint timing and a data-loading check for one storage tier."""
    tier = storage_tier(tier_name)
    if dataset_bytes < 0:
        raise SpecError("dataset size cannot be negative")
    terms = tier_bandwidth(tier, nodes, sus)
    by = {t.name: t for t in terms}
    facts: dict[str, Any] = {"tier": tier.key, "tier_workloads": tier.workloads, "gds": gds}
    warnings: list[str] = []
    gpus = gpus or nodes * system.gpus

    # Capacity: datasets × working copies + retained checkpoints, plus free space for the PFS.
    copies_v, copies_src = (float(copies), "given") if copies is not None else constant("dataset-working-copies")
    kept_v, kept_src = (float(checkpoints_kept), "given") if checkpoints_kept is not None else constant("checkpoints-kept")
    bpp, bpp_src = (float(bytes_per_param), "given") if bytes_per_param is not None else constant("checkpoint-bytes-per-param")
    if copies_v < 1 or kept_v < 0 or bpp <= 0:
        raise SpecError("working copies must be ≥ 1, checkpoints kept ≥ 0 and bytes per parameter > 0")
    ckpt = None
    if params is not None:
        if params <= 0:
            raise SpecError(f"parameter count must be positive, not {params:g}")
        ckpt = Term("checkpoint size", params * bpp, "B", "parameters × bytes per parameter",
                    {"parameters": params, "bytes/param": bpp}, {"bytes/param": bpp_src})
        terms.append(ckpt)
    data = Term("datasets × working copies", dataset_bytes * copies_v, "B", "dataset bytes × copies",
                {"dataset bytes": dataset_bytes, "copies": copies_v}, {"copies": copies_src})
    parts = [data]
    if ckpt is not None:
        parts.append(Term("retained checkpoints", ckpt.value * kept_v, "B", "checkpoint size × kept",
                          {"checkpoint size": ckpt, "kept": kept_v}, {"kept": kept_src}))
    used = Term("storage capacity used", sum(p.value for p in parts), "B", " + ".join(p.name for p in parts), parts=parts)
    free, free_src = constant("pfs-free-fraction")
    terms.append(used)
    terms.append(Term("storage capacity to provision", used.value / (1 - free), "B", "used / (1 − free fraction)",
                      {"used": used, "free fraction": free}, {"free fraction": free_src}))

    # Checkpoints: blocking write time at the aggregate write bandwidth, then Young/Daly.
    if ckpt is not None:
        write = by["storage write aggregate"]
        delta = Term("checkpoint write time", ckpt.value / write.value, "s", "checkpoint size / aggregate write bandwidth",
                     {"checkpoint size": ckpt, "write bandwidth": write})
        mtbf = job_mtbf(gpus, failure_rate)
        tau = young_daly(delta.value, mtbf.value)
        stall = Term("training stalled by checkpoints", delta.value / tau.value, "fraction", "δ / τ", {"δ": delta, "τ": tau},
                     note="synchronous checkpoints block training; asynchronous two-phase checkpointing hides most of δ")
        lost = Term("checkpoint overhead incl. rework", delta.value / tau.value + tau.value / (2 * mtbf.value), "fraction",
                    "δ/τ + τ/(2·MTBF)", {"δ": delta, "τ": tau, "MTBF": mtbf}, {"formula": SRC_YOUNG})
        terms += [delta, mtbf, tau, stall, lost]

    # Data loading: bytes the GPUs consume vs what the tier and the storage NICs deliver.
    if samples_per_s_per_gpu is not None or bytes_per_sample is not None:
        if not samples_per_s_per_gpu or not bytes_per_sample or samples_per_s_per_gpu <= 0 or bytes_per_sample <= 0:
            raise SpecError("data-loading needs both a positive --samples-per-s (per GPU) and --bytes-per-sample")
        loading = data_loading(tier, system, nodes, by, samples_per_s_per_gpu, bytes_per_sample, dataset_bytes, gds)
        terms += loading.pop("terms")
        facts["data_loading"] = loading
        if not loading["fed"]:
            warnings.append("storage does not keep the GPUs fed: " + "; ".join(loading["remedies"]))
    return StoragePlan(tier, terms, facts, warnings)


def data_loading(tier: StorageTier, system: SystemSpec, nodes: int, bw: dict[str, Term], samples: float, sample_bytes: float,
                 dataset_bytes: float, gds: bool) -> dict[str, Any]:
    """Is the input pipeline fed? If not, which of a better tier, local NVMe caching or GDS closes the gap."""
    per_node = Term("data demand per node", samples * sample_bytes * system.gpus, "B/s", "samples/s per GPU × bytes/sample × GPUs per node",
                    {"samples/s per GPU": samples, "bytes/sample": sample_bytes, "GPUs per node": system.gpus})
    cluster = Term("data demand cluster", per_node.value * nodes, "B/s", "per-node demand × nodes", {"per node": per_node, "nodes": nodes})
    nic = Term("storage NIC line rate per node", system.storage_ports * system.storage_port_gbps * 1e9 / 8, "B/s",
               "storage ports × port Gb/s / 8", {"ports": system.storage_ports, "Gb/s": system.storage_port_gbps}, {"system": system.source})
    node_ok = per_node.value <= bw["storage read per node"].value
    cluster_ok = cluster.value <= bw["storage read aggregate"].value
    nic_ok = per_node.value <= nic.value
    remedies: list[str] = []
    if not (node_ok and cluster_ok and nic_ok):
        covered = False
        for name in TIER_ORDER[TIER_ORDER.index(tier.key) + 1 :] if tier.key in TIER_ORDER else ():
            better = {t.name: t.value for t in tier_bandwidth(storage_tier(name), nodes, max(1, math.ceil(nodes / 32)))}
            if per_node.value <= better["storage read per node"] and cluster.value <= better["storage read aggregate"]:
                node_gbs, all_gbs = better["storage read per node"] / GB, better["storage read aggregate"] / GB
                remedies.append(f"the '{name}' tier reads {node_gbs:g} GB/s per node and {all_gbs:g} GB/s in all")
                covered = True
                break
        if not cluster_ok and not covered:
            remedies.append(f"provision {cluster.value / GB:,.0f} GB/s of aggregate read, {cluster.value / bw['storage read aggregate'].value:.1f}× the '{tier.key}' tier")
        if system.local_nvme_tb and 0 < dataset_bytes <= system.local_nvme_tb * TB:
            remedies.append(f"cache the {dataset_bytes / TB:g} TB dataset on the {system.local_nvme_tb:g} TB local NVMe, so only the first epoch reads the file system")
        elif system.local_nvme_tb and dataset_bytes == 0:
            remedies.append(f"cache the dataset on the {system.local_nvme_tb:g} TB local NVMe if it fits")
        if not gds and not node_ok:
            gds_gbs, _ = constant("gds-read-gbs")
            remedies.append(f"enable GPUDirect Storage (the RA shows over {gds_gbs:g} GB/s per node straight into GPU memory, skipping the CPU bounce buffer)")
        if not nic_ok:
            remedies.append(f"the node's storage NICs carry only {nic.value / GB:g} GB/s; add storage ports or read from local NVMe")
    return {
        "terms": [per_node, cluster, nic],
        "fed": node_ok and cluster_ok and nic_ok,
        "per_node_ok": node_ok,
        "aggregate_ok": cluster_ok,
        "nic_ok": nic_ok,
        "remedies": remedies,
    }


def storage_fabric(sw: SwitchSpec, system: SystemSpec, node_ports: int, stor: StoragePlan, ports_name: str) -> LeafSpine:
    """A storage leaf–spine: the nodes' storage ports plus storage-side ports for the tier's read rate.

    ports_name: what the system's storage ports are, for the error ("storage NICs", "BlueField-3 ports").
    """
    rate = system.storage_port_gbps
    if rate not in sw.speeds:
        raise SpecError(f"storage switch {sw.key} has no {rate:g} Gb/s ports for {system.key}'s {ports_name}; choose --storage-switch")
    storage_side = math.ceil(stor.term("storage read aggregate").value * 8 / (rate * 1e9))
    o, _ = constant("storage-fabric-oversubscription")
    return leaf_spine(node_ports + storage_side, sw, rate, o)

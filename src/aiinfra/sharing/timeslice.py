"""Time-slicing and MPS: replicas per GPU from workload memory needs, and the warnings that matter.

Facts used (NVIDIA k8s-device-plugin v0.20.0 api/config/v1, GPU Operator gpu-sharing docs):
- replicas is node-wide and the same for every GPU of a node; it must be ≥ 2 ("number of replicas
  must be >= 2"); the scheduler treats replicas as identical, so any `replicas` pods may share a GPU;
- time-slicing gives no memory isolation: pods that together exceed GPU memory fail with OOM;
- MPS: at most 48 clients per GPU on Volta and newer (16 before Volta); each client gets an equal
  share of device memory (memory limit = GPU memory / replicas); MPS is not supported on MIG devices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aiinfra.errors import AiinfraError, DoesNotFitError, SpecError
from aiinfra.explain import Result, Term
from aiinfra.sharing.workloads import Workload

PLUGIN_SOURCE = "NVIDIA/k8s-device-plugin v0.20.0 api/config/v1/replicas.go (replicas >= 2), README 'Shared Access to GPUs'"
MPS_SOURCE = "GPU Operator docs gpu-sharing-mps: max 48 clients per GPU (Volta+), 16 pre-Volta; equal memory share per client"
MPS_MAX_CLIENTS = 48
MPS_MAX_CLIENTS_PRE_VOLTA = 16


@dataclass(frozen=True)
class GpuMemory:
    name: str
    bytes: float
    source: str


def gpu_memory(name: str) -> GpuMemory:
    """Memory of a GPU by catalog key (gpus.yaml, GB), falling back to the MIG table's total MiB."""
    from aiinfra.catalog.gpus import gpu as catalog_gpu
    from aiinfra.errors import NotFoundError
    from aiinfra.sharing.mig import mig_gpu

    try:
        spec = catalog_gpu(name)
        return GpuMemory(spec.key, spec.memory_gb * 1e9, f"catalog gpus.yaml '{spec.key}' memory_gb")
    except NotFoundError:
        table = mig_gpu(name)
        if table.total_memory_mib:
            return GpuMemory(table.name, table.total_memory_mib * 2**20, f"mig_profiles.yaml '{table.name}' total_memory_mib")
        biggest = max(table.profiles.values(), key=lambda p: p.size)
        return GpuMemory(table.name, biggest.name_gb * 1e9, f"name of the full-GPU profile {biggest.name}")


def _worst_case(workloads: list[Workload], replicas: int) -> float:
    """Memory of the `replicas` largest copies: the worst set the scheduler may put on one GPU."""
    sizes = sorted((w.memory_bytes for w in workloads for _ in range(min(w.count, replicas))), reverse=True)
    return sum(sizes[:replicas])


def _needs_memory(workloads: list[Workload], mode: str) -> None:
    for w in workloads:
        if w.memory_gb is None:
            raise SpecError(f"workload '{w.name}' needs memory_gb for {mode} (a MIG profile name is not a {mode} request)")


def plan_sharing(mode: str, gpu: GpuMemory, workloads: list[Workload], replicas: int | None = None, pre_volta: bool = False) -> Result:
    """Replicas per GPU, GPUs needed and warnings for time-slicing ('timeslice') or MPS ('mps')."""
    if mode not in ("timeslice", "mps"):
        raise SpecError(f"sharing mode must be timeslice or mps, not '{mode}'")
    _needs_memory(workloads, mode)
    largest = max(workloads, key=lambda w: w.memory_bytes)
    if largest.memory_bytes > gpu.bytes:
        raise DoesNotFitError(
            f"workload '{largest.name}' needs {largest.memory_gb:g} GB but one {gpu.name} has {gpu.bytes / 1e9:.1f} GB; it cannot share a GPU"
        )
    cap = (MPS_MAX_CLIENTS_PRE_VOLTA if pre_volta else MPS_MAX_CLIENTS) if mode == "mps" else None
    safe = math.floor(gpu.bytes / largest.memory_bytes)
    if cap:
        safe = min(safe, cap)
    chosen = replicas if replicas is not None else safe
    warnings: list[str] = []
    if chosen < 2:
        raise DoesNotFitError(
            f"only {chosen} copy of '{largest.name}' ({largest.memory_gb:g} GB) fits in {gpu.bytes / 1e9:.1f} GB, "
            "and the device plugin needs replicas ≥ 2; give it whole GPUs instead of sharing"
        )
    if cap and chosen > cap:
        raise SpecError(f"MPS allows at most {cap} clients per GPU, not {chosen}")
    total = sum(w.count for w in workloads)
    gpus = math.ceil(total / chosen)
    replicas_term = Term(
        "replicas per GPU",
        chosen,
        "replicas",
        formula="given" if replicas is not None else ("min(⌊GPU memory / largest need⌋, client cap)" if cap else "⌊GPU memory / largest need⌋"),
        inputs={"GPU memory (GB)": gpu.bytes / 1e9, "largest need (GB)": largest.memory_gb, **({"client cap": cap} if cap else {})},
        sources={"GPU memory": gpu.source, "replicas ≥ 2": PLUGIN_SOURCE, **({"client cap": MPS_SOURCE} if cap else {})},
    )
    terms = [
        replicas_term,
        Term(f"{'time-sliced' if mode == 'timeslice' else 'MPS'} GPUs needed", gpus, "GPUs", formula="⌈copies / replicas⌉", inputs={"copies": total, "replicas": chosen},
             note="replicas are identical to the scheduler, so any pods may share a GPU"),
    ]
    worst = _worst_case(workloads, chosen)
    if mode == "timeslice":
        terms.append(Term("worst-case memory on one GPU", worst, "B", formula="Σ of the `replicas` largest copies",
                          inputs={"replicas": chosen}, sources={"no isolation": PLUGIN_SOURCE}))
        if worst > gpu.bytes:
            warnings.append(
                f"time-sliced workloads can exceed GPU memory together: {chosen} copies may need {worst / 1e9:.1f} GB "
                f"on one {gpu.name} ({gpu.bytes / 1e9:.1f} GB) and time-slicing has no memory isolation"
            )
        warnings.append("time-slicing shares compute by turns: a replica is not a proportional share of the GPU")
    else:
        limit = gpu.bytes / chosen
        terms.append(Term("memory limit per client", limit, "B", formula="GPU memory / replicas",
                          inputs={"GPU memory (GB)": gpu.bytes / 1e9, "replicas": chosen}, sources={"equal share": MPS_SOURCE}))
        over = [w for w in workloads if w.memory_bytes > limit]
        if over:
            raise DoesNotFitError(
                f"with {chosen} MPS clients each gets {limit / 1e9:.1f} GB, less than "
                + ", ".join(f"'{w.name}' needs ({w.memory_gb:g} GB)" for w in over)
            )
        warnings.append("MPS is not supported on MIG devices; use it on whole GPUs only")
    facts = {"mode": mode, "gpu": gpu.name, "replicas": chosen, "GPUs needed": gpus, "copies": total}
    return Result(title=f"{'Time-slicing' if mode == 'timeslice' else 'MPS'} on {gpu.name}", terms=terms, facts=facts, warnings=warnings)


def check_mode_against_mig(mode: str, mig_enabled: bool) -> None:
    if mode == "mps" and mig_enabled:
        raise AiinfraError("MPS is not supported on devices with MIG enabled (k8s-device-plugin); use time-slicing or whole GPUs")

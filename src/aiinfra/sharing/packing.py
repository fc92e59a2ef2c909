"""Exact MIG packing: place workloads on the fewest GPUs, then strand the fewest slices.

Method: an integer program solved by HiGHS (highspy). Columns are the valid geometries of the GPU
(mig.geometries, the placement model of the MIG User Guide), so any solution is placeable:

    x_g ∈ ℕ      GPUs configured with geometry g
    y_wp ∈ ℕ     copies of workload w served by profile p (p among the profiles that meet w's needs)
    Σ_p y_wp = n_w                      every copy is placed
    Σ_w y_wp ≤ Σ_g cnt_g(p) · x_g       instances of p exist for them
    Σ_g x_g ≤ GPUs available
    minimise  W · Σ_g x_g + stranded,   stranded = Σ_g x_g (slots + slices) − Σ y_wp (size_p + compute_p)

W exceeds any possible stranded total, so the GPU count is minimised first. HiGHS reports
optimality; the plan says so only when HiGHS proves it.

Baseline: nos (nebuly-ai) GPU partitioner's greedy over its hand-written "known geometries"
(config/gpupartitioner/manager/known_mig_geometries.yaml @ 12e0a72): for each GPU in turn it picks
the known geometry that provides the most still-lacking profiles (internal/partitioning/core/planner.go).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field

from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import AiinfraError, DoesNotFitError, SpecError
from aiinfra.explain import Result, Term
from aiinfra.sharing.mig import (
    MigGpu,
    MigProfile,
    geometries,
    geometry_label,
    parse_profile,
)
from aiinfra.sharing.workloads import Workload

NOS_SOURCE = "nebuly-ai/nos known_mig_geometries.yaml @ 12e0a72 and planner.go (greedy per GPU)"


@dataclass
class GpuAssignment:
    index: int  # global GPU index in the pool
    node: int
    local: int  # GPU index on its node (mig-parted `devices`)
    geometry: dict[str, int]
    workloads: list[str] = field(default_factory=list)


@dataclass
class MigPacking:
    gpu: MigGpu
    gpus_used: int
    stranded_slots: int
    stranded_compute: int
    optimal: bool
    status: str
    lower_bound: int
    assignments: list[GpuAssignment]
    choice: dict[str, dict[str, int]]  # workload → profile → copies


def candidates(gpu: MigGpu, w: Workload) -> list[MigProfile]:
    """Profiles that can serve a workload: the named one, or the smallest base profiles meeting its needs."""
    if w.profile:
        return [gpu.profile(w.profile)]
    fit = [p for p in gpu.base_profiles if p.memory_bytes >= w.memory_bytes and p.compute >= w.compute_slices]
    if not fit:
        biggest = max(gpu.base_profiles, key=lambda p: (p.size, p.compute))
        raise DoesNotFitError(
            f"workload '{w.name}' does not fit any MIG profile of {gpu.name}: it needs {w.memory_gb:g} GB and "
            f"{w.compute_slices} compute slices, the largest profile {biggest.name} has "
            f"{biggest.memory_bytes / 1e9:.1f} GB and {biggest.compute} slices"
        )
    smallest = min(p.size for p in fit)
    return sorted((p for p in fit if p.size == smallest), key=lambda p: (p.compute, p.name))


def lower_bound(gpu: MigGpu, workloads: list[Workload], cands: dict[str, list[MigProfile]] | None = None) -> Term:
    """GPUs needed at least: memory slots and compute slices of the smallest candidate of each workload."""
    cands = cands if cands is not None else {w.name: candidates(gpu, w) for w in workloads}
    slots = sum(min(p.size for p in cands[w.name]) * w.count for w in workloads)
    compute = sum(min(p.compute for p in cands[w.name]) * w.count for w in workloads)
    value = max(math.ceil(slots / gpu.memory_slots), math.ceil(compute / gpu.compute_slices)) if workloads else 0
    return Term(
        "lower bound",
        value,
        "GPUs",
        formula="max(⌈Σ slots / slots per GPU⌉, ⌈Σ compute / slices per GPU⌉)",
        inputs={"Σ slots": slots, "slots per GPU": gpu.memory_slots, "Σ compute": compute, "slices per GPU": gpu.compute_slices},
        sources={"slots, slices": gpu.layout_source},
    )


def quiet_highs(highspy):
    """A silent HiGHS. Its constructor prints a licence banner from C++ straight to file descriptor 1,
    which would corrupt `--format json` on stdout and is noise on stderr; it goes to the null device."""
    import os
    import sys

    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        h = highspy.Highs()
        h.silent()
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)
    return h


def pack_mig(gpu: MigGpu, workloads: list[Workload], gpus_available: int, gpus_per_node: int = 8, time_limit_s: float = 30.0) -> MigPacking:
    """Solve the packing exactly (see module docstring); raise DoesNotFitError when it cannot fit.

    Workloads with the same candidate profiles are interchangeable, so the program has one y variable
    per (candidate set, profile), not per workload: its size depends on the GPU's profiles, not on how
    many workload entries there are. The chosen counts are then handed back to the workloads in order.
    """
    import highspy

    if gpus_available < 0 or gpus_per_node < 1:
        raise SpecError("GPU counts must be positive")
    cands = {w.name: candidates(gpu, w) for w in workloads}
    for ps in {tuple(p.name for p in ps): ps for ps in cands.values()}.values():
        for p in ps:
            if p.max_count == 0:
                raise DoesNotFitError(f"profile {p.name} cannot be created on {gpu.name}")
    lb = lower_bound(gpu, workloads, cands)
    if lb.value > gpus_available:
        raise DoesNotFitError(
            f"the workloads need at least {lb.value} {gpu.name} GPUs ({lb.inputs['Σ slots']} memory slots, "
            f"{lb.inputs['Σ compute']} compute slices) but only {gpus_available} are available"
        )
    groups: dict[tuple[str, ...], int] = {}  # candidate set → copies
    for w in workloads:
        key = tuple(p.name for p in cands[w.name])
        groups[key] = groups.get(key, 0) + w.count
    used_profiles = sorted({p for key in groups for p in key})
    variants = any(not gpu.profiles[p].is_base for p in used_profiles)
    allowed = set(used_profiles)
    geoms = [g for g in geometries(gpu, variants=variants) if set(g) <= allowed]
    per_gpu = gpu.memory_slots + gpu.compute_slices
    weight = per_gpu * max(gpus_available, 1) + 1

    h = quiet_highs(highspy)
    h.setOptionValue("time_limit", float(time_limit_s))
    h.setOptionValue("threads", 1)  # deterministic
    inf = highspy.kHighsInf
    # Columns: x_g (one per geometry), then y_(group, profile).
    n_x = len(geoms)
    y_index: list[tuple[tuple[str, ...], str]] = [(key, p) for key in groups for p in key]
    costs = [float(weight + per_gpu)] * n_x + [-float(gpu.profiles[p].size + gpu.profiles[p].compute) for _, p in y_index]
    upper = [float(gpus_available)] * n_x + [float(groups[key]) for key, _ in y_index]
    n = len(costs)
    h.addVars(n, [0.0] * n, upper)
    h.changeColsCost(n, list(range(n)), costs)
    h.changeColsIntegrality(n, list(range(n)), [highspy.HighsVarType.kInteger] * n)
    col = {yk: n_x + i for i, yk in enumerate(y_index)}
    for key, copies in groups.items():  # every copy is placed
        idx = [col[(key, p)] for p in key]
        h.addRow(float(copies), float(copies), len(idx), idx, [1.0] * len(idx))
    for pname in used_profiles:  # demand of p ≤ supply of p
        supply = [(i, -float(g[pname])) for i, g in enumerate(geoms) if g.get(pname)]
        if not supply:
            raise DoesNotFitError(f"no valid geometry of {gpu.name} contains {pname}")
        demand = [(col[(key, p)], 1.0) for key, p in y_index if p == pname]
        idx, val = zip(*(demand + supply))
        h.addRow(-inf, 0.0, len(idx), list(idx), list(val))
    h.addRow(-inf, float(gpus_available), n_x, list(range(n_x)), [1.0] * n_x)
    h.changeObjectiveSense(highspy.ObjSense.kMinimize)
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    if status == "Infeasible":
        total = sum(w.count for w in workloads)
        need = pack_mig(gpu, workloads, total, gpus_per_node, time_limit_s).gpus_used if total > gpus_available else None
        caps = ", ".join(sorted({f"{p.name} max {p.max_count}/GPU" for key in groups for p in (gpu.profiles[q] for q in key)}))
        raise DoesNotFitError(
            f"the workloads do not fit on {gpus_available} {gpu.name} GPUs: they need "
            f"{need if need is not None else 'more'} because of the per-GPU caps and placements ({caps})"
        )
    if status not in ("Optimal", "Time limit reached") or h.getInfo().primal_solution_status < 2:
        raise AiinfraError(f"the MIG packing solver stopped without a solution ({status})")
    values = list(h.getSolution().col_value)  # fetched once: h.val() copies the whole solution per call
    xs = [round(v) for v in values[:n_x]]
    pool = {yk: round(values[col[yk]]) for yk in y_index}
    choice: dict[str, dict[str, int]] = {}
    for w in workloads:  # hand the group's counts to its workloads, in input order
        key = tuple(p.name for p in cands[w.name])
        need = w.count
        for p in key:
            take = min(need, pool[(key, p)])
            if take:
                pool[(key, p)] -= take
                choice.setdefault(w.name, {})[p] = take
                need -= take
        if need:  # pragma: no cover - the equality rows guarantee it
            raise AiinfraError(f"internal: {need} copies of {w.name} left unplaced")
    assignments = _assign(gpu, geoms, xs, choice, gpus_per_node)
    n_used = len(assignments)
    served_slots = sum(gpu.profiles[p].size * n for ch in choice.values() for p, n in ch.items())
    served_compute = sum(gpu.profiles[p].compute * n for ch in choice.values() for p, n in ch.items())
    return MigPacking(
        gpu=gpu,
        gpus_used=n_used,
        stranded_slots=n_used * gpu.memory_slots - served_slots,
        stranded_compute=n_used * gpu.compute_slices - served_compute,
        optimal=status == "Optimal",
        status=status,
        lower_bound=int(lb.value),
        assignments=assignments,
        choice=choice,
    )


def _assign(gpu: MigGpu, geoms: list[dict[str, int]], xs: list[int], choice: dict[str, dict[str, int]], gpus_per_node: int) -> list[GpuAssignment]:
    """Turn geometry counts into per-GPU instances, trimmed to the instances a workload uses.

    Each profile keeps a queue of the GPUs that still have a free instance of it (first GPU first), so
    handing out c copies costs O(c + GPUs), not O(c × GPUs)."""
    slots: list[dict[str, int]] = []
    for g, n in zip(geoms, xs):
        slots += [dict(g) for _ in range(n)]
    # Biggest geometries first, so GPUs fill node by node in a stable order.
    slots.sort(key=lambda g: (-sum(gpu.profiles[p].compute * k for p, k in g.items()), sorted(g.items())))
    out = [GpuAssignment(i, i // gpus_per_node, i % gpus_per_node, {}) for i in range(len(slots))]
    free: dict[str, deque[int]] = {}
    for i, g in enumerate(slots):
        for p in g:
            free.setdefault(p, deque()).append(i)
    for wn in sorted(choice):
        for pn, n in sorted(choice[wn].items()):
            queue = free.get(pn, deque())
            for _ in range(n):
                if not queue:  # pragma: no cover - the constraints guarantee supply
                    raise AiinfraError(f"internal: no {pn} instance left for {wn}")
                i = queue[0]
                slots[i][pn] -= 1
                if slots[i][pn] == 0:
                    queue.popleft()
                a = out[i]
                a.geometry[pn] = a.geometry.get(pn, 0) + 1
                a.workloads.append(f"{wn}:{pn}")
    return [a for a in out if a.geometry]


# --------------------------------------------------------------------------- nos baseline


def nos_geometries(gpu: MigGpu) -> tuple[list[dict[str, int]], str]:
    """nos's known geometries for this GPU, mapped to its profiles by placement class.

    nos ships lists for A30, A100-40GB and A100-80GB only; other GPUs get the list of the same
    layout (A100-80GB for 7-slice GPUs, A30 for 4-slice ones), translated by '<G>g' class, whatever
    memory slots NVML numbers (the RTX PRO 6000's 12 units hold the A30's 4 quarters). nos's own
    typos ('3g.20gb' in the 80GB list, '7g.79gb') map to the class they stand for.
    """
    table = default_catalog().table("mig_known_geometries")
    own = [k for k, e in table.items() if set(_pci(e)) & set(gpu.pci_device_ids)]
    if own:
        key, how = own[0], f"nos list '{own[0]}'"
    else:
        key = "a100-80gb" if gpu.compute_slices == 7 else "a30"
        how = f"nos list '{key}' translated by placement class (nos has no {gpu.name} list)"
    by_g = {}
    for p in gpu.base_profiles:
        if p.klass in ("1g", "2g", "3g", "4g", "7g"):  # not 1g2, the 1-slice profile with twice the memory
            by_g[p.compute] = p.name
    out = []
    for geo in table[key]["geometries"]:
        mapped: Counter = Counter()
        for name, n in geo.items():
            g = parse_profile(name)["gpu_slices"]
            if g not in by_g:
                break
            mapped[by_g[g]] += int(n)
        else:
            out.append(dict(mapped))
    return out, how


def _pci(entry: dict) -> list[str]:
    return [str(p).lower() for p in entry.get("pci_device_ids", [])]


@dataclass
class BaselineResult:
    gpus_used: int | None  # None: some profile is in no known geometry
    geometries: list[dict[str, int]]
    unplaceable: dict[str, int]
    how: str


def first_fit_nos(gpu: MigGpu, demand: dict[str, int], max_gpus: int = 100_000) -> BaselineResult:
    """nos planner: per GPU, the known geometry giving the most lacking profiles (first on ties)."""
    known, how = nos_geometries(gpu)
    lacking = Counter({k: v for k, v in demand.items() if v > 0})
    used: list[dict[str, int]] = []
    while lacking and len(used) < max_gpus:
        best, best_gain = None, 0
        for g in known:
            gain = sum(min(n, lacking.get(p, 0)) for p, n in g.items())
            if gain > best_gain:
                best, best_gain = g, gain
        if best is None:
            break
        used.append(best)
        for p, n in best.items():
            lacking[p] -= min(n, lacking.get(p, 0))
        lacking = +lacking
    if lacking:
        return BaselineResult(None, used, dict(lacking), how)
    return BaselineResult(len(used), used, {}, how)


def baseline_demand(gpu: MigGpu, workloads: list[Workload]) -> dict[str, int]:
    """The profiles the baseline must place: each workload's first candidate that nos knows, else its first."""
    known = {p for g in nos_geometries(gpu)[0] for p in g}
    demand: Counter = Counter()
    for w in workloads:
        cands = candidates(gpu, w)
        pick = next((p for p in cands if p.name in known), cands[0])
        demand[pick.name] += w.count
    return dict(demand)


# --------------------------------------------------------------------------- explained result


def packing_result(pack: MigPacking, base: BaselineResult, gpus_available: int) -> Result:
    gpu = pack.gpu
    method = "integer program (HiGHS)"
    terms = [
        Term(
            "GPUs used (MIG)",
            pack.gpus_used,
            "GPUs",
            formula="min Σ_g x_g subject to every workload copy on a valid geometry",
            inputs={"solver status": pack.status, "optimal": pack.optimal, "lower bound": pack.lower_bound},
            sources={"placement rules": gpu.layout_source, "profiles": gpu.source},
        ),
        Term(
            "stranded memory slots",
            pack.stranded_slots,
            "slots",
            formula="GPUs used × slots per GPU − Σ slots of instances serving workloads",
            inputs={"GPUs used": pack.gpus_used, "slots per GPU": gpu.memory_slots},
        ),
        Term(
            "stranded compute slices",
            pack.stranded_compute,
            "slices",
            formula="GPUs used × slices per GPU − Σ slices of instances serving workloads",
            inputs={"GPUs used": pack.gpus_used, "slices per GPU": gpu.compute_slices},
        ),
        Term(
            "GPUs used (nos first-fit)",
            base.gpus_used if base.gpus_used is not None else float("nan"),
            "GPUs",
            formula="per GPU, the known geometry that provides the most lacking profiles",
            inputs={"geometries": base.how, "cannot place": base.unplaceable or "-"},
            sources={"baseline": NOS_SOURCE},
        ),
    ]
    warnings = []
    if not pack.optimal:
        warnings.append(f"solver stopped at '{pack.status}'; the plan is feasible but not proven optimal")
    if base.gpus_used is None:
        warnings.append(
            "nos first-fit cannot place " + ", ".join(f"{n}× {p}" for p, n in sorted(base.unplaceable.items())) + " (no known geometry contains them)"
        )
    facts = {
        "gpu": gpu.catalog_gpu or gpu.name,
        "mig table": f"{gpu.name} (PCI {', '.join(gpu.pci_device_ids)})",
        "method": method,
        "optimal": pack.optimal,
        "GPUs available": gpus_available,
        "GPUs used": pack.gpus_used,
        "nos first-fit GPUs": base.gpus_used if base.gpus_used is not None else "cannot place all",
        "per GPU": [
            {"gpu": a.index, "node": a.node, "device": a.local, "geometry": geometry_label(a.geometry), "workloads": a.workloads}
            for a in pack.assignments
        ],
        "profiles chosen": pack.choice,
    }
    return Result(title=f"MIG plan on {gpu.name}", terms=terms, facts=facts, warnings=warnings)


# --------------------------------------------------------------------------- whole plan (MIG + time-sliced GPUs)


@dataclass
class Plan:
    gpu: MigGpu
    mig: MigPacking | None
    baseline: BaselineResult | None
    sharing: Result | None  # time-slicing of soft-isolation workloads
    shared_gpus: int
    replicas: int
    gpus_per_node: int
    result: Result
    soft: list[Workload] = field(default_factory=list)  # the time-sliced workloads, in input order


def plan(gpu: MigGpu, workloads: list[Workload], gpus_available: int, gpus_per_node: int = 8) -> Plan:
    """Hard-isolation workloads (and any that name a profile) get MIG instances, packed exactly;
    soft ones with a memory need share whole GPUs by time-slicing, after the MIG GPUs."""
    from aiinfra.sharing.timeslice import GpuMemory, gpu_memory, plan_sharing

    if gpus_available < 1:
        raise SpecError("--gpus must be at least 1")
    # Partition in one pass: `w not in hard` compared pydantic models pairwise (quadratic).
    hard = [w for w in workloads if w.isolation == "hard" or w.profile]
    soft = [w for w in workloads if not (w.isolation == "hard" or w.profile)]
    pack = pack_mig(gpu, hard, gpus_available, gpus_per_node) if hard else None
    base = first_fit_nos(gpu, baseline_demand(gpu, hard)) if hard else None
    used = pack.gpus_used if pack else 0
    sharing, shared, replicas = None, 0, 0
    if soft:
        mem = gpu_memory(gpu.catalog_gpu) if gpu.catalog_gpu else gpu_memory(gpu.name)
        mem = GpuMemory(mem.name, mem.bytes, mem.source)
        sharing = plan_sharing("timeslice", mem, soft)
        shared, replicas = int(sharing.facts["GPUs needed"]), int(sharing.facts["replicas"])
        if used + shared > gpus_available:
            raise DoesNotFitError(
                f"the workloads need {used} MIG GPUs and {shared} time-sliced GPUs ({replicas} replicas each), "
                f"{used + shared} in all, but only {gpus_available} are available"
            )
    if pack:
        result = packing_result(pack, base, gpus_available)
    else:
        result = Result(title=f"Sharing plan on {gpu.name}", facts={"gpu": gpu.catalog_gpu or gpu.name, "GPUs available": gpus_available})
    if sharing:
        result.terms += sharing.terms
        result.warnings += sharing.warnings
        result.facts["time-sliced GPUs"] = shared
        result.facts["time-slicing replicas"] = replicas
        result.facts["GPUs used"] = used + shared
    out = Plan(gpu, pack, base, sharing, shared, replicas, gpus_per_node, result, soft)
    result.facts["per node"] = {
        f"node {n}": [{"devices": devs, "mig-enabled": bool(geo), **({"mig-devices": geo} if geo else {})} for devs, geo in entries]
        for n, entries in node_layout(out).items()
    }
    return out


def node_layout(p: Plan) -> dict[int, list[tuple[list[int], dict[str, int] | None]]]:
    """Per node: (GPU indices, geometry or None for a whole GPU), identical geometries grouped."""
    nodes: dict[int, dict[str, tuple[list[int], dict[str, int] | None]]] = {}
    gpus = [(a.index, a.geometry) for a in (p.mig.assignments if p.mig else [])]
    start = len(gpus)
    gpus += [(start + i, None) for i in range(p.shared_gpus)]
    n_nodes = math.ceil(len(gpus) / p.gpus_per_node) if gpus else 0
    for node in range(n_nodes):
        nodes[node] = {}
    for idx, geo in gpus:
        node, local = divmod(idx, p.gpus_per_node)
        key = repr(sorted(geo.items())) if geo else "whole"
        devs, _ = nodes[node].setdefault(key, ([], geo))
        devs.append(local)
    for node, groups in nodes.items():
        used = {d for devs, _ in groups.values() for d in devs}
        free = [d for d in range(p.gpus_per_node) if d not in used]
        if free and "whole" not in groups:
            groups["whole"] = (free, None)
        elif free:
            groups["whole"][0].extend(free)
    return {n: [(sorted(d), g) for d, g in groups.values()] for n, groups in nodes.items()}

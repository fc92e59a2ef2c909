"""The MIG packing as it was before the aggregated program (aiinfra commit e0255e3), kept as the
benchmark's baseline: one y variable per (workload, profile), expressions summed term by term, the
solution fetched once per variable with h.val(), soft/hard split by `w not in hard` (pydantic
equality, quadratic) and a linear search over GPUs for every copy."""

from __future__ import annotations

from aiinfra.sharing.mig import MigGpu, geometries
from aiinfra.sharing.packing import candidates, quiet_highs
from aiinfra.sharing.workloads import Workload


def plan_per_workload(gpu: MigGpu, workloads: list[Workload], gpus_available: int, gpus_per_node: int = 8) -> int:
    import highspy

    hard = [w for w in workloads if w.isolation == "hard" or w.profile]
    soft = [w for w in workloads if w not in hard]  # the quadratic membership test being measured
    del soft
    cands = {w.name: candidates(gpu, w) for w in hard}
    used_profiles = {p.name for ps in cands.values() for p in ps}
    variants = any(not gpu.profiles[p].is_base for p in used_profiles)
    geoms = [g for g in geometries(gpu, variants=variants) if set(g) <= used_profiles]
    per_gpu = gpu.memory_slots + gpu.compute_slices
    weight = per_gpu * max(gpus_available, 1) + 1
    h = quiet_highs(highspy)
    h.setOptionValue("threads", 1)
    x = [h.addIntegral(lb=0, ub=gpus_available) for _ in geoms]
    y = {}
    for w in hard:
        for p in cands[w.name]:
            y[(w.name, p.name)] = h.addIntegral(lb=0, ub=w.count)
        h.addConstr(sum(y[(w.name, p.name)] for p in cands[w.name]) == w.count)
    for pname in used_profiles:
        supply = [g[pname] * x[i] for i, g in enumerate(geoms) if g.get(pname)]
        demand = [v for (wn, pn), v in y.items() if pn == pname]
        h.addConstr(sum(demand) - sum(supply) <= 0)
    h.addConstr(sum(x) <= gpus_available)
    served = sum(v * (gpu.profiles[pn].size + gpu.profiles[pn].compute) for (wn, pn), v in y.items())
    h.minimize((weight + per_gpu) * sum(x) - served)
    xs = [round(h.val(v)) for v in x]
    choice: dict[str, dict[str, int]] = {}
    for (wn, pn), v in y.items():
        n = round(h.val(v))
        if n:
            choice.setdefault(wn, {})[pn] = n
    slots = []
    for g, n in zip(geoms, xs):
        slots += [dict(g) for _ in range(n)]
    slots.sort(key=lambda g: (-sum(gpu.profiles[p].compute * k for p, k in g.items()), sorted(g.items())))
    used = [False] * len(slots)
    for wn in sorted(choice):
        for pn, n in sorted(choice[wn].items()):
            for _ in range(n):
                for i, free in enumerate(slots):
                    if free.get(pn):
                        free[pn] -= 1
                        used[i] = True
                        break
    return sum(used)

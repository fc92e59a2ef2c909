"""Exact MIG packing: optimal against brute force, never worse than nos's first-fit, and clear when it cannot fit.

Baseline source: nebuly-ai/nos known_mig_geometries.yaml and planner.go @ 12e0a72 (reference notes §3.4, §9.1).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfra.errors import DoesNotFitError
from aiinfra.sharing import mig, packing
from aiinfra.sharing.workloads import Workload

H100 = mig.mig_gpu("h100-sxm")
# Independent slot model for the brute force (§1.2): profile → (size, starts, max).
SLOTS = {p.name: (p.size, p.starts, p.max_count) for p in H100.base_profiles}


def _fits(instances: tuple[str, ...]) -> bool:
    counts = Counter(instances)
    if any(n > SLOTS[p][2] for p, n in counts.items()):
        return False
    for choice in itertools.product(*[SLOTS[p][1] for p in instances]):
        used: set[int] = set()
        for p, s in zip(instances, choice):
            span = set(range(s, s + SLOTS[p][0]))
            if used & span or s + SLOTS[p][0] > 8:
                break
            used |= span
        else:
            return True
    return False


def brute_force_min_gpus(demand: list[str]) -> int:
    """Smallest k such that the instances split into k GPUs that each place (tries every assignment)."""
    items = tuple(sorted(demand))

    @cache
    def can(rest: tuple[str, ...], k: int) -> bool:
        if not rest:
            return True
        if k == 0:
            return False
        first, others = rest[0], rest[1:]
        # The GPU holding `first` takes some subset of the others.
        for r in range(len(others) + 1):
            for pick in set(itertools.combinations(others, r)):
                gpu = (first, *pick)
                if not _fits(gpu):
                    continue
                left = list(others)
                for p in pick:
                    left.remove(p)
                if can(tuple(left), k - 1):
                    return True
        return False

    k = 1
    while not can(items, k):
        k += 1
    return k


def _workloads(demand: list[str]) -> list[Workload]:
    return [Workload(name=f"w-{p}", count=n, profile=p) for p, n in sorted(Counter(demand).items())]


CASES = [
    ["3g.40gb", "3g.40gb", "4g.40gb"],
    ["4g.40gb", "4g.40gb", "3g.40gb", "2g.20gb", "1g.10gb"],
    ["1g.20gb"] * 5 + ["2g.20gb"],
    ["2g.20gb"] * 4 + ["1g.10gb"] * 3,
    ["7g.80gb", "1g.10gb", "3g.40gb", "3g.40gb", "3g.40gb"],
]


@pytest.mark.parametrize("demand", CASES)
def test_packing_is_optimal_on_small_cases(demand):
    """The ILP's GPU count equals an exhaustive search over all assignments of instances to GPUs."""
    pack = packing.pack_mig(H100, _workloads(demand), gpus_available=len(demand))
    assert pack.optimal
    assert pack.gpus_used == brute_force_min_gpus(demand)
    # Every GPU's geometry is valid and together they hold exactly the demand.
    total = Counter()
    for a in pack.assignments:
        assert mig.validate(H100, a.geometry).valid
        total.update(a.geometry)
    assert total == Counter(demand)


def test_packing_random_small_cases_match_brute_force_and_beat_first_fit():
    """Seeded random demands of up to 6 instances: optimal vs brute force; never more GPUs than nos first-fit."""
    rng = random.Random(7)
    names = [p.name for p in H100.base_profiles]
    for _ in range(25):
        demand = [rng.choice(names) for _ in range(rng.randint(1, 6))]
        pack = packing.pack_mig(H100, _workloads(demand), gpus_available=len(demand))
        assert pack.gpus_used == brute_force_min_gpus(demand), demand
        base = packing.first_fit_nos(H100, dict(Counter(demand)))
        if base.gpus_used is not None:
            assert pack.gpus_used <= base.gpus_used


def test_ilp_beats_nos_where_its_lists_miss_geometries():
    """nos's lists lack 4g+3g (§3.4): 2×4g + 2×3g takes nos 3 GPUs (3g+3g, then 4g+3×1g twice), the exact plan 2 (4g+3g twice)."""
    a100 = mig.mig_gpu("a100-80gb")
    demand = {"4g.40gb": 2, "3g.40gb": 2}
    base = packing.first_fit_nos(a100, demand)
    assert base.gpus_used == 3
    pack = packing.pack_mig(a100, _workloads([p for p, n in demand.items() for _ in range(n)]), 8)
    assert pack.gpus_used == 2 and pack.optimal


def test_nos_cannot_place_double_memory_profiles():
    base = packing.first_fit_nos(H100, {"1g.20gb": 2})
    assert base.gpus_used is None and base.unplaceable == {"1g.20gb": 2}


def test_memory_workloads_get_the_smallest_fitting_profiles():
    """A 15 GB, 1-slice need fits the 2-slot profiles (19.6 GiB), not the 1-slot 1g.10gb (9.75 GiB)."""
    w = Workload(name="m", count=1, memory_gb=15)
    assert [p.name for p in packing.candidates(H100, w)] == ["1g.20gb", "2g.20gb"]


def test_infeasible_says_what_and_why():
    with pytest.raises(DoesNotFitError, match="need 5 .*4g.40gb max 1/GPU"):
        packing.pack_mig(H100, [Workload(name="x", count=5, profile="4g.40gb")], 4)
    with pytest.raises(DoesNotFitError, match="'big' does not fit any MIG profile.*7g.80gb"):
        packing.pack_mig(H100, [Workload(name="big", count=1, memory_gb=100)], 4)
    with pytest.raises(DoesNotFitError, match="at least 3"):
        packing.pack_mig(H100, [Workload(name="n", count=15, profile="1g.10gb")], 2)


def test_plan_with_soft_workloads_and_node_layout():
    ws = [
        Workload(name="nb", count=10, profile="1g.10gb"),
        Workload(name="batch", count=9, memory_gb=12, isolation="soft"),
    ]
    p = packing.plan(H100, ws, gpus_available=16, gpus_per_node=8)
    assert p.mig.gpus_used == 2
    assert p.replicas == 6 and p.shared_gpus == 2  # ⌊80 GB / 12 GB⌋ = 6, ⌈9 / 6⌉ = 2
    layout = packing.node_layout(p)
    assert list(layout) == [0]
    whole = next(devs for devs, geo in layout[0] if geo is None)
    assert whole == [2, 3, 4, 5, 6, 7]


@settings(max_examples=40, deadline=None)
@given(gpu_name=st.sampled_from(["a100-80gb", "a30", "h100-sxm"]), data=st.data())
def test_packing_never_worse_than_first_fit_and_always_placeable(gpu_name, data):
    """Random demands (variants included): every planned GPU validates, the demand is covered exactly,
    and the plan never uses more GPUs than nos's first-fit when that baseline can place everything."""
    gpu = mig.mig_gpu(gpu_name)
    names = sorted(gpu.profiles)
    demand = data.draw(st.dictionaries(st.sampled_from(names), st.integers(1, 9), min_size=1, max_size=4))
    ws = [Workload(name=f"w{i}", count=n, profile=p) for i, (p, n) in enumerate(sorted(demand.items()))]
    pack = packing.pack_mig(gpu, ws, gpus_available=sum(demand.values()))
    covered = Counter()
    for a in pack.assignments:
        assert mig.validate(gpu, a.geometry).valid
        covered.update(a.geometry)
    assert covered == Counter(demand)
    assert pack.gpus_used >= pack.lower_bound
    base = packing.first_fit_nos(gpu, demand)
    if base.gpus_used is not None:
        assert pack.gpus_used <= base.gpus_used


def test_bounds_are_declared_and_named_in_one_line():
    """Issue 17: every plan request is bounded (entries, Σ count, pool size); exceeding one names it."""
    from aiinfra.errors import SpecError
    from aiinfra.sharing.workloads import MAX_COPIES, MAX_GPUS, MAX_WORKLOADS, parse_workloads, pool

    with pytest.raises(SpecError, match=f"at most {MAX_COPIES:,}"):
        parse_workloads({"workloads": [{"name": f"w{i}", "count": 100_000, "profile": "1g.10gb"} for i in range(3)]})
    with pytest.raises(SpecError, match=f"at most {MAX_WORKLOADS:,}"):
        parse_workloads([{"name": f"w{i}", "profile": "1g.10gb"} for i in range(MAX_WORKLOADS + 1)])
    with pytest.raises(SpecError, match=f"{MAX_GPUS:,}"):
        pool(None, 20_000, 8)


def test_aggregated_program_matches_per_workload_answer_and_splits_counts():
    """Workloads with the same candidates are pooled in the program; each still gets exactly its copies."""
    gpu = mig.mig_gpu("h100-sxm")
    ws = [Workload(name=f"nb{i}", count=1 + i % 3, profile="1g.10gb") for i in range(40)]
    ws += [Workload(name=f"m{i}", count=2, memory_gb=15) for i in range(30)]
    p = packing.pack_mig(gpu, ws, 200)
    assert all(sum(p.choice[w.name].values()) == w.count for w in ws)
    placed = Counter(x.split(":")[0] for a in p.assignments for x in a.workloads)
    assert placed == {w.name: w.count for w in ws}
    # 80 copies of 1g.10gb + 60 of a 2-slot profile: 80 + 120 = 200 slots ⇒ ≥ 25 GPUs; 7 compute/GPU ⇒ (80 + 60)/7 → 20.
    assert p.gpus_used == p.lower_bound == 25 and p.optimal


def test_nos_baseline_knows_the_rtx_pro_6000_by_class_not_by_slot_numbers():
    """nos has no RTX PRO 6000 list; the A30's (4×1g, 2×1g+1×2g, 2×2g, 1×4g) applies by '<G>g' class, whatever
    placement units NVML numbers (12 on this board, observed -lgipp)."""
    rtx = mig.mig_gpu("rtx-pro-6000")
    known, how = packing.nos_geometries(rtx)
    assert known == [{"1g.24gb": 4}, {"1g.24gb": 2, "2g.48gb": 1}, {"2g.48gb": 2}, {"4g.96gb": 1}]
    assert packing.first_fit_nos(rtx, {"1g.24gb": 4, "2g.48gb": 2}).gpus_used == 2

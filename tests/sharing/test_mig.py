"""MIG placement model against the published tables.

Sources: NVIDIA MIG User Guide v580 ("Supported MIG Profiles", `nvidia-smi mig -lgipp` listing),
reference notes mig_k8s_anchors.md §1.2 (7-slice table), §1.3 (A30), §1.4 (go-nvlib names),
§3.2 (enumeration of valid geometries), §3.3 (A30 geometries).
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from aiinfra.errors import AiinfraError, NotFoundError, SpecError
from aiinfra.sharing import mig

# §1.2: class → (GI profile id, compute slices, memory slots, valid starts, max per GPU)
TABLE_7SLICE = {
    "1g": (19, 1, 1, [0, 1, 2, 3, 4, 5, 6], 7),
    "1g+me": (20, 1, 1, [0, 1, 2, 3, 4, 5, 6], 1),
    "1g2": (15, 1, 2, [0, 2, 4, 6], 4),
    "2g": (14, 2, 2, [0, 2, 4], 3),
    "3g": (9, 3, 4, [0, 4], 2),
    "4g": (5, 4, 4, [0], 1),
    "7g": (0, 7, 8, [0], 1),
}
NAMES = {
    "a100-80gb": {"1g": "1g.10gb", "1g+me": "1g.10gb+me", "1g2": "1g.20gb", "2g": "2g.20gb", "3g": "3g.40gb", "4g": "4g.40gb", "7g": "7g.80gb"},
    "h100-sxm": {"1g": "1g.10gb", "1g+me": "1g.10gb+me", "1g2": "1g.20gb", "2g": "2g.20gb", "3g": "3g.40gb", "4g": "4g.40gb", "7g": "7g.80gb"},
}

# §3.2: the 28 inclusion-maximal geometries, as class multisets.
MAXIMAL_7SLICE = [
    {"7g": 1}, {"4g": 1, "3g": 1}, {"4g": 1, "2g": 1, "1g2": 1}, {"4g": 1, "2g": 1, "1g": 1}, {"4g": 1, "1g2": 2},
    {"4g": 1, "1g2": 1, "1g": 2}, {"4g": 1, "1g": 3}, {"3g": 2}, {"3g": 1, "2g": 2}, {"3g": 1, "2g": 1, "1g2": 1},
    {"3g": 1, "2g": 1, "1g": 2}, {"3g": 1, "1g2": 2}, {"3g": 1, "1g2": 1, "1g": 2}, {"3g": 1, "1g": 4},
    {"2g": 3, "1g2": 1}, {"2g": 3, "1g": 1}, {"2g": 2, "1g2": 2}, {"2g": 2, "1g2": 1, "1g": 2}, {"2g": 2, "1g": 3},
    {"2g": 1, "1g2": 3}, {"2g": 1, "1g2": 2, "1g": 2}, {"2g": 1, "1g2": 1, "1g": 4}, {"2g": 1, "1g": 5},
    {"1g2": 4}, {"1g2": 3, "1g": 2}, {"1g2": 2, "1g": 4}, {"1g2": 1, "1g": 6}, {"1g": 7},
]


def _as_classes(gpu: mig.MigGpu, geo: dict[str, int]) -> frozenset:
    return frozenset(Counter({gpu.profiles[p].klass: n for p, n in geo.items()}).items())


@pytest.mark.parametrize("gpu_name", ["a100-80gb", "h100-sxm"])
def test_placement_table_7slice(gpu_name):
    """MIG User Guide v580 -lgipp: IDs 19/20 {0..6}:1, 15 {0,2,4,6}:2, 14 {0,2,4}:2, 9 {0,4}:4, 5 {0}:4, 0 {0}:8 (§1.2)."""
    gpu = mig.mig_gpu(gpu_name)
    assert (gpu.memory_slots, gpu.compute_slices) == (8, 7)
    rows = {r["profile"]: r for r in mig.placement_table(gpu)}
    assert set(rows) == set(NAMES[gpu_name].values())
    for cls, (gi, compute, size, starts, mx) in TABLE_7SLICE.items():
        r = rows[NAMES[gpu_name][cls]]
        assert (r["gi_id"], r["compute_slices"], r["memory_slots"], r["starts"], r["max"]) == (gi, compute, size, starts, mx), cls


@pytest.mark.parametrize("gpu_name", ["a100-80gb", "h100-sxm"])
def test_geometry_enumeration_matches_reference(gpu_name):
    """§3.2: 77 feasible multisets (37 without the double-memory 1g), 28 maximal (12 without it), and the maximal set itself."""
    gpu = mig.mig_gpu(gpu_name)
    every = mig.geometries(gpu)
    assert len(every) == 77
    no_1g2 = [g for g in every if not any(gpu.profiles[p].klass == "1g2" for p in g)]
    assert len(no_1g2) == 37
    maximal = mig.geometries(gpu, maximal=True)
    assert len(maximal) == 28
    assert {_as_classes(gpu, g) for g in maximal} == {frozenset(m.items()) for m in MAXIMAL_7SLICE}
    # Maximal among geometries without 1g2: the 12 of §3.2.
    sets = [Counter(g) for g in no_1g2]
    maximal_no = [s for s in sets if not any(t != s and all(t[k] >= v for k, v in s.items()) for t in sets)]
    assert len(maximal_no) == 12


def test_a30_four_slice_table_and_geometries():
    """§1.3 observed A30 -lgipp: 14/21 {0,1,2,3}:1, 5/6 {0,2}:2, 0 {0}:4; §3.3: 9 feasible, maximal 4g | 2×2g | 2g+2×1g | 4×1g."""
    gpu = mig.mig_gpu("a30")
    assert (gpu.memory_slots, gpu.compute_slices) == (4, 4)
    rows = {r["profile"]: (r["gi_id"], r["starts"], r["memory_slots"], r["max"]) for r in mig.placement_table(gpu)}
    assert rows == {
        "1g.6gb": (14, [0, 1, 2, 3], 1, 4),
        "1g.6gb+me": (21, [0, 1, 2, 3], 1, 1),
        "2g.12gb": (5, [0, 2], 2, 2),
        "2g.12gb+me": (6, [0, 2], 2, 1),
        "4g.24gb": (0, [0], 4, 1),
    }
    assert len(mig.geometries(gpu)) == 9
    assert sorted(map(mig.geometry_label, mig.geometries(gpu, maximal=True))) == sorted(
        ["1×4g.24gb", "2×2g.12gb", "1×2g.12gb + 2×1g.6gb", "4×1g.6gb"]
    )
    bad = mig.validate(gpu, "1g.6gb+me,2g.12gb+me")  # both take the board's one JPEG and OFA (guide's A30 table)
    assert not bad.valid and "media engines" in bad.reasons[0] and "1 JPEG, 1 OFA" in bad.reasons[0]


@pytest.mark.parametrize(
    "gpu_name,profile,expected",
    [("h100-sxm", "1g.10gb", 10), ("h100-sxm", "3g.40gb", 40), ("h100-sxm", "7g.80gb", 80), ("h200-sxm", "1g.18gb", 18), ("a100-80gb", "7g.80gb", 80)],
)
def test_profile_name_gb_like_go_nvlib(gpu_name, profile, expected):
    """go-nvlib getMigMemorySizeGB (§1.4): eighths of the rounded-up total GiB. H100 80GB: 1g has 9.75 GiB usable
    of 81559 MiB → 1g.10gb; 3g 39.375 GiB → 3g.40gb; 7g 79.125 GiB → 7g.80gb. H200 1g 16.00 GiB of 143771 MiB → 1g.18gb."""
    gpu = mig.mig_gpu(gpu_name)
    p = gpu.profiles[profile]
    assert mig.profile_name_gb(p.usable_gib * 1024, gpu.total_memory_mib) == expected == p.name_gb


def test_profile_name_gb_rounds_up_to_eighths():
    """§1.4: the name is not the usable memory: 9.75 GiB on an 80 GiB board rounds up to 1/8 → 10 GB, and 4.75 GiB on A100-40GB → 5 GB."""
    assert mig.profile_name_gb(9984, 81559) == 10
    assert mig.profile_name_gb(4864, 40960) == 5
    with pytest.raises(SpecError):
        mig.profile_name_gb(0, 81559)


def test_validate_reasons():
    gpu = mig.mig_gpu("h100-sxm")
    ok = mig.validate(gpu, "3g.40gb,2g.20gb,1g.10gb,1g.10gb")
    assert ok.valid and ok.compute_used == 7 and ok.slots_used == 8
    assert [s for p, s, _ in ok.placement if p == "3g.40gb"] == [4]
    assert "too many 1g.10gb+me" in mig.validate(gpu, "1g.10gb+me:2").reasons[0]
    assert "the total is over" in mig.validate(gpu, "3g.40gb,3g.40gb,1g.10gb").reasons[0]
    overlap = mig.validate(gpu, "3g.40gb@0,2g.20gb@2")
    assert not overlap.valid and overlap.reasons[0].startswith("overlap")
    assert "allowed starts [0, 2, 4]" in mig.validate(gpu, "2g.20gb@5").reasons[0]
    assert any("R510" in n for n in mig.validate(gpu, "4g.40gb,3g.40gb").notes)


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(NotFoundError, match="valid: 1g.10gb, 1g.10gb\\+me, 1g.20gb"):
        mig.validate(mig.mig_gpu("h100-sxm"), "3g.20gb")


def test_gpu_lookup_by_catalog_key_and_pci_id():
    """Catalog keys map by pci_device_id (gpus.yaml h100-sxm 0x2330, h200-sxm 0x2335) to the MIG tables."""
    assert mig.mig_gpu("h100-sxm").name == "H100-80GB"
    assert mig.mig_gpu("h200-sxm").name == "H200-141GB"
    assert mig.mig_gpu("0x20B5").name == "A100-80GB"
    assert mig.mig_gpu("h100-nvl").name == "H100-94GB"
    with pytest.raises(SpecError, match="does not support MIG"):
        mig.mig_gpu("l40s")
    with pytest.raises(AiinfraError, match="unknown MIG GPU"):
        mig.mig_gpu("z9000")


def _independent_valid(classes: list[tuple[int, list[int]]]) -> bool:
    """Brute force over every choice of starts (no pruning), for cross-checking the backtracking search."""
    for choice in itertools.product(*[starts for _, starts in classes]):
        used = set()
        ok = True
        for (size, _), s in zip(classes, choice):
            slots = set(range(s, s + size))
            if used & slots or s + size > 8:
                ok = False
                break
            used |= slots
        if ok:
            return True
    return False


def test_placement_search_agrees_with_brute_force():
    """Every multiset of up to 5 base instances on H100: our validity equals an exhaustive start search (+ caps)."""
    gpu = mig.mig_gpu("h100-sxm")
    base = gpu.base_profiles
    for k in range(1, 6):
        for combo in itertools.combinations_with_replacement(base, k):
            counts = Counter(p.name for p in combo)
            caps_ok = all(n <= gpu.profiles[p].max_count for p, n in counts.items())
            expect = caps_ok and _independent_valid([(p.size, list(p.starts)) for p in combo])
            assert mig.validate(gpu, dict(counts)).valid == expect, counts


# §2: profile names and max counts per GPU (MIG User Guide v580 tables; GH200/GB200/B300/GB300 from the
# GPU Operator default config), keyed by PCI device ID.
PER_GPU = {
    "0x20B0": {"1g.5gb": 7, "1g.5gb+me": 1, "1g.10gb": 4, "2g.10gb": 3, "3g.20gb": 2, "4g.20gb": 1, "7g.40gb": 1},
    "0x2321": {"1g.12gb": 7, "1g.12gb+me": 1, "1g.24gb": 4, "2g.24gb": 3, "3g.47gb": 2, "4g.47gb": 1, "7g.94gb": 1},
    "0x2342": {"1g.12gb": 7, "1g.12gb+me": 1, "1g.24gb": 4, "2g.24gb": 3, "3g.48gb": 2, "4g.48gb": 1, "7g.96gb": 1},
    "0x2335": {"1g.18gb": 7, "1g.18gb+me": 1, "1g.35gb": 4, "2g.35gb": 3, "3g.71gb": 2, "4g.71gb": 1, "7g.141gb": 1},
    "0x2348": {"1g.18gb": 7, "1g.18gb+me": 1, "1g.36gb": 4, "2g.36gb": 3, "3g.72gb": 2, "4g.72gb": 1, "7g.144gb": 1},
    "0x2901": {"1g.23gb": 7, "1g.23gb+me": 1, "1g.45gb": 4, "2g.45gb": 3, "3g.90gb": 2, "4g.90gb": 1, "7g.180gb": 1},
    "0x2941": {"1g.23gb": 7, "1g.23gb+me": 1, "1g.47gb": 4, "2g.47gb": 3, "3g.93gb": 2, "4g.93gb": 1, "7g.186gb": 1},
    "0x2BB5": {"1g.24gb": 4, "1g.24gb+me": 1, "1g.24gb+gfx": 4, "1g.24gb+me.all": 1, "1g.24gb-me": 4, "2g.48gb": 2,
               "2g.48gb+gfx": 2, "2g.48gb+me.all": 1, "2g.48gb-me": 2, "4g.96gb": 1, "4g.96gb+gfx": 1},
}


@pytest.mark.parametrize("pci", sorted(PER_GPU))
def test_per_gpu_profile_tables(pci):
    gpu = mig.mig_gpu(pci)
    assert {p.name: p.max_count for p in gpu.profiles.values()} == PER_GPU[pci]


@pytest.mark.parametrize("gpu", [g for g in mig.all_mig_gpus() if g.compute_slices in (4, 7)], ids=lambda g: g.name)
def test_mig_parted_balanced_geometry_is_valid_everywhere(gpu):
    """mig-parted balanced.go (§3.6): 7 slots {1g: 2, 2g: 1, 3g: 1}, 4 slots {1g: 2, 2g: 1}; the base profile
    with the highest max count per G (1g.10gb over 1g.20gb). The builder knows 7- and 4-slice GPUs only."""
    want = {1: 2, 2: 1, 3: 1} if gpu.compute_slices == 7 else {1: 2, 2: 1}
    geo = {}
    for g, n in want.items():
        best = max((p for p in gpu.base_profiles if p.compute == g), key=lambda p: p.max_count)
        geo[best.name] = n
    assert mig.validate(gpu, geo).valid

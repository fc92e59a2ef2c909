"""MIG tables for every current MIG GPU: geometry counts per GPU and each profile's placements against
the source each table cites (catalog/data/mig_profiles.yaml `placements.source`).

Sources: MIG User Guide v580 'List GPU Instance Profiles' (-lgipp: IDs 19/20 {0..6}:1, 15 {0,2,4,6}:2,
14 {0,2,4}:2, 9 {0,4}:4, 5 {0}:4, 0 {0}:8); A30 -lgipp observed (14/21 {0,1,2,3}:1, 5/6 {0,2}:2, 0 {0}:4);
RTX PRO 6000 Blackwell Server Edition -lgipp/-lgip observed (driver 610.43.02, transcript dated 2026-07-15);
GPU Operator default mig-parted config @ a22dbf6 (all-<profile> counts = per-GPU caps); 'Supported GPUs'
(max instances: 7, 4 for A30/RTX PRO 6000, 2 for RTX PRO 5000); reference notes §3.2 (77/28 geometries).
"""

from __future__ import annotations

import pytest

from aiinfra.errors import AiinfraError
from aiinfra.sharing import mig

SEVEN = {"1g": ((0, 1, 2, 3, 4, 5, 6), 1, 7), "1g2": ((0, 2, 4, 6), 2, 4), "2g": ((0, 2, 4), 2, 3),
         "3g": ((0, 4), 4, 2), "4g": ((0,), 4, 1), "7g": ((0,), 8, 1)}
FOUR = {"1g": ((0, 1, 2, 3), 1, 4), "2g": ((0, 2), 2, 2), "4g": ((0,), 4, 1)}
TWO = {"1g": ((0, 1), 1, 2), "2g": ((0,), 2, 1)}
# RTX PRO 6000 -lgipp observed (transcript dated 2026-07-15): 14/21/47/65/67 {0,3,6,9}:3, 5/35/64/66 {0,6}:6, 0/32 {0}:12.
TWELVE = {"1g": ((0, 3, 6, 9), 3, 4), "2g": ((0, 6), 6, 2), "4g": ((0,), 12, 1)}
GI_IDS_7 = {"1g": 19, "1g2": 15, "2g": 14, "3g": 9, "4g": 5, "7g": 0}

# GPU → (listing, base geometries, maximal base geometries, max instances per the guide's 'Supported GPUs')
EXPECTED = {
    "a30": (FOUR, 9, 4, 4), "a100-40gb": (SEVEN, 77, 28, 7), "a100-80gb": (SEVEN, 77, 28, 7),
    "h100-sxm": (SEVEN, 77, 28, 7), "h100-pcie": (SEVEN, 77, 28, 7), "h100-nvl": (SEVEN, 77, 28, 7),
    "h200-sxm": (SEVEN, 77, 28, 7), "gh200": (SEVEN, 77, 28, 7), "gh200-144gb": (SEVEN, 77, 28, 7),
    "b200": (SEVEN, 77, 28, 7), "gb200": (SEVEN, 77, 28, 7), "b300": (SEVEN, 77, 28, 7), "gb300": (SEVEN, 77, 28, 7),
    "rtx-pro-6000": (TWELVE, 9, 4, 4), "rtx-pro-5000": (TWO, 3, 2, 2), "rtx-pro-4500": (TWO, 3, 2, 2),
}

# Per-GPU profile names as the driver reports them (GPU Operator default config @ a22dbf6 / MIG guide tables).
NAMES = {
    "b200": {"1g": "1g.23gb", "1g2": "1g.45gb", "2g": "2g.45gb", "3g": "3g.90gb", "4g": "4g.90gb", "7g": "7g.180gb"},
    "gb200": {"1g": "1g.23gb", "1g2": "1g.47gb", "2g": "2g.47gb", "3g": "3g.93gb", "4g": "4g.93gb", "7g": "7g.186gb"},
    "b300": {"1g": "1g.34gb", "1g2": "1g.67gb", "2g": "2g.67gb", "3g": "3g.135gb", "4g": "4g.135gb", "7g": "7g.269gb"},
    "gb300": {"1g": "1g.35gb", "1g2": "1g.70gb", "2g": "2g.70gb", "3g": "3g.139gb", "4g": "4g.139gb", "7g": "7g.278gb"},
    "h200-sxm": {"1g": "1g.18gb", "1g2": "1g.35gb", "2g": "2g.35gb", "3g": "3g.71gb", "4g": "4g.71gb", "7g": "7g.141gb"},
    "rtx-pro-6000": {"1g": "1g.24gb", "2g": "2g.48gb", "4g": "4g.96gb"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_profile_places_as_its_source_lists(name):
    listing, *_ = EXPECTED[name]
    gpu = mig.mig_gpu(name)
    assert gpu.placement_source, f"{gpu.name} cites no placement source"
    for p in gpu.profiles.values():
        starts, size, cap = listing[p.klass]
        assert (p.starts, p.size) == (starts, size), p.name
        assert p.max_count == (1 if p.attributes in ("+me", "+me.all") else cap), p.name
        if listing is SEVEN and p.gi_id is not None and p.attributes == "":
            assert p.gi_id == GI_IDS_7[p.klass], p.name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_geometry_counts_per_gpu(name):
    _, every, maximal, max_instances = EXPECTED[name]
    gpu = mig.mig_gpu(name)
    assert len(mig.geometries(gpu)) == every
    assert len(mig.geometries(gpu, maximal=True)) == maximal
    assert max(sum(g.values()) for g in mig.geometries(gpu)) == max_instances


@pytest.mark.parametrize("name", sorted(NAMES))
def test_profile_names_as_the_driver_reports_them(name):
    gpu = mig.mig_gpu(name)
    by_class = {p.klass: p.name for p in gpu.base_profiles}
    assert by_class == NAMES[name]


def test_gb200_other_names_resolve_to_its_profiles():
    gpu = mig.mig_gpu("gb200")
    assert gpu.canonical("7g.189gb") == "7g.186gb" and gpu.profile("3g.95gb").name == "3g.93gb"


def test_nothing_is_assumed_where_a_source_exists_and_the_rest_is_listed():
    rows = mig.assumed_rows()
    statuses = {mig.mig_gpu(n).name: mig.mig_gpu(n).placement_status for n in EXPECTED}
    assert statuses["A100-80GB"] == statuses["H100-80GB"] == statuses["A30-24GB"] == "verified"
    assert statuses["B200-180GB"] == statuses["GB200-186GB"] == "secondary"
    assert [r["gpu"] for r in rows if r["item"] == "placements" and r["status"] == "assumed"] == [
        "RTX-PRO-5000-48GB", "RTX-PRO-4500-32GB"]
    assert all(r["source"] for r in rows)
    assert not any(r["gpu"] == "H100-80GB" for r in rows)


def test_a100_80gb_profiles_need_the_drivers_of_the_same_a100_40gb_profiles():
    """MIG User Guide, A100 table: 'For A100-SXM4-80GB, the profile names will change according to the memory
    proportion' and 'The 1g.10gb profile is only available starting with R525 drivers' (GI profile 15), so the
    80GB board's 1g.20gb (GI profile 15) needs R525 too; 1g.5gb+me / 1g.10gb+me (GI profile 20) need R470."""
    small, large = mig.mig_gpu("a100-40gb"), mig.mig_gpu("a100-80gb")
    by_id = {p.gi_id: p.min_driver for p in small.profiles.values()}
    assert {p.gi_id: p.min_driver for p in large.profiles.values()} == by_id
    assert large.profiles["1g.20gb"].min_driver == "R525"
    assert "1g.20gb needs driver R525 or newer" in mig.validate(large, "1g.20gb:4").notes


# RTX PRO 6000 -lgip observed (driver 610.43.02, transcript dated 2026-07-15): GI profile ID and usable GiB.
RTX6000_LGIP = {
    "1g.24gb": (14, 23.62), "1g.24gb+me": (21, 23.62), "1g.24gb+gfx": (47, 23.62), "1g.24gb+me.all": (65, 23.62),
    "1g.24gb-me": (67, 23.62), "2g.48gb": (5, 47.38), "2g.48gb+gfx": (35, 47.38), "2g.48gb+me.all": (64, 47.38),
    "2g.48gb-me": (66, 47.38), "4g.96gb": (0, 95.12), "4g.96gb+gfx": (32, 95.12),
}


def test_rtx_pro_6000_profiles_as_the_observed_listing_prints_them():
    gpu = mig.mig_gpu("rtx-pro-6000")
    assert (gpu.memory_slots, gpu.compute_slices, gpu.placement_status) == (12, 4, "verified")
    assert {p.name: (p.gi_id, p.usable_gib) for p in gpu.profiles.values()} == RTX6000_LGIP
    assert "2026-07-15" in gpu.placement_source and "observed" in gpu.placement_source


def test_rtx_pro_6000_starts_are_taken_as_nvidia_smi_numbers_them():
    """-lgi in the same transcript: 2g.48gb at 0:6 beside 1g.24gb at 6:3 and 9:3; a 2g.48gb starts at 0 or 6."""
    gpu = mig.mig_gpu("rtx-pro-6000")
    assert mig.validate(gpu, "2g.48gb@0,1g.24gb@6,1g.24gb@9").valid
    assert mig.validate(gpu, "2g.48gb@6,1g.24gb@0,1g.24gb@3").valid
    bad = mig.validate(gpu, "2g.48gb@2")
    assert not bad.valid and "allowed starts [0, 6]" in bad.reasons[0]
    assert not mig.validate(gpu, "2g.48gb@0,1g.24gb@3").valid  # 3 lies inside 0-5
    placed = mig.validate(gpu, "2g.48gb,1g.24gb,1g.24gb").placement
    assert placed == [("2g.48gb", 0, 6), ("1g.24gb", 6, 3), ("1g.24gb", 9, 3)]


def test_rtx_pro_6000_validity_is_the_four_quarter_layout():
    """Renumbering the placement units keeps which geometries are valid: the base geometries are the A30's
    (same 1g/2g/4g classes on 4 quarters), profile for profile."""
    rtx, a30 = mig.mig_gpu("rtx-pro-6000"), mig.mig_gpu("a30")
    by_g = {1: "1g.24gb", 2: "2g.48gb", 4: "4g.96gb"}
    a30_geos = {tuple(sorted((by_g[a30.profiles[p].compute], n) for p, n in g.items())) for g in mig.geometries(a30)}
    assert {tuple(sorted(g.items())) for g in mig.geometries(rtx)} == a30_geos


# MIG User Guide 'Supported MIG Profiles', RTX PRO 5000 Blackwell 48GB table (read 2026-12-08):
# profile → (number of instances, NVDEC, NVENC, JPEG, OFA).
RTX5000 = {
    "1g.24gb": (2, 1, 1, 0, 0), "1g.24gb+me": (1, 1, 1, 1, 1), "1g.24gb+gfx": (2, 1, 1, 0, 0),
    "1g.24gb+me.all": (1, 3, 3, 1, 1), "1g.24gb-me": (2, 0, 0, 0, 0), "2g.48gb": (1, 3, 3, 1, 1),
    "2g.48gb+gfx": (1, 3, 3, 1, 1),
}


def test_rtx_pro_5000_has_the_guides_current_profiles():
    gpu = mig.mig_gpu("rtx-pro-5000")
    got = {p.name: (p.max_count, *(dict(p.media).get(e, 0) for e in ("nvdec", "nvenc", "jpeg", "ofa")))
           for p in gpu.profiles.values()}
    assert got == RTX5000
    assert dict(gpu.media_total) == {"nvdec": 3, "nvenc": 3, "jpeg": 1, "ofa": 1}  # the 2g.48gb row


def test_rtx_pro_5000_is_pci_0x2bb3_not_the_laptop_gpu():
    """open-gpu-kernel-modules README (610.43.03) supported GPUs: 2BB3 'NVIDIA RTX PRO 5000 Blackwell' (and its
    72GB board, subsystem 227A); 2C38 'NVIDIA RTX PRO 5000 Blackwell Generation Laptop GPU'."""
    assert mig.mig_gpu("0x2BB3").name == "RTX-PRO-5000-48GB"
    assert mig.mig_gpu("rtx-pro-5000").device_filter == ["0x2BB310DE"]
    with pytest.raises(AiinfraError):
        mig.mig_gpu("0x2C38")


def test_rtx_pro_5000_me_all_leaves_no_engine_for_a_second_instance():
    """+me.all takes 3 NVDEC/3 NVENC/1 JPEG/1 OFA, the whole board; a 1g.24gb beside it wants one NVDEC more."""
    gpu = mig.mig_gpu("rtx-pro-5000")
    assert not mig.validate(gpu, "1g.24gb+me.all,1g.24gb").valid
    assert mig.validate(gpu, "1g.24gb+me.all,1g.24gb-me").valid
    assert mig.validate(gpu, "1g.24gb+me,1g.24gb+gfx").valid


# MIG User Guide 'Supported MIG Profiles', RTX PRO 4500 Blackwell 32GB table (read 2026-12-08):
# profile → (number of instances, NVDEC, NVENC, JPEG, OFA).
RTX4500 = {
    "1g.16gb": (2, 1, 1, 1, 0), "1g.16gb+gfx": (2, 1, 1, 1, 0), "1g.16gb+me.all": (1, 3, 3, 2, 1),
    "1g.16gb-me": (2, 0, 0, 0, 0), "2g.32gb": (1, 3, 3, 2, 1), "2g.32gb+gfx": (1, 3, 3, 2, 1),
}


def test_rtx_pro_4500_has_the_guides_table():
    """Also the driver's supported-GPU table (610.43.03): 2C31 RTX PRO 4500 Blackwell, 2C3A its Server Edition."""
    gpu = mig.mig_gpu("rtx-pro-4500")
    got = {p.name: (p.max_count, *(dict(p.media).get(e, 0) for e in ("nvdec", "nvenc", "jpeg", "ofa")))
           for p in gpu.profiles.values()}
    assert got == RTX4500
    assert gpu.name == "RTX-PRO-4500-32GB" and mig.mig_gpu("0x2C3A").name == gpu.name
    assert gpu.device_filter == ["0x2C3110DE", "0x2C3A10DE"]
    assert mig.validate(gpu, "1g.16gb,1g.16gb+gfx").valid and mig.validate(gpu, "2g.32gb").valid
    assert not mig.validate(gpu, "1g.16gb+me.all,1g.16gb").valid  # 4 NVDEC > 3
    assert mig.validate(gpu, "1g.16gb+me.all,1g.16gb-me").valid

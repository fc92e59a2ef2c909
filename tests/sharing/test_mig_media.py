"""Media engines as a per-profile resource with a per-board total.

Source: NVIDIA MIG User Guide, 'Supported MIG Profiles' (read 2026-12-08), the NVDEC/NVENC/JPEG/OFA columns:
RTX PRO 6000 Blackwell: 1g.24gb 1/1/1/0, +me 1/1/1/1, +gfx 1/1/1/0, +me.all 4/4/4/1, -me 0/0/0/0; 2g.48gb 2/2/2/0,
+gfx 2/2/2/0, +me.all 4/4/4/1, -me 0; 4g.96gb (the whole board) 4/4/4/1. A30 (NVDEC/JPEG/OFA): 1g.6gb 0/0/0, +me 1/1/1,
2g.12gb 2/0/0, +me 2/1/1, 4g.24gb 4/1/1. H100 80GB: 1g 1/1/0, +me 1/1/1, 1g.20gb 1/1/0, 2g 2/2/0, 3g 3/3/0, 4g 4/4/0,
7g 7/7/1. The fixtures below are typed from those tables, not read from the catalog.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from aiinfra.sharing import lint, mig, packing
from aiinfra.sharing.workloads import Workload

RTX6000 = {  # profile → (compute slices, NVDEC, NVENC, JPEG, OFA, max per GPU)
    "1g.24gb": (1, 1, 1, 1, 0, 4), "1g.24gb+me": (1, 1, 1, 1, 1, 1), "1g.24gb+gfx": (1, 1, 1, 1, 0, 4),
    "1g.24gb+me.all": (1, 4, 4, 4, 1, 1), "1g.24gb-me": (1, 0, 0, 0, 0, 4),
    "2g.48gb": (2, 2, 2, 2, 0, 2), "2g.48gb+gfx": (2, 2, 2, 2, 0, 2), "2g.48gb+me.all": (2, 4, 4, 4, 1, 1),
    "2g.48gb-me": (2, 0, 0, 0, 0, 2), "4g.96gb": (4, 4, 4, 4, 1, 1), "4g.96gb+gfx": (4, 4, 4, 4, 1, 1),
}
RTX6000_BOARD = (4, 4, 4, 1)


@pytest.fixture(scope="module")
def rtx():
    return mig.mig_gpu("rtx-pro-6000")


@pytest.mark.parametrize("geometry, taken", [
    ("1g.24gb+me.all,1g.24gb,1g.24gb,1g.24gb", "take 7 NVDEC, 7 NVENC, 7 JPEG, but RTX-PRO-6000-96GB has 4 NVDEC, 4 NVENC, 4 JPEG"),
    ("2g.48gb+me.all,2g.48gb", "take 6 NVDEC, 6 NVENC, 6 JPEG, but RTX-PRO-6000-96GB has 4 NVDEC, 4 NVENC, 4 JPEG"),
    ("1g.24gb+me,2g.48gb+me.all", "take 5 NVDEC, 5 NVENC, 5 JPEG, 2 OFA"),
])
def test_layouts_needing_more_media_engines_than_the_board_has_are_refused(rtx, geometry, taken):
    check = mig.validate(rtx, geometry)
    assert not check.valid
    assert any(r.startswith("media engines:") and taken in r for r in check.reasons), check.reasons
    assert any("RTX PRO 6000 Blackwell table" in r for r in check.reasons)


@pytest.mark.parametrize("geometry", [
    "1g.24gb+me.all,1g.24gb-me,1g.24gb-me,1g.24gb-me",  # +me.all beside instances without engines
    "2g.48gb+me.all,2g.48gb-me",
    "1g.24gb+me,1g.24gb,1g.24gb,1g.24gb",  # 4/4/4 decoders and the one OFA: exactly the board
    "2g.48gb,2g.48gb+gfx",
])
def test_layouts_within_the_boards_media_engines_stay_valid(rtx, geometry):
    assert mig.validate(rtx, geometry).valid


def _fits_by_the_table(counts: dict[str, int]) -> bool:
    """Independent model of the RTX PRO 6000: 4 compute slices (a 1g anywhere, a 2g on a half, so any total up to 4
    places), the per-profile caps and the media columns summed against the 4g.96gb row."""
    if any(n > RTX6000[p][5] for p, n in counts.items()):
        return False
    if sum(RTX6000[p][0] * n for p, n in counts.items()) > 4:
        return False
    taken = [sum(RTX6000[p][1 + i] * n for p, n in counts.items()) for i in range(4)]
    return all(t <= have for t, have in zip(taken, RTX6000_BOARD))


def test_geometries_are_exactly_those_the_guides_table_allows(rtx):
    names = sorted(RTX6000)
    expected = set()
    for k in range(1, 5):
        for combo in itertools.combinations_with_replacement(names, k):
            counts = dict(Counter(combo))
            if _fits_by_the_table(counts):
                expected.add(tuple(sorted(counts.items())))
    got = {tuple(sorted(g.items())) for g in mig.geometries(rtx, variants=True)}
    assert got == expected
    assert not [g for g in got if dict(g).get("1g.24gb+me.all") and dict(g).get("1g.24gb")]


def test_plan_puts_a_me_all_instance_and_a_media_instance_on_separate_gpus(rtx):
    """2g.48gb+me.all takes every engine, so the 2g.48gb that also wants two of each cannot share its GPU."""
    ws = [Workload(name="video", count=1, profile="2g.48gb+me.all"), Workload(name="llm", count=1, profile="2g.48gb")]
    pack = packing.pack_mig(rtx, ws, gpus_available=4)
    assert pack.gpus_used == 2
    for a in pack.assignments:
        assert not mig.media_over(rtx, a.geometry)
    ws[1] = Workload(name="llm", count=1, profile="2g.48gb-me")
    assert packing.pack_mig(rtx, ws, gpus_available=4).gpus_used == 1


def test_a30_media_extensions_share_the_one_jpeg_and_ofa():
    """A30 table: 1g.6gb+me and 2g.12gb+me each take 1 JPEG and 1 OFA; the 4g.24gb row gives the board 1 of each."""
    a30 = mig.mig_gpu("a30")
    bad = mig.validate(a30, "1g.6gb+me,2g.12gb+me")
    assert not bad.valid and "take 2 JPEG, 2 OFA, but A30-24GB has 1 JPEG, 1 OFA" in bad.reasons[0]
    assert mig.validate(a30, "2g.12gb+me,2g.12gb").valid  # 4 NVDEC: the board's 4


@pytest.mark.parametrize("name", ["a100-40gb", "a100-80gb", "h100-sxm", "h100-nvl", "gh200", "h200-sxm", "b200"])
def test_on_seven_slice_gpus_the_media_columns_never_bind(name):
    """The checked columns sum within the board on every placeable geometry: GB200 has the same 7-slice classes
    and no media columns in the catalog, so its geometries (variants included) are every placeable multiset; mapped
    by class onto these GPUs none takes more engines than the board, and the counts agree. (B200: only the OFA is
    checked; its 7g.180gb row gives 1 NVDEC while 7 1g.23gb instances take 1 each, so NVDEC/JPEG are not totals.)"""
    ref, gpu = mig.mig_gpu("gb200"), mig.mig_gpu(name)
    assert not ref.media_total and gpu.media_total
    by_class = {(p.klass, p.attributes): p.name for p in gpu.profiles.values()}
    ref_geos = mig.geometries(ref, variants=True)
    for g in ref_geos:
        mapped = {by_class[(ref.profiles[p].klass, ref.profiles[p].attributes)]: n for p, n in g.items()}
        assert not mig.media_over(gpu, mapped), mapped
    assert len(mig.geometries(gpu, variants=True)) == len(ref_geos)


def test_h100_media_columns_are_the_guides():
    gpu = mig.mig_gpu("h100-sxm")
    got = {p: tuple(dict(gpu.profiles[p].media).get(e, 0) for e in ("nvdec", "jpeg", "ofa")) for p in gpu.profiles}
    assert got == {"1g.10gb": (1, 1, 0), "1g.10gb+me": (1, 1, 1), "1g.20gb": (1, 1, 0), "2g.20gb": (2, 2, 0),
                   "3g.40gb": (3, 3, 0), "4g.40gb": (4, 4, 0), "7g.80gb": (7, 7, 1)}
    assert dict(gpu.media_total) == {"nvdec": 7, "jpeg": 7, "ofa": 1}


def test_mig_parted_config_over_the_media_engines_is_a_lint_error():
    text = """version: v1
mig-configs:
  video:
    - device-filter: ["0x2BB510DE"]
      devices: all
      mig-enabled: true
      mig-devices:
        "2g.48gb+me.all": 1
        "2g.48gb": 1
"""
    found = [f for f in lint.lint_text(text, "mig.yaml") if f.severity == "error"]
    assert found and any("media engines" in f.message for f in found), [f.message for f in found]

"""The memory the planner credits each MIG profile with: measured nvidia-smi figures first, the name read back
through go-nvlib's naming rule last.

Sources: go-nvlib getMigMemorySizeGB (pkg/nvlib/device/mig_profile.go @ 3c16156): the name's '<N>gb' is
round(⌈mem/total × 8⌉/8 × ⌈total / 2^30⌉), a GiB figure; measured `nvidia-smi mig -lgip` on H200 (NVIDIA/mig-parted
#120: 1g.18gb 16.00 GiB), H100 80GB (1g.10gb 9.75 GiB), H100 NVL (3g.47gb 45.29 GiB).
"""

from __future__ import annotations

import math

import pytest

from aiinfra.sharing import mig, packing
from aiinfra.sharing.workloads import Workload

GIB = 2**30


def test_a_name_is_read_back_as_whole_gib_not_decimal_gb():
    """B200 has no measured figure anywhere: 1g.23gb is a share that rounds to 23 GiB, so at least 22.5 GiB
    (the old fallback credited 23 × 10^9 bytes = 21.42 GiB, reading the GiB figure as decimal GB)."""
    p = mig.mig_gpu("b200").profiles["1g.23gb"]
    assert p.usable_gib is None
    assert p.memory_bytes == pytest.approx(22.5 * GIB)
    assert "go-nvlib" in p.memory_source


@pytest.mark.parametrize("name", ["a100-40gb", "a100-80gb", "h100-sxm", "h100-nvl", "h200-sxm", "a30"])
def test_the_read_back_is_the_least_share_go_nvlib_names_so(name):
    """For every class of a table whose board total is known, the share go-nvlib rounds (eighths × ⌈total GiB⌉)
    lies in [N − 0.5, N + 0.5): name_memory_gib(N) is never above it."""
    gpu = mig.mig_gpu(name)
    total_gib = math.ceil(gpu.total_memory_mib / 1024)
    for p in gpu.base_profiles:
        share = math.ceil(p.size / gpu.memory_slots * 8) / 8 * total_gib
        assert mig.name_memory_gib(p.name_gb) <= share < p.name_gb + 0.5, p.name


def test_measured_figures_win():
    assert mig.mig_gpu("h100-sxm").profiles["1g.10gb"].memory_bytes == 9.75 * GIB
    assert mig.mig_gpu("h200-sxm").profiles["1g.18gb"].memory_bytes == 16.00 * GIB


def test_an_unmeasured_profile_takes_the_figure_measured_on_the_same_memory_slots_of_its_gpu():
    """H100 NVL: 4g.47gb occupies the same 4 memory slots as the measured 3g.47gb (45.29 GiB)."""
    p = mig.mig_gpu("h100-nvl").profiles["4g.47gb"]
    assert p.usable_gib is None and p.memory_bytes == 45.29 * GIB


def test_gh200_144gb_credits_1g18gb_as_measured_on_h200():
    """Same name, same share of the board (1 of 8 memory slots): GH200-144GB's 1g.18gb was credited 18e9 bytes
    (16.76 GiB) against H200's measured 16.00 GiB."""
    gh, h200 = mig.mig_gpu("gh200-144gb"), mig.mig_gpu("h200-sxm")
    assert gh.profiles["1g.18gb"].memory_bytes == h200.profiles["1g.18gb"].memory_bytes == 16.00 * GIB
    assert "H200-141GB" in gh.profiles["1g.18gb"].memory_source
    # a different profile (1g.36gb is not H200's 1g.35gb) borrows nothing
    assert "go-nvlib" in gh.profiles["1g.36gb"].memory_source


@pytest.mark.parametrize("memory_gb, classes", [(17.0, {"1g"}), (17.5, {"1g2", "2g"}), (30.0, {"1g2", "2g"})])
def test_the_same_workload_picks_the_same_class_on_gh200_144gb_and_h200(memory_gb, classes):
    """17.5 GB is 16.30 GiB: more than H200's measured 1g.18gb (16.00 GiB), so both GPUs give it a 2-slot
    instance; GH200-144GB used to keep it on its 1g.18gb (18e9 ≥ 17.5e9)."""
    w = Workload(name="w", count=1, memory_gb=memory_gb)
    for name in ("gh200-144gb", "h200-sxm"):
        gpu = mig.mig_gpu(name)
        assert {p.klass for p in packing.candidates(gpu, w)} == classes, name


def test_assumed_rows_say_where_memory_was_borrowed_or_read_from_the_name():
    rows = {(r["gpu"], r["item"]): r for r in mig.assumed_rows()}
    borrowed = rows[("GH200-144GB", "usable memory of 1g.18gb, 1g.18gb+me")]
    assert borrowed["status"] == "derived" and "H200-141GB" in borrowed["source"]
    named = rows[("B200-180GB", "usable memory of 1g.23gb, 1g.23gb+me, 1g.45gb, 2g.45gb, 3g.90gb, 4g.90gb, 7g.180gb")]
    assert named["status"] == "assumed" and "N - 0.5 GiB" in named["source"]

"""Compute-instance profiles ('Cc.Gg.XXgb', C < G): go-nvlib VisitMigProfiles lists every C ≤ G with C = G or
2C ≤ G + 1; mig-parted's SetMigConfig (pkg/mig/config/config.go @ bd7160f) puts each compute instance into the GPU
instance it created last while that instance has the same GPU-instance profile and room, else into a new one, and
tries every order: so the GPU instances needed are the fewest bins of G slices that hold the compute instances."""

from __future__ import annotations

import pytest

from aiinfra.errors import AiinfraError
from aiinfra.sharing import mig


@pytest.fixture(scope="module")
def a100():
    return mig.mig_gpu("a100-40gb")


def test_names_go_nvlib_lists(a100):
    assert a100.canonical("1c.3g.20gb") == "1c.3g.20gb" and a100.canonical("2c.7g.40gb") == "2c.7g.40gb"
    assert a100.canonical("3c.3g.20gb") == "3g.20gb"  # C = G is the profile itself (go-nvlib Matches)
    assert a100.canonical("3c.4g.20gb") is None  # 2C > G + 1
    assert a100.canonical("5c.7g.40gb") is None and a100.canonical("1c.3g.40gb") is None
    assert [mig.ci_size_ok(c, 7) for c in range(1, 8)] == [True, True, True, True, False, False, True]


@pytest.mark.parametrize("geometry, gis, valid", [
    ("1c.3g.20gb:2", {"3g.20gb": 1}, True),
    ("1c.3g.20gb:6", {"3g.20gb": 2}, True),          # mig-parted known_configs.go: 1c.3g.20gb up to 6
    ("1c.3g.20gb:7", {"3g.20gb": 3}, False),
    ("2c.3g.20gb:2", {"3g.20gb": 2}, True),          # known_configs.go: 2c.3g.20gb up to 2 (2 + 2 > 3)
    ("2c.3g.20gb:1,1c.3g.20gb:1", {"3g.20gb": 1}, True),  # sizes mix inside one GPU instance
    ("1c.7g.40gb:7", {"7g.40gb": 1}, True),
    ("2c.7g.40gb:3,1c.7g.40gb:1", {"7g.40gb": 1}, True),
    ("4c.7g.40gb:1,3c.7g.40gb:1", {"7g.40gb": 1}, True),
    ("4c.7g.40gb:2", {"7g.40gb": 2}, False),
    ("1c.4g.20gb:4,3g.20gb", {"4g.20gb": 1, "3g.20gb": 1}, True),
    ("3g.20gb:1,1c.3g.20gb:1", {"3g.20gb": 2}, True),  # a whole 3g.20gb takes its instance alone
])
def test_gpu_instances_packing(a100, geometry, gis, valid):
    check = mig.validate(a100, geometry)
    assert check.valid is valid, check.reasons
    counts, _ = mig.gpu_instances(a100, check.counts)
    assert dict(counts) == gis
    if not valid:
        assert any("compute instances share GPU instances" in r for r in check.reasons)


def test_a_size_go_nvlib_skips_is_refused_for_mig_parted_not_called_impossible(a100):
    """MIG User Guide, Concepts: '3 compute slices can also be combined to create a 3c.4g.20gb profile' (the driver
    makes it); go-nvlib VisitMigProfiles skips C < G with 2C > G + 1 'heuristically' (pkg/nvlib/device/device.go
    @ 3c16156) and mig-parted resolves its config against that list (pkg/mig/config/config.go @ bd7160f), so
    mig-parted cannot create it. The refusal stays; its reason says whose limit it is."""
    with pytest.raises(AiinfraError) as err:
        mig.validate(a100, "3c.4g.20gb")
    msg = str(err.value)
    assert "does not exist" not in msg
    assert "mig-parted and the Kubernetes device plugin cannot make it, not because the GPU cannot" in msg
    assert "MIG User Guide, Concepts" in msg and "go-nvlib" in msg and "take 1, 2 or 4 slices" in msg


def test_a_size_larger_than_the_gpu_instance_does_not_exist(a100):
    """C > G: a 4g.20gb GPU instance has 4 compute slices; NVML has no 5-slice compute-instance profile at all
    (nvml.h NVML_COMPUTE_INSTANCE_PROFILE_{1,2,3,4,6,7,8}_SLICE)."""
    with pytest.raises(AiinfraError, match=r"'5c.4g.20gb' does not exist on A100-40GB: a 4g.20gb GPU instance has 4"):
        mig.validate(a100, "5c.4g.20gb")
    with pytest.raises(AiinfraError, match=r"no 5-slice compute-instance profile in NVML"):
        mig.validate(a100, "5c.7g.40gb")


def test_explicit_start_is_refused_for_a_compute_instance(a100):
    with pytest.raises(AiinfraError, match="place its GPU instance"):
        mig.validate(a100, "1c.3g.20gb@4")


def test_commands_that_place_whole_instances_refuse_in_one_line(a100):
    """The device plugin advertises no resource for C < G under mixed (internal/rm/rm.go), so rendering or planning
    with one is refused, as a one-line error rather than a KeyError."""
    with pytest.raises(AiinfraError, match="compute-instance profile"):
        a100.profiles["1c.3g.20gb"]
    with pytest.raises(AiinfraError, match="compute-instance profile"):
        a100.profile("1c.3g.20gb")
    with pytest.raises(KeyError):
        a100.profiles["9g.1gb"]


def test_min_bins_is_exact_on_a_case_first_fit_decreasing_misses():
    """Sizes 3,3,2,2,2,2 into bins of 7: first-fit decreasing opens 3 bins ({3,3},{2,2,2},{2}); 3+2+2 twice fits 2."""
    assert mig._min_bins(((3, 2), (2, 4)), 7, 9) == 2

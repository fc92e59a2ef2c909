"""HPC job folder (dcgm-exporter `--hpc-job-mapping-dir`, internal/pkg/transformation/hpc.go @ d5e5f51:
files named <gpu> or <gpu>.<gpu instance>, one job per line) and PID → pod through cgroups."""

from __future__ import annotations

import pytest

from aiinfra.telemetry.attribution.hpc import JobDirError, job_key, read_job_dir
from aiinfra.telemetry.attribution.processes import pod_uid_from_cgroup, pod_uid_of, pods_by_uid
from aiinfra.telemetry.nvml import Identity


def test_job_files(tmp_path):
    (tmp_path / "0").write_text("job-1\njob-2\n\njob-1\n")
    (tmp_path / "2.1").write_text("7781\n")
    (tmp_path / "README").write_text("not a GPU file")
    (tmp_path / "3").mkdir()
    assert read_job_dir(tmp_path) == {"0": ("job-1", "job-2"), "2.1": ("7781",)}
    assert job_key(Identity(2, "GPU-x", "", "", gi_id=1)) == "2.1"
    assert job_key(Identity(0, "GPU-x", "", "")) == "0"


def test_missing_job_folder_is_a_reason_not_a_crash(tmp_path):
    with pytest.raises(JobDirError) as e:
        read_job_dir(tmp_path / "absent")
    assert e.value.reason == "missing"


UID = "1b2c3d4e-aaaa-bbbb-cccc-0123456789ab"


def test_pod_uid_in_both_cgroup_layouts(tmp_path):
    systemd = f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice/cri-containerd-{'ab' * 32}.scope\n"
    cgroupfs = f"12:memory:/kubepods/besteffort/pod{UID}/{'cd' * 32}\n0::/\n"
    assert pod_uid_from_cgroup(systemd) == UID
    assert pod_uid_from_cgroup(cgroupfs) == UID
    assert pod_uid_from_cgroup("0::/system.slice/slurmstepd.scope\n") is None
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "cgroup").write_text(systemd)
    assert pod_uid_of(4242, str(tmp_path)) == UID
    assert pod_uid_of(4243, str(tmp_path)) is None  # the process ended


def test_pod_log_folders_name_the_uid(tmp_path):
    (tmp_path / f"ml_train-0_{UID}" / "trainer").mkdir(parents=True)
    (tmp_path / f"ml_train-0_{UID}" / "sidecar").mkdir()
    ref = pods_by_uid(str(tmp_path))[UID]
    assert (ref.namespace, ref.pod, ref.containers) == ("ml", "train-0", ("sidecar", "trainer"))
    assert pods_by_uid(str(tmp_path / "absent")) == {}

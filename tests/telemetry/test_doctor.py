"""aiinfra doctor on the simulated backend and on sysfs/proc fixture trees."""

from __future__ import annotations

from pathlib import Path

from aiinfra.telemetry.doctor import FAIL, PASS, SKIP, WARN, diagnose, summary
from tests.conftest import assert_one_line_error


def make_root(tmp_path: Path, ib: dict[str, tuple[str, str]] | None = None, modules=("nvidia_peermem", "nvidia_fs", "nvidia"), nvswitches: int = 0, fabric_manager: bool = False, kern_log: str | None = "") -> Path:
    """A fixture tree shaped like /sys/class/infiniband and /proc on a GPU node."""
    root = tmp_path / "root"
    for name, (state, rate) in (ib or {}).items():
        hca, port = name.split("/")
        d = root / "sys/class/infiniband" / hca / "ports" / port
        d.mkdir(parents=True)
        (d / "state").write_text(state + "\n")
        (d / "rate").write_text(rate + "\n")
    (root / "proc").mkdir(parents=True, exist_ok=True)
    (root / "proc/modules").write_text("".join(f"{m} 16384 0 - Live 0x0000000000000000\n" for m in modules))
    for n in range(nvswitches):
        d = root / f"proc/driver/nvidia-nvswitch/devices/0000:0{n + 5}:00.0"
        d.mkdir(parents=True)
    if fabric_manager:
        (root / "proc/4242").mkdir()
        (root / "proc/4242/comm").write_text("nv-fabricmanage\n")  # the kernel keeps 15 characters of the name
    if kern_log is not None:
        (root / "var/log").mkdir(parents=True)
        (root / "var/log/kern.log").write_text(kern_log)
    (root / "proc/1").mkdir(exist_ok=True)
    (root / "proc/1/comm").write_text("systemd\n")
    return root


NDR = "400 Gb/sec (4X NDR)"


def by_name(checks, name, gpu=None):
    return [c for c in checks if c.name == name and (gpu is None or c.gpu == gpu)]


def test_healthy_node_passes(sim, tmp_path):
    col, _host, clock = sim("gpus=8,model=h100-sxm,seed=1,workload=training")
    clock.advance(30)
    root = make_root(tmp_path, ib={f"mlx5_{i}/1": ("4: ACTIVE", NDR) for i in range(4)}, nvswitches=4, fabric_manager=True)
    checks = diagnose(col.collect(), root=root, cuda="12.4")
    assert {c.status for c in checks} == {PASS}, [c for c in checks if c.status != PASS]
    assert len(by_name(checks, "InfiniBand port")) == 4
    assert summary(checks).facts["status"] == PASS


def test_simulated_faults_are_diagnosed(sim, tmp_path):
    col, _host, clock = sim("gpus=4,model=h100-sxm,seed=1,workload=training,faults=dbe:g1@1+nvlink:g2@1+pcie:g3@1+xid31:g0@2+migpending:g0@0")
    clock.advance(5)
    checks = diagnose(col.collect(), root=make_root(tmp_path))
    assert by_name(checks, "row remapping", 1)[0].status == FAIL and "reset the GPU" in by_name(checks, "row remapping", 1)[0].fix
    xid1 = by_name(checks, "recent XIDs", 1)[0]
    assert xid1.status == FAIL and "XID 48" in xid1.detail
    xid0 = by_name(checks, "recent XIDs", 0)[0]
    assert xid0.status == WARN and "XID 31" in xid0.detail  # an application fault, not a node fault
    assert by_name(checks, "NVLink links", 2)[0].status == FAIL and "link(s) 0 down" in by_name(checks, "NVLink links", 2)[0].detail
    assert by_name(checks, "PCIe link", 3)[0].status == WARN and "x8" in by_name(checks, "PCIe link", 3)[0].detail
    assert by_name(checks, "MIG mode", 0)[0].status == WARN
    assert summary(checks).facts["status"] == FAIL


def test_lost_gpu_and_old_driver(sim, tmp_path, monkeypatch):
    col, _host, clock = sim("gpus=2,model=h100-sxm,seed=1,faults=xid79:g1@1")
    clock.advance(2)
    snap = col.collect()
    snap.driver_version = "470.199.02"  # an R470 driver predates Hopper (CUDA 11.8 / R520)
    snap.cuda_version = 11040
    checks = diagnose(snap, root=make_root(tmp_path), cuda="12.2")
    assert by_name(checks, "GPU reachable", 1)[0].status == FAIL
    assert by_name(checks, "driver supports hopper")[0].status == FAIL
    cuda = by_name(checks, "driver/CUDA compatibility")[0]
    assert cuda.status == FAIL and "525.60.13" in cuda.fix


def test_minor_version_compatibility_warns(sim, tmp_path):
    col, _host, _clock = sim("gpus=1,seed=1")
    snap = col.collect()
    snap.cuda_version = 12020  # a 535-branch driver: CUDA 12.2, runs 12.4 only via minor-version compatibility
    snap.driver_version = "535.183.01"
    assert by_name(diagnose(snap, root=make_root(tmp_path), cuda="12.4"), "driver/CUDA compatibility")[0].status == WARN


def test_fixture_tree_infiniband_modules_fabric_manager(tmp_path):
    root = make_root(
        tmp_path,
        ib={"mlx5_0/1": ("4: ACTIVE", NDR), "mlx5_1/1": ("1: DOWN", NDR), "mlx5_2/1": ("4: ACTIVE", "200 Gb/sec (4X HDR)")},
        modules=("nvidia",),
        nvswitches=4,
    )
    checks = diagnose(None, root=root, nvml_error="NVML is not available")
    assert by_name(checks, "NVML")[0].status == FAIL
    ports = {c.detail.split(":")[0]: c.status for c in by_name(checks, "InfiniBand port")}
    assert ports == {"mlx5_0 port 1": PASS, "mlx5_1 port 1": FAIL, "mlx5_2 port 1": PASS}
    assert [c.detail for c in by_name(checks, "InfiniBand rate")] == ["mlx5_2 port 1 runs at 200 Gb/s, below the node's 400 Gb/s"]
    assert by_name(checks, "nvidia_peermem")[0].status == WARN and "modprobe" in by_name(checks, "nvidia_peermem")[0].fix
    assert by_name(checks, "nvidia_fs")[0].status == SKIP  # GDS not installed: nothing to warn about
    fm = by_name(checks, "fabric manager")[0]
    assert fm.status == FAIL and "nvidia-fabricmanager" in fm.fix


def test_no_infiniband_no_nvswitch_is_skipped(tmp_path):
    checks = diagnose(None, root=make_root(tmp_path, modules=("nvidia", "nvidia_fs"), kern_log=None))
    assert by_name(checks, "InfiniBand ports")[0].status == SKIP
    assert by_name(checks, "nvidia_peermem")[0].status == SKIP
    assert by_name(checks, "fabric manager")[0].status == SKIP
    assert by_name(checks, "XIDs in kernel log")[0].status == SKIP


def test_cli(cli, tmp_path):
    root = make_root(tmp_path, ib={"mlx5_0/1": ("4: ACTIVE", NDR)})
    r = cli("doctor", "--simulate", "gpus=2,seed=1", "--root", str(root), "--format", "json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["facts"]["status"] == PASS and doc["facts"]["fail"] == 0
    r = cli("doctor", "--simulate", "gpus=2,seed=1,faults=lost:g0@0", "--root", str(root), "--format", "json")
    assert r.code == 1 and r.json()["facts"]["status"] == FAIL
    r = cli("doctor", "--simulate", "gpus=2,seed=1", "--root", str(root))
    assert r.code == 0 and "node doctor: pass" in r.out
    assert_one_line_error(cli("doctor", "--simulate", "hosts=x"), "hosts")
    assert_one_line_error(cli("doctor", "--simulate", "hosts=2", "--sim-host", "5"), "outside")


def test_kernel_log_xids(sim, tmp_path):
    """`NVRM: Xid (PCI:0000:2a:00): 79, …` lines map to the GPU with that bus id; severity from xid.yaml."""
    col, _host, _clock = sim("gpus=2,seed=1")
    root = make_root(tmp_path)
    (root / "var/log/kern.log").write_text(
        "Nov 22 10:00:01 node kernel: NVRM: Xid (PCI:0000:18:00): 31, pid=4242, name=python, Ch 00000008, intr 10000000. MMU Fault\n"
        "Nov 22 10:05:01 node kernel: NVRM: Xid (PCI:0000:2a:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.\n"
        "Nov 22 10:05:02 node kernel: NVRM: Xid (PCI:0000:2a:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.\n"
    )
    check = by_name(diagnose(col.collect(), root=root), "XIDs in kernel log")[0]
    assert check.status == FAIL
    assert "GPU 0: XID 31 x1" in check.detail and "GPU 1: XID 79 x2" in check.detail
    assert "reboot" in check.fix
    (root / "var/log/kern.log").write_text("Nov 22 10:00:01 node kernel: eth0 link up\n")
    assert by_name(diagnose(col.collect(), root=root), "XIDs in kernel log")[0].status == PASS


def test_doctor_is_a_registered_command_with_declared_facts():
    """contract: `doctor` is one library function (telemetry/commands.py) whose facts match DoctorFacts."""
    from aiinfra.contract import registry
    from aiinfra.telemetry.commands import DoctorFacts, doctor

    info = registry()["doctor"]
    assert info.function is doctor and info.facts is DoctorFacts
    r = doctor(simulate="gpus=2,seed=1,faults=dbe:g1@0")
    facts = DoctorFacts.model_validate(r.facts)
    assert facts.status == "fail" and facts.fail >= 1 and any(c.gpu == 1 and c.status == "fail" for c in facts.checks)


def test_fabric_manager_found_under_its_truncated_name_or_cmdline(tmp_path):
    """/proc/<pid>/comm holds 15 characters (TASK_COMM_LEN 16 with the NUL), so a running fabric manager reads
    "nv-fabricmanage" there; a comm of bytes that are not UTF-8 (any process may set one) must not stop the check."""
    root = make_root(tmp_path, nvswitches=4, fabric_manager=True)
    (root / "proc/77").mkdir()
    (root / "proc/77/comm").write_bytes(b"\xff\xfeodd\n")
    assert by_name(diagnose(None, root=root), "fabric manager")[0].status == PASS
    (root / "proc/4242/comm").write_text("fabricmgr-wrap\n")
    (root / "proc/4242/cmdline").write_bytes(b"/usr/bin/nv-fabricmanager\0-c\0/usr/share/nvidia/nvswitch/fabricmanager.cfg\0")
    assert by_name(diagnose(None, root=root), "fabric manager")[0].status == PASS
    (root / "proc/4242/cmdline").write_bytes(b"/usr/bin/sleep\0" + b"60\0")
    assert by_name(diagnose(None, root=root), "fabric manager")[0].status == FAIL


def test_gpudirect_modules_legacy_dma_buf_and_gds(tmp_path):
    """GPUDirect RDMA runs through nvidia_peermem, Mellanox's older nv_peer_mem, or DMA-BUF with no module: the open
    GPU kernel module on Linux 5.12+ (NVIDIA GPUDirect RDMA guide; GPU Operator docs, GPUDirect RDMA). nvidia_fs
    is only missed where GDS is installed (/etc/cufile.json, shipped by the nvidia-gds package)."""
    ib = {"mlx5_0/1": ("4: ACTIVE", NDR)}
    root = make_root(tmp_path, ib=ib, modules=("nvidia", "nv_peer_mem"))
    assert by_name(diagnose(None, root=root), "nvidia_peermem")[0].status == PASS
    (root / "proc/modules").write_text("nvidia 16384 0 - Live 0x0\n")
    (root / "proc/driver/nvidia").mkdir(parents=True)
    (root / "proc/driver/nvidia/version").write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.124.06  Release Build\n")
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text("6.8.0-52-generic\n")
    peer = by_name(diagnose(None, root=root), "nvidia_peermem")[0]
    assert peer.status == PASS and "DMA-BUF" in peer.detail
    (root / "proc/sys/kernel/osrelease").write_text("5.4.0-216-generic\n")  # too old for DMA-BUF
    assert by_name(diagnose(None, root=root), "nvidia_peermem")[0].status == WARN
    (root / "proc/driver/nvidia/version").write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  570.124.06\n")
    (root / "proc/sys/kernel/osrelease").write_text("6.8.0-52-generic\n")  # proprietary module: no DMA-BUF
    assert by_name(diagnose(None, root=root), "nvidia_peermem")[0].status == WARN
    assert by_name(diagnose(None, root=root), "nvidia_fs")[0].status == SKIP
    (root / "etc").mkdir()
    (root / "etc/cufile.json").write_text("{}")
    assert by_name(diagnose(None, root=root), "nvidia_fs")[0].status == WARN


def test_nvlink_fabric_registration_per_gpu(cli):
    """NVSwitch-connected GPUs must finish NVLink fabric registration before CUDA starts on them; NVML reports it per
    GPU (nvmlDeviceGetGpuFabricInfo: state NOT_SUPPORTED/NOT_STARTED/IN_PROGRESS/COMPLETED and a status), which also
    covers NVLink 5 systems whose switches do not appear under /proc/driver/nvidia-nvswitch."""
    from aiinfra.telemetry.doctor import snapshot_for

    snap, _ = snapshot_for("gpus=2,seed=1,faults=fabric:g1@0")
    fabric = {c.gpu: c for c in diagnose(snap) if c.name == "NVLink fabric"}
    assert fabric[0].status == PASS and fabric[1].status == FAIL and "in progress" in fabric[1].detail
    assert "nvidia-fabricmanager" in fabric[1].fix
    pcie, _ = snapshot_for("gpus=1,model=l40s")
    assert not [c for c in diagnose(pcie) if c.name == "NVLink fabric"]  # no NVSwitch fabric: NVML says not supported
    r = cli("doctor", "--simulate", "gpus=2,seed=1,faults=fabric:g1@0", "--format", "json")
    assert r.code == 1 and r.json()["facts"]["status"] == FAIL

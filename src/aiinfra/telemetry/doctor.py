"""Is this GPU node ready for work? Checks with pass/warn/fail and a fix hint each.

Inputs are a `telemetry.nvml` Snapshot (real NVML or the simulated fleet) and a filesystem root for
the parts NVML does not cover, so tests point `root` at a fixture tree:

- `<root>/sys/class/infiniband/<hca>/ports/<n>/{state,rate}`: InfiniBand ports;
- `<root>/proc/modules`: nvidia_peermem or nv_peer_mem (GPUDirect RDMA) and nvidia_fs (GPUDirect Storage);
  `<root>/proc/driver/nvidia/version` and `<root>/proc/sys/kernel/osrelease`: the DMA-BUF path that needs no
  peer-memory module; `<root>/etc/cufile.json`: GDS installed;
- `<root>/proc/driver/nvidia-nvswitch/devices/*` and `<root>/proc/<pid>/comm` (or cmdline): NVSwitch present,
  fabric manager running;
- `<root>/var/log/kern.log` (or messages, syslog): XIDs the driver logged before we listened.

    checks = diagnose(snapshot, root=Path("/"))
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from aiinfra.catalog.loader import default_catalog
from aiinfra.catalog.xid import xid_catalog
from aiinfra.explain import Result
from aiinfra.specs import arch_family
from aiinfra.telemetry.fields import CLOCK_EVENTS
from aiinfra.telemetry.nvml import GpuStatus, Snapshot

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
_ORDER = {FAIL: 0, WARN: 1, PASS: 2, SKIP: 3}
# Clock-event bits that mean hardware protection kicked in (fail) vs. software limits (warn).
_HW_BITS = 0x008 | 0x040 | 0x080
_SW_BITS = 0x004 | 0x020


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""
    gpu: int | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v))


def _gpu_arch(model: str) -> str | None:
    """Architecture of an NVML model name, through the GPU catalog's names and aliases."""
    m = model.lower()
    for key, entry in default_catalog().table("gpus").items():
        names = [entry.get("name", ""), key, *entry.get("aliases", [])]
        if any(n and n.lower() in m for n in names):
            return entry.get("architecture")
    return None


def _driver_checks(snap: Snapshot, cuda: str | None) -> list[Check]:
    table = default_catalog().table("driver_support")
    out = []
    drv = _version(snap.driver_version)
    archs = sorted({a for g in snap.gpus if (a := _gpu_arch(g.model))})
    for arch in archs:
        need = table.get(arch) or table.get(arch_family(arch))
        if need is None:
            continue
        ok = drv >= _version(need["min_driver"])
        out.append(
            Check(
                f"driver supports {arch}",
                PASS if ok else FAIL,
                f"driver {snap.driver_version}; {arch} needs >= {need['min_driver']} (CUDA {need['first_cuda']})",
                "" if ok else f"install an NVIDIA driver >= {need['min_driver']}",
            )
        )
    supported = f"{snap.cuda_version // 1000}.{snap.cuda_version % 1000 // 10}" if snap.cuda_version else None
    if cuda:
        want = _version(cuda)
        row = table.get(f"cuda-{want[0]}") if want else None
        if supported and _version(supported) >= want:
            out.append(Check("driver/CUDA compatibility", PASS, f"driver {snap.driver_version} runs CUDA up to {supported}; workload needs {cuda}"))
        elif row and drv >= _version(row["min_driver"]):
            out.append(
                Check(
                    "driver/CUDA compatibility",
                    WARN,
                    f"driver {snap.driver_version} reports CUDA {supported}; CUDA {cuda} runs through minor-version compatibility (needs >= {row['min_driver']}), PTX JIT of newer code will not",
                    f"upgrade the driver to a branch that ships CUDA {cuda}, or install the cuda-compat package",
                )
            )
        else:
            floor = row["min_driver"] if row else "a newer branch"
            out.append(Check("driver/CUDA compatibility", FAIL, f"driver {snap.driver_version} (CUDA {supported}) cannot run CUDA {cuda}", f"install a driver >= {floor}"))
    else:
        out.append(Check("driver/CUDA compatibility", PASS if supported else WARN, f"driver {snap.driver_version}, CUDA {supported or 'unknown'} (pass --cuda X.Y to check a workload's toolkit)"))
    return out


def _xid_severity() -> dict[int, tuple[str, str, str]]:
    return {c: (x.severity, x.meaning, x.action) for c, x in xid_catalog(required=False).items()}


_FABRIC_STATES = {1: "not started", 2: "in progress"}  # NVML_GPU_FABRIC_STATE_*; 0 not supported, 3 completed


def _fabric_state(g: GpuStatus) -> list[Check]:
    """NVSwitch-connected GPUs (HGX, NVL72) must register with the NVLink fabric before CUDA can start on them; NVML
    reports it per GPU (nvmlDeviceGetGpuFabricInfo), also where /proc has no nvswitch entries (NVLink 5 systems)."""
    if g.fabric is None or g.fabric[0] == 0:
        return []
    state, status = g.fabric
    i = g.index
    fix = ("check the fabric manager (systemctl status nvidia-fabricmanager; on HGX B200/B300 also nvlsm) and its log; "
           "its version must match the driver")
    if state == 3 and status == 0:
        return [Check("NVLink fabric", PASS, f"GPU {i}: registered with the NVLink fabric", gpu=i)]
    if state == 3:
        return [Check("NVLink fabric", FAIL, f"GPU {i}: NVLink fabric registration failed (NVML status {status}): CUDA cannot use this GPU", fix, i)]
    return [Check("NVLink fabric", FAIL, f"GPU {i}: NVLink fabric registration {_FABRIC_STATES.get(state, f'state {state}')}: CUDA init fails until it completes", fix, i)]


def _gpu_checks(snap: Snapshot) -> list[Check]:
    out: list[Check] = []
    xids = _xid_severity()
    for g in snap.gpus:
        i = g.index
        if g.lost:
            out.append(Check("GPU reachable", FAIL, f"GPU {i} {g.uuid} is lost (NVML: GPU is lost / fell off the bus)", "drain the node and reboot it; check power, cooling and PCIe seating if it recurs", i))
            continue
        if g.persistence_mode is not None:
            ok = g.persistence_mode == 1
            out.append(Check("persistence mode", PASS if ok else WARN, f"GPU {i}: persistence mode {'on' if ok else 'off'}", "" if ok else "enable nvidia-persistenced (or nvidia-smi -pm 1) so the driver stays loaded between jobs", i))
        if g.ecc_mode is not None:
            cur, pending = g.ecc_mode
            if cur != pending:
                out.append(Check("ECC enabled", WARN, f"GPU {i}: ECC {'on' if cur else 'off'}, {'on' if pending else 'off'} after the next reset", "reset the GPU or reboot to apply the pending ECC mode", i))
            else:
                out.append(Check("ECC enabled", PASS if cur else WARN, f"GPU {i}: ECC {'on' if cur else 'off'}", "" if cur else "nvidia-smi -e 1, then reboot", i))
        if g.remapped_rows is not None:
            corr, unc, pending, failure = g.remapped_rows
            if failure:
                out.append(Check("row remapping", FAIL, f"GPU {i}: row remapping failed ({unc} uncorrectable rows)", "drain and RMA the GPU", i))
            elif pending:
                out.append(Check("row remapping", FAIL, f"GPU {i}: a row remap is pending ({unc} uncorrectable, {corr} correctable rows remapped)", "drain the node and reset the GPU (nvidia-smi -r) to apply the remap", i))
            else:
                out.append(Check("row remapping", PASS, f"GPU {i}: no remap pending ({unc} uncorrectable, {corr} correctable rows remapped)", gpu=i))
        if g.retired_pages_pending:
            out.append(Check("retired pages", FAIL, f"GPU {i}: pages are pending retirement", "drain the node and reset the GPU to retire them", i))
        if g.mig_mode is not None and g.mig_mode[0] != g.mig_mode[1]:
            out.append(Check("MIG mode", WARN, f"GPU {i}: MIG {'on' if g.mig_mode[0] else 'off'} now, {'on' if g.mig_mode[1] else 'off'} pending", "reset the GPU (nvidia-smi -r -i <gpu>) or reboot to apply the MIG mode change", i))
        out += _fabric_state(g)
        if g.nvlink_states:
            down = [n for n, s in enumerate(g.nvlink_states) if not s]
            if down:
                out.append(Check("NVLink links", FAIL, f"GPU {i}: NVLink link(s) {', '.join(map(str, down))} down of {len(g.nvlink_states)}", "check the fabric manager and nvidia-smi nvlink -s; reset the GPU, then reseat/RMA if links stay down", i))
            else:
                out.append(Check("NVLink links", PASS, f"GPU {i}: {len(g.nvlink_states)} links up", gpu=i))
        idle = bool((g.clock_event_reasons or 0) & 0x001)
        if g.pcie_width is not None and g.pcie_width[0] < g.pcie_width[1]:
            out.append(Check("PCIe link", WARN, f"GPU {i}: PCIe x{g.pcie_width[0]}, below its x{g.pcie_width[1]}", "reseat the GPU or riser; check the slot and BIOS bifurcation settings", i))
        elif g.pcie_gen is not None and g.pcie_gen[0] < g.pcie_gen[1] and not idle:
            out.append(Check("PCIe link", WARN, f"GPU {i}: PCIe gen {g.pcie_gen[0]} under load, below its gen {g.pcie_gen[1]}", "check BIOS PCIe speed settings and the riser; idle GPUs downshift, busy ones should not", i))
        elif g.pcie_gen is not None:
            out.append(Check("PCIe link", PASS, f"GPU {i}: gen {g.pcie_gen[0]}/{g.pcie_gen[1]}" + (f", x{g.pcie_width[0]}" if g.pcie_width else "") + (" (idle downshift)" if idle and g.pcie_gen[0] < g.pcie_gen[1] else ""), gpu=i))
        if g.clock_event_reasons is not None:
            bits = g.clock_event_reasons
            names = [n for b, n in CLOCK_EVENTS.items() if bits & b]
            if bits & _HW_BITS:
                out.append(Check("clocks throttled", FAIL, f"GPU {i}: hardware slowdown now ({', '.join(names)})", "check cooling (inlet temperature, fans, airflow) and PSU / power brake signals", i))
            elif bits & _SW_BITS:
                out.append(Check("clocks throttled", WARN, f"GPU {i}: clocks held down ({', '.join(names)})", "check the power limit (nvidia-smi -q -d POWER) and cooling", i))
            else:
                out.append(Check("clocks throttled", PASS, f"GPU {i}: not throttled" + (f" ({', '.join(names)})" if names else ""), gpu=i))
        worst, notes = PASS, []
        for _, code in g.recent_xids:
            sev, msg, _action = xids.get(code, ("unclassified", "unknown XID", ""))
            status = FAIL if sev == "critical" else WARN if sev in ("warn", "app", "unclassified") else PASS
            if _ORDER[status] < _ORDER[worst]:
                worst = status
            notes.append(f"XID {code} ({msg}; {sev})")
        if notes:
            actions = {xids[c][2] for _, c in g.recent_xids if c in xids and xids[c][2]}
            out.append(Check("recent XIDs", worst, f"GPU {i}: " + ", ".join(dict.fromkeys(notes)), " / ".join(sorted(actions)), i))
        else:
            out.append(Check("recent XIDs", PASS, f"GPU {i}: none in the window", gpu=i))
    return out


_KERNEL_XID_RE = re.compile(r"NVRM: Xid \(PCI:([0-9a-fA-F]{4}:)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})(?:\.\d)?\): (\d+)")
_KERNEL_LOGS = ("var/log/kern.log", "var/log/messages", "var/log/syslog")


def _kernel_xids(root: Path, snap: Snapshot | None) -> list[Check]:
    """XIDs the driver logged (`NVRM: Xid (PCI:0000:18:00): 79, …`): NVML's event set only sees XIDs
    raised while it listens, so a one-shot check reads the kernel log as well (reference §5.7)."""
    for rel in _KERNEL_LOGS:
        text = _read(root / rel)
        if text is not None:
            break
    else:
        return [Check("XIDs in kernel log", SKIP, f"no readable {' / '.join(_KERNEL_LOGS)} under {root}")]
    bus_to_gpu = {}
    for g in (snap.gpus if snap else []):
        m = re.search(r"([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.\d$", g.pci_bus_id)
        if m:
            bus_to_gpu[(m.group(1).upper(), m.group(2).upper())] = g.index
    xids = _xid_severity()
    seen: dict[tuple[str, int], int] = {}
    for m in _KERNEL_XID_RE.finditer(text):
        bus = (m.group(2).upper(), m.group(3).upper())
        gpu = bus_to_gpu.get(bus)
        where = f"GPU {gpu}" if gpu is not None else f"PCI {bus[0]}:{bus[1]}"
        key = (where, int(m.group(4)))
        seen[key] = seen.get(key, 0) + 1
    if not seen:
        return [Check("XIDs in kernel log", PASS, f"no NVRM Xid lines in {rel}")]
    worst, notes, actions = PASS, [], set()
    for (where, code), n in sorted(seen.items()):
        sev, msg, action = xids.get(code, ("unclassified", "unknown XID", ""))
        status = FAIL if sev == "critical" else WARN if sev in ("warn", "app", "unclassified") else PASS
        worst = status if _ORDER[status] < _ORDER[worst] else worst
        notes.append(f"{where}: XID {code} x{n} ({msg}; {sev})")
        if action and status != PASS:
            actions.add(action)
    return [Check("XIDs in kernel log", worst, f"{rel}: " + ", ".join(notes), " / ".join(sorted(actions)))]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()  # any process may name itself in bytes that are not UTF-8
    except OSError:
        return None


def _infiniband(root: Path) -> list[Check]:
    base = root / "sys/class/infiniband"
    ports = sorted(base.glob("*/ports/*")) if base.is_dir() else []
    if not ports:
        return [Check("InfiniBand ports", SKIP, f"no InfiniBand devices under {base}")]
    out, rates = [], {}
    for p in ports:
        hca, port = p.parent.parent.name, p.name
        state = _read(p / "state") or "unknown"
        rate = _read(p / "rate") or "unknown"
        m = re.match(r"\s*([\d.]+)\s*Gb/sec", rate)
        rates[(hca, port)] = float(m.group(1)) if m else 0.0
        active = "ACTIVE" in state.upper()
        out.append(Check("InfiniBand port", PASS if active else FAIL, f"{hca} port {port}: {state}, {rate}", "" if active else "check the cable and switch port (ibstat); the subnet manager must be running for ports to go ACTIVE"))
    top = max(rates.values())
    for (hca, port), r in rates.items():
        if 0 < r < top:
            out.append(Check("InfiniBand rate", WARN, f"{hca} port {port} runs at {r:g} Gb/s, below the node's {top:g} Gb/s", "check the cable type and the switch port speed"))
    return out


# Linux keeps 15 characters of a process name in /proc/<pid>/comm (TASK_COMM_LEN 16 with the NUL), so the
# fabric manager shows as "nv-fabricmanage" there; cmdline carries the whole path.
_FM_BINARY = "nv-fabricmanager"


def _dma_buf_ready(root: Path) -> str | None:
    """Why NCCL can take the DMA-BUF path without a peer-memory module, or None: it needs the open GPU kernel
    module and Linux 5.12 or later (NVIDIA's GPUDirect RDMA guide; the GPU Operator's recommended mode)."""
    version = _read(root / "proc/driver/nvidia/version") or ""
    release = _read(root / "proc/sys/kernel/osrelease") or ""
    m = re.match(r"(\d+)\.(\d+)", release)
    if "Open Kernel Module" in version and m and (int(m.group(1)), int(m.group(2))) >= (5, 12):
        return f"open GPU kernel module on Linux {release.split('-')[0]}"
    return None


def _modules(root: Path, has_ib: bool) -> list[Check]:
    text = _read(root / "proc/modules")
    if text is None:
        return [Check("kernel modules", SKIP, f"cannot read {root / 'proc/modules'}")]
    loaded = {line.split()[0] for line in text.splitlines() if line.strip()}
    out = []
    peer = [m for m in ("nvidia_peermem", "nv_peer_mem") if m in loaded]  # nv_peer_mem: Mellanox's older module
    dma_buf = _dma_buf_ready(root) if not peer else None
    if peer:
        out.append(Check("nvidia_peermem", PASS, f"{peer[0]} loaded (GPUDirect RDMA)"))
    elif dma_buf and has_ib:
        out.append(Check("nvidia_peermem", PASS, f"not loaded, not needed: GPUDirect RDMA through DMA-BUF ({dma_buf})"))
    else:
        out.append(Check("nvidia_peermem", WARN if has_ib else SKIP, "not loaded: NCCL cannot use GPUDirect RDMA over InfiniBand", "modprobe nvidia-peermem (and add it to /etc/modules-load.d), or use the open GPU kernel module on Linux 5.12+ for DMA-BUF"))
    if "nvidia_fs" in loaded:
        out.append(Check("nvidia_fs", PASS, "loaded (GPUDirect Storage)"))
    elif (root / "etc/cufile.json").is_file():  # GDS installed (the nvidia-gds package ships it) but its module is off
        out.append(Check("nvidia_fs", WARN, "not loaded though GDS is installed (/etc/cufile.json): cuFile falls back to compatibility mode", "modprobe nvidia-fs"))
    else:
        out.append(Check("nvidia_fs", SKIP, "not loaded and GDS not installed (no /etc/cufile.json): GPUDirect Storage not in use"))
    return out


def _fabric_manager(root: Path) -> list[Check]:
    switches = sorted((root / "proc/driver/nvidia-nvswitch/devices").glob("*"))
    if not switches:
        return [Check("fabric manager", SKIP, "no NVSwitch devices under /proc/driver/nvidia-nvswitch (NVLink 5 systems "
                      "show none there: their GPUs' NVLink fabric check applies)")]
    running = any(_read(p) in (_FM_BINARY[:15], _FM_BINARY) or (_read(p.with_name("cmdline")) or "").split("\0")[0].endswith(_FM_BINARY)
                  for p in (root / "proc").glob("[0-9]*/comm"))
    if running:
        return [Check("fabric manager", PASS, f"nv-fabricmanager running for {len(switches)} NVSwitch devices")]
    return [Check("fabric manager", FAIL, f"{len(switches)} NVSwitch devices but nv-fabricmanager is not running: CUDA init fails on this node", "systemctl enable --now nvidia-fabricmanager (its version must match the driver)")]


def diagnose(snap: Snapshot | None, root: Path = Path("/"), cuda: str | None = None, nvml_error: str | None = None) -> list[Check]:
    """Every check, worst first within the order they were run."""
    checks: list[Check] = []
    if snap is None:
        checks.append(Check("NVML", FAIL, nvml_error or "NVML unavailable", "install the NVIDIA driver, or run with --simulate"))
    else:
        checks.append(Check("NVML", PASS, f"{len(snap.gpus)} GPUs, driver {snap.driver_version}"))
        checks += _driver_checks(snap, cuda)
        checks += _gpu_checks(snap)
    ib = _infiniband(root)
    checks += ib
    checks += _modules(root, has_ib=any(c.status != SKIP for c in ib))
    checks += _fabric_manager(root)
    checks += _kernel_xids(root, snap)
    return checks


def summary(checks: list[Check]) -> Result:
    counts = {s: sum(1 for c in checks if c.status == s) for s in (PASS, WARN, FAIL, SKIP)}
    overall = FAIL if counts[FAIL] else WARN if counts[WARN] else PASS
    return Result(
        title=f"node doctor: {overall}",
        facts={"status": overall, **counts, "checks": [c.to_dict() for c in checks]},
    )


def snapshot_for(simulate: str | None, host: int = 0) -> tuple[Snapshot | None, str | None]:
    """A snapshot of this node through NVML, or of one simulated host; (None, why) when NVML is missing."""
    from aiinfra.errors import AiinfraError
    from aiinfra.telemetry.nvml import Collector

    if simulate is not None:
        from aiinfra.telemetry.simulate import fleet_from_spec

        fleet = fleet_from_spec(simulate)
        if not 0 <= host < len(fleet.hosts):
            raise AiinfraError(f"--sim-host {host} is outside the simulated fleet of {len(fleet.hosts)} hosts")
        sim = fleet.hosts[host]
        col = Collector(lib=sim, host=sim.name)
    else:
        try:
            col = Collector()
        except AiinfraError as e:
            return None, str(e)
    try:
        return col.collect(), None
    finally:
        col.close()

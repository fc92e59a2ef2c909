"""A deterministic simulated GPU fleet that answers the pynvml calls `telemetry.nvml` makes.

Nothing here calls NVML: `pynvml` is imported only for its exception classes and constants, so
a simulated "GPU is lost" is the very `pynvml.NVMLError_GpuIsLost` that a real driver raises and
the real collector code path handles it.

    fleet = Fleet(parse_spec("hosts=2,gpus=8,model=h100-sxm,seed=1"))
    host = fleet.hosts[0]            # has nvmlInit, nvmlDeviceGetCount, … as attributes
    Collector(lib=host)              # or: host.patch(monkeypatch) and Collector() on pynvml itself

Spec keys (`--simulate`): hosts, gpus, model (catalog GPU), seed, workload
(mixed|idle|training|inference|leak), mig (profiles joined by '+', e.g. 3g.40gb+3g.40gb),
mig_gpus (how many GPUs, from index 0, run MIG; default all), faults (joined by '+'), speed
(simulated seconds per wall-clock second, default 1).
A fault is `<kind>:[h<host>]g<gpu>@<start>[-<end>]` with times in seconds since the fleet
started, and kind one of lost, xid<code> (xid13, xid31, xid48, xid63, xid79, …), dbe, thermal,
power, pcie, nvlink, reload, newgpu. XID 79 (fallen off the bus) also makes the GPU lost until the
next driver reload; `lost` with an end time brings the GPU back then; dbe raises XID 48 then 63 and
leaves a row remap pending. `reload` (any g) unloads the driver at its start for 2 s (or until its
end): NVML answers DriverNotLoaded, and handles from before are stale until nvmlInit runs again.
`newgpu:g<i>@t` keeps GPU i (one of the last indices) invisible until t, like a hot-added board.
Values are functions of (seed, host, GPU, time) only.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import pynvml

from aiinfra.catalog.gpus import gpu as catalog_gpu
from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import SpecError
from aiinfra.specs import GpuSpec, arch_family

WORKLOADS = ("idle", "training", "inference", "leak")
FAULT_KINDS = ("lost", "xid", "dbe", "thermal", "power", "pcie", "nvlink", "fabric", "migpending", "reload", "newgpu")
_RELOAD_S = 2.0  # how long a simulated driver reload keeps NVML away
_SPEC_KEYS = ("hosts", "gpus", "model", "seed", "workload", "mig", "mig_gpus", "faults", "speed")

# Simulation parameters per architecture (not catalog facts): boost SM clock and memory clock, MHz.
_CLOCKS_MHZ = {"hopper": (1980, 2619), "blackwell": (1965, 3996), "ampere": (1410, 1593), "ada": (2520, 9001)}
_NVLINK_LINKS = {"hopper": 18, "blackwell": 18, "ampere": 12}
# Typical HGX 8-GPU PCI bus numbers; further GPUs continue the pattern.
_BUSES = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)
# Error counts per second of an `nvlink` fault, per NVML NVLink error-total field.
_NVLINK_ERROR_RATES = {
    pynvml.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL: 4.0,
    pynvml.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL: 1.0,
    pynvml.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL: 2.0,
    pynvml.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL: 0.1,
}
# MIG: compute slices → memory eighths, the H100/A100 profile geometry (1g, 2g, 3g, 4g, 7g).
_MIG_MEMORY_EIGHTHS = {1: 1, 2: 2, 3: 4, 4: 4, 7: 8}


def _mix(*parts: int) -> int:
    """splitmix64 over the parts: a fast, seed-stable hash (Python's hash() is salted for str)."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (p & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x


def _noise(*parts: int) -> float:
    """Deterministic noise in [-1, 1)."""
    return _mix(*parts) / 2**63 - 1.0


@dataclass(frozen=True)
class Fault:
    kind: str
    gpu: int
    start: float
    end: float | None = None
    host: int = 0
    xid: int | None = None

    def active(self, t: float) -> bool:
        return t >= self.start and (self.end is None or t < self.end)


@dataclass(frozen=True)
class FleetSpec:
    hosts: int = 1
    gpus: int = 8
    model: str = "h100-sxm"
    seed: int = 0
    workload: str = "mixed"
    mig: tuple[str, ...] = ()
    mig_gpus: int | None = None
    faults: tuple[Fault, ...] = ()
    speed: float = 1.0  # simulated seconds per wall-clock second


_FAULT_RE = re.compile(r"^(lost|xid(\d+)|dbe|thermal|power|pcie|nvlink|fabric|migpending|reload|newgpu):(?:h(\d+))?g(\d+)@(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?$")
_MIG_RE = re.compile(r"^(\d)g\.(\d+)gb(?:\+me)?$")


def parse_fault(text: str) -> Fault:
    m = _FAULT_RE.match(text.strip())
    if not m:
        raise SpecError(
            f"bad fault '{text}'; write <kind>:[h<host>]g<gpu>@<start>[-<end>] with kind one of "
            "lost, xid<code>, dbe, thermal, power, pcie, nvlink, fabric, reload, newgpu (e.g. xid79:g1@20)"
        )
    kind, code, host, gpu_i, start, end = m.groups()
    xid = int(code) if code else None
    return Fault(
        kind="xid" if xid is not None else kind,
        gpu=int(gpu_i),
        start=float(start),
        end=float(end) if end else None,
        host=int(host) if host else 0,
        xid=xid,
    )


def parse_spec(text: str) -> FleetSpec:
    """`hosts=2,gpus=8,model=h100-sxm,seed=1` → FleetSpec; anything wrong is one AiinfraError sentence."""
    values: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not value.strip():
            raise SpecError(f"bad --simulate item '{part}'; write key=value pairs such as hosts=2,gpus=8,model=h100-sxm,seed=1")
        if key not in _SPEC_KEYS:
            raise SpecError(f"unknown --simulate key '{key}'; known keys: {', '.join(_SPEC_KEYS)}")
        values[key] = value.strip()

    def integer(key: str, default: int, lo: int, hi: int) -> int:
        raw = values.get(key)
        if raw is None:
            return default
        try:
            n = int(raw)
        except ValueError:
            raise SpecError(f"--simulate {key} must be an integer, got '{raw}'") from None
        if not lo <= n <= hi:
            raise SpecError(f"--simulate {key} must be between {lo} and {hi}, got {n}")
        return n

    spec = FleetSpec(
        hosts=integer("hosts", 1, 1, 256),
        gpus=integer("gpus", 8, 1, 256),
        model=values.get("model", "h100-sxm"),
        seed=integer("seed", 0, 0, 2**31),
        workload=values.get("workload", "mixed"),
        mig=_mig_list(values.get("mig", "")),
        mig_gpus=integer("mig_gpus", -1, 0, 256) if "mig_gpus" in values else None,
        faults=tuple(parse_fault(f) for f in values.get("faults", "").split("+") if f),
        speed=_speed(values.get("speed", "1")),
    )
    validate(spec)
    return spec


def _mig_list(raw: str) -> tuple[str, ...]:
    """'3g.40gb+1g.10gb+me' → ('3g.40gb', '1g.10gb+me'): profiles are joined by '+', and '+me' is part of a name."""
    out: list[str] = []
    for part in (p for p in raw.split("+") if p):
        if part == "me" and out:
            out[-1] += "+me"
        else:
            out.append(part)
    return tuple(out)


def _speed(raw: str) -> float:
    try:
        speed = float(raw)
    except ValueError:
        raise SpecError(f"--simulate speed must be a number (simulated seconds per second), got '{raw}'") from None
    if not 0 < speed <= 1e6:
        raise SpecError(f"--simulate speed must be above 0 and at most 1e6, got {raw}")
    return speed


def product_name(gpu: GpuSpec) -> str:
    """The name NVML gives the part (the catalog's first nvml_names entry, e.g. "NVIDIA H100 80GB HBM3"), so a
    simulated modelName is one a real dcgm-exporter prints; the catalog name where none is known."""
    return gpu.nvml_names[0] if gpu.nvml_names else gpu.nvml_name or gpu.name


def validate(spec: FleetSpec) -> GpuSpec:
    gpu = catalog_gpu(spec.model)
    if gpu.vendor != "nvidia":
        raise SpecError(f"{gpu.key} is an {gpu.vendor.upper()} GPU; the simulated fleet answers NVML calls, so pick an NVIDIA model")
    if spec.workload not in WORKLOADS + ("mixed",):
        raise SpecError(f"unknown workload '{spec.workload}'; choose one of: mixed, {', '.join(WORKLOADS)}")
    if spec.mig:
        if not gpu.mig:
            raise SpecError(f"{gpu.key} does not support MIG; drop mig= or pick a MIG-capable model")
        table = mig_profiles(gpu)
        for profile in spec.mig:
            if profile not in table:
                raise SpecError(f"unknown MIG profile '{profile}' for {gpu.key}; valid: {', '.join(table)}")
        slices = sum(table[p][0] for p in spec.mig)
        most = max(s for s, _ in table.values())
        if slices > most:
            raise SpecError(f"MIG profiles {'+'.join(spec.mig)} need {slices} compute slices; a {gpu.key} has {most}")
    for f in spec.faults:
        if f.host >= spec.hosts or f.gpu >= spec.gpus:
            raise SpecError(f"fault on host {f.host} GPU {f.gpu} is outside the fleet ({spec.hosts} hosts × {spec.gpus} GPUs)")
        if f.end is not None and f.end <= f.start:
            raise SpecError(f"fault {f.kind} on GPU {f.gpu} ends at {f.end}s, before it starts at {f.start}s")
    for h in range(spec.hosts):
        added = {f.gpu for f in spec.faults if f.kind == "newgpu" and f.host == h}
        if added and min(added) < spec.gpus - len(added):
            raise SpecError(f"newgpu faults must name the last GPU indices (GPUs keep their index order); with {spec.gpus} GPUs use g{spec.gpus - len(added)}..g{spec.gpus - 1}")
    return gpu


def mig_profiles(gpu: GpuSpec) -> dict[str, tuple[int, int]]:
    """MIG profile name → (compute slices, instance memory in bytes) for a GPU.

    From the MIG catalog (catalog/data/mig_profiles.yaml, matched by PCI device ID) when it is
    installed; otherwise from the H100/A100 geometry: 7 compute slices over 8 memory slices, named
    <slices>g.<GB, rounded half up>gb as NVIDIA names them (3g.40gb on an 80 GB H100).
    """
    total = _total_bytes(gpu)
    dev = (gpu.pci_device_id or "").lower()
    for entry in default_catalog().table("mig_profiles").values():
        ids = [str(x).lower() for x in entry.get("pci_device_ids", [])]
        if dev and dev in ids and entry.get("profiles"):
            out = {}
            for prof in entry["profiles"]:
                m = _MIG_RE.match(str(prof.get("name", "")))
                if not m:
                    continue
                gib = prof.get("usable_gib")
                mem = int(float(gib) * 2**30) if gib else int(m.group(2)) * 10**9
                out[prof["name"]] = (int(m.group(1)), min(mem, total) // 2**20 * 2**20)
            if out:
                return out
    return {
        f"{c}g.{math.floor(gpu.memory_gb * e / 8 + 0.5)}gb": (c, total * e // 8 // 2**20 * 2**20)
        for c, e in _MIG_MEMORY_EIGHTHS.items()
    }


def _total_bytes(gpu: GpuSpec) -> int:
    if gpu.memory_total_mib:
        return int(gpu.memory_total_mib) * 2**20
    return int(gpu.memory_gb * 1e9) // 2**20 * 2**20


class ManualClock:
    """A clock tests move by hand, so time-dependent behaviour is exact."""

    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def wall_clock(speed: float = 1.0) -> Callable[[], float]:
    """Seconds since the fleet started, `speed` times faster than the wall clock (demos of slow faults)."""
    t0 = time.monotonic()
    return lambda: (time.monotonic() - t0) * speed


# ---------------------------------------------------------------- simulated devices


@dataclass(eq=False)
class SimMig:
    """A MIG device handle (one GPU instance with one compute instance)."""

    parent: SimGpu
    gi_id: int
    slices: int
    profile: str
    uuid: str
    pattern: str
    memory_bytes: int


@dataclass(eq=False)
class SimGpu:
    """A physical GPU handle."""

    host: SimHost
    index: int
    spec: GpuSpec
    uuid: str
    bus_id: str
    serial: str
    pattern: str
    migs: list[SimMig] = field(default_factory=list)
    mig_pending: bool = False

    @property
    def memory_bytes(self) -> int:
        return _total_bytes(self.spec)


class SimGpmSample:
    def __init__(self) -> None:
        self.handle: SimGpu | SimMig | None = None
        self.t = 0.0


class SimGpmMetricsGet:
    """Stands in for pynvml.c_nvmlGpmMetricsGet_t: same attribute names, Python objects inside."""

    def __init__(self) -> None:
        self.version = 0
        self.numMetrics = 0
        self.sample1: SimGpmSample | None = None
        self.sample2: SimGpmSample | None = None
        self.metrics = [SimpleNamespace(metricId=0, nvmlReturn=0, value=0.0) for _ in range(pynvml.NVML_GPM_METRIC_MAX)]


class SimEventSet:
    def __init__(self) -> None:
        self.devices: set[int] = set()
        self.delivered = 0


class Fleet:
    """hosts × GPUs built from a FleetSpec; every host is independent and deterministic."""

    def __init__(self, spec: FleetSpec, clock: Callable[[], float] | None = None):
        self.spec = spec
        self.gpu_spec = validate(spec)
        self.clock = clock or wall_clock(spec.speed)
        self.hosts = [SimHost(self, h) for h in range(spec.hosts)]


class SimHost:
    """One simulated node. Its nvml* methods mirror pynvml's signatures and return types."""

    driver_version = "570.124.06"
    cuda_version = 12080

    def __init__(self, fleet: Fleet, index: int):
        self.fleet = fleet
        self.index = index
        self.name = f"sim-node-{index:02d}"
        self.initialized = False
        self.init_epoch = 0
        self._event_sets = 0
        spec = fleet.spec
        seed = spec.seed
        self.gpus: list[SimGpu] = []
        mig_gpus = spec.gpus if spec.mig_gpus is None else spec.mig_gpus
        for g in range(spec.gpus):
            u = _mix(seed, index, g, 1)
            uuid = f"GPU-{u >> 32:08x}-{(u >> 16) & 0xFFFF:04x}-{u & 0xFFFF:04x}-{_mix(u) >> 48:04x}-{_mix(u, 2) >> 16:012x}"
            bus = _BUSES[g] if g < len(_BUSES) else (0x10 + 0x11 * g) % 0xFF
            if spec.workload == "mixed":
                pattern = ("training", "training", "inference", "idle", "training", "inference", "leak", "training")[_mix(seed, index, g, 3) % 8]
            else:
                pattern = spec.workload
            gpu = SimGpu(self, g, fleet.gpu_spec, uuid, f"00000000:{bus:02X}:00.0", f"1{_mix(seed, index, g, 4) % 10**12:012d}", pattern)
            if spec.mig and g < mig_gpus:
                table = mig_profiles(fleet.gpu_spec)
                for i, profile in enumerate(spec.mig):
                    slices, mem = table[profile]
                    mu = _mix(seed, index, g, 10 + i)
                    mig_uuid = f"MIG-{mu >> 32:08x}-{(mu >> 16) & 0xFFFF:04x}-{mu & 0xFFFF:04x}-{_mix(mu) >> 48:04x}-{_mix(mu, 2) >> 16:012x}"
                    mig_pattern = ("inference", "training", "idle")[i % 3] if spec.workload == "mixed" else spec.workload
                    # GPU instance ids as the driver numbers them for these placements.
                    gpu.migs.append(SimMig(gpu, gi_id=i + 1, slices=slices, profile=profile, uuid=mig_uuid, pattern=mig_pattern, memory_bytes=mem))
            self.gpus.append(gpu)
        self.faults = [f for f in spec.faults if f.host == index]
        self.events = self._xid_events()

    # ---- state at time t

    def now(self) -> float:
        return self.fleet.clock()

    def _faults(self, gpu: int, kind: str, t: float) -> list[Fault]:
        return [f for f in self.faults if f.gpu == gpu and f.kind == kind and f.active(t)]

    def _xid_events(self) -> list[tuple[float, int, int]]:
        """(time, gpu, xid) for every XID the schedule raises, in time order."""
        out = []
        for f in self.faults:
            if f.kind == "xid":
                out.append((f.start, f.gpu, int(f.xid or 0)))
            elif f.kind == "dbe":
                out.append((f.start, f.gpu, 48))
                out.append((f.start + 1e-3, f.gpu, 63))
        return sorted(out)

    def _reload_ends(self) -> list[tuple[float, float]]:
        return [(f.start, f.end if f.end is not None else f.start + _RELOAD_S) for f in self.faults if f.kind == "reload"]

    def reloading(self, t: float) -> bool:
        return any(a <= t < b for a, b in self._reload_ends())

    def epoch(self, t: float) -> int:
        """How many driver reloads have finished by time t (handles from an older epoch are stale)."""
        return sum(1 for _, b in self._reload_ends() if b <= t)

    def visible(self, gpu: int, t: float) -> bool:
        return not any(f.kind == "newgpu" and f.gpu == gpu and t < f.start for f in self.faults)

    def is_lost(self, gpu: int, t: float) -> bool:
        for f in self.faults:
            if f.gpu != gpu or t < f.start:
                continue
            if f.kind == "lost" and f.active(t):
                return True
            if f.kind == "xid" and f.xid == 79 and not any(f.start < b <= t for _, b in self._reload_ends()):
                return True  # fallen off the bus: back only after a driver reload
        return False

    def _check(self, handle: SimGpu | SimMig) -> tuple[SimGpu, float]:
        if not self.initialized:
            raise pynvml.NVMLError_Uninitialized()
        gpu = handle.parent if isinstance(handle, SimMig) else handle
        t = self.now()
        if self.reloading(t):
            raise pynvml.NVMLError_DriverNotLoaded()
        if self.epoch(t) != self.init_epoch or not self.visible(gpu.index, t):
            raise pynvml.NVMLError_GpuIsLost()  # a handle from before the reload
        if self.is_lost(gpu.index, t):
            raise pynvml.NVMLError_GpuIsLost()
        return gpu, t

    def activity(self, handle: SimGpu | SimMig, t: float) -> float:
        """Fraction of time busy, 0–1, from the workload pattern."""
        pattern = handle.pattern
        gpu = handle.parent if isinstance(handle, SimMig) else handle
        key = (self.fleet.spec.seed, self.index, gpu.index, getattr(handle, "gi_id", 0))
        tick = int(t)
        n = _noise(*key, tick, 7)
        if pattern == "idle":
            return 0.0
        if pattern == "training":
            if (t % 300.0) < 15.0:  # checkpoint pause every 5 min
                return 0.08 + 0.02 * n
            return min(1.0, max(0.0, 0.93 + 0.04 * math.sin(2 * math.pi * t / 60.0) + 0.02 * n))
        if pattern == "inference":
            phase = (_mix(*key) % 628) / 100.0
            return min(1.0, max(0.0, 0.45 + 0.3 * math.sin(2 * math.pi * t / 120.0 + phase) + 0.05 * n))
        return min(1.0, max(0.0, 0.5 + 0.05 * n))  # leak: steady load, memory grows

    def profile(self, handle: SimGpu | SimMig, t: float) -> dict[int, float]:
        """Profiling ratios 0–1 by DCGM field ID (1001 GR engine … 1008 FP16), per GPU or MIG instance;
        both GPM (NVML) and DCGM's profiling module report these."""
        a = self.activity(handle, t)
        tensor = {"training": 0.62, "inference": 0.35, "leak": 0.3}.get(handle.pattern, 0.0)
        return {1001: 0.98 * a, 1002: 0.90 * a, 1003: 0.38 * a, 1004: tensor * a, 1005: 0.45 * a, 1006: 0.01 * a, 1007: 0.22 * a, 1008: 0.12 * a}

    def _mean_activity(self, handle: SimGpu | SimMig) -> float:
        return {"idle": 0.0, "training": 0.87, "inference": 0.45, "leak": 0.5}[handle.pattern]

    def _memory_used(self, handle: SimGpu | SimMig, t: float, usable: int) -> int:
        frac = {"idle": 0.0, "training": 0.88, "inference": 0.9}.get(handle.pattern)
        if frac is None:  # leak: +2% of memory per minute from 20%, until full
            frac = min(0.999, 0.2 + 0.02 * t / 60.0)
        base = 0 if handle.pattern == "idle" else 512 * 2**20
        return min(usable, base + int(usable * frac) // 2**20 * 2**20)

    # ---- pynvml surface

    def nvmlInit(self) -> None:
        t = self.now()
        if self.reloading(t):
            raise pynvml.NVMLError_DriverNotLoaded()
        self.initialized = True
        self.init_epoch = self.epoch(t)

    def nvmlShutdown(self) -> None:
        self.initialized = False

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self.cuda_version

    def nvmlSystemGetNVMLVersion(self) -> str:
        return "12." + self.driver_version

    def nvmlDeviceGetBrand(self, h: SimGpu) -> int:
        self._check(h)
        return pynvml.NVML_BRAND_NVIDIA

    def nvmlDeviceGetInforomVersion(self, h: SimGpu, kind: int) -> str:
        self._check(h)
        return {pynvml.NVML_INFOROM_OEM: "2.1", pynvml.NVML_INFOROM_ECC: "7.16", pynvml.NVML_INFOROM_POWER: "N/A"}.get(kind, "N/A")

    def nvmlDeviceGetInforomImageVersion(self, h: SimGpu) -> str:
        self._check(h)
        return "G520.0200.00.05"

    def nvmlDeviceGetVbiosVersion(self, h: SimGpu) -> str:
        self._check(h)
        return "96.00.99.00.01"

    def nvmlDeviceGetCount(self) -> int:
        if not self.initialized:
            raise pynvml.NVMLError_Uninitialized()
        t = self.now()
        if self.reloading(t):
            raise pynvml.NVMLError_DriverNotLoaded()
        if self.epoch(t) != self.init_epoch:
            raise pynvml.NVMLError_Uninitialized()  # the library state predates the reload
        return sum(1 for g in self.gpus if self.visible(g.index, t))

    def nvmlDeviceGetHandleByIndex(self, index: int) -> SimGpu:
        if not 0 <= index < len(self.gpus) or not self.visible(index, self.now()):
            raise pynvml.NVMLError_InvalidArgument()
        gpu = self.gpus[index]
        self._check(gpu)
        return gpu

    def nvmlDeviceGetUUID(self, h: SimGpu | SimMig) -> str:
        self._check(h)
        return h.uuid

    def nvmlDeviceGetName(self, h: SimGpu | SimMig) -> str:
        gpu, _ = self._check(h)
        name = product_name(gpu.spec)
        return f"{name} MIG {h.profile}" if isinstance(h, SimMig) else name

    def nvmlDeviceGetSerial(self, h: SimGpu) -> str:
        self._check(h)
        return h.serial

    def nvmlDeviceGetPciInfo(self, h: SimGpu) -> SimpleNamespace:
        gpu, _ = self._check(h)
        dev_id = int(gpu.spec.pci_device_id or "0x0", 16)
        return SimpleNamespace(busId=gpu.bus_id, busIdLegacy=gpu.bus_id[4:], pciDeviceId=(dev_id << 16) | 0x10DE)

    def nvmlDeviceGetMigMode(self, h: SimGpu) -> list[int]:
        self._check(h)
        if not h.spec.mig:
            raise pynvml.NVMLError_NotSupported()
        current = 1 if h.migs else 0
        pending = (1 - current) if h.mig_pending or self._faults(h.index, "migpending", self.now()) else current
        return [current, pending]

    def nvmlDeviceGetMaxMigDeviceCount(self, h: SimGpu) -> int:
        self._check(h)
        return 7 if h.spec.mig else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h: SimGpu, i: int) -> SimMig:
        self._check(h)
        if i >= len(h.migs):
            raise pynvml.NVMLError_NotFound()
        return h.migs[i]

    def nvmlDeviceIsMigDeviceHandle(self, h: SimGpu | SimMig) -> int:
        return 1 if isinstance(h, SimMig) else 0

    def nvmlDeviceGetGpuInstanceId(self, h: SimMig) -> int:
        self._check(h)
        if not isinstance(h, SimMig):
            raise pynvml.NVMLError_InvalidArgument()
        return h.gi_id

    def nvmlDeviceGetComputeInstanceId(self, h: SimMig) -> int:
        self._check(h)
        if not isinstance(h, SimMig):
            raise pynvml.NVMLError_InvalidArgument()
        return 0

    def nvmlDeviceGetAttributes(self, h: SimGpu | SimMig) -> SimpleNamespace:
        _gpu, _ = self._check(h)
        slices = h.slices if isinstance(h, SimMig) else 7
        return SimpleNamespace(
            multiprocessorCount=132 * slices // 7,
            gpuInstanceSliceCount=slices,
            computeInstanceSliceCount=slices,
            memorySizeMB=h.memory_bytes // 2**20,
        )

    def nvmlDeviceGetPersistenceMode(self, h: SimGpu) -> int:
        self._check(h)
        return 1

    def nvmlDeviceGetEccMode(self, h: SimGpu) -> list[int]:
        self._check(h)
        return [1, 1]

    def nvmlDeviceGetUtilizationRates(self, h: SimGpu | SimMig) -> SimpleNamespace:
        _, t = self._check(h)
        if isinstance(h, SimMig) or h.migs:
            raise pynvml.NVMLError_NotSupported()  # not available per MIG instance nor with MIG on
        a = self.activity(h, t)
        return SimpleNamespace(gpu=round(100 * a), memory=round(100 * a * 0.42))

    def nvmlDeviceGetEncoderUtilization(self, h: SimGpu) -> list[int]:
        self._check(h)
        if isinstance(h, SimMig) or h.migs:
            raise pynvml.NVMLError_NotSupported()
        return [0, 167000]

    def nvmlDeviceGetDecoderUtilization(self, h: SimGpu) -> list[int]:
        return self.nvmlDeviceGetEncoderUtilization(h)

    def nvmlDeviceGetMemoryInfo(self, h: SimGpu | SimMig, version: int | None = None) -> SimpleNamespace:
        _, t = self._check(h)
        total = h.memory_bytes
        # The driver keeps ~0.6% of the framebuffer; v2 reports it apart from `used`.
        reserved = 0 if isinstance(h, SimMig) else (total // 160) // 2**20 * 2**20
        if isinstance(h, SimGpu) and h.migs:
            used = sum(self._memory_used(m, t, m.memory_bytes) for m in h.migs)
        else:
            used = self._memory_used(h, t, total - reserved)
        free = total - reserved - used
        if version:
            return SimpleNamespace(version=version, total=total, reserved=reserved, free=free, used=used)
        return SimpleNamespace(total=total, free=free, used=used + reserved)  # v1: used includes reserved

    @staticmethod
    def _limit_w(gpu: SimGpu) -> float:
        """The power limit the part runs at: the catalog's power_limit_w where it is capped below TDP."""
        return gpu.spec.power_limit_w or gpu.spec.tdp_w

    def _power_w(self, gpu: SimGpu, t: float) -> float:
        limit = self._limit_w(gpu)
        if self._faults(gpu.index, "power", t):
            return limit * 0.995
        acts = [self.activity(m, t) for m in gpu.migs] if gpu.migs else [self.activity(gpu, t)]
        a = sum(acts) / len(acts)
        return 0.1 * limit + 0.9 * limit * (0.1 + 0.85 * a) + 3.0 * _noise(self.fleet.spec.seed, self.index, gpu.index, int(t), 11)

    def nvmlDeviceGetPowerUsage(self, h: SimGpu) -> int:
        gpu, t = self._check(h)
        return int(self._power_w(gpu, t) * 1000)  # mW

    def nvmlDeviceGetEnforcedPowerLimit(self, h: SimGpu) -> int:
        gpu, _ = self._check(h)
        return int(self._limit_w(gpu) * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, h: SimGpu) -> int:
        gpu, t = self._check(h)
        acts = [self._mean_activity(m) for m in gpu.migs] if gpu.migs else [self._mean_activity(gpu)]
        a = sum(acts) / len(acts)
        limit = self._limit_w(gpu)
        mean_w = 0.1 * limit + 0.9 * limit * (0.1 + 0.85 * a)
        boot_j = 3.6e6 * (1 + _mix(self.fleet.spec.seed, self.index, gpu.index, 12) % 50)
        return int((boot_j + mean_w * t) * 1000)  # mJ since driver load

    def _temp(self, gpu: SimGpu, t: float) -> int:
        if self._faults(gpu.index, "thermal", t):
            return 89 + int(2 * (1 + _noise(self.fleet.spec.seed, self.index, gpu.index, int(t), 13)))
        p = self._power_w(gpu, t) / self._limit_w(gpu)
        return round(28 + 45 * p)

    def nvmlDeviceGetTemperature(self, h: SimGpu, sensor: int) -> int:
        gpu, t = self._check(h)
        return self._temp(gpu, t)

    def nvmlDeviceGetTemperatureThreshold(self, h: SimGpu, kind: int) -> int:
        self._check(h)
        return {pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: 92, pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: 87}.get(kind, 85)

    def _reasons(self, gpu: SimGpu, t: float) -> int:
        bits = 0
        if self._faults(gpu.index, "thermal", t):
            bits |= 0x020 | 0x040
        if self._faults(gpu.index, "power", t):
            bits |= 0x004
        if not bits and self.activity(gpu if not gpu.migs else gpu.migs[0], t) == 0.0:
            bits |= 0x001
        return bits

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: SimGpu) -> int:
        gpu, t = self._check(h)
        return self._reasons(gpu, t)

    def nvmlDeviceGetClockInfo(self, h: SimGpu, kind: int) -> int:
        gpu, t = self._check(h)
        sm_max, mem = _CLOCKS_MHZ.get(arch_family(gpu.spec.architecture), (1700, 1500))
        if kind == pynvml.NVML_CLOCK_MEM:
            return mem
        reasons = self._reasons(gpu, t)
        if reasons & 0x001:
            return 345
        if reasons & 0x060:
            return int(sm_max * 0.55)
        if reasons & 0x004:
            return int(sm_max * 0.8)
        return sm_max

    def nvmlDeviceGetMaxClockInfo(self, h: SimGpu, kind: int) -> int:
        gpu, _ = self._check(h)
        sm_max, mem = _CLOCKS_MHZ.get(arch_family(gpu.spec.architecture), (1700, 1500))
        return mem if kind == pynvml.NVML_CLOCK_MEM else sm_max

    def nvmlDeviceGetViolationStatus(self, h: SimGpu, policy: int) -> SimpleNamespace:
        gpu, t = self._check(h)
        kind = {pynvml.NVML_PERF_POLICY_POWER: "power", pynvml.NVML_PERF_POLICY_THERMAL: "thermal"}.get(policy)
        if kind is None:  # sync boost, board limit, low utilisation, reliability: supported, never hit here
            return SimpleNamespace(referenceTime=int(t * 1e9), violationTime=0)
        ns = sum(max(0.0, min(t, f.end if f.end is not None else t) - f.start) for f in self.faults if f.gpu == gpu.index and f.kind == kind)
        return SimpleNamespace(referenceTime=int(t * 1e9), violationTime=int(ns * 1e9))

    def _fault_seconds(self, gpu: int, kind: str, t: float) -> float:
        """Seconds of fault `kind` on this GPU up to time t (error counters grow while a fault lasts)."""
        return sum(max(0.0, min(t, f.end if f.end is not None else t) - f.start) for f in self.faults if f.gpu == gpu and f.kind == kind)

    def nvmlDeviceGetPcieReplayCounter(self, h: SimGpu) -> int:
        gpu, t = self._check(h)
        base = int(t // (900 + 60 * gpu.index)) if _mix(self.fleet.spec.seed, self.index, gpu.index, 14) % 4 == 0 else 0
        return base + int(3 * self._fault_seconds(gpu.index, "pcie", t))  # a bad link replays a few TLPs a second

    def nvmlDeviceGetCurrPcieLinkGeneration(self, h: SimGpu) -> int:
        gpu, t = self._check(h)
        return 3 if self._faults(gpu.index, "pcie", t) else gpu.spec.pcie_gen

    def nvmlDeviceGetMaxPcieLinkGeneration(self, h: SimGpu) -> int:
        gpu, _ = self._check(h)
        return gpu.spec.pcie_gen

    def nvmlDeviceGetCurrPcieLinkWidth(self, h: SimGpu) -> int:
        gpu, t = self._check(h)
        return 8 if self._faults(gpu.index, "pcie", t) else 16

    def nvmlDeviceGetMaxPcieLinkWidth(self, h: SimGpu) -> int:
        self._check(h)
        return 16

    def nvmlDeviceGetPcieThroughput(self, h: SimGpu, counter: int) -> int:
        gpu, t = self._check(h)
        return int(self._pcie_bps(gpu, t, counter == pynvml.NVML_PCIE_UTIL_TX_BYTES) / 1024)  # KB/s

    def _pcie_bps(self, gpu: SimGpu, t: float, tx: bool) -> float:
        a = self.activity(gpu if not gpu.migs else gpu.migs[0], t)
        return a * (1.1e9 if tx else 2.4e9)

    def _dbe_count(self, gpu: int, t: float) -> int:
        return sum(1 for f in self.faults if f.gpu == gpu and f.kind == "dbe" and t >= f.start)

    def nvmlDeviceGetTotalEccErrors(self, h: SimGpu, error_type: int, counter_type: int) -> int:
        gpu, t = self._check(h)
        if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED:
            n = self._dbe_count(gpu.index, t)
        else:
            n = int(t // 3600) * (_mix(self.fleet.spec.seed, self.index, gpu.index, 15) % 3)
        if counter_type == pynvml.NVML_AGGREGATE_ECC:
            n += _mix(self.fleet.spec.seed, self.index, gpu.index, 16, error_type) % 2
        return n

    def nvmlDeviceGetRemappedRows(self, h: SimGpu) -> tuple[int, int, int, int]:
        gpu, t = self._check(h)
        unc = self._dbe_count(gpu.index, t)
        return (0, unc, 1 if unc else 0, 0)

    def nvmlDeviceGetRetiredPages(self, h: SimGpu, cause: int) -> list[int]:
        self._check(h)
        raise pynvml.NVMLError_NotSupported()  # Ampere and newer remap rows instead

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h: SimGpu) -> int:
        self._check(h)
        raise pynvml.NVMLError_NotSupported()

    def _nvlink_links(self, gpu: SimGpu) -> int:
        return _NVLINK_LINKS.get(arch_family(gpu.spec.architecture), 0) if gpu.spec.nvlink_gbps > 0 and gpu.spec.form_factor == "sxm" else 0

    def nvmlDeviceGetGpuFabricInfo(self, h: SimGpu, info: Any) -> int:
        """NVSwitch-connected GPUs register with the NVLink fabric (state COMPLETED, status SUCCESS); a `fabric`
        fault holds registration IN_PROGRESS, as with the fabric manager down. Others: NOT_SUPPORTED."""
        gpu, t = self._check(h)
        if not self._nvlink_links(gpu):
            raise pynvml.NVMLError_NotSupported()
        out = getattr(info, "_obj", info)  # ctypes.byref(struct), as nvidia-ml-py callers pass it
        stuck = bool(self._faults(gpu.index, "fabric", t))
        out.state = pynvml.NVML_GPU_FABRIC_STATE_IN_PROGRESS if stuck else pynvml.NVML_GPU_FABRIC_STATE_COMPLETED
        out.status = pynvml.NVML_SUCCESS
        return pynvml.NVML_SUCCESS

    def nvmlDeviceGetNvLinkState(self, h: SimGpu, link: int) -> int:
        gpu, t = self._check(h)
        if link >= self._nvlink_links(gpu):
            raise pynvml.NVMLError_NotSupported()
        down = self._faults(gpu.index, "nvlink", t) and link == 0
        return 0 if down else 1

    def _nvlink_kib(self, gpu: SimGpu, t: float) -> int:
        """Cumulative NVLink data KiB (RX+TX over all links), from the mean workload intensity."""
        rate = self._mean_activity(gpu if not gpu.migs else gpu.migs[0]) * gpu.spec.nvlink_gbps * 1e9 * 0.25
        return int(rate * t / 1024)

    def nvmlDeviceGetFieldValues(self, h: SimGpu, field_ids: list) -> list[SimpleNamespace]:
        gpu, t = self._check(h)
        out = []
        links = self._nvlink_links(gpu)
        for fid in field_ids:
            fid, scope = fid if isinstance(fid, tuple) else (fid, 0)
            ret, vtype, value = pynvml.NVML_SUCCESS, pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, 0
            if fid == pynvml.NVML_FI_DEV_MEMORY_TEMP:
                if gpu.spec.memory_type.upper().startswith("HBM"):
                    value = self._temp(gpu, t) + 6
                else:
                    ret = pynvml.NVML_ERROR_NOT_SUPPORTED
            elif fid == pynvml.NVML_FI_DEV_NVLINK_LINK_COUNT:
                value = links
            elif fid in (pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX):
                if scope >= links:
                    ret = pynvml.NVML_ERROR_NOT_SUPPORTED
                else:
                    value = self._nvlink_kib(gpu, t) // (2 * links)
            elif fid in _NVLINK_ERROR_RATES:
                if links:
                    value = int(_NVLINK_ERROR_RATES[fid] * self._fault_seconds(gpu.index, "nvlink", t))
                else:
                    ret = pynvml.NVML_ERROR_NOT_SUPPORTED
            elif fid == pynvml.NVML_FI_DEV_PCIE_COUNT_CORRECTABLE_ERRORS:
                value = int(5 * self._fault_seconds(gpu.index, "pcie", t))
            elif fid == pynvml.NVML_FI_DEV_REMAPPED_PENDING:
                value = 1 if self._dbe_count(gpu.index, t) else 0
            else:
                ret = pynvml.NVML_ERROR_NOT_SUPPORTED
            v = SimpleNamespace(dVal=float(value), uiVal=value, ulVal=value, ullVal=value, sllVal=value, siVal=value, usVal=value)
            out.append(SimpleNamespace(fieldId=fid, scopeId=scope, timestamp=int(t * 1e6), latencyUsec=0, valueType=vtype, nvmlReturn=ret, value=v))
        return out

    def nvmlDeviceGetComputeRunningProcesses(self, h: SimGpu) -> list[SimpleNamespace]:
        gpu, t = self._check(h)
        procs = []
        handles = gpu.migs if gpu.migs else [gpu]
        for i, d in enumerate(handles):
            if d.pattern == "idle":
                continue
            pid = 10_000 + 1000 * self.index + 10 * gpu.index + i
            if isinstance(d, SimMig):  # per-process memory is N/A with MIG on
                procs.append(SimpleNamespace(pid=pid, usedGpuMemory=None, gpuInstanceId=d.gi_id, computeInstanceId=0))
            else:
                used = self._memory_used(d, t, d.memory_bytes) - 512 * 2**20
                procs.append(SimpleNamespace(pid=pid, usedGpuMemory=max(0, used), gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF))
        return procs

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: SimGpu) -> list[SimpleNamespace]:
        self._check(h)
        return []

    def nvmlDeviceGetProcessUtilization(self, h: SimGpu, last_seen_us: int) -> list[SimpleNamespace]:
        """One sample per compute process, SM and memory % from its workload (NotFound when none, as NVML)."""
        gpu, t = self._check(h)
        by_gi = {m.gi_id: m for m in gpu.migs}
        out = []
        for p in self.nvmlDeviceGetComputeRunningProcesses(gpu):
            d = by_gi.get(p.gpuInstanceId, gpu)
            a = self.activity(d, t)
            out.append(SimpleNamespace(pid=p.pid, timeStamp=int(t * 1e6), smUtil=round(90 * a), memUtil=round(40 * a), encUtil=0, decUtil=0))
        if not out:
            raise pynvml.NVMLError_NotFound()
        return out

    # XID events through an event set, as nvmlEventSetWait_v2 delivers them.
    def nvmlEventSetCreate(self) -> SimEventSet:
        es = SimEventSet()
        if self._event_sets:  # a set made later (re-enumeration after a reload) sees only new events
            t = self.now()
            es.delivered = sum(1 for w, _, _ in self.events if w < t)
        self._event_sets += 1
        return es

    def nvmlDeviceRegisterEvents(self, h: SimGpu, event_types: int, es: SimEventSet) -> None:
        self._check(h)
        es.devices.add(h.index)

    def nvmlEventSetWait_v2(self, es: SimEventSet, timeout_ms: int) -> SimpleNamespace:
        t = self.now()
        while es.delivered < len(self.events) and self.events[es.delivered][0] <= t:
            _when, g, xid = self.events[es.delivered]
            es.delivered += 1
            if g in es.devices:
                return SimpleNamespace(device=self.gpus[g], eventType=pynvml.nvmlEventTypeXidCriticalError, eventData=xid, gpuInstanceId=0xFFFFFFFF, computeInstanceId=0xFFFFFFFF)
        raise pynvml.NVMLError_Timeout()

    def nvmlEventSetFree(self, es: SimEventSet) -> None:
        return None

    # GPM (Hopper+ profiling metrics): samples record time; the metrics are activity-derived ratios ×100.
    c_nvmlGpmMetricsGet_t = SimGpmMetricsGet

    def nvmlGpmQueryDeviceSupport(self, h: SimGpu) -> SimpleNamespace:
        gpu, _ = self._check(h)
        return SimpleNamespace(version=1, isSupportedDevice=1 if arch_family(gpu.spec.architecture) in ("hopper", "blackwell") else 0)

    def nvmlGpmSampleAlloc(self) -> SimGpmSample:
        return SimGpmSample()

    def nvmlGpmSampleFree(self, sample: SimGpmSample) -> None:
        return None

    def nvmlGpmSampleGet(self, h: SimGpu, sample: SimGpmSample) -> SimGpmSample:
        _, t = self._check(h)
        sample.handle, sample.t = h, t
        return sample

    def nvmlGpmMigSampleGet(self, h: SimGpu, gi_id: int, sample: SimGpmSample) -> SimGpmSample:
        _, t = self._check(h)
        mig = next((m for m in h.migs if m.gi_id == gi_id), None)
        if mig is None:
            raise pynvml.NVMLError_NotFound()
        sample.handle, sample.t = mig, t
        return sample

    def nvmlGpmMetricsGet(self, mg: SimGpmMetricsGet) -> SimGpmMetricsGet:
        s1, s2 = mg.sample1, mg.sample2
        if s1 is None or s2 is None or s1.handle is None or s2.handle is not s1.handle:
            raise pynvml.NVMLError_InvalidArgument()
        handle = s2.handle
        gpu, t = self._check(handle)
        prof = self.profile(handle, t)
        per_metric = {
            pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL: 100.0 * prof[1001],
            pynvml.NVML_GPM_METRIC_SM_UTIL: 100.0 * prof[1002],
            pynvml.NVML_GPM_METRIC_SM_OCCUPANCY: 100.0 * prof[1003],
            pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL: 100.0 * prof[1004],
            pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL: 100.0 * prof[1005],
            pynvml.NVML_GPM_METRIC_FP64_UTIL: 100.0 * prof[1006],
            pynvml.NVML_GPM_METRIC_FP32_UTIL: 100.0 * prof[1007],
            pynvml.NVML_GPM_METRIC_FP16_UTIL: 100.0 * prof[1008],
            pynvml.NVML_GPM_METRIC_PCIE_TX_PER_SEC: self._pcie_bps(gpu, t, True) / 2**20,
            pynvml.NVML_GPM_METRIC_PCIE_RX_PER_SEC: self._pcie_bps(gpu, t, False) / 2**20,
        }
        for i in range(mg.numMetrics):
            m = mg.metrics[i]
            if m.metricId in per_metric:
                m.value, m.nvmlReturn = per_metric[m.metricId], pynvml.NVML_SUCCESS
            else:
                m.value, m.nvmlReturn = 0.0, pynvml.NVML_ERROR_NOT_SUPPORTED
        return mg

    # ---- wiring

    def functions(self) -> dict[str, object]:
        """Every pynvml attribute this host stands in for (for monkeypatching pynvml itself)."""
        names = [n for n in dir(type(self)) if n.startswith("nvml")]
        out: dict[str, object] = {n: getattr(self, n) for n in names}
        out["c_nvmlGpmMetricsGet_t"] = SimGpmMetricsGet
        return out

    def patch(self, monkeypatch) -> None:
        """Point pynvml's functions at this host for the duration of a test (pytest monkeypatch)."""
        for name, fn in self.functions().items():
            monkeypatch.setattr(pynvml, name, fn, raising=False)


def fleet_from_spec(text: str, clock: Callable[[], float] | None = None) -> Fleet:
    """Parse a --simulate spec and build its fleet (raises one-sentence AiinfraErrors)."""
    return Fleet(parse_spec(text), clock=clock)

"""The only module that calls NVML (nvidia-ml-py, `import pynvml`). It returns plain samples.

`Collector(lib=pynvml)` reads every GPU, and every MIG instance when MIG is on, into a `Snapshot`:
values keyed by the DCGM field keys of catalog/data/dcgm_fields.yaml, in SI units (bytes, Hz, J,
W, B/s, ratio 0–1). Rules it keeps:

- a field NVML does not support is absent, never a made-up 0;
- one failing GPU never stops the others: its errors are counted and collection goes on;
- a GPU that raises NVMLError_GpuIsLost is marked lost and its series disappear;
- memory uses the v2 struct (`used` excludes `reserved`, as DCGM reads it on R510+);
- XIDs arrive through an NVML event set; NVLink bandwidth is a rate computed from the KiB
  counters between two collections, as DCGM does; profiling (PROF) fields come from GPM, which
  NVML offers on Hopper and newer only: on Ampere and older DCGM's own profiling module is the
  source, so through NVML those fields are absent (and PCIe rates come from nvmlDeviceGetPcieThroughput).

`lib` is pynvml itself or anything with the same functions (telemetry.simulate.SimHost), so the
same code runs on a GPU node and on the simulated fleet.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pynvml

from aiinfra.errors import AiinfraError
from aiinfra.telemetry.fields import CLOCK_EVENTS

# Errors that mean "this field does not exist here" → the field is absent, not an error.
_ABSENT = (
    pynvml.NVMLError_NotSupported,
    pynvml.NVMLError_NotFound,
    pynvml.NVMLError_NoPermission,
    pynvml.NVMLError_FunctionNotFound,
)
_MIG_PROFILE_RE = re.compile(r"(\d+g\.\d+gb(?:\+me)?)\s*$")
_NO_INSTANCE = 0xFFFFFFFF

# GPM metric → (field key, scale to SI). GPM reports percentages and MiB/s.
_GPM_FIELDS = {
    pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL: ("prof-gr-engine-active", 0.01),
    pynvml.NVML_GPM_METRIC_SM_UTIL: ("prof-sm-active", 0.01),
    pynvml.NVML_GPM_METRIC_SM_OCCUPANCY: ("prof-sm-occupancy", 0.01),
    pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL: ("prof-pipe-tensor-active", 0.01),
    pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL: ("prof-dram-active", 0.01),
    pynvml.NVML_GPM_METRIC_PCIE_TX_PER_SEC: ("prof-pcie-tx-bytes", float(2**20)),
    pynvml.NVML_GPM_METRIC_PCIE_RX_PER_SEC: ("prof-pcie-rx-bytes", float(2**20)),
    pynvml.NVML_GPM_METRIC_FP64_UTIL: ("prof-pipe-fp64-active", 0.01),
    pynvml.NVML_GPM_METRIC_FP32_UTIL: ("prof-pipe-fp32-active", 0.01),
    pynvml.NVML_GPM_METRIC_FP16_UTIL: ("prof-pipe-fp16-active", 0.01),
}
# Device field values read in one nvmlDeviceGetFieldValues call: HBM temperature (as DCGM reads it),
# the NVLink error totals over all links (DCGM fields 409/419/429/439 map to these) and the PCIe
# correctable-error count (DCGM 1501). A GPU without NVLink answers NOT_SUPPORTED: no series.
_FV_FIELDS = {
    pynvml.NVML_FI_DEV_MEMORY_TEMP: "memory-temp",
    pynvml.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL: "nvlink-crc-flit-error-total",
    pynvml.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL: "nvlink-crc-data-error-total",
    pynvml.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL: "nvlink-replay-error-total",
    pynvml.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL: "nvlink-recovery-error-total",
    pynvml.NVML_FI_DEV_PCIE_COUNT_CORRECTABLE_ERRORS: "pcie-correctable-errors",
}
_VIOLATIONS = (
    ("power-violation", pynvml.NVML_PERF_POLICY_POWER),
    ("thermal-violation", pynvml.NVML_PERF_POLICY_THERMAL),
    ("sync-boost-violation", pynvml.NVML_PERF_POLICY_SYNC_BOOST),
    ("board-limit-violation", pynvml.NVML_PERF_POLICY_BOARD_LIMIT),
    ("low-util-violation", pynvml.NVML_PERF_POLICY_LOW_UTILIZATION),
    ("reliability-violation", pynvml.NVML_PERF_POLICY_RELIABILITY),
)
# Every field key this collector can fill (where the GPU supports it); the rest of a counters file
# is reported as skipped at start-up.
NVML_FIELDS = frozenset(
    {
        "driver-version", "nvml-version", "brand", "serial", "oem-inforom-ver", "ecc-inforom-ver", "power-inforom-ver",
        "inforom-image-ver", "vbios-version", "sm-clock", "mem-clock", "clocks-event-reasons", "gpu-temp", "power-usage",
        "enforced-power-limit", "total-energy-consumption", "pcie-replay-counter", "pcie-link-gen", "pcie-link-width",
        "pcie-max-link-gen", "pcie-max-link-width", "ecc-sbe-vol-total", "ecc-dbe-vol-total", "ecc-sbe-agg-total",
        "ecc-dbe-agg-total", "correctable-remapped-rows", "uncorrectable-remapped-rows", "row-remap-pending",
        "row-remap-failure", "retired-sbe", "retired-dbe", "retired-pending", "nvlink-bandwidth-total", "nvlink-bandwidth-l0",
        "xid-errors", "exp-xid-errors-count", "vgpu-license-status", "exp-clock-events-count", "gpu-util", "mem-copy-util", "enc-util", "dec-util",
        "fb-total", "fb-free", "fb-used", "fb-reserved", "prof-pcie-tx-bytes", "prof-pcie-rx-bytes",
        *_FV_FIELDS.values(), *(k for k, _ in _VIOLATIONS), *(k for k, _ in _GPM_FIELDS.values()),
    }
)
_PROF_GPM = frozenset(k for k, _ in _GPM_FIELDS.values()) - {"prof-pcie-tx-bytes", "prof-pcie-rx-bytes"}
# Fields read from the device and repeated on each of its MIG instances (dcgm-exporter does so).
_INSTANCE_FIELDS = {"fb-total", "fb-free", "fb-used", "fb-reserved", *(k for k, _ in _GPM_FIELDS.values())}
_GPU_ONLY_FIELDS = {"gpu-util", "mem-copy-util", "enc-util", "dec-util"}


@dataclass(frozen=True)
class Identity:
    """Who a sample is about: the labels dcgm-exporter puts on every series."""

    gpu: int
    uuid: str
    pci_bus_id: str
    model: str
    gi_id: int | None = None
    gi_profile: str | None = None
    mig_uuid: str | None = None

    @property
    def device(self) -> str:
        return f"nvidia{self.gpu}"


@dataclass
class Process:
    pid: int
    used_bytes: int | None  # None where NVML reports N/A (MIG, WDDM)
    gi_id: int | None = None


@dataclass
class EntitySample:
    """One GPU, or one MIG instance, at one collection: SI values by field key."""

    identity: Identity
    values: dict[str, float]
    xid_counts: dict[int, int] = field(default_factory=dict)
    clock_event_counts: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # label-type fields (serial, VBIOS, …) by field key
    health: list[tuple[str, str, int]] = field(default_factory=list)  # DCGM health: (watch, DCGM_FR_ code name, 0/10/20)


@dataclass
class GpuStatus:
    """The state of one physical GPU that a node check needs (doctor), beyond the metric values."""

    index: int
    uuid: str = ""
    pci_bus_id: str = ""
    model: str = ""
    serial: str | None = None
    lost: bool = False
    persistence_mode: int | None = None
    ecc_mode: tuple[int, int] | None = None  # (current, pending)
    mig_mode: tuple[int, int] | None = None  # (current, pending)
    pcie_gen: tuple[int, int] | None = None  # (current, max)
    pcie_width: tuple[int, int] | None = None  # (current, max)
    nvlink_states: list[int] = field(default_factory=list)  # 1 = up, per link
    fabric: tuple[int, int] | None = None  # NVLink fabric registration (state, status): nvmlDeviceGetGpuFabricInfo
    clock_event_reasons: int | None = None
    remapped_rows: tuple[int, int, int, int] | None = None  # (correctable, uncorrectable, pending, failure)
    retired_pages_pending: int | None = None
    recent_xids: list[tuple[float, int]] = field(default_factory=list)  # (unix time, code) in the window
    processes: list[Process] = field(default_factory=list)
    last_seen: float | None = None  # unix time of the last collection that read this GPU


@dataclass
class Snapshot:
    host: str
    time: float  # unix seconds at the end of collection
    driver_version: str
    cuda_version: int | None
    entities: list[EntitySample]
    gpus: list[GpuStatus]
    errors: dict[int, int]  # cumulative failed NVML calls per GPU index
    lost: set[int]
    duration_s: float
    collections: int


# nvmlBrandType_t → the brand word DCGM prints for DCGM_FI_DEV_BRAND.
_BRANDS = {getattr(pynvml, n): n[len("NVML_BRAND_"):].replace("_", " ").title().replace("Nvidia", "NVIDIA") for n in dir(pynvml) if n.startswith("NVML_BRAND_") and n != "NVML_BRAND_COUNT"}


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _returns_true(fn: Callable[..., Any]) -> Callable[..., bool]:
    """`fn` that answers True once it returned, so `_q` tells a call that worked (None) from one that failed."""

    def call(*args: Any, **kw: Any) -> bool:
        fn(*args, **kw)
        return True

    return call


def _handle_key(h: Any) -> int:
    """A stable key for a device handle: the pointer value for real handles, id() for Python ones."""
    try:
        return ctypes.cast(h, ctypes.c_void_p).value or 0
    except (TypeError, ctypes.ArgumentError):
        return id(h)


def _field_value(fv: Any) -> float:
    t = fv.valueType
    v = fv.value
    if t == pynvml.NVML_VALUE_TYPE_DOUBLE:
        return float(v.dVal)
    if t == pynvml.NVML_VALUE_TYPE_UNSIGNED_INT:
        return float(v.uiVal)
    if t == pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG:
        return float(v.ulVal)
    if t == pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG:
        return float(v.sllVal)
    if t == pynvml.NVML_VALUE_TYPE_SIGNED_INT:
        return float(v.siVal)
    return float(v.ullVal)


class _GpuLost(Exception):
    pass


class Collector:
    """Reads all GPUs of one host through `lib` (pynvml or a stand-in with the same functions)."""

    def __init__(
        self,
        lib: Any = None,
        host: str = "",
        xid_window_s: float = 300.0,
        clock_events_window_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        reprobe_s: float = 30.0,
    ):
        self.nv = lib if lib is not None else pynvml
        self.host = host
        self.clock = clock
        self.xid_window_s = xid_window_s
        self.clock_events_window_s = clock_events_window_s
        self.errors: dict[int, int] = {}
        self.lost: set[int] = set()
        self.collections = 0
        try:
            self.nv.nvmlInit()
            self.driver_version = _text(self.nv.nvmlSystemGetDriverVersion())
            count = self.nv.nvmlDeviceGetCount()
        except pynvml.NVMLError as e:
            raise AiinfraError(f"NVML is not available ({e}); run on a node with the NVIDIA driver or use --simulate") from None
        self.cuda_version = self._q(-1, self.nv.nvmlSystemGetCudaDriverVersion)
        self.handles: list[Any] = []
        self.identity: dict[int, Identity] = {}
        self.serial: dict[int, str | None] = {}
        self.static: dict[int, dict[str, str]] = {}
        nvml_version = self._q(-1, self.nv.nvmlSystemGetNVMLVersion)
        self.nvml_version = _text(nvml_version) if nvml_version is not None else None
        self._by_handle: dict[int, int] = {}
        self._xids: dict[int, deque[tuple[float, int]]] = {}
        self._last_xid: dict[int, int] = {}
        self._events: dict[int, deque[tuple[float, int]]] = {}
        self._nvlink_prev: dict[int, tuple[float, float, float]] = {}
        self._gpm_prev: dict[tuple[int, int], Any] = {}
        self._gpm_ok: dict[int, bool] = {}
        self._event_set = None
        self._xid_watched: set[int] = set()  # GPUs whose XID events this collector receives
        self.last_seen: dict[int, float] = {}
        self.driver_error: str | None = None
        self.reprobe_s = reprobe_s
        self.enumerations = 0
        self._last_probe = self.clock()
        self._enumerate(count)

    # ---- (re)enumeration: after a GPU is lost, a driver reload, or a GPU added

    def _enumerate(self, count: int) -> None:
        """Handles for GPUs 0..count-1. State of an index whose UUID changed (a different board) is reset."""
        self.enumerations += 1
        try:
            self._event_set = self.nv.nvmlEventSetCreate()
        except pynvml.NVMLError:
            self._event_set = None
        self.handles = []
        self._by_handle = {}
        for i in range(count):
            self.errors.setdefault(i, 0)
            self._xids.setdefault(i, deque())
            self._events.setdefault(i, deque())
            try:
                h = self.nv.nvmlDeviceGetHandleByIndex(i)
                uuid = _text(self.nv.nvmlDeviceGetUUID(h))
                old = self.identity.get(i)
                if old is not None and old.uuid != uuid:
                    self._forget(i)
                self.handles.append(h)
                self._by_handle[_handle_key(h)] = i
                self.identity[i] = Identity(gpu=i, uuid=uuid, pci_bus_id=_text(self.nv.nvmlDeviceGetPciInfo(h).busId), model=_text(self.nv.nvmlDeviceGetName(h)))
                self.serial[i] = self._q(i, self.nv.nvmlDeviceGetSerial, h)
                self.static[i] = self._static_labels(i, h)
                if self._event_set is not None:
                    registered = self._q(i, _returns_true(self.nv.nvmlDeviceRegisterEvents), h, pynvml.nvmlEventTypeXidCriticalError, self._event_set)
                    if registered:
                        self._xid_watched.add(i)
                    else:
                        self._xid_watched.discard(i)
                self._prime(i, h)
                self.lost.discard(i)
            except pynvml.NVMLError_GpuIsLost:
                self._mark_lost(i)
                if len(self.handles) <= i:
                    self.handles.append(None)
            except pynvml.NVMLError:
                self.errors[i] += 1
                if len(self.handles) <= i:
                    self.handles.append(None)
        for i in [k for k in self.identity if k >= count]:  # a GPU that no longer enumerates
            self._mark_lost(i)

    def _forget(self, i: int) -> None:
        for d in (self._nvlink_prev, self._last_xid, self.last_seen):
            d.pop(i, None)
        self._xids[i] = deque()
        self._events[i] = deque()
        self.lost.discard(i)
        for key in [k for k in self._gpm_prev if k[0] == i]:
            del self._gpm_prev[key]

    def _reinit(self) -> None:
        """nvmlShutdown + nvmlInit + enumerate: what a driver reload needs (old handles are stale)."""
        with contextlib.suppress(pynvml.NVMLError):
            self.nv.nvmlShutdown()
        self._gpm_prev.clear()
        try:
            self.nv.nvmlInit()
            self.driver_version = _text(self.nv.nvmlSystemGetDriverVersion())
            count = self.nv.nvmlDeviceGetCount()
        except pynvml.NVMLError as e:
            self.driver_error = str(e)
            self.handles = []
            for i in self.identity:
                self._mark_lost(i)
            return
        self.driver_error = None
        self._enumerate(count)

    def _probe(self, now: float) -> None:
        """Each collection: has the GPU count changed, is NVML still usable, may a lost GPU be back?"""
        try:
            count = self.nv.nvmlDeviceGetCount()
        except pynvml.NVMLError:
            count = None
        if count is None or count != len(self.handles) or self.driver_error is not None:
            self._last_probe = now
            self._reinit()
        elif self.lost and now - self._last_probe >= self.reprobe_s:
            self._last_probe = now
            self._reinit()

    # ---- helpers

    def _static_labels(self, i: int, h: Any) -> dict[str, str]:
        """Label-type fields that do not change while the driver is loaded, read once per GPU."""
        q, nv = self._q, self.nv
        out = {"driver-version": self.driver_version}
        if self.nvml_version:
            out["nvml-version"] = self.nvml_version
        brand = q(i, nv.nvmlDeviceGetBrand, h)
        if brand is not None:
            out["brand"] = _BRANDS.get(int(brand), "Unknown")
        for key, value in (
            ("serial", self.serial.get(i)),
            ("oem-inforom-ver", q(i, nv.nvmlDeviceGetInforomVersion, h, pynvml.NVML_INFOROM_OEM)),
            ("ecc-inforom-ver", q(i, nv.nvmlDeviceGetInforomVersion, h, pynvml.NVML_INFOROM_ECC)),
            ("power-inforom-ver", q(i, nv.nvmlDeviceGetInforomVersion, h, pynvml.NVML_INFOROM_POWER)),
            ("inforom-image-ver", q(i, nv.nvmlDeviceGetInforomImageVersion, h)),
            ("vbios-version", q(i, nv.nvmlDeviceGetVbiosVersion, h)),
        ):
            if value is not None:
                out[key] = _text(value)
        return out

    def unreadable(self, key: str) -> str | None:
        """Why this collector cannot serve a field on this host, or None when it can."""
        if key in _PROF_GPM and self.handles and not any(self._gpm_ok.values()):
            return "profiling (DCP) fields come from NVML's GPM API on Hopper and newer only; use --backend dcgm on this GPU generation"
        if key == "exp-gpu-health-status":
            return "needs DCGM's health watches (--backend dcgm)"
        if key == "exp-p2p-status":
            return "this dcgm-exporter field is not collected by aiinfra"
        if key not in NVML_FIELDS:
            return "not available through NVML; needs DCGM (--backend dcgm)"
        return None

    def _q(self, gpu: int, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Call NVML; None when the field is unsupported; count other errors; raise when the GPU is lost."""
        try:
            return fn(*args, **kw)
        except pynvml.NVMLError_GpuIsLost:
            raise _GpuLost() from None
        except _ABSENT:
            return None
        except pynvml.NVMLError:
            if gpu >= 0:
                self.errors[gpu] = self.errors.get(gpu, 0) + 1
            return None

    def _mark_lost(self, i: int) -> None:
        if i not in self.lost:
            self.lost.add(i)
            self.errors[i] = self.errors.get(i, 0) + 1

    def _prime(self, i: int, h: Any) -> None:
        """First readings of the delta-based fields, so the first collection already has rates."""
        kib = self._nvlink_kib(i, h)
        if kib is not None:
            self._nvlink_prev[i] = (self.clock(), *kib)
        support = self._q(i, self.nv.nvmlGpmQueryDeviceSupport, h)
        self._gpm_ok[i] = bool(support is not None and support.isSupportedDevice)
        if self._gpm_ok[i]:
            for gi in self._mig_gi_ids(i, h) or [None]:
                self._gpm_metrics(i, h, gi)

    def _mig_handles(self, i: int, h: Any) -> list[Any]:
        mode = self._q(i, self.nv.nvmlDeviceGetMigMode, h)
        if not mode or not mode[0]:
            return []
        out = []
        for j in range(self._q(i, self.nv.nvmlDeviceGetMaxMigDeviceCount, h) or 0):
            try:
                out.append(self.nv.nvmlDeviceGetMigDeviceHandleByIndex(h, j))
            except pynvml.NVMLError_GpuIsLost:
                raise _GpuLost() from None
            except pynvml.NVMLError:
                break  # past the last instance (nvitop stops here too)
        return out

    def _mig_gi_ids(self, i: int, h: Any) -> list[int]:
        return [gi for m in self._mig_handles(i, h) if (gi := self._q(i, self.nv.nvmlDeviceGetGpuInstanceId, m)) is not None]

    def _nvlink_kib(self, i: int, h: Any) -> tuple[float, float] | None:
        """Cumulative NVLink data KiB (TX+RX): over all links, and on link 0."""
        count_fv = self._q(i, self.nv.nvmlDeviceGetFieldValues, h, [pynvml.NVML_FI_DEV_NVLINK_LINK_COUNT])
        if not count_fv or count_fv[0].nvmlReturn != pynvml.NVML_SUCCESS:
            return None
        links = int(_field_value(count_fv[0]))
        if links <= 0:
            return None
        ids = [(fid, link) for link in range(links) for fid in (pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX)]
        fvs = self._q(i, self.nv.nvmlDeviceGetFieldValues, h, ids)
        if not fvs:
            return None
        ok = [(fv.scopeId, _field_value(fv)) for fv in fvs if fv.nvmlReturn == pynvml.NVML_SUCCESS]
        if not ok:
            return None
        return float(sum(x for _, x in ok)), float(sum(x for link, x in ok if link == 0))

    def _gpm_metrics(self, i: int, h: Any, gi: int | None) -> dict[str, float]:
        """Profiling ratios between the previous GPM sample and a new one (empty on the first call)."""
        key = (i, -1 if gi is None else gi)
        sample = self._q(i, self.nv.nvmlGpmSampleAlloc)
        if sample is None:
            return {}
        if gi is None:
            got = self._q(i, self.nv.nvmlGpmSampleGet, h, sample)
        else:
            got = self._q(i, self.nv.nvmlGpmMigSampleGet, h, gi, sample)
        if got is None:
            self._q(i, self.nv.nvmlGpmSampleFree, sample)
            return {}
        prev = self._gpm_prev.get(key)
        self._gpm_prev[key] = sample
        if prev is None:
            return {}
        mg = self.nv.c_nvmlGpmMetricsGet_t()
        mg.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        mg.numMetrics = len(_GPM_FIELDS)
        mg.sample1, mg.sample2 = prev, sample
        for n, metric in enumerate(_GPM_FIELDS):
            mg.metrics[n].metricId = metric
        res = self._q(i, self.nv.nvmlGpmMetricsGet, mg)
        self._q(i, self.nv.nvmlGpmSampleFree, prev)
        out: dict[str, float] = {}
        if res is None:
            return out
        for n in range(len(_GPM_FIELDS)):
            m = res.metrics[n]
            if m.nvmlReturn == pynvml.NVML_SUCCESS and m.metricId in _GPM_FIELDS:
                key_name, scale = _GPM_FIELDS[m.metricId]
                out[key_name] = float(m.value) * scale
        return out

    def _drain_xids(self, now: float) -> None:
        """Read every pending XID event without blocking (timeout 0), bounded per collection."""
        if self._event_set is None:
            return
        for _ in range(10_000):
            try:
                data = self.nv.nvmlEventSetWait_v2(self._event_set, 0)
            except pynvml.NVMLError_Timeout:
                return
            except pynvml.NVMLError:
                return
            if not data.eventType & pynvml.nvmlEventTypeXidCriticalError:
                continue
            i = self._by_handle.get(_handle_key(data.device))
            if i is None:
                continue
            code = int(data.eventData)
            self._xids[i].append((now, code))
            self._last_xid[i] = code

    # ---- collection

    def collect(self) -> Snapshot:
        t0 = time.perf_counter()
        now = self.clock()
        self._probe(now)
        self._drain_xids(now)
        entities: list[EntitySample] = []
        statuses: list[GpuStatus] = []
        indices = sorted(set(range(len(self.handles))) | set(self.identity))
        for i in indices:
            h = self.handles[i] if i < len(self.handles) else None
            ident = self.identity.get(i)
            status = GpuStatus(index=i, uuid=ident.uuid if ident else "", pci_bus_id=ident.pci_bus_id if ident else "", model=ident.model if ident else "")
            if h is not None and ident is not None and i not in self.lost:
                try:
                    entities.extend(self._collect_gpu(i, h, ident, status, now))
                    self.last_seen[i] = now
                except _GpuLost:
                    self._mark_lost(i)
                except pynvml.NVMLError:
                    self.errors[i] = self.errors.get(i, 0) + 1
                except Exception:  # noqa: BLE001 - a driver/binding surprise on one GPU must not stop the rest
                    self.errors[i] = self.errors.get(i, 0) + 1
            status.lost = i in self.lost
            status.last_seen = self.last_seen.get(i)
            if status.lost and ident is not None and i in self._last_xid:
                # The XID that took the GPU away (79: fallen off the bus) stays visible while it is gone.
                entities.append(self._lost_sample(i, ident, status, now))
            statuses.append(status)
        self.collections += 1
        return Snapshot(
            host=self.host,
            time=now,
            driver_version=self.driver_version,
            cuda_version=self.cuda_version,
            entities=entities,
            gpus=statuses,
            errors=dict(self.errors),
            lost=set(self.lost),
            duration_s=time.perf_counter() - t0,
            collections=self.collections,
        )

    def _lost_sample(self, i: int, ident: Identity, st: GpuStatus, now: float) -> EntitySample:
        window = self._xids[i]
        while window and window[0][0] < now - self.xid_window_s:
            window.popleft()
        counts: dict[int, int] = {}
        for _, code in window:
            counts[code] = counts.get(code, 0) + 1
        st.recent_xids = list(window)
        return EntitySample(ident, {"xid-errors": float(self._last_xid[i])}, counts, {}, self.static.get(i, {}))

    def _collect_gpu(self, i: int, h: Any, ident: Identity, st: GpuStatus, now: float) -> list[EntitySample]:
        nv, q = self.nv, self._q
        v: dict[str, float] = {}

        def put(key: str, value: Any, scale: float = 1.0) -> None:
            if value is not None:
                v[key] = float(value) * scale

        st.serial = self.serial.get(i)
        put("sm-clock", q(i, nv.nvmlDeviceGetClockInfo, h, pynvml.NVML_CLOCK_SM), 1e6)
        put("mem-clock", q(i, nv.nvmlDeviceGetClockInfo, h, pynvml.NVML_CLOCK_MEM), 1e6)
        reasons = q(i, nv.nvmlDeviceGetCurrentClocksEventReasons, h)
        put("clocks-event-reasons", reasons)
        st.clock_event_reasons = reasons
        put("gpu-temp", q(i, nv.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU))
        for fv in q(i, nv.nvmlDeviceGetFieldValues, h, list(_FV_FIELDS)) or []:
            if fv.nvmlReturn == pynvml.NVML_SUCCESS and fv.fieldId in _FV_FIELDS:
                v[_FV_FIELDS[fv.fieldId]] = _field_value(fv)
        mw = q(i, nv.nvmlDeviceGetPowerUsage, h)
        put("power-usage", mw, 1e-3)  # mW → W
        put("enforced-power-limit", q(i, nv.nvmlDeviceGetEnforcedPowerLimit, h), 1e-3)
        put("total-energy-consumption", q(i, nv.nvmlDeviceGetTotalEnergyConsumption, h), 1e-3)  # mJ → J
        put("pcie-replay-counter", q(i, nv.nvmlDeviceGetPcieReplayCounter, h))
        for key, policy in _VIOLATIONS:
            viol = q(i, nv.nvmlDeviceGetViolationStatus, h, policy)
            if viol is not None:
                v[key] = float(viol.violationTime)  # ns
        for key, etype, ctype in (
            ("ecc-sbe-vol-total", pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_VOLATILE_ECC),
            ("ecc-dbe-vol-total", pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_VOLATILE_ECC),
            ("ecc-sbe-agg-total", pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, pynvml.NVML_AGGREGATE_ECC),
            ("ecc-dbe-agg-total", pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, pynvml.NVML_AGGREGATE_ECC),
        ):
            put(key, q(i, nv.nvmlDeviceGetTotalEccErrors, h, etype, ctype))
        rows = q(i, nv.nvmlDeviceGetRemappedRows, h)
        if rows is not None:
            corr, unc, pending, failure = (int(x) for x in rows)
            st.remapped_rows = (corr, unc, pending, failure)
            v.update({"correctable-remapped-rows": corr, "uncorrectable-remapped-rows": unc, "row-remap-pending": pending, "row-remap-failure": failure})
        sbe = q(i, nv.nvmlDeviceGetRetiredPages, h, pynvml.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS)
        dbe = q(i, nv.nvmlDeviceGetRetiredPages, h, pynvml.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)
        if sbe is not None:
            v["retired-sbe"] = len(sbe)
        if dbe is not None:
            v["retired-dbe"] = len(dbe)
        pending_pages = q(i, nv.nvmlDeviceGetRetiredPagesPendingStatus, h)
        put("retired-pending", pending_pages)
        st.retired_pages_pending = pending_pages

        kib = self._nvlink_kib(i, h)
        mono = now
        if kib is not None:
            prev = self._nvlink_prev.get(i)
            if prev is not None and mono > prev[0] and kib[0] >= prev[1] and kib[1] >= prev[2]:
                v["nvlink-bandwidth-total"] = (kib[0] - prev[1]) * 1024.0 / (mono - prev[0])
                v["nvlink-bandwidth-l0"] = (kib[1] - prev[2]) * 1024.0 / (mono - prev[0])
            self._nvlink_prev[i] = (mono, *kib)
            links = self._q(i, nv.nvmlDeviceGetFieldValues, h, [pynvml.NVML_FI_DEV_NVLINK_LINK_COUNT])
            n_links = int(_field_value(links[0])) if links and links[0].nvmlReturn == pynvml.NVML_SUCCESS else 0
            st.nvlink_states = [int(s) for link in range(n_links) if (s := q(i, nv.nvmlDeviceGetNvLinkState, h, link)) is not None]

        if self._last_xid.get(i) is not None:
            v["xid-errors"] = float(self._last_xid[i])
        elif i in self._xid_watched:
            # No XID since start: DCGM's field reads 0 and dcgm-exporter prints it (err_code "0", "No Error").
            v["xid-errors"] = 0.0
        window = self._xids[i]
        while window and window[0][0] < now - self.xid_window_s:
            window.popleft()
        xid_counts: dict[int, int] = {}
        for _, code in window:
            xid_counts[code] = xid_counts.get(code, 0) + 1
        st.recent_xids = list(window)
        events = self._events[i]
        if reasons is not None:
            events.append((now, int(reasons)))
        while events and events[0][0] < now - self.clock_events_window_s:
            events.popleft()
        clock_counts = {name: sum(1 for _, bits in events if bits & bit) for bit, name in CLOCK_EVENTS.items()}

        st.persistence_mode = q(i, nv.nvmlDeviceGetPersistenceMode, h)
        fabric = pynvml.c_nvmlGpuFabricInfo_t()
        if q(i, nv.nvmlDeviceGetGpuFabricInfo, h, ctypes.byref(fabric)) is not None:
            st.fabric = (int(fabric.state), int(fabric.status))
        ecc = q(i, nv.nvmlDeviceGetEccMode, h)
        st.ecc_mode = (int(ecc[0]), int(ecc[1])) if ecc is not None else None
        mig = q(i, nv.nvmlDeviceGetMigMode, h)
        st.mig_mode = (int(mig[0]), int(mig[1])) if mig is not None else None
        gen = (q(i, nv.nvmlDeviceGetCurrPcieLinkGeneration, h), q(i, nv.nvmlDeviceGetMaxPcieLinkGeneration, h))
        width = (q(i, nv.nvmlDeviceGetCurrPcieLinkWidth, h), q(i, nv.nvmlDeviceGetMaxPcieLinkWidth, h))
        st.pcie_gen = (int(gen[0]), int(gen[1])) if None not in gen else None
        st.pcie_width = (int(width[0]), int(width[1])) if None not in width else None
        for key, value in (("pcie-link-gen", gen[0]), ("pcie-max-link-gen", gen[1]), ("pcie-link-width", width[0]), ("pcie-max-link-width", width[1])):
            put(key, value)
        tx = q(i, nv.nvmlDeviceGetPcieThroughput, h, pynvml.NVML_PCIE_UTIL_TX_BYTES) if not self._gpm_ok.get(i) else None
        rx = q(i, nv.nvmlDeviceGetPcieThroughput, h, pynvml.NVML_PCIE_UTIL_RX_BYTES) if not self._gpm_ok.get(i) else None
        put("prof-pcie-tx-bytes", tx, 1024.0)  # NVML KB/s → B/s
        put("prof-pcie-rx-bytes", rx, 1024.0)
        st.processes = self._processes(i, h)

        migs = self._mig_handles(i, h) if st.mig_mode and st.mig_mode[0] else []
        if not migs:
            util = q(i, nv.nvmlDeviceGetUtilizationRates, h)
            if util is not None:
                v["gpu-util"] = util.gpu / 100.0
                v["mem-copy-util"] = util.memory / 100.0
            enc = q(i, nv.nvmlDeviceGetEncoderUtilization, h)
            dec = q(i, nv.nvmlDeviceGetDecoderUtilization, h)
            if enc is not None:
                v["enc-util"] = enc[0] / 100.0
            if dec is not None:
                v["dec-util"] = dec[0] / 100.0
            v.update(self._memory(i, h))
            if self._gpm_ok.get(i):
                v.update(self._gpm_metrics(i, h, None))
            return [EntitySample(ident, v, xid_counts, clock_counts, self.static.get(i, {}))]

        # MIG on: like dcgm-exporter's default selector, report GPU instances only; each carries the
        # parent's device-wide values plus its own memory and profiling values.
        device_wide = {k: x for k, x in v.items() if k not in _INSTANCE_FIELDS and k not in _GPU_ONLY_FIELDS}
        out = []
        for m in migs:
            gi = q(i, nv.nvmlDeviceGetGpuInstanceId, m)
            if gi is None:
                continue
            mv = dict(device_wide)
            mv.update(self._memory(i, m))
            if self._gpm_ok.get(i):
                mv.update(self._gpm_metrics(i, h, gi))
            mig_ident = Identity(
                gpu=i,
                uuid=ident.uuid,
                pci_bus_id=ident.pci_bus_id,
                model=ident.model,
                gi_id=int(gi),
                gi_profile=self._mig_profile(i, m),
                mig_uuid=q(i, nv.nvmlDeviceGetUUID, m),
            )
            out.append(EntitySample(mig_ident, mv, xid_counts, clock_counts, self.static.get(i, {})))
        return out

    def _memory(self, i: int, h: Any) -> dict[str, float]:
        mem = self._q(i, self.nv.nvmlDeviceGetMemoryInfo, h, version=pynvml.nvmlMemory_v2)
        if mem is not None:
            return {"fb-total": mem.total, "fb-free": mem.free, "fb-used": mem.used, "fb-reserved": mem.reserved}
        mem = self._q(i, self.nv.nvmlDeviceGetMemoryInfo, h)  # pre-R510: v1, `used` includes reserved
        if mem is None:
            return {}
        return {"fb-total": mem.total, "fb-free": mem.free, "fb-used": mem.used}

    def _mig_profile(self, i: int, m: Any) -> str | None:
        """The GPU-instance profile: from the MIG device name, else slices and memory (as DCGM builds it)."""
        name = self._q(i, self.nv.nvmlDeviceGetName, m)
        if name and (hit := _MIG_PROFILE_RE.search(_text(name))):
            return hit.group(1)
        attrs = self._q(i, self.nv.nvmlDeviceGetAttributes, m)
        if attrs is None:
            return None
        return f"{attrs.gpuInstanceSliceCount}g.{-(-int(attrs.memorySizeMB) // 1024)}gb"

    def _processes(self, i: int, h: Any) -> list[Process]:
        seen: dict[int, Process] = {}
        for fn in (self.nv.nvmlDeviceGetComputeRunningProcesses, self.nv.nvmlDeviceGetGraphicsRunningProcesses):
            for p in self._q(i, fn, h) or []:
                used = p.usedGpuMemory if isinstance(p.usedGpuMemory, int) else None
                gi = getattr(p, "gpuInstanceId", _NO_INSTANCE)
                seen.setdefault(int(p.pid), Process(int(p.pid), used, None if gi in (None, _NO_INSTANCE) else int(gi)))
        return list(seen.values())

    def close(self) -> None:
        try:
            if self._event_set is not None:
                self.nv.nvmlEventSetFree(self._event_set)
            self.nv.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def process_samples(c: Collector, since_us: int) -> dict[int, list[tuple[Process, float | None, float | None]]]:
    """GPU index → [(process, SM busy ratio, memory busy ratio)] for attribution's per-process families.

    Utilization comes from nvmlDeviceGetProcessUtilization samples newer than `since_us` (the newest
    sample per PID wins); a process with no sample in that window gets None, not 0. Lost GPUs are skipped.
    """
    out: dict[int, list[tuple[Process, float | None, float | None]]] = {}
    for i, h in enumerate(c.handles):
        if h is None or i in c.lost:
            continue
        try:
            procs = c._processes(i, h)
            samples = c._q(i, c.nv.nvmlDeviceGetProcessUtilization, h, since_us) if procs else None
        except _GpuLost:
            continue
        util: dict[int, tuple[int, float, float]] = {}
        for s in samples or []:
            prev = util.get(int(s.pid))
            if prev is None or int(s.timeStamp) >= prev[0]:
                util[int(s.pid)] = (int(s.timeStamp), s.smUtil / 100.0, s.memUtil / 100.0)
        out[i] = [(p, *(util[p.pid][1:] if p.pid in util else (None, None))) for p in procs]
    return out

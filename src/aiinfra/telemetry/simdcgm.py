"""DCGM's Python binding calls, answered by a simulated host (telemetry.simulate.SimHost).

`sim_bindings(host)` returns a `telemetry.dcgm.Bindings` whose `agent` has the dcgm_agent functions
DcgmCollector calls, with the same arguments and result shapes (attribute names of the ctypes
structs in dcgm_structs.py of NVIDIA/DCGM @ 72fa3fe), `structs` the constants, error class and
entity-pair struct, and `fields` the entity-group and field-type constants. Values come from the
simulated host's own NVML answers, so both backends describe the same GPUs; what DCGM adds is the
profiling (DCP) fields on every datacenter generation and per MIG instance.

As in DCGM: GPU-level fields asked of a GPU instance answer with the parent GPU's value
(DcgmCacheManager remaps them), GPU-only fields (GPU_UTIL and friends) are blank on an instance,
unsupported values come back as the blank sentinels, and a lost GPU answers DCGM_ST_GPU_IS_LOST.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pynvml

from aiinfra.telemetry.dcgm import Bindings
from aiinfra.telemetry.simulate import SimGpu, SimHost, SimMig, product_name

# dcgm_structs / dcgm_fields constants (values as in NVIDIA/DCGM testing/python3 @ 72fa3fe).
_ST = {"DCGM_ST_OK": 0, "DCGM_ST_BADPARAM": -1, "DCGM_ST_NOT_SUPPORTED": -6, "DCGM_ST_UNINITIALIZED": -10,
       "DCGM_ST_NO_DATA": -14, "DCGM_ST_GPU_IS_LOST": -18, "DCGM_ST_PROFILING_NOT_SUPPORTED": -36}
INT64_BLANK = 0x7FFFFFFFFFFFFFF0
INT64_NOT_SUPPORTED = INT64_BLANK + 2
FP64_NOT_SUPPORTED = 140737488355328.0 + 2.0
STR_NOT_SUPPORTED = b"<<<NOT_SUPPORTED>>>"
FE_GPU, FE_GPU_I, FE_GPU_CI = 1, 4, 5


class SimDcgmError(Exception):
    """dcgm_structs.DCGMError: carries the DCGM_ST_* code in `.value`."""

    def __init__(self, value: int):
        super().__init__(f"DCGM error {value}")
        self.value = value


class _Pair:
    """dcgm_structs.c_dcgmGroupEntityPair_t."""

    def __init__(self, entityGroupId: int = 0, entityId: int = 0):
        self.entityGroupId = entityGroupId
        self.entityId = entityId


# dcgm_structs DCGM_HEALTH_WATCH_* bits and dcgm_errors DCGM_FR_* codes (NVIDIA/DCGM @ 72fa3fe).
_WATCH = {"PCIE": 0x1, "NVLINK": 0x2, "PMU": 0x4, "MCU": 0x8, "MEM": 0x10, "SM": 0x20, "INFOROM": 0x40, "THERMAL": 0x80,
          "POWER": 0x100, "DRIVER": 0x200, "ALL": 0xFFFFFFFF}
_FR = {"DCGM_FR_OK": 0, "DCGM_FR_PCI_REPLAY_RATE": 3, "DCGM_FR_VOLATILE_DBE_DETECTED": 4, "DCGM_FR_NVLINK_ERROR_THRESHOLD": 13,
       "DCGM_FR_NVLINK_DOWN": 14, "DCGM_FR_TEMP_VIOLATION": 42, "DCGM_FR_PCIE_WIDTH": 46, "DCGM_FR_PENDING_ROW_REMAP": 85,
       "DCGM_FR_XID_ERROR": 101, "DCGM_FR_FALLEN_OFF_BUS": 120}
# simulated fault → (health system, error code, result: 10 warn / 20 fail)
_FAULT_HEALTH = {"pcie": ("PCIE", "DCGM_FR_PCIE_WIDTH", 10), "nvlink": ("NVLINK", "DCGM_FR_NVLINK_DOWN", 20),
                 "thermal": ("THERMAL", "DCGM_FR_TEMP_VIOLATION", 10), "dbe": ("MEM", "DCGM_FR_VOLATILE_DBE_DETECTED", 20)}


def _structs() -> SimpleNamespace:
    watch = {f"DCGM_HEALTH_WATCH_{k}": v for k, v in _WATCH.items()}
    return SimpleNamespace(**_ST, **watch, DCGM_GROUP_EMPTY=1, DCGM_OPERATION_MODE_AUTO=1, DCGMError=SimDcgmError, c_dcgmGroupEntityPair_t=_Pair)


def _fields() -> SimpleNamespace:
    return SimpleNamespace(DCGM_FE_NONE=0, DCGM_FE_GPU=FE_GPU, DCGM_FE_GPU_I=FE_GPU_I, DCGM_FE_GPU_CI=FE_GPU_CI,
                           DCGM_FT_DOUBLE="d", DCGM_FT_INT64="i", DCGM_FT_STRING="s")


# Field IDs that are blank on a GPU instance (DCGM leaves GPU-only utilisation unset with MIG on).
_GPU_ONLY = {203, 204, 206, 207}
_DOUBLE = {155, 164} | set(range(1001, 1009))
_STRING = {1, 2, 51, 53, 56, 80, 81, 82, 85}


class SimDcgmAgent:
    """The dcgm_agent functions DcgmCollector uses, over one simulated host."""

    def __init__(self, host: SimHost):
        self.host = host
        self.groups: dict[int, list[tuple[int, int]]] = {}
        self.field_groups: dict[int, list[int]] = {}
        self.watched: set[tuple[int, int]] = set()
        self._next = 1
        self.started = False

    def _id(self) -> int:
        self._next += 1
        return self._next

    def _need(self, handle: Any) -> None:
        if not self.started or handle is not self:
            raise SimDcgmError(_ST["DCGM_ST_UNINITIALIZED"])

    # ---- lifecycle
    def dcgmInit(self) -> int:
        return 0

    def dcgmShutdown(self) -> int:
        return 0

    def dcgmStartEmbedded(self, op_mode: int) -> SimDcgmAgent:
        self.host.nvmlInit()
        self.started = True
        return self

    def dcgmConnect(self, address: str) -> SimDcgmAgent:
        return self.dcgmStartEmbedded(1)

    def dcgmStopEmbedded(self, handle: Any) -> int:
        self.started = False
        return 0

    dcgmDisconnect = dcgmStopEmbedded

    # ---- discovery
    def dcgmGetAllSupportedDevices(self, handle: Any) -> list[int]:
        self._need(handle)
        return [g.index for g in self.host.gpus]

    def dcgmGetDeviceAttributes(self, handle: Any, gpu_id: int) -> SimpleNamespace:
        self._need(handle)
        g = self.host.gpus[gpu_id]
        ids = SimpleNamespace(
            brandName=b"NVIDIA", deviceName=product_name(g.spec).encode(), pciBusId=g.bus_id.encode(), serial=g.serial.encode(), uuid=g.uuid.encode(),
            vbios=b"96.00.99.00.01", inforomImageVersion=b"G520.0200.00.05", pciDeviceId=0, pciSubSystemId=0,
            driverVersion=self.host.driver_version.encode(), virtualizationMode=0,
        )
        return SimpleNamespace(version=3, identifiers=ids)

    def _instances(self) -> list[tuple[int, SimMig]]:
        return [(g.index * 8 + n, m) for g in self.host.gpus for n, m in enumerate(g.migs)]

    def dcgmGetGpuInstanceHierarchy(self, handle: Any) -> SimpleNamespace:
        self._need(handle)
        entries = []
        for eid, m in self._instances():
            info = SimpleNamespace(gpuUuid=m.parent.uuid.encode(), nvmlGpuIndex=m.parent.index, nvmlInstanceId=m.gi_id, nvmlComputeInstanceId=0xFFFFFFFF,
                                   nvmlMigProfileId=m.slices, nvmlProfileSlices=m.slices)
            entries.append(SimpleNamespace(entity=_Pair(FE_GPU_I, eid), parent=_Pair(FE_GPU, m.parent.index), info=info))
            ci = SimpleNamespace(**{**vars(info), "nvmlComputeInstanceId": 0})
            entries.append(SimpleNamespace(entity=_Pair(FE_GPU_CI, eid), parent=_Pair(FE_GPU_I, eid), info=ci))
        return SimpleNamespace(version=2, count=len(entries), entityList=entries)

    def dcgmProfGetSupportedMetricGroups(self, handle: Any, gpu_id: int) -> SimpleNamespace:
        """Every catalog GPU is a datacenter part, Volta or newer: one group with all DCP activity fields."""
        self._need(handle)
        ids = list(range(1001, 1011))
        group = SimpleNamespace(majorId=1, minorId=0, numFieldIds=len(ids), fieldIds=ids)
        return SimpleNamespace(version=3, gpuId=gpu_id, numMetricGroups=1, metricGroups=[group])

    # ---- groups and watches
    def dcgmGroupCreate(self, handle: Any, group_type: int, name: bytes) -> int:
        self._need(handle)
        gid = self._id()
        self.groups[gid] = []
        return gid

    def dcgmGroupAddEntity(self, handle: Any, group: int, entity_group: int, entity_id: int) -> int:
        self._need(handle)
        self.groups[group].append((entity_group, entity_id))
        return 0

    def dcgmGroupDestroy(self, handle: Any, group: int) -> int:
        self.groups.pop(group, None)
        return 0

    def dcgmFieldGroupCreate(self, handle: Any, field_ids: list[int], name: bytes) -> int:
        self._need(handle)
        fg = self._id()
        self.field_groups[fg] = list(field_ids)
        return fg

    def dcgmFieldGroupDestroy(self, handle: Any, fg: int) -> int:
        self.field_groups.pop(fg, None)
        return 0

    def dcgmWatchFields(self, handle: Any, group: int, fg: int, update_us: int, max_age_s: float, max_samples: int) -> int:
        self._need(handle)
        for ent in self.groups[group]:
            for fid in self.field_groups[fg]:
                self.watched.add((ent[0] * 100000 + ent[1], fid))
        return 0

    def dcgmUpdateAllFields(self, handle: Any, wait: int) -> int:
        return 0

    # ---- health watches
    def dcgmHealthSet(self, handle: Any, group: int, systems: int) -> int:
        self._need(handle)
        self.health_groups = {**getattr(self, "health_groups", {}), group: systems}
        return 0

    def dcgmHealthCheck(self, handle: Any, group: int) -> SimpleNamespace:
        """Incidents for the GPUs of the group from the active faults (a GPU-entity incident, as DCGM reports)."""
        self._need(handle)
        t = self.host.now()
        gpus = sorted({e[1] if e[0] == FE_GPU else e[1] // 8 for e in self.groups.get(group, [])})
        incidents = []
        for g in gpus:
            found = []
            for f in self.host.faults:
                if f.gpu != g or not f.active(t) and f.kind != "dbe":
                    continue
                if f.kind in _FAULT_HEALTH and (f.kind != "dbe" or t >= f.start):
                    found.append(_FAULT_HEALTH[f.kind])
            if self.host.is_lost(g, t):
                found.append(("ALL", "DCGM_FR_FALLEN_OFF_BUS", 20))
            for system, code, result in found:
                err = SimpleNamespace(msg=b"", gpuId=g, code=_FR[code], category=0, severity=0)
                incidents.append(SimpleNamespace(system=_WATCH[system], health=result, error=err, entityInfo=_Pair(FE_GPU, g)))
        overall = max((i.health for i in incidents), default=0)
        return SimpleNamespace(version=5, overallHealth=overall, incidentCount=len(incidents), incidents=incidents)

    # ---- values
    def dcgmEntitiesGetLatestValues(self, handle: Any, entities: list[Any], field_ids: list[int], flags: int) -> list[SimpleNamespace]:
        self._need(handle)
        out = []
        t = self.host.now()
        for pair in entities:
            target = self._resolve(pair.entityGroupId, pair.entityId)
            gpu = target.parent if isinstance(target, SimMig) else target
            lost = self.host.is_lost(gpu.index, t)
            for fid in field_ids:
                status, kind, value = 0, "i", INT64_NOT_SUPPORTED
                if lost:
                    status = _ST["DCGM_ST_GPU_IS_LOST"]
                elif (pair.entityGroupId * 100000 + pair.entityId, fid) not in self.watched:
                    status = _ST["DCGM_ST_NO_DATA"]
                else:
                    kind, value = self._value(fid, target, gpu, t)
                v = SimpleNamespace(i64=value if kind == "i" else 0, dbl=value if kind == "d" else 0.0, str=value if kind == "s" else b"")
                out.append(SimpleNamespace(version=2, entityGroupId=pair.entityGroupId, entityId=pair.entityId, fieldId=fid, fieldType=ord(kind),
                                           status=status, ts=self._ts(fid, gpu, t), value=v))
        return out

    def _resolve(self, group: int, eid: int) -> SimGpu | SimMig:
        if group == FE_GPU and 0 <= eid < len(self.host.gpus):
            return self.host.gpus[eid]
        if group == FE_GPU_I:
            for e, m in self._instances():
                if e == eid:
                    return m
        raise SimDcgmError(_ST["DCGM_ST_BADPARAM"])

    def _ts(self, fid: int, gpu: SimGpu, t: float) -> int:
        if fid == 230:
            last = [w for w, g, _ in self.host.events if g == gpu.index and w <= t]
            return int(last[-1] * 1e6) if last else 0
        return int(t * 1e6)

    def _value(self, fid: int, target: SimGpu | SimMig, gpu: SimGpu, t: float) -> tuple[str, Any]:
        kind = "s" if fid in _STRING else "d" if fid in _DOUBLE else "i"
        blank = {"s": STR_NOT_SUPPORTED, "d": FP64_NOT_SUPPORTED, "i": INT64_NOT_SUPPORTED}[kind]
        if isinstance(target, SimMig) and fid in _GPU_ONLY:
            return kind, blank
        try:
            value = self._read(fid, target, gpu, t)
        except pynvml.NVMLError:
            return kind, blank
        if value is None:
            return kind, blank
        if kind == "s":
            return kind, str(value).encode()
        return kind, float(value) if kind == "d" else int(value)

    def _read(self, fid: int, target: SimGpu | SimMig, gpu: SimGpu, t: float) -> Any:
        """One DCGM field in DCGM's legacy units (MHz, W, mJ, %, MiB, MB/s, ratios), from the NVML simulation."""
        h = self.host
        if 1001 <= fid <= 1008:
            return h.profile(target, t).get(fid)
        if fid in (250, 251, 252, 253):
            mem = h.nvmlDeviceGetMemoryInfo(target, version=pynvml.nvmlMemory_v2)
            return {250: mem.total, 251: mem.free, 252: mem.used, 253: mem.reserved}[fid] // 2**20
        if fid in (409, 419, 429, 439, 1501, 140):
            nvml_id = {409: pynvml.NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, 419: pynvml.NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL,
                       429: pynvml.NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL, 439: pynvml.NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL,
                       1501: pynvml.NVML_FI_DEV_PCIE_COUNT_CORRECTABLE_ERRORS, 140: pynvml.NVML_FI_DEV_MEMORY_TEMP}[fid]
            fv = h.nvmlDeviceGetFieldValues(gpu, [nvml_id])[0]
            return fv.value.ullVal if fv.nvmlReturn == pynvml.NVML_SUCCESS else None
        if fid in (440, 449):  # DCGM's rate: KiB-counter delta / s / 1000 (MB/s)
            links = h._nvlink_links(gpu)
            if not links:
                return None
            rate = h._mean_activity(gpu if not gpu.migs else gpu.migs[0]) * gpu.spec.nvlink_gbps * 1e9 * 0.25
            return rate / 1024 / 1000 / (links if fid == 440 else 1)
        if fid in (1009, 1010):
            return h._pcie_bps(gpu, t, fid == 1009)
        if fid == 230:  # DCGM holds 0 until the first XID (dcgm-exporter prints err_code "0", "No Error")
            last = [x for w, g, x in h.events if g == gpu.index and w <= t]
            return last[-1] if last else 0
        if fid in range(240, 246):
            policy = {240: pynvml.NVML_PERF_POLICY_POWER, 241: pynvml.NVML_PERF_POLICY_THERMAL, 242: pynvml.NVML_PERF_POLICY_SYNC_BOOST,
                      243: pynvml.NVML_PERF_POLICY_BOARD_LIMIT, 244: pynvml.NVML_PERF_POLICY_LOW_UTILIZATION, 245: pynvml.NVML_PERF_POLICY_RELIABILITY}[fid]
            return h.nvmlDeviceGetViolationStatus(gpu, policy).violationTime
        if fid in (310, 311, 312, 313):
            etype = pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED if fid in (310, 312) else pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
            return h.nvmlDeviceGetTotalEccErrors(gpu, etype, pynvml.NVML_VOLATILE_ECC if fid < 312 else pynvml.NVML_AGGREGATE_ECC)
        if fid in (393, 394, 395, 396):
            corr, unc, pending, failure = h.nvmlDeviceGetRemappedRows(gpu)
            return {393: unc, 394: corr, 395: failure, 396: pending}[fid]
        simple = {
            1: lambda: h.driver_version,
            2: lambda: h.nvmlSystemGetNVMLVersion(),
            51: lambda: "NVIDIA",
            53: lambda: gpu.serial,
            56: lambda: h.nvmlDeviceGetInforomVersion(gpu, pynvml.NVML_INFOROM_OEM),
            80: lambda: h.nvmlDeviceGetInforomVersion(gpu, pynvml.NVML_INFOROM_ECC),
            81: lambda: h.nvmlDeviceGetInforomVersion(gpu, pynvml.NVML_INFOROM_POWER),
            82: lambda: h.nvmlDeviceGetInforomImageVersion(gpu),
            85: lambda: h.nvmlDeviceGetVbiosVersion(gpu),
            100: lambda: h.nvmlDeviceGetClockInfo(gpu, pynvml.NVML_CLOCK_SM),
            101: lambda: h.nvmlDeviceGetClockInfo(gpu, pynvml.NVML_CLOCK_MEM),
            112: lambda: h.nvmlDeviceGetCurrentClocksEventReasons(gpu),
            150: lambda: h.nvmlDeviceGetTemperature(gpu, pynvml.NVML_TEMPERATURE_GPU),
            155: lambda: h.nvmlDeviceGetPowerUsage(gpu) / 1000.0,
            156: lambda: h.nvmlDeviceGetTotalEnergyConsumption(gpu),
            164: lambda: h.nvmlDeviceGetEnforcedPowerLimit(gpu) / 1000.0,
            202: lambda: h.nvmlDeviceGetPcieReplayCounter(gpu),
            203: lambda: h.nvmlDeviceGetUtilizationRates(gpu).gpu,
            204: lambda: h.nvmlDeviceGetUtilizationRates(gpu).memory,
            206: lambda: h.nvmlDeviceGetEncoderUtilization(gpu)[0],
            207: lambda: h.nvmlDeviceGetDecoderUtilization(gpu)[0],
            235: lambda: h.nvmlDeviceGetMaxPcieLinkGeneration(gpu),
            236: lambda: h.nvmlDeviceGetMaxPcieLinkWidth(gpu),
            237: lambda: h.nvmlDeviceGetCurrPcieLinkGeneration(gpu),
            238: lambda: h.nvmlDeviceGetCurrPcieLinkWidth(gpu),
        }
        fn = simple.get(fid)
        return fn() if fn is not None else None


def sim_bindings(host: SimHost) -> Bindings:
    """DCGM bindings that answer from `host` (one simulated embedded host engine per host)."""
    return Bindings(agent=SimDcgmAgent(host), structs=_structs(), fields=_fields(), errors=SimpleNamespace(**_FR))

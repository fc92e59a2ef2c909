"""The only module that calls DCGM's Python bindings (dcgm_agent, dcgm_structs, dcgm_fields).

Why a DCGM backend beside NVML: NVML's GPM API (the source of DCGM_FI_PROF_* activity) exists on
Hopper and newer only. On Ampere and Ada (A100, A30, A10G, L4, L40S) and per MIG instance, the
activity fields come from DCGM's profiling module, so a node with DCGM installed serves them through
this backend (`aiinfra exporter --backend dcgm`, or `auto`).

The bindings ship with DCGM, not on PyPI (datacenter-gpu-manager puts them in
/usr/share/datacenter-gpu-manager-4/bindings/python3); `load_bindings()` finds them or raises one
sentence. `DcgmCollector(lib)` takes them as a `Bindings` (agent, structs, fields), so the simulated
fleet (telemetry.simdcgm) can hand in stand-ins with the same calls and the code below runs as is.

What it does, in DCGM's own terms: start an embedded host engine (or connect to nv-hostengine), list
the GPUs and the MIG hierarchy, put GPUs, or their GPU instances when MIG is on (dcgm-exporter's
default `f` selector), into one group, watch every field we know on it, and read the latest values
each collection (dcgmEntitiesGetLatestValues). Values are turned to SI through the catalog's legacy
unit scale. Device-wide fields asked of a GPU instance come back with the parent GPU's value: DCGM's
cache manager remaps GPU-level fields to the parent (dcgmlib/src/DcgmCacheManager.cpp @ 72fa3fe,
"GPU_I or GPU_CI - remap to parent GPU"), which is what dcgm-exporter then prints per instance.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiinfra.errors import AiinfraError
from aiinfra.telemetry.fields import CLOCK_EVENTS, DCGM_FP64_BLANK, DCGM_INT64_BLANK, Field, all_fields
from aiinfra.telemetry.nvml import EntitySample, GpuStatus, Identity, Snapshot

BINDING_DIRS = (
    "/usr/share/datacenter-gpu-manager-4/bindings/python3",
    "/usr/share/datacenter-gpu-manager/bindings/python3",
    "/usr/local/dcgm/bindings/python3",
)
_PROF_FIRST, _PROF_LAST = 1000, 1099  # DCP field IDs (counter_config.go's dcpFieldsStart..)
_STR_BLANKS = ("<<<NULL>>>", "<<<NOT_FOUND>>>", "<<<NOT_SUPPORTED>>>", "<<<NOT_PERM>>>")
_MAX_INSTANCES_PER_GPU = 8
# The health systems dcgm-exporter reports, in its order (gpu_health_collector.go gpuHealthChecks @ d5e5f51);
# ALL carries GPU-wide incidents such as XID 79.
HEALTH_SYSTEMS = ("PCIE", "NVLINK", "PMU", "MCU", "MEM", "SM", "INFOROM", "THERMAL", "POWER", "DRIVER", "ALL")


@dataclass(frozen=True)
class Bindings:
    """DCGM's three binding modules (or stand-ins with the same names)."""

    agent: Any  # dcgm_agent
    structs: Any  # dcgm_structs
    fields: Any  # dcgm_fields
    errors: Any = None  # dcgm_errors (DCGM_FR_* health error codes), optional


def load_bindings() -> Bindings:
    """Import DCGM's bindings from sys.path or the directories DCGM packages install them in."""
    for extra in ((), *((d,) for d in BINDING_DIRS)):
        if extra and extra[0] not in sys.path:
            sys.path.append(extra[0])
        try:
            mods = [importlib.import_module(m) for m in ("dcgm_agent", "dcgm_structs", "dcgm_fields")]
            try:
                errors = importlib.import_module("dcgm_errors")
            except ImportError:
                errors = None
            return Bindings(*mods, errors)
        except ImportError:
            continue
        except Exception as e:  # noqa: BLE001 - a broken install is one sentence, not a traceback
            raise AiinfraError(f"DCGM's Python bindings failed to load ({e}); reinstall datacenter-gpu-manager or use --backend nvml") from None
    raise AiinfraError("DCGM's Python bindings are not installed (package datacenter-gpu-manager); install DCGM or use --backend nvml")


def _error_names(errors: Any) -> dict[int, str]:
    """DCGM_FR_* code → name from dcgm_errors (the first name in sorted order wins for aliases)."""
    out: dict[int, str] = {}
    for n in sorted(dir(errors) if errors is not None else ()):
        v = getattr(errors, n)
        if n.startswith("DCGM_FR_") and isinstance(v, int) and not isinstance(v, bool):
            out.setdefault(v, n)
    out.setdefault(0, "DCGM_FR_OK")
    return out


def _text(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def _is_blank(v: Any) -> bool:
    if isinstance(v, str):
        return v in _STR_BLANKS
    return v >= DCGM_INT64_BLANK or (isinstance(v, float) and v >= DCGM_FP64_BLANK)


@dataclass
class _Entity:
    group: int  # DCGM_FE_GPU or DCGM_FE_GPU_I
    id: int
    identity: Identity


class DcgmCollector:
    """Reads all GPUs (or their MIG GPU instances) of one host through DCGM; same Snapshot as nvml.Collector."""

    def __init__(
        self,
        lib: Bindings | None = None,
        host: str = "",
        address: str | None = None,
        update_s: float = 1.0,
        xid_window_s: float = 300.0,
        clock_events_window_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ):
        self.lib = lib or load_bindings()
        self.agent, self.structs, self.flds = self.lib.agent, self.lib.structs, self.lib.fields
        self.host = host
        self.clock = clock
        self.update_s = update_s
        self.xid_window_s = xid_window_s
        self.clock_events_window_s = clock_events_window_s
        self.collections = 0
        self.errors: dict[int, int] = {}
        self.lost: set[int] = set()
        self._xids: dict[int, deque[tuple[float, int]]] = {}
        self._xid_ts: dict[int, int] = {}
        self._events: dict[int, deque[tuple[float, int]]] = {}
        self._group = None
        self._field_group = None
        self._stale = False
        self._pairs: list[Any] = []
        try:
            init = getattr(self.structs, "_dcgmInit", None)
            if init is not None:
                init()
            self.agent.dcgmInit()
            self._embedded = not address
            if address:
                self.handle = self.agent.dcgmConnect(address)
            else:
                self.handle = self.agent.dcgmStartEmbedded(self.structs.DCGM_OPERATION_MODE_AUTO)
            self._enumerate()
        except self.structs.DCGMError as e:
            raise AiinfraError(f"DCGM did not start ({e}); check the driver and nv-hostengine, or use --backend nvml") from None

    # ---- discovery and watches

    def _check_devices(self) -> None:
        """Each collection: rebuild groups and watches when the GPU list changed or a read failed."""
        try:
            ids = list(self.agent.dcgmGetAllSupportedDevices(self.handle))
        except self.structs.DCGMError:
            self._stale = True
            ids = None
        if ids is not None and ids == self.gpu_ids and not self._stale:
            return
        with_errors = self.structs.DCGMError
        try:
            if self._group is not None:
                self.agent.dcgmGroupDestroy(self.handle, self._group)
            if self._field_group is not None:
                self.agent.dcgmFieldGroupDestroy(self.handle, self._field_group)
        except with_errors:
            pass
        try:
            self._enumerate()
            self._stale = False
        except with_errors:
            self._pairs = []
            self._stale = True

    def _enumerate(self) -> None:
        ag, h, fe = self.agent, self.handle, self.flds
        self.gpu_ids = list(ag.dcgmGetAllSupportedDevices(h))
        self.identity: dict[int, Identity] = {}
        self.static: dict[int, dict[str, str]] = {}
        for gid in self.gpu_ids:
            self.errors.setdefault(gid, 0)
            self._xids.setdefault(gid, deque())
            self._events.setdefault(gid, deque())
            ids = ag.dcgmGetDeviceAttributes(h, gid).identifiers
            self.identity[gid] = Identity(gpu=gid, uuid=_text(ids.uuid), pci_bus_id=_text(ids.pciBusId), model=_text(ids.deviceName))
            self.static[gid] = {
                k: _text(v)
                for k, v in (("driver-version", ids.driverVersion), ("serial", ids.serial), ("vbios-version", ids.vbios), ("inforom-image-ver", ids.inforomImageVersion))
                if _text(v) and not _is_blank(_text(v))
            }
        self.driver_version = next((s["driver-version"] for s in self.static.values() if "driver-version" in s), "")
        instances: dict[int, list[tuple[int, Any]]] = {}
        hier = ag.dcgmGetGpuInstanceHierarchy(h)
        for n in range(int(hier.count)):
            e = hier.entityList[n]
            if e.entity.entityGroupId == fe.DCGM_FE_GPU_I:
                instances.setdefault(int(e.parent.entityId), []).append((int(e.entity.entityId), e.info))
        self.entities: list[_Entity] = []
        for gid in self.gpu_ids:
            parent = self.identity[gid]
            if gid not in instances:
                self.entities.append(_Entity(fe.DCGM_FE_GPU, gid, parent))
                continue
            for eid, info in sorted(instances[gid], key=lambda x: x[1].nvmlInstanceId):
                ident = Identity(gpu=gid, uuid=parent.uuid, pci_bus_id=parent.pci_bus_id, model=parent.model, gi_id=int(info.nvmlInstanceId), gi_profile=None)
                self.entities.append(_Entity(fe.DCGM_FE_GPU_I, eid, ident))
        self._prof_ids = self._profiling_field_ids()
        self._watch()

    def _profiling_field_ids(self) -> set[int]:
        """DCP field IDs DCGM can watch on these GPUs (the union of their supported metric groups)."""
        out: set[int] = set()
        for gid in self.gpu_ids:
            try:
                groups = self.agent.dcgmProfGetSupportedMetricGroups(self.handle, gid)
            except self.structs.DCGMError:
                continue  # no profiling module for this GPU (GeForce, pre-Volta): PROF fields stay unread
            for g in range(int(groups.numMetricGroups)):
                mg = groups.metricGroups[g]
                out.update(int(mg.fieldIds[k]) for k in range(int(mg.numFieldIds)))
        return out

    def _watch(self) -> None:
        ag, h = self.agent, self.handle
        self.fields: dict[int, Field] = {}
        for f in all_fields():
            if f.id <= 0 or f.exporter_owned:
                continue
            if _PROF_FIRST <= f.id <= _PROF_LAST and f.id not in self._prof_ids:
                continue
            self.fields[f.id] = f
        self.field_ids = sorted(self.fields)
        self._group = ag.dcgmGroupCreate(h, self.structs.DCGM_GROUP_EMPTY, b"aiinfra-exporter")
        for ent in self.entities:
            ag.dcgmGroupAddEntity(h, self._group, ent.group, ent.id)
        self._field_group = ag.dcgmFieldGroupCreate(h, self.field_ids, b"aiinfra-exporter-fields")
        # Keep a minute of samples at the update period; we only ever read the latest.
        ag.dcgmWatchFields(h, self._group, self._field_group, int(self.update_s * 1e6), 60.0, 0)
        ag.dcgmUpdateAllFields(h, 1)
        self._pairs = [self._pair(ent) for ent in self.entities]
        try:
            ag.dcgmHealthSet(h, self._group, self.structs.DCGM_HEALTH_WATCH_ALL)
            self._health = True
        except self.structs.DCGMError:
            self._health = False

    def _pair(self, ent: _Entity) -> Any:
        pair = self.structs.c_dcgmGroupEntityPair_t()
        pair.entityGroupId, pair.entityId = ent.group, ent.id
        return pair

    def unreadable(self, key: str) -> str | None:
        """Why this backend cannot serve a field on this host, or None when it can."""
        f = next((x for x in all_fields() if x.key == key), None)
        if f is None:
            return "unknown field"
        if f.key in ("exp-xid-errors-count", "exp-clock-events-count"):
            return None
        if f.key == "exp-gpu-health-status":
            return None if getattr(self, "_health", False) else "DCGM refused the health watches on these GPUs"
        if f.exporter_owned:
            return "this dcgm-exporter field is not collected by aiinfra"
        if _PROF_FIRST <= f.id <= _PROF_LAST and f.id not in self._prof_ids:
            return "DCGM's profiling module offers no metric group with this field on these GPUs"
        return None if f.id in self.fields else "not watched"

    # ---- collection

    def collect(self) -> Snapshot:
        t0 = time.perf_counter()
        now = self.clock()
        fe = self.flds
        by_entity: dict[tuple[int, int], dict[str, float]] = {}
        labels: dict[tuple[int, int], dict[str, str]] = {}
        lost_status: dict[tuple[int, int], bool] = {}
        self._check_devices()
        try:
            fvs = self.agent.dcgmEntitiesGetLatestValues(self.handle, self._pairs, self.field_ids, 0) if self._pairs else []
        except self.structs.DCGMError:
            for gid in self.gpu_ids:
                self.errors[gid] = self.errors.get(gid, 0) + 1
            self._stale = True  # host engine gone or GPUs changed: rebuild the watches next time
            fvs = []
        for fv in fvs:
            key = (int(fv.entityGroupId), int(fv.entityId))
            if fv.status == self.structs.DCGM_ST_GPU_IS_LOST:
                lost_status.setdefault(key, True)
                continue
            lost_status[key] = False
            if fv.status != self.structs.DCGM_ST_OK:
                continue
            f = self.fields.get(int(fv.fieldId))
            if f is None:
                continue
            kind = chr(fv.fieldType) if isinstance(fv.fieldType, int) else str(fv.fieldType)
            if kind == fe.DCGM_FT_STRING:
                text = _text(fv.value.str)
                if not _is_blank(text):
                    labels.setdefault(key, {})[f.key] = text
                continue
            raw = fv.value.dbl if kind == fe.DCGM_FT_DOUBLE else fv.value.i64
            if _is_blank(raw):
                continue  # blank / not supported / no permission: no sample, as dcgm-exporter does
            vals = by_entity.setdefault(key, {})
            vals[f.key] = f.to_si(raw, "legacy")
            if f.key == "xid-errors":
                self._note_xid(int(fv.entityId) if key[0] == fe.DCGM_FE_GPU else None, key, int(raw), int(fv.ts), now)
        health = self._health_check()
        entities: list[EntitySample] = []
        statuses: dict[int, GpuStatus] = {}
        for ent in self.entities:
            key = (ent.group, ent.id)
            gid = ent.identity.gpu
            st = statuses.setdefault(gid, GpuStatus(index=gid, uuid=ent.identity.uuid, pci_bus_id=ent.identity.pci_bus_id, model=ent.identity.model))
            if lost_status.get(key):
                self.lost.add(gid)
                st.lost = True
                continue
            if key in lost_status:
                self.lost.discard(gid)  # read again: back (after a reset or reload)
            vals = by_entity.get(key, {})
            ident = ent.identity
            if ent.group == fe.DCGM_FE_GPU_I and ident.gi_profile is None:
                ident = self._with_profile(ent, vals)
            reasons = vals.get("clocks-event-reasons")
            st.clock_event_reasons = int(reasons) if reasons is not None else st.clock_event_reasons
            if "pcie-link-gen" in vals and "pcie-max-link-gen" in vals:
                st.pcie_gen = (int(vals["pcie-link-gen"]), int(vals["pcie-max-link-gen"]))
            if "pcie-link-width" in vals and "pcie-max-link-width" in vals:
                st.pcie_width = (int(vals["pcie-link-width"]), int(vals["pcie-max-link-width"]))
            xid_counts, clock_counts = self._windows(gid, reasons, now, first=ent is self._first_of(gid))
            st.recent_xids = list(self._xids.get(gid, ()))
            sample = EntitySample(ident, vals, xid_counts, clock_counts, {**self.static.get(gid, {}), **labels.get(key, {})})
            if health is not None:
                found = {**health.get((fe.DCGM_FE_GPU, gid), {}), **health.get(key, {})}  # GPU incidents apply to its instances
                sample.health = [(name, *found.get(name, ("DCGM_FR_OK", 0))) for name in HEALTH_SYSTEMS]
            entities.append(sample)
        self.collections += 1
        return Snapshot(
            host=self.host,
            time=now,
            driver_version=self.driver_version,
            cuda_version=None,
            entities=entities,
            gpus=[statuses[g] for g in self.gpu_ids if g in statuses],
            errors=dict(self.errors),
            lost=set(self.lost),
            duration_s=time.perf_counter() - t0,
            collections=self.collections,
        )

    def _health_check(self) -> dict[tuple[int, int], dict[str, tuple[str, int]]] | None:
        """dcgmHealthCheck on the group: incidents by entity and health system (worst one kept)."""
        if not getattr(self, "_health", False):
            return None
        try:
            resp = self.agent.dcgmHealthCheck(self.handle, self._group)
        except self.structs.DCGMError:
            return None
        st = self.structs
        systems = {getattr(st, f"DCGM_HEALTH_WATCH_{n}", None): n for n in HEALTH_SYSTEMS}
        codes = _error_names(self.lib.errors)
        out: dict[tuple[int, int], dict[str, tuple[str, int]]] = {}
        for n in range(int(resp.incidentCount)):
            inc = resp.incidents[n]
            name = systems.get(int(inc.system))
            if name is None:
                continue
            key = (int(inc.entityInfo.entityGroupId), int(inc.entityInfo.entityId))
            code = int(inc.error.code)
            entry = (codes.get(code, f"DCGM_FR_UNKNOWN({code})"), int(inc.health))
            if entry[1] >= out.setdefault(key, {}).get(name, ("", -1))[1]:
                out[key][name] = entry
        return out

    def _first_of(self, gid: int) -> _Entity | None:
        return next((e for e in self.entities if e.identity.gpu == gid), None)

    def _with_profile(self, ent: _Entity, vals: dict[str, float]) -> Identity:
        """The GPU-instance profile as DCGM names it: <slices>g.<instance memory, GiB rounded up>gb."""
        slices = self._slices.get(ent.id) if hasattr(self, "_slices") else None
        if slices is None:
            hier = self.agent.dcgmGetGpuInstanceHierarchy(self.handle)
            self._slices = {int(hier.entityList[n].entity.entityId): int(hier.entityList[n].info.nvmlProfileSlices) for n in range(int(hier.count)) if hier.entityList[n].entity.entityGroupId == self.flds.DCGM_FE_GPU_I}
            slices = self._slices.get(ent.id)
        total = vals.get("fb-total")
        if slices is None or total is None:
            return ent.identity
        i = ent.identity
        ident = Identity(gpu=i.gpu, uuid=i.uuid, pci_bus_id=i.pci_bus_id, model=i.model, gi_id=i.gi_id, gi_profile=f"{slices}g.{-(-int(total) // 2**30)}gb")
        ent.identity = ident
        return ident

    def _note_xid(self, gid: int | None, key: tuple[int, int], code: int, ts: int, now: float) -> None:
        """DCGM keeps the last XID code with its timestamp; a new timestamp is a new event."""
        g = gid if gid is not None else next((e.identity.gpu for e in self.entities if (e.group, e.id) == key), None)
        if g is None or code <= 0 or self._xid_ts.get(g) == ts:
            return
        self._xid_ts[g] = ts
        self._xids.setdefault(g, deque()).append((now, code))

    def _windows(self, gid: int, reasons: float | None, now: float, first: bool) -> tuple[dict[int, int], dict[str, int]]:
        xids = self._xids.setdefault(gid, deque())
        while xids and xids[0][0] < now - self.xid_window_s:
            xids.popleft()
        events = self._events.setdefault(gid, deque())
        if first and reasons is not None:
            events.append((now, int(reasons)))
        while events and events[0][0] < now - self.clock_events_window_s:
            events.popleft()
        xid_counts: dict[int, int] = {}
        for _, code in xids:
            xid_counts[code] = xid_counts.get(code, 0) + 1
        clock_counts = {name: sum(1 for _, bits in events if bits & bit) for bit, name in CLOCK_EVENTS.items()}
        return xid_counts, clock_counts

    def close(self) -> None:
        ag, h = self.agent, getattr(self, "handle", None)
        if h is None:
            return
        try:
            if self._field_group is not None:
                ag.dcgmFieldGroupDestroy(h, self._field_group)
            if self._group is not None:
                ag.dcgmGroupDestroy(h, self._group)
            if self._embedded:
                ag.dcgmStopEmbedded(h)
            else:
                ag.dcgmDisconnect(h)
            ag.dcgmShutdown()
        except self.structs.DCGMError:
            pass

"""`Attribution`: the pod, job and process owners of each GPU, refreshed in the background.

The exporter asks two things, both while rendering a collection and never waiting on I/O:
- `labels_for(host, identity)`: the attribute label sets for one GPU or MIG instance (one set per
  owning pod × job; `[{}]` when nothing owns it or the source is down), from the last good refresh;
- `families(snapshots, cfg)`: the `aiinfra_` health metrics of each source, and the opt-in
  per-process families.

A thread refreshes every `interval_s`: PodResources `List` (deadline `timeout_s`), the HPC job
folder, and the per-process samples. A kubelet that is missing, refuses, hangs or answers
garbage only changes the health metric; the last good mapping is kept for `stale_after_s` (so a
kubelet restart does not churn series), after which the labels are left out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric

from aiinfra.telemetry.attribution import hpc, mapping, processes
from aiinfra.telemetry.attribution.podresources import REASONS, KubeletError, PodResourcesClient
from aiinfra.telemetry.nvml import Collector, Identity, Snapshot, process_samples

HPC_REASONS = ("ok", "pending", "missing", "unreadable")  # values of aiinfra_hpc_job_mapping_status{reason}


@dataclass
class AttributionConfig:
    kubernetes: bool = False
    sockets: dict[str, str] = field(default_factory=dict)  # host label value → pod-resources socket
    hpc_dirs: dict[str, str] = field(default_factory=dict)  # host → HPC job mapping folder
    processes: bool = False
    proc_roots: dict[str, str] = field(default_factory=dict)  # host → /proc (simulated fleet: its own tree)
    log_roots: dict[str, str] = field(default_factory=dict)  # host → /var/log/pods
    interval_s: float = 5.0
    timeout_s: float = 2.0
    stale_after_s: float | None = None  # default: 3 × interval
    max_processes_per_gpu: int = 4  # bounded cardinality: the biggest processes by memory, then SM
    resource_names: tuple[str, ...] = ()  # extra extended-resource names that are GPUs
    dra_devices: dict[str, str] = field(default_factory=dict)  # "pool/device" → GPU or MIG UUID


@dataclass
class _HostState:
    index: dict[str, tuple[mapping.PodInfo, ...]] = field(default_factory=dict)
    reason: str = "pending"  # no answer yet (the first List is in flight)
    message: str = ""
    last_ok: float = 0.0  # unix time of the last good List
    last_ok_mono: float = float("-inf")
    errors: dict[str, int] = field(default_factory=dict)
    refreshes: int = 0
    jobs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    job_reason: str = "pending"
    procs: dict[int, list[tuple[Any, float | None, float | None, dict[str, str]]]] = field(default_factory=dict)
    version: int = 0


@dataclass
class _OnePod:
    """A Get answer shaped like a List answer, so mapping.index reads both."""

    pod: Any

    @property
    def pod_resources(self) -> list[Any]:
        return [self.pod]


class Attribution:
    def __init__(self, cfg: AttributionConfig, collectors: dict[str, Collector] | None = None):
        self.cfg = cfg
        self.collectors = collectors or {}
        self.stale_after_s = cfg.stale_after_s if cfg.stale_after_s is not None else 3 * cfg.interval_s
        hosts = set(cfg.sockets) | set(cfg.hpc_dirs) | (set(self.collectors) if cfg.processes else set())
        self.state: dict[str, _HostState] = {h: _HostState() for h in sorted(hosts)}
        self.clients = {h: PodResourcesClient(p, cfg.timeout_s) for h, p in cfg.sockets.items()} if cfg.kubernetes else {}
        self._memo: dict[tuple, tuple[tuple[int, int], list[dict[str, str]]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid_pods: dict[tuple[str, int], str | None] = {}
        self._got: dict[tuple[str, str], dict[str, tuple[mapping.PodInfo, ...]]] = {}  # pods read with Get this refresh
        self._mig_uuids: dict[str, dict[int, str]] = {}  # GPU UUID → GPU instance id → MIG UUID, from collections

    # ---- refresh (background thread)

    def refresh_once(self) -> None:
        self._got = {}
        for host, st in self.state.items():
            changed = False
            client = self.clients.get(host)
            if client is not None:
                changed |= self._refresh_pods(client, st)
            if host in self.cfg.hpc_dirs:
                changed |= self._refresh_jobs(self.cfg.hpc_dirs[host], st)
            if self.cfg.processes and host in self.collectors:
                self._refresh_processes(host, st)
            if changed:
                st.version += 1

    def _refresh_pods(self, client: PodResourcesClient, st: _HostState) -> bool:
        st.refreshes += 1
        try:
            resp = client.list()
            idx = mapping.index(resp, self.cfg.resource_names, self.cfg.dra_devices)
        except Exception as e:  # noqa: BLE001 - KubeletError, or a decodable but malformed answer: never stop the thread
            reason = e.reason if isinstance(e, KubeletError) else "garbage"
            st.reason, st.message = reason, str(e) if isinstance(e, KubeletError) else f"unusable PodResources answer: {type(e).__name__}"
            st.errors[reason] = st.errors.get(reason, 0) + 1
            if st.index and time.monotonic() - st.last_ok_mono > self.stale_after_s:
                st.index = {}  # too old to trust: leave the labels out
                return True
            return False
        st.reason, st.message = "ok", ""
        st.last_ok, st.last_ok_mono = time.time(), time.monotonic()
        changed = idx != st.index
        st.index = idx
        return changed

    def _refresh_jobs(self, folder: str, st: _HostState) -> bool:
        try:
            jobs = hpc.read_job_dir(folder)
            st.job_reason = "ok"
        except hpc.JobDirError as e:
            jobs, st.job_reason = {}, e.reason
        changed = jobs != st.jobs
        st.jobs = jobs
        return changed

    def _refresh_processes(self, host: str, st: _HostState) -> None:
        col = self.collectors[host]
        since_us = int((time.time() - max(1.0, self.cfg.interval_s)) * 1e6)
        try:
            samples = process_samples(col, since_us)
        except Exception:  # noqa: BLE001 - NVML trouble shows in the collector's own error counters
            samples = {}
        proc_root = self.cfg.proc_roots.get(host, "/proc")
        uid_pods = processes.pods_by_uid(self.cfg.log_roots.get(host, "/var/log/pods"))
        out: dict[int, list] = {}
        live = set()
        for gpu, rows in samples.items():
            ident = col.identity.get(gpu)
            for proc, sm, mem in rows:
                key = (host, proc.pid)
                live.add(key)
                if key not in self._pid_pods:
                    self._pid_pods[key] = processes.pod_uid_of(proc.pid, proc_root)
                uid = self._pid_pods[key]
                owner: dict[str, str] = {}
                ref = uid_pods.get(uid) if uid else None
                if ref is not None and ident is not None:
                    owner = {"namespace": ref.namespace, "pod": ref.pod}
                    container = self._container_for(st, ident, proc.gi_id, ref, self.clients.get(host))
                    if container:
                        owner = {"container": container, **owner}
                out.setdefault(gpu, []).append((proc, sm, mem, owner))
        for key in [k for k in self._pid_pods if k[0] == host and k not in live]:
            del self._pid_pods[key]  # PIDs are reused: forget the ones that ended
        st.procs = out

    def _container_for(self, st: _HostState, ident: Identity, gi_id: int | None, ref: processes.PodRef,
                       client: PodResourcesClient | None) -> str:
        """The container of pod `ref` that holds this GPU: from the last List, else (a pod newer than
        that List) from a `Get` of that one pod, else the pod's only container."""
        keys: tuple[str, ...] = (ident.uuid, ident.device)
        if gi_id is not None:  # a MIG instance: by its MIG UUID (seen in the last collection) or `<gpu>-<gi>`
            mig_uuid = self._mig_uuids.get(ident.uuid, {}).get(gi_id)
            keys = tuple(k for k in (mig_uuid, f"{ident.gpu}-{gi_id}") if k)
        for k in keys:
            for info in st.index.get(k, ()):
                if info.namespace == ref.namespace and info.pod == ref.pod:
                    return info.container
        if client is not None and (ref.namespace, ref.pod) not in self._got:
            try:
                one = client.get(ref.pod, ref.namespace)
                self._got[(ref.namespace, ref.pod)] = mapping.index(_OnePod(one), self.cfg.resource_names, self.cfg.dra_devices)
            except KubeletError:
                self._got[(ref.namespace, ref.pod)] = {}
        for k in keys:
            for info in self._got.get((ref.namespace, ref.pod), {}).get(k, ()):
                return info.container
        return ref.containers[0] if len(ref.containers) == 1 else ""

    def start(self) -> Attribution:
        self._thread = threading.Thread(target=self._loop, name="aiinfra-attribution", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            try:
                self.refresh_once()
            except Exception:  # noqa: BLE001 - attribution is optional: it never takes the exporter down
                pass
            if self._stop.wait(self.cfg.interval_s):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.cfg.timeout_s + 2)
        for c in self.clients.values():
            c.close()

    # ---- rendering (collection thread; dictionary lookups only)

    def labels_for(self, host: str, ident: Identity) -> list[dict[str, str]]:
        st = self.state.get(host)
        if st is None:
            return [{}]
        version = (id(st), st.version)
        key = (host, ident.gpu, ident.gi_id, ident.uuid, ident.mig_uuid)
        hit = self._memo.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        pods = [p.labels() for p in mapping.owners(st.index, ident)] or [{}]
        jobs = st.jobs.get(hpc.job_key(ident))
        sets = [{**p, "hpc_job": j} for p in pods for j in jobs] if jobs else pods
        sets = [dict(sorted(s.items())) for s in sets]  # dcgm-exporter prints attributes sorted by name
        self._memo[key] = (version, sets)
        return sets

    def families(self, snapshots: Sequence[Snapshot], cfg: Any) -> list[Metric]:
        from aiinfra.telemetry.exporter import DcgmFamily

        host_label = cfg.hostname_label or "Hostname"
        mine = {snap.host for snap in snapshots}  # one exporter per host: report only this exporter's hosts
        out: list[Metric] = []
        if self.clients:
            up = DcgmFamily("aiinfra_kubelet_podresources_up", "1 when the last PodResources List from the kubelet succeeded; pod labels are left out while it is 0 for longer than the stale limit.", "gauge", True)
            status = DcgmFamily("aiinfra_kubelet_podresources_status", "Always 1; the reason label says how the last PodResources List went (ok, pending, missing, not_socket, refused, timeout, garbage, unimplemented, denied, error).", "gauge", True)
            errors = DcgmFamily("aiinfra_kubelet_podresources_errors_total", "Failed PodResources List calls by reason.", "counter", True)
            last = DcgmFamily("aiinfra_kubelet_podresources_last_success_timestamp_seconds", "Unix time of the last good PodResources List (0 = never).", "gauge", False)
            devices = DcgmFamily("aiinfra_kubelet_attributed_devices", "GPU, MIG and shared-replica device IDs that pods hold, as the exporter labels them now.", "gauge", True)
            for host, st in self.state.items():
                if host not in self.clients or host not in mine:
                    continue
                h = {host_label: host}
                up.add(dict(h), 1 if st.reason == "ok" else 0)
                status.add({**h, "reason": st.reason}, 1)  # one series: the reason now (an info-style gauge)
                for reason in REASONS:
                    if st.errors.get(reason):  # a reason's counter appears with its first failure
                        errors.add({**h, "reason": reason}, st.errors[reason])
                last.add(dict(h), st.last_ok)
                devices.add(dict(h), sum(len(v) for v in st.index.values()))
            out += [up, status, errors, last, devices]
        if self.cfg.hpc_dirs:
            jobs_up = DcgmFamily("aiinfra_hpc_job_mapping_status", "Always 1; the reason label says the state of the HPC job mapping folder (ok, pending, missing, unreadable).", "gauge", True)
            jobs_n = DcgmFamily("aiinfra_hpc_job_mapped_gpus", "GPUs and MIG instances that have an HPC job file.", "gauge", True)
            for host, st in self.state.items():
                if host not in self.cfg.hpc_dirs or host not in mine:
                    continue
                jobs_up.add({host_label: host, "reason": st.job_reason}, 1)
                jobs_n.add({host_label: host}, len(st.jobs))
            out += [jobs_up, jobs_n]
        if self.cfg.processes:
            for snap in snapshots:
                for e in snap.entities:
                    if e.identity.gi_id is not None and e.identity.mig_uuid:
                        self._mig_uuids.setdefault(e.identity.uuid, {})[e.identity.gi_id] = e.identity.mig_uuid
            out += self._process_families(host_label, mine)
        return out

    def _process_families(self, host_label: str, mine: set[str]) -> list[Metric]:
        from aiinfra.telemetry.exporter import DcgmFamily

        mem = DcgmFamily("aiinfra_process_gpu_memory_bytes", "GPU memory a process uses (NVML usedGpuMemory; absent under MIG, where NVML reports N/A).", "gauge", True)
        sm = DcgmFamily("aiinfra_process_sm_utilization_ratio", "Share of time the process kept the SMs busy over the last interval (NVML process utilization samples), 0-1.", "gauge", False)
        mu = DcgmFamily("aiinfra_process_memory_utilization_ratio", "Share of time the process kept the memory controller busy over the last interval, 0-1.", "gauge", False)
        dropped = DcgmFamily("aiinfra_processes_not_exported", "GPU processes left out to bound cardinality (more than the per-GPU limit).", "gauge", True)
        n = self.cfg.max_processes_per_gpu
        for host, st in self.state.items():
            col = self.collectors.get(host)
            if col is None or host not in mine:
                continue
            left_out = 0
            for gpu, rows in sorted(st.procs.items()):
                ident = col.identity.get(gpu)
                if ident is None:
                    continue
                ranked = sorted(rows, key=lambda r: (-(r[0].used_bytes or 0), -(r[1] or 0.0), r[0].pid))
                left_out += max(0, len(ranked) - n)
                for proc, sm_ratio, mem_ratio, owner in ranked[:n]:
                    labels = {"gpu": str(gpu), "UUID": ident.uuid, "device": ident.device, "modelName": ident.model}
                    if proc.gi_id is not None:
                        labels["GPU_I_ID"] = str(proc.gi_id)
                    labels[host_label] = host
                    labels["pid"] = str(proc.pid)
                    labels.update(owner)
                    if proc.used_bytes is not None:
                        mem.add(labels, proc.used_bytes)
                    if sm_ratio is not None:
                        sm.add(labels, sm_ratio)
                    if mem_ratio is not None:
                        mu.add(labels, mem_ratio)
            dropped.add({host_label: host}, left_out)
        return [mem, sm, mu, dropped]

"""A dcgm-exporter-compatible Prometheus exporter over `telemetry.nvml` snapshots.

Pieces, smallest first:
- `families(snapshots, cfg)`: prometheus-client `Metric` families, table-driven from
  catalog/data/dcgm_fields.yaml: dcgm-exporter's names (per `--naming`), HELP, TYPE and label set
  (gpu, UUID, pci_bus_id, device, modelName, [GPU_I_PROFILE, GPU_I_ID], Hostname|hostname,
  DCGM_FI_DRIVER_VERSION, then attributes such as err_code/err_msg), plus `aiinfra_` self-metrics.
- `SnapshotCollector`: the prometheus-client Collector protocol over the cached snapshots.
- `render(metrics)`: text format 0.0.4 the way dcgm-exporter writes it.
- `Exporter`: a background thread collects every `interval` seconds and renders once; scrapes
  return the cached bytes.
- `serve(...)`: `/metrics` and `/healthz` on 127.0.0.1 by default, optional TLS and basic auth
  from an exporter-toolkit style web-config file.

Why a background collector and a cache instead of collecting inside the scrape (prometheus-client's
usual custom-collector pattern): an NVML call can take tens of milliseconds per GPU and stalls for
seconds when a GPU is failing (exactly when people look). Collecting on a fixed interval keeps
scrape latency flat and independent of GPU health, lets 100 concurrent scrapers share one NVML
pass instead of multiplying it, and gives delta-based fields (NVLink rate, GPM ratios, windowed
XID counts) a steady sampling period. dcgm-exporter does the same (`-c 30000` collect interval).

Why our own text writer instead of `prometheus_client.generate_latest`: prometheus-client renames
counter families to `<name>_total` (OpenMetrics munging), which would turn
`DCGM_FI_DEV_PCIE_REPLAY_COUNTER` into `DCGM_FI_DEV_PCIE_REPLAY_COUNTER_total` and break every
dashboard and rule written for dcgm-exporter. It also sorts labels and prints integers as `97.0`.
The families themselves are prometheus-client objects, so its parser reads our output unchanged.
"""

from __future__ import annotations

import gzip
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from aiinfra.catalog.xid import xid_catalog
from aiinfra.errors import AiinfraError
from aiinfra.telemetry import httpd
from aiinfra.telemetry.fields import NAMINGS, ExportRow, Skipped, default_rows
from aiinfra.telemetry.httpd import CONTENT_TYPE, Server  # noqa: F401 - CONTENT_TYPE re-exported
from aiinfra.telemetry.nvml import Collector, Identity, Snapshot
from aiinfra.telemetry.webconfig import WebConfig, load_web_config  # noqa: F401 - load_web_config re-exported for the CLI

HOSTNAME_LABELS = ("Hostname", "hostname", "")


@dataclass(frozen=True)
class ExporterConfig:
    naming: str = "legacy"
    counters: str = "default"  # dcgm-exporter's default-counters.csv, or "all" rows we collect
    hostname_label: str = "Hostname"  # "hostname" as in dcgm-exporter >= 4.6.0-4.8.3; "" = no label
    xid_window_ms: int = 300_000
    clock_events_window_ms: int = 300_000
    rows: tuple[ExportRow, ...] | None = None  # from a dcgm-exporter collectors CSV; None = the catalog table
    skipped: tuple[Skipped, ...] = ()  # rows of that CSV that are not served, with the reason
    attribution: Any = None  # telemetry.attribution.Attribution: pod/job labels, their health, per-process families

    def table(self) -> list[ExportRow]:
        return list(self.rows) if self.rows is not None else default_rows(self.naming, self.counters)

    def __post_init__(self) -> None:
        if self.naming not in NAMINGS:
            raise AiinfraError(f"unknown --naming '{self.naming}'; choose one of: {', '.join(NAMINGS)}")
        if self.hostname_label not in HOSTNAME_LABELS:
            raise AiinfraError(f"--hostname-label must be Hostname or hostname, got '{self.hostname_label}'")
        if self.counters not in ("default", "all"):
            raise AiinfraError(f"unknown --counters '{self.counters}'; choose default or all")


class DcgmFamily(Metric):
    """A prometheus-client Metric that remembers dcgm-exporter's label order and int formatting."""

    def __init__(self, name: str, documentation: str, typ: str, is_int: bool):
        # prometheus-client calls the text format's `untyped` `unknown`; the TYPE line keeps the word the row gave.
        super().__init__(name, documentation, "unknown" if typ == "untyped" else typ)
        # Metric() strips `_total` from counter names (OpenMetrics habit); dcgm names are kept whole.
        self.name = name
        self.is_int = is_int
        self.text_type = typ

    def add(self, labels: dict[str, str], value: float) -> None:
        self.samples.append(Sample(self.name, labels, value, None, None))


def _xid_texts() -> dict[int, str]:
    return {c: x.meaning for c, x in xid_catalog(required=False).items()}


def _base_labels(ident: Identity, host: str, cfg: ExporterConfig) -> dict[str, str]:
    """dcgm-exporter's label template, in its order (render_metrics.go)."""
    labels = {
        "gpu": str(ident.gpu),
        "UUID": ident.uuid,
        "pci_bus_id": ident.pci_bus_id,
        "device": ident.device,
        "modelName": ident.model,
    }
    if ident.gi_profile is not None:
        labels["GPU_I_PROFILE"] = ident.gi_profile
        labels["GPU_I_ID"] = str(ident.gi_id)
    if cfg.hostname_label and host:
        labels[cfg.hostname_label] = host
    return labels


def families(snapshots: Sequence[Snapshot], cfg: ExporterConfig) -> list[Metric]:
    """All metric families for the snapshots (one per host), dcgm-exporter's first, then aiinfra_."""
    rows = cfg.table()
    label_rows = sorted((r for r in rows if r.type == "label"), key=lambda r: r.name)
    xid_text = _xid_texts()
    out: list[Metric] = []
    for row in (r for r in rows if r.type != "label"):
        fam = DcgmFamily(row.name, row.help, row.type, row.field.is_int(row.units))
        for snap in snapshots:
            for ent in snap.entities:
                # `label` rows become labels on every series, sorted by name (render_metrics.go).
                static = {r.name: v for r in label_rows if (v := _label_value(r, ent, snap)) is not None}
                labels = {**_base_labels(ent.identity, snap.host, cfg), **static}
                for owner in cfg.attribution.labels_for(snap.host, ent.identity) if cfg.attribution else ({},):
                    _add_field(fam, row, ent, {**labels, **owner}, cfg, xid_text)
        out.append(fam)
    out.extend(self_metrics(snapshots, cfg))
    if cfg.attribution:
        out.extend(cfg.attribution.families(snapshots, cfg))
    return out


def _label_value(row: ExportRow, ent: Any, snap: Snapshot) -> str | None:
    value = ent.labels.get(row.field.key)
    if value is None and row.field.key == "driver-version":
        value = snap.driver_version
    if value is None and (si := ent.values.get(row.field.key)) is not None:
        # A numeric field declared `label`: dcgm-exporter writes the reading as text, %d or %f (gpu_collector.go toString).
        v = row.field.export_value(si, row.units)
        value = f"{int(v):d}" if row.field.is_int(row.units) else f"{v:f}"
    return value


def _add_field(fam: DcgmFamily, row: ExportRow, ent: Any, labels: dict[str, str], cfg: ExporterConfig, xid_text: dict[int, str]) -> None:
    f = row.field
    if f.key == "exp-xid-errors-count":
        window = {"window_size_in_ms": str(cfg.xid_window_ms)}
        if not ent.xid_counts:  # dcgm-exporter: one 0 sample without an xid label
            fam.add({**labels, **window}, 0)
        for code, n in sorted(ent.xid_counts.items()):
            fam.add({**labels, **window, "xid": str(code)}, n)
        return
    if f.key == "exp-gpu-health-status":
        # dcgm-exporter's gpu_health_collector.go: one series per health system, value 0 pass / 10 warn / 20 fail.
        for watch, code, value in getattr(ent, "health", ()):
            fam.add({**labels, "health_watch": watch, "health_error_code": code}, value)
        return
    if f.key == "exp-clock-events-count":
        window = {"window_size_in_ms": str(cfg.clock_events_window_ms)}
        for name, n in ent.clock_event_counts.items():
            fam.add({**labels, "clock_event": name, **window}, n)
        return
    si = ent.values.get(f.key)
    if si is None:
        return  # unsupported or not collected: no sample, never a made-up 0
    value = f.export_value(si, row.units)
    if f.key == "xid-errors":
        code = int(si)
        labels = {**labels, "err_code": str(code), "err_msg": xid_text.get(code, "unknownErr")}
    fam.add(labels, value)


def self_metrics(snapshots: Sequence[Snapshot], cfg: ExporterConfig) -> list[Metric]:
    """aiinfra_ health metrics: how collection itself is doing, per host and per GPU."""
    host_label = cfg.hostname_label or "Hostname"
    duration = DcgmFamily("aiinfra_collection_duration_seconds", "Seconds the last NVML collection pass took.", "gauge", False)
    last = DcgmFamily("aiinfra_last_collection_timestamp_seconds", "Unix time of the last finished collection.", "gauge", False)
    passes = DcgmFamily("aiinfra_collections_total", "Collection passes since the exporter started.", "counter", True)
    lost_n = DcgmFamily("aiinfra_gpus_lost", "GPUs that raised NVMLError_GpuIsLost and no longer report.", "gauge", True)
    errors = DcgmFamily("aiinfra_collection_errors_total", "Failed NVML calls per GPU (unsupported fields excluded).", "counter", True)
    lost = DcgmFamily("aiinfra_gpu_lost", "1 when the GPU is lost (fell off the bus or NVML says GPU is lost).", "gauge", True)
    seen = DcgmFamily("aiinfra_gpu_last_seen_timestamp_seconds", "Unix time of the last collection that read the GPU.", "gauge", False)
    for snap in snapshots:
        host = {host_label: snap.host} if snap.host else {}
        duration.add(dict(host), snap.duration_s)
        last.add(dict(host), snap.time)
        passes.add(dict(host), snap.collections)
        lost_n.add(dict(host), len(snap.lost))
        for st in snap.gpus:
            gl = {"gpu": str(st.index), "UUID": st.uuid, **host}
            errors.add(gl, snap.errors.get(st.index, 0))
            lost.add(gl, 1 if st.lost else 0)
            if getattr(st, "last_seen", None) is not None:
                seen.add(gl, st.last_seen)
    return [duration, last, passes, lost_n, errors, lost, seen]


# Fields whose absence is normal: the last XID has no value until one happens, and the vGPU licence
# status exists only inside a vGPU guest (dcgm-exporter's default set asks for both).
_EVENT_FIELDS = frozenset({"xid-errors", "vgpu-license-status"})


def served_config(cfg: ExporterConfig, collectors: Sequence[Any]) -> ExporterConfig:
    """The config with the rows no collector can read moved to `skipped` (with the collector's reason),
    so a counters file asking for more than the backend offers still starts."""
    served: list[ExportRow] = []
    skipped = list(cfg.skipped)
    for row in cfg.table():
        reasons = [r for c in collectors if (r := _unreadable(c, row.field.key)) is not None]
        if collectors and len(reasons) == len(collectors):  # no host can read it
            skipped.append(Skipped(row.name, reasons[0]))
        else:
            served.append(row)
    return replace(cfg, rows=tuple(served), skipped=tuple(skipped))


def _unreadable(collector: Any, key: str) -> str | None:
    check = getattr(collector, "unreadable", None)
    return check(key) if check is not None else None


def warning_for(skipped: Sequence[Skipped], total: int) -> str | None:
    """One line naming every row not served, grouped by reason (printed once at start-up)."""
    if not skipped:
        return None
    by_reason: dict[str, list[str]] = {}
    for s in skipped:
        by_reason.setdefault(s.reason, []).append(s.name)
    parts = "; ".join(f"{', '.join(names)} ({reason})" for reason, names in by_reason.items())
    return f"{len(skipped)} of {total} requested fields are not served: {parts}"


class SnapshotCollector:
    """prometheus-client's Collector protocol over whatever snapshots `source()` returns."""

    def __init__(self, source: Callable[[], Sequence[Snapshot]], cfg: ExporterConfig):
        self.source = source
        self.cfg = cfg

    def collect(self) -> Iterable[Metric]:
        yield from families(self.source(), self.cfg)


def _escape_label(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format(value: float, is_int: bool) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return floatToGoString(value)
    if is_int:
        return f"{int(value):d}"
    return f"{value:f}"  # dcgm-exporter prints doubles with Go %f (6 decimals)


def render(metrics: Iterable[Metric]) -> bytes:
    """Text format 0.0.4 as dcgm-exporter writes it: HELP, TYPE, samples, a blank line per family."""
    out: list[str] = []
    for m in metrics:
        is_int = getattr(m, "is_int", False)
        doc = m.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        name, typ = m.name, getattr(m, "text_type", m.type)
        if not isinstance(m, DcgmFamily):  # ordinary prometheus-client families: its own text munging
            if typ == "counter":
                name += "_total"
            elif typ == "info":
                name, typ = name + "_info", "gauge"
            elif typ == "unknown":
                typ = "untyped"
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {typ}\n")
        for s in m.samples:
            if s.labels:
                inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in s.labels.items())
                out.append(f"{s.name}{{{inner}}} {_format(s.value, is_int)}\n")
            else:
                out.append(f"{s.name} {_format(s.value, is_int)}\n")
        out.append("\n")
    return "".join(out).encode()


# ---------------------------------------------------------------- background collection


@dataclass
class Source:
    """One host to collect: its hostname label value and its NVML collector."""

    host: str
    collector: Collector


@dataclass
class Exporter:
    sources: list[Source]
    cfg: ExporterConfig = field(default_factory=ExporterConfig)
    interval_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise AiinfraError(f"--interval must be a positive number of seconds, got {self.interval_s}")
        self.cfg = served_config(self.cfg, [s.collector for s in self.sources])
        self.snapshots: list[Snapshot] = []
        self.body = b""
        self.last_ok = 0.0
        self.host_failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gzip: tuple[bytes, bytes] = (b"", b"")
        self._gzip_lock = threading.Lock()
        # A prometheus-client registry, so other collectors (process metrics, …) can be added to it.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(lambda: self.snapshots, self.cfg))

    def collect_once(self) -> None:
        snaps = []
        fresh = 0
        for src in self.sources:
            try:
                snaps.append(src.collector.collect())
                fresh += 1
            except Exception:  # noqa: BLE001 - one broken host keeps its last snapshot, others go on
                self.host_failures += 1
                old = next((s for s in self.snapshots if s.host == src.host), None)
                if old is not None:
                    snaps.append(old)
        self.snapshots = snaps
        # Render once per collection; every scrape until the next one returns these bytes.
        self.body = render(self.registry.collect())
        if fresh:
            self.last_ok = time.time()

    def unserved(self) -> list[Skipped]:
        """Rows not served: those skipped at start-up, plus rows no GPU reported in the last collection
        (event fields such as the last XID are left out: they have no value until something happens)."""
        out = list(self.cfg.skipped)
        if not self.snapshots:
            return out
        seen: set[str] = set()
        all_mig = any(snap.entities for snap in self.snapshots)
        for snap in self.snapshots:
            for ent in snap.entities:
                seen.update(ent.values)
                seen.update(ent.labels)
                all_mig = all_mig and ent.identity.gi_id is not None
        for row in self.cfg.table():
            key = row.field.key
            if key in seen or row.field.exporter_owned or key in _EVENT_FIELDS or (key == "driver-version"):
                continue
            if all_mig and row.field.scope == "gpu_only":
                out.append(Skipped(row.name, "not reported per MIG instance; DCGM_FI_PROF_GR_ENGINE_ACTIVE is the per-instance activity"))
            else:
                out.append(Skipped(row.name, "no GPU on this host reports it"))
        return out

    def gzipped(self) -> bytes:
        """The cached body, gzip-compressed once per collection (Prometheus asks for gzip)."""
        body = self.body
        with self._gzip_lock:
            if self._gzip[0] is not body:
                self._gzip = (body, gzip.compress(body, compresslevel=1))
            return self._gzip[1]

    def health(self) -> tuple[bool, str]:
        """/healthz: a fresh collection that read at least one GPU series."""
        if not self.body:
            return False, "no collection finished yet"
        if time.time() - self.last_ok >= 3 * self.interval_s + 5:
            return False, "collection is stale"
        if not any(ent.values.keys() - {"xid-errors"} for snap in self.snapshots for ent in snap.entities):
            lost = sum(len(snap.lost) for snap in self.snapshots)
            return False, f"no GPU series can be read ({lost} GPUs lost)" if lost else "no GPU series can be read"
        return True, "ok"

    def healthy(self) -> bool:
        return self.health()[0]

    def start(self) -> None:
        self.collect_once()
        self._thread = threading.Thread(target=self._loop, name="aiinfra-collect", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.collect_once()
            except Exception:  # noqa: BLE001 - keep serving the last good body; /healthz turns stale
                self.host_failures += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for src in self.sources:
            src.collector.close()


# ---------------------------------------------------------------- HTTP (telemetry.httpd, telemetry.webconfig)


def serve(exporter: Exporter, host: str = "127.0.0.1", port: int = 9400, web: WebConfig | None = None, **limits: Any) -> Server:
    """Bind and start serving `exporter` in a daemon thread; returns the server (call .shutdown() to stop)."""
    return httpd.serve(exporter, host, port, web, **limits)


# ---------------------------------------------------------------- wiring for the CLI


def local_hostname() -> str:
    """dcgm-exporter's rule: NODE_NAME if set (Kubernetes), else the OS hostname."""
    return os.environ.get("NODE_NAME") or socket.gethostname()


BACKENDS = ("auto", "dcgm", "nvml")


def build_sources(simulate: str | None, hostname: str | None, cfg: ExporterConfig, backend: str = "auto", interval_s: float = 5.0) -> list[Source]:
    """One Source per host: the simulated fleet's hosts, or this machine, through DCGM or NVML.

    `auto` uses DCGM when its bindings load and the host engine starts (profiling fields on every
    generation and per MIG instance), else NVML. A simulated host has DCGM only with `--backend dcgm`."""
    if backend not in BACKENDS:
        raise AiinfraError(f"unknown --backend '{backend}'; choose one of: {', '.join(BACKENDS)}")
    windows = {"xid_window_s": cfg.xid_window_ms / 1000.0, "clock_events_window_s": cfg.clock_events_window_ms / 1000.0}
    if simulate is not None:
        from aiinfra.telemetry.simulate import fleet_from_spec

        fleet = fleet_from_spec(simulate)
        names = [h.name for h in fleet.hosts]
        if hostname and len(names) == 1:
            names = [hostname]
        if backend == "dcgm":
            from aiinfra.telemetry.dcgm import DcgmCollector
            from aiinfra.telemetry.simdcgm import sim_bindings

            return [Source(n, DcgmCollector(sim_bindings(h), host=n, update_s=min(interval_s, 1.0), **windows)) for n, h in zip(names, fleet.hosts, strict=True)]
        return [Source(n, Collector(lib=h, host=n, **windows)) for n, h in zip(names, fleet.hosts, strict=True)]
    name = hostname or local_hostname()
    if backend in ("dcgm", "auto"):
        from aiinfra.telemetry.dcgm import DcgmCollector

        try:
            return [Source(name, DcgmCollector(host=name, update_s=min(interval_s, 1.0), **windows))]
        except AiinfraError:
            if backend == "dcgm":
                raise
    return [Source(name, Collector(host=name, **windows))]


def start(
    sources: list[Source],
    cfg: ExporterConfig,
    host: str = "127.0.0.1",
    port: int = 9400,
    interval_s: float = 5.0,
    web: WebConfig | None = None,
    single_port: bool = False,
    **limits: Any,
) -> list[tuple[Exporter, Server]]:
    """Start exporters: one port per host (port, port+1, …) like one dcgm-exporter per node, or all
    hosts on one port with `single_port` (series told apart by the hostname label)."""
    _xid_texts()  # a malformed --catalog XID table is refused here, not on every scrape once the ports are open
    groups = [sources] if single_port else [[s] for s in sources]
    running: list[tuple[Exporter, Server]] = []
    try:
        for n, group in enumerate(groups):
            exp = Exporter(group, cfg, interval_s)
            server = serve(exp, host, port + n if port else 0, web, **limits)
            exp.start()
            running.append((exp, server))
    except BaseException:
        for exp, server in running:
            server.shutdown()
            server.server_close()
            exp.stop()
        raise
    return running

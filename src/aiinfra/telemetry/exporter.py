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

import base64
import binascii
import errno
import gzip
import hashlib
import math
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import bcrypt
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from aiinfra.catalog.loader import default_catalog, read_yaml
from aiinfra.errors import AiinfraError
from aiinfra.telemetry.fields import NAMINGS, ExportRow, default_rows
from aiinfra.telemetry.nvml import Collector, Identity, Snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HOSTNAME_LABELS = ("Hostname", "hostname", "")


@dataclass(frozen=True)
class ExporterConfig:
    naming: str = "legacy"
    counters: str = "default"  # dcgm-exporter's default-counters.csv, or "all" rows we collect
    hostname_label: str = "Hostname"  # "hostname" as in dcgm-exporter >= 4.6.0-4.8.3; "" = no label
    xid_window_ms: int = 300_000
    clock_events_window_ms: int = 300_000
    rows: tuple[ExportRow, ...] | None = None  # from a dcgm-exporter collectors CSV; None = the catalog table
    attribution: Any = None  # telemetry.attribution.Attribution: pod/job labels, their health, per-process families

    def table(self) -> list[ExportRow]:
        return list(self.rows) if self.rows else default_rows(self.naming, self.counters)

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
        super().__init__(name, documentation, typ)
        # Metric() strips `_total` from counter names (OpenMetrics habit); dcgm names are kept whole.
        self.name = name
        self.is_int = is_int

    def add(self, labels: dict[str, str], value: float) -> None:
        self.samples.append(Sample(self.name, labels, value, None, None))


def _xid_texts() -> dict[int, str]:
    return {int(e["code"]): str(e["err_msg"]) for e in default_catalog().table("xid").values()}


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
            # `label` rows become labels on every series, sorted by name (render_metrics.go).
            static = {r.name: snap.driver_version for r in label_rows if r.field.key == "driver-version"}
            for ent in snap.entities:
                labels = {**_base_labels(ent.identity, snap.host, cfg), **static}
                for owner in cfg.attribution.labels_for(snap.host, ent.identity) if cfg.attribution else ({},):
                    _add_field(fam, row, ent, {**labels, **owner}, cfg, xid_text)
        out.append(fam)
    out.extend(self_metrics(snapshots, cfg))
    if cfg.attribution:
        out.extend(cfg.attribution.families(snapshots, cfg))
    return out


def _add_field(fam: DcgmFamily, row: ExportRow, ent: Any, labels: dict[str, str], cfg: ExporterConfig, xid_text: dict[int, str]) -> None:
    f = row.field
    if f.key == "exp-xid-errors-count":
        window = {"window_size_in_ms": str(cfg.xid_window_ms)}
        if not ent.xid_counts:  # dcgm-exporter: one 0 sample without an xid label
            fam.add({**labels, **window}, 0)
        for code, n in sorted(ent.xid_counts.items()):
            fam.add({**labels, **window, "xid": str(code)}, n)
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
    return [duration, last, passes, lost_n, errors, lost]


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
        name, typ = m.name, m.type
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

    def gzipped(self) -> bytes:
        """The cached body, gzip-compressed once per collection (Prometheus asks for gzip)."""
        body = self.body
        with self._gzip_lock:
            if self._gzip[0] is not body:
                self._gzip = (body, gzip.compress(body, compresslevel=1))
            return self._gzip[1]

    def healthy(self) -> bool:
        return bool(self.body) and time.time() - self.last_ok < 3 * self.interval_s + 5

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


# ---------------------------------------------------------------- web config (TLS + basic auth)


@dataclass
class WebConfig:
    """The exporter-toolkit web-config subset we honour: tls_server_config and basic_auth_users."""

    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None
    users: dict[str, bytes] = field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.cert_file is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # exporter-toolkit's default min_version
        try:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file))
            if self.client_ca_file is not None:
                ctx.load_verify_locations(str(self.client_ca_file))
                ctx.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as e:
            raise AiinfraError(f"cannot load TLS certificate {self.cert_file} / key {self.key_file}: {getattr(e, 'strerror', None) or e}") from None
        return ctx


def load_web_config(path: str | Path) -> WebConfig:
    """Read a web-config YAML; any problem is one sentence naming the file."""
    path = Path(path)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise AiinfraError(f"cannot read web config {path}: no such readable file")
    doc = read_yaml(path) or {}
    if not isinstance(doc, dict):
        raise AiinfraError(f"web config {path} must be a mapping with tls_server_config and/or basic_auth_users")
    unknown = set(doc) - {"tls_server_config", "basic_auth_users", "http_server_config"}
    if unknown:
        raise AiinfraError(f"web config {path} has unknown key '{min(unknown)}'; known: tls_server_config, basic_auth_users")
    cfg = WebConfig()
    tls = doc.get("tls_server_config")
    if tls is not None:
        if not isinstance(tls, dict) or not tls.get("cert_file") or not tls.get("key_file"):
            raise AiinfraError(f"web config {path}: tls_server_config needs cert_file and key_file")
        base = path.parent
        cfg.cert_file = base / str(tls["cert_file"])
        cfg.key_file = base / str(tls["key_file"])
        if tls.get("client_ca_file"):
            cfg.client_ca_file = base / str(tls["client_ca_file"])
    users = doc.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise AiinfraError(f"web config {path}: basic_auth_users must map user names to bcrypt hashes")
    for user, hashed in users.items():
        h = str(hashed).encode()
        if not h.startswith((b"$2a$", b"$2b$", b"$2y$")):
            raise AiinfraError(f"web config {path}: the password of user '{user}' is not a bcrypt hash ($2y$…); generate one with htpasswd -nBC 10")
        cfg.users[str(user)] = h
    cfg.ssl_context()  # fail now, at start-up, if the certificate does not load
    return cfg


class _Auth:
    """Basic auth against bcrypt hashes, with a cache so repeated scrapes do not pay bcrypt each time."""

    _DUMMY = bcrypt.hashpw(b"x", bcrypt.gensalt(rounds=4))

    def __init__(self, users: dict[str, bytes]):
        self.users = users
        self._ok: dict[tuple[str, bytes], bool] = {}
        self._lock = threading.Lock()

    def check(self, header: str | None) -> bool:
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        key = (user, hashlib.sha256(password.encode()).digest())
        with self._lock:
            if key in self._ok:
                return self._ok[key]
        hashed = self.users.get(user)
        ok = bcrypt.checkpw(password.encode(), hashed or self._DUMMY) and hashed is not None
        with self._lock:
            if len(self._ok) > 1024:
                self._ok.clear()
            self._ok[key] = ok
        return ok


# ---------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # 100+ scrapers connect at once; the stdlib default backlog is 5
    allow_reuse_address = True
    exporter: Exporter
    auth: _Auth
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:
            # Handshake lazily in the handler thread, so one slow client cannot block accept().
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection gives its thread back after a minute

    def log_message(self, format: str, *args: Any) -> None:
        return  # scrapes are not news; errors surface through aiinfra_ metrics

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8", extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        if not self.server.auth.check(self.headers.get("Authorization")):
            self._send(401, b"Unauthorized\n", extra={"WWW-Authenticate": 'Basic realm="aiinfra exporter"'})
            return
        path = self.path.split("?", 1)[0]
        exp = self.server.exporter
        if path == "/metrics":
            if exp.body and "gzip" in (self.headers.get("Accept-Encoding") or ""):
                self._send(200, exp.gzipped(), CONTENT_TYPE, {"Content-Encoding": "gzip"})
            elif exp.body:
                self._send(200, exp.body, CONTENT_TYPE)
            else:
                self._send(503, b"no collection finished yet\n")
        elif path == "/healthz":
            if exp.healthy():
                self._send(200, b"ok\n")
            else:
                self._send(503, b"collection is stale\n")
        elif path == "/":
            self._send(200, b'<html><body><h1>aiinfra exporter</h1><a href="/metrics">Metrics</a></body></html>\n', "text/html; charset=utf-8")
        else:
            self._send(404, b"not found\n")

    do_HEAD = do_GET


def serve(exporter: Exporter, host: str = "127.0.0.1", port: int = 9400, web: WebConfig | None = None) -> _Server:
    """Bind and start serving in a daemon thread; returns the server (call .shutdown() to stop)."""
    web = web or WebConfig()
    try:
        server = _Server((host, port), _Handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise AiinfraError(f"port {port} on {host} is already in use; stop the other process or pick another --port") from None
        raise AiinfraError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    server.exporter = exporter
    server.auth = _Auth(web.users)
    server.tls = web.ssl_context()
    threading.Thread(target=server.serve_forever, name=f"aiinfra-http-{port}", daemon=True).start()
    return server


# ---------------------------------------------------------------- wiring for the CLI


def local_hostname() -> str:
    """dcgm-exporter's rule: NODE_NAME if set (Kubernetes), else the OS hostname."""
    return os.environ.get("NODE_NAME") or socket.gethostname()


def build_sources(simulate: str | None, hostname: str | None, cfg: ExporterConfig) -> list[Source]:
    """One Source per host: the simulated fleet's hosts, or this machine through real NVML."""
    window_s = cfg.xid_window_ms / 1000.0
    events_s = cfg.clock_events_window_ms / 1000.0
    if simulate is not None:
        from aiinfra.telemetry.simulate import fleet_from_spec

        fleet = fleet_from_spec(simulate)
        names = [h.name for h in fleet.hosts]
        if hostname and len(names) == 1:
            names = [hostname]
        return [Source(n, Collector(lib=h, host=n, xid_window_s=window_s, clock_events_window_s=events_s)) for n, h in zip(names, fleet.hosts, strict=True)]
    name = hostname or local_hostname()
    return [Source(name, Collector(host=name, xid_window_s=window_s, clock_events_window_s=events_s))]


def start(
    sources: list[Source],
    cfg: ExporterConfig,
    host: str = "127.0.0.1",
    port: int = 9400,
    interval_s: float = 5.0,
    web: WebConfig | None = None,
    single_port: bool = False,
) -> list[tuple[Exporter, _Server]]:
    """Start exporters: one port per host (port, port+1, …) like one dcgm-exporter per node, or all
    hosts on one port with `single_port` (series told apart by the hostname label)."""
    groups = [sources] if single_port else [[s] for s in sources]
    running: list[tuple[Exporter, _Server]] = []
    try:
        for n, group in enumerate(groups):
            exp = Exporter(group, cfg, interval_s)
            server = serve(exp, host, port + n if port else 0, web)
            exp.start()
            running.append((exp, server))
    except BaseException:
        for exp, server in running:
            server.shutdown()
            server.server_close()
            exp.stop()
        raise
    return running

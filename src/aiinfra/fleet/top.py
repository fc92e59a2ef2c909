"""`aiinfra top`: a per-GPU screen in the style of nvitop, from NVML, an exporter, a Prometheus or a simulation.

Every source becomes the same `Frame`: a header (host, driver, CUDA), one `Row` per GPU or MIG
instance, and the processes (or pods) on them.
- a Prometheus URL → a handful of instant PromQL queries (the fleet stays in Prometheus);
- an exporter URL → one GET of /metrics, parsed with prometheus_client's parser;
- local NVML or `--simulate` → the telemetry collector renders the exposition in-process, parsed the
  same way, and its snapshots add the driver, CUDA version and per-process memory.

Lost GPUs never vanish from the screen: a GPU that the exporter reports lost (`aiinfra_gpu_lost`),
that shows XID 79, or (Prometheus) that reported during the last `lost_window_s` but not now, is a
row of its own with when it was last seen. Hot, throttled and failing GPUs are highlighted.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.table import Table
from rich.text import Text

from aiinfra.errors import AiinfraError
from aiinfra.fleet.prom import Prometheus
from aiinfra.fleet.promql import ALIASES, CLOCK_BITS, POWER_BITS, THERMAL_BITS, MiB

_BY_NAME = {name: (q, f) for q, names in ALIASES.items() for name, f in names}
WANTED = ("gr_active", "gpu_util", "fb_used", "fb_free", "power", "power_limit", "temp", "slowdown_temp", "temp_margin",
          "xid_last", "clock_reasons")
HOT_MARGIN_C = 5.0  # "hot": within this of the GPU's own slowdown temperature (as the alert rule)
HOT_DEFAULT_C = 85.0  # when the exporter sends no slowdown temperature: NVIDIA datacenter GPUs slow down near 87-90 °C
LOST_XID = 79


def _failing_codes() -> frozenset[int]:
    """XID codes the catalog marks critical: the GPU needs a reset, a reboot or an RMA."""
    global _FAILING
    if _FAILING is None:
        from aiinfra.catalog.xid import xid_catalog

        # without an XID table only "fallen off the bus" is known to fail; a malformed table is an error
        _FAILING = frozenset(c for c, x in xid_catalog(required=False).items() if x.fatal) or frozenset({LOST_XID})
    return _FAILING


_FAILING: frozenset[int] | None = None


@dataclass
class Row:
    host: str
    gpu: str
    mig: str = ""  # "3g.40gb/1" for a MIG instance
    model: str = ""
    pod: str = ""
    uuid: str = ""
    values: dict[str, float] = field(default_factory=dict)
    lost: bool = False
    last_seen: float | None = None  # Unix time of the last sample, for a lost GPU

    @property
    def busy(self) -> float | None:
        return self.values.get("gr_active", self.values.get("gpu_util"))

    @property
    def fb_ratio(self) -> float | None:
        u, f = self.values.get("fb_used"), self.values.get("fb_free")
        return None if u is None or f is None or u + f <= 0 else u / (u + f)

    @property
    def hot(self) -> bool:
        t = self.values.get("temp")
        if t is None:
            return False
        if "temp_margin" in self.values:
            return self.values["temp_margin"] < HOT_MARGIN_C
        limit = self.values.get("slowdown_temp")
        return t >= (limit - HOT_MARGIN_C if limit else HOT_DEFAULT_C)

    @property
    def throttle_reasons(self) -> list[str]:
        bits = int(self.values.get("clock_reasons", 0))
        return [name for name in THERMAL_BITS + POWER_BITS if bits & CLOCK_BITS[name]]

    @property
    def xid(self) -> int:
        return int(self.values.get("xid_last", 0))

    @property
    def failing(self) -> bool:
        return self.xid in _failing_codes()

    def status(self, now: float) -> str:
        if self.lost:
            ago = "" if self.last_seen is None else f" {_ago(now - self.last_seen)}"
            return f"LOST{ago}"
        flags = []
        if self.failing:
            flags.append(f"XID{self.xid}")
        elif self.xid:
            flags.append(f"xid{self.xid}")
        if self.hot:
            flags.append("HOT")
        if self.throttle_reasons:
            flags.append("THR")
        return " ".join(flags)


@dataclass
class Proc:
    host: str
    gpu: str
    pid: int | None
    mig: str = ""
    user: str = ""
    memory_bytes: float | None = None
    busy: float | None = None  # the engine activity of its GPU/instance when it is the only process there
    command: str = ""  # or the pod, where only pod labels are known


@dataclass
class Frame:
    source: str
    rows: list[Row]
    procs: list[Proc] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    driver: str = ""
    cuda: str = ""
    time: float = field(default_factory=time.time)


def _ago(s: float) -> str:
    s = max(0.0, s)
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.0f}m" if s < 7200 else f"{s / 3600:.0f}h"


def _host(labels: dict[str, str]) -> str:
    return labels.get("Hostname") or labels.get("hostname") or labels.get("instance", "").split(":")[0] or "?"


def _pod(labels: dict[str, str], renamed: bool) -> str:
    """The workload pod. When the scrape renamed pod labels (honorLabels: false), plain `pod` is the exporter's own."""
    if renamed:
        return labels.get("exported_pod", "")
    return labels.get("pod") or labels.get("pod_name", "")


def _sort(rows: dict[tuple[str, str, str], Row]) -> list[Row]:
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], int(k[1]) if k[1].isdigit() else 0, k[2]))]


def _mig(lab: dict[str, str]) -> str:
    return f"{lab['GPU_I_PROFILE']}/{lab.get('GPU_I_ID', '')}" if lab.get("GPU_I_PROFILE") else ""


def _mark_lost(rows: dict[tuple[str, str, str], Row], host: str, gpu: str, uuid: str = "", last_seen: float | None = None) -> None:
    """A lost physical GPU: its instance rows (if still listed) or one row of its own."""
    mine = [r for k, r in rows.items() if k[0] == host and k[1] == gpu]
    if not mine:
        mine = [rows.setdefault((host, gpu, ""), Row(host, gpu, uuid=uuid))]
    for r in mine:
        r.lost = True
        if last_seen is not None:
            r.last_seen = last_seen if r.last_seen is None else max(r.last_seen, last_seen)


def _pod_procs(rows: list[Row]) -> list[Proc]:
    """Where an exporter knows pods but not processes (dcgm-exporter), the pod is the workload line."""
    return [Proc(r.host, r.gpu, None, r.mig, command=f"pod {r.pod}", busy=r.busy) for r in rows if r.pod and not r.lost]


def rows_from_exposition(text: str) -> list[Row]:
    """Rows from Prometheus text exposition (dcgm-exporter or aiinfra exporter output)."""
    return frame_from_exposition(text, "").rows


def frame_from_exposition(text: str, source: str) -> Frame:
    rows: dict[tuple[str, str, str], Row] = {}
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as e:
        raise AiinfraError(f"the exporter's /metrics does not parse: {str(e).splitlines()[0]}") from None
    renamed = any("exported_pod" in s.labels for fam in families for s in fam.samples)
    lost: list[tuple[str, str, str]] = []
    drivers: set[str] = set()
    for fam in families:
        for s in fam.samples:
            lab = s.labels
            if s.name == "aiinfra_gpu_lost":
                if s.value > 0:
                    lost.append((_host(lab), lab.get("gpu", "?"), lab.get("UUID", lab.get("uuid", ""))))
                continue
            hit = _BY_NAME.get(s.name) or _BY_NAME.get(fam.name)
            if not hit or hit[0] not in WANTED:
                continue
            q, factor = hit
            drivers.add(lab.get("DCGM_FI_DRIVER_VERSION") or lab.get("DCGM_FI_SYSTEM_DRIVER_VERSION") or "")
            key = (_host(lab), lab.get("gpu", "?"), _mig(lab))
            row = rows.setdefault(key, Row(key[0], key[1], key[2], lab.get("modelName", ""), _pod(lab, renamed),
                                           lab.get("UUID", lab.get("uuid", ""))))
            if q == "xid_last":
                row.values[q] = max(row.values.get(q, 0.0), s.value)
            else:
                row.values[q] = s.value * factor
    for host, gpu, uuid in lost:
        _mark_lost(rows, host, gpu, uuid)
    for r in rows.values():
        if r.xid == LOST_XID:
            r.lost = True
    out = _sort(rows)
    return Frame(source, out, _pod_procs(out), sorted({r.host for r in out}), ", ".join(sorted(d for d in drivers if d)))


def rows_from_prometheus(prom: Prometheus) -> list[Row]:
    return frame_from_prometheus(prom, prom.url).rows


def frame_from_prometheus(prom: Prometheus, source: str, lost_window_s: float = 3600.0) -> Frame:
    """Rows from instant queries; GPUs that reported within `lost_window_s` but not now are lost rows."""
    now = time.time()
    rows: dict[tuple[str, str, str], Row] = {}
    names = set(prom.label_values("__name__", match=['{__name__=~"DCGM_.*|dcgm_.*|aiinfra_gpu_lost"}'], start=now - lost_window_s))
    answers = []
    for q in WANTED:
        parts = [f"({n}) * {f:.10g}" if f != 1.0 else f"({n})" for n, f in ALIASES[q] if n in names]
        if parts:
            answers.append((q, prom.query(" or ".join(parts), now)))
    renamed = any("exported_pod" in s.labels for _, samples in answers for s in samples)
    drivers: set[str] = set()
    for q, samples in answers:
        for s in samples:
            lab = s.labels
            drivers.add(lab.get("DCGM_FI_DRIVER_VERSION") or lab.get("DCGM_FI_SYSTEM_DRIVER_VERSION") or "")
            key = (_host(lab), lab.get("gpu", "?"), _mig(lab))
            row = rows.setdefault(key, Row(key[0], key[1], key[2], lab.get("modelName", ""), _pod(lab, renamed),
                                           lab.get("UUID", lab.get("uuid", ""))))
            row.values[q] = max(row.values.get(q, s.value), s.value) if q == "xid_last" else s.value
    # Who reported during the window but not now: the series index (no samples read) lists who was
    # there; only the missing GPUs' raw samples are asked for their last timestamp.
    temp = [n for n, _ in ALIASES["temp"] if n in names] or [n for n, _ in ALIASES["fb_used"] if n in names]
    if temp:
        family = "temp" if temp[0] in {n for n, _ in ALIASES["temp"]} else "fb_used"
        present = {(r.host, r.gpu) for r in rows.values() if family in r.values}  # same family as the index check
        missing: dict[tuple[str, str], dict[str, str]] = {}
        for lab in prom.series(temp, now - lost_window_s, now):
            k = (_host(lab), lab.get("gpu", "?"))
            if k not in present:
                missing.setdefault(k, lab)
        uuids = sorted({lab.get("UUID") or lab.get("uuid", "") for lab in missing.values()} - {""})
        for k, lab in missing.items():
            _mark_lost(rows, k[0], k[1], lab.get("UUID", lab.get("uuid", "")))
            for r in rows.values():
                if (r.host, r.gpu) == k:
                    r.model = r.model or lab.get("modelName", "")
        if uuids:
            # Raw samples, not a subquery: a subquery steps past the staleness marker a scrape puts
            # after a vanished series and would find nothing.
            regex = "|".join(re.escape(u) for u in uuids).replace("\\", "\\\\")
            for n in temp:
                for label in ("UUID", "uuid"):
                    for ser in prom.raw(f'{n}{{{label}=~"{regex}"}}', f"{int(lost_window_s)}s", now):
                        if ser.times:
                            _mark_lost(rows, _host(ser.labels), ser.labels.get("gpu", "?"), last_seen=max(ser.times))
    if "aiinfra_gpu_lost" in names:
        for s in prom.query("max by (instance, gpu, UUID, uuid, Hostname, hostname) (aiinfra_gpu_lost) > 0", now):
            _mark_lost(rows, _host(s.labels), s.labels.get("gpu", "?"), s.labels.get("UUID", ""))
    for r in rows.values():
        if r.xid == LOST_XID:
            r.lost = True
    out = _sort(rows)
    return Frame(source, out, _pod_procs(out), sorted({r.host for r in out}), ", ".join(sorted(d for d in drivers if d)), time=now)


class _Sightings:
    """When each GPU was last on screen, so a GPU that goes lost while `top` runs says since when."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], float] = {}

    def __call__(self, f: Frame) -> Frame:
        for r in f.rows:
            if r.lost:
                if r.last_seen is None and (r.host, r.gpu) in self.seen:
                    r.last_seen = self.seen[(r.host, r.gpu)]
            else:
                self.seen[(r.host, r.gpu)] = f.time
        return f


def exporter_source(url: str, timeout: float = 5.0) -> Callable[[], Frame]:
    url = url.rstrip("/")
    sightings = _Sightings()
    if not url.endswith("/metrics"):
        url += "/metrics"

    def read() -> Frame:
        try:
            resp = httpx.get(url, timeout=timeout)
        except httpx.HTTPError as e:
            raise AiinfraError(f"cannot reach the exporter at {url}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        if resp.status_code != 200:
            raise AiinfraError(f"the exporter at {url} answered HTTP {resp.status_code}")
        return sightings(frame_from_exposition(resp.text, url))

    return read


def prometheus_source(url: str, timeout: float = 10.0) -> Callable[[], Frame]:
    prom = Prometheus(url, timeout=timeout)
    return lambda: frame_from_prometheus(prom, url)


def _user_and_command(pid: int) -> tuple[str, str]:
    """Owner and command line of a local process (/proc), as nvitop shows them."""
    import pwd

    try:
        uid = os.stat(f"/proc/{pid}").st_uid
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?", ""
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return user, cmd


def _process_utilization(exp) -> dict[tuple[str, int, int], float]:
    """(host, GPU index, pid) → SM utilization 0-1 from nvmlDeviceGetProcessUtilization, where the
    NVML library offers it (the simulated fleet does not: callers fall back)."""
    out: dict[tuple[str, int, int], float] = {}
    for src in getattr(exp, "sources", []):
        col = src.collector
        fn = getattr(getattr(col, "nv", None), "nvmlDeviceGetProcessUtilization", None)
        if fn is None:
            continue
        for i, h in enumerate(getattr(col, "handles", [])):
            if h is None:
                continue
            try:
                samples = fn(h, int((time.time() - 5) * 1e6))  # samples of the last few seconds (µs timestamps)
            except Exception:  # noqa: BLE001 - not supported, no samples yet, or a lost GPU: unknown
                continue
            for smp in samples or []:
                out[(src.host, i, int(smp.pid))] = max(out.get((src.host, i, int(smp.pid)), 0.0), float(smp.smUtil) / 100.0)
    return out


def _cuda(v: int | None) -> str:
    return "" if not v or v < 0 else f"{v // 1000}.{(v % 1000) // 10}"


def collector_source(simulate: str | None) -> Callable[[], Frame]:
    """Local NVML (simulate=None) or a simulated fleet, through the telemetry collector and renderer."""
    try:
        from aiinfra.telemetry import exporter as tx
    except ImportError:  # pragma: no cover - the collector ships with the telemetry package
        raise AiinfraError("the NVML collector (aiinfra.telemetry.exporter) is not installed in this build") from None
    cfg = tx.ExporterConfig()
    exp = tx.Exporter(tx.build_sources(simulate, None, cfg), cfg, 1.0)
    name = f"simulated {simulate}" if simulate else "local NVML"
    sightings = _Sightings()

    def read() -> Frame:
        exp.collect_once()
        frame = frame_from_exposition(exp.body.decode(), name)
        by_key = {(r.host, r.gpu, r.mig): r for r in frame.rows}
        procs: list[Proc] = []
        drivers, cudas = set(), set()
        per_pid = _process_utilization(exp)
        for snap in exp.snapshots:
            drivers.add(snap.driver_version or "")
            cudas.add(_cuda(snap.cuda_version))
            for st in snap.gpus:
                if st.lost:
                    _mark_lost(by_key, snap.host, str(st.index), st.uuid)
                on_gi: dict[int | None, int] = {}
                for p in st.processes:
                    on_gi[p.gi_id] = on_gi.get(p.gi_id, 0) + 1
                for p in st.processes:
                    mig = next((r.mig for k, r in by_key.items() if k[:2] == (snap.host, str(st.index)) and r.mig.endswith(f"/{p.gi_id}")), "")
                    row = by_key.get((snap.host, str(st.index), mig))
                    user, cmd = ("(simulated)", "") if simulate else _user_and_command(p.pid)
                    # NVML's per-process SM share where the driver gives it; else the GPU's (or MIG
                    # instance's) activity when this is its only process; else unknown.
                    busy = per_pid.get((snap.host, st.index, p.pid))
                    if busy is None and row is not None and on_gi[p.gi_id] == 1:
                        busy = row.busy
                    procs.append(Proc(snap.host, str(st.index), p.pid, mig, user, p.used_bytes, busy, cmd))
        frame.rows = _sort(by_key)
        frame.procs = procs
        frame.driver = ", ".join(sorted(d for d in drivers if d)) or frame.driver
        frame.cuda = ", ".join(sorted(c for c in cudas if c))
        return sightings(frame)

    return read


# -- rendering ----------------------------------------------------------------------------------

WIDTH = 80


def _bar(ratio: float | None, width: int) -> Text:
    if ratio is None:
        return Text("n/a".ljust(width + 5), style="dim")
    r = min(1.0, max(0.0, ratio))
    full = int(round(r * width))
    style = "green" if r < 0.5 else "yellow" if r < 0.8 else "red"
    return Text("█" * full + "░" * (width - full), style=style) + Text(f"{100 * r:4.0f}%")


def _gib(b: float | None) -> str:
    return "–" if b is None else f"{b / MiB / 1024:.1f}G"


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def header(f: Frame) -> Text:
    hosts = ", ".join(f.hosts[:3]) + (f" +{len(f.hosts) - 3}" if len(f.hosts) > 3 else "")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(f.time))
    t = Text()
    t.append("aiinfra top", style="bold")
    t.append(f"  {_clip(hosts or '-', 30)}  {when}\n")
    t.append(f"Driver {f.driver or '–'}  CUDA {f.cuda or '–'}  ", style="cyan")
    t.append(_clip(f.source, WIDTH - 30), style="dim")
    return t


def summary(f: Frame) -> Text:
    rows = f.rows
    lost = sum(r.lost for r in rows)
    hot = sum(r.hot and not r.lost for r in rows)
    thr = sum(bool(r.throttle_reasons) and not r.lost for r in rows)
    bad = sum(r.failing and not r.lost for r in rows)
    t = Text(f"{len(rows)} GPUs/instances")
    for n, label, style in ((lost, "lost", "bold white on red"), (bad, "failing", "bold red"), (hot, "hot", "red"),
                            (thr, "throttled", "yellow")):
        t.append("  ")
        t.append(f"{n} {label}", style=style if n else "dim")
    return t


def gpu_table(f: Frame, limit: int) -> Table:
    t = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), show_edge=False, header_style="bold")
    for name, width, justify in (("GPU", 15, "left"), ("MIG", 9, "left"), ("Temp", 4, "right"), ("Power", 9, "right"),
                                 ("Memory", 17, "left"), ("Util", 10, "left"), ("", 8, "left")):
        t.add_column(name, width=width, max_width=width, no_wrap=True, overflow="ellipsis", justify=justify)  # type: ignore[arg-type]
    for r in f.rows[:limit]:
        temp = f"{r.values['temp']:.0f}C" if "temp" in r.values else "–"
        power = "–" if "power" not in r.values else (f"{r.values['power']:.0f}/{r.values['power_limit']:.0f}W"
                                                       if "power_limit" in r.values else f"{r.values['power']:.0f}W")
        mem = _bar(r.fb_ratio, 6) + Text(f" {_gib(r.values.get('fb_used'))}")
        style = ("bold white on red" if r.lost else "bold red" if r.failing else "red" if r.hot
                 else "yellow" if r.throttle_reasons else "")
        name = _clip(f"{r.host}:{r.gpu}" if len(f.hosts) > 1 or not r.host else f"{r.gpu} {r.model.replace('NVIDIA ', '')}", 15)
        if r.lost:
            t.add_row(name, r.mig, "–", "–", Text(_clip(r.uuid or "–", 17)), Text("no data"), r.status(f.time), style=style)
        else:
            t.add_row(name, r.mig, temp, power, mem, _bar(r.busy, 5), r.status(f.time), style=style)
    return t


def process_table(f: Frame, limit: int) -> Table:
    t = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), show_edge=False, header_style="bold")
    for name, width, justify in (("GPU", 18, "left"), ("PID", 7, "right"), ("USER", 11, "left"), ("GPU-MEM", 7, "right"),
                                 ("SM", 4, "right"), ("COMMAND", 27, "left")):
        t.add_column(name, width=width, max_width=width, no_wrap=True, overflow="ellipsis", justify=justify)  # type: ignore[arg-type]
    for p in f.procs[:limit]:
        where = f"{p.host}:{p.gpu}" if len(f.hosts) > 1 else p.gpu
        t.add_row(_clip(where + (f" gi{p.mig.rsplit('/', 1)[-1]}" if p.mig else ""), 18), "–" if p.pid is None else str(p.pid), p.user or "–",
                  "n/a" if p.memory_bytes is None else _gib(p.memory_bytes),
                  "–" if p.busy is None else f"{100 * p.busy:.0f}%", p.command or "–")
    if not f.procs:
        t.add_row("no processes", "", "", "", "", "")
    return t


def render(frame: Frame | list[Row], source: str = "", limit: int = 64, procs: int = 16) -> Group:
    """One screen: header, summary, GPU rows with bars, processes. Fits 80 columns."""
    f = frame if isinstance(frame, Frame) else Frame(source, frame, _pod_procs(frame), sorted({r.host for r in frame}))
    parts: list = [header(f), summary(f), gpu_table(f, limit)]
    if len(f.rows) > limit:
        parts.append(Text(f"… {len(f.rows) - limit} more (--limit)", style="dim"))
    if not f.rows:
        parts.append(Text("no GPU series from this source", style="bold yellow"))
    parts += [Text("Processes", style="bold"), process_table(f, procs)]
    if len(f.procs) > procs:
        parts.append(Text(f"… {len(f.procs) - procs} more processes", style="dim"))
    return Group(*parts)

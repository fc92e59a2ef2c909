"""`aiinfra top`: a live per-GPU view in the style of nvitop, from NVML, an exporter, a Prometheus or a simulation.

Every source becomes the same `Row` list:
- a Prometheus URL → a handful of instant PromQL queries (the fleet stays in Prometheus);
- an exporter URL → one GET of /metrics, parsed with prometheus_client's parser;
- local NVML or `--simulate` → the telemetry collector renders the exposition in-process, parsed the same way.

Metric spellings of every naming generation are recognised through the shared alias table, and
MIG instances are rows of their own (busy from PROF engine activity, as GPU_UTIL is absent there).
"""

from __future__ import annotations

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
from aiinfra.fleet.promql import ALIASES, MiB

_BY_NAME = {name: (q, f) for q, names in ALIASES.items() for name, f in names}
WANTED = ("gr_active", "gpu_util", "fb_used", "fb_free", "power", "temp", "xid_last")


@dataclass
class Row:
    host: str
    gpu: str
    mig: str = ""  # "3g.40gb/1" for a MIG instance
    model: str = ""
    pod: str = ""
    values: dict[str, float] = field(default_factory=dict)

    @property
    def busy(self) -> float | None:
        return self.values.get("gr_active", self.values.get("gpu_util"))

    @property
    def fb_ratio(self) -> float | None:
        u, f = self.values.get("fb_used"), self.values.get("fb_free")
        return None if u is None or f is None or u + f <= 0 else u / (u + f)


def _host(labels: dict[str, str]) -> str:
    return labels.get("Hostname") or labels.get("hostname") or labels.get("instance", "").split(":")[0] or "?"


def _pod(labels: dict[str, str], renamed: bool) -> str:
    """The workload pod. When the scrape renamed pod labels (honorLabels: false), plain `pod` is the exporter's own."""
    if renamed:
        return labels.get("exported_pod", "")
    return labels.get("pod") or labels.get("pod_name", "")


def rows_from_exposition(text: str) -> list[Row]:
    """Rows from Prometheus text exposition (dcgm-exporter or aiinfra exporter output)."""
    rows: dict[tuple[str, str, str], Row] = {}
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as e:
        raise AiinfraError(f"the exporter's /metrics does not parse: {str(e).splitlines()[0]}") from None
    renamed = any("exported_pod" in s.labels for fam in families for s in fam.samples)
    for fam in families:
        for s in fam.samples:
            hit = _BY_NAME.get(s.name) or _BY_NAME.get(fam.name)
            if not hit or hit[0] not in WANTED:
                continue
            q, factor = hit
            lab = s.labels
            mig = f"{lab['GPU_I_PROFILE']}/{lab.get('GPU_I_ID', '')}" if lab.get("GPU_I_PROFILE") else ""
            key = (_host(lab), lab.get("gpu", "?"), mig)
            row = rows.setdefault(key, Row(key[0], key[1], mig, lab.get("modelName", ""), _pod(lab, renamed)))
            if q == "xid_last":
                row.values[q] = max(row.values.get(q, 0.0), s.value)
            else:
                row.values[q] = s.value * factor
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], int(k[1]) if k[1].isdigit() else 0, k[2]))]


def rows_from_prometheus(prom: Prometheus) -> list[Row]:
    """Rows from instant queries; the same quantities, one query each."""
    rows: dict[tuple[str, str, str], Row] = {}
    names = set(prom.label_values("__name__", match=['{__name__=~"DCGM_.*|dcgm_.*"}'], start=time.time() - 300))
    answers = []
    for q in WANTED:
        parts = [f"({n}) * {f:.10g}" if f != 1.0 else f"({n})" for n, f in ALIASES[q] if n in names]
        if parts:
            answers.append((q, prom.query(" or ".join(parts))))
    renamed = any("exported_pod" in s.labels for _, samples in answers for s in samples)
    for q, samples in answers:
        for s in samples:
            lab = s.labels
            mig = f"{lab['GPU_I_PROFILE']}/{lab.get('GPU_I_ID', '')}" if lab.get("GPU_I_PROFILE") else ""
            key = (_host(lab), lab.get("gpu", "?"), mig)
            row = rows.setdefault(key, Row(key[0], key[1], mig, lab.get("modelName", ""), _pod(lab, renamed)))
            row.values[q] = max(row.values.get(q, s.value), s.value) if q == "xid_last" else s.value
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], int(k[1]) if k[1].isdigit() else 0, k[2]))]


def exporter_source(url: str, timeout: float = 5.0) -> Callable[[], list[Row]]:
    url = url.rstrip("/")
    if not url.endswith("/metrics"):
        url += "/metrics"

    def read() -> list[Row]:
        try:
            resp = httpx.get(url, timeout=timeout)
        except httpx.HTTPError as e:
            raise AiinfraError(f"cannot reach the exporter at {url}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        if resp.status_code != 200:
            raise AiinfraError(f"the exporter at {url} answered HTTP {resp.status_code}")
        return rows_from_exposition(resp.text)

    return read


def prometheus_source(url: str, timeout: float = 10.0) -> Callable[[], list[Row]]:
    prom = Prometheus(url, timeout=timeout)
    return lambda: rows_from_prometheus(prom)


def collector_source(simulate: str | None) -> Callable[[], list[Row]]:
    """Local NVML (simulate=None) or a simulated fleet, through the telemetry collector and renderer."""
    try:
        from aiinfra.telemetry import exporter as tx
    except ImportError:  # pragma: no cover - the collector ships on the telemetry branch
        raise AiinfraError("the NVML collector (aiinfra.telemetry.exporter) is not installed in this build") from None
    cfg = tx.ExporterConfig()
    exp = tx.Exporter(tx.build_sources(simulate, None, cfg), cfg, 1.0)

    def read() -> list[Row]:
        exp.collect_once()
        return rows_from_exposition(exp.body.decode())

    return read


def _bar(ratio: float | None, width: int = 10) -> Text:
    if ratio is None:
        return Text("n/a".ljust(width), style="dim")
    r = min(1.0, max(0.0, ratio))
    full = int(round(r * width))
    style = "green" if r < 0.5 else "yellow" if r < 0.8 else "red"
    return Text("█" * full + "░" * (width - full) + f" {100 * r:5.1f}%", style=style)


def render(rows: list[Row], source: str, limit: int = 64) -> Group:
    t = Table(title=f"aiinfra top: {source}  ({len(rows)} GPUs/instances, {time.strftime('%H:%M:%S')})", expand=False)
    for c, j in (("host", "left"), ("gpu", "right"), ("MIG", "left"), ("busy", "left"), ("memory", "left"), ("used", "right"),
                 ("power", "right"), ("temp", "right"), ("XID", "right"), ("pod", "left")):
        t.add_column(c, justify=j, no_wrap=True)  # type: ignore[arg-type]
    for r in rows[:limit]:
        used = r.values.get("fb_used")
        xid = r.values.get("xid_last", 0.0)
        t.add_row(r.host, r.gpu, r.mig, _bar(r.busy), _bar(r.fb_ratio), "–" if used is None else f"{used / MiB / 1024:.1f} GiB",
                  f"{r.values['power']:.0f} W" if "power" in r.values else "–",
                  f"{r.values['temp']:.0f} °C" if "temp" in r.values else "–",
                  Text(str(int(xid)), style="bold red") if xid else Text("–", style="dim"), r.pod)
    extra = [Text(f"… {len(rows) - limit} more", style="dim")] if len(rows) > limit else []
    if not rows:
        extra.append(Text("no GPU series from this source", style="bold yellow"))
    return Group(t, *extra)

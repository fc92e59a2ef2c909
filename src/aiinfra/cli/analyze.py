"""`aiinfra analyze --prometheus URL --range 24h`: idle, idle-but-held, stranded and lost GPUs, OOM risk, throttling, XIDs, ECC (table rendering; the work is fleet.commands.analyze)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.table import Table

from aiinfra.cli.output import EndOpt, ExplainOpt, Format, FormatOpt, PrometheusOpt, QueryTimeoutOpt, emit
from aiinfra.explain import Result

MAX_ROWS = 20


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def _gpu(row: dict) -> str:
    s = f"{row.get('host', '?')}/gpu{row.get('gpu', '?')}"
    if row.get("GPU_I_ID"):
        s += f" mig{row['GPU_I_ID']} ({row.get('GPU_I_PROFILE', '')})"
    return s


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def report_tables(r: Result) -> Group:
    f = r.facts
    if f.get("status") != "ok":
        t = Table(title=r.title)
        t.add_column("status")
        t.add_column("detail")
        t.add_row("NO DATA", f"no GPU series at {f.get('prometheus')} in the last {f.get('range_s', 0) / 3600:g} h")
        return Group(t)
    u = f["utilization"]
    s = Table(title=r.title)
    s.add_column("item")
    s.add_column("value", justify="right")
    s.add_row("fleet busy (avg)", _pct(u["fleet_avg"]) if u["fleet_avg"] is not None else "unknown (no activity metric)")
    c = f["gpu_count"]
    s.add_row("physical GPUs seen / reporting now", f"{c['seen']} / {c['now']}" + ("  (COUNT DROPPED)" if c["now"] < c["seen"] else ""))
    s.add_row("lost or failing GPUs (stopped reporting, GPU_IS_LOST, XID 79)", str(len(f["lost"])))
    s.add_row("GPUs/MIG instances of unknown activity (no PROF, no GPU_UTIL)", str(len(f["activity_unknown"])))
    s.add_row("GPUs by busy ratio", "  ".join(f"{k}: {v}" for k, v in u["distribution"].items()))
    held = f"{f['held_mib']:g} MiB"
    s.add_row("idle but held GPUs (a pod or HPC job holds it, no work)", str(len(f["idle_held"])))
    s.add_row(f"stranded GPUs (no pod or job, ≥ {held} memory held, no work)", str(len(f["stranded"])))
    s.add_row("idle GPUs (no pod or job, no memory held, no work)", str(len(f["idle"])))
    s.add_row("GPU-hours idle but held", f"{f['idle_held_gpu_hours']['value']:,.2f}")
    s.add_row("GPU-hours stranded", f"{f['stranded_gpu_hours']['value']:,.2f}")
    s.add_row("GPU-hours idle", f"{f['idle_gpu_hours']['value']:,.2f}")
    for t in r.terms:
        if t.unit.startswith("USD"):
            s.add_row(t.name.replace("_", " "), f"{t.value:,.2f} {t.unit}")
    s.add_row("price per GPU-hour", f["price_source"] or "no GPUs to price")
    s.add_row("queries sent", str(f["queries"]))
    parts: list = [s]

    if f["lost"]:
        t = Table(title="LOST or failing GPUs (when last seen)", title_style="bold red")
        for col in ("GPU", "UUID", "why", "last seen"):
            t.add_column(col)
        for row in f["lost"]:
            ago = row["last_seen_ago_s"]
            seen = "reporting now" if row["reporting"] else ("unknown" if ago is None else f"{_ago(ago)} ago")
            t.add_row(_gpu(row), row.get("UUID", ""), ", ".join(row["reasons"]), seen)
        for drop in c["drops"]:
            t.add_row(drop["host"], "", f"GPU count fell from {drop['seen']} to {drop['now']}", "")
        parts.append(t)
    if f["activity_unknown"]:
        t = Table(title="activity unknown (never counted as idle)")
        t.add_column("GPU")
        t.add_column("why")
        for row in f["activity_unknown"][:MAX_ROWS]:
            t.add_row(_gpu(row), row["why"])
        if len(f["activity_unknown"]) > MAX_ROWS:
            t.add_row(f"… {len(f['activity_unknown']) - MAX_ROWS} more", "")
        parts.append(t)

    nodes = Table(title="busy ratio by node (lowest first)")
    nodes.add_column("node")
    nodes.add_column("busy", justify="right")
    for host, v in sorted(u["by_node"].items(), key=lambda kv: kv[1])[:MAX_ROWS]:
        nodes.add_row(host, _pct(v))
    models = Table(title="busy ratio by model")
    models.add_column("model")
    models.add_column("busy", justify="right")
    for m, v in sorted(u["by_model"].items()):
        models.add_row(m, _pct(v))
    parts += [nodes, models]

    from aiinfra.fleet.analysis import NO_WORK, idle_by_host

    costs = idle_by_host(r)
    if costs:
        t = Table(title="GPU-hours without work by node (most first)")
        for c in ("node", *(f"{label} GPU·h" for label in NO_WORK.values()), "cost"):
            t.add_column(c, justify="left" if c == "node" else "right")
        for host, v in sorted(costs.items(), key=lambda kv: -sum(kv[1][k] for k in NO_WORK))[:MAX_ROWS]:
            t.add_row(host, *(f"{v[k]:,.2f}" for k in NO_WORK), "no price" if v["usd"] is None else f"{v['usd']:,.2f} USD")
        parts.append(t)

    no_work = f["idle_held"] + f["stranded"] + f["idle"]
    if no_work:
        t = Table(title="GPUs without work: idle but held, stranded, idle")
        for c in ("GPU", "state", "busy avg", "GPU·h", "why"):
            t.add_column(c)
        for row in no_work[:MAX_ROWS]:
            t.add_row(_gpu(row), NO_WORK[row["state"]], _pct(row["busy_avg"]), f"{row.get('low_activity_gpu_hours') or 0.0:,.2f}",
                      row.get("why", "no pod or job, no memory held"))
        if len(no_work) > MAX_ROWS:
            t.add_row(f"… {len(no_work) - MAX_ROWS} more", "", "", "", "")
        parts.append(t)

    oom = f["oom_risk"]
    t = Table(title="OOM risk (framebuffer used / (used + free), time to full at the 1 h trend)")
    for c in ("GPU", "pod", "used", "time to full"):
        t.add_column(c)
    if isinstance(oom, str):
        t.add_row(oom, "", "", "")
    else:
        for row in oom[:MAX_ROWS]:
            ttf = row["time_to_full_s"]
            t.add_row(_gpu(row), row.get("pod", ""), _pct(row["fb_used_ratio"]), "–" if ttf is None else f"{ttf / 3600:.1f} h")
        if not oom:
            t.add_row("none at risk", "", "", "")
    parts.append(t)

    th = f["throttling"]
    t = Table(title="throttling: share of time by reason")
    t.add_column("GPU")
    if isinstance(th, str):
        t.add_row(th)
    else:
        reasons = sorted(th["fleet_share"] or {})
        for reason in reasons:
            t.add_column(reason, justify="right")
        t.add_row("fleet average", *[_pct(th["fleet_share"][x]) for x in reasons])
        for row in th["gpus"][:MAX_ROWS]:
            t.add_row(_gpu(row), *[_pct(row.get(f"{x}_share")) for x in reasons])
    parts.append(t)

    xid = f["xid"]
    t = Table(title="XID health")
    for c in ("GPU", "XID", "severity", "meaning", "action", "still set"):
        t.add_column(c)
    if isinstance(xid, str):
        t.add_row(xid, "", "", "", "", "")
    else:
        for row in sorted(xid, key=lambda x: (x["severity"] != "critical", x["xid"]))[:MAX_ROWS]:
            t.add_row(_gpu(row), str(row["xid"]), row["severity"], row["meaning"], row["action"], "yes" if row["sticky_now"] else "no")
        if not xid:
            t.add_row("no XIDs in the range" + (f" ({len(f['lost'])} GPUs lost: see above)" if f["lost"] else ""), "", "", "", "", "")
    parts.append(t)

    h = f["health"]
    t = Table(title="ECC and row remapping")
    t.add_column("GPU")
    t.add_column("findings")
    for row in h["gpus"][:MAX_ROWS]:
        t.add_row(_gpu(row), ", ".join(f"{k}={row[k]:g}" for k in h["collected"] if row.get(k)))
    if not h["gpus"]:
        t.add_row("no errors in the collected fields" if h["collected"] else "no ECC/row-remap fields collected", "")
    if h["not_collected"]:
        t.add_row("not collected", ", ".join(h["not_collected"]))
    parts.append(t)
    return Group(*parts)


def analyze_cmd(
    prometheus: PrometheusOpt,
    range_: Annotated[str, typer.Option("--range", "-r", help="Window to analyse, a Prometheus duration (24h, 7d, 90m).")] = "24h",
    end: EndOpt = None,
    idle_ratio: Annotated[float, typer.Option("--idle-below", help="Busy ratio under which a GPU counts as doing no work.")] = 0.05,
    held_mib: Annotated[float, typer.Option("--held-mib", help="Framebuffer MiB at or above which an unowned GPU without work counts as stranded, not idle.")] = 1024.0,
    price: Annotated[float | None, typer.Option("--price-per-gpu-hour", help="USD per GPU-hour for idle cost (default: the prices catalog).")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Also write an HTML report with plotly charts to this file.")] = None,
    timeout: QueryTimeoutOpt = 60.0,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Fleet report from Prometheus: utilization, GPUs without work and their cost, lost GPUs (when last seen), OOM risk, throttling, XIDs, ECC.

    GPUs without work (busy below --idle-below), as chargeback names them: idle but held (a pod or
    HPC job holds it), stranded (no pod or job, yet --held-mib or more framebuffer in use: nobody can
    be given it), idle (no owner, no memory: free capacity)."""
    from aiinfra.fleet.analysis import to_html
    from aiinfra.fleet.commands import analyze

    result = analyze(prometheus, range_, end, idle_ratio, price, held_mib=held_mib, timeout=timeout)
    if html is not None:
        from aiinfra.safeio import write_atomic

        write_atomic(html, to_html(result), what="report")
    if fmt is not Format.table:
        # The heatmap matrix is for the HTML page; keep JSON readable.
        result.facts = {k: v for k, v in result.facts.items() if k != "heatmap"}
    emit(result, fmt, explain, table=report_tables)

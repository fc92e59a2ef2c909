"""What the web shell costs, measured in one run on a real uvicorn on loopback.

Prints `name: ours X/s, baseline Y/s, ratio Z`:
1. `POST /api/size/infer` vs the same library call made directly in Python;
2. a page with a chart (/size/infer, /tco) under 20 concurrent clients: today's rendering (figures
   built without a template, the template applied in the browser) vs the previous rendering (plotly's
   template deep-copied into every figure and serialised with it), each in its own server process
   (this script with --serve), from interleaved rounds (>= 5 each, medians).
Run: PYTHONPATH=src python benchmarks/web.py [--rounds 5] [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time

import httpx
import plotly.io as pio
import uvicorn
from markupsafe import Markup

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.cli.serve import bind
from aiinfra.sizing.inference import inference_memory
from aiinfra.web import charts
from aiinfra.web.app import create_app
from aiinfra.web.pages import PAGE_MODULES

BODY = {"model": "llama-3.1-70b", "gpu": "h200-sxm", "quant": "int4", "context": 8192, "batch": 16}
PAGES = {"tco page": ("/tco", {"gpus": 256, "cloud": "aws-p5", "term": "all"}),
         "infer page": ("/infer", {"model": "llama-3.1-8b"}),
         "size infer page": ("/size/infer", BODY)}
CLIENTS = 20


def legacy_div(fig, div_id: str, height: int = 420) -> Markup:
    """The rendering before: a validated plotly Figure, the template set on it (a deep copy) and
    serialised into each page."""
    import plotly.graph_objects as go

    if isinstance(fig, dict):
        fig = go.Figure(fig)
    fig.update_layout(height=height, margin=dict(l=60, r=20, t=50, b=60), template="plotly_white")
    html = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=charts.PLOT_CONFIG)
    return Markup(f'<div class="chart" data-chart="{div_id}">{html}</div>')


def set_mode(legacy: bool) -> None:
    pio.templates.default = "plotly" if legacy else None
    for m in PAGE_MODULES:
        if hasattr(m, "div"):
            m.div = legacy_div if legacy else charts.div


def rate(fn, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def concurrent_rate(url: str, params: dict, seconds: float) -> float:
    """Pages/s with CLIENTS concurrent keep-alive clients (one asyncio thread drives them all)."""

    async def run() -> float:
        stop = time.perf_counter() + seconds
        done = 0
        limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
        async with httpx.AsyncClient(timeout=120, limits=limits) as h:
            async def client() -> None:
                nonlocal done
                while time.perf_counter() < stop:
                    (await h.get(url, params=params)).raise_for_status()
                    done += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(CLIENTS)))
            return done / (time.perf_counter() - t0)

    return asyncio.run(run())


def serve(port: int, legacy: bool) -> None:
    """The server side of one mode (run as a separate process, so clients do not share its GIL)."""
    set_mode(legacy)
    sock = bind("127.0.0.1", port)
    uvicorn.Server(uvicorn.Config(create_app(slots=64), log_level="warning")).run(sockets=[sock])


def launch(argv: list[str], env: dict[str, str] | None = None, quiet: bool = False) -> tuple[subprocess.Popen, str]:
    """Start a server process on a free loopback port (`{port}` in argv) and wait until /healthz answers."""
    probe = bind("127.0.0.1", 0)
    port = probe.getsockname()[1]
    probe.close()
    proc = subprocess.Popen([a.replace("{port}", str(port)) for a in argv], env=env or os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if quiet else None)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(url + "/healthz", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    return proc, url


def start_server(legacy: bool, src: str | None = None) -> tuple[subprocess.Popen, str]:
    """Today's server, the previous rendering (legacy), or `aiinfra serve` from another source tree."""
    env = os.environ.copy()
    if src:
        env["PYTHONPATH"] = src
        return launch([sys.executable, "-m", "aiinfra", "serve", "--port", "{port}"], env)
    return launch([sys.executable, __file__, "--serve", "{port}"] + (["--legacy"] if legacy else []), env)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--legacy", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--baseline-src", help="compare with `aiinfra serve` from this source tree (e.g. the code "
                                           "before this change: git archive <commit> src | tar -x -C /tmp/base) "
                                           "instead of today's code with the previous chart rendering")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.legacy)
        return
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(slots=64), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    m, g = model("llama-3.1-70b"), gpu("h200-sxm")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        api = rate(lambda: http.post("/api/size/infer", json=BODY).raise_for_status(), args.seconds)
    base = rate(lambda: inference_memory(m, quant="int4", context=8192, batch=16, gpu=g), args.seconds)
    server.should_exit = True
    print(f"web api size infer: ours {api:,.0f}/s, baseline {base:,.0f}/s (direct call), ratio {api / base:.3f}")
    procs = []
    try:
        (p_new, new), (p_old, old) = start_server(legacy=False), start_server(legacy=True, src=args.baseline_src)
        procs = [p_new, p_old]
        for name, (path, params) in PAGES.items():
            concurrent_rate(new + path, params, 0.5)  # warm both (catalog, imports)
            concurrent_rate(old + path, params, 0.5)
            ours, before = [], []
            for _ in range(max(5, args.rounds)):  # interleaved, so load on the machine hits both alike
                before.append(concurrent_rate(old + path, params, args.seconds))
                ours.append(concurrent_rate(new + path, params, args.seconds))
            o, b = statistics.median(ours), statistics.median(before)
            what = f"aiinfra serve from {args.baseline_src}" if args.baseline_src else "template per figure"
            print(f"web {name} ({CLIENTS} clients): ours {o:,.1f}/s, baseline {b:,.1f}/s ({what}), ratio {o / b:.2f}")
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=20)


if __name__ == "__main__":
    main()

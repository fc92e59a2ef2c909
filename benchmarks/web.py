"""What the web shell costs on top of the library, measured in one run.

Prints, as `name: ours X/s, baseline Y/s, ratio Z`:
1. `POST /api/size/infer` over HTTP to a real uvicorn on loopback (validation, the library call,
   JSON) vs the same library call made directly in Python (`aiinfra.sizing.inference.inference_memory`);
2. the rendered Size page (form, plotly figure, explain panel) vs the same direct call.
Run: PYTHONPATH=src python benchmarks/web.py
"""

from __future__ import annotations

import threading
import time

import httpx
import uvicorn

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.cli.serve import bind
from aiinfra.sizing.inference import inference_memory
from aiinfra.web.app import create_app

BODY = {"model": "llama-3.1-70b", "gpu": "h200-sxm", "quant": "int4", "context": 8192, "batch": 16}


def rate(fn, seconds: float = 2.0) -> float:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    m, g = model("llama-3.1-70b"), gpu("h200-sxm")

    def direct() -> None:
        inference_memory(m, quant="int4", context=8192, batch=16, gpu=g)

    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        api = rate(lambda: http.post("/api/size/infer", json=BODY).raise_for_status())
        page = rate(lambda: http.get("/size/infer", params=BODY).raise_for_status())
    base = rate(direct)
    print(f"web api size infer: ours {api:,.0f}/s, baseline {base:,.0f}/s, ratio {api / base:.3f}")
    print(f"web page size infer: ours {page:,.0f}/s, baseline {base:,.0f}/s, ratio {page / base:.3f}")
    server.should_exit = True


if __name__ == "__main__":
    main()

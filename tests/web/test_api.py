"""The JSON API and the server-rendered pages, through FastAPI's TestClient.

The API mirrors the CLI: the same options give the same JSON as `--format json --explain`, and
bad input gives 422 carrying the exact sentence the CLI prints after 'error: '.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import aiinfra
from aiinfra.cli.serve import bind

SRC = str(Path(aiinfra.__file__).resolve().parents[1])


def cli_error(cli, *argv: str) -> str:
    r = cli(*argv)
    assert r.code == 2, (r.code, r.err)
    line = r.err.strip()
    assert line.startswith("error: ") and "\n" not in line
    return line.removeprefix("error: ")


def field_error(html: str) -> tuple[str, str]:
    """(field, message) of the error shown next to a form field."""
    m = re.search(r'class="field has-error" data-field="(\w+)">.*?<div class="error" role="alert">([^<]*)</div>', html, re.S)
    assert m, "no field error on the page"
    return m.group(1), m.group(2).replace("&#39;", "'").replace("&amp;", "&")


# --- the API mirrors the CLI ---------------------------------------------------------------------


@pytest.mark.parametrize(("path", "body", "argv"), [
    ("/api/size/infer", {"model": "llama-3.1-70b", "gpu": "h200-sxm", "quant": "int4", "context": 8192, "batch": 16},
     ["size", "infer", "llama-3.1-70b", "--gpu", "h200-sxm", "--quant", "int4", "--context", "8192", "--batch", "16"]),
    ("/api/size/train", {"model": "llama-3.1-70b", "gpu": "h100-sxm", "tp": 8, "pp": 2, "dp": 4, "zero": 1,
                         "recompute": "selective"},
     ["size", "train", "llama-3.1-70b", "--gpu", "h100-sxm", "--tp", "8", "--pp", "2", "--dp", "4", "--zero", "1",
      "--recompute", "selective"]),
    ("/api/size/fits", {"model": "mixtral-8x7b", "quant": "fp8"}, ["size", "fits", "mixtral-8x7b", "--quant", "fp8"]),
    ("/api/size/infer", {"model": "llama-3.1-8b", "gpu": "h100-sxm", "engine": "vllm", "max_model_len": 32768},
     ["size", "infer", "llama-3.1-8b", "--gpu", "h100-sxm", "--engine", "vllm", "--max-model-len", "32768"]),
    ("/api/size/train", {"model": "llama-3.1-70b", "gpu": "gb200", "dp": 64, "zero": 3, "micro_batch": 2,
                         "seq": 8192, "precision": "fp8", "offload": "activations 50%"},
     ["size", "train", "llama-3.1-70b", "--gpu", "gb200", "--dp", "64", "--zero", "3", "--micro-batch", "2",
      "--seq", "8192", "--precision", "fp8", "--offload", "activations 50%"]),
    ("/api/size/train", {"model": "llama-3.1-70b", "tp": 8, "pp": 4, "recompute": "selective", "software": "torchtitan",
                         "pipeline_split": "even"},
     ["size", "train", "llama-3.1-70b", "--tp", "8", "--pp", "4", "--recompute", "selective", "--software", "torchtitan",
      "--pipeline-split", "even"]),
    ("/api/size/train", {"model": "deepseek-v3", "tp": 2, "pp": 8, "dp": 64, "ep": 64, "etp": 1, "seq": 4096,
                         "pipeline_split": "Et|(tt|)*30mL"},
     ["size", "train", "deepseek-v3", "--tp", "2", "--pp", "8", "--dp", "64", "--ep", "64", "--etp", "1", "--seq",
      "4096", "--pipeline-split", "Et|(tt|)*30mL"]),
    ("/api/plan", {"model": "llama-3.1-70b", "gpus": "64", "layout": "tp=4,pp=8,mb=1,vp=5",
                   "software": "torchtitan-eager", "offload": "none,optimizer", "memory_reserve": "3GiB"},
     ["plan", "llama-3.1-70b", "--gpus", "64", "--layout", "tp=4,pp=8,mb=1,vp=5", "--software", "torchtitan-eager",
      "--offload", "none,optimizer", "--memory-reserve", "3GiB"]),
])
def test_api_equals_cli_json(client, cli, path, body, argv):
    """Same options → the same document as `aiinfra … --format json --explain` (source: cli/size.py)."""
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    want = cli(*argv, "--format", "json", "--explain")
    assert want.code == 0, want.err
    assert r.json() == want.json()


def test_api_known_answer_70b_int4_fits_one_h200(client):
    """The field's example (issue 3): 70B in int4 ≈ 35 GB of weights; with 16 × 8192 tokens of KV
    (2·80·8·128·2 B = 320 KiB per token, memory_perf_anchors §2e.2) it fits one H200 and not one L40S."""
    body = {"model": "llama-3.1-70b", "quant": "int4", "context": 8192, "batch": 16}
    h200 = client.post("/api/size/infer", json={**body, "gpu": "h200-sxm"}).json()
    l40s = client.post("/api/size/infer", json={**body, "gpu": "l40s"}).json()
    assert h200["facts"]["fits"] is True and l40s["facts"]["fits"] is False
    weights = next(t for t in h200["explain"] if t["name"] == "weights")["value"]
    assert 35e9 <= weights <= 41e9  # 35 GB of int4 plus group scales and 16-bit embeddings


@pytest.mark.parametrize(("path", "body", "argv", "field"), [
    ("/api/size/infer", {"model": "llama-3.1-70b", "gpu": "H10"},
     ["size", "infer", "llama-3.1-70b", "--gpu", "H10"], "gpu"),
    ("/api/size/infer", {"model": "lama-3.1-70"}, ["size", "infer", "lama-3.1-70"], "model"),
    ("/api/size/infer", {"model": "llama-3.1-70b", "batch": 0}, ["size", "infer", "llama-3.1-70b", "--batch", "0"],
     "batch"),
    ("/api/size/train", {"model": "llama-3.1-70b", "tp": 3}, ["size", "train", "llama-3.1-70b", "--tp", "3"], "tp"),
    ("/api/size/train", {"model": "llama-3.1-70b", "pp": 200}, ["size", "train", "llama-3.1-70b", "--pp", "200"], "pp"),
    ("/api/size/train", {"model": "llama-3.1-70b", "zero": 5}, ["size", "train", "llama-3.1-70b", "--zero", "5"], "zero"),
    ("/api/size/fits", {"model": "llama-3.1-70b", "quant": "int3"}, ["size", "fits", "llama-3.1-70b", "--quant", "int3"],
     "quant"),
    ("/api/size/train", {"model": "llama-3.1-70b", "software": "torchtitn"},
     ["size", "train", "llama-3.1-70b", "--software", "torchtitn"], "software"),
    ("/api/plan", {"model": "llama-3.1-70b", "layout": "tp=3"}, ["plan", "llama-3.1-70b", "--layout", "tp=3"], "layout"),
    ("/api/plan", {"model": "llama-3.1-70b", "layout": "tp=8,pp=81"}, ["plan", "llama-3.1-70b", "--layout", "tp=8,pp=81"],
     "layout"),
    ("/api/plan", {"model": "llama-3.1-70b", "software": "torchtitan-eagr"},
     ["plan", "llama-3.1-70b", "--software", "torchtitan-eagr"], "software"),
    ("/api/plan", {"model": "llama-3.1-70b", "grad_dtype": "fp8"}, ["plan", "llama-3.1-70b", "--grad-dtype", "fp8"],
     "grad_dtype"),
    ("/api/plan", {"model": "llama-3.1-70b", "recompute_modules": "moe_act"},
     ["plan", "llama-3.1-70b", "--recompute-modules", "moe_act"], "recompute_modules"),
    ("/api/size/train", {"model": "qwen3-30b-a3b", "tp": 2, "ep": 16, "dp": 8, "etp": 3},
     ["size", "train", "qwen3-30b-a3b", "--tp", "2", "--ep", "16", "--dp", "8", "--etp", "3"], "etp"),
    ("/api/size/train", {"model": "gpt-oss-120b", "recompute": "selective", "recompute_modules": "core_attn,bogus"},
     ["size", "train", "gpt-oss-120b", "--recompute", "selective", "--recompute-modules", "core_attn,bogus"],
     "recompute_modules"),
    ("/api/size/train", {"model": "deepseek-v3", "tp": 2, "pp": 6, "dp": 64, "ep": 64, "etp": 1,
                         "pipeline_split": "Et|(tt|)*30mL"},
     ["size", "train", "deepseek-v3", "--tp", "2", "--pp", "6", "--dp", "64", "--ep", "64", "--etp", "1",
      "--pipeline-split", "Et|(tt|)*30mL"], "pipeline_split"),
    ("/api/plan", {"model": "deepseek-v3", "gpus": "1024", "pipeline_split": "Et|(tt|)*30X"},
     ["plan", "deepseek-v3", "--gpus", "1024", "--pipeline-split", "Et|(tt|)*30X"], "pipeline_split"),
    ("/api/plan", {"model": "llama-3.1-8b", "gpus": "8", "ep_overlap": True},
     ["plan", "llama-3.1-8b", "--gpus", "8", "--ep-overlap"], "ep_overlap"),
    ("/api/plan", {"model": "qwen3-30b-a3b", "gpus": "16", "ep_overlap": True, "recompute": "full"},
     ["plan", "qwen3-30b-a3b", "--gpus", "16", "--ep-overlap", "--recompute", "full"], "ep_overlap"),
])
def test_api_422_carries_the_cli_sentence(client, cli, path, body, argv, field):
    r = client.post(path, json=body)
    assert r.status_code == 422
    assert r.json()["error"] == cli_error(cli, *argv)
    assert r.json()["field"] == field


def test_plan_page_evaluates_your_layout_and_ranks_it(client):
    """The fixed-layout mode on the web (`aiinfra plan --layout`): the verdict sentence heads the page, the layout's
    row is in the table marked as yours even when it is not among the best shown, and its step time links to the
    explanation of that layout (the terms the page explains are yours, not the winner's)."""
    params = {"model": "llama-3.1-70b", "gpus": "64", "layout": "tp=8,pp=8,dp=1,mb=1,vp=1", "top": "3"}
    r = client.get("/plan", params=params)
    assert r.status_code == 200
    api = client.post("/api/plan", json={**params, "top": 3}).json()["facts"]
    mine = api["your_layout"]
    assert mine["rank"] > 3 and api["your_layout_verdict"].startswith("your layout TP8·PP8")
    assert f"yours is #{mine['rank']} of {mine['layouts_ranked']:,}" in r.text
    row = re.search(r"<tr>\s*<td>{}</td>\s*<td>TP8·PP8[^<]*\(yours\)</td>(.*?)</tr>".format(mine["rank"]), r.text, re.S)
    assert row and 'class="num"' in row.group(1)
    assert re.search(r"your layout TP8·PP8", r.text)


def test_api_type_errors_are_422_one_line(client):
    r = client.post("/api/size/infer", json={"model": "llama-3.1-70b", "batch": "many"})
    assert r.status_code == 422
    assert r.json()["field"] == "batch"
    assert r.json()["error"].startswith("invalid batch: ") and "\n" not in r.json()["error"]
    r = client.post("/api/size/infer", json={"model": "llama-3.1-70b", "config_path": "/etc/passwd"})
    assert r.status_code == 422 and r.json()["field"] == "config_path"


def test_a_bug_is_one_line_500_never_a_traceback(app, monkeypatch, caplog):
    """An exception that is not bad input (a bug) reaches the user as one generic line with a reference;
    its detail (which can name internals) is only in the server's log under that reference."""
    from fastapi.testclient import TestClient

    from aiinfra.web.pages import size

    def boom(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(size, "inference_report", boom)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/api/size/infer", json={"model": "llama-3.1-8b"})
        assert r.status_code == 500 and "Traceback" not in r.text
        msg = r.json()["error"]
        assert msg.startswith("internal error (a bug in aiinfra); reference ") and "ZeroDivision" not in msg
        ref = msg.split("reference ")[1].split()[0]
        assert any(ref in rec.getMessage() and rec.exc_info for rec in caplog.records)
        page = c.get("/size/infer", params={"model": "llama-3.1-8b"})
        assert page.status_code == 500 and "Traceback" not in page.text and "ZeroDivisionError" not in page.text
        assert "internal error (a bug in aiinfra); reference" in page.text


def test_openapi_lists_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/size/train", "/api/size/infer", "/api/size/fits", "/api/plan", "/api/infer", "/api/serve-plan",
              "/api/design",
              "/api/tco", "/api/mig/plan", "/api/mig/yaml", "/api/fleet"):
        assert p in paths, p
    schema = client.get("/openapi.json").json()["components"]["schemas"]["InferSpec"]
    assert schema["properties"]["batch"]["type"] == "integer"


# --- security: names only, never paths -----------------------------------------------------------


@pytest.mark.parametrize("name", ["/etc/passwd", "../../etc/hosts",
                                  str(Path(SRC) / "aiinfra/catalog/data/models/gpt2.json")])
def test_model_is_a_catalog_name_never_a_path(client, name):
    """The CLI accepts a config.json path; the web must not read any file a request names."""
    r = client.post("/api/size/infer", json={"model": name})
    assert r.status_code == 422
    assert r.json()["error"].startswith(f"unknown model '{name}'")


def test_catalog_model_is_the_cli_lookup_for_every_catalog_name():
    from aiinfra.catalog.models import all_models, model
    from aiinfra.web.common import catalog_model

    for name in all_models():
        assert catalog_model(name) == model(name), name
    assert catalog_model("meta-llama/Llama-3.1-70B") == model("llama-3.1-70b")


def test_static_files_cannot_escape(client):
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/%2e%2e/app.py").status_code == 404


def test_docs_page_lists_the_api_offline(client):
    """/docs is rendered here from the OpenAPI schema (Swagger UI would need a CDN)."""
    r = client.get("/docs")
    assert r.status_code == 200 and "cdn" not in r.text.lower()
    assert "POST /api/size/infer" in r.text and "gpu_memory_utilization" in r.text


def test_plotly_js_is_served_locally(client):
    r = client.get("/static/plotly.min.js")
    assert r.status_code == 200 and "application/javascript" in r.headers["content-type"]
    assert len(r.text) > 1_000_000 and "Plotly" in r.text[:5000] + r.text[-5000:]


# --- pages ---------------------------------------------------------------------------------------


def test_index_and_every_page_renders(client):
    assert "Size" in client.get("/").text
    for path in ("/size/train", "/size/infer", "/size/fits", "/plan", "/infer", "/serve-plan", "/design", "/tco", "/mig",
                 "/fleet"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert "<form" in r.text or "not in the library yet" in r.text, path


def test_size_page_result_links_every_number_to_its_explanation(client):
    r = client.get("/size/infer", params={"model": "llama-3.1-70b", "gpu": "h200-sxm", "quant": "int4"})
    assert r.status_code == 200
    anchors = re.findall(r'<a class="num" href="#(x\d+)"', r.text)
    assert len(anchors) >= 10
    ids = set(re.findall(r'<details class="term" id="(x\d+)"', r.text))
    assert set(anchors) <= ids  # every link lands on an explanation
    assert "2 · L · max(n_kv / tp, 1) · d_head · bytes" in r.text  # KV formula from the library's Term
    assert 'class="plotly-graph-div"' in r.text


def unlinked_numbers(html: str, table_id: str) -> list[str]:
    """Cells of a result table that print a number without linking it to an explanation."""
    body = re.search(rf'<table class="data" id="{table_id}">(.*?)</table>', html, re.S).group(1)
    cells = re.findall(r"<td>(.*?)</td>", body, re.S)
    return [c for c in cells if re.fullmatch(r"\s*[-\d.,%]+\s*(GB|GiB)?\s*", c) and re.search(r"\d", c)
            and 'class="num"' not in c]


@pytest.mark.parametrize(("path", "params", "table"), [
    ("/size/train", {"model": "llama-3.1-70b", "tp": "8"}, "memory"),
    ("/size/infer", {"model": "llama-3.1-8b"}, "memory"),
    ("/size/fits", {"model": "llama-3.1-70b"}, "fits"),
])
def test_every_number_in_a_result_table_links_to_its_explanation(client, path, params, table):
    r = client.get(path, params=params)
    assert r.status_code == 200
    assert unlinked_numbers(r.text, table) == []


def test_page_error_is_next_to_the_field_and_keeps_inputs(client, cli):
    params = {"model": "llama-3.1-70b", "gpu": "h100-sxm", "tp": "3", "seq": "2048", "micro_batch": "2"}
    r = client.get("/size/train", params=params)
    assert r.status_code == 422
    field, msg = field_error(r.text)
    assert field == "tp"
    assert msg == cli_error(cli, "size", "train", "llama-3.1-70b", "--tp", "3", "--seq", "2048", "--micro-batch", "2")
    assert 'name="seq" value="2048"' in r.text and 'name="micro_batch" value="2"' in r.text
    assert 'name="tp" value="3"' in r.text


def test_page_type_error_names_the_field(client):
    r = client.get("/size/infer", params={"model": "llama-3.1-8b", "context": "lots"})
    assert r.status_code == 422
    field, msg = field_error(r.text)
    assert field == "context" and msg.startswith("invalid context:")
    assert 'name="model" value="llama-3.1-8b"' in r.text


def test_unchecked_checkbox_overrides_a_true_default(client):
    """A checkbox sends a hidden 'false' then 'true' when ticked; unticked flash attention must mean off."""
    on = client.post("/api/size/train", json={"model": "llama-3.1-8b", "tp": 1, "flash_attention": True}).json()
    off = client.post("/api/size/train", json={"model": "llama-3.1-8b", "tp": 1, "flash_attention": False}).json()
    page = client.get("/size/train", params=[("model", "llama-3.1-8b"), ("tp", "1"), ("flash_attention", "false")])
    assert page.status_code == 200
    gb_off = f"{next(t for t in off['explain'] if t['name'] == 'total per GPU')['value'] / 1e9:,.2f}"
    gb_on = f"{next(t for t in on['explain'] if t['name'] == 'total per GPU')['value'] / 1e9:,.2f}"
    assert gb_off != gb_on
    assert f">{gb_off} GB<" in page.text


# --- aiinfra serve -------------------------------------------------------------------------------


def test_serve_port_in_use_is_one_line_exit_2():
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    try:
        env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}
        r = subprocess.run([sys.executable, "-m", "aiinfra", "serve", "--port", str(port)], capture_output=True,
                           text=True, timeout=60, env=env)
    finally:
        sock.close()
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: port {port} on 127.0.0.1 is already in use; choose another with --port"


def test_serve_runs_the_app_on_loopback():
    """`aiinfra serve --port N` as a user runs it: answers on 127.0.0.1, then stops on SIGTERM."""
    import httpx

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    env = {"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "aiinfra", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = None
        for _ in range(100):  # bounded: 20 s
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    break
                import time

                time.sleep(0.2)
        assert body == {"ok": True}, proc.stderr.read() if proc.poll() is not None else "no answer"
        page = httpx.get(f"http://127.0.0.1:{port}/size/infer", params={"model": "llama-3.1-8b"}, timeout=30)
        assert page.status_code == 200 and "KV tokens" in page.text
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_loopback_server_refuses_foreign_host_headers():
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not read our answers."""
    from fastapi.testclient import TestClient

    from aiinfra.cli.serve import loopback_names
    from aiinfra.web.app import create_app

    with TestClient(create_app(allowed_hosts=loopback_names("127.0.0.1")), base_url="http://127.0.0.1") as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/healthz", headers={"host": "localhost:8000"}).status_code == 200
        assert c.get("/healthz", headers={"host": "evil.example"}).status_code == 400
    assert loopback_names("0.0.0.0") is None and loopback_names("::1") is not None
    assert "127.0.0.2" in loopback_names("127.0.0.2")


def test_serve_defaults_to_loopback():
    import inspect

    from aiinfra.cli.serve import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"


def test_size_pages_print_the_visible_total(client):
    """The Size pages' verdicts name the datasheet size as text and the visible total in GB and GiB (an H100: 81,559
    MiB = 85.52 GB = 79.65 GiB); they printed "(80 GB)"."""
    r = client.get("/size/train", params={"model": "llama-3.1-8b", "zero": "3", "dp": "8", "recompute": "full"})
    assert r.status_code == 200
    assert "80GB HBM3: 85.52 GB = 79.65 GiB visible" in r.text and "(80 GB)" not in r.text
    r = client.get("/size/infer", params={"model": "llama-3.1-8b"})
    assert "80GB HBM3: 85.52 GB = 79.65 GiB visible" in r.text
    r = client.get("/size/fits", params={"model": "llama-3.1-70b", "quant": "fp8"})
    assert "85.52" in r.text

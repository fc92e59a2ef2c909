"""Bounded cost per request (web/guard.py): body cap, time budget, busy slots, Basic auth, generic 500."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import warnings

import pytest

from aiinfra.web.app import create_app


def _client(app, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient
    return TestClient(app, **kw)


def test_a_body_over_the_cap_is_413_before_it_is_parsed(client):
    big = json.dumps({f"k{i}": 0 for i in range(1_000_000)})  # 1M unknown keys, ~10 MB
    t0 = time.process_time()
    r = client.post("/api/tco", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]
    assert time.process_time() - t0 < 5  # refused without parsing (a generous bound, not a benchmark)


def test_a_chunked_body_is_counted_too(client):
    def chunks():
        for _ in range(100):
            yield b"x" * 10_000

    r = client.post("/api/tco", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_unknown_keys_under_the_cap_are_one_422(client):
    body = {"gpus": 8, **{f"k{i}": 0 for i in range(5000)}}
    r = client.post("/api/tco", json=body)
    assert r.status_code == 422 and "not an option of this command" in r.json()["error"]


def test_a_huge_hybrid_peak_is_refused_by_its_bound(client):
    r = client.post("/api/tco", json={"hybrid": True, "peak": 5e7, "cloud": "aws-p5"})
    assert r.status_code == 422 and r.json()["error"] == "peak must be at most 1,000,000, got 5e+07"
    r = client.post("/api/tco", json={"gpus": 2147483648})
    assert r.status_code == 422 and r.json()["field"] == "gpus"


def test_over_budget_is_503_naming_the_budget_and_healthz_stays_up(monkeypatch):
    from aiinfra.web.pages import tco

    release = threading.Event()

    def slow(spec):
        release.wait(10)
        raise AssertionError("not reached in time")

    monkeypatch.setattr(tco, "report", slow)
    app = create_app(budget_s=0.5, slots=1)
    with _client(app, raise_server_exceptions=False) as c:
        r = c.post("/api/tco", json={"gpus": 8})
        assert r.status_code == 503 and "0.5 s budget" in r.json()["error"]
        assert c.get("/healthz").json() == {"ok": True}  # the slot is still taken; health is not queued behind it
        r = c.post("/api/tco", json={"gpus": 8})  # the one slot is held by the overrunning request
        assert r.status_code == 503 and "busy" in r.json()["error"]
        release.set()


def test_basic_auth_guards_everything_but_healthz():
    app = create_app(password="s3cret")
    with _client(app) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        bad = base64.b64encode(b"me:wrong").decode()
        assert c.get("/", headers={"authorization": f"Basic {bad}"}).status_code == 401
        good = base64.b64encode(b"me:s3cret").decode()
        assert c.get("/", headers={"authorization": f"Basic {good}"}).status_code == 200


def test_guard_alone_runs_light_paths_without_a_slot():
    from aiinfra.web.guard import Guard

    seen = []

    async def app(scope, receive, send):
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    g = Guard(app, slots=1)
    out = []

    async def send(m):
        out.append(m)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    # In a thread of its own: Playwright's sync API keeps an event loop running in the main thread.
    t = threading.Thread(target=asyncio.run, args=(g({"type": "http", "path": "/static/app.css", "headers": []},
                                                     receive, send),))
    t.start()
    t.join(30)
    assert seen == ["/static/app.css"] and out[0]["status"] == 200


@pytest.mark.parametrize("host,allowed", [("127.0.0.2", True), ("localhost", True), ("evil.example", False)])
def test_loopback_bind_allows_its_own_names_only(host, allowed):
    from aiinfra.cli.serve import allowed_host_names

    names = allowed_host_names("127.0.0.2", [])
    assert (host in names) == allowed


def test_serve_beyond_loopback_needs_auth_or_an_explicit_flag(cli, tmp_path):
    from tests.conftest import assert_one_line_error

    assert_one_line_error(cli("serve", "--host", "0.0.0.0", "--port", "1"), "--password-file", "--insecure-no-auth")
    short = tmp_path / "pw"
    short.write_text("abc\n")
    assert_one_line_error(cli("serve", "--host", "0.0.0.0", "--password-file", str(short)), "at least 8 characters")


def test_serve_refuses_a_catalog_it_cannot_read_before_it_binds(cli, tmp_path):
    """A --catalog file the app cannot read used to start the server, and every page then failed on it. It is now
    refused before the port is bound (the port here is taken, so a server that went on to bind would fail on that
    instead, and never hang the test)."""
    import socket

    from tests.conftest import assert_one_line_error

    bad = tmp_path / "bad.yaml"
    bad.write_text("k8s_components:\n  gpu-operator: {driver: 5}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = cli("--catalog", str(bad), "serve", "--port", str(taken.getsockname()[1]))
    assert_one_line_error(r, "k8s_component 'gpu-operator' field 'driver' must be a map")


def test_allow_list_beyond_loopback_names_this_host_never_a_wildcard():
    import socket

    from aiinfra.cli.serve import allowed_host_names

    names = allowed_host_names("0.0.0.0", ["gpu-planner.example.org"])
    assert socket.gethostname() in names and "gpu-planner.example.org" in names and "localhost" in names
    assert "0.0.0.0" not in names and "*" not in names


def test_serve_on_127_0_0_2_answers(tmp_path):
    """`--host 127.0.0.2` used to answer 400 to everything: its own address was not in the allow-list."""
    import os
    import signal
    import subprocess
    import sys

    import httpx

    from aiinfra.cli.serve import bind

    probe = bind("127.0.0.2", 0)
    port = probe.getsockname()[1]
    probe.close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen([sys.executable, "-m", "aiinfra", "serve", "--host", "127.0.0.2", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                r = httpx.get(f"http://127.0.0.2:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not start")
        assert r.status_code == 200
        assert httpx.get(f"http://127.0.0.2:{port}/", timeout=10).status_code == 200
        assert httpx.get(f"http://127.0.0.2:{port}/", headers={"host": "evil.example"}, timeout=10).status_code == 400
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)

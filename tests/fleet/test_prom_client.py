"""The Prometheus HTTP API client: durations, the JSON envelope, and one-line errors for every failure."""

from __future__ import annotations

import http.server
import json
import threading

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiinfra.errors import AiinfraError
from aiinfra.fleet.prom import Prometheus, fmt_duration, parse_duration


@pytest.mark.parametrize("text,seconds", [("24h", 86400), ("1h30m", 5400), ("90s", 90), ("7d", 604800), ("500ms", 0.5),
                                          ("2w", 1209600), ("1y", 31536000), ("45", 45), (" 6h ", 21600)])
def test_prometheus_durations(text, seconds):
    """Units and composition as in the Prometheus duration grammar (docs/querying/basics.md: ms, s, m, h, d, w, y)."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "yesterday", "1h30", "h", "-1h", "0s", "1.5.h", "24 h", "nan", "inf"])
def test_bad_durations_are_one_sentence(text):
    with pytest.raises(AiinfraError) as e:
        parse_duration(text)
    assert "\n" not in str(e.value)


@given(st.text(max_size=12))
def test_any_text_is_a_duration_or_an_error(text):
    try:
        assert parse_duration(text) > 0
    except AiinfraError:
        pass


@given(st.integers(min_value=1, max_value=10**8))
def test_fmt_duration_round_trips(n):
    assert parse_duration(fmt_duration(n)) == n


def _mock(status: int, body: dict | str) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handler)


def test_values_are_strings_in_the_api_and_floats_here():
    """api.md: sample values are JSON strings so NaN and ±Inf survive; times are float seconds."""
    body = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"gpu": "0"}, "value": [1700000000.5, "NaN"]},
        {"metric": {"gpu": "1"}, "value": [1700000000.5, "+Inf"]},
        {"metric": {"gpu": "2"}, "value": [1700000000.5, "0.25"]}]}}
    with Prometheus("http://prom.test", transport=_mock(200, body)) as p:
        got = p.query("x")
    assert [s.labels["gpu"] for s in got] == ["0", "1", "2"]
    assert got[0].value != got[0].value and got[1].value == float("inf") and got[2].value == 0.25
    assert got[2].time == 1700000000.5


@pytest.mark.parametrize("status,kind", [(400, "bad_data"), (422, "execution"), (503, "timeout")])
def test_api_errors_become_one_line(status, kind):
    body = {"status": "error", "errorType": kind, "error": "something\nwent wrong"}
    with Prometheus("http://prom.test", transport=_mock(status, body)) as p, pytest.raises(AiinfraError) as e:
        p.query("up")
    msg = str(e.value)
    assert f"HTTP {status} {kind}" in msg and "something went wrong" in msg and "\n" not in msg


def test_unreachable_server():
    with Prometheus("http://127.0.0.1:9", timeout=2) as p, pytest.raises(AiinfraError, match="cannot reach Prometheus at http://127.0.0.1:9"):
        p.query("up")


def test_a_web_server_that_is_not_prometheus():
    class Html(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with Prometheus(f"http://127.0.0.1:{srv.server_address[1]}") as p, pytest.raises(AiinfraError, match="is not a Prometheus API"):
            p.query("up")
    finally:
        srv.shutdown()
        srv.server_close()


def test_url_must_be_http():
    with pytest.raises(AiinfraError, match="must start with http"):
        Prometheus("localhost:9090")


def test_queries_are_counted_for_the_benchmark():
    body = {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "2"]}}
    with Prometheus("http://prom.test", transport=_mock(200, body)) as p:
        p.query("1+1")
        p.query("2")
        assert p.log.count == 2 and p.log.expressions == ["1+1", "2"]


def test_range_queries_send_form_encoded_posts():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update({"method": request.method, "path": request.url.path, "body": request.content.decode()})
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"a": "b"}, "values": [[1, "1"], [2, "3"]]}]}})

    with Prometheus("http://prom.test/", transport=httpx.MockTransport(handler)) as p:
        (s,) = p.query_range('sum by (x) (rate(y{z="1"}[5m]))', 0, 60, 30)
    assert seen["method"] == "POST" and seen["path"] == "/api/v1/query_range"
    assert "step=30" in seen["body"] and json.dumps(s.values) == "[1.0, 3.0]"

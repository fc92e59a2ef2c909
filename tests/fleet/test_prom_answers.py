"""A server that says "success" but whose `data` is not what the Prometheus API gives (null, a string,
a list where a dict belongs, a sample value that is no number) is refused in one line, by every
client method and by analyze, chargeback and top, never a TypeError/KeyError traceback."""

from __future__ import annotations

import http.server
import json
import threading

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfra.errors import AiinfraError
from aiinfra.fleet.prom import Prometheus
from tests.conftest import assert_one_line_error

CALLS = {
    "query": lambda p: p.query("up"),
    "raw": lambda p: p.raw("up", "5m"),
    "query_range": lambda p: p.query_range("up", 0, 60, 15),
    "series": lambda p: p.series(["up"]),
    "labels": lambda p: p.labels(),
    "label_values": lambda p: p.label_values("__name__"),
    "targets": lambda p: p.targets(),
    "alerts": lambda p: p.alerts(),
}
BAD_DATA = [
    None, "abc", 1, [], {}, [1, 2], {"resultType": "vector"}, {"resultType": "vector", "result": None},
    {"resultType": "vector", "result": [{"metric": {}, "value": [1, "abc"]}]},
    {"resultType": "vector", "result": [{"metric": None, "value": [1, "1"]}]},
    {"resultType": "vector", "result": [{"metric": {"a": 1}, "value": [1, "1"]}]},
    {"resultType": "vector", "result": [{"metric": {}, "value": [1]}]},
    {"resultType": "vector", "result": [{"metric": {}, "value": ["x", "1"]}]},
    {"resultType": "vector", "result": [{"metric": {}}]},
    {"resultType": "scalar", "result": None},
    {"resultType": "matrix", "result": [{"metric": {}, "values": None}]},
    {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, None]]}]},
    {"resultType": "matrix", "result": {"metric": {}}},
    [{"a": 1}], [None], {"activeTargets": None}, {"alerts": "x"},
]


def _client(body) -> Prometheus:
    return Prometheus("http://prom.test", transport=httpx.MockTransport(lambda req: httpx.Response(200, json=body)))


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("data", BAD_DATA, ids=[json.dumps(d)[:40] for d in BAD_DATA])
def test_a_success_answer_with_foreign_data_is_one_line(name, data):
    with _client({"status": "success", "data": data}) as p:
        try:
            got = CALLS[name](p)
        except AiinfraError as e:
            assert "\n" not in str(e)
            return
    # A few shapes are legal for some calls ([] is an empty label list); what comes back is well typed.
    assert isinstance(got, list)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_null_data_is_not_a_prometheus_answer(name):
    with _client({"status": "success", "data": None}) as p, pytest.raises(AiinfraError, match="not a Prometheus API response"):
        CALLS[name](p)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_success_without_data_is_refused(name):
    with _client({"status": "success"}) as p, pytest.raises(AiinfraError, match="not a Prometheus API response"):
        CALLS[name](p)


@pytest.mark.parametrize("body", [[1, 2], "success", 3, None])
def test_an_envelope_that_is_not_an_object(body):
    for name in ("label_values", "targets", "query"):
        with _client(body) as p, pytest.raises(AiinfraError, match="is not a Prometheus API"):
            CALLS[name](p)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(
                        ["resultType", "result", "metric", "value", "values", "alerts", "activeTargets", "a"]), kids, max_size=4),
                    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(data=JSON, name=st.sampled_from(sorted(CALLS)))
def test_any_data_gives_a_result_or_one_line(data, name):
    with _client({"status": "success", "data": data}) as p:
        try:
            CALLS[name](p)
        except AiinfraError as e:
            assert "\n" not in str(e)


@pytest.fixture(scope="module")
def null_server():
    class Null(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            body = b'{"status":"success","data":null}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Null)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("argv", [("analyze", "-r", "1h"), ("chargeback", "-r", "1h"), ("top", "--once")])
def test_commands_refuse_a_null_answer_in_one_line(cli, null_server, argv):
    r = cli(argv[0], "-p", null_server, *argv[1:])
    assert_one_line_error(r, "not a Prometheus API response")

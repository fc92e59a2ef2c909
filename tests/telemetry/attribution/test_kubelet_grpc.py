"""The exporter against a real gRPC PodResources v1 server on a unix socket (grpcio, our proto).

The server is `simkubelet.PodResourcesServer`, a grpcio server with the servicer generated from
podresources.proto; the client is the exporter's own. Bad kubelets: missing socket, a path that is
not a socket, a socket nobody accepts on, a server that hangs past the deadline, one that answers
bytes that are not PodResources, one that is not gRPC at all, and one without `Get`.
"""

from __future__ import annotations

import os
import socket
import threading
from concurrent import futures

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiinfra.telemetry.attribution import Attribution, AttributionConfig
from aiinfra.telemetry.attribution.podresources import KubeletError, PodResourcesClient
from aiinfra.telemetry.attribution.simkubelet import PodResourcesServer, SimPod, assign_pods
from aiinfra.telemetry.exporter import Exporter, ExporterConfig, Source
from aiinfra.telemetry.nvml import Collector
from aiinfra.telemetry.simulate import Fleet, ManualClock, parse_spec


@pytest.fixture
def short_tmp():
    """Unix socket paths must stay under 108 bytes; pytest's tmp_path can be longer."""
    import tempfile

    d = tempfile.mkdtemp(prefix="aiinfra-k-")
    yield d
    import shutil

    shutil.rmtree(d, ignore_errors=True)


def sim_host(spec="gpus=4,seed=1"):
    clock = ManualClock(100.0)
    host = Fleet(parse_spec(spec), clock=clock).hosts[0]
    return host, Collector(lib=host, host=host.name, clock=clock)


def samples(body: bytes, name: str) -> list:
    return [s for fam in text_string_to_metric_families(body.decode()) for s in fam.samples if s.name == name]


def exporter_with(attr: Attribution, col: Collector) -> Exporter:
    cfg = ExporterConfig(attribution=attr)
    attr.collectors = {col.host: col}
    return Exporter([Source(col.host, col)], cfg, 1.0)


def test_list_and_get_over_the_socket(short_tmp):
    host, _ = sim_host()
    pods = assign_pods(host)
    path = os.path.join(short_tmp, "kubelet.sock")
    server = PodResourcesServer(path, pods).start()
    try:
        client = PodResourcesClient(path, timeout_s=5)
        resp = client.list()
        assert {(p.namespace, p.name) for p in resp.pod_resources} == {(p.namespace, p.name) for p in pods}
        one = client.get(pods[0].name, pods[0].namespace)
        assert one.name == pods[0].name and one.containers[0].name == sorted(set(pods[0].devices) | set(pods[0].claims))[0]
        with pytest.raises(KubeletError) as e:
            client.get("nope", "default")
        assert e.value.reason == "error"  # NOT_FOUND from the kubelet
        assert server.calls == {"List": 1, "Get": 2}
        client.close()
    finally:
        server.stop()


def test_exporter_labels_every_gpu_its_pod_holds(short_tmp):
    host, col = sim_host("gpus=8,seed=1")
    path = os.path.join(short_tmp, "kubelet.sock")
    server = PodResourcesServer(path, assign_pods(host)).start()
    try:
        attr = Attribution(AttributionConfig(kubernetes=True, sockets={host.name: path}))
        exp = exporter_with(attr, col)
        attr.refresh_once()
        exp.collect_once()
        util = samples(exp.body, "DCGM_FI_DEV_GPU_UTIL")
        by_gpu: dict[str, list[dict]] = {}
        for s in util:
            by_gpu.setdefault(s.labels["gpu"], []).append(s.labels)
        patterns = {str(g.index): g.pattern for g in host.gpus}
        for gpu, label_sets in by_gpu.items():
            if patterns[gpu] == "training":
                assert [ls["pod"] for ls in label_sets] == [f"pretrain-{host.name}"]
                assert label_sets[0]["namespace"] == "research" and label_sets[0]["container"] == "trainer"
        shared = [ls for sets in by_gpu.values() for ls in sets if ls.get("vgpu")]
        assert sorted(ls["vgpu"] for ls in shared) == ["1", "2"]  # the time-sliced GPU: one series per replica
        assert samples(exp.body, "aiinfra_kubelet_podresources_up")[0].value == 1
        # label order: dcgm-exporter's template, then attributes sorted by name
        line = next(x for x in exp.body.decode().splitlines() if x.startswith("DCGM_FI_DEV_GPU_UTIL{") and "pod=" in x)
        assert line.index("DCGM_FI_DRIVER_VERSION") < line.index("container=") < line.index("namespace=") < line.index("pod=")
    finally:
        server.stop()


def test_mig_instances_get_their_own_pods(short_tmp):
    host, col = sim_host("gpus=2,seed=3,model=h100-sxm,mig=3g.40gb+2g.20gb+1g.10gb,workload=mixed")
    path = os.path.join(short_tmp, "kubelet.sock")
    server = PodResourcesServer(path, assign_pods(host)).start()
    try:
        attr = Attribution(AttributionConfig(kubernetes=True, sockets={host.name: path}))
        exp = exporter_with(attr, col)
        attr.refresh_once()
        exp.collect_once()
        fb = samples(exp.body, "DCGM_FI_DEV_FB_USED")
        owned = {(s.labels["gpu"], s.labels["GPU_I_ID"]): s.labels.get("pod") for s in fb}
        for g in host.gpus:
            for m in g.migs:
                pod = owned[(str(g.index), str(m.gi_id))]
                if m.pattern == "inference":
                    assert pod == f"triton-{host.name}-g{g.index}-mig{m.gi_id}"
                elif m.pattern == "training":
                    assert pod == f"finetune-{host.name}-g{g.index}"
    finally:
        server.stop()


class _Garbage(grpc.GenericRpcHandler):
    """Answers List with bytes that do not decode as ListPodResourcesResponse."""

    def service(self, details):
        if details.method == "/v1.PodResourcesLister/List":
            return grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"\xff\xff\xff\xff\x0f", request_deserializer=None, response_serializer=None)
        return None


class _ListOnly(grpc.GenericRpcHandler):
    def service(self, details):
        return None  # every method UNIMPLEMENTED


def _generic_server(path, handler):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"unix://{path}")
    server.start()
    return server


def _junk_socket_server(path):
    """A unix socket that accepts and writes junk: not HTTP/2, not gRPC."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    stop = threading.Event()

    def run():
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = s.accept()
            except OSError:
                continue
            try:
                conn.sendall(b"HTTP/1.0 500 nope\r\n\r\n" + os.urandom(64))
            except OSError:
                pass
            conn.close()

    threading.Thread(target=run, daemon=True).start()
    return lambda: (stop.set(), s.close())


@pytest.mark.parametrize("kind", ["missing", "not_socket", "refused", "timeout", "garbage", "junk", "unimplemented"])
def test_bad_kubelet_never_stops_a_scrape(short_tmp, kind):
    host, col = sim_host()
    path = os.path.join(short_tmp, "kubelet.sock")
    cleanup = lambda: None  # noqa: E731
    expect = kind
    if kind == "not_socket":
        open(path, "w").write("not a socket")
    elif kind == "refused":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)  # bound, never listening: connect() is refused
        cleanup = s.close
    elif kind == "timeout":
        server = PodResourcesServer(path, assign_pods(host), delay_s=30).start()
        cleanup = server.stop
    elif kind == "garbage":
        server = _generic_server(path, _Garbage())
        cleanup = lambda: server.stop(None)  # noqa: E731
    elif kind == "junk":
        cleanup = _junk_socket_server(path)
        expect = ("garbage", "refused", "error")
    elif kind == "unimplemented":
        server = _generic_server(path, _ListOnly())
        cleanup = lambda: server.stop(None)  # noqa: E731
    try:
        attr = Attribution(AttributionConfig(kubernetes=True, sockets={host.name: path}, timeout_s=0.5))
        exp = exporter_with(attr, col)
        attr.refresh_once()
        exp.collect_once()
        util = samples(exp.body, "DCGM_FI_DEV_GPU_UTIL")
        assert len(util) == 4 and all("pod" not in s.labels for s in util)  # served, labels left out
        assert samples(exp.body, "aiinfra_kubelet_podresources_up")[0].value == 0
        now = [s.labels["reason"] for s in samples(exp.body, "aiinfra_kubelet_podresources_status")]
        assert now == [expect] if isinstance(expect, str) else now[0] in expect
        errors = {s.labels["reason"]: s.value for s in samples(exp.body, "aiinfra_kubelet_podresources_errors_total")}
        assert errors[now[0]] == 1
    finally:
        cleanup()


def test_last_good_mapping_outlives_a_short_outage_then_goes(short_tmp):
    host, col = sim_host()
    path = os.path.join(short_tmp, "kubelet.sock")
    server = PodResourcesServer(path, assign_pods(host)).start()
    attr = Attribution(AttributionConfig(kubernetes=True, sockets={host.name: path}, timeout_s=0.5, stale_after_s=3600))
    exp = exporter_with(attr, col)
    attr.refresh_once()
    server.stop()  # grpcio removes the socket file: the kubelet is gone
    attr.refresh_once()  # kubelet gone: within the stale limit, labels stay
    exp.collect_once()
    assert any("pod" in s.labels for s in samples(exp.body, "DCGM_FI_DEV_GPU_UTIL"))
    assert samples(exp.body, "aiinfra_kubelet_podresources_up")[0].value == 0
    attr.stale_after_s = 0.0
    attr.refresh_once()  # past the limit: labels left out
    exp.collect_once()
    assert not any("pod" in s.labels for s in samples(exp.body, "DCGM_FI_DEV_GPU_UTIL"))


def test_pods_that_change_relabel_on_the_next_refresh(short_tmp):
    host, col = sim_host()
    path = os.path.join(short_tmp, "kubelet.sock")
    pods: list[SimPod] = []
    server = PodResourcesServer(path, lambda: pods).start()
    try:
        attr = Attribution(AttributionConfig(kubernetes=True, sockets={host.name: path}))
        exp = exporter_with(attr, col)
        attr.refresh_once()
        exp.collect_once()
        assert not any("pod" in s.labels for s in samples(exp.body, "DCGM_FI_DEV_GPU_UTIL"))
        pods.append(SimPod("ml", "late-pod", "uid", devices={"c": [host.gpus[2].uuid]}))
        attr.refresh_once()
        exp.collect_once()
        owned = [s.labels["gpu"] for s in samples(exp.body, "DCGM_FI_DEV_GPU_UTIL") if s.labels.get("pod") == "late-pod"]
        assert owned == ["2"]
    finally:
        server.stop()


def test_scrape_answers_while_the_kubelet_hangs(short_tmp):
    """The refresh thread is stuck in a List the kubelet never answers; scrapes still get every GPU."""
    import http.client
    import time

    from aiinfra.telemetry.exporter import serve

    host, col = sim_host()
    path = os.path.join(short_tmp, "kubelet.sock")
    server = PodResourcesServer(path, assign_pods(host), delay_s=60).start()
    attr = Attribution(AttributionConfig(kubernetes=True, sockets={host.name: path}, timeout_s=30, interval_s=0.2))
    exp = exporter_with(attr, col)
    exp.start()
    attr.start()
    http_server = serve(exp, port=0)
    try:
        deadline = time.monotonic() + 30
        while server.calls["List"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.calls["List"] == 1  # the List is in flight (the server holds it for 60 s)
        exp.collect_once()
        c = http.client.HTTPConnection("127.0.0.1", http_server.server_address[1], timeout=10)
        c.request("GET", "/metrics")
        body = c.getresponse().read()
        assert len(samples(body, "DCGM_FI_DEV_GPU_UTIL")) == 4
        assert [s.labels["reason"] for s in samples(body, "aiinfra_kubelet_podresources_status")] == ["pending"]
        assert samples(body, "aiinfra_kubelet_podresources_up")[0].value == 0
    finally:
        http_server.shutdown()
        http_server.server_close()
        server.stop()
        attr.stop()
        exp.stop()

"""GPUs that go and come back (issue 17): lost and returned, XID 79, a driver reload, a hot-added GPU,
with the series, aiinfra_ metrics and /healthz following. The real nvml.Collector runs over the
simulated host's pynvml calls; time is moved by hand."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from aiinfra.telemetry.exporter import Exporter, ExporterConfig, Source, serve
from aiinfra.telemetry.nvml import Collector
from aiinfra.telemetry.simulate import Fleet, ManualClock, parse_spec


def _setup(spec: str, t0: float = 5.0):
    clock = ManualClock(t0)
    host = Fleet(parse_spec(spec), clock=clock).hosts[0]
    col = Collector(lib=host, host=host.name, clock=clock, reprobe_s=5.0)
    exp = Exporter([Source(host.name, col)], ExporterConfig(), 60.0)
    return exp, clock


def _state(exp: Exporter) -> tuple[dict, dict]:
    exp.collect_once()
    fams = {f.name: f for f in text_string_to_metric_families(exp.body.decode())}
    gpus = {s.labels["gpu"] for s in fams["DCGM_FI_DEV_GPU_TEMP"].samples}
    return fams, {"gpus": gpus, "lost": {s.labels["gpu"]: s.value for s in fams["aiinfra_gpu_lost"].samples}, "health": exp.health()}


def test_gpu_lost_then_returned():
    exp, clock = _setup("gpus=4,seed=1,faults=lost:g2@10-20")
    _, st = _state(exp)
    assert st["gpus"] == {"0", "1", "2", "3"} and st["health"][0]
    clock.advance(6)  # t=11
    fams, st = _state(exp)
    assert st["gpus"] == {"0", "1", "3"} and st["lost"]["2"] == 1 and st["health"][0]
    seen = {s.labels["gpu"]: s.value for s in fams["aiinfra_gpu_last_seen_timestamp_seconds"].samples}
    assert seen["2"] == 5.0 and seen["0"] == 11.0  # when the lost GPU was last read
    clock.advance(10)  # t=21: back; the next re-probe picks it up again
    _, st = _state(exp)
    assert st["gpus"] == {"0", "1", "2", "3"} and st["lost"]["2"] == 0


def test_xid79_is_exported_while_the_gpu_is_gone():
    """XID 79 (fallen off the bus) takes the GPU away; its last-XID series stays, with err_code 79 and
    the windowed count, next to aiinfra_gpu_lost=1, so rules and analysis can say what happened."""
    exp, clock = _setup("gpus=2,seed=1,faults=xid79:g1@10")
    clock.advance(6)
    fams, st = _state(exp)
    assert st["gpus"] == {"0"} and st["lost"]["1"] == 1
    xid = [(s.labels["gpu"], s.value, s.labels["err_code"], s.labels["err_msg"]) for s in fams["DCGM_FI_DEV_XID_ERRORS"].samples]
    assert xid == [("0", 0, "0", "No Error"), ("1", 79, "79", "GPU has fallen off the bus")]
    counts = [(s.labels["gpu"], s.value) for s in fams["DCGM_EXP_XID_ERRORS_COUNT"].samples if s.labels.get("xid") == "79"]
    assert counts == [("1", 1)]


def test_driver_reload_series_and_healthz_follow():
    """A driver reload at t=30 (2 s unloaded): no GPU series and /healthz 503 while it is away, then
    nvmlShutdown+nvmlInit and re-enumeration bring every GPU back (the XID-79 one too: a reload resets it)."""
    exp, clock = _setup("gpus=3,seed=2,faults=xid79:g2@10+reload:g0@30")
    server = serve(exp, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        clock.advance(20)  # t=25
        _, st = _state(exp)
        assert st["gpus"] == {"0", "1"}
        assert httpx.get(f"{url}/healthz").status_code == 200
        clock.advance(6)  # t=31: driver unloaded
        fams, st = _state(exp)
        assert st["gpus"] == set() and not st["health"][0]
        r = httpx.get(f"{url}/healthz")
        assert r.status_code == 503 and "no GPU series" in r.text
        clock.advance(3)  # t=34: driver back
        _, st = _state(exp)
        assert st["gpus"] == {"0", "1", "2"} and set(st["lost"].values()) == {0}
        assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_new_gpu_is_picked_up():
    exp, clock = _setup("gpus=3,seed=1,faults=newgpu:g2@20")
    _, st = _state(exp)
    assert st["gpus"] == {"0", "1"}
    clock.advance(16)
    _, st = _state(exp)
    assert st["gpus"] == {"0", "1", "2"}


def test_healthz_when_every_gpu_is_lost():
    exp, clock = _setup("gpus=2,seed=1,faults=lost:g0@10+lost:g1@10")
    clock.advance(6)
    _, st = _state(exp)
    assert st["health"] == (False, "no GPU series can be read (2 GPUs lost)")

"""The DCGM backend: the real telemetry.dcgm code over the simulated fleet's DCGM binding calls
(telemetry.simdcgm), which answer with dcgm_agent's function names and dcgm_structs' shapes."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiinfra.errors import AiinfraError
from aiinfra.telemetry import dcgm
from aiinfra.telemetry.dcgm import DcgmCollector
from aiinfra.telemetry.exporter import Exporter, ExporterConfig, Source, families, render
from aiinfra.telemetry.nvml import Collector
from aiinfra.telemetry.simdcgm import sim_bindings
from aiinfra.telemetry.simulate import Fleet, ManualClock, parse_spec


def _host(spec: str, t: float = 5.0):
    clock = ManualClock(t)
    return Fleet(parse_spec(spec), clock=clock).hosts[0], clock


def _fams(snap, cfg=None) -> dict:
    return {f.name: f for f in text_string_to_metric_families(render(families([snap], cfg or ExporterConfig())).decode())}


def test_a100_mig_instances_get_activity():
    """Twelve A100 MIG instances (4 GPUs x 3 GPU instances): DCGM's profiling module gives every
    instance DCGM_FI_PROF_GR_ENGINE_ACTIVE/TENSOR/DRAM, labelled GPU_I_PROFILE/GPU_I_ID, where NVML
    (no GPM before Hopper) has none; GPU_UTIL stays absent per instance (blank on MIG)."""
    host, clock = _host("gpus=4,model=a100-sxm4-80gb,seed=4,mig=3g.40gb+2g.20gb+1g.10gb")
    col = DcgmCollector(sim_bindings(host), host=host.name, clock=clock)
    fams = _fams(col.collect())
    for name in ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "DCGM_FI_PROF_DRAM_ACTIVE"):
        samples = fams[name].samples
        assert len(samples) == 12 and all(0.0 <= s.value <= 1.0 for s in samples)
        assert {(s.labels["gpu"], s.labels["GPU_I_ID"], s.labels["GPU_I_PROFILE"]) for s in samples} == {
            (str(g), str(gi), p) for g in range(4) for gi, p in ((1, "3g.40gb"), (2, "2g.20gb"), (3, "1g.10gb"))
        }
    assert fams["DCGM_FI_DEV_GPU_UTIL"].samples == []
    assert col.unreadable("prof-gr-engine-active") is None
    nvml = Collector(lib=_host("gpus=4,model=a100-sxm4-80gb,seed=4,mig=3g.40gb+2g.20gb+1g.10gb")[0], host="x")
    assert "Hopper" in nvml.unreadable("prof-gr-engine-active")


def test_dcgm_and_nvml_backends_agree():
    """Same simulated H100s, same instant: the non-profiling fields read through DCGM (legacy units turned
    to SI via the catalog scale) equal those read through NVML."""
    host, clock = _host("gpus=2,model=h100-sxm,seed=9")
    via_dcgm = DcgmCollector(sim_bindings(host), host=host.name, clock=clock).collect()
    host2, _ = _host("gpus=2,model=h100-sxm,seed=9")
    via_nvml = Collector(lib=host2, host=host2.name, clock=clock).collect()
    for a, b in zip(via_dcgm.entities, via_nvml.entities, strict=True):
        assert a.identity.uuid == b.identity.uuid
        for key in ("gpu-temp", "power-usage", "sm-clock", "fb-used", "fb-free", "gpu-util", "pcie-replay-counter", "total-energy-consumption"):
            assert a.values[key] == pytest.approx(b.values[key], rel=1e-3, abs=2**20), key


def test_mig_power_repeats_the_parent_value_as_dcgm_exporter_does():
    """What real dcgm-exporter emits for device-level fields on a MIG host: it watches GPU-instance
    entities only (internal/pkg/devicemonitoring/device_monitoring.go, monitorAllGPUInstances, @ d5e5f51)
    and DCGM answers a GPU-level field asked of a GPU instance with the parent GPU's value
    (dcgmlib/src/DcgmCacheManager.cpp @ 72fa3fe, 'GPU_I or GPU_CI - remap to parent GPU'). So every
    instance series carries the whole board's power; a plain sum() over series (NVIDIA's 'GPU Power
    Total' panel, grafana/dcgm-exporter-dashboard.json) counts a board once per instance, and the right
    total is the sum over boards of max by (UUID). Both our backends emit exactly that shape."""
    spec = "gpus=2,model=h100-sxm,seed=3,mig=3g.40gb+2g.20gb+1g.10gb,mig_gpus=1"
    host, clock = _host(spec)
    for col in (DcgmCollector(sim_bindings(host), host=host.name, clock=clock), Collector(lib=_host(spec)[0], host="x", clock=clock)):
        power = _fams(col.collect())["DCGM_FI_DEV_POWER_USAGE"].samples
        mig = [s for s in power if s.labels["gpu"] == "0"]
        assert len(mig) == 3 and len({s.value for s in mig}) == 1 and all("GPU_I_ID" in s.labels for s in mig)
        boards = {}
        for s in power:
            boards[s.labels["UUID"]] = max(boards.get(s.labels["UUID"], 0.0), s.value)
        naive = sum(s.value for s in power)
        assert naive > sum(boards.values())  # the plain sum over-counts the MIG board
        assert sum(boards.values()) == pytest.approx(mig[0].value + next(s.value for s in power if s.labels["gpu"] == "1"))


def test_lost_gpu_and_xid_through_dcgm():
    """DCGM answers DCGM_ST_GPU_IS_LOST for a lost GPU: its series go, aiinfra_gpu_lost says so; an XID
    (DCGM keeps the last code with its timestamp) shows as the last code and in the windowed count."""
    host, clock = _host("gpus=3,model=a100-sxm4-80gb,seed=2,faults=lost:g1@10+xid48:g2@6", t=5.0)
    col = DcgmCollector(sim_bindings(host), host=host.name, clock=clock)
    cfg = ExporterConfig()
    assert {s.labels["gpu"] for s in _fams(col.collect(), cfg)["DCGM_FI_DEV_GPU_TEMP"].samples} == {"0", "1", "2"}
    clock.advance(6)
    fams = _fams(col.collect(), cfg)
    assert {s.labels["gpu"] for s in fams["DCGM_FI_DEV_GPU_TEMP"].samples} == {"0", "2"}
    assert {s.labels["gpu"]: s.value for s in fams["aiinfra_gpu_lost"].samples} == {"0": 0, "1": 1, "2": 0}
    xid = fams["DCGM_FI_DEV_XID_ERRORS"].samples
    assert [(s.labels["gpu"], s.value, s.labels["err_code"]) for s in xid] == [("0", 0, "0"), ("2", 48, "48")]  # 0: no XID yet
    counts = [s for s in fams["DCGM_EXP_XID_ERRORS_COUNT"].samples if s.labels.get("xid") == "48"]
    assert [(s.labels["gpu"], s.value) for s in counts] == [("2", 1)]
    clock.advance(1)
    again = [s for s in _fams(col.collect(), cfg)["DCGM_EXP_XID_ERRORS_COUNT"].samples if s.labels.get("xid") == "48"]
    assert [s.value for s in again] == [1]  # the same event is not counted twice


def test_exporter_serves_default_set_without_warnings_on_ampere():
    host, clock = _host("gpus=2,model=a100-sxm4-80gb,seed=1")
    exp = Exporter([Source(host.name, DcgmCollector(sim_bindings(host), host=host.name, clock=clock))], ExporterConfig(), 5.0)
    exp.collect_once()
    assert exp.unserved() == []
    exp.stop()


def test_bindings_missing_is_one_sentence(monkeypatch, cli):
    monkeypatch.setattr(dcgm, "BINDING_DIRS", ("/nonexistent/dcgm-bindings",))
    with pytest.raises(AiinfraError, match="not installed"):
        dcgm.load_bindings()
    r = cli("exporter", "--backend", "dcgm", "--once")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "DCGM" in r.err


def test_simulated_dcgm_backend_from_the_cli(cli):
    r = cli("exporter", "--simulate", "gpus=2,model=l40s,seed=1", "--backend", "dcgm", "--once")
    assert r.code == 0 and "PROF" not in r.err  # an L40S has no HBM temperature and no NVLink: only those are named
    assert "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL" in r.err and len(r.err.strip().splitlines()) == 1
    fams = {f.name: f for f in text_string_to_metric_families(r.out)}
    assert len(fams["DCGM_FI_PROF_GR_ENGINE_ACTIVE"].samples) == 2


def test_lost_gpu_returns_through_dcgm():
    host, clock = _host("gpus=2,model=a100-sxm4-80gb,seed=2,faults=lost:g1@10-20", t=5.0)
    col = DcgmCollector(sim_bindings(host), host=host.name, clock=clock)
    clock.advance(6)
    assert {s.labels["gpu"] for s in _fams(col.collect())["DCGM_FI_DEV_GPU_TEMP"].samples} == {"0"}
    clock.advance(10)
    fams = _fams(col.collect())
    assert {s.labels["gpu"] for s in fams["DCGM_FI_DEV_GPU_TEMP"].samples} == {"0", "1"}
    assert {s.labels["gpu"]: s.value for s in fams["aiinfra_gpu_lost"].samples} == {"0": 0, "1": 0}


def test_gpu_health_status_from_dcgm_health_watches():
    """DCGM_EXP_GPU_HEALTH_STATUS as dcgm-exporter builds it (gpu_health_collector.go @ d5e5f51): one series
    per GPU and health system (PCIE … DRIVER, ALL), value 0 pass / 10 warn / 20 fail, with health_watch and
    health_error_code labels; the simulated nvlink and pcie faults show as incidents of their systems."""
    host, clock = _host("gpus=3,model=h100-sxm,seed=5,faults=nvlink:g1@0+pcie:g2@0")
    col = DcgmCollector(sim_bindings(host), host=host.name, clock=clock)
    fams = _fams(col.collect(), ExporterConfig(counters="all"))
    series = {(s.labels["gpu"], s.labels["health_watch"]): (s.labels["health_error_code"], s.value) for s in fams["DCGM_EXP_GPU_HEALTH_STATUS"].samples}
    assert len(series) == 3 * 11
    assert series[("1", "NVLINK")] == ("DCGM_FR_NVLINK_DOWN", 20)
    assert series[("2", "PCIE")] == ("DCGM_FR_PCIE_WIDTH", 10)
    assert series[("0", "NVLINK")] == ("DCGM_FR_OK", 0)
    assert sum(1 for _, v in series.values() if v) == 2
    nvml = Collector(lib=_host("gpus=1,seed=1")[0], host="x")
    assert "--backend dcgm" in nvml.unreadable("exp-gpu-health-status")

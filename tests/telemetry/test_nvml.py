"""The collector on the simulated fleet through pynvml's own function names (monkeypatched)."""

from __future__ import annotations

import pynvml
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfra.errors import AiinfraError
from aiinfra.telemetry.nvml import Collector
from aiinfra.telemetry.simulate import Fleet, ManualClock, parse_spec
from tests.conftest import assert_one_line_error


def test_memory_v2_semantics(sim):
    """v2: total = used + free + reserved and `used` excludes reserved (how DCGM reads FB on R510+,
    reference §5.3); the v1 struct folds reserved into used, which the collector never uses."""
    col, _host, clock = sim("gpus=2,seed=1,workload=training")
    clock.advance(10)
    v = col.collect().entities[0].values
    assert v["fb-total"] == v["fb-used"] + v["fb-free"] + v["fb-reserved"]
    assert v["fb-total"] == 81559 * 2**20  # H100 SXM as nvidia-smi reports it (catalog memory_total_mib)
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    v1 = pynvml.nvmlDeviceGetMemoryInfo(h)
    assert v1.used == v["fb-used"] + v["fb-reserved"]


def test_units_are_si(sim):
    """NVML mW → W, mJ → J, MHz → Hz, % → ratio (conventions: SI inside aiinfra)."""
    col, _host, clock = sim("gpus=1,seed=1,workload=training")
    clock.advance(30)
    v = col.collect().entities[0].values
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert v["power-usage"] == pynvml.nvmlDeviceGetPowerUsage(h) / 1000
    assert v["total-energy-consumption"] == pynvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1000
    assert v["sm-clock"] == pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM) * 1e6
    assert v["gpu-util"] == pynvml.nvmlDeviceGetUtilizationRates(h).gpu / 100
    assert 0.8 <= v["gpu-util"] <= 1.0 and 0.0 <= v["prof-gr-engine-active"] <= 1.0


def test_counters_are_monotonic_and_nvlink_is_a_rate(sim):
    col, _host, clock = sim("gpus=2,seed=1,workload=training")
    seen = []
    for _ in range(5):
        clock.advance(7)
        seen.append(col.collect().entities[0].values)
    energy = [v["total-energy-consumption"] for v in seen]
    assert energy == sorted(energy) and energy[0] < energy[-1]
    rates = [v["nvlink-bandwidth-total"] for v in seen]
    # A rate in B/s: steady for a steady workload, far below the 900 GB/s per-GPU NVLink ceiling.
    assert max(rates) < 900e9 and max(rates) - min(rates) < 0.01 * max(rates)


def test_workload_patterns(sim):
    col, _host, clock = sim("gpus=1,seed=1,workload=leak")
    clock.advance(60)
    early = col.collect().entities[0].values["fb-used"]
    clock.advance(600)
    late = col.collect().entities[0].values["fb-used"]
    assert late > early * 1.5
    col, _host, clock = sim("gpus=1,seed=1,workload=idle")
    clock.advance(30)
    snap = col.collect()
    v = snap.entities[0].values
    assert v["gpu-util"] == 0 and int(v["clocks-event-reasons"]) & 0x001  # gpu_idle
    assert snap.gpus[0].processes == []


def test_processes_with_memory(sim):
    col, _host, clock = sim("gpus=2,seed=1,workload=training")
    clock.advance(30)
    snap = col.collect()
    procs = snap.gpus[0].processes
    assert len(procs) == 1 and procs[0].used_bytes and procs[0].used_bytes < snap.entities[0].values["fb-used"]
    col, _host, clock = sim("gpus=1,seed=1,workload=training,mig=3g.40gb+3g.40gb")
    clock.advance(30)
    procs = col.collect().gpus[0].processes
    assert {p.gi_id for p in procs} == {1, 2} and all(p.used_bytes is None for p in procs)  # N/A with MIG


def test_one_failing_gpu_does_not_stop_the_others(sim, monkeypatch):
    """An unexpected NVML error on one GPU's call is counted; that field is absent; everything else goes on."""
    col, host, clock = sim("gpus=3,seed=1")
    real = host.nvmlDeviceGetTemperature

    def flaky(h, sensor):
        if h.index == 1:
            raise pynvml.NVMLError_Unknown()
        return real(h, sensor)

    monkeypatch.setattr(pynvml, "nvmlDeviceGetTemperature", flaky)
    clock.advance(2)
    snap = col.collect()
    by_gpu = {e.identity.gpu: e.values for e in snap.entities}
    assert set(by_gpu) == {0, 1, 2}
    assert "gpu-temp" not in by_gpu[1] and "gpu-temp" in by_gpu[0] and "power-usage" in by_gpu[1]
    assert snap.errors == {0: 0, 1: 1, 2: 0}

    def broken(h, kind):
        if h.index == 2:
            raise RuntimeError("binding skew")
        return host.nvmlDeviceGetClockInfo(h, kind)

    monkeypatch.setattr(pynvml, "nvmlDeviceGetClockInfo", broken)
    snap = col.collect()
    assert {e.identity.gpu for e in snap.entities} == {0, 1} and snap.errors[2] == 1


def test_gpu_lost_is_sticky_and_counted(sim):
    col, _host, clock = sim("gpus=3,seed=1,faults=lost:g1@5")
    clock.advance(6)
    snap = col.collect()
    assert {e.identity.gpu for e in snap.entities} == {0, 2} and snap.lost == {1} and snap.errors[1] == 1
    assert snap.gpus[1].lost and snap.gpus[1].uuid
    snap = col.collect()
    assert snap.lost == {1} and snap.errors[1] == 1  # counted once, no NVML calls on a lost GPU


def test_deterministic(sim):
    a = Fleet(parse_spec("hosts=2,gpus=4,seed=9"), clock=ManualClock(42.0))
    b = Fleet(parse_spec("hosts=2,gpus=4,seed=9"), clock=ManualClock(42.0))
    va = [e.values for e in Collector(lib=a.hosts[1]).collect().entities]
    vb = [e.values for e in Collector(lib=b.hosts[1]).collect().entities]
    for x, y in zip(va, vb, strict=True):
        assert {k: v for k, v in x.items() if k != "nvlink-bandwidth-total"} == {k: v for k, v in y.items() if k != "nvlink-bandwidth-total"}
    c = Fleet(parse_spec("hosts=2,gpus=4,seed=10"), clock=ManualClock(42.0))
    assert [g.uuid for g in c.hosts[1].gpus] != [g.uuid for g in a.hosts[1].gpus]


def test_speed_runs_the_schedule_faster():
    fleet = Fleet(parse_spec("gpus=1,speed=1000,faults=lost:g0@0.5"))
    import time

    time.sleep(0.01)
    assert fleet.hosts[0].is_lost(0, fleet.clock())


def test_no_nvml_is_one_line(cli, monkeypatch):
    def missing():
        raise pynvml.NVMLError_LibraryNotFound()

    monkeypatch.setattr(pynvml, "nvmlInit", missing)
    with pytest.raises(AiinfraError, match="NVML is not available"):
        Collector()
    assert_one_line_error(cli("exporter", "--once"), "NVML is not available", "--simulate")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="hostsgpumdelwrkfaliq=,+:@.-0123456789xabcn", max_size=60))
def test_spec_parser_gives_a_spec_or_one_sentence(text):
    """Random --simulate strings: a FleetSpec or an AiinfraError with one line, nothing else."""
    try:
        spec = parse_spec(text)
    except AiinfraError as e:
        assert "\n" not in str(e) and str(e)
    else:
        assert spec.hosts >= 1 and spec.gpus >= 1


def test_mig_profiles_from_the_mig_catalog(tmp_path, cli):
    """With a MIG profile table (kind mig_profiles, matched by PCI device ID) the simulator uses its
    names and memory, e.g. the 4-slice A30 (MIG User Guide: 1g.6gb, 2g.12gb, 4g.24gb)."""
    from aiinfra.catalog.gpus import gpu
    from aiinfra.catalog.loader import set_user_catalogs
    from aiinfra.telemetry.simulate import mig_profiles

    (tmp_path / "cat.yaml").write_text(
        """gpus:
  a30-test: {name: NVIDIA A30, architecture: ampere, memory_gb: 24, memory_type: HBM2, memory_bw_gbps: 933,
             tflops: {fp32: 10.3, bf16: 165}, nvlink_gbps: 200, pcie_gen: 4, form_factor: pcie, tdp_w: 165,
             mig: true, mig_max_instances: 4, pci_device_id: "0x20B7", source: test}
mig_profiles:
  "0x20b7": {pci_device_ids: ["0x20B7"], profiles: [{name: 1g.6gb}, {name: 1g.6gb+me}, {name: 2g.12gb, usable_gib: 11.69}, {name: 4g.24gb, usable_gib: 23.5}]}
"""
    )
    set_user_catalogs([tmp_path / "cat.yaml"])
    table = mig_profiles(gpu("a30-test"))
    assert table["2g.12gb"] == (2, int(11.69 * 2**30) // 2**20 * 2**20) and table["4g.24gb"][0] == 4
    spec = parse_spec("gpus=1,model=a30-test,mig=2g.12gb+1g.6gb+me+1g.6gb")
    assert spec.mig == ("2g.12gb", "1g.6gb+me", "1g.6gb")
    clock = ManualClock(1.0)
    snap = Collector(lib=Fleet(spec, clock=clock).hosts[0], clock=clock).collect()
    assert [e.identity.gi_profile for e in snap.entities] == ["2g.12gb", "1g.6gb+me", "1g.6gb"]
    with pytest.raises(AiinfraError, match="has 4"):
        parse_spec("gpus=1,model=a30-test,mig=4g.24gb+1g.6gb")
    with pytest.raises(AiinfraError, match="valid: 1g.6gb"):
        parse_spec("gpus=1,model=a30-test,mig=3g.20gb")


def test_default_geometry_names():
    """Without the MIG table: NVIDIA's names from 7 compute / 8 memory slices (H100 80 GB: 1g.10gb … 7g.80gb)."""
    from aiinfra.catalog.gpus import gpu
    from aiinfra.telemetry.simulate import mig_profiles

    names = set(mig_profiles(gpu("h100-sxm")))
    assert {"1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"} <= names


def test_non_nvidia_model_is_refused(tmp_path):
    from aiinfra.catalog.loader import set_user_catalogs

    (tmp_path / "amd.yaml").write_text(
        "gpus:\n  mi-test: {name: AMD Instinct, vendor: amd, architecture: cdna3, memory_gb: 192, memory_type: HBM3, memory_bw_gbps: 5300,"
        " tflops: {bf16: 1307}, nvlink_gbps: 0, pcie_gen: 5, form_factor: oam, tdp_w: 750, mig: false, source: test}\n"
    )
    set_user_catalogs([tmp_path / "amd.yaml"])
    try:
        with pytest.raises(AiinfraError, match="AMD GPU"):
            parse_spec("model=mi-test")
    finally:
        set_user_catalogs([])


def test_a_power_limited_part_reports_and_draws_its_limit(sim):
    """Meta's Grand Teton H100 runs at a 500 W default limit on a 700 W part (torchtitan's benchmark hardware notes;
    catalog gpus.yaml h100-sxm-hbm2e-96gb power_limit_w): NVML's enforced limit reads 500 W and the simulated
    draw stays under it, as a capped board's does."""
    col, _host, clock = sim("gpus=1,seed=1,workload=training,model=h100-sxm-hbm2e-96gb")
    clock.advance(30)
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlDeviceGetEnforcedPowerLimit(h) == 500_000
    assert 0 < col.collect().entities[0].values["power-usage"] <= 500

"""The exporter speaks dcgm-exporter's language: names, HELP, TYPE and labels from the catalog table."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from aiinfra.telemetry.exporter import ExporterConfig, families, render
from aiinfra.telemetry.fields import exported_fields

BASE_LABELS = ["gpu", "UUID", "pci_bus_id", "device", "modelName"]


def _parse(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _family_name(name: str, typ: str) -> str:
    # prometheus_client's parser keeps counter family names but strips a trailing _total.
    return name[:-6] if typ == "counter" and name.endswith("_total") else name


def test_output_parses_and_matches_default_counters(sim):
    """Family names, TYPE and HELP equal etc/default-counters.csv @ d5e5f51 (catalog table), every
    sample has dcgm-exporter's label set in its order (render_metrics.go template)."""
    col, _host, clock = sim("gpus=4,model=h100-sxm,seed=1")
    clock.advance(5)
    cfg = ExporterConfig()
    text = render(families([col.collect()], cfg)).decode()
    fams = _parse(text)
    expected = {f.legacy: f for f in exported_fields("legacy") if f.type != "label"}
    assert len(expected) == 26  # 25 active metric rows of default-counters.csv + the XID window count
    for name, f in expected.items():
        fam = fams[name]
        assert fam.type == f.type and fam.documentation == f.help, name
    for line in text.splitlines():
        if line.startswith("DCGM_"):
            keys = [kv.split("=", 1)[0] for kv in line[line.index("{") + 1 : line.rindex("}")].split('",')]
            assert keys[:5] == BASE_LABELS, line
            assert keys[5:7] == ["Hostname", "DCGM_FI_DRIVER_VERSION"], line
    # GPU_UTIL is an integer percent, PROF ratios are 0-1 doubles printed with %f.
    util = fams["DCGM_FI_DEV_GPU_UTIL"].samples
    assert len(util) == 4 and all(0 <= s.value <= 100 and float(s.value).is_integer() for s in util)
    assert all(0.0 <= s.value <= 1.0 for s in fams["DCGM_FI_PROF_GR_ENGINE_ACTIVE"].samples)
    assert "DCGM_FI_PROF_GR_ENGINE_ACTIVE{" in text and text.count(".") > 0
    # No XID happened: DCGM's last-code field reads 0, which dcgm-exporter prints with err_code "0" and
    # xid_errors.go's text for 0, "No Error"; one 0 window-count sample per GPU.
    xid = fams["DCGM_FI_DEV_XID_ERRORS"].samples
    assert [(s.value, s.labels["err_code"], s.labels["err_msg"]) for s in xid] == [(0, "0", "No Error")] * 4
    counts = fams["DCGM_EXP_XID_ERRORS_COUNT"].samples
    assert [s.value for s in counts] == [0, 0, 0, 0] and all("xid" not in s.labels for s in counts)


def test_mig_labels_and_fields(sim):
    """dcgm-exporter with MIG on (selector f) reports GPU instances only: device-wide fields repeat per
    instance with GPU_I_PROFILE/GPU_I_ID after modelName (render_metrics.go; issue #713), GPU_UTIL is
    absent (blank on MIG, issues #105/#430) and the PROF engine-activity fields are present."""
    col, host, clock = sim("gpus=2,model=h100-sxm,seed=3,mig=3g.40gb+2g.20gb+1g.10gb")
    clock.advance(3)
    fams = _parse(render(families([col.collect()], ExporterConfig(hostname_label="hostname"))).decode())
    assert fams["DCGM_FI_DEV_GPU_UTIL"].samples == []
    assert fams["DCGM_FI_DEV_MEM_COPY_UTIL"].samples == []
    for name in ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "DCGM_FI_PROF_DRAM_ACTIVE", "DCGM_FI_DEV_FB_USED"):
        samples = fams[name].samples
        assert len(samples) == 6, name
        assert {(s.labels["GPU_I_PROFILE"], s.labels["GPU_I_ID"]) for s in samples} == {("3g.40gb", "1"), ("2g.20gb", "2"), ("1g.10gb", "3")}
        assert list(samples[0].labels)[:8] == [*BASE_LABELS, "GPU_I_PROFILE", "GPU_I_ID", "hostname"]
    temps = fams["DCGM_FI_DEV_GPU_TEMP"].samples
    assert len(temps) == 6
    by_uuid: dict[str, set] = {}
    for s in temps:  # the parent's value, repeated on each of its instances (dedupe by UUID)
        by_uuid.setdefault(s.labels["UUID"], set()).add(s.value)
    assert len(by_uuid) == 2 and all(len(v) == 1 for v in by_uuid.values())
    # Instance memory is the instance's own: a 1g.10gb slice is an eighth of the GPU.
    fb = {s.labels["GPU_I_PROFILE"]: s.value for s in fams["DCGM_FI_DEV_FB_USED"].samples if s.labels["gpu"] == "0"}
    free = {s.labels["GPU_I_PROFILE"]: s.value for s in fams["DCGM_FI_DEV_FB_FREE"].samples if s.labels["gpu"] == "0"}
    assert fb["1g.10gb"] + free["1g.10gb"] == host.gpus[0].migs[2].memory_bytes // 2**20
    assert 9 * 2**10 < fb["1g.10gb"] + free["1g.10gb"] <= 81559 // 7


def test_dcgm49_naming_changes_names_units_and_driver_label(sim):
    """--naming dcgm4.9: DCGM 4.7 names, SI units (Hz, J, ratio, bytes, B/s) and the
    DCGM_FI_SYSTEM_DRIVER_VERSION label (exporter 4.9.0 release notes, reference §1)."""
    col, _host, clock = sim("gpus=1,model=h100-sxm,seed=1,workload=training")
    clock.advance(30)
    snap = col.collect()
    legacy = _parse(render(families([snap], ExporterConfig())).decode())
    new = _parse(render(families([snap], ExporterConfig(naming="dcgm4.9"))).decode())
    sm = legacy["DCGM_FI_DEV_SM_CLOCK"].samples[0].value
    assert new["DCGM_FI_DEV_SM_CLOCK_HERTZ"].samples[0].value == sm * 1e6
    assert new["DCGM_FI_DEV_FB_USED_BYTES"].samples[0].value // 2**20 == legacy["DCGM_FI_DEV_FB_USED"].samples[0].value
    assert abs(new["DCGM_FI_DEV_GPU_UTIL_RATIO"].samples[0].value * 100 - legacy["DCGM_FI_DEV_GPU_UTIL"].samples[0].value) <= 0.5
    assert "DCGM_FI_DEV_FB_CAPACITY_BYTES" in new and "DCGM_FI_DEV_FB_TOTAL" not in legacy
    assert "DCGM_FI_SYSTEM_DRIVER_VERSION" in new["DCGM_FI_DEV_GPU_TEMP_CELSIUS"].samples[0].labels
    assert "DCGM_FI_DRIVER_VERSION" not in new["DCGM_FI_DEV_GPU_TEMP_CELSIUS"].samples[0].labels
    energy_mj = legacy["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"].samples[0].value
    assert abs(new["DCGM_FI_DEV_ENERGY_CONSUMPTION_JOULES_TOTAL"].samples[0].value * 1000 - energy_mj) < 1


def test_unsupported_fields_are_absent_not_zero(sim):
    """L40S has GDDR6 and no NVLink/GPM: memory temperature, NVLink bandwidth and PROF fields are
    absent (NVML says not supported), never a made-up 0."""
    col, _host, clock = sim("gpus=2,model=l40s,seed=1")
    clock.advance(2)
    fams = _parse(render(families([col.collect()], ExporterConfig())).decode())
    for name in ("DCGM_FI_DEV_MEMORY_TEMP", "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_VGPU_LICENSE_STATUS"):
        assert fams[name].samples == [], name
    assert len(fams["DCGM_FI_DEV_GPU_TEMP"].samples) == 2
    assert len(fams["DCGM_FI_PROF_PCIE_TX_BYTES"].samples) == 2  # from nvmlDeviceGetPcieThroughput instead


def test_xid_last_code_and_window_count(sim):
    """XID_ERRORS is the last code with err_code/err_msg (xid_errors.go text); the window family counts
    each code, and a DBE raises 48 then 63 and leaves a row remap pending."""
    col, _host, clock = sim("gpus=2,seed=1,faults=xid31:g0@1+xid31:g0@2+xid13:g0@3+dbe:g1@4")
    clock.advance(5)
    fams = _parse(render(families([col.collect()], ExporterConfig(counters="all"))).decode())
    last = {s.labels["gpu"]: s for s in fams["DCGM_FI_DEV_XID_ERRORS"].samples}
    assert last["0"].value == 13 and last["0"].labels["err_msg"] == "Graphics Engine Exception"
    assert last["1"].value == 63 and last["1"].labels["err_code"] == "63"
    counts = {(s.labels["gpu"], s.labels.get("xid")): s.value for s in fams["DCGM_EXP_XID_ERRORS_COUNT"].samples}
    assert counts == {("0", "31"): 2, ("0", "13"): 1, ("1", "48"): 1, ("1", "63"): 1}
    pending = {s.labels["gpu"]: s.value for s in fams["DCGM_FI_DEV_ROW_REMAP_PENDING"].samples}
    assert pending == {"0": 0, "1": 1}
    dbe = {s.labels["gpu"]: s.value for s in fams["DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"].samples}
    assert dbe == {"0": 0, "1": 1}
    # The window forgets: 301 s later the counts are back to one 0 sample per GPU.
    clock.advance(301)
    fams = _parse(render(families([col.collect()], ExporterConfig())).decode())
    assert [s.value for s in fams["DCGM_EXP_XID_ERRORS_COUNT"].samples] == [0, 0]
    assert {s.labels["gpu"]: s.value for s in fams["DCGM_FI_DEV_XID_ERRORS"].samples} == {"0": 13, "1": 63}  # sticky


def test_throttling_faults_set_clock_event_bits(sim):
    """Thermal and power faults raise the clock-event reason bits of §5.6 and slow the SM clock."""
    col, _host, clock = sim("gpus=3,seed=1,workload=training,faults=thermal:g0@10-20+power:g1@10-20")
    clock.advance(12)
    vals = {e.identity.gpu: e.values for e in col.collect().entities}
    assert int(vals[0]["clocks-event-reasons"]) & 0x060 == 0x060  # sw_thermal | hw_thermal
    assert int(vals[1]["clocks-event-reasons"]) & 0x004  # power_cap
    assert vals[0]["sm-clock"] < vals[2]["sm-clock"] and vals[0]["gpu-temp"] >= 87
    clock.advance(10)
    vals = {e.identity.gpu: e.values for e in col.collect().entities}
    assert int(vals[0]["clocks-event-reasons"]) & 0x064 == 0
    assert vals[0]["thermal-violation"] == 10e9  # ns throttled, cumulative

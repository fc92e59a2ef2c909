"""Any dcgm-exporter field set starts: every row of the default, DCP and 1.x-compatibility CSVs
(our own fixture files with the same row names and types, commented rows enabled) is either served
or named in ONE start-up warning; NVLink and PCIe error counters follow the simulated faults."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiinfra.telemetry.exporter import Exporter, ExporterConfig, Source, families, render
from aiinfra.telemetry.fields import read_counters

FIXTURES = Path(__file__).parent / "fixtures" / "counters"
CSVS = ["default-counters-all-rows.csv", "dcp-metrics-included-all-rows.csv", "1.x-compatibility-metrics-all-rows.csv"]


def _names(path: Path) -> list[str]:
    return [line.split(",")[0].strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("csv_name", CSVS)
@pytest.mark.parametrize("model", ["h100-sxm", "a100-sxm4-80gb"])
def test_every_row_served_or_named_once(cli, csv_name, model):
    """Row counts of the upstream files @ d5e5f51: default 63 rows, DCP 59, 1.x 41 (commented ones included)."""
    path = FIXTURES / csv_name
    names = _names(path)
    assert len(names) == {"default-counters-all-rows.csv": 63, "dcp-metrics-included-all-rows.csv": 59}.get(csv_name, 41)
    r = cli("exporter", "--simulate", f"gpus=2,model={model},seed=1", "--collectors", str(path), "--once")
    assert r.code == 0, r.err
    warnings = [line for line in r.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) <= 1 and "Traceback" not in r.err
    served = {line.split()[2] for line in r.out.splitlines() if line.startswith("# TYPE ")}
    label_rows = {"DCGM_FI_DRIVER_VERSION", "DCGM_FI_NVML_VERSION", "DCGM_FI_DEV_BRAND", "DCGM_FI_DEV_SERIAL", "DCGM_FI_DEV_OEM_INFOROM_VER",
                  "DCGM_FI_DEV_ECC_INFOROM_VER", "DCGM_FI_DEV_POWER_INFOROM_VER", "DCGM_FI_DEV_INFOROM_IMAGE_VER", "DCGM_FI_DEV_VBIOS_VERSION"}
    for name in names:
        in_output = name in served or (name in label_rows and f',{name}="' in r.out)
        assert in_output or (warnings and name in warnings[0]), name
    if model.startswith("a100"):  # NVML has no GPM before Hopper: the PROF rows are skipped with the reason
        prof = [n for n in names if "PROF" in n.upper() and "PCIE" not in n.upper()]
        assert prof and all(n in warnings[0] for n in prof) and "--backend dcgm" in warnings[0]
        assert ("DCGM_FI_DEV_GPU_UTIL" in served) or ("dcgm_gpu_utilization" in served)


def test_label_rows_become_labels(cli):
    path = FIXTURES / "default-counters-all-rows.csv"
    r = cli("exporter", "--simulate", "gpus=1,seed=1", "--collectors", str(path), "--once")
    line = next(x for x in r.out.splitlines() if x.startswith("DCGM_FI_DEV_GPU_TEMP{"))
    for label in ("DCGM_FI_DRIVER_VERSION", "DCGM_FI_DEV_SERIAL", "DCGM_FI_DEV_VBIOS_VERSION", "DCGM_FI_DEV_BRAND"):
        assert f'{label}="' in line
    keys = [kv.split("=", 1)[0] for kv in line[line.index("{") + 1 : line.rindex("}")].split('",')]
    tail = keys[6:]
    assert tail == sorted(tail)  # label rows sorted by name, as render_metrics.go ranges a map


def test_nvlink_and_pcie_faults_raise_their_error_counters(sim):
    """The simulated `nvlink` fault raises the NVLink CRC/replay/recovery totals (DCGM 409/419/429/439, NVML
    NVLINK_*_ERROR_COUNT_TOTAL) and the `pcie` fault the PCIe replay and correctable-error counters, so the
    NVLink/PCIe rules (increase() over 15/10 minutes) can fire; other GPUs stay at their baseline."""
    rows, skipped = read_counters(FIXTURES / "default-counters-all-rows.csv")
    cfg = ExporterConfig(rows=tuple(rows), skipped=tuple(skipped))
    col, _host, clock = sim("gpus=4,model=h100-sxm,seed=2,faults=nvlink:g1@10-400+pcie:g2@10")

    def values(name: str) -> dict[str, float]:
        fams = {f.name: f for f in text_string_to_metric_families(render(families([col.collect()], cfg)).decode())}
        return {s.labels["gpu"]: s.value for s in fams[name].samples}

    clock.advance(5)
    before = {n: values(n) for n in ("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER")}
    clock.advance(600)
    after = {n: values(n) for n in before}
    for name in ("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL"):
        assert after[name]["1"] > before[name]["1"] and after[name]["0"] == before[name]["0"] == 0
    replays = after["DCGM_FI_DEV_PCIE_REPLAY_COUNTER"]["2"] - before["DCGM_FI_DEV_PCIE_REPLAY_COUNTER"]["2"]
    assert replays > 100  # above the AiinfraGPUPCIeReplays threshold (100 in 10 minutes)


def test_pcie_gpu_without_nvlink_reports_no_nvlink_error_series(sim):
    """A PCIe card answers NOT_SUPPORTED for the NVLink totals: no series (never a made-up 0)."""
    rows, skipped = read_counters(FIXTURES / "default-counters-all-rows.csv")
    col, _host, clock = sim("gpus=1,model=l40s,seed=1")
    clock.advance(2)
    snap = col.collect()
    assert "nvlink-crc-flit-error-total" not in snap.entities[0].values
    exp = Exporter([Source("x", col)], ExporterConfig(rows=tuple(rows), skipped=tuple(skipped)), 5.0)
    exp.collect_once()
    assert any(s.name == "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL" and "no GPU" in s.reason for s in exp.unserved())


def test_nvml_on_ampere_serves_gpu_util_and_says_why_prof_is_missing(cli):
    """issue 15: with NVML only on a pre-Hopper GPU (A100), the default set serves DCGM_FI_DEV_GPU_UTIL and
    says once at start-up which fields are unavailable and why (no GPM before Hopper; use DCGM)."""
    r = cli("exporter", "--simulate", "gpus=2,model=a100-sxm4-80gb,seed=1", "--backend", "nvml", "--once")
    assert r.code == 0
    warnings = [line for line in r.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    for name in ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "DCGM_FI_PROF_DRAM_ACTIVE"):
        assert name in warnings[0] and f"# TYPE {name} " not in r.out
    assert "Hopper" in warnings[0] and "--backend dcgm" in warnings[0]
    util = [line for line in r.out.splitlines() if line.startswith("DCGM_FI_DEV_GPU_UTIL{")]
    assert len(util) == 2

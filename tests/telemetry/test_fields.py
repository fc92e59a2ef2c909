"""The field catalog against dcgm-exporter's etc/default-counters.csv and DCGM's field IDs."""

from __future__ import annotations

import pytest

from aiinfra.telemetry.fields import alias_index, exported_fields, field

# Active rows of NVIDIA/dcgm-exporter etc/default-counters.csv @ d5e5f51, as listed in
# shared/reference/dcgm_telemetry_anchors.md §2.2 (DCGM field, Prometheus type, HELP text).
DEFAULT_COUNTERS_CSV = [
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz)."),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C)."),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ)."),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries."),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %)."),
    ("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %)."),
    ("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %)."),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_RESERVED", "gauge", "Framebuffer memory reserved (in MiB)."),
    ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "counter", "Total number of NVLink bandwidth counters for all lanes."),
    ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", "gauge", "vGPU License status"),
    ("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for uncorrectable errors"),
    ("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "counter", "Number of remapped rows for correctable errors"),
    ("DCGM_FI_DEV_ROW_REMAP_FAILURE", "gauge", "Whether remapping of rows has failed"),
    ("DCGM_FI_DRIVER_VERSION", "label", "Driver Version"),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active."),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "gauge", "Ratio of cycles the tensor (HMMA) pipe is active."),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge", "Ratio of cycles the device memory interface is active sending or receiving data."),
    ("DCGM_FI_PROF_PCIE_TX_BYTES", "gauge", "The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - in bytes per second."),
    ("DCGM_FI_PROF_PCIE_RX_BYTES", "gauge", "The rate of data received over the PCIe bus - including both protocol headers and data payloads - in bytes per second."),
]


def test_default_set_is_the_csv():
    rows = [(f.legacy, f.type, f.help) for f in exported_fields("legacy") if not f.exporter_owned]
    assert sorted(rows) == sorted(DEFAULT_COUNTERS_CSV)


@pytest.mark.parametrize(
    "key,fid,dcgm46",
    [
        ("gpu-util", 203, "DCGM_FI_DEV_GPU_UTIL_RATIO"),
        ("power-usage", 155, "DCGM_FI_DEV_BOARD_POWER_WATTS"),
        ("xid-errors", 230, "DCGM_FI_DEV_XID_ERROR"),
        ("nvlink-bandwidth-total", 449, "DCGM_FI_DEV_NVLINK_THROUGHPUT_TOTAL"),
        ("prof-gr-engine-active", 1001, "DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO"),
        ("uncorrectable-remapped-rows", 393, "DCGM_FI_DEV_ROW_REMAP_UNCORRECTABLE_TOTAL"),
        ("driver-version", 1, "DCGM_FI_SYSTEM_DRIVER_VERSION"),
    ],
)
def test_ids_and_dcgm46_aliases(key, fid, dcgm46):
    """Field IDs and DCGM 4.6 'Field Naming Standard' names from dcgmlib/dcgm_fields.h @ 72fa3fe (reference §1.1)."""
    f = field(key)
    assert (f.id, f.dcgm46) == (fid, dcgm46)
    assert alias_index()[dcgm46].field is f


def test_unit_scales():
    """Legacy units: MHz, mJ, %, MiB (truncated), MB/s as DCGM computes NVLink (KiB delta / s / 1000)."""
    assert field("sm-clock").export_value(1.98e9, "legacy") == 1980
    assert field("total-energy-consumption").export_value(12.5, "legacy") == 12500
    assert field("gpu-util").export_value(0.97, "legacy") == 97
    assert field("fb-used").export_value(71212 * 2**20 + 2**20 - 1, "legacy") == 71212
    assert field("nvlink-bandwidth-total").export_value(1024 * 1000 * 50, "legacy") == 50
    assert field("fb-used").export_value(123 * 2**20, "dcgm4.9") == 123 * 2**20
    for key, si in (("sm-clock", 1.41e9), ("gpu-util", 0.25), ("fb-free", 4096 * 2**20), ("total-energy-consumption", 12.0)):
        f = field(key)
        assert f.to_si(f.export_value(si, "legacy"), "legacy") == pytest.approx(si)


def test_every_name_resolves_once():
    idx = alias_index()
    for f in exported_fields("legacy", "all"):
        for name in (f.legacy, f.dcgm46, f.dcgm49, f.v1):
            if name:
                assert idx[name].field is f, name

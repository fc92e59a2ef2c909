"""Before any XID, DCGM_FI_DEV_XID_ERRORS reads 0 and dcgm-exporter prints it.

dcgm-exporter (internal/pkg/collector/gpu_collector.go toMetric) labels the XID field with err_code and
err_msg from xid_errors.go, whose entry 0 is "No Error"; published dcgm-exporter output on hosts with no
XID shows `DCGM_FI_DEV_XID_ERRORS{…,err_code="0",err_msg="No Error"} 0`.
"""

from __future__ import annotations

import pynvml

from aiinfra.telemetry.exporter import ExporterConfig, families, render
from aiinfra.telemetry.nvml import Collector


def _xid_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("DCGM_FI_DEV_XID_ERRORS{")]


def test_no_xid_yet_reads_zero_no_error(cli):
    r = cli("exporter", "--simulate", "gpus=2,seed=1", "--once")
    assert r.code == 0, r.err
    lines = _xid_lines(r.out)
    assert len(lines) == 2
    assert all(line.endswith(',err_code="0",err_msg="No Error"} 0') for line in lines), lines


def test_dcgm_backend_reads_zero_before_the_first_xid(cli):
    r = cli("exporter", "--simulate", "gpus=2,seed=1,faults=xid31:g1@0", "--backend", "dcgm", "--once")
    assert r.code == 0, r.err
    lines = _xid_lines(r.out)
    assert lines[0].startswith('DCGM_FI_DEV_XID_ERRORS{gpu="0"') and lines[0].endswith('err_code="0",err_msg="No Error"} 0')
    assert lines[1].startswith('DCGM_FI_DEV_XID_ERRORS{gpu="1"') and lines[1].endswith('err_code="31",err_msg="GPU memory page fault"} 31')


def test_without_xid_events_the_value_is_unknown_and_not_made_up(sim, monkeypatch):
    """A GPU whose XID events NVML will not deliver (registration unsupported) has no known last XID: no
    sample, rather than a 0 that claims 'No Error'."""
    _col, host, clock = sim("gpus=2,seed=1")

    def refuse(h, event_types, es):
        raise pynvml.NVMLError_NotSupported()

    monkeypatch.setattr(pynvml, "nvmlDeviceRegisterEvents", refuse)
    col = Collector(host=host.name, clock=clock)
    clock.advance(1)
    text = render(families([col.collect()], ExporterConfig())).decode()
    assert _xid_lines(text) == []

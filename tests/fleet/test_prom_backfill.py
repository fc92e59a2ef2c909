"""The synthetic history writer: valid OpenMetrics, dcgm-exporter labels, and faults where they were put."""

from __future__ import annotations

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from aiinfra.errors import AiinfraError
from aiinfra.fleet.backfill import Fault, FleetHistory, write_openmetrics


def test_openmetrics_parses_and_carries_dcgm_labels(tmp_path):
    fh = FleetHistory(hosts=1, gpus_per_host=2, hours=0.5, step=60, end=1_800_000_000, mig_hosts=(0,),
                      hostname_label="hostname", faults=[Fault("xid", 0, 1, 0.1, code=79)], workloads={(0, 0): "training", (0, 1): "idle"})
    path = tmp_path / "h.om"
    n = write_openmetrics(fh, path)
    fams = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    assert sum(len(f.samples) for f in fams.values()) == n
    gr = fams["DCGM_FI_PROF_GR_ENGINE_ACTIVE"].samples
    assert {s.labels["GPU_I_ID"] for s in gr} == {"1", "2"} and all("hostname" in s.labels for s in gr)
    assert "DCGM_FI_DEV_GPU_UTIL" not in fams  # absent on MIG instances (§0 item 4)
    xid = {s.value for s in fams["DCGM_FI_DEV_XID_ERRORS"].samples if s.labels["gpu"] == "1"}
    assert xid == {0, 79}
    assert float(min(s.timestamp for s in gr)) == 1_800_000_000 - 29 * 60


def test_bad_history_specs():
    with pytest.raises(AiinfraError):
        FleetHistory(hosts=0)
    with pytest.raises(AiinfraError, match="unknown workload"):
        FleetHistory(workloads={(0, 0): "mining"})
    with pytest.raises(AiinfraError, match="unknown fault"):
        Fault("meteor", 0, 0, 1.0)

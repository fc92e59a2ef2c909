"""Prometheus fixtures for the fleet-analytics integration tests (imported by those modules, not a conftest).

Histories are synthesised as OpenMetrics and loaded with `promtool tsdb create-blocks-from
openmetrics`, so a 6-hour fleet with known workloads and faults is ready in about a second.
"""

from __future__ import annotations

import shutil

import pytest

from aiinfra.fleet.backfill import Fault, FleetHistory, LocalPrometheus, build_blocks

needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                                      reason="prometheus/promtool (Debian package prometheus) not installed")

# host, gpu → workload; the analysis must find exactly these idle/stranded/leaking GPUs.
WORKLOADS = {
    (0, 0): "idle", (0, 1): "stranded", (0, 2): "leak", (0, 3): "training",
    (1, 0): "training", (1, 1): "inference", (1, 2): "stranded", (1, 3): "idle",
    (2, 0): "training", (2, 1): "idle", (2, 2): "training", (2, 3): "training",
}
FAULTS = [
    Fault("xid", 1, 0, 2.0, code=79),
    Fault("xid", 0, 3, 1.0, code=31),
    Fault("ecc_dbe", 1, 1, 3.0),
    Fault("thermal", 2, 0, 1.0, hours=3.0),
    Fault("power", 0, 3, 2.0, hours=1.5),
    Fault("row_remap_failure", 2, 2, 4.0),
    Fault("lost", 2, 3, 5.0),  # falls off the bus 1 h before the end: XID 79, then no series
]


def history(**kw) -> FleetHistory:
    base = dict(hosts=3, gpus_per_host=4, hours=6, step=60, seed=3, workloads=WORKLOADS, faults=FAULTS)
    base.update(kw)
    return FleetHistory(**base)


@pytest.fixture(scope="session")
def fleet_prom(tmp_path_factory):
    """Newer label layout: `hostname`, `exported_pod` (honorLabels: false), host 2 split into MIG instances."""
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        pytest.skip("prometheus/promtool not installed")
    fh = history(mig_hosts=(2,), pod_label="exported_pod", hostname_label="hostname")
    root = tmp_path_factory.mktemp("fleet")
    build_blocks(fh, root / "data")
    with LocalPrometheus(root / "run", data_dir=root / "data") as url:
        yield url, fh


@pytest.fixture(scope="session")
def legacy_prom(tmp_path_factory):
    """Older label layout: `Hostname`, plain `pod`, no MIG."""
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        pytest.skip("prometheus/promtool not installed")
    fh = history(pod_label="pod", hostname_label="Hostname", seed=4)
    root = tmp_path_factory.mktemp("legacy")
    build_blocks(fh, root / "data")
    with LocalPrometheus(root / "run", data_dir=root / "data") as url:
        yield url, fh

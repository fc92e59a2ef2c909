"""Who holds each GPU: Kubernetes pods (kubelet PodResources v1), HPC jobs, and GPU processes.

- `podresources`: the gRPC client for the kubelet's unix socket (our own .proto of the v1 API);
- `mapping`: device-plugin IDs and DRA claims → the `pod`, `namespace`, `container` (and `vgpu`,
  `dra_*`) labels dcgm-exporter puts on a GPU, MIG device or shared replica;
- `hpc`: dcgm-exporter's HPC job-mapping folder → the `hpc_job` label;
- `processes`: PID → pod through /proc/<pid>/cgroup and the kubelet's pod log folders;
- `core.Attribution`: refreshes all of them in a background thread; the exporter only reads;
- `simkubelet`: a PodResources gRPC server and the pods/jobs/processes of a simulated node.

`setup(...)` wires them for `aiinfra exporter`.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from typing import Any

from aiinfra.errors import AiinfraError
from aiinfra.telemetry.attribution.core import Attribution, AttributionConfig
from aiinfra.telemetry.attribution.podresources import DEFAULT_SOCKET

__all__ = ["Attribution", "AttributionConfig", "DEFAULT_SOCKET", "setup"]


def setup(
    sources: list[Any],
    simulated: bool,
    kubernetes: bool = False,
    socket: str = DEFAULT_SOCKET,
    hpc_job_dir: str | None = None,
    processes: bool = False,
    interval_s: float = 5.0,
    max_processes_per_gpu: int = 4,
    wait: bool = False,
    dra_resource_slices: str | None = None,
) -> tuple[Attribution | None, list[Any]]:
    """A started Attribution for the exporter's sources (None when nothing is asked), plus the
    simulated kubelets it started (stop their `.server` at exit). On a simulated fleet each host gets
    its own simulated kubelet socket, /proc and pod-log trees, and job files under `hpc_job_dir/<host>`."""
    if not (kubernetes or hpc_job_dir or processes):
        return None, []
    if max_processes_per_gpu < 1:
        raise AiinfraError(f"--max-processes-per-gpu must be at least 1, got {max_processes_per_gpu}")
    cfg = AttributionConfig(kubernetes=kubernetes, processes=processes, interval_s=interval_s, max_processes_per_gpu=max_processes_per_gpu)
    if dra_resource_slices:
        from pathlib import Path

        from aiinfra.catalog.loader import read_yaml
        from aiinfra.telemetry.attribution.mapping import dra_table_from_slices

        cfg.dra_devices = dra_table_from_slices(read_yaml(Path(dra_resource_slices)))
        if not cfg.dra_devices:
            raise AiinfraError(f"{dra_resource_slices} has no ResourceSlice devices of driver gpu.nvidia.com with a uuid attribute")
    nodes: list[Any] = []
    if simulated:
        from aiinfra.telemetry.attribution.simkubelet import start_nodes, write_jobs

        root = tempfile.mkdtemp(prefix="aiinfra-sim-node-")
        atexit.register(shutil.rmtree, root, True)
        hosts = [src.collector.nv for src in sources]
        nodes = start_nodes(hosts, root) if (kubernetes or processes) else []
        for src, node in zip(sources, nodes, strict=False):
            if kubernetes:
                cfg.sockets[src.host] = node.socket
            cfg.proc_roots[src.host] = node.proc_root
            cfg.log_roots[src.host] = node.log_root
        if hpc_job_dir:
            for src in sources:
                folder = f"{hpc_job_dir.rstrip('/')}/{src.host}"
                write_jobs(src.collector.nv, folder)
                cfg.hpc_dirs[src.host] = folder
    else:
        for src in sources:
            if kubernetes:
                cfg.sockets[src.host] = socket
            if hpc_job_dir:
                cfg.hpc_dirs[src.host] = hpc_job_dir
    collectors = {src.host: src.collector for src in sources}
    attr = Attribution(cfg, collectors)
    if wait:  # `--once`: labels before the only collection (each call is bounded by its timeout)
        attr.refresh_once()
    return attr.start(), nodes

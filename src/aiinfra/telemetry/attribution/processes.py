"""Per-process attribution: which pod and container each GPU process belongs to, read on the node.

NVML gives host PIDs (the exporter needs `hostPID: true` in Kubernetes). A PID's cgroup names its
pod by UID, in both layouts the kubelet uses:

    cgroupfs  0::/kubepods/burstable/pod1b2c…-…/<container id>
    systemd   0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c…_….slice/cri-containerd-<id>.scope

and the kubelet's pod log folders name the UID's pod: `/var/log/pods/<namespace>_<pod>_<uid>/<container>/`.
The container is the one of that pod that holds this GPU in PodResources (else the pod's only
container). `proc_root` and `log_root` are parameters so tests and the simulated fleet use their
own trees (prometheus-client's process collector does the same with `/proc`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


def pod_uid_from_cgroup(text: str) -> str | None:
    """The pod UID in a /proc/<pid>/cgroup text (systemd writes '_' for '-'), or None."""
    for line in text.splitlines():
        if m := _POD_UID.search(line):
            return m.group(1).replace("_", "-")
    return None


def pod_uid_of(pid: int, proc_root: str = "/proc") -> str | None:
    try:
        with open(os.path.join(proc_root, str(int(pid)), "cgroup"), encoding="utf-8", errors="replace") as f:
            return pod_uid_from_cgroup(f.read(65536))
    except OSError:
        return None  # the process ended, or /proc is not the host's (no hostPID)


@dataclass(frozen=True)
class PodRef:
    namespace: str
    pod: str
    containers: tuple[str, ...]


def pods_by_uid(log_root: str = "/var/log/pods") -> dict[str, PodRef]:
    """UID → pod, from the kubelet's `<namespace>_<pod>_<uid>` log folders (names cannot hold '_')."""
    out: dict[str, PodRef] = {}
    try:
        entries = list(os.scandir(log_root))
    except OSError:
        return out
    for e in entries:
        parts = e.name.split("_")
        if len(parts) != 3 or not e.is_dir():
            continue
        ns, pod, uid = parts
        try:
            containers = tuple(sorted(c.name for c in os.scandir(e.path) if c.is_dir()))
        except OSError:
            containers = ()
        out[uid] = PodRef(ns, pod, containers)
    return out

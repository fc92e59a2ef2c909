"""A PodResources v1 gRPC server on a unix socket, and the pods, jobs and processes of a simulated node.

`PodResourcesServer(path, pods)` serves `List`, `Get` and `GetAllocatableResources` from the proto in
this package over grpcio, exactly where a kubelet would; tests use it directly, and
`aiinfra exporter --simulate … --kubernetes` starts one per simulated host, so the exporter's real
client code talks to a real gRPC server.

`simulated_node(host, root)` decides who holds each GPU of a `telemetry.simulate.SimHost`, from its
workload patterns, deterministically:

    training GPUs       one pod per host, namespace research, container trainer (whole GPUs by UUID)
    inference GPUs      one pod each, namespace serving; the last one on the host is time-sliced
                        between two pods (device IDs GPU-<uuid>::1 and ::2 → the `vgpu` label)
    leak GPUs           a notebook in namespace data-science, allocated through a DRA ResourceClaim
                        (driver gpu.nvidia.com, pool <node>, device gpu-<i>)
    idle GPUs           every other one held by an idle notebook (stranded), the rest unallocated
    MIG instances       by the instance's pattern: serving / research pods, idle ones alternate as above

It also writes what the node would hold for the other sources: `/proc/<pid>/cgroup` for each GPU
process (pod UID in a systemd cgroup path), `/var/log/pods/<ns>_<pod>_<uid>/<container>/`, and,
when asked, HPC job files `<gpu>` / `<gpu>.<gi>` for the training GPUs.
"""

from __future__ import annotations

import os
import threading
import time
import uuid as uuidlib
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from aiinfra.telemetry.attribution import podresources_pb2 as pb
from aiinfra.telemetry.attribution import podresources_pb2_grpc as pb_grpc


@dataclass
class SimPod:
    namespace: str
    name: str
    uid: str
    devices: dict[str, list[str]] = field(default_factory=dict)  # container → device IDs (nvidia.com/gpu or mig-*)
    resource: dict[str, str] = field(default_factory=dict)  # container → resource name
    claims: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # container → [(claim, pool, device)]
    pids: dict[int, str] = field(default_factory=dict)  # pid → container

    def to_proto(self) -> pb.PodResources:
        containers = []
        for c in sorted(set(self.devices) | set(self.claims)):
            devs = [pb.ContainerDevices(resource_name=self.resource.get(c, "nvidia.com/gpu"), device_ids=self.devices[c])] if c in self.devices else []
            drs = [
                pb.DynamicResource(claim_name=claim, claim_namespace=self.namespace,
                                   claim_resources=[pb.ClaimResource(driver_name="gpu.nvidia.com", pool_name=pool, device_name=dev,
                                                                     cdi_devices=[pb.CDIDevice(name=f"k8s.gpu.nvidia.com/claim={self.uid}-{dev}")])])
                for claim, pool, dev in self.claims.get(c, [])
            ]
            containers.append(pb.ContainerResources(name=c, devices=devs, dynamic_resources=drs))
        return pb.PodResources(name=self.name, namespace=self.namespace, containers=containers)


class _Servicer(pb_grpc.PodResourcesListerServicer):
    def __init__(self, server: PodResourcesServer):
        self.s = server

    def List(self, request: Any, context: Any) -> pb.ListPodResourcesResponse:
        self.s.calls["List"] += 1
        self.s.behave(context)
        return pb.ListPodResourcesResponse(pod_resources=[p.to_proto() for p in self.s.pods()])

    def Get(self, request: Any, context: Any) -> pb.GetPodResourcesResponse:
        self.s.calls["Get"] += 1
        self.s.behave(context)
        for p in self.s.pods():
            if p.name == request.pod_name and p.namespace == request.pod_namespace:
                return pb.GetPodResourcesResponse(pod_resources=p.to_proto())
        context.abort(grpc.StatusCode.NOT_FOUND, f"pod {request.pod_namespace}/{request.pod_name} not found")

    def GetAllocatableResources(self, request: Any, context: Any) -> pb.AllocatableResourcesResponse:
        self.s.behave(context)
        ids = sorted({d for p in self.s.pods() for ds in p.devices.values() for d in ds})
        return pb.AllocatableResourcesResponse(devices=[pb.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=ids)])


class PodResourcesServer:
    """A gRPC PodResources v1 server on `path`. `delay_s` makes every call hang that long (tests)."""

    def __init__(self, path: str | Path, pods: list[SimPod] | Callable[[], list[SimPod]], delay_s: float = 0.0):
        self.path = str(path)
        self._pods = pods
        self.delay_s = delay_s
        self.calls = {"List": 0, "Get": 0}
        self._release = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_PodResourcesListerServicer_to_server(_Servicer(self), self.server)
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.server.add_insecure_port(f"unix://{os.path.abspath(self.path)}")

    def pods(self) -> list[SimPod]:
        return self._pods() if callable(self._pods) else self._pods

    def behave(self, context: Any) -> None:
        if self.delay_s > 0:
            self._release.wait(self.delay_s)

    def start(self) -> PodResourcesServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.stop(grace=None).wait(5)


# ---------------------------------------------------------------- the simulated node


def _uid(*parts: object) -> str:
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, "aiinfra-sim/" + "/".join(map(str, parts))))


@dataclass
class SimNode:
    host: str
    pods: list[SimPod]
    socket: str
    proc_root: str
    log_root: str
    job_dir: str | None
    server: PodResourcesServer | None = None


def assign_pods(host: Any) -> list[SimPod]:
    """Who holds each GPU / MIG instance of a SimHost (see the module docstring)."""
    name = host.name
    pods: dict[tuple[str, str], SimPod] = {}

    def pod(ns: str, pname: str) -> SimPod:
        key = (ns, pname)
        if key not in pods:
            pods[key] = SimPod(ns, pname, _uid(name, ns, pname))
        return pods[key]

    def give(p: SimPod, container: str, device_id: str, resource: str = "nvidia.com/gpu") -> None:
        p.devices.setdefault(container, []).append(device_id)
        p.resource[container] = resource

    inference = [g for g in host.gpus if not g.migs and g.pattern == "inference"]
    shared = inference[-1] if len(inference) >= 2 else None
    idle_n = 0
    for g in host.gpus:
        if g.migs:
            for m in g.migs:
                res = f"nvidia.com/mig-{m.profile}"
                if m.pattern == "inference":
                    give(pod("serving", f"triton-{name}-g{g.index}-mig{m.gi_id}"), "triton", m.uuid, res)
                elif m.pattern == "training":
                    give(pod("research", f"finetune-{name}-g{g.index}"), "trainer", m.uuid, res)
                elif m.pattern == "leak":
                    give(pod("data-science", f"notebook-{name}-g{g.index}-mig{m.gi_id}"), "jupyter", m.uuid, res)
                else:
                    idle_n += 1
                    if idle_n % 2 == 1:
                        give(pod("data-science", f"idle-notebook-{name}-g{g.index}-mig{m.gi_id}"), "jupyter", m.uuid, res)
            continue
        if g.pattern == "training":
            give(pod("research", f"pretrain-{name}"), "trainer", g.uuid)
        elif g is shared:
            give(pod("serving", f"embed-a-{name}"), "server", f"{g.uuid}::1")
            give(pod("serving", f"embed-b-{name}"), "server", f"{g.uuid}::2")
        elif g.pattern == "inference":
            give(pod("serving", f"llm-{name}-g{g.index}"), "server", g.uuid)
        elif g.pattern == "leak":
            p = pod("data-science", f"notebook-{name}-g{g.index}")
            p.claims.setdefault("jupyter", []).append((f"gpu-claim-g{g.index}", name, f"gpu-{g.index}"))
        else:
            idle_n += 1
            if idle_n % 2 == 1:
                give(pod("data-science", f"idle-notebook-{name}-g{g.index}"), "jupyter", g.uuid)
    return list(pods.values())


def _owner_of(pods: list[SimPod], device_id_prefixes: tuple[str, ...], claim_device: str) -> tuple[SimPod, str] | None:
    for p in pods:
        for c, ids in p.devices.items():
            if any(i.split("::")[0] in device_id_prefixes for i in ids):
                return p, c
        for c, claims in p.claims.items():
            if any(dev == claim_device for _, _, dev in claims):
                return p, c
    return None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def simulated_node(host: Any, root: str | Path, jobs: bool = False) -> SimNode:
    """Pods for `host`, and the files a node would hold about them, under `root` (made if missing)."""
    root = Path(root)
    pods = assign_pods(host)
    proc_root, log_root = root / "proc", root / "var-log-pods"
    if not host.initialized:
        host.nvmlInit()
    for p in pods:
        for c in sorted(set(p.devices) | set(p.claims)):
            (log_root / f"{p.namespace}_{p.name}_{p.uid}" / c).mkdir(parents=True, exist_ok=True)
    for g in host.gpus:
        by_gi = {m.gi_id: m for m in g.migs}
        for proc in host.nvmlDeviceGetComputeRunningProcesses(g):
            dev = by_gi.get(proc.gpuInstanceId)
            found = _owner_of(pods, (dev.uuid,) if dev else (g.uuid,), f"gpu-{g.index}")
            if found is None:
                cg = f"0::/system.slice/sim-gpu-job-{proc.pid}.scope\n"  # a process outside Kubernetes
            else:
                p, c = found
                found[0].pids[proc.pid] = c
                slug = p.uid.replace("-", "_")
                cid = _uid(p.uid, c).replace("-", "")[:32] * 2
                cg = f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{slug}.slice/cri-containerd-{cid}.scope\n"
            _write(proc_root / str(proc.pid) / "cgroup", cg)
    job_dir = None
    if jobs:
        job_dir = str(root / "hpc-jobs")
        write_jobs(host, job_dir)
    return SimNode(host.name, pods, str(root / "kubelet.sock"), str(proc_root), str(log_root), job_dir)


def write_jobs(host: Any, folder: str | Path) -> None:
    """HPC job files for the training GPUs (whole GPUs `<i>`, MIG instances `<i>.<gi>`), as a Slurm prolog would."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    job = 4000 + 100 * host.index
    for g in host.gpus:
        if g.migs:
            for m in g.migs:
                if m.pattern == "training":
                    _write(folder / f"{g.index}.{m.gi_id}", f"{job + 50 + g.index}\n")
        elif g.pattern == "training":
            _write(folder / str(g.index), f"{job}\n")


def start_nodes(hosts: list[Any], root: str | Path, jobs: bool = False) -> list[SimNode]:
    """A simulated kubelet socket (and node files) per host under `root/<host>/`; servers started."""
    nodes = []
    for h in hosts:
        node = simulated_node(h, Path(root) / h.name, jobs=jobs)
        node.server = PodResourcesServer(node.socket, node.pods).start()
        nodes.append(node)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(os.path.exists(n.socket) for n in nodes):
        time.sleep(0.01)
    return nodes

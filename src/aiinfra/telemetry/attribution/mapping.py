"""Turn a PodResources `List` answer into "which pods hold this GPU, MIG device or shared replica".

Device IDs are whatever the device plugin handed the kubelet; the NVIDIA and GKE plugins use:

    GPU-<uuid>                whole GPU (NVIDIA plugin, DEVICE_ID_STRATEGY=uuid, the default)
    GPU-<uuid>::<n>           replica n of a time-sliced or MPS-shared GPU
    MIG-<uuid>[::<n>]         a MIG device (and a shared replica of it)
    nvidia<i>                 whole GPU by index (GKE, or DEVICE_ID_STRATEGY=index gives "<i>")
    nvidia<i>/vgpu<n>         GKE shared replica
    nvidia<i>/gi<g>[/vgpu<n>] GKE MIG device (GPU index i, GPU instance g)

Each is reduced to an index key (UUID, MIG UUID, `nvidia<i>` or `<i>-<g>`, the same keys
dcgm-exporter's pod mapper builds) plus the replica number, which becomes the `vgpu` label as in
dcgm-exporter. DRA claims (`dynamic_resources`) from the `gpu.nvidia.com` driver are matched by
device name: a `{pool}/{device}` → UUID table when one is given (what a ResourceSlice says), else the
driver's `gpu-<i>` whole-GPU names, else a device name that is itself a UUID.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiinfra.telemetry.nvml import Identity

GPU_RESOURCE_PREFIX = "nvidia.com/gpu"  # nvidia.com/gpu, and renamed shared resources (nvidia.com/gpu.shared)
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"  # mixed strategy: nvidia.com/mig-3g.40gb
DRA_GPU_DRIVER = "gpu.nvidia.com"

_GKE_MIG = re.compile(r"^nvidia(\d+)/gi(\d+)(?:/vgpu(\d+))?$")
_GKE_SHARED = re.compile(r"^(nvidia\d+)/vgpu(\d+)$")
_DRA_GPU = re.compile(r"^gpu-(\d+)$")
_INDEX = re.compile(r"^\d+$")


@dataclass(frozen=True)
class PodInfo:
    """The owner of one device as dcgm-exporter labels it (pod, namespace, container [, vgpu, dra_*])."""

    namespace: str
    pod: str
    container: str
    vgpu: str = ""
    claim: tuple[str, str, str, str, str] | None = None  # (claim, claim namespace, driver, pool, device)

    def labels(self) -> dict[str, str]:
        """Attribute labels, in dcgm-exporter's order (attributes are printed sorted by name)."""
        out = {"container": self.container}
        if self.claim is not None:
            claim, claim_ns, driver, pool, device = self.claim
            out.update({"dra_claim_name": claim, "dra_claim_namespace": claim_ns, "dra_device_name": device,
                        "dra_driver_name": driver, "dra_pool_name": pool})
        out.update({"namespace": self.namespace, "pod": self.pod})
        if self.vgpu:
            out["vgpu"] = self.vgpu
        return out


def device_key(device_id: str) -> tuple[str, str]:
    """(index key, replica) for one device-plugin device ID; replica '' when the device is not shared."""
    base, sep, replica = device_id.partition("::")
    if sep:
        return base, replica
    if m := _GKE_MIG.match(device_id):
        return f"{m.group(1)}-{m.group(2)}", m.group(3) or ""
    if m := _GKE_SHARED.match(device_id):
        return m.group(1), m.group(2)
    if _INDEX.match(device_id):
        return f"nvidia{device_id}", ""
    return device_id, ""


def _is_gpu_resource(name: str, extra: tuple[str, ...]) -> bool:
    return name.startswith(GPU_RESOURCE_PREFIX) or name.startswith(MIG_RESOURCE_PREFIX) or name in extra


def dra_key(pool: str, device: str, table: dict[str, str] | None) -> str | None:
    if table and (hit := table.get(f"{pool}/{device}")):
        return hit
    if m := _DRA_GPU.match(device):
        return f"nvidia{m.group(1)}"
    if device.startswith(("GPU-", "MIG-")):
        return device
    return None


def index(resp: object, resource_names: tuple[str, ...] = (), dra_devices: dict[str, str] | None = None) -> dict[str, tuple[PodInfo, ...]]:
    """key → owners, from a ListPodResourcesResponse (or anything with the same fields)."""
    out: dict[str, list[PodInfo]] = {}

    def add(key: str, info: PodInfo) -> None:
        owners = out.setdefault(key, [])
        if info not in owners:
            owners.append(info)

    for pod in resp.pod_resources:  # type: ignore[attr-defined]
        for c in pod.containers:
            for dev in c.devices:
                if not _is_gpu_resource(dev.resource_name, resource_names):
                    continue
                for device_id in dev.device_ids:
                    key, replica = device_key(device_id)
                    add(key, PodInfo(pod.namespace, pod.name, c.name, replica))
            for dr in c.dynamic_resources:
                for cr in dr.claim_resources:
                    if cr.driver_name != DRA_GPU_DRIVER:
                        continue
                    key = dra_key(cr.pool_name, cr.device_name, dra_devices)
                    if key is None:
                        continue
                    claim = (dr.claim_name, dr.claim_namespace, cr.driver_name, cr.pool_name, cr.device_name)
                    add(key, PodInfo(pod.namespace, pod.name, c.name, "", claim))
    return {k: tuple(v) for k, v in out.items()}


def keys_for(ident: Identity) -> tuple[str, ...]:
    """The index keys that can name this entity: a MIG instance by its MIG UUID or `<gpu>-<gi>`,
    a whole GPU by its UUID or `nvidia<i>`."""
    if ident.gi_id is not None:
        return tuple(k for k in (ident.mig_uuid, f"{ident.gpu}-{ident.gi_id}") if k)
    return (ident.uuid, ident.device)


def owners(idx: dict[str, tuple[PodInfo, ...]], ident: Identity) -> tuple[PodInfo, ...]:
    found: list[PodInfo] = []
    for k in keys_for(ident):
        for info in idx.get(k, ()):
            if info not in found:
                found.append(info)
    return tuple(found)


def dra_table_from_slices(doc: object) -> dict[str, str]:
    """`{pool}/{device}` → GPU or MIG UUID from ResourceSlices of driver gpu.nvidia.com (a
    `kubectl get resourceslices -o json|yaml` dump, a List or one object). Attributes are read as
    resource.k8s.io v1 (`spec.devices[].attributes`) or v1beta1 (`spec.devices[].basic.attributes`);
    a device's `uuid` attribute names it (MIG devices carry their MIG UUID there)."""
    items = doc.get("items", [doc]) if isinstance(doc, dict) else []
    out: dict[str, str] = {}
    for sl in items:
        spec = sl.get("spec") if isinstance(sl, dict) else None
        if not isinstance(spec, dict) or spec.get("driver") != DRA_GPU_DRIVER:
            continue
        pool = (spec.get("pool") or {}).get("name", "") if isinstance(spec.get("pool"), dict) else ""
        for dev in spec.get("devices") or []:
            if not isinstance(dev, dict):
                continue
            attrs = dev.get("attributes") or (dev.get("basic") or {}).get("attributes") or {}
            uuid = attrs.get("uuid", {}).get("string") if isinstance(attrs.get("uuid"), dict) else None
            if uuid and dev.get("name"):
                out[f"{pool}/{dev['name']}"] = str(uuid)
    return out

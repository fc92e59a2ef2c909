"""Dynamic Resource Allocation manifests for NVIDIA GPUs: DeviceClasses, ResourceClaimTemplates (whole
GPUs, MIG devices pre-created or on demand, GPUs shared by time-slicing or MPS), ComputeDomains for
multi-node NVLink, example Pods, the GPU Operator's GPUCluster and Kueue quota for DRA devices.

Everything the NVIDIA DRA driver publishes or accepts (device classes, attributes, feature gates) and
which resource.k8s.io version each Kubernetes release serves is read from catalog/data/dra_driver.yaml;
object shapes follow the Kubernetes API of the chosen release and the CRDs in catalog/data/crd_schemas.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import SpecError
from aiinfra.sharing.k8s import CUDA_IMAGE, Bundle, components, image_of
from aiinfra.sharing.mig import MigGpu

GIB = 2**30
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SHARE_MODES = ("timeslice", "mps")
MIG_MODES = ("static", "dynamic")


def driver() -> dict:
    return default_catalog().table("dra_driver")["nvidia-dra-driver"]


def kube_versions() -> list[str]:
    return sorted(driver()["resource_api"], key=lambda v: tuple(map(int, v.split("."))))


def kube_version(text: str) -> str:
    """'1.34', 'v1.34.2' → '1.34'; one line naming the supported releases otherwise."""
    m = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?", str(text).strip())
    v = f"{m[1]}.{m[2]}" if m else None
    if v not in driver()["resource_api"]:
        raise SpecError(f"Kubernetes version {text!r} is not supported for DRA objects; use one of {', '.join(kube_versions())}")
    return v


def resource_api(version: str) -> str:
    return driver()["resource_api"][kube_version(version)]["version"]


def dns_label(text: str) -> str:
    out = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return out[:63].strip("-") or "x"


# --------------------------------------------------------------------------- selectors


@dataclass(frozen=True)
class GpuType:
    """What a claim selects on: the product token in the NVML product name, the board memory and the
    MIG table (None for GPUs without MIG)."""

    key: str
    product: str
    memory_bytes: float
    mig: MigGpu | None
    scaleup_domain: int
    scaleup_link: str


def gpu_type(name: str) -> GpuType:
    """A catalog GPU (gpus.yaml), or else a GPU known only by its MIG table (memory from the table's
    whole-GPU profile, no NVLink domain known)."""
    from aiinfra.catalog.gpus import gpu as catalog_gpu
    from aiinfra.errors import NotFoundError
    from aiinfra.sharing import mig as mig_tables

    try:
        spec = catalog_gpu(name)
    except NotFoundError:
        try:
            table = mig_tables.mig_gpu(name)
        except NotFoundError:
            raise NotFoundError(f"unknown GPU '{name}': not in the GPU catalog nor in the MIG tables") from None
        whole = max(table.base_profiles, key=lambda p: p.size)
        total = table.total_memory_mib * 2**20 if table.total_memory_mib else whole.name_gb * 1e9
        scaleup = default_catalog().table("mig_profiles")[table.key].get("scaleup") or {}
        return GpuType(dns_label(name), table.name.rsplit("-", 1)[0].replace("-", " "), float(total), table,
                       int(scaleup.get("domain", 1)), str(scaleup.get("link", "unknown")))
    if spec.vendor != "nvidia":
        raise SpecError(f"GPU '{spec.key}' is not an NVIDIA GPU; the NVIDIA DRA driver allocates NVIDIA GPUs only")
    table = None
    if spec.mig:
        try:
            table = mig_tables.mig_gpu(spec.key)
        except NotFoundError:  # a MIG GPU without a table is still allocatable whole
            table = None
    total = (spec.memory_total_mib * 2**20) if getattr(spec, "memory_total_mib", None) else spec.memory_gb * 1e9
    return GpuType(spec.key, product_token(spec.name), float(total), table, int(spec.scaleup_domain or 1), str(spec.scaleup_link or "pcie"))


def product_token(name: str) -> str:
    """The part of the NVML product name that names the GPU: 'NVIDIA H100 SXM5 80GB' → 'H100',
    'NVIDIA RTX PRO 6000 Blackwell Server Edition' → 'RTX PRO 6000'."""
    words = name.split()
    if words and words[0].upper() == "NVIDIA":
        words = words[1:]
    if len(words) >= 3 and words[0] == "RTX" and words[1] == "PRO":
        return " ".join(words[:3])
    return words[0] if words else name


def attr(name: str) -> str:
    return f"device.attributes['{driver()['driver']}'].{name}"


def gpu_selectors(t: GpuType) -> list[str]:
    """CEL on the product name and the board memory (≥ 95 % of the catalog total, so boards that
    report a little less still match)."""
    min_gib = math.floor(t.memory_bytes * 0.95 / GIB)
    return [
        f"{attr('productName')}.contains('{t.product}')",
        f"device.capacity['{driver()['driver']}'].memory.compareTo(quantity('{min_gib}Gi')) >= 0",
    ]


def mig_selectors(t: GpuType, profile: str) -> list[str]:
    return [f"{attr('productName')}.contains('{t.product}')", f"{attr('profile')} == '{profile}'"]


# --------------------------------------------------------------------------- objects


def _meta(name: str, namespace: str | None = None, labels: dict | None = None) -> dict:
    m: dict = {"name": name}
    if namespace:
        m["namespace"] = namespace
    if labels:
        m["labels"] = labels
    return m


def device_class(api: str, name: str, device_type: str, selectors: list[str]) -> dict:
    expr = f"device.driver == '{driver()['driver']}' && {attr('type')} == '{device_type}'"
    return {"apiVersion": api, "kind": "DeviceClass", "metadata": _meta(name),
            "spec": {"selectors": [{"cel": {"expression": " && ".join([expr, *selectors])}}]}}


def _profile_label(profile: str) -> str:
    return dns_label(profile.replace(".", "-").replace("+", "-"))


def mig_device_class(api: str, key: str, product: str, profile: str) -> tuple[str, dict]:
    """One DeviceClass per MIG profile: Kueue counts DRA devices per DeviceClass and refuses a class mapped to two
    resources (kueue pkg/config/validation.go, "device class already mapped"), so profiles need classes of their own."""
    name = f"{key}.mig-{_profile_label(profile)}.aiinfra.io"
    return name, device_class(api, name, "mig", [f"{attr('productName')}.contains('{product}')", f"{attr('profile')} == '{profile}'"])


def device_request(api: str, name: str, device_class_name: str, selectors: list[str] | None = None, count: int = 1) -> dict:
    """One request; resource.k8s.io/v1beta1 puts the class on the request, v1beta2 and v1 under `exactly`."""
    body: dict = {"deviceClassName": device_class_name, "allocationMode": "ExactCount", "count": int(count)}
    if selectors:
        body["selectors"] = [{"cel": {"expression": s}} for s in selectors]
    if api.endswith("/v1beta1"):
        return {"name": name, **body}
    return {"name": name, "exactly": body}


def sharing_parameters(mode: str, interval: str = "Default", mps_threads: int | None = None, mps_memory: str | None = None) -> dict:
    """The driver's opaque GpuConfig: TimeSlicing (interval) or MPS (thread %, pinned memory limit)."""
    if mode == "timeslice":
        if interval not in driver()["time_slice_intervals"]:
            raise SpecError(f"time-slice interval {interval!r}: use one of {', '.join(driver()['time_slice_intervals'])}")
        sharing: dict = {"strategy": "TimeSlicing", "timeSlicingConfig": {"interval": interval}}
    elif mode == "mps":
        cfg: dict = {}
        if mps_threads is not None:
            if not 1 <= mps_threads <= 100:
                raise SpecError(f"MPS active thread percentage must be 1–100, not {mps_threads}")
            cfg["defaultActiveThreadPercentage"] = int(mps_threads)
        if mps_memory is not None:
            if not re.fullmatch(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)", mps_memory):
                raise SpecError(f"MPS pinned memory limit {mps_memory!r}: write a quantity such as 10Gi")
            cfg["defaultPinnedDeviceMemoryLimit"] = mps_memory
        sharing = {"strategy": "MPS", **({"mpsConfig": cfg} if cfg else {})}
    else:
        raise SpecError(f"sharing mode must be one of {', '.join(SHARE_MODES)}, not {mode!r}")
    return {"apiVersion": "resource.nvidia.com/v1beta1", "kind": "GpuConfig", "sharing": sharing}


def claim_template(api: str, name: str, namespace: str, requests: list[dict], config: list[dict] | None = None,
                   constraints: list[dict] | None = None) -> dict:
    devices: dict = {"requests": requests}
    if constraints:
        devices["constraints"] = constraints
    if config:
        devices["config"] = config
    return {"apiVersion": api, "kind": "ResourceClaimTemplate", "metadata": _meta(name, namespace), "spec": {"spec": {"devices": devices}}}


def opaque_config(requests: list[str], parameters: dict) -> dict:
    return {"requests": requests, "opaque": {"driver": driver()["driver"], "parameters": parameters}}


def example_pod(name: str, namespace: str, claim_template_name: str, command: str = "nvidia-smi -L; sleep 3600") -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": _meta(name, namespace),
        "spec": {
            "restartPolicy": "Never",
            "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": claim_template_name}],
            "containers": [{"name": "cuda", "image": CUDA_IMAGE, "command": ["bash", "-c", command],
                            "resources": {"claims": [{"name": "gpu"}]}}],
        },
    }


def compute_domain(name: str, namespace: str, nodes: int, channel_template: str) -> dict:
    """A ComputeDomain: the driver runs IMEX daemons on the nodes its pods land on and creates the
    ResourceClaimTemplate `channel_template` that pods use to join the NVLink domain."""
    return {"apiVersion": "resource.nvidia.com/v1beta1", "kind": "ComputeDomain", "metadata": _meta(name, namespace),
            "spec": {"numNodes": int(nodes), "channel": {"resourceClaimTemplate": {"name": channel_template}}}}


def compute_domain_workload(name: str, namespace: str, nodes: int, gpus_per_node: int, channel_template: str, gpu_template: str) -> dict:
    """A StatefulSet with one pod per node, each claiming its node's GPUs and the domain's channel."""
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(name, namespace),
        "spec": {
            "serviceName": name, "replicas": int(nodes), "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "resourceClaims": [{"name": "channel", "resourceClaimTemplateName": channel_template},
                                       {"name": "gpus", "resourceClaimTemplateName": gpu_template}],
                    "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"app": name}}, "topologyKey": "kubernetes.io/hostname"}]}},
                    "containers": [{"name": "worker", "image": CUDA_IMAGE, "command": ["bash", "-c", "nvidia-smi -L; sleep 3600"],
                                    "resources": {"claims": [{"name": "channel"}, {"name": "gpus"}]}}],
                },
            },
        },
    }


def gpu_cluster(feature_gates: dict[str, bool], compute_domains: bool) -> dict:
    """The GPU Operator's GPUCluster (DRA path; a singleton named gpu-cluster; excludes ClusterPolicy)."""
    check_feature_gates(feature_gates)
    # Images as the chart's templates/gpucluster.yaml writes them: the operator resolves an image from the CR or
    # from DRA_DRIVER_IMAGE / DCGM_EXPORTER_IMAGE, which only its OLM bundle sets, so a bare CR fails to reconcile.
    c = components("gpu-operator")
    dra: dict = {**image_of(c, "draDriver"), "computeDomains": {"enabled": bool(compute_domains)}}
    if feature_gates:
        dra["featureGates"] = dict(sorted(feature_gates.items()))
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "GPUCluster", "metadata": _meta(driver()["gpu_cluster_name"]),
            "spec": {"draDriver": dra, "dcgmExporter": {"enabled": True, **image_of(c, "dcgmExporter")}}}


def gate_problems(gates: dict) -> list[str]:
    """What the driver's ValidateFeatureGates() refuses (it exits at start-up), one sentence each."""
    d = driver()
    known = d["feature_gates"]
    out = [f"unknown DRA driver feature gate '{g}' (known: {', '.join(known)})" for g in gates if g not in known]

    def on(g: str) -> bool:
        v = gates.get(g)
        return bool(known.get(g, {}).get("default")) if v is None else v is True

    for a, b in d["exclusive_gates"]:
        if on(a) and on(b):
            out.append(f"feature gates {a} and {b} are mutually exclusive in the DRA driver")
    for g, needs in d["required_gates"].items():
        if on(g) and not on(needs):
            out.append(f"feature gate {g} requires {needs} to be enabled")
    return out


def check_feature_gates(gates: dict) -> None:
    problems = gate_problems(gates)
    if problems:
        raise SpecError(problems[0] + "; the DRA driver would not start")


# --------------------------------------------------------------------------- Kueue


def kueue_objects(t: GpuType, quotas: dict[str, tuple[str, int]], namespace: str = "kueue-system") -> list[dict]:
    """ResourceFlavor + ClusterQueue with DRA device quota, and the Kueue Configuration (ConfigMap
    kueue-manager-config) mapping each quota's logical resource name to its DeviceClass.

    `quotas`: logical resource name → (DeviceClass name, devices)."""
    flavor = f"{dns_label(t.key)}-dra"
    resources = sorted(quotas)
    cq = {
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": _meta(f"{dns_label(t.key)}-queue"),
        "spec": {
            "namespaceSelector": {},
            "resourceGroups": [{"coveredResources": resources,
                                "flavors": [{"name": flavor, "resources": [{"name": r, "nominalQuota": quotas[r][1]} for r in resources]}]}],
        },
    }
    rf = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": _meta(flavor), "spec": {}}
    mappings = [{"name": r, "deviceClassNames": [quotas[r][0]]} for r in resources]
    config = {"apiVersion": "config.kueue.x-k8s.io/v1beta2", "kind": "Configuration", "resources": {"deviceClassMappings": mappings}}
    from aiinfra.sharing.k8s import configmap, to_yaml

    cm = configmap("kueue-manager-config", namespace, {"controller_manager_config.yaml": to_yaml(config)})
    return [rf, cq, cm]


# --------------------------------------------------------------------------- whole render


@dataclass
class DraRequest:
    gpu: str
    k8s_version: str = "1.34"
    namespace: str = "default"
    whole_gpus: int = 1  # GPUs per claim in the whole-GPU template (0: none)
    mig_profiles: tuple[str, ...] = ()
    mig_mode: str = "static"  # static: mig-manager pre-creates; dynamic: the driver creates on demand (DynamicMIG)
    share: str | None = None  # timeslice | mps
    interval: str = "Default"
    mps_threads: int | None = None
    mps_memory: str | None = None
    compute_domain_nodes: int = 0  # >0: a ComputeDomain spanning that many nodes (multi-node NVLink)
    kueue_quota: int = 0  # >0: Kueue quota in devices for each rendered class
    gpu_cluster: bool = True


def render_dra(r: DraRequest) -> Bundle:
    version = kube_version(r.k8s_version)
    api = resource_api(version)
    t = gpu_type(r.gpu)
    ns = r.namespace
    if not DNS_LABEL_RE.match(ns):
        raise SpecError(f"namespace {ns!r} is not a DNS label (lower-case letters, digits and '-')")
    if r.mig_mode not in MIG_MODES:
        raise SpecError(f"--mig-mode must be static or dynamic, not {r.mig_mode!r}")
    if not 0 <= r.whole_gpus <= 72:
        raise SpecError(f"GPUs per whole-GPU claim must be 0–72, not {r.whole_gpus}")
    if not 0 <= r.compute_domain_nodes <= 1024 or not 0 <= r.kueue_quota <= 1_000_000:
        raise SpecError("compute-domain nodes must be 0–1024 and the Kueue quota 0–1,000,000 devices")
    b = Bundle()
    key = dns_label(t.key)
    gates: dict[str, bool] = {}
    quotas: dict[str, tuple[str, int]] = {}
    if not driver()["resource_api"][version]["default_on"]:
        b.notes.append(f"Kubernetes {version} serves {api} only with the DynamicResourceAllocation feature gate and "
                       f"--runtime-config={api}=true on the API server, scheduler, controller manager and kubelets")

    gpu_class = f"{key}.gpu.aiinfra.io"
    if r.whole_gpus or r.share or r.compute_domain_nodes:
        b.docs.append(device_class(api, gpu_class, "gpu", gpu_selectors(t)))
    if r.whole_gpus:
        name = f"{key}-x{r.whole_gpus}"
        b.docs.append(claim_template(api, name, ns, [device_request(api, "gpus", gpu_class, count=r.whole_gpus)]))
        b.docs.append(example_pod(f"{name}-example", ns, name))
        quotas[f"aiinfra.io/{key}-gpus"] = (gpu_class, r.kueue_quota)

    if r.mig_profiles:
        if t.mig is None:
            raise SpecError(f"GPU '{t.key}' has no MIG table; drop --mig or pick a MIG GPU")
        for p in dict.fromkeys(r.mig_profiles):
            prof = t.mig.profile(p)
            mig_class, doc = mig_device_class(api, key, t.product, prof.name)
            b.docs.append(doc)
            name = f"{key}-mig-{_profile_label(prof.name)}"
            b.docs.append(claim_template(api, name, ns, [device_request(api, "mig", mig_class)]))
            b.docs.append(example_pod(f"{name}-example", ns, name))
            quotas[f"aiinfra.io/{name}"] = (mig_class, r.kueue_quota)
        if r.mig_mode == "dynamic":
            gates["DynamicMIG"] = True
            b.notes.append("MIG on demand: the driver creates each MIG device when a claim is allocated (DynamicMIG gate); "
                           f"the cluster needs the {', '.join(driver()['dynamic_mig_kube_gates'])} feature gate, and mig-manager must leave these GPUs alone")
        else:
            b.notes.append("pre-created MIG: mig-manager creates the instances from nvidia.com/mig.config (aiinfra k8s render mig); "
                           "the driver publishes each as a mig.nvidia.com device")

    if r.share:
        params = sharing_parameters(r.share, r.interval, r.mps_threads, r.mps_memory)
        gates["TimeSlicingSettings" if r.share == "timeslice" else "MPSSupport"] = True
        name = f"{key}-shared-{r.share}"
        b.docs.append(claim_template(api, name, ns, [device_request(api, "gpu", gpu_class)], config=[opaque_config(["gpu"], params)]))
        # Pods that share one GPU share one ResourceClaim: a claim made from the template per pod would be a GPU each.
        claim = {"apiVersion": api, "kind": "ResourceClaim", "metadata": _meta(name, ns),
                 "spec": {"devices": {"requests": [device_request(api, "gpu", gpu_class)], "config": [opaque_config(["gpu"], params)]}}}
        b.docs.append(claim)
        for i in range(2):
            pod = example_pod(f"{name}-{i}", ns, name)
            pod["spec"]["resourceClaims"] = [{"name": "gpu", "resourceClaimName": name}]
            b.docs.append(pod)
        b.notes.append(f"pods sharing a GPU reference the same ResourceClaim '{name}'; the driver applies {params['sharing']['strategy']} to it")

    if r.compute_domain_nodes:
        if t.scaleup_link != "nvlink-switch" or t.scaleup_domain <= 8:
            b.notes.append(f"{t.key}'s NVLink domain is {t.scaleup_domain} GPUs ({t.scaleup_link}): a ComputeDomain spans nodes only on multi-node NVLink systems (GB200/GB300 NVL72)")
        cd = f"{key}-domain"
        per_node = 4 if t.scaleup_domain >= 36 else max(1, min(8, t.scaleup_domain))
        if t.scaleup_domain > 8 and r.compute_domain_nodes * per_node > t.scaleup_domain:
            b.notes.append(f"{r.compute_domain_nodes} nodes × {per_node} GPUs exceed one NVLink domain of {t.scaleup_domain} GPUs: "
                           "IMEX channels do not span domains, so split the job into one ComputeDomain per rack")
        all_gpus = f"{key}-node-gpus"
        b.docs.append(claim_template(api, all_gpus, ns, [device_request(api, "gpus", gpu_class, count=per_node)]))
        b.docs.append(compute_domain(cd, ns, r.compute_domain_nodes, f"{cd}-channel"))
        b.docs.append(compute_domain_workload(f"{cd}-workers", ns, r.compute_domain_nodes, per_node, f"{cd}-channel", all_gpus))
        b.notes.append(f"ComputeDomain '{cd}': the driver creates ResourceClaimTemplate '{cd}-channel' and IMEX daemons on the nodes its pods use")

    if r.gpu_cluster:
        b.docs.insert(0, gpu_cluster(gates, compute_domains=bool(r.compute_domain_nodes)))
        b.notes.append("GPUCluster and ClusterPolicy cannot co-exist: migrate with aiinfra k8s rollout dra")
    elif gates:
        b.notes.append("enable the DRA driver feature gates " + ", ".join(sorted(gates)) + " (Helm: featureGates.<name>=true)")
    if r.kueue_quota:
        live = {k: v for k, v in quotas.items() if v[1]}
        if live:
            b.docs += kueue_objects(t, live)
            b.notes.append("Kueue counts DRA devices per DeviceClass through deviceClassMappings (KueueDRAIntegration, on by default since 0.18)")
    if not b.docs:
        raise SpecError("nothing to render: give --gpus-per-claim, --mig, --share or --compute-domain-nodes")
    return b


# --------------------------------------------------------------------------- a packing plan as claims


def plan_claims(p, k8s_version: str = "1.34", namespace: str = "default", mig_mode: str = "dynamic") -> Bundle:
    """`aiinfra mig plan --emit dra`: each (workload, profile) the plan chose becomes a ResourceClaimTemplate
    for one MIG device of that profile and a Deployment with that many replicas; time-sliced workloads
    share ResourceClaims (one per shared GPU, the plan's replicas per claim) with the TimeSlicing config.

    mig_mode dynamic: the driver creates the instances on demand (DynamicMIG); static: they come from
    the mig-parted config of the plan (included), applied by mig-manager or nvidia-mig-parted on the host."""
    from aiinfra.sharing.mig import geometry_label

    version = kube_version(k8s_version)
    api = resource_api(version)
    if mig_mode not in MIG_MODES:
        raise SpecError(f"--mig-mode must be static or dynamic, not {mig_mode!r}")
    if not DNS_LABEL_RE.match(namespace):
        raise SpecError(f"namespace {namespace!r} is not a DNS label (lower-case letters, digits and '-')")
    t = gpu_type(p.gpu.catalog_gpu) if p.gpu.catalog_gpu else None
    product = t.product if t else p.gpu.name.rsplit("-", 1)[0].replace("-", " ")
    key = dns_label(p.gpu.catalog_gpu or p.gpu.name)
    b = Bundle()
    gates: dict[str, bool] = {}
    if p.mig and p.mig.choice:
        classes: dict[str, str] = {}
        for wl in sorted(p.mig.choice):
            for prof, n in sorted(p.mig.choice[wl].items()):
                if prof not in classes:
                    classes[prof], doc = mig_device_class(api, key, product, prof)
                    b.docs.append(doc)
                name = dns_label(f"{wl}-{_profile_label(prof)}")
                b.docs.append(claim_template(api, name, namespace, [device_request(api, "mig", classes[prof])]))
                b.docs.append(_deployment(name, namespace, n, [("mig", {"resourceClaimTemplateName": name})]))
        if mig_mode == "dynamic":
            gates["DynamicMIG"] = True
            b.notes.append("MIG on demand (DynamicMIG): the driver creates each instance at allocation; per-GPU layouts of the plan: "
                           + "; ".join(f"GPU {a.index}: {geometry_label(a.geometry)}" for a in p.mig.assignments[:8])
                           + (" …" if len(p.mig.assignments) > 8 else ""))
        else:
            from aiinfra.sharing.k8s import plan_bundle

            static = plan_bundle(p)
            b.docs += [d for d in static.docs if d.get("kind") == "ConfigMap"]
            b.labels.update(static.labels)
            b.notes.append("pre-created MIG: apply the mig-parted ConfigMap through mig-manager (ClusterPolicy) or nvidia-mig-parted on the host; "
                           "GPUCluster does not deploy mig-manager")
    if p.shared_gpus and p.sharing is not None:
        gpu_class = f"{key}.gpu.aiinfra.io"
        sel = gpu_selectors(t) if t else [f"{attr('productName')}.contains('{product}')"]
        b.docs.append(device_class(api, gpu_class, "gpu", sel))
        params = sharing_parameters("timeslice")
        gates["TimeSlicingSettings"] = True
        slots = [(w.name, i) for w in p.soft for i in range(w.count)]
        for g in range(p.shared_gpus):
            claim_name = f"{key}-shared-{g}"
            b.docs.append({"apiVersion": api, "kind": "ResourceClaim", "metadata": _meta(claim_name, namespace),
                           "spec": {"devices": {"requests": [device_request(api, "gpu", gpu_class)], "config": [opaque_config(["gpu"], params)]}}})
            chunk = slots[g * p.replicas:(g + 1) * p.replicas]
            for wl in sorted({w for w, _ in chunk}):
                n = sum(1 for w, _ in chunk if w == wl)
                b.docs.append(_deployment(dns_label(f"{wl}-on-{claim_name}"), namespace, n, [("gpu", {"resourceClaimName": claim_name})]))
        b.notes.append(f"{p.shared_gpus} GPUs shared by time-slicing, {p.replicas} pods per GPU: pods on one GPU reference the same ResourceClaim")
    b.docs.insert(0, gpu_cluster(gates, compute_domains=False))
    if not driver()["resource_api"][version]["default_on"]:
        b.notes.append(f"Kubernetes {version}: enable the DynamicResourceAllocation feature gate and --runtime-config={api}=true")
    return b


def _deployment(name: str, namespace: str, replicas: int, claims: list[tuple[str, dict]]) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, namespace),
        "spec": {
            "replicas": int(replicas), "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "resourceClaims": [{"name": c, **ref} for c, ref in claims],
                    "containers": [{"name": "app", "image": CUDA_IMAGE, "command": ["bash", "-c", "nvidia-smi -L; sleep 3600"],
                                    "resources": {"claims": [{"name": c} for c, _ in claims]}}],
                },
            },
        },
    }

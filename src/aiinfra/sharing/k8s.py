"""Kubernetes manifests for GPU sharing: mig-parted configs, device-plugin configs, the GPU Operator
ClusterPolicy and Helm values, node labels, example Pods, Network Operator objects, and runbooks.

Formats follow the sources (reference notes §4–§8):
- mig-parted `api/spec/v1/spec.go`: `version: v1`, `mig-configs: {name: [ {devices, mig-enabled,
  device-filter, mig-devices} ]}`; the GPU Operator reads a custom ConfigMap's key `config.yaml`;
- k8s-device-plugin v0.20.0 `api/config/v1`: `version: v1`, `flags.migStrategy`, `sharing.timeSlicing`
  or `sharing.mps` with `resources: [{name, replicas}]`; per-node choice by label
  `nvidia.com/device-plugin.config=<key>`;
- GPU Operator `ClusterPolicy` (nvidia.com/v1) and chart values @ a22dbf6;
- Network Operator `NicClusterPolicy`, `HostDeviceNetwork`, `MacvlanNetwork` (mellanox.com/v1alpha1).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import SpecError
from aiinfra.sharing.mig import MigGpu, validate

MIG_LABEL = "nvidia.com/mig.config"
MIG_STATE_LABEL = "nvidia.com/mig.config.state"
DP_LABEL = "nvidia.com/device-plugin.config"
CUDA_IMAGE = "nvcr.io/nvidia/cuda:12.8.1-base-ubuntu24.04"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks, so embedded configs stay readable in ConfigMaps."""


def _str_repr(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_repr)


def to_yaml(doc: object) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)


@dataclass
class Bundle:
    """Manifests plus the node labels to set; renders to one YAML stream (labels as kubectl comments)."""

    docs: list[dict] = field(default_factory=list)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)  # node → label → value
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        head = [f"# {n}" for n in self.notes]
        for node, labels in self.labels.items():
            kv = " ".join(f"{k}={v}" for k, v in labels.items())
            head.append(f"# kubectl label node {node} {kv} --overwrite")
        body = "---\n".join(to_yaml(d) for d in self.docs)
        return ("\n".join(head) + "\n" if head else "") + body

    def to_dict(self) -> dict:
        return {"docs": self.docs, "labels": self.labels, "notes": self.notes}


def components(name: str) -> dict:
    return default_catalog().entry("k8s_components", name)[1]


# --------------------------------------------------------------------------- mig-parted


def mig_entry(gpu: MigGpu, geometry: dict[str, int], devices: str | list[int] = "all") -> dict:
    """One mig-parted entry for a validated geometry, filtered to this GPU's PCI IDs."""
    check = validate(gpu, geometry)
    if not check.valid:
        raise SpecError(f"geometry {geometry} is not valid on {gpu.name}: {'; '.join(check.reasons)}")
    return {
        "device-filter": gpu.device_filter,
        "devices": devices,
        "mig-enabled": True,
        "mig-devices": {p: int(n) for p, n in sorted(geometry.items())},
    }


def mig_parted_config(configs: dict[str, list[dict]]) -> dict:
    """A complete mig-parted file; `all-disabled` is always present so a rollback target exists."""
    out = {"all-disabled": [{"devices": "all", "mig-enabled": False}]}
    out.update(configs)
    return {"version": "v1", "mig-configs": out}


def configmap(name: str, namespace: str, data: dict[str, str], labels: dict[str, str] | None = None) -> dict:
    meta: dict = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def mig_configmap(config: dict, name: str = "custom-mig-config", namespace: str = "gpu-operator") -> dict:
    """The GPU Operator requires the key `config.yaml` in a custom mig-parted ConfigMap (values.yaml)."""
    return configmap(name, namespace, {"config.yaml": to_yaml(config)})


def example_pod(resource: str, count: int = 1, name: str | None = None, namespace: str = "default") -> dict:
    """A Pod that asks for `count` of an extended resource and lists the devices it got."""
    safe = resource.split("/")[-1].replace(".", "-").replace("+", "-")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name or f"example-{safe}", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "cuda",
                    "image": CUDA_IMAGE,
                    "command": ["nvidia-smi", "-L"],
                    "resources": {"limits": {resource: count}},
                }
            ],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }
    return pod


def render_mig(
    gpu: MigGpu,
    per_node: dict[str, list[tuple[list[int] | str, dict[str, int]]]],
    namespace: str = "gpu-operator",
    configmap_name: str = "custom-mig-config",
) -> Bundle:
    """mig-parted ConfigMap + node labels + one example Pod per profile (mixed strategy).

    `per_node` maps a node name to its entries: (devices, geometry); identical node layouts share one
    config name. Unused GPUs on a node are listed with `mig-enabled: false`.
    """
    check_node_names(list(per_node))
    configs: dict[str, list[dict]] = {}
    names: dict[str, str] = {}
    labels: dict[str, dict[str, str]] = {}
    for node, entries in per_node.items():
        body = [mig_entry(gpu, geo, devs) if geo else {"devices": devs, "mig-enabled": False} for devs, geo in entries]
        key = json.dumps(body, sort_keys=True)
        if key not in names:
            names[key] = f"aiinfra-{len(names) + 1}" if len(per_node) > 1 or len(entries) > 1 else _single_name(gpu, entries)
            configs[names[key]] = body
        labels[node] = {MIG_LABEL: names[key]}
    cfg = mig_parted_config(configs)
    docs = [mig_configmap(cfg, configmap_name, namespace)]
    profiles = sorted({p for entries in per_node.values() for _, geo in entries for p in (geo or {})})
    for p in profiles:
        docs.append(example_pod(gpu.profiles[p].resource_name))
    b = Bundle(docs=docs, labels=labels)
    b.notes.append(f"MIG plan for {gpu.name}: point ClusterPolicy spec.migManager.config.name at '{configmap_name}' and use mig.strategy=mixed")
    return b


def _single_name(gpu: MigGpu, entries: list) -> str:
    """'all-<profile>' (the operator's naming, '+' as '.') when every GPU is filled with one profile."""
    geo = entries[0][1] or {}
    if len(geo) == 1:
        p, n = next(iter(geo.items()))
        if n == gpu.profiles[p].max_count:
            return "all-" + p.replace("+", ".")
        return f"custom-{n}x{p.replace('+', '.')}"
    return "aiinfra-custom"


# --------------------------------------------------------------------------- device plugin


def device_plugin_config(mode: str, replicas: int, resources: list[str] | None = None, mig_strategy: str = "none", rename: bool = False) -> dict:
    """k8s-device-plugin v0.20.0 config for time-slicing or MPS (replicas ≥ 2, MPS ≤ 48 and gpu only)."""
    if replicas < 2:
        raise SpecError("device-plugin replicas must be ≥ 2 (k8s-device-plugin rejects 1; omit sharing to disable it)")
    resources = resources or ["nvidia.com/gpu"]
    if mode == "mps":
        if replicas > 48:
            raise SpecError(f"MPS allows at most 48 clients per GPU, not {replicas}")
        if resources != ["nvidia.com/gpu"] or mig_strategy != "none":
            raise SpecError("MPS shares only nvidia.com/gpu on GPUs without MIG (k8s-device-plugin)")
    key = {"timeslice": "timeSlicing", "mps": "mps"}.get(mode)
    if key is None:
        raise SpecError(f"sharing mode must be timeslice or mps, not '{mode}'")
    sharing: dict = {"resources": [{"name": r, "replicas": int(replicas)} for r in resources]}
    if rename:
        sharing = {"renameByDefault": True, **sharing}
    return {"version": "v1", "flags": {"migStrategy": mig_strategy}, "sharing": {key: sharing}}


def render_sharing(
    mode: str,
    per_node: dict[str, dict],
    namespace: str = "gpu-operator",
    configmap_name: str | None = None,
) -> Bundle:
    """Device-plugin ConfigMap with one key per distinct node config, node labels and an example Pod."""
    check_node_names(list(per_node))
    name = configmap_name or ("time-slicing-config" if mode == "timeslice" else "mps-config")
    data: dict[str, str] = {}
    keys: dict[str, str] = {}
    labels: dict[str, dict[str, str]] = {}
    for node, cfg in per_node.items():
        k = json.dumps(cfg, sort_keys=True)
        if k not in keys:
            res = next(iter(cfg["sharing"].values()))["resources"][0]
            base = f"{'ts' if mode == 'timeslice' else 'mps'}-{res['replicas']}"
            keys[k] = base if base not in data else f"{base}-{len(data)}"
            data[keys[k]] = to_yaml(cfg)
        labels[node] = {DP_LABEL: keys[k]}
    docs = [configmap(name, namespace, data)]
    resources = sorted({r["name"] for cfg in per_node.values() for v in cfg["sharing"].values() for r in v["resources"]})
    docs += [example_pod(r, 1) for r in resources]
    b = Bundle(docs=docs, labels=labels)
    default = next(iter(data))
    b.notes.append(f"set ClusterPolicy spec.devicePlugin.config to {{name: {name}, default: {default}}}")
    b.notes.append("the operator does not watch this ConfigMap: after editing it run kubectl rollout restart -n gpu-operator daemonset/nvidia-device-plugin-daemonset")
    return b


# --------------------------------------------------------------------------- GPU Operator


def image_of(c: dict, key: str) -> dict:
    return {k: c[key][k] for k in ("repository", "image", "version")}


def cluster_policy(
    mig_strategy: str = "mixed",
    mig_config: str | None = "custom-mig-config",
    mig_default: str = "all-disabled",
    device_plugin_config: str | None = None,
    device_plugin_default: str = "",
    rdma: bool = False,
    use_host_mofed: bool = False,
    gds: bool = False,
) -> dict:
    """A complete ClusterPolicy: the CRD requires daemonsets, dcgm, dcgmExporter, devicePlugin,
    driver, gfd, nodeStatusExporter, operator and toolkit (nvidia.com_clusterpolicies.yaml @ a22dbf6)."""
    if mig_strategy not in ("none", "single", "mixed"):
        raise SpecError(f"MIG strategy must be none, single or mixed, not '{mig_strategy}'")
    c = components("gpu-operator")
    dp: dict = {"enabled": True, **image_of(c, "devicePlugin")}
    if device_plugin_config:
        dp["config"] = {"name": device_plugin_config, "default": device_plugin_default}
    mm: dict = {"enabled": True, **image_of(c, "migManager"), "env": [{"name": "WITH_REBOOT", "value": "false"}]}
    mm["config"] = {"name": mig_config, "default": mig_default} if mig_config else {"default": mig_default}
    spec = {
        "operator": {"defaultRuntime": "containerd"},
        "daemonsets": {"priorityClassName": "system-node-critical", "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
        "driver": {"enabled": True, **image_of(c, "driver"), "rdma": {"enabled": rdma, "useHostMofed": use_host_mofed}},
        "toolkit": {"enabled": True, **image_of(c, "toolkit")},
        "devicePlugin": dp,
        "dcgm": {"enabled": False, **image_of(c, "dcgm")},
        "dcgmExporter": {"enabled": True, **image_of(c, "dcgmExporter")},
        "gfd": {"enabled": True, **image_of(c, "gfd")},
        "nodeStatusExporter": {"enabled": False, **image_of(c, "nodeStatusExporter")},
        "mig": {"strategy": mig_strategy},
        "migManager": mm,
    }
    if gds:  # with its image: a Helm-installed operator has no GDS_IMAGE default to fall back on
        spec["gds"] = {"enabled": True, **image_of(c, "gds")}
    return {"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy", "metadata": {"name": "cluster-policy"}, "spec": spec}


def helm_values(policy: dict) -> dict:
    """The same choices as GPU Operator chart values (deployments/gpu-operator/values.yaml)."""
    s = policy["spec"]
    values: dict = {
        "mig": {"strategy": s["mig"]["strategy"]},
        "driver": {"enabled": True, "version": s["driver"]["version"], "rdma": dict(s["driver"]["rdma"])},
        "devicePlugin": {"enabled": True, "config": {"create": False, "name": s["devicePlugin"].get("config", {}).get("name", ""), "default": s["devicePlugin"].get("config", {}).get("default", "")}},
        "dcgmExporter": {"enabled": True},
        "migManager": {"enabled": True, "env": s["migManager"]["env"], "config": {"create": False, "name": s["migManager"]["config"].get("name", ""), "default": s["migManager"]["config"]["default"]}},
    }
    if s.get("gds", {}).get("enabled"):
        values["gds"] = {"enabled": True}
    return values


def render_operator(**kw) -> Bundle:
    policy = cluster_policy(**kw)
    b = Bundle(docs=[policy])
    b.notes.append("Helm equivalent: helm upgrade --install gpu-operator nvidia/gpu-operator -n gpu-operator -f values.yaml with values:")
    for line in to_yaml(helm_values(policy)).splitlines():
        b.notes.append("  " + line)
    return b


# --------------------------------------------------------------------------- Network Operator (GPUDirect RDMA)


def nic_cluster_policy(mode: str = "shared", pci_vendor: str = "15b3", device_ids: list[str] | None = None, rdma_hca_max: int = 63) -> dict:
    """NicClusterPolicy with DOCA-OFED, an RDMA device plugin (shared or SR-IOV host-device) and Multus/CNI."""
    c = components("network-operator")
    spec: dict = {"ofedDriver": {**image_of(c, "ofedDriver"), "upgradePolicy": {"autoUpgrade": True, "maxParallelUpgrades": 1, "drain": {"enable": True, "force": True, "deleteEmptyDir": True, "timeoutSeconds": 300}}}}
    if mode == "shared":
        selectors: dict = {"vendors": [pci_vendor]}
        if device_ids:
            selectors["deviceIDs"] = device_ids
        cfg = {"configList": [{"resourceName": "rdma_shared_device_a", "rdmaHcaMax": rdma_hca_max, "selectors": selectors}]}
        spec["rdmaSharedDevicePlugin"] = {**image_of(c, "rdmaSharedDevicePlugin"), "config": json.dumps(cfg, indent=2)}
    elif mode == "hostdev":
        cfg = {"resourceList": [{"resourcePrefix": "nvidia.com", "resourceName": "hostdev", "selectors": {"vendors": [pci_vendor], "isRdma": True}}]}
        spec["sriovDevicePlugin"] = {**image_of(c, "sriovDevicePlugin"), "config": json.dumps(cfg, indent=2)}
    else:
        raise SpecError(f"RDMA mode must be shared or hostdev, not '{mode}'")
    spec["secondaryNetwork"] = {"multus": image_of(c, "multus"), "cniPlugins": image_of(c, "cniPlugins")}
    spec["nvIpam"] = {**image_of(c, "nvIpam"), "enableWebhook": False}
    return {"apiVersion": "mellanox.com/v1alpha1", "kind": "NicClusterPolicy", "metadata": {"name": "nic-cluster-policy"}, "spec": spec}


IP_POOL = "rdma-pool"


def ip_pool(cidr: str, per_node_ips: int, name: str = IP_POOL) -> tuple[dict, int]:
    """An nv-ipam IPPool (the IPAM the Network Operator deploys since v25.10.0 dropped whereabouts) and how many
    nodes it serves: nv-ipam hands each node a block of per_node_ips addresses, fewer than the subnet holds."""
    import ipaddress

    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError as e:
        raise SpecError(f"--cidr '{cidr}' is not a subnet in CIDR form such as 192.168.2.0/24 ({e})") from None
    usable = net.num_addresses - (2 if net.version == 4 and net.prefixlen < 31 else 0)  # network and broadcast
    if not 1 <= per_node_ips < usable:
        raise SpecError(f"--per-node-ips must be at least 1 and below the {usable} addresses {cidr} holds, got {per_node_ips}")
    ns = components("network-operator")["namespace"]
    doc = {"apiVersion": "nv-ipam.nvidia.com/v1alpha1", "kind": "IPPool", "metadata": {"name": name, "namespace": ns},
           "spec": {"subnet": str(net), "perNodeBlockSize": per_node_ips}}
    return doc, usable // per_node_ips


def _nv_ipam(pool: str) -> str:
    return json.dumps({"type": "nv-ipam", "poolName": pool}, indent=2)


def host_device_network(pool: str = IP_POOL, namespace: str = "default") -> dict:
    return {
        "apiVersion": "mellanox.com/v1alpha1",
        "kind": "HostDeviceNetwork",
        "metadata": {"name": "rdma-hostdev-net"},
        "spec": {"networkNamespace": namespace, "resourceName": "hostdev", "ipam": _nv_ipam(pool)},
    }


def macvlan_network(master: str, pool: str = IP_POOL, namespace: str = "default", mtu: int = 9000) -> dict:
    return {
        "apiVersion": "mellanox.com/v1alpha1",
        "kind": "MacvlanNetwork",
        "metadata": {"name": "rdma-macvlan-net"},
        "spec": {"networkNamespace": namespace, "master": master, "mode": "bridge", "mtu": mtu, "ipam": _nv_ipam(pool)},
    }


def render_rdma(mode: str = "shared", master: str = "ens1f0", cidr: str = "192.168.2.0/24", gpus: int = 1,
                per_node_ips: int = 16) -> Bundle:
    """GPUDirect RDMA: NicClusterPolicy + an nv-ipam IPPool + a network + ClusterPolicy with driver.rdma + an example Pod."""
    policy = nic_cluster_policy("shared" if mode == "shared" else "hostdev")
    pool, nodes = ip_pool(cidr, per_node_ips)
    if mode == "shared":
        net = macvlan_network(master)
        resource = "rdma/rdma_shared_device_a"
    else:
        net = host_device_network()
        resource = "nvidia.com/hostdev"
    annotation = net["metadata"]["name"]
    pod = example_pod("nvidia.com/gpu", gpus, name="rdma-example")
    pod["metadata"]["annotations"] = {"k8s.v1.cni.cncf.io/networks": annotation}
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    limits[resource] = 1
    pod["spec"]["containers"][0]["securityContext"] = {"capabilities": {"add": ["IPC_LOCK"]}}
    pod["spec"]["containers"][0]["command"] = ["sleep", "infinity"]
    cp = cluster_policy(mig_strategy="none", mig_config=None, rdma=True)
    b = Bundle(docs=[policy, pool, net, cp, pod])
    b.notes.append(f"nv-ipam gives each node {per_node_ips} addresses of {cidr}: the pool serves {nodes} nodes "
                   f"(and {per_node_ips} RDMA pods per node); widen --cidr or change --per-node-ips for more")
    b.notes.append("GPUDirect RDMA: driver.rdma.enabled=true loads nvidia-peermem in the GPU Operator driver container; DMA-BUF needs no peermem and is NVIDIA's recommended path")
    b.notes.append("MIG instances have P2P disabled: run RDMA/NVLink-heavy jobs on whole GPUs")
    return b


# --------------------------------------------------------------------------- runbooks


def rollout_mig(nodes: list[str], config: str, previous: str = "all-disabled", namespace: str = "gpu-operator", expect: dict[str, int] | None = None) -> dict:
    """Ordered kubectl steps for a MIG reconfiguration (NVIDIA: cordon → drain GPU jobs → label → wait → uncordon).

    mig-parted destroys every GPU instance on the GPU before creating the new ones, so the node must
    be idle (reference notes §1.2, §4.5; gpu-operator#262).
    """
    check_node_names(nodes)
    steps, rollback = [], []
    for n in nodes:
        steps += [
            f"kubectl cordon {n}",
            _drain_gpu_pods(n),
            f"kubectl label node {n} {MIG_LABEL}={config} --overwrite",
            f"kubectl wait node/{n} --for=jsonpath='{{.metadata.labels.nvidia\\.com/mig\\.config\\.state}}'=success --timeout=15m",
            f"kubectl get node {n} -o jsonpath='{{.status.allocatable}}'  # expect {_expect_text(expect)}",
            f"kubectl get node {n} -L nvidia.com/gpu.product  # must not end in -MIG-INVALID",
            f"kubectl uncordon {n}",
        ]
        rollback += [
            f"kubectl label node {n} {MIG_LABEL}={previous} --overwrite",
            f"kubectl wait node/{n} --for=jsonpath='{{.metadata.labels.nvidia\\.com/mig\\.config\\.state}}'=success --timeout=15m",
            f"kubectl uncordon {n}",
        ]
    warnings = [
        (
            f"known wedge: if {MIG_STATE_LABEL} stays 'pending' and nvidia.com/gpu.deploy.* labels stay 'paused-for-mig-change' "
            "(gpu-operator#2833, mig-parted#485), read the mig-manager log "
            f"(kubectl logs -n {namespace} -l app=nvidia-mig-manager), delete that node's mig-manager pod, and if the labels stay paused "
            "set nvidia.com/gpu.deploy.device-plugin, gpu-feature-discovery, dcgm-exporter back to 'true' before retrying"
        ),
        "applying a MIG config is destructive for the whole GPU: mig-parted clears all instances and recreates them",
    ]
    return {"steps": steps, "rollback": rollback, "warnings": warnings}


def rollout_driver(nodes: list[str], version: str, previous: str, namespace: str = "gpu-operator") -> dict:
    """Ordered kubectl steps to move the GPU Operator driver to `version`, node by node."""
    check_node_names(nodes)

    def patch(v: str) -> str:
        return "kubectl patch clusterpolicies.nvidia.com/cluster-policy --type merge -p " + f"'{json.dumps({'spec': {'driver': {'version': v}}})}'"
    steps = [
        "kubectl patch clusterpolicies.nvidia.com/cluster-policy --type merge -p '{\"spec\": {\"driver\": {\"upgradePolicy\": {\"autoUpgrade\": false}}}}'  # upgrade node by node, by hand",
        patch(version),
    ]
    rollback = [patch(previous)]
    for n in nodes:
        sel = f"-n {namespace} -l app=nvidia-driver-daemonset --field-selector spec.nodeName={n}"
        steps += [
            f"kubectl cordon {n}",
            _drain_gpu_pods(n),
            f"kubectl delete pod {sel}",
            f"kubectl wait pod {sel} --for=condition=Ready --timeout=20m",
            f"kubectl get node {n} -L nvidia.com/cuda.driver-version.full  # expect {version}",
            f"kubectl get node {n} -o jsonpath='{{.status.allocatable}}'  # nvidia.com/gpu or nvidia.com/mig-* counts as before",
            f"kubectl uncordon {n}",
        ]
        rollback += [f"kubectl cordon {n}", _drain_gpu_pods(n), f"kubectl delete pod {sel}", f"kubectl wait pod {sel} --for=condition=Ready --timeout=20m", f"kubectl uncordon {n}"]
    warnings = [
        (
            f"known wedge: MIG nodes reconfigure after the driver restarts; if {MIG_STATE_LABEL} stays 'pending' with nvidia.com/gpu.deploy.* "
            "labels at 'paused-for-mig-change' (gpu-operator#2833), restart that node's mig-manager pod and restore the deploy labels to 'true'"
        ),
        "GPU instances do not survive a driver reload: mig-manager recreates them from nvidia.com/mig.config",
    ]
    return {"steps": steps, "rollback": rollback, "warnings": warnings}


def _drain_gpu_pods(node: str) -> str:
    # kubectl drain evicts everything; this evicts only pods that request nvidia.com/* or rdma/* resources.
    return (
        f"kubectl get pods -A --field-selector spec.nodeName={node} -o json | jq -r '.items[] | "
        "select([.spec.containers[].resources.limits // {} | keys[]] | any(startswith(\"nvidia.com/\") or startswith(\"rdma/\"))) | "
        "\"-n \\(.metadata.namespace) \\(.metadata.name)\"' | xargs -r -L1 kubectl delete pod --wait=true"
    )


def _expect_text(expect: dict[str, int] | None) -> str:
    if not expect:
        return "nvidia.com/mig-<profile> counts of the new config"
    return ", ".join(f"{k}: {v}" for k, v in sorted(expect.items()))


def write_text_atomic(path, text: str) -> None:
    """Manifests are not secret: write them 0644 through safeio's temp-and-rename (one-line errors)."""
    from aiinfra.safeio import write_atomic

    write_atomic(path, text, mode=0o644, what="manifests")


NODE_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_node_names(nodes: list[str] | None) -> list[str]:
    """Node names as Kubernetes accepts them (RFC 1123 DNS subdomain, ≤ 253 characters): a wrong or
    empty name would put a blank into `kubectl cordon` / the pod-deletion pipeline."""
    if not nodes:
        raise SpecError("give at least one node (--node NAME)")
    for n in nodes:
        if not isinstance(n, str) or len(n) > 253 or not NODE_NAME_RE.match(n):
            shown = repr(n) if len(str(n)) <= 60 else repr(str(n)[:57] + "...")
            raise SpecError(f"node name {shown} is not a valid Kubernetes node name: use lower-case letters, digits, '-' and '.', "
                            "starting and ending with a letter or digit, at most 253 characters")
    return list(nodes)


def plan_bundle(p: Any, node_names: list[str] | None = None) -> Bundle:
    """mig-parted ConfigMap, node labels and Pods for a plan (time-sliced GPUs get a device-plugin config)."""
    from aiinfra.sharing import packing

    layout = packing.node_layout(p)
    names = node_names or [f"gpu-node-{i}" for i in range(len(layout))]
    if len(names) < len(layout):
        raise SpecError(f"the plan uses {len(layout)} nodes but only {len(names)} --node names were given")
    per_node = {names[n]: entries for n, entries in layout.items() if any(geo for _, geo in entries)}
    bundle = render_mig(p.gpu, per_node) if per_node else Bundle()
    if p.shared_gpus:
        first = p.mig.gpus_used if p.mig else 0
        shared_node_ids = sorted({i // p.gpus_per_node for i in range(first, first + p.shared_gpus)})
        shared_nodes = {names[n]: device_plugin_config("timeslice", p.replicas, mig_strategy="mixed") for n in shared_node_ids}
        ts = render_sharing("timeslice", shared_nodes)
        bundle.docs += ts.docs
        for node, labels in ts.labels.items():
            bundle.labels.setdefault(node, {}).update(labels)
        bundle.notes += ts.notes
    return bundle

"""`aiinfra k8s rollout dra`: the ordered migration from the device plugin + ClusterPolicy to the NVIDIA
DRA driver + GPUCluster on a live cluster.

Why it has two phases: the GPU Operator refuses to reconcile a ClusterPolicy while a GPUCluster exists
("ClusterPolicy and GPUCluster cannot co-exist", controllers/clusterpolicy_controller.go @ a22dbf6), so
the GPUCluster can only arrive after the ClusterPolicy is gone. Nodes therefore move one at a time to a
DRA driver installed from its own Helm chart while the ClusterPolicy still runs the GPU driver and the
other components (the operator honours nvidia.com/gpu.deploy.device-plugin=false per node); only when
every node serves DRA is the ClusterPolicy replaced by the GPUCluster, which then runs the DRA driver.
GPUCluster deploys neither the GPU driver nor the container toolkit: those must be on the hosts (or be
kept by a driver install that survives the ClusterPolicy) before the cut-over.
"""

from __future__ import annotations

from aiinfra.errors import SpecError
from aiinfra.sharing.k8s import _drain_gpu_pods, check_node_names

DRA_LABEL = "nvidia.com/dra-driver.enabled"
CHART = "dra-driver-nvidia-gpu"  # deployments/helm/dra-driver-nvidia-gpu/Chart.yaml @ 2240711
CHART_REPO = "nvidia"
DP_DEPLOY = "nvidia.com/gpu.deploy.device-plugin"


def runbook(nodes: list[str], gpu: str, k8s_version: str = "1.34", namespace: str = "gpu-operator", driver_version: str = "v0.4.0") -> dict:
    from aiinfra.sharing import dra

    check_node_names(nodes)
    version = dra.kube_version(k8s_version)
    api = dra.resource_api(version)
    t = dra.gpu_type(gpu)
    if not dra.DNS_LABEL_RE.match(namespace):
        raise SpecError(f"namespace {namespace!r} is not a DNS label")
    if not driver_version.replace(".", "").replace("v", "").replace("-", "").isalnum():
        raise SpecError(f"driver version {driver_version!r} is not a chart version such as v0.4.0")
    info = dra.driver()["resource_api"][version]
    sel = dra.gpu_selectors(t)
    steps = [
        "# Phase 0 — prerequisites (read-only)",
        "kubectl version -o json | jq -r .serverVersion.gitVersion  # expect v" + version + ".x or newer",
        f"kubectl api-resources --api-group=resource.k8s.io  # expect deviceclasses, resourceclaims, resourceclaimtemplates, resourceslices ({api})",
        "kubectl get clusterpolicies.nvidia.com -o name  # exactly one: cluster-policy",
        "kubectl get clusterpolicies.nvidia.com cluster-policy -o yaml > clusterpolicy-backup.yaml  # kept for the rollback",
        "kubectl get pods -A -o json | jq -r '.items[] | select([.spec.containers[].resources.limits // {} | keys[]] | any(startswith(\"nvidia.com/\"))) "
        "| \"\\(.metadata.namespace)/\\(.metadata.name)\"'  # workloads still on nvidia.com/* extended resources: move them to ResourceClaims first "
        "(aiinfra k8s render dra, aiinfra mig plan --emit dra)",
        "# Phase 1 — the DRA driver from its Helm chart, only on labelled nodes (the ClusterPolicy keeps running)",
        # gpuResourcesEnabledOverride: the chart refuses GPU resources without it (templates/validation.yaml);
        # nvidiaDriverRoot: the operator's driver container mounts the driver at /run/nvidia/driver.
        f"helm upgrade --install {CHART} {CHART_REPO}/{CHART} --version {driver_version} -n {namespace} "
        f"--set nvidiaDriverRoot=/run/nvidia/driver --set gpuResourcesEnabledOverride=true "
        f"--set-string kubeletPlugin.nodeSelector.{DRA_LABEL.replace('.', chr(92) + '.')}=true",
        "kubectl get deviceclasses  # gpu.nvidia.com, mig.nvidia.com (and compute-domain-* classes) now exist",
    ]
    if not info["default_on"]:
        steps.insert(3, f"# Kubernetes {version}: DRA is beta here; the API server, scheduler, controller manager and kubelets need "
                        f"--feature-gates=DynamicResourceAllocation=true and the API server --runtime-config={api}=true")
    rollback = [
        "# Phase 2 (GPUCluster) — undo first if it was reached",
        "kubectl delete gpuclusters.nvidia.com gpu-cluster --wait=true",
        "kubectl apply -f clusterpolicy-backup.yaml",
        "kubectl wait clusterpolicies.nvidia.com/cluster-policy --for=jsonpath='{.status.state}'=ready --timeout=20m",
    ]
    for n in nodes:
        test = f"dra-smoke-{n}"[:63].rstrip("-.")
        steps += [
            f"# node {n}",
            f"kubectl cordon {n}",
            _drain_gpu_pods(n),
            f"kubectl label node {n} {DP_DEPLOY}=false --overwrite  # the operator removes the device plugin from this node",
            f"kubectl wait pod -n {namespace} -l app=nvidia-device-plugin-daemonset --field-selector spec.nodeName={n} --for=delete --timeout=5m",
            f"kubectl get node {n} -o jsonpath='{{.status.allocatable.nvidia\\.com/gpu}}'  # expect empty or 0",
            f"kubectl label node {n} {DRA_LABEL}=true --overwrite  # the DRA kubelet plugin starts here",
            f"kubectl wait pod -n {namespace} -l {CHART}-component=kubelet-plugin --field-selector spec.nodeName={n} --for=condition=Ready --timeout=10m",
            f"kubectl get resourceslices --field-selector spec.nodeName={n} -o json | jq '[.items[].spec.devices[]] | length'  # expect the node's GPUs (and MIG devices)",
            f"# verify: a pod on {n} with a claim selecting {' && '.join(sel)} runs nvidia-smi -L (aiinfra k8s render dra --gpu {t.key} "
            f"--k8s-version {version}, pod pinned with nodeName: {n}); then kubectl delete pod {test}",
            f"kubectl uncordon {n}",
        ]
        rollback += [
            f"# node {n}",
            f"kubectl cordon {n}",
            _drain_gpu_pods(n),
            f"kubectl label node {n} {DRA_LABEL}- ",
            f"kubectl label node {n} {DP_DEPLOY}=true --overwrite",
            f"kubectl wait pod -n {namespace} -l app=nvidia-device-plugin-daemonset --field-selector spec.nodeName={n} --for=condition=Ready --timeout=10m",
            f"kubectl get node {n} -o jsonpath='{{.status.allocatable.nvidia\\.com/gpu}}'  # the GPUs are back as nvidia.com/gpu",
            f"kubectl uncordon {n}",
        ]
    steps += [
        "# Phase 2 — ClusterPolicy → GPUCluster (every node now serves DRA; plan a window: DCGM exporter and validators restart)",
        "kubectl get nodes -l nvidia.com/gpu.present=true -o name | wc -l  # must equal the nodes labelled " + DRA_LABEL + "=true",
        "# GPUCluster runs no GPU driver or container toolkit: confirm each node's driver does not come from the ClusterPolicy's driver "
        "daemonset (kubectl get ds -n " + namespace + " nvidia-driver-daemonset must be absent, or move the nodes to a host driver with aiinfra k8s rollout driver first)",
        "kubectl delete clusterpolicies.nvidia.com cluster-policy --wait=true",
        f"helm uninstall {CHART} -n {namespace}  # the GPUCluster's DRA driver replaces it",
        f"aiinfra k8s render dra --gpu {t.key} --k8s-version {version} --gpus-per-claim 0 | kubectl apply -f -  "
        "# or your own GPUCluster; it must be named gpu-cluster",
        "kubectl wait gpuclusters.nvidia.com/gpu-cluster --for=jsonpath='{.status.state}'=ready --timeout=20m",
        "kubectl get resourceslices -o json | jq '[.items[] | select(.spec.driver==\"gpu.nvidia.com\")] | length'  # one slice per GPU node again",
        f"kubectl label nodes --all {DRA_LABEL}-  # no longer used",
    ]
    warnings = [
        "ClusterPolicy and GPUCluster cannot co-exist: never apply the GPUCluster before the ClusterPolicy is deleted",
        "pods keep their devices only while they run: claims are allocated at scheduling, so drain before moving a node either way",
        "MIG under GPUCluster: no mig-manager is deployed; use the driver's DynamicMIG gate (MIG on demand) or pre-create instances on the host",
    ]
    return {"steps": steps, "rollback": rollback, "warnings": warnings}

"""Device-plugin IDs and DRA claims → dcgm-exporter's pod labels.

Device ID formats: NVIDIA k8s-device-plugin (GPU-<uuid>, MIG-<uuid>, replicas with ::<n>) and the GKE
plugin (nvidia<i>, nvidia<i>/gi<g>, nvidia<i>/vgpu<n>), as dcgm-exporter's pod mapper parses them
(internal/pkg/transformation/kubernetes.go @ d5e5f51). Label names from its const.go.
"""

from __future__ import annotations

from aiinfra.telemetry.attribution import podresources_pb2 as pb
from aiinfra.telemetry.attribution.mapping import PodInfo, device_key, index, owners
from aiinfra.telemetry.nvml import Identity

GPU = Identity(gpu=0, uuid="GPU-aaaa", pci_bus_id="00000000:18:00.0", model="NVIDIA H100 80GB HBM3")
MIG = Identity(gpu=1, uuid="GPU-bbbb", pci_bus_id="00000000:2A:00.0", model="NVIDIA H100 80GB HBM3", gi_id=2, gi_profile="3g.40gb", mig_uuid="MIG-cccc")


def pod(ns, name, containers):
    return pb.PodResources(name=name, namespace=ns, containers=containers)


def test_device_keys():
    assert device_key("GPU-aaaa") == ("GPU-aaaa", "")
    assert device_key("GPU-aaaa::3") == ("GPU-aaaa", "3")
    assert device_key("MIG-cccc::1") == ("MIG-cccc", "1")
    assert device_key("nvidia1/gi2") == ("1-2", "")
    assert device_key("nvidia1/gi2/vgpu0") == ("1-2", "0")
    assert device_key("nvidia0/vgpu4") == ("nvidia0", "4")
    assert device_key("0") == ("nvidia0", "")


def test_whole_mig_shared_and_filtered_resources():
    resp = pb.ListPodResourcesResponse(pod_resources=[
        pod("ml", "train-0", [pb.ContainerResources(name="trainer", devices=[pb.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=["GPU-aaaa"])])]),
        pod("serving", "triton-0", [pb.ContainerResources(name="infer", devices=[pb.ContainerDevices(resource_name="nvidia.com/mig-3g.40gb", device_ids=["MIG-cccc"])])]),
        pod("other", "nic-0", [pb.ContainerResources(name="x", devices=[pb.ContainerDevices(resource_name="rdma/hca", device_ids=["GPU-aaaa"])])]),
    ])
    idx = index(resp)
    assert owners(idx, GPU) == (PodInfo("ml", "train-0", "trainer"),)
    assert owners(idx, MIG) == (PodInfo("serving", "triton-0", "infer"),)
    assert PodInfo("ml", "train-0", "trainer").labels() == {"container": "trainer", "namespace": "ml", "pod": "train-0"}


def test_time_sliced_gpu_has_one_owner_per_replica():
    resp = pb.ListPodResourcesResponse(pod_resources=[
        pod("dev", f"nb-{i}", [pb.ContainerResources(name="nb", devices=[pb.ContainerDevices(resource_name="nvidia.com/gpu.shared", device_ids=[f"GPU-aaaa::{i}"])])])
        for i in (0, 1)
    ])
    got = owners(index(resp), GPU)
    assert [(o.pod, o.vgpu) for o in got] == [("nb-0", "0"), ("nb-1", "1")]
    assert got[1].labels()["vgpu"] == "1"


def test_gke_mig_id_matches_gpu_instance():
    resp = pb.ListPodResourcesResponse(pod_resources=[
        pod("a", "p", [pb.ContainerResources(name="c", devices=[pb.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=["nvidia1/gi2"])])])])
    assert [o.pod for o in owners(index(resp), MIG)] == ["p"]


def test_dra_claim_by_driver_device_name_and_slice_table():
    claim = pb.DynamicResource(claim_name="gpu-claim", claim_namespace="ml", claim_resources=[
        pb.ClaimResource(driver_name="gpu.nvidia.com", pool_name="node-1", device_name="gpu-0"),
        pb.ClaimResource(driver_name="gpu.nvidia.com", pool_name="node-1", device_name="mig-x"),
        pb.ClaimResource(driver_name="other.example.com", pool_name="node-1", device_name="gpu-0"),
    ])
    resp = pb.ListPodResourcesResponse(pod_resources=[pod("ml", "dra-pod", [pb.ContainerResources(name="c", dynamic_resources=[claim])])])
    idx = index(resp, dra_devices={"node-1/mig-x": "MIG-cccc"})
    (gpu_owner,) = owners(idx, GPU)
    assert gpu_owner.labels() == {"container": "c", "dra_claim_name": "gpu-claim", "dra_claim_namespace": "ml", "dra_device_name": "gpu-0",
                                  "dra_driver_name": "gpu.nvidia.com", "dra_pool_name": "node-1", "namespace": "ml", "pod": "dra-pod"}
    assert [o.claim[4] for o in owners(idx, MIG)] == ["mig-x"]
    assert len(idx["nvidia0"]) == 1  # the other driver's claim is not a GPU of ours


def test_unallocated_gpu_has_no_owner():
    assert owners(index(pb.ListPodResourcesResponse()), GPU) == ()


def test_dra_table_from_resource_slices_v1_and_v1beta1():
    from aiinfra.telemetry.attribution.mapping import dra_table_from_slices

    doc = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "spec": {"driver": "gpu.nvidia.com", "pool": {"name": "node-1"}, "devices": [
            {"name": "gpu-0", "attributes": {"type": {"string": "gpu"}, "uuid": {"string": "GPU-aaaa"}}},
            {"name": "gpu-1-mig-3g40gb-1", "attributes": {"type": {"string": "mig"}, "uuid": {"string": "MIG-cccc"}, "parentUUID": {"string": "GPU-bbbb"}}}]}},
        {"apiVersion": "resource.k8s.io/v1beta1", "kind": "ResourceSlice", "spec": {"driver": "gpu.nvidia.com", "pool": {"name": "node-2"}, "devices": [
            {"name": "gpu-0", "basic": {"attributes": {"uuid": {"string": "GPU-dddd"}}}}]}},
        {"spec": {"driver": "nic.example.com", "pool": {"name": "node-1"}, "devices": [{"name": "x", "attributes": {"uuid": {"string": "NIC"}}}]}},
    ]}
    table = dra_table_from_slices(doc)
    assert table == {"node-1/gpu-0": "GPU-aaaa", "node-1/gpu-1-mig-3g40gb-1": "MIG-cccc", "node-2/gpu-0": "GPU-dddd"}
    claim = pb.DynamicResource(claim_name="c", claim_namespace="ml", claim_resources=[
        pb.ClaimResource(driver_name="gpu.nvidia.com", pool_name="node-1", device_name="gpu-1-mig-3g40gb-1")])
    resp = pb.ListPodResourcesResponse(pod_resources=[pod("ml", "p", [pb.ContainerResources(name="c", dynamic_resources=[claim])])])
    assert [o.pod for o in owners(index(resp, dra_devices=table), MIG)] == ["p"]
    assert dra_table_from_slices("not a mapping") == {}

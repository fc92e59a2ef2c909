"""The committed Python modules are what grpcio-tools makes of our podresources.proto, and the proto
has the published v1 API's package, service, methods and field numbers (kubernetes/kubelet
pkg/apis/podresources/v1/api.proto @ 63b3249)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aiinfra.telemetry.attribution import podresources_pb2 as pb

SRC = Path(__file__).resolve().parents[3] / "src"
PROTO = "aiinfra/telemetry/attribution/podresources.proto"


def test_wire_contract_matches_the_published_api():
    svc = pb.DESCRIPTOR.services_by_name["PodResourcesLister"]
    assert pb.DESCRIPTOR.package == "v1"
    assert {m.name: (m.input_type.name, m.output_type.name) for m in svc.methods} == {
        "List": ("ListPodResourcesRequest", "ListPodResourcesResponse"),
        "GetAllocatableResources": ("AllocatableResourcesRequest", "AllocatableResourcesResponse"),
        "Get": ("GetPodResourcesRequest", "GetPodResourcesResponse"),
    }

    def numbers(msg):
        return {f.name: f.number for f in pb.DESCRIPTOR.message_types_by_name[msg].fields}

    assert numbers("PodResources") == {"name": 1, "namespace": 2, "containers": 3, "cpu_ids": 4, "memory": 5}
    assert numbers("ContainerResources") == {"name": 1, "devices": 2, "cpu_ids": 3, "memory": 4, "dynamic_resources": 5}
    assert numbers("ContainerDevices") == {"resource_name": 1, "device_ids": 2, "topology": 3}
    assert numbers("DynamicResource") == {"claim_name": 2, "claim_namespace": 3, "claim_resources": 4}
    assert numbers("ClaimResource") == {"cdi_devices": 1, "driver_name": 2, "pool_name": 3, "device_name": 4, "share_id": 5}
    assert numbers("GetPodResourcesRequest") == {"pod_name": 1, "pod_namespace": 2}
    assert numbers("NUMANode") == {"ID": 1}


def test_committed_stubs_are_regenerated_from_the_proto(tmp_path):
    pytest.importorskip("grpc_tools")
    out = tmp_path / "gen"
    out.mkdir()
    shutil.copytree(SRC / "aiinfra/telemetry/attribution", tmp_path / "in/aiinfra/telemetry/attribution")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path / 'in'}", f"--python_out={out}", f"--grpc_python_out={out}", PROTO], check=True)
    for name in ("podresources_pb2.py", "podresources_pb2_grpc.py"):
        assert (out / "aiinfra/telemetry/attribution" / name).read_text() == (SRC / "aiinfra/telemetry/attribution" / name).read_text(), name

"""Every manifest we generate passes our own linter, kubernetes-validate (core objects) and the
operators' CRD schemas shipped in catalog/data/crd_schemas (ClusterPolicy @ NVIDIA/gpu-operator a22dbf6,
NicClusterPolicy/HostDeviceNetwork/MacvlanNetwork/IPPool @ Mellanox/network-operator b06827e)."""

from __future__ import annotations

import jsonschema
import kubernetes_validate
import pytest
import yaml

from aiinfra.sharing import k8s, lint, mig, packing
from aiinfra.sharing.workloads import Workload

K8S_VERSION = "1.33"
CRD_KINDS = {"ClusterPolicy", "NicClusterPolicy", "HostDeviceNetwork", "MacvlanNetwork", "IPPool"}


def _bundles() -> dict[str, k8s.Bundle]:
    h100 = mig.mig_gpu("h100-sxm")
    a30 = mig.mig_gpu("a30")
    plan = packing.plan(
        h100,
        [Workload(name="nb", count=10, profile="1g.10gb"), Workload(name="llm", count=3, memory_gb=30), Workload(name="b", count=7, memory_gb=20, isolation="soft")],
        gpus_available=24,
        gpus_per_node=4,
    )
    from aiinfra.sharing.commands import plan_bundle

    return {
        "mig-geometry": k8s.render_mig(h100, {"n0": [("all", {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2})], "n1": [("all", {"1g.10gb+me": 1, "1g.10gb": 6})]}),
        "mig-a30": k8s.render_mig(a30, {"n0": [([0, 1], {"2g.12gb": 1, "1g.6gb": 2}), ([2, 3], None)]}),
        "mig-plan": plan_bundle(plan),
        "timeslice": k8s.render_sharing("timeslice", {"n0": k8s.device_plugin_config("timeslice", 4), "n1": k8s.device_plugin_config("timeslice", 8)}),
        "timeslice-mig": k8s.render_sharing("timeslice", {"n0": k8s.device_plugin_config("timeslice", 2, ["nvidia.com/gpu", "nvidia.com/mig-1g.10gb"], "mixed")}),
        "mps": k8s.render_sharing("mps", {"n0": k8s.device_plugin_config("mps", 10)}),
        "operator": k8s.render_operator(device_plugin_config="time-slicing-config", device_plugin_default="ts-4", gds=True),
        "operator-single": k8s.render_operator(mig_strategy="single", mig_config=None),
        "rdma-shared": k8s.render_rdma("shared"),
        "rdma-hostdev": k8s.render_rdma("hostdev"),
    }


BUNDLES = _bundles()


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_generated_manifests_pass_our_linter(name):
    text = BUNDLES[name].text()
    errors = [f.line() for f in lint.lint_text(text, f"{name}.yaml") if f.severity != "info"]
    assert errors == []


@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_generated_manifests_pass_kubernetes_validate_and_crd_schemas(name):
    docs = list(yaml.safe_load_all(BUNDLES[name].text()))
    assert docs
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            shipped = lint.crd_schema(doc["kind"])
            assert doc["apiVersion"] == shipped["apiVersion"]
            jsonschema.Draft7Validator(shipped["schema"]).validate(doc)
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_helm_values_lint_clean():
    values = k8s.helm_values(k8s.cluster_policy())
    assert lint.lint_text(yaml.safe_dump(values), "values.yaml") == []
    assert values["mig"]["strategy"] == "mixed" and values["dcgmExporter"]["enabled"] is True


def test_rendered_mig_config_roundtrips_the_geometry():
    """The ConfigMap's config.yaml holds the geometry under mig-devices with the GPU's device-filter (0xDDDD10DE)."""
    b = BUNDLES["mig-geometry"]
    cm = b.docs[0]
    cfg = yaml.safe_load(cm["data"]["config.yaml"])
    assert cfg["version"] == "v1" and "all-disabled" in cfg["mig-configs"]
    entries = [cfg["mig-configs"][b.labels[n]["nvidia.com/mig.config"]][0] for n in ("n0", "n1")]
    assert entries[0]["mig-devices"] == {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
    assert "0x233010DE" in entries[0]["device-filter"]
    pods = [d for d in b.docs if d["kind"] == "Pod"]
    assert {next(iter(p["spec"]["containers"][0]["resources"]["limits"])) for p in pods} >= {"nvidia.com/mig-1g.10gb.me", "nvidia.com/mig-3g.40gb"}


def test_crd_schemas_record_their_source():
    for kind in CRD_KINDS:
        s = lint.crd_schema(kind)
        assert len(s["commit"]) == 40 and s["source"].startswith("https://github.com/") and s["version"]


def test_invalid_inputs_are_refused_before_rendering():
    from aiinfra.errors import SpecError

    with pytest.raises(SpecError, match="replicas must be ≥ 2"):
        k8s.device_plugin_config("timeslice", 1)
    with pytest.raises(SpecError, match="MPS shares only nvidia.com/gpu"):
        k8s.device_plugin_config("mps", 4, ["nvidia.com/mig-1g.10gb"], "mixed")
    with pytest.raises(SpecError, match="not valid on H100-80GB"):
        k8s.render_mig(mig.mig_gpu("h100-sxm"), {"n": [("all", {"3g.40gb": 3})]})


def test_rollout_runbooks_are_ordered_and_warn_about_the_wedge():
    book = k8s.rollout_mig(["n1"], "all-1g.10gb", expect={"nvidia.com/mig-1g.10gb": 56})
    steps = book["steps"]
    order = ["kubectl cordon", "kubectl delete pod", "nvidia.com/mig.config=all-1g.10gb", "mig\\.config\\.state", "allocatable", "kubectl uncordon"]
    idx = [next(i for i, s in enumerate(steps) if key in s) for key in order]
    assert idx == sorted(idx)
    assert "nvidia.com/mig-1g.10gb: 56" in steps[4]
    assert "all-disabled" in book["rollback"][0]
    assert any("pending" in w and "paused-for-mig-change" in w for w in book["warnings"])
    drv = k8s.rollout_driver(["n1", "n2"], "595.91.07", "580.95.05")
    assert drv["steps"][1].count("595.91.07") == 1 and "580.95.05" in drv["rollback"][0]
    assert sum("kubectl uncordon" in s for s in drv["steps"]) == 2


def test_rdma_networks_take_addresses_from_an_nv_ipam_pool(cli):
    """The Network Operator deploys nv-ipam and, since v25.10.0 (Mellanox/network-operator fbc0b2cf), no longer
    whereabouts; its examples pair a network's {"type": "nv-ipam", "poolName": …} with an IPPool
    (example/crs/nvidia.com_v1alpha1_nv_ipam_ippool_cr.yaml). The pool's perNodeBlockSize must stay below the
    subnet's addresses (ippools CRD), and the note says how many nodes the pool serves."""
    import json

    from tests.conftest import assert_one_line_error

    for mode, kind in (("shared", "MacvlanNetwork"), ("hostdev", "HostDeviceNetwork")):
        docs = {d["kind"]: d for d in k8s.render_rdma(mode, cidr="10.10.0.0/22", per_node_ips=32).docs}
        pool, net = docs["IPPool"], docs[kind]
        assert json.loads(net["spec"]["ipam"]) == {"type": "nv-ipam", "poolName": pool["metadata"]["name"]}
        assert pool["spec"] == {"subnet": "10.10.0.0/22", "perNodeBlockSize": 32}
        assert pool["metadata"]["namespace"] == "nvidia-network-operator"  # where the operator runs nv-ipam
    b = k8s.render_rdma("shared", cidr="10.10.0.0/22", per_node_ips=32)
    assert any("serves 31 nodes" in n for n in b.notes)  # 1022 usable addresses / 32
    for args, fragment in ((("--cidr", "10.0.0.1/24"), "host bits set"), (("--cidr", "10.0.0.0/33"), "CIDR form"),
                           (("--cidr", "10.0.0.0/28", "--per-node-ips", "14"), "below the 14 addresses")):
        assert_one_line_error(cli("k8s", "render", "rdma", *args), fragment)


def test_operator_objects_carry_the_images_a_helm_install_cannot_default():
    """The chart writes repository/image/version into ClusterPolicy.spec.gds and the GPUCluster's draDriver and
    dcgmExporter (deployments/gpu-operator/templates @ a22dbf6); without them the operator looks for GDS_IMAGE,
    DRA_DRIVER_IMAGE or DCGM_EXPORTER_IMAGE, which only its OLM bundle sets, and the state fails to reconcile."""
    from aiinfra.sharing import dra

    gds = k8s.cluster_policy(gds=True)["spec"]["gds"]
    assert gds["enabled"] and gds["image"] == "nvidia-fs" and gds["version"]
    spec = dra.gpu_cluster({}, compute_domains=False)["spec"]
    for part in ("draDriver", "dcgmExporter"):
        assert {"repository", "image", "version"} <= set(spec[part])

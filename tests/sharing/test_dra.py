"""DRA end to end: every rendered object validates for every supported Kubernetes release
(kubernetes-validate, strict, at that release; CRDs against the schemas shipped in
catalog/data/crd_schemas with their upstream commit; the driver's GpuConfig against its Go types),
our linter passes what we render, and each DRA lint rule has a passing and a failing fixture.

Sources: NVIDIA/k8s-dra-driver-gpu @ 2240711 (device classes, attributes, feature gates, GpuConfig,
ComputeDomain CRD); NVIDIA/gpu-operator @ a22dbf6 (GPUCluster CRD, singleton name, exclusivity with
ClusterPolicy); kubernetes-sigs/kueue @ ff69552 (ResourceFlavor/ClusterQueue v1beta2, deviceClassMappings).
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from aiinfra.errors import AiinfraError, SpecError
from aiinfra.sharing import commands, dra, lint

FIX = Path(__file__).parent / "fixtures" / "dra"
VERSIONS = dra.kube_versions()
CRDS = {"GPUCluster", "ComputeDomain", "ResourceFlavor", "ClusterQueue"}

SCENARIOS = {
    "whole-gpus": dict(gpu="h100-sxm", gpus_per_claim=8, kueue_quota=64),
    "mig-static": dict(gpu="a100-80gb-sxm", gpus_per_claim=0, mig=["1g.10gb,3g.40gb"], mig_mode="static", kueue_quota=28),
    "mig-dynamic": dict(gpu="h200-sxm", gpus_per_claim=1, mig=["1g.18gb", "2g.35gb"], mig_mode="dynamic"),
    "timeslice": dict(gpu="l40s", share="timeslice", interval="Short"),
    "mps": dict(gpu="h100-sxm", gpus_per_claim=0, share="mps", mps_threads=25, mps_memory="20Gi"),
    "compute-domain": dict(gpu="gb200", gpus_per_claim=0, compute_domain_nodes=18),
    "no-gpucluster": dict(gpu="b200", gpu_cluster=False, share="timeslice"),
}


def validate_doc(doc: dict, version: str) -> None:
    if doc["kind"] in CRDS:
        shipped = lint.crd_schema(doc["kind"])
        assert doc["apiVersion"] == shipped["apiVersion"] and shipped["commit"] and shipped["source"]
        jsonschema.Draft7Validator(shipped["schema"]).validate(doc)
    else:
        kubernetes_validate.validate(doc, version, strict=True)
    if doc["kind"] in ("ResourceClaim", "ResourceClaimTemplate"):
        spec = doc["spec"]["spec"] if doc["kind"] == "ResourceClaimTemplate" else doc["spec"]
        for c in spec["devices"].get("config", []):
            jsonschema.Draft7Validator(lint.crd_schema("GpuConfig")["schema"]).validate(c["opaque"]["parameters"])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rendered_objects_validate_and_lint_clean(scenario, version):
    r = commands.k8s_render_dra(k8s_version=version, **SCENARIOS[scenario])
    docs = list(yaml.safe_load_all(r.facts["manifests"]))
    assert docs == r.facts["docs"]
    for doc in docs:
        validate_doc(doc, version)
    assert {d["apiVersion"] for d in docs if d["kind"] in ("DeviceClass", "ResourceClaimTemplate", "ResourceClaim")} <= {dra.resource_api(version)}
    findings = lint.lint_text(r.facts["manifests"], f"{scenario}.yaml", k8s_version=version)
    assert [f.line() for f in findings if f.severity == "error"] == []


def test_render_contents_follow_the_request():
    r = commands.k8s_render_dra(gpu="h100-sxm", k8s_version="1.34", mig=["1g.10gb", "3g.40gb"], mig_mode="static", share="mps",
                                kueue_quota=4)
    kinds = [d["kind"] for d in r.facts["docs"]]
    assert kinds[0] == "GPUCluster" and kinds.count("DeviceClass") == 3
    assert r.facts["docs"][0]["spec"]["draDriver"]["featureGates"] == {"MPSSupport": True}
    assert "ClusterQueue" in kinds and "ResourceFlavor" in kinds
    mapping = yaml.safe_load(next(d for d in r.facts["docs"] if d["kind"] == "ConfigMap")["data"]["controller_manager_config.yaml"])
    # One DeviceClass per MIG profile: Kueue refuses a class mapped to two resources ("device class already mapped",
    # kubernetes-sigs/kueue pkg/config/validation.go @ ff69552), and could not count the profiles apart anyway.
    classes = [m["deviceClassNames"][0] for m in mapping["resources"]["deviceClassMappings"]]
    assert sorted(classes) == ["h100-sxm.gpu.aiinfra.io", "h100-sxm.mig-1g-10gb.aiinfra.io", "h100-sxm.mig-3g-40gb.aiinfra.io"]
    with pytest.raises(SpecError, match="DynamicMIG and MPSSupport are mutually exclusive"):
        commands.k8s_render_dra(gpu="h100-sxm", mig=["1g.10gb"], mig_mode="dynamic", share="mps")


def test_mutually_exclusive_driver_gates_are_refused_when_rendering():
    """pkg/featuregates ValidateFeatureGates: DynamicMIG excludes MPSSupport."""
    with pytest.raises(SpecError, match="mutually exclusive"):
        dra.gpu_cluster({"DynamicMIG": True, "MPSSupport": True}, compute_domains=False)
    assert dra.gate_problems({"DeviceMetadata": True}) == ["feature gate DeviceMetadata requires PassthroughSupport to be enabled"]
    assert dra.gate_problems({"TimeSlicingSettings": True, "DynamicMIG": True}) == []


def test_selectors_use_published_attributes_and_memory_in_gib():
    t = dra.gpu_type("h100-sxm")
    sel = dra.gpu_selectors(t)
    # 81559 MiB × 0.95 = 75.7 GiB → at least 75Gi: a board reporting slightly less still matches.
    assert sel == ["device.attributes['gpu.nvidia.com'].productName.contains('H100')",
                   "device.capacity['gpu.nvidia.com'].memory.compareTo(quantity('75Gi')) >= 0"]
    assert dra.product_token("NVIDIA RTX PRO 6000 Blackwell Server Edition") == "RTX PRO 6000"


@pytest.mark.parametrize("version", VERSIONS)
def test_mig_plan_emit_dra_validates(version, tmp_path):
    wl = tmp_path / "w.yaml"
    wl.write_text("workloads:\n  - {name: nb, count: 9, profile: 1g.10gb}\n  - {name: llm, count: 3, memory_gb: 30}\n"
                  "  - {name: batch, count: 5, memory_gb: 12, isolation: soft}\n")
    r = commands.mig_plan("h100-sxm", wl, gpus=16, emit="dra", k8s_version=version, mig_mode="dynamic")
    docs = list(yaml.safe_load_all(r.facts["manifests"]))
    for doc in docs:
        validate_doc(doc, version)
    deployments = {d["metadata"]["name"]: d["spec"]["replicas"] for d in docs if d["kind"] == "Deployment"}
    assert deployments["nb-1g-10gb"] == 9 and sum(v for k, v in deployments.items() if k.startswith("batch")) == 5
    assert docs[0]["kind"] == "GPUCluster" and docs[0]["spec"]["draDriver"]["featureGates"] == {"DynamicMIG": True, "TimeSlicingSettings": True}
    assert [f.line() for f in lint.lint_text(r.facts["manifests"], "plan.yaml", k8s_version=version) if f.severity == "error"] == []


def test_mig_plan_emit_dra_static_carries_the_mig_parted_config(tmp_path):
    wl = tmp_path / "w.yaml"
    wl.write_text("workloads:\n  - {name: nb, count: 7, profile: 1g.10gb}\n")
    r = commands.mig_plan("h100-sxm", wl, gpus=1, emit="dra", mig_mode="static")
    kinds = [d["kind"] for d in yaml.safe_load_all(r.facts["manifests"])]
    assert "ConfigMap" in kinds and "DynamicMIG" not in r.facts["manifests"]


# --- lint rules: one passing and one failing fixture each ------------------------------------------


def rules(name: str, version: str = "1.34") -> dict[str, list]:
    out: dict[str, list] = {}
    for f in lint.lint_files([FIX / name], k8s_version=version):
        if f.severity == "error":
            out.setdefault(f.rule, []).append(f)
    return out


def test_passing_fixture_has_no_errors_for_every_rule():
    assert rules("ok_stack.yaml") == {}


def test_api_version_not_served_by_the_release():
    (f,) = rules("bad_api_version_133.yaml", "1.33")["dra.api-version"]
    assert "1.33 does not serve 'resource.k8s.io/v1'" in f.message and "v1beta2" in f.fix
    assert rules("bad_api_version_133.yaml", "1.34") == {}


def test_object_shape_checked_at_the_release():
    (f,) = rules("bad_v1beta1_shape.yaml")["dra.schema"]
    assert "'exactly' was unexpected" in f.message


def test_driver_feature_gates_that_exclude_or_require_each_other():
    msgs = [f.message for f in rules("bad_feature_gates.yaml")["dra.feature-gates"]]
    assert any("DynamicMIG and MPSSupport are mutually exclusive" in m for m in msgs)
    assert any("ComputeDomainCliques requires IMEXDaemonsWithDNSNames" in m for m in msgs)


def test_gpucluster_singleton_and_clusterpolicy_exclusivity():
    msgs = [f.message for f in rules("gpucluster_and_clusterpolicy.yaml")["dra.gpucluster"]]
    assert any("must be 'gpu-cluster'" in m for m in msgs) and any("cannot co-exist" in m for m in msgs)


def test_claims_no_class_satisfies_unpublished_attributes_and_unknown_profiles():
    r = rules("claim_problems.yaml")
    assert r["dra.no-device-class"][0].path.endswith("requests[0].exactly.deviceClassName")
    assert "memoryGiB" in r["dra.attribute"][0].message
    assert "2g.99gb" in r["dra.profile"][0].message


def test_sharing_config_rejected_or_gate_off():
    msgs = [f.message for f in rules("sharing_problems.yaml")["dra.sharing"]]
    assert any("MPSSupport" in m for m in msgs) and any("Forever" in m for m in msgs)


# --- rollout dra ---------------------------------------------------------------------------------


def test_rollout_dra_is_ordered_node_by_node_with_rollback():
    r = commands.k8s_rollout_dra(["gpu-a", "gpu-b"], "h100-sxm", "1.34")
    steps = r.facts["steps"]

    def at(text: str, start: int = 0) -> int:
        return next(i for i, s in enumerate(steps) if i >= start and text in s)

    backup = at("clusterpolicy-backup.yaml")
    helm = at("helm upgrade --install dra-driver-nvidia-gpu")
    a = at("kubectl cordon gpu-a")
    assert backup < helm < a < at("gpu.deploy.device-plugin=false", a) < at("dra-driver.enabled=true", a) < at("resourceslices", a) < at("kubectl uncordon gpu-a")
    b = at("kubectl cordon gpu-b")
    assert at("kubectl uncordon gpu-a") < b
    cut = at("kubectl delete clusterpolicies")
    assert cut > at("kubectl uncordon gpu-b") and cut < at("--gpus-per-claim 0 | kubectl apply", cut) < at("gpuclusters.nvidia.com/gpu-cluster", cut)
    assert any("clusterpolicy-backup.yaml" in s for s in r.facts["rollback"])
    assert any("cannot co-exist" in w for w in r.warnings)


def test_rollout_dra_refuses_bad_node_names_and_versions():
    with pytest.raises(SpecError, match="not a valid Kubernetes node name"):
        commands.k8s_rollout_dra([""], "h100-sxm")
    with pytest.raises(AiinfraError, match="not supported for DRA"):
        commands.k8s_rollout_dra(["n1"], "h100-sxm", "1.29")

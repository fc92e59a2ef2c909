"""One test per error class of the checklist (reference notes §11), each on its own fixture.

Sources of the rules: mig-parted api/spec/v1/spec.go and go-nvlib parseMigProfile (§4.1); MIG User
Guide v580 tables (§1–2); k8s-device-plugin v0.20.0 api/config/v1 (§5.1); GPU Operator CRD
nvidia.com_clusterpolicies.yaml @ a22dbf6 (§7).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aiinfra.errors import AiinfraError
from aiinfra.sharing import lint

FIX = Path(__file__).parent / "fixtures"


def findings(name: str) -> list[lint.Finding]:
    return lint.lint_files([FIX / name])


def rules(name: str) -> dict[str, list[lint.Finding]]:
    out: dict[str, list[lint.Finding]] = {}
    for f in findings(name):
        out.setdefault(f.rule, []).append(f)
    return out


def test_every_finding_has_file_path_and_fix():
    for fixture in FIX.glob("*.yaml"):
        if fixture.name == "broken.yaml":
            continue
        for f in lint.lint_files([fixture]):
            assert f.file == str(fixture) and f.fix and f.message
            assert f.path or f.rule == "unrecognised"


def test_profile_grammar_and_profile_on_gpu():
    """§11.1: go-nvlib grammar; the profile must exist on the GPU the device-filter names (H100 has no 3g.20gb)."""
    r = rules("mig_bad_profile.yaml")
    assert r["mig.profile-grammar"][0].path == 'mig-configs.bad-grammar[0].mig-devices["1g10gb"]'
    unknown = r["mig.profile-unknown"][0]
    assert unknown.path == 'mig-configs.wrong-gpu[0].mig-devices["3g.20gb"]'
    assert "H100-80GB" in unknown.message and "3g.40gb" in unknown.fix


def test_geometry_slot_model_caps_and_driver_notes():
    """§11.2: +me at most 1; Σ slots ≤ 8; 4g+3g flagged as needing R510+."""
    r = rules("mig_bad_geometry.yaml")
    msgs = [f.message for f in r["mig.geometry"]]
    assert any("too many 1g.10gb+me" in m for m in msgs)
    assert any("9 memory slots > 8" in m and "A100-80GB" in m for m in msgs)
    assert r["mig.driver"][0].severity == "info" and "R510" in r["mig.driver"][0].message


def test_mig_parted_structure():
    """§11.3: version v1; devices + mig-enabled required; mig-devices iff enabled; counts ≥ 0 with one > 0; filter format; unknown fields."""
    r = rules("mig_structure.yaml")
    assert r["mig.version"][0].path == "version"
    assert {f.path for f in r["mig.unknown-field"]} == {"extra", "mig-configs.typo[0].mig-enable"}
    assert r["mig.devices"][0].path == "mig-configs.no-devices[0]"
    assert {f.path for f in r["mig.enabled"]} == {"mig-configs.no-enabled[0]", "mig-configs.typo[0]"}
    assert {f.path for f in r["mig.mig-devices"]} == {"mig-configs.enabled-without-devices[0]", "mig-configs.disabled-with-devices[0].mig-devices"}
    assert {f.path for f in r["mig.counts"]} == {"mig-configs.zero-counts[0].mig-devices", 'mig-configs.negative[0].mig-devices["1g.10gb"]'}
    assert r["mig.device-filter"][0].path == "mig-configs.bad-filter[0].device-filter"


def test_configmap_key_must_be_config_yaml():
    """§11.3 / GPU Operator values.yaml: custom ConfigMaps must contain the key config.yaml."""
    r = rules("mig_configmap_key.yaml")
    assert r["mig.configmap-key"][0].path == 'data["mig.yaml"]'


def test_node_label_must_match_a_config():
    """§11.3: nvidia.com/mig.config=<name> must be a key of mig-configs."""
    f = rules("mig_label_mismatch.yaml")["mig.label"][0]
    assert f.path == '[doc 1] metadata.labels["nvidia.com/mig.config"]' and "all-1g.10gb" in f.fix


def test_device_plugin_replicas_at_least_two():
    """§11.4: k8s-device-plugin rejects replicas < 2 ("number of replicas must be >= 2")."""
    assert rules("dp_replicas.yaml")["dp.replicas"][0].path == "sharing.timeSlicing.resources[0].replicas"


def test_device_plugin_rename_and_devices_are_ignored():
    """§11.4: per-resource rename/devices are parsed and then stripped (disableResoureRenaming)."""
    paths = {f.path for f in rules("dp_ignored.yaml")["dp.ignored-field"]}
    assert paths == {"sharing.timeSlicing.resources[0].rename", "sharing.timeSlicing.resources[0].devices"}


def test_device_plugin_mps_wins_over_timeslicing():
    """sharing.go ReplicatedResources: with both set the plugin starts and shares by MPS; timeSlicing is ignored."""
    f = rules("dp_exclusive.yaml")["dp.exclusive"][0]
    assert (f.path, f.severity) == ("sharing.timeSlicing", "warning")


def test_device_plugin_mps_limits():
    """§11.4: MPS refuses migStrategy mixed (main.go validateFlags), ≤ 48 clients (mps/device.go assertReplicas);
    a MIG resource name under MPS shares nothing (a warning)."""
    r = rules("dp_mps.yaml")
    assert r["dp.mps-limit"][0].path == "data.mps-mig.sharing.mps.resources[0].replicas"
    assert (r["dp.mps-mig"][0].path, r["dp.mps-mig"][0].severity) == ("data.mps-mig.flags.migStrategy", "error")
    assert [f.severity for f in r["dp.resource-name"]] == ["warning"]


def test_device_plugin_resource_names():
    """§11.4: time-sliced names are nvidia.com/gpu or nvidia.com/mig-<profile> with '+' as '.'."""
    r = rules("dp_resource_names.yaml")
    names = {f.path: f for f in r["dp.resource-name"]}
    assert names["sharing.timeSlicing.resources[0].name"].fix == "use nvidia.com/mig-1g.10gb.me"
    assert names["sharing.timeSlicing.resources[1].name"].severity == "error"  # nvidia.com/amd.com/gpu is no DNS subdomain
    assert "sharing.timeSlicing.resources[2].name" not in names


def test_single_strategy_needs_one_profile():
    """§11.4: migStrategy single needs one profile per node; MIG resources exist only under mixed."""
    r = rules("dp_single.yaml")
    assert r["dp.single-strategy"][0].severity == "error"
    (name,) = r["dp.resource-name"]
    assert name.severity == "warning" and "only under migStrategy mixed" in name.message


def test_clusterpolicy_schema_and_pruned_fields():
    """CRD nvidia.com_clusterpolicies.yaml @ a22dbf6: required spec sections, enums; unknown fields are pruned silently."""
    r = rules("clusterpolicy_bad.yaml")
    required = {f.message.split("'")[1] for f in r["crd.schema"] if "required" in f.message}
    assert required == {"daemonsets", "dcgm", "dcgmExporter", "devicePlugin", "driver", "gfd", "nodeStatusExporter", "operator", "toolkit"} - {"devicePlugin"}
    assert any(f.path == "[doc 0] spec.mig.strategy" for f in r["crd.schema"])
    assert r["crd.pruned"][0].path == "[doc 0] spec.devicePlugin.replicas"
    assert r["cp.device-plugin-config"][0].path == "[doc 0] spec.devicePlugin.config.default"


def test_rdma_network_ipam():
    """The operator pastes spec.ipam into the NetworkAttachmentDefinition, so it must be JSON naming an IPAM type;
    whereabouts left the operator in v25.10.0 (Mellanox/network-operator fbc0b2cf); nv-ipam needs a poolName; an
    IPPool needs perNodeBlockSize (ippools CRD, manifests/state-nv-ipam-cni @ b06827e)."""
    r = rules("rdma_networks.yaml")
    by_doc = {(f.path.split("]")[0] + "]", f.severity) for f in r["net.ipam"]}
    assert by_doc == {("[doc 1]", "warning"), ("[doc 2]", "error"), ("[doc 3]", "error")}
    assert any(f.path.startswith("[doc 4]") and "perNodeBlockSize" in f.message for f in r["crd.schema"])


def test_yaml_that_does_not_parse_names_file_and_line():
    with pytest.raises(AiinfraError, match=r"broken.yaml:6"):
        findings("broken.yaml")


def test_single_strategy_clusterpolicy_with_mixed_gpus():
    """§5.2: under single, a node mixing MIG-enabled and MIG-disabled GPUs is labelled -MIG-INVALID."""
    f = rules("clusterpolicy_single.yaml")["cp.single-strategy"][0]
    assert f.path == "[doc 0] spec.mig.strategy" and "'half' mixes MIG-enabled and MIG-disabled GPUs" in f.message


def test_known_good_configs_pass():
    """mig-parted's README example (DGX A100) lints clean."""
    assert [f for f in findings("mig_parted_readme_example.yaml") if f.severity != "info"] == []


def test_gpu_operator_default_config_checks_every_profile_against_its_gpu():
    """The GPU Operator's own default ConfigMap (0400_configmap.yaml @ a22dbf6) names every profile per
    device-filter; every profile places on our tables, including 3g.95gb/4g.95gb/7g.189gb (GB200's other names)."""
    assert [f.line() for f in findings("gpu_operator_default_mig_config.yaml") if f.severity != "info"] == []


def test_helm_values_configmap_key_and_embedded_configs():
    """GPU Operator values.yaml: "Custom ConfigMaps must contain a key named config.yaml"; data configs are linted."""
    r = rules("helm_values_bad.yaml")
    assert r["mig.configmap-key"][0].path == "migManager.config.data"
    assert r["dp.replicas"][0].path == "devicePlugin.config.data.any.sharing.timeSlicing.resources[0].replicas"

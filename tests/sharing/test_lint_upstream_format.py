"""The linter against files written in each upstream format (our own files, fixtures/upstream_format/):
zero false errors on what the components accept, and the components' own consequence for what they
refuse. One passing and one failing fixture per rule.

Formats read from: mig-parted examples/ and cmd/nvidia-mig-manager GPUClients (@ bd7160f);
k8s-device-plugin api/config/v1 (replicas.go ReplicatedDevices/ResourceName, flags.go, consts.go) and
cmd/nvidia-device-plugin/main.go flag checks, deployments/helm/nvidia-device-plugin/values.yaml (@ 1b826ac);
gpu-operator deployments/gpu-operator/values.yaml and templates/{mig_config,plugin_config}.yaml,
assets/state-mig-manager/04{00,10,20}_configmap.yaml, the ClusterPolicy CRD (@ a22dbf6).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinfra.errors import AiinfraError
from aiinfra.safeio import UnsafeInputError
from aiinfra.sharing import lint

FIX = Path(__file__).parent / "fixtures" / "upstream_format"


def run(name: str) -> list[lint.Finding]:
    return lint.lint_files([FIX / name])


def errors(name: str) -> list[lint.Finding]:
    return [f for f in run(name) if f.severity == "error"]


@pytest.mark.parametrize("name", [
    "workstation_mig_config.yaml", "mig_manager_support_configmaps.yaml", "newer_gpus_mig_config.yaml",
    "plugin_configs_ok.yaml", "plugin_chart_values_ok.yaml", "operator_values_ok.yaml", "mig_parted_hooks.yaml",
])
def test_upstream_format_files_have_no_errors_or_warnings(name):
    assert [f.line() for f in run(name) if f.severity != "info"] == []


def test_prunable_nulls_are_a_note_not_an_error():
    """CRD structural schemas: a null in a non-nullable field is pruned before validation."""
    found = run("clusterpolicy_with_nulls.yaml")
    assert [f.line() for f in found if f.severity != "info"] == []
    assert {f.path for f in found if f.rule == "crd.null-pruned"} >= {"spec.devicePlugin.config", "spec.driver.licensingConfig"}


def test_display_gpu_entry_with_mig_off_is_not_a_warning_but_enabling_it_is():
    text = (FIX / "workstation_mig_config.yaml").read_text().replace(
        '- device-filter: "0x1FB010DE"\n      devices: all\n      mig-enabled: false\n      mig-devices: {}\n  ws-small',
        '- device-filter: "0x1FB010DE"\n      devices: all\n      mig-enabled: true\n      mig-devices: {}\n  ws-small', 1)
    found = lint.lint_text(text, "ws.yaml")
    assert [f.rule for f in found if f.severity == "warning"] == ["mig.device-filter"]


def test_shell_script_and_gpu_clients_are_not_device_plugin_configs():
    assert lint.classify({"version": "v1", "systemd-services": ["a.service"]}) == "clients"
    assert lint.classify({"version": "v1", "flags": {"migStrategy": "none"}}) == "dp"
    assert lint.classify({"version": "v1"}) is None
    bad = lint.lint_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  clients.yaml: |\n    version: v1\n    systemd-services: oops\n", "c.yaml")
    assert [f.rule for f in bad] == ["clients.structure"]


def test_device_list_strategy_typo_fails_the_plugin():
    (f,) = errors("plugin_list_strategy_typo.yaml")
    assert f.rule == "dp.flag-value" and f.path == "flags.plugin.deviceListStrategy"
    assert "fails to start" in f.message and "volume-mounts" in f.fix


def test_invalid_devices_and_rename_fail_the_plugin_valid_ones_are_ignored():
    """replicas.go: ReplicatedDevices.UnmarshalJSON refuses 'some'; NewResourceName refuses non-DNS names
    (the config does not load); valid values are stripped by disableResoureRenaming with a log warning."""
    (d,) = errors("plugin_devices_invalid.yaml")
    assert d.rule == "dp.devices" and "fails to start" in d.message
    (r,) = errors("plugin_rename_invalid.yaml")
    assert r.rule == "dp.rename" and "fails to start" in r.message
    ignored = run("plugin_devices_valid_but_ignored.yaml")
    assert [(f.rule, f.severity) for f in ignored] == [("dp.ignored-field", "warning")] * 2
    assert lint.lint_text("version: v1\nsharing:\n  timeSlicing:\n    resources:\n    - {name: nvidia.com/gpu, devices: all, replicas: 2}\n") == []


def test_device_plugin_chart_config_map_entries_are_linted():
    found = errors("plugin_chart_values_bad.yaml")
    assert {(f.rule, f.path) for f in found} == {
        ("dp.replicas", "config.map.shared.sharing.timeSlicing.resources[0].replicas"),
        ("dp.flag-value", "deviceListStrategy"),
    }


def test_values_configmap_created_without_a_name():
    (f,) = errors("operator_values_unnamed_configmap.yaml")
    assert f.rule == "values.configmap-name" and "helm install fails" in f.message


def test_unknown_mig_manager_default_config():
    (f,) = errors("operator_values_unknown_default.yaml")
    assert f.rule == "mig.default" and f.path == "migManager.config.default"
    assert "all-1g.10gb" in lint.default_mig_config_names() and "all-7g.189gb" in lint.default_mig_config_names()


def test_billion_laughs_cluster_policy_is_refused_in_bounded_time():
    """Issue 17: a ~470-byte alias chain expands to 10^9 nodes; safeio refuses it before validation."""
    lines = ["apiVersion: nvidia.com/v1", "kind: ClusterPolicy", "metadata: {name: p}", 'x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        lines.append(f"x{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines.append("spec: {operator: *a8}")
    text = "\n".join(lines) + "\n"
    assert len(text.encode()) < 600
    with pytest.raises(UnsafeInputError, match="aliases|expands"):
        lint.lint_text(text, "bomb.yaml")


# --- hypothesis: mutated upstream-format configs never crash the linter --------------------------

LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.text(max_size=12), st.lists(st.integers(-1, 9), max_size=3),
                   st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _mutate(doc, path, value, delete):
    if not path:
        return value
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


ALL_FIXTURES = sorted(FIX.glob("*.yaml")) + sorted((FIX.parent / "dra").glob("*.yaml"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ALL_FIXTURES), st.data())
def test_mutated_upstream_format_configs_never_crash(path, data):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    out = []
    for doc in docs:
        paths = list(_paths(doc))
        target = data.draw(st.sampled_from(paths))
        doc = _mutate(doc, target, data.draw(LEAVES), data.draw(st.booleans()))
        # Embedded configs (ConfigMap data, values maps) are mutated as text too.
        out.append(doc)
    text = yaml.safe_dump_all(out)
    try:
        found = lint.lint_text(text, path.name)
    except AiinfraError:
        return
    assert all(f.message and f.fix and f.severity in ("error", "warning", "info") for f in found)

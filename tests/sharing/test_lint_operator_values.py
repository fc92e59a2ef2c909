"""GPU Operator ClusterPolicy, Helm values and ConfigMaps against what the operator and its chart do with them
(gpu-operator @ a22dbf6: deployments/gpu-operator/values.yaml and templates, controllers/object_controls.go)."""

from __future__ import annotations

import json

from aiinfra.catalog.loader import DATA_DIR
from aiinfra.sharing import lint


def found(text: str) -> list[tuple[str, str, str]]:
    return [(f.rule, f.severity, f.path) for f in lint.lint_text(text, "values.yaml")]


def test_values_keys_the_chart_never_reads_are_warnings_with_the_closest_key():
    """The chart has no values.schema.json: Helm keeps a misspelt key and the templates never read it."""
    text = "devicePlugin:\n  confg: {name: x}\nmigManager:\n  enabled: true\n  cnofig: {name: y}\n"
    fs = lint.lint_text(text, "values.yaml")
    assert [(f.rule, f.severity, f.path) for f in fs] == [
        ("values.unknown-key", "warning", "devicePlugin.confg"), ("values.unknown-key", "warning", "migManager.cnofig")]
    assert all("did you mean 'config'?" == f.fix and "a22dbf6" in f.message for f in fs)


def test_values_read_whole_take_any_key():
    """Maps the templates render whole (toYaml) or that values.yaml leaves empty pass any key on."""
    text = ("operator:\n  resources: {limits: {cpu: 1}}\n  nodeSelector: {anything: x}\ndaemonsets:\n  labels: {team: ml}\n"
            "devicePlugin:\n  env: [{name: A, value: b}]\n  config: {name: c, create: true, data: {d: 'version: v1\\nflags: {migStrategy: none}\\n'}}\n"
            "node-feature-discovery:\n  worker: {config: {}}\n")
    assert found(text) == []


def test_values_keys_data_is_dated_and_sourced():
    shipped = json.loads((DATA_DIR / "chart_values" / "gpu-operator.json").read_text())
    assert shipped["commit"].startswith("a22dbf6") and shipped["date"] == "2026-08-21"
    keys = shipped["keys"]
    assert set(keys["devicePlugin"]["config"]) == {"create", "data", "default", "name"}
    assert keys["operator"]["resources"] is None and keys["migManager"]["config"]["data"] is None


def test_device_plugin_default_without_name_is_ignored_not_fatal():
    """object_controls.go handleDevicePluginConfig returns early when config.name is empty: default is unused;
    the chart renders devicePlugin.config only with a name."""
    cp = ("apiVersion: nvidia.com/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  devicePlugin:\n    config: {default: any}\n")
    (f,) = [f for f in lint.lint_text(cp, "cp.yaml") if f.rule == "cp.device-plugin-config"]
    assert (f.severity, f.path) == ("warning", "spec.devicePlugin.config.default")
    assert found("devicePlugin:\n  config: {default: any}\n") == [("cp.device-plugin-config", "warning", "devicePlugin.config.default")]


def test_device_plugin_configmap_created_without_data_fails_the_chart():
    """templates/validations: "devicePlugin.config.data cannot be empty when devicePlugin.config.create is set to true"."""
    assert found("devicePlugin:\n  config: {create: true, name: c}\n") == [("values.configmap-data", "error", "devicePlugin.config.data")]
    assert ("values.configmap-data", "warning", "migManager.config.data") in found("migManager:\n  config: {create: true, name: c}\n")


def test_mig_config_under_another_configmap_key_is_never_read():
    """With a custom ConfigMap the operator mounts it whole and sets CONFIG_FILE=/mig-parted-config/config.yaml
    (object_controls.go TransformMIGManager): a config under another key is not found."""
    body = "    version: v1\n    mig-configs:\n      a: [{devices: all, mig-enabled: false}]\n"
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\ndata:\n"
    (alone,) = lint.lint_text(cm + "  mig.yaml: |\n" + body, "cm.yaml")
    assert (alone.rule, alone.severity) == ("mig.configmap-key", "error") and "CONFIG_FILE" in alone.message
    (beside,) = lint.lint_text(cm + "  config.yaml: |\n" + body + "  old.yaml: |\n" + body, "cm.yaml")
    assert (beside.rule, beside.severity, beside.path) == ("mig.configmap-key", "warning", 'data["old.yaml"]')


def test_device_plugin_chart_values_are_not_read_as_the_operators():
    """The plugin chart has a devicePlugin section too; its flags and config.map mark it."""
    text = "migStrategy: mixed\nconfig:\n  map:\n    default: |-\n      version: v1\n      sharing: {timeSlicing: {}}\ndevicePlugin: {enabled: true}\n"
    assert [(r, s) for r, s, _ in found(text)] == [("dp.no-resources", "error")]

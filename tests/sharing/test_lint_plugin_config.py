"""The device-plugin config checks against what k8s-device-plugin @ 1b826ac does with each config
(fixtures/plugin_config_cases.yaml: each case says whether the plugin refuses it, starts and uses it, or starts
and ignores a setting). Rule: what the plugin refuses is an error, what it ignores or drops is a warning, what it
accepts is clean; each inside a ConfigMap and GPU Operator Helm values too."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aiinfra.sharing import lint
from tests.sharing.upstream_cases import check_case

FIX = Path(__file__).parent / "fixtures"
CASES = yaml.safe_load((FIX / "plugin_config_cases.yaml").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_plugin_config_as_the_plugin_reads_it(case):
    check_case(lint.lint_text(case["config"], "config.yaml"), case)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_same_config_inside_a_configmap_and_operator_values(case):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "plugin-config"}, "data": {"any": case["config"]}}
    check_case(lint.lint_text(yaml.safe_dump(cm), "cm.yaml"), case)
    values = {"devicePlugin": {"config": {"create": True, "name": "plugin-config", "default": "any", "data": {"any": case["config"]}}}}
    check_case(lint.lint_text(yaml.safe_dump(values), "values.yaml"), case)


def test_messages_name_the_consequence_and_the_closest_key():
    found = lint.lint_text("version: v1\nflags:\n  gfd: {sleepIntervall: 10s}\n  failOnInitError: 'false'\n")
    by_rule = {f.rule: f for f in found}
    assert by_rule["dp.unknown-field"].path == "flags.gfd.sleepIntervall" and "'sleepInterval'" in by_rule["dp.unknown-field"].fix
    assert "fails to start" in by_rule["dp.type"].message and by_rule["dp.type"].path == "flags.failOnInitError"


def test_time_slicing_ignored_beside_mps_is_a_warning_on_time_slicing():
    (f,) = [f for f in lint.lint_files([FIX / "dp_exclusive.yaml"])]
    assert (f.rule, f.severity, f.path) == ("dp.exclusive", "warning", "sharing.timeSlicing") and "ignored" in f.message


def test_resource_name_reasons():
    """NewResourceName: the fully qualified name is at most 63 characters, the part after nvidia.com/ a DNS subdomain."""
    assert "63" in lint.resource_name_problem("a" * 60)
    assert "DNS subdomain" in lint.resource_name_problem("$invalid$")
    assert "'.'" in lint.resource_name_problem("mig-1g.10gb+me")
    assert lint.resource_name_problem("valid") is None and lint.resource_name_problem("nvidia.com/gpu") is None


def test_key_in_another_case_is_read_as_the_field():
    """encoding/json matches keys ignoring case: 'MigStrategy: mixed' with MPS still stops the plugin."""
    found = lint.lint_text("version: v1\nflags: {MigStrategy: mixed}\nsharing:\n  mps:\n    resources: [{name: gpu, replicas: 2}]\n")
    assert [(f.rule, f.path) for f in found if f.severity == "error"] == [("dp.mps-mig", "flags.MigStrategy")]

"""fleet/commands.py: each command is registered, and its real output matches the facts it promises."""

from __future__ import annotations

import json

import pytest

from aiinfra import contract
from aiinfra.fleet import commands


def _facts(result):
    return json.loads(json.dumps(result.to_dict(explain=False), allow_nan=False))["facts"]


def test_fleet_commands_are_registered():
    reg = contract.registry()
    for name in ("analyze", "rules", "dashboard", "top"):
        assert reg[name].facts is not None
        assert reg[name].function.__module__ == "aiinfra.fleet.commands"
        contract.envelope_schema(reg[name])  # the schema builds


@pytest.mark.parametrize("name,call", [
    ("rules", lambda: commands.rules()),
    ("rules", lambda: commands.rules(kind="prometheusrule", namespace="monitoring", pod_label="pod")),
    ("dashboard", lambda: commands.dashboard(counters="default")),
    ("top", lambda: commands.top(simulate="hosts=1,gpus=2,seed=1,faults=lost:g1@0")),
])
def test_real_output_validates_against_the_declared_facts(name, call):
    contract.registry()[name].facts.model_validate(_facts(call()))


def test_rules_facts_carry_the_document_the_cli_prints():
    r = commands.rules(kind="prometheusrule", namespace="monitoring")
    f = r.facts
    assert f["document"]["kind"] == "PrometheusRule" and "AiinfraGPULost" in f["alerts"]
    assert "aiinfra:gpu_busy:ratio" in f["records"] and f["text"].startswith("apiVersion")

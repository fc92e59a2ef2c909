"""Per-model alerts match the modelName dcgm-exporter really prints: NVML's device name.

dcgm-exporter's modelName is nvmlDeviceGetName (gpu_collector.go getGPUModel), e.g. "NVIDIA L4",
"NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3" — the driver's supported-GPU table
(NVIDIA/open-gpu-kernel-modules README.md, 595.45.04) — never the catalog's display name
("NVIDIA L4 24GB"), which the TDP rule used to select, so it never fired on a real GPU.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from aiinfra.catalog.loader import default_catalog
from aiinfra.fleet.promql import NVML_NAMES
from aiinfra.fleet.rules import RuleOptions, dump, rule_groups

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed")

# Documented without a name: no driver table or published output names PCI ID 0x2338; NVML does not see AMD parts.
NO_NAME = {"h100-sxm-hbm2e-96gb", "mi300x", "mi325x", "mi355x"}


def test_every_nvidia_catalog_gpu_carries_its_nvml_names():
    gpus = default_catalog().table("gpus")
    assert set(gpus) - set(NVML_NAMES) == NO_NAME
    names = [n for key in NVML_NAMES for n in NVML_NAMES[key]]
    assert len(names) == len(set(names))  # one name, one catalog GPU
    assert NVML_NAMES["a100-80gb-sxm"] == ["NVIDIA A100-SXM4-80GB"] and NVML_NAMES["l4"] == ["NVIDIA L4"]
    assert NVML_NAMES["a100-40gb-sxm"] == ["NVIDIA A100-SXM4-40GB"] and NVML_NAMES["a100-80gb-pcie"] == ["NVIDIA A100 80GB PCIe"]


@pytest.mark.parametrize("model,name", [("l4", "NVIDIA L4"), ("h100-sxm", "NVIDIA H100 80GB HBM3"), ("h200-sxm", "NVIDIA H200"),
                                        ("b200", "NVIDIA B200"), ("a100-80gb-sxm", "NVIDIA A100-SXM4-80GB")])
def test_the_simulator_prints_the_nvml_name(cli, model, name):
    r = cli("exporter", "--simulate", f"gpus=1,model={model}", "--once")
    assert r.code == 0, r.err
    assert f'modelName="{name}"' in r.out


def _promtool_test(tmp_path, series: list[tuple[str, str]], expect: list[dict]) -> subprocess.CompletedProcess:
    rules = tmp_path / "rules.yml"
    rules.write_text(dump(rule_groups(RuleOptions())))
    test = {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": [{"series": s, "values": v} for s, v in series],
        "alert_rule_test": [{"eval_time": "10m", "alertname": "AiinfraGPUPowerAboveTDP", "exp_alerts": expect}]}]}
    tf = tmp_path / "test.yml"
    tf.write_text(yaml.safe_dump(test, sort_keys=False, width=10_000))
    return subprocess.run(["promtool", "test", "rules", str(tf)], capture_output=True, text=True)


def _gpu(n: int, model: str) -> dict[str, str]:
    return {"instance": f"n{n}:9400", "gpu": "0", "UUID": f"GPU-{n}", "modelName": model, "Hostname": f"n{n}"}


def _sel(labels: dict[str, str]) -> str:
    return "DCGM_FI_DEV_POWER_USAGE{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


@needs_promtool
def test_power_over_tdp_fires_on_real_model_names(tmp_path):
    """L4 (TDP 72 W) at 90 W, A100 SXM4 80GB (400 W) at 500 W and GH200 (1000 W, three NVML spellings) at 1100 W
    fire; an L4 at 70 W does not, nor the catalog's display name, nor a name that only starts like a real one."""
    over = [_gpu(1, "NVIDIA L4"), _gpu(2, "NVIDIA A100-SXM4-80GB"), _gpu(3, "NVIDIA GH200 96GB HBM3")]
    series = [(_sel(over[0]), "90x15"), (_sel(over[1]), "500x15"), (_sel(over[2]), "1100x15"),
              (_sel(_gpu(4, "NVIDIA L4")), "70x15"),
              (_sel(_gpu(5, "NVIDIA A100 SXM4 80GB")), "500x15"),
              (_sel(_gpu(6, "NVIDIA L4 24GB")), "90x15"),
              (_sel(_gpu(7, "NVIDIA H100 80GB HBM3 (test)")), "900x15")]
    doc = rule_groups(RuleOptions())
    rule = next(r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "AiinfraGPUPowerAboveTDP")
    expect = []
    for labels in over:
        summary = rule["annotations"]["summary"]
        for k in ("Hostname", "hostname", "gpu", "UUID", "uuid", "modelName"):
            summary = summary.replace(f"{{{{ $labels.{k} }}}}", labels.get(k, ""))
        expect.append({"exp_labels": {**labels, "severity": "warning"},
                       "exp_annotations": {"summary": summary, "action": rule["annotations"]["action"]}})
    out = _promtool_test(tmp_path, series, expect)
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
@pytest.mark.parametrize("args", [(), ("--pod-idle-for", "2h", "--pod-idle-for", "research=6h")])
def test_rules_pass_promtool_lint_fatal(cli, tmp_path, args):
    """`promtool check rules --lint-fatal` refuses rules that share a name and a label set (13 AiinfraGPUPowerAboveTDP
    rules, one per TDP, did)."""
    r = cli("rules", *args)
    assert r.code == 0, r.err
    path = tmp_path / "rules.yml"
    path.write_text(r.out)
    out = subprocess.run(["promtool", "check", "rules", "--lint-fatal", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr

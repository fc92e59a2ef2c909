"""`AiinfraPodHoldsIdleGPU` under `promtool test rules`: per-namespace thresholds, the pod named in the
alert, `for:` equal to the duration the summary quotes, and near misses that stay quiet."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from aiinfra.errors import AiinfraError
from aiinfra.fleet.pod_rules import ALERT, PodIdleOptions, pod_idle_group
from aiinfra.fleet.prom import parse_duration

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed")

GPU = 'gpu="0",UUID="GPU-aaaa",modelName="NVIDIA H100 80GB HBM3",Hostname="n1",instance="n1:9400",job="dcgm-exporter"'


def series(metric: str, ns: str, pod: str, extra: str = "", prefix: str = "exported_") -> str:
    owner = f',{prefix}namespace="{ns}",{prefix}pod="{pod}",{prefix}container="main"' if pod else ""
    return f"{metric}{{{GPU}{owner}{extra}}}"


def promtool_case(tmp_path, group, input_series, eval_time, expected_pods):
    rules = tmp_path / "pods.yml"
    rules.write_text(yaml.safe_dump({"groups": [group]}, sort_keys=False, width=10_000))
    check = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    alerts = []
    for ns, pod, threshold, pod_key, *extra in expected_pods:
        labels = {k: v for k, v in re.findall(r'(\w+)="([^"]*)"', GPU)} | {f"{pod_key}namespace": ns, f"{pod_key}pod": pod,
                                                                          f"{pod_key}container": "main", "severity": "warning",
                                                                          "idle_threshold": threshold}
        labels.pop("job")
        labels.update(*extra)
        rule = next(r for r in group["rules"] if r["for"] == threshold)
        ann = {k: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), v) for k, v in rule["annotations"].items()}
        alerts.append({"exp_labels": labels, "exp_annotations": ann})
    test = {"rule_files": [str(rules)], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": [{"series": s, "values": v} for s, v in input_series],
                       "alert_rule_test": [{"eval_time": eval_time, "alertname": ALERT, "exp_alerts": alerts}]}]}
    tf = tmp_path / "test.yml"
    tf.write_text(yaml.safe_dump(test, sort_keys=False, width=10_000))
    out = subprocess.run(["promtool", "test", "rules", str(tf)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_for_matches_the_summary_and_names_the_pod():
    group = pod_idle_group("exported_pod", 0.05, PodIdleOptions(default_for="90m", namespaces={"research": "4h"}))
    for r in group["rules"]:
        assert r["for"] in r["annotations"]["summary"]
        assert "$labels.exported_pod" in r["annotations"]["summary"] and "$labels.exported_namespace" in r["annotations"]["summary"]
        parse_duration(r["for"])
    assert [r["for"] for r in group["rules"]] == ["4h", "90m"]
    assert 'exported_namespace!~"research"' in group["rules"][1]["expr"]  # the default rule leaves research to its own


def test_idle_pod_fires_after_the_threshold(tmp_path):
    group = pod_idle_group("exported_pod", 0.05)
    promtool_case(tmp_path, group, [(series("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "ds", "nb-1"), "0x80")], "70m", [("ds", "nb-1", "1h", "exported_")])


def test_pod_idle_shorter_than_threshold_is_quiet(tmp_path):
    group = pod_idle_group("exported_pod", 0.05)
    promtool_case(tmp_path, group, [(series("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "ds", "nb-1"), "0.5x20 0x60")], "70m", [])


def test_busy_pod_and_unowned_idle_gpu_are_quiet(tmp_path):
    group = pod_idle_group("exported_pod", 0.05)
    promtool_case(tmp_path, group, [(series("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "ml", "train"), "0.9x80"),
                                    (series("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "", "", ',gpu_extra="x"'), "0x80")], "70m", [])


def test_namespace_threshold_overrides_default(tmp_path):
    group = pod_idle_group("pod", 0.05, PodIdleOptions(default_for="1h", namespaces={"research": "3h"}))
    research = (series("DCGM_FI_DEV_GPU_UTIL", "research", "long-eval", prefix=""), "0x200")
    other = (series("DCGM_FI_DEV_GPU_UTIL", "ds", "nb-2", ',vgpu="1"', prefix=""), "0x200")
    # at 2 h: only the default-namespace pod has been idle past its threshold
    promtool_case(tmp_path, group, [research, other], "120m", [("ds", "nb-2", "1h", "", {"vgpu": "1"})])
    promtool_case(tmp_path, group, [research, other], "190m", [("research", "long-eval", "3h", ""), ("ds", "nb-2", "1h", "", {"vgpu": "1"})])


def test_bad_threshold_is_one_sentence():
    with pytest.raises(AiinfraError, match="duration"):
        PodIdleOptions(namespaces={"research": "soon"})

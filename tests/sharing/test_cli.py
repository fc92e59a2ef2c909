"""The `aiinfra mig` and `aiinfra k8s` shells: outputs, and bad input as one line with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

import aiinfra
from tests.conftest import assert_one_line_error

FIX = Path(__file__).parent / "fixtures"


def _workloads(tmp_path: Path, text: str) -> str:
    p = tmp_path / "workloads.yaml"
    p.write_text(text)
    return str(p)


def test_profiles_geometries_validate(cli):
    r = cli("mig", "profiles", "h100-sxm", "--format", "json")
    assert r.code == 0 and {row["profile"] for row in r.json()["facts"]["profiles"]} >= {"1g.10gb", "7g.80gb"}
    r = cli("mig", "geometries", "a100-80gb", "--maximal", "--format", "json")
    assert r.code == 0 and r.json()["facts"]["count"] == 28
    r = cli("mig", "validate", "h100-sxm", "3g.40gb,2g.20gb,1g.10gb,1g.10gb", "--format", "json", "--explain")
    assert r.code == 0 and r.json()["facts"]["valid"] is True and r.json()["explain"][0]["value"] == 7
    r = cli("mig", "validate", "h100-sxm", "3g.40gb,3g.40gb,1g.10gb", "--format", "json")
    assert r.code == 1 and "memory slots > 8" in r.json()["facts"]["reasons"]


def test_plan_prints_ours_and_first_fit(cli, tmp_path):
    wl = _workloads(tmp_path, "workloads:\n  - {name: a, count: 2, profile: 4g.40gb}\n  - {name: b, count: 2, profile: 3g.40gb}\n")
    out = tmp_path / "plan.yaml"
    r = cli("mig", "plan", "--gpu", "a100-80gb", "--gpus", "8", "--workloads", wl, "--format", "json", "--manifests", str(out))
    assert r.code == 0, r.err
    facts = r.json()["facts"]
    assert facts["GPUs used"] == 2 and facts["nos first-fit GPUs"] == 3 and facts["optimal"] is True
    docs = list(yaml.safe_load_all(out.read_text()))
    assert docs[0]["kind"] == "ConfigMap" and "config.yaml" in docs[0]["data"]
    r = cli("mig", "plan", "--gpu", "a100-80gb", "--nodes", "1", "--workloads", wl)
    assert r.code == 0 and "nos first-fit" in r.out
    assert_one_line_error(cli("mig", "plan", "--gpu", "a100-80gb", "--workloads", wl), "exactly one of --gpus")
    r = cli("k8s", "render", "mig", "--gpu", "a100-80gb", "--workloads", wl, "--nodes", "2", "--gpus-per-node", "4", "--node", "a", "--node", "b")
    assert r.code == 0 and "kubectl label node a nvidia.com/mig.config=" in r.out


def test_render_and_lint_roundtrip(cli, tmp_path):
    out = tmp_path / "mig.yaml"
    r = cli("k8s", "render", "mig", "--gpu", "h100-sxm", "--geometry", "1g.10gb:7", "--node", "n1", "-o", str(out))
    assert r.code == 0 and out.exists()
    assert "kubectl label node n1 nvidia.com/mig.config=all-1g.10gb" in out.read_text()
    wl = _workloads(tmp_path, "workloads:\n  - {name: b, count: 9, memory_gb: 12}\n")
    r = cli("k8s", "render", "timeslice", "--gpu", "h100-sxm", "--workloads", wl)
    assert r.code == 0 and "timeSlicing" in r.out
    ts = tmp_path / "ts.yaml"
    ts.write_text(r.out)
    r = cli("k8s", "render", "operator", "--device-plugin-config", "time-slicing-config", "--device-plugin-default", "ts-6")
    op = tmp_path / "op.yaml"
    op.write_text(r.out)
    r = cli("k8s", "lint", str(out), str(ts), str(op), "--format", "json")
    assert r.code == 0 and r.json()["facts"]["errors"] == 0
    r = cli("k8s", "render", "mps", "--gpu", "h100-sxm", "--workloads", wl, "--explain")
    assert r.code == 0 and "mps" in r.out and "memory limit per client" in r.err


def test_lint_reports_findings_with_exit_1(cli):
    r = cli("k8s", "lint", str(FIX / "dp_replicas.yaml"), "--format", "json")
    assert r.code == 1
    f = r.json()["facts"]["findings"][0]
    assert f["path"] == "sharing.timeSlicing.resources[0].replicas" and f["fix"]


def test_rollout_commands(cli):
    r = cli("k8s", "rollout", "mig", "--node", "n1", "--config", "all-1g.10gb", "--format", "json")
    assert r.code == 0 and r.json()["facts"]["steps"][0] == "kubectl cordon n1"
    r = cli("k8s", "rollout", "driver", "--node", "n1", "--version", "595.91.07", "--previous", "580.95.05")
    assert r.code == 0 and "kubectl uncordon n1" in r.out and "pending" in r.err


# ----------------------------------------------------------------------------- bad input: one line, exit 2


def test_profile_not_on_gpu_lists_valid_ones(cli):
    r = cli("mig", "validate", "h100-sxm", "3g.20gb,1g.10gb")
    assert_one_line_error(r, "3g.20gb", "does not exist on H100-80GB", "valid: 1g.10gb")
    r = cli("k8s", "render", "mig", "--gpu", "a30", "--geometry", "1g.10gb")
    assert_one_line_error(r, "1g.10gb", "A30-24GB", "valid: 1g.6gb")


def test_infeasible_workloads_say_what_and_why(cli, tmp_path):
    wl = _workloads(tmp_path, "workloads:\n  - {name: big, count: 5, profile: 4g.40gb}\n")
    r = cli("mig", "plan", "--gpu", "h100-sxm", "--gpus", "4", "--workloads", wl)
    assert_one_line_error(r, "do not fit on 4", "need 5", "4g.40gb max 1/GPU")
    wl = _workloads(tmp_path, "workloads:\n  - {name: huge, count: 1, memory_gb: 120}\n")
    r = cli("mig", "plan", "--gpu", "h100-sxm", "--gpus", "4", "--workloads", wl)
    assert_one_line_error(r, "'huge' does not fit", "120 GB", "7g.80gb")


def test_yaml_that_does_not_parse_names_file_and_line(cli, tmp_path):
    r = cli("k8s", "lint", str(FIX / "broken.yaml"))
    assert_one_line_error(r, "broken.yaml:6")
    wl = _workloads(tmp_path, "workloads:\n  - {name: a, count: 2, profile: 1g.10gb}\n  - name: b: c\n")
    r = cli("mig", "plan", "--gpu", "h100-sxm", "--gpus", "4", "--workloads", wl)
    assert_one_line_error(r, "workloads.yaml:3")


def test_bad_workload_fields_and_unknown_gpu(cli, tmp_path):
    wl = _workloads(tmp_path, "workloads:\n  - {name: a, count: 0, profile: 1g.10gb}\n")
    assert_one_line_error(cli("mig", "plan", "--gpu", "h100-sxm", "--gpus", "4", "--workloads", wl), "workloads[0].count")
    assert_one_line_error(cli("mig", "profiles", "h10"), "unknown MIG GPU 'h10'")
    assert_one_line_error(cli("mig", "profiles", "l40s"), "does not support MIG")


def test_write_failure_leaves_nothing_behind(cli, tmp_path):
    missing = tmp_path / "no-such-dir" / "out.yaml"
    r = cli("k8s", "render", "operator", "-o", str(missing))
    assert_one_line_error(r, "cannot write")
    assert not missing.parent.exists()


def test_console_script_entry_runs_as_a_subprocess():
    env = dict(os.environ, PYTHONPATH=str(Path(aiinfra.__file__).resolve().parents[1]))
    p = subprocess.run([sys.executable, "-m", "aiinfra", "mig", "validate", "h100-sxm", "7g.80gb", "--format", "json"],
                       capture_output=True, text=True, env=env, timeout=120, check=False)
    assert p.returncode == 0 and '"valid": true' in p.stdout

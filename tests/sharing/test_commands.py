"""sharing/commands.py is the one application layer under `aiinfra mig …` / `aiinfra k8s …` and the
MIG web page: each command's JSON validates against its declared facts (the contract), the shells
import no logic of their own, stdout carries only the answer, and files are written 0644."""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

import aiinfra
from aiinfra import contract

SRC = Path(aiinfra.__file__).parent
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

CALLS = {
    "mig profiles": dict(gpu="h100-sxm"),
    "mig geometries": dict(gpu="a30"),
    "mig validate": dict(gpu="h100-sxm", geometry="3g.40gb,2g.20gb,1g.10gb,1g.10gb"),
    "mig plan": dict(gpu="h100-sxm", workloads=EXAMPLES / "workloads.yaml", gpus=16, emit="dra"),
    "k8s render mig": dict(gpu="h100-sxm", geometry="1g.10gb:7"),
    "k8s render timeslice": dict(gpu="h100-sxm", workloads=EXAMPLES / "timeslice-workloads.yaml"),
    "k8s render mps": dict(gpu="h100-sxm", workloads=EXAMPLES / "timeslice-workloads.yaml"),
    "k8s render operator": dict(),
    "k8s render rdma": dict(),
    "k8s render dra": dict(gpu="h100-sxm", mig=["1g.10gb"], kueue_quota=8),
    "k8s rollout mig": dict(nodes=["n1"], config="all-1g.10gb"),
    "k8s rollout driver": dict(nodes=["n1"], version="595.91.07", previous="580.95.05"),
    "k8s rollout dra": dict(nodes=["n1"], gpu="h100-sxm"),
    "k8s lint": dict(files=[EXAMPLES / "dra-h100.yaml"]),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_command_output_validates_against_its_contract(name):
    info = contract.registry()[name]
    r = info.function(**CALLS[name])
    jsonschema.validate(json.loads(json.dumps(r.to_dict(explain=True))), contract.envelope_schema(info))


def test_every_mig_and_k8s_command_is_registered():
    names = {n for n in contract.registry() if n.startswith(("mig ", "k8s "))}
    assert names == set(CALLS)


@pytest.mark.parametrize("path", ["cli/mig.py", "cli/k8s.py", "web/pages/mig.py"])
def test_shells_call_the_library_layer(path):
    tree = ast.parse((SRC / path).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "aiinfra.sharing.commands" in imported
    if path.startswith("web"):
        assert not any(m.startswith("aiinfra.cli") for m in imported)
    # no packing, lint or manifest logic in the shells
    assert not imported & {"aiinfra.sharing.packing", "aiinfra.sharing.lint", "aiinfra.sharing.k8s", "aiinfra.sharing.dra"}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    return subprocess.run([sys.executable, "-m", "aiinfra", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_mig_plan_json_is_pure_json_and_manifests_are_0644(tmp_path):
    """Issue 14: HiGHS printed its banner on stdout before the JSON. Issue 17: manifests were 0600."""
    out = tmp_path / "mig.yaml"
    p = _run("mig", "plan", "--gpu", "h100-sxm", "--gpus", "16", "--workloads", str(EXAMPLES / "workloads.yaml"),
             "--format", "json", "--manifests", str(out), cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert set(doc) == {"title", "facts", "assumptions", "warnings"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    p = _run("k8s", "render", "dra", "--gpu", "h100-sxm", "-o", str(tmp_path / "dra.yaml"), cwd=tmp_path)
    assert p.returncode == 0 and stat.S_IMODE((tmp_path / "dra.yaml").stat().st_mode) == 0o644


def test_empty_node_name_is_refused_in_one_line(tmp_path):
    p = _run("k8s", "rollout", "mig", "--node", "", "--config", "all-1g.10gb", cwd=tmp_path)
    assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1
    assert "not a valid Kubernetes node name" in p.stderr

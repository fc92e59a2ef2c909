"""The package layers DESIGN.md describes hold in the code: shells on top, nothing imports a shell.

Read from the import statements themselves (ast), so a new module is checked without editing this file.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "aiinfra"

# package -> packages it may import (besides itself and the ground floor)
GROUND = {"catalog", "specs", "explain", "errors", "units", "contract", "safeio", "render"}
ALLOWED = {
    "sizing": set(), "perf": {"sizing"}, "plan": {"sizing", "perf"}, "serving": {"sizing", "perf", "plan"},
    "cluster": {"sizing", "perf", "plan"}, "cost": {"cluster", "plan", "perf", "sizing"},  # the plan chain of DESIGN.md
    "sharing": set(), "telemetry": set(), "fleet": {"telemetry"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aiinfra."):
            out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("aiinfra."))
    return out


def test_nothing_below_the_shells_imports_cli_or_web():
    bad = []
    for path in SRC.rglob("*.py"):
        pkg = path.relative_to(SRC).parts[0]
        if pkg in ("cli", "__main__.py"):
            continue
        used = _imports(path)
        if "cli" in used or (pkg != "web" and "web" in used):
            bad.append(str(path.relative_to(SRC)))
    assert not bad, f"imports a shell: {bad}"


def test_packages_depend_downwards_only():
    bad = []
    for pkg, allowed in ALLOWED.items():
        for path in (SRC / pkg).rglob("*.py"):
            for used in _imports(path) - GROUND - {pkg}:
                if used not in allowed:
                    bad.append(f"{path.relative_to(SRC)} imports aiinfra.{used}")
    assert not bad, bad

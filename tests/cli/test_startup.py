"""Start-up: the top-level help imports no command module, and every listed command loads.

(Speed itself is measured in benchmarks/startup.py; these tests hold the structure that makes it fast.)
"""

from __future__ import annotations

import os
import subprocess
import sys

from aiinfra.cli.main import COMMANDS, load_command

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def _modules_after(*argv: str) -> set[str]:
    code = ("import sys\nfrom aiinfra.cli.main import main\nmain(%r)\n"
            "print('\\n'.join(sorted(sys.modules)), file=sys.stderr)" % (list(argv),))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 0, r.stderr
    return set(r.stderr.split())


def test_top_level_help_imports_no_command_module_nor_numpy():
    mods = _modules_after("--help")
    assert not {m for m in mods if m.startswith("aiinfra.cli.") and m != "aiinfra.cli.main"}
    assert not {"numpy", "pydantic", "yaml", "rich.console", "aiinfra.catalog.loader"} & mods


def test_a_command_imports_its_own_module_only():
    mods = _modules_after("schema", "--help")
    assert "aiinfra.cli.schema_cmd" in mods
    assert not {m for m in mods if m.startswith("aiinfra.cli.") and m not in ("aiinfra.cli.main", "aiinfra.cli.schema_cmd")}


def test_help_lists_every_command_and_each_one_loads(cli):
    r = cli("--help")
    assert r.code == 0
    for name, _module, _attr, short in COMMANDS:
        assert name in r.out
        cmd = load_command(name)
        assert cmd.name == name and cmd.short_help == short


def test_explain_full_prints_more_than_the_compact_explanation(cli):
    argv = ["tco", "--gpus", "256", "--gpu", "h100-sxm", "--utilization", "0.7", "--years", "4", "--cloud", "aws-p5",
            "--term", "all", "--explain"]
    compact, full = cli(*argv), cli(*argv, "full")
    assert compact.code == 0 and full.code == 0
    assert len(full.out.splitlines()) > 2 * len(compact.out.splitlines())
    assert "(shown above)" in compact.out and "(shown above)" not in full.out
    again = cli(*argv)  # the level does not stick to the next call
    assert len(again.out.splitlines()) == len(compact.out.splitlines())

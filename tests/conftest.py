"""Shared fixtures: run the CLI in-process and capture what a user would see."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from aiinfra.catalog.loader import set_user_catalogs
from aiinfra.cli.main import main


@dataclass
class CliRun:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(capsys):
    """cli("size", "infer", ...) → CliRun(code, stdout, stderr), exactly as the console script runs."""

    def run(*argv: str) -> CliRun:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err)

    yield run
    set_user_catalogs([])


def assert_one_line_error(r: CliRun, *fragments: str) -> None:
    """Bad input: exit 2, one line on stderr, no traceback, and the message names the problem."""
    assert r.code == 2, (r.code, r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert "Traceback" not in r.err
    for f in fragments:
        assert f.lower() in lines[0].lower(), (f, lines[0])

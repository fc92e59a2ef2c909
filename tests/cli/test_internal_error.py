"""A defect reached from the command line is one line and exit 70 (EX_SOFTWARE), never a traceback, so a user can
tell it from bad input (2) and report it; AIINFRA_TRACEBACK=1 shows the traceback."""

from __future__ import annotations

import pytest

from aiinfra.cli.main import INTERNAL_ERROR


def _crash(*args, **kwargs):
    raise ZeroDivisionError("float division by zero")


def test_a_defect_is_one_line_and_exit_70(cli, monkeypatch):
    import aiinfra.sizing.commands as sizing

    monkeypatch.setattr(sizing, "training_report", _crash)
    monkeypatch.delenv("AIINFRA_TRACEBACK", raising=False)
    r = cli("size", "train", "llama-3.1-8b")
    assert r.code == INTERNAL_ERROR == 70
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err
    assert "internal error (ZeroDivisionError: float division by zero)" in lines[0] and "report" in lines[0]
    monkeypatch.setenv("AIINFRA_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        cli("size", "train", "llama-3.1-8b")

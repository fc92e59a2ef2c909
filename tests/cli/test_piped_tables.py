"""A table written to a pipe or a file has no terminal width to honour: it prints at its natural width, so no
column is cut (plan's days and cost columns used to vanish past 120 characters)."""

from __future__ import annotations


def test_piped_plan_table_keeps_its_last_columns(cli):
    r = cli("plan", "llama-3.1-8b", "--tokens", "15T", "--price", "2", "--top", "3")
    assert r.code == 0, r.err
    header = next(line for line in r.out.splitlines() if "layout" in line and "step s" in line)
    assert "days" in header and "cost $" in header
    assert all(len(line) < 1000 for line in r.out.splitlines())

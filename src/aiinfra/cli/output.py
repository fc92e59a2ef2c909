"""Shared CLI output: --format table|json|yaml and --explain, rendered the same way by every command."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Annotated, Any

import numpy as np
import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from aiinfra.explain import Result, Term
from aiinfra.units import fmt_bytes, fmt_number

# Wide enough that tables are not wrapped into illegible columns when piped.
console = Console(width=max(120, Console().width), soft_wrap=False)
err_console = Console(stderr=True, width=200)


class Format(str, Enum):
    table = "table"
    json = "json"
    yaml = "yaml"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)]
ExplainOpt = Annotated[bool, typer.Option("--explain", help="Show how every number was computed.")]


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.ndarray | np.generic) and np.ndim(value) == 0 else value


def fmt_value(value: Any, unit: str, byte_unit: str = "GB") -> str:
    """Print a Term value in its unit; bytes print in GB or GiB as chosen, with the unit named."""
    value = _scalar(value)
    if unit == "B" and isinstance(value, float | int):
        if abs(value) < 1e7:  # per-token and per-layer sizes read better in bytes and KiB
            return f"{value:,.0f} B ({value / 1024:,.1f} KiB)"
        return fmt_bytes(float(value), byte_unit)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float | int):
        return f"{fmt_number(value)} {unit}".strip()
    return f"{value} {unit}".strip()


def explain_tree(term: Term, byte_unit: str = "GB") -> Tree:
    label = f"[bold]{term.name}[/] = {fmt_value(term.value, term.unit, byte_unit)}"
    if term.formula:
        label += f"   [cyan]{term.formula}[/]"
    tree = Tree(label)
    for k, v in term.inputs.items():
        if isinstance(v, Term):
            tree.add(explain_tree(v, byte_unit))
        else:
            v = _scalar(v)
            tree.add(f"[dim]{k}[/] = {fmt_number(v) if isinstance(v, float | int) and not isinstance(v, bool) else v}")
    for part in term.parts:
        tree.add(explain_tree(part, byte_unit))
    for k, src in term.sources.items():
        tree.add(f"[green]source[/] {k}: {src}")
    if term.note:
        tree.add(f"[yellow]note[/] {term.note}")
    return tree


def emit(
    results: Result | Iterable[Result],
    fmt: Format,
    explain: bool,
    table: Callable[[Result], Table | None] | None = None,
    byte_unit: str = "GB",
) -> None:
    """Print results as a rich table (with optional explain trees), JSON or YAML."""
    items = [results] if isinstance(results, Result) else list(results)
    if fmt is not Format.table:
        docs = [r.to_dict(explain=explain) for r in items]
        doc: Any = docs[0] if len(docs) == 1 else docs
        if fmt is Format.json:
            sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        else:
            sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))
        for r in items:
            for w in r.warnings:
                err_console.print(f"[yellow]warning:[/] {w}")
        return
    for r in items:
        t = table(r) if table else default_table(r, byte_unit)
        if t is not None:
            console.print(t)
        if explain:
            # A term already shown as a part of another (e.g. of the total) is not printed twice.
            inner = {id(p) for t in r.terms for p in t.parts}
            for term in r.terms:
                if id(term) not in inner:
                    console.print(explain_tree(term, byte_unit))
        for w in r.warnings:
            err_console.print(f"[yellow]warning:[/] {w}")


def default_table(r: Result, byte_unit: str = "GB") -> Table:
    t = Table(title=r.title, show_header=True)
    t.add_column("item")
    t.add_column("value", justify="right")
    for term in r.terms:
        t.add_row(term.name, fmt_value(term.value, term.unit, byte_unit))
    for k, v in r.facts.items():
        t.add_row(k, str(v))
    return t

"""Shared CLI output: --format table|json|yaml and --explain, rendered the same way by every command.

Nothing heavy is imported at module level (rich's console, yaml, json): `aiinfra CMD --help`
imports this module and must stay fast.

`--explain` prints a compact derivation: each Term once (later mentions refer to it by name) down to
`EXPLAIN_DEPTH` levels; `--explain full` prints every level (main() reads the word `full`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aiinfra.explain import Result, Term
from aiinfra.render import fmt_plain, fmt_value

if TYPE_CHECKING:
    from rich.table import Table
    from rich.tree import Tree

__all__ = ["ExplainOpt", "Format", "FormatOpt", "console", "emit", "err_console", "explain_tree", "fmt_value",
           "default_table", "set_explain_full"]

EXPLAIN_DEPTH = 4  # levels of a compact explanation; deeper inputs are named, not expanded
_explain_full = False


def set_explain_full(full: bool) -> None:
    """`--explain full`: every level of every Term (main() strips the word from the arguments)."""
    global _explain_full
    _explain_full = full


PIPE_WIDTH = 1000  # tables are as wide as their content; no table of ours comes near this


class _LazyConsole:
    """rich.Console built on first use (importing rich.console costs ~25 ms of every start-up)."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._real: Any = None

    def _get(self) -> Any:
        if self._real is None:
            from rich.console import Console

            kwargs = dict(self._kwargs)
            if kwargs.pop("wide", False):
                # A terminal keeps its width (at least 120). Piped or redirected output has no width to honour,
                # so tables print at their natural width instead of losing their right-hand columns.
                probe = Console()
                kwargs["width"] = max(120, probe.width) if probe.is_terminal else PIPE_WIDTH
            self._real = Console(**kwargs)
        return self._real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)

    # Special methods are looked up on the type, not through __getattr__ (rich.Live uses `with console`).
    def __enter__(self) -> Any:
        return self._get().__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._get().__exit__(*exc)


console: Any = _LazyConsole(wide=True, soft_wrap=False)
err_console: Any = _LazyConsole(stderr=True, width=200)


class Format(str, Enum):
    table = "table"
    json = "json"
    yaml = "yaml"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)]
# Options every command that queries Prometheus takes (analyze, chargeback)
PrometheusOpt = Annotated[str, typer.Option("--prometheus", "-p", help="Prometheus (or Thanos/Mimir) base URL.",
                                            envvar="AIINFRA_PROMETHEUS")]
EndOpt = Annotated[float | None, typer.Option("--end", help="End of the window, Unix seconds (default: now).")]
QueryTimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds to wait for each query.")]
ExplainOpt = Annotated[bool, typer.Option(
    "--explain", help="Show how every number was computed (compact; '--explain full' for every level).")]


def _key(term: Term) -> tuple:
    """Terms are the same when name, value, unit and formula are (the planner rebuilds the winner's
    Terms per fact, so identity alone would print the step-time tree once per fact)."""
    return (term.name, term.unit, term.formula, fmt_plain(term.value))


def explain_tree(term: Term, byte_unit: str = "GB", *, seen: dict[Any, str] | None = None, depth: int | None = None,
                 full: bool | None = None) -> Tree:
    """The derivation of `term` as a rich Tree. Compact (the default): a Term already printed is named
    ("→ see X") instead of expanded again, and levels below `depth` are cut with a count of what was left."""
    from rich.tree import Tree

    full = _explain_full if full is None else full
    seen = {} if seen is None else seen
    depth = EXPLAIN_DEPTH if depth is None else depth
    label = f"[bold]{term.name}[/] = {fmt_value(term.value, term.unit, byte_unit)}"
    if term.formula:
        label += f"   [cyan]{term.formula}[/]"
    tree = Tree(label)
    if not full:
        seen[_key(term)] = term.name
    children = [v for v in term.inputs.values() if isinstance(v, Term)] + list(term.parts)
    if not full and depth <= 1 and children:
        tree.add(f"[dim]… {len(children)} more term(s) below; --explain full shows them[/]")
        children_allowed = False
    else:
        children_allowed = True
    for k, v in term.inputs.items():
        if isinstance(v, Term):
            if not children_allowed:
                continue
            if not full and _key(v) in seen:
                tree.add(f"[bold]{v.name}[/] = {fmt_value(v.value, v.unit, byte_unit)}   [dim](shown above)[/]")
            else:
                tree.add(explain_tree(v, byte_unit, seen=seen, depth=depth - 1, full=full))
        else:
            tree.add(f"[dim]{k}[/] = {fmt_plain(v)}")
    if children_allowed:
        for part in term.parts:
            if not full and _key(part) in seen:
                tree.add(f"[bold]{part.name}[/] = {fmt_value(part.value, part.unit, byte_unit)}   [dim](shown above)[/]")
            else:
                tree.add(explain_tree(part, byte_unit, seen=seen, depth=depth - 1, full=full))
    for k, src in term.sources.items():
        if not full and ("source", src) in seen:
            tree.add(f"[green]source[/] {k}: [dim](as above: {seen[('source', src)]})[/]")
            continue
        if not full:
            seen[("source", src)] = k
        tree.add(f"[green]source[/] {k}: {src}")
    if term.note:
        tree.add(f"[yellow]note[/] {term.note}")
    return tree


def dump(doc: Any, fmt: Format) -> None:
    """One document on stdout as JSON or YAML, nothing else."""
    if fmt is Format.json:
        import json

        sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    else:
        import yaml

        sys.stdout.write(yaml.dump(doc, sort_keys=False, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper)))


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
        docs = [r.to_dict(explain=bool(explain)) for r in items]
        dump(docs[0] if len(docs) == 1 else docs, fmt)
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
            seen: dict[Any, str] = {}
            for term in r.terms:
                if id(term) not in inner and _key(term) not in seen:
                    console.print(explain_tree(term, byte_unit, seen=seen))
        for w in r.warnings:
            err_console.print(f"[yellow]warning:[/] {w}")


def default_table(r: Result, byte_unit: str = "GB") -> Table:
    from rich.table import Table

    t = Table(title=r.title, show_header=True)
    t.add_column("item")
    t.add_column("value", justify="right")
    for term in r.terms:
        t.add_row(term.name, fmt_value(term.value, term.unit, byte_unit))
    for k, v in r.facts.items():
        t.add_row(k, str(v))
    return t

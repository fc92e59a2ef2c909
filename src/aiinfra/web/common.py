"""What every page shares: form parsing, error → field mapping, and the explain panel.

A page is a form (a pydantic spec), the library call the CLI makes with it, and a view of
the Results it returns. Each number on a page is a link into the explain panel, which
renders the very Term objects the library built (formula, inputs, sources), so the page
and `--explain` on the CLI cannot disagree.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape
from pydantic import BaseModel, ConfigDict, ValidationError

from aiinfra.catalog.loader import default_catalog, read_json
from aiinfra.errors import AiinfraError
from aiinfra.explain import Result, Term
from aiinfra.render import fmt_value, validation_sentence
from aiinfra.specs import ModelSpec

MISSING = "This capability is not in the library yet, so this page has nothing to compute; it shows no numbers rather than made-up ones."


class WebSpec(BaseModel):
    """A form/API request: the CLI command's options, same names and defaults. Unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


# --- catalog lookups that never touch a user-supplied path --------------------------------------


def catalog_model(name: str) -> ModelSpec:
    """A catalog model by name or alias only: the web never reads a config.json path from a request.

    The catalog branch of catalog.models.model(), without its "is this a file?" branch.
    """
    from pathlib import Path

    from aiinfra.catalog.models import from_config

    key, entry = default_catalog().entry("models", name)
    if "config" in entry:
        config, where = entry["config"], f"catalog entry {key}"
    elif "path" in entry:  # a file the catalog (not the request) names
        config, where = read_json(Path(entry["path"])), entry["path"]
    else:
        raise AiinfraError(f"catalog model '{key}' has neither 'config' nor 'path'")
    return from_config(config, name=key, where=where, source=entry.get("source", ""))


def gpu_names() -> list[str]:
    return default_catalog().names("gpus")


def model_names() -> list[str]:
    return default_catalog().names("models")


def stack_names() -> list[str]:
    return default_catalog().names("stacks")


def engine_names() -> list[str]:
    return default_catalog().names("engines")


def optional_engine_names() -> list[str]:
    """The engines, after a blank choice for options where no engine is the default."""
    return ["", *engine_names()]


def comma_list(v: Any) -> Any:
    """A form's comma-separated text → the list a repeated CLI option gives (a list passes through); pages attach it
    as a before-validator: `_split = field_validator("price", mode="before")(comma_list)`."""
    return [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else v


# --- errors --------------------------------------------------------------------------------------


# Other spellings the library's sentences use for a form field.
ALIASES: dict[str, list[str]] = {
    "quant": ["quantization"],
    "kv_dtype": ["kv-cache dtype", "kv cache dtype"],
    "overhead_gib": ["overhead"],
    "interleave": ["vp"],
    "zero": ["zero stage"],
    "recompute": ["recompute mode"],
    "recompute_modules": ["recompute module", "recompute modules", "--recompute-modules"],
    "etp": ["expert tp"],
    "pipeline_split": ["pipeline layout", "--pipeline-split"],
    "gpu_memory_utilization": ["gpu memory utilization"],
    "micro_batch": ["micro-batch"],
    "prometheus": ["prometheus url", "prometheus"],
    "workloads": ["workload", "profile", "yaml"],
}


def register_aliases(more: dict[str, list[str]]) -> dict[str, list[str]]:
    """Pages add the spellings their library's sentences use, so the API can name the field too."""
    for k, v in more.items():
        ALIASES.setdefault(k, [])
        ALIASES[k] += [s for s in v if s not in ALIASES[k]]
    return more


def field_of(message: str, fields: Iterable[str], aliases: dict[str, Iterable[str]] | None = None) -> str | None:
    """The form field an error sentence talks about: the earliest (then longest) mention wins.

    Library errors are sentences ("TP=3 does not divide the 64 attention heads …", "unknown gpu
    'H10'; closest: …"), so the field is found by name, in the spellings the CLI uses.
    """
    aliases = {**ALIASES, **(aliases or {})}
    best: tuple[int, int, str] | None = None
    for f in fields:
        spellings = {f, f.replace("_", "-"), f.replace("_", " "), *aliases.get(f, ())}
        for s in spellings:
            m = re.search(rf"(?<![a-z0-9]){re.escape(s.lower())}(?![a-z0-9])", message.lower())
            if m and (best is None or (m.start(), -len(s)) < (best[0], -best[1])):
                best = (m.start(), len(s), f)
    return best[2] if best else None


def validation_message(e: ValidationError) -> tuple[str, str | None]:
    """The CLI's wording for a pydantic error (aiinfra.render.validation_sentence) and its field."""
    err = e.errors()[0]
    return validation_sentence(err), (str(err["loc"][-1]) if err["loc"] else None)


def clean_query(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Form values → spec input. Last value wins (a checkbox sends a hidden 'false' then 'true');
    empty optional fields are dropped so the spec's default applies."""
    out: dict[str, str] = {}
    for k, v in items:
        out[k] = v
    return {k: v for k, v in out.items() if v.strip() != ""}


# --- explain panel -------------------------------------------------------------------------------


@dataclass
class TermView:
    """A Term prepared for the template: an anchor id, printed value, and nested views."""

    id: str
    name: str
    value: str
    formula: str
    inputs: list[tuple[str, Any]]  # (symbol, str | TermView)
    parts: list[TermView]
    sources: list[tuple[str, str]]
    note: str


class Explainer:
    """Collects the Terms a page shows and gives every printed number a link to its derivation."""

    def __init__(self, prefix: str = "x") -> None:
        self.prefix = prefix
        self._ids: dict[int, str] = {}
        self._counter = itertools.count(1)
        self.roots: list[Term] = []
        self._keep: list[Term] = []  # keeps registered Terms alive so id() stays unique

    def _register(self, term: Term) -> str:
        if id(term) not in self._ids:
            self._ids[id(term)] = f"{self.prefix}{next(self._counter)}"
            self._keep.append(term)
            for v in term.inputs.values():
                if isinstance(v, Term):
                    self._register(v)
            for p in term.parts:
                self._register(p)
        return self._ids[id(term)]

    def add(self, term: Term) -> str:
        """Show `term` in the panel (once) and return its anchor."""
        known = id(term) in self._ids
        anchor = self._register(term)
        if not known:
            self.roots.append(term)
        return anchor

    def add_result(self, result: Result) -> None:
        inner = {id(p) for t in result.terms for p in t.parts}
        for t in result.terms:
            if id(t) not in inner:
                self.add(t)
        for t in result.terms:
            self._register(t)

    def link(self, term: Term, text: str | None = None, byte_unit: str = "GB") -> Markup:
        """The number as printed on the page, linking to its explanation."""
        anchor = self._ids.get(id(term)) or self.add(term)
        shown = text if text is not None else fmt_value(term.value, term.unit, byte_unit)
        return Markup('<a class="num" href="#{0}" data-explain="{0}">{1}</a>').format(anchor, shown)

    def fact(self, name: str, value: Any, unit: str, how: str, inputs: dict[str, Any] | None = None,
             sources: dict[str, str] | None = None, text: str | None = None) -> Markup:
        """A number the library reports as a fact (not a Term): explained by how it was derived."""
        term = Term(name, value, unit, formula=how, inputs=inputs or {}, sources=sources or {})
        return self.link(term, text)

    def views(self) -> list[TermView]:
        """Every root's derivation, each Term rendered once: a Term met again is a link to the first
        rendering (pages with shared sub-terms were several hundred KB of repeated trees)."""
        rendered: set[int] = set()
        return [self._view(t, rendered) for t in self.roots if id(t) not in rendered]

    def _ref(self, t: Term) -> Markup:
        anchor = self._ids.get(id(t)) or self._register(t)
        return Markup('<a class="ref" href="#{0}" data-explain="{0}">{1}</a> = {2} <small>(above)</small>').format(
            anchor, t.name, fmt_value(t.value, t.unit))

    def _view(self, t: Term, rendered: set[int]) -> TermView:
        rendered.add(id(t))
        inputs: list[tuple[str, Any]] = []
        for k, v in t.inputs.items():
            if isinstance(v, Term):
                inputs.append((k, self._ref(v) if id(v) in rendered else self._view(v, rendered)))
            else:
                inputs.append((k, _plain_text(v)))
        parts = []
        for p in t.parts:
            if id(p) in rendered:
                inputs.append(("part", self._ref(p)))
            else:
                parts.append(self._view(p, rendered))
        return TermView(
            id=self._ids.get(id(t)) or self._register(t),
            name=t.name,
            value=fmt_value(t.value, t.unit),
            formula=t.formula,
            inputs=inputs,
            parts=parts,
            sources=list(t.sources.items()),
            note=t.note,
        )


def render_views(views: list[TermView]) -> Markup:
    """The explain panel as HTML, the same markup as the `term_view` macro in templates/macros.html,
    built in Python: the recursive Jinja macro was most of a chart page's rendering time."""
    out: list[str] = []
    esc = escape

    def term(v: TermView) -> None:
        out.append(f'<details class="term" id="{esc(v.id)}"><summary><b>{esc(v.name)}</b> = '
                   f'<span class="val">{esc(v.value)}</span>')
        if v.formula:
            out.append(f" <code>{esc(v.formula)}</code>")
        out.append("</summary><ul>")
        for k, x in v.inputs:
            if isinstance(x, str):
                out.append(f'<li class="input"><span class="sym">{esc(k)}</span> = {esc(x)}</li>')
            else:
                out.append('<li class="input nested">')
                term(x)
                out.append("</li>")
        for p in v.parts:
            out.append('<li class="part">')
            term(p)
            out.append("</li>")
        for k, src in v.sources:
            out.append(f'<li class="source"><span class="tag">source</span> {esc(k)}: {esc(src)}</li>')
        if v.note:
            out.append(f'<li class="note"><span class="tag">note</span> {esc(v.note)}</li>')
        out.append("</ul></details>")

    for v in views:
        term(v)
    return Markup("".join(out))


def _plain_text(v: Any) -> str:
    import numpy as np

    from aiinfra.units import fmt_number

    if isinstance(v, np.ndarray | np.generic) and np.ndim(v) == 0:
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    return fmt_number(v)


# --- what a page shows ---------------------------------------------------------------------------


@dataclass
class Table:
    """A result table: cells are plain text or Markup links made by Explainer.link/fact."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    id: str = ""


@dataclass
class Outcome:
    """What a page renders below its form."""

    headline: list[Markup] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[Markup] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    extra: list[Markup] = field(default_factory=list)


@dataclass
class FormField:
    """One input of a page's form: `kind` is select | number | text | checkbox | textarea."""

    name: str
    label: str
    kind: str = "number"
    options: list[str] | Callable[[], list[str]] = field(default_factory=list)
    help: str = ""
    step: str = "any"

    def choices(self) -> list[str]:
        return self.options() if callable(self.options) else list(self.options)


def form_values(spec_cls: type[BaseModel], raw: dict[str, str], initial: dict[str, Any] | None = None) -> dict[str, Any]:
    """The values the form shows: the spec's (= the CLI's) defaults, then the page's example for a first
    visit, then what the user sent."""
    values: dict[str, Any] = {}
    for name, f in spec_cls.model_fields.items():
        d = None if f.is_required() else f.default
        values[name] = "" if d is None else ", ".join(map(str, d)) if isinstance(d, list) else d
    if not raw:
        values.update(initial or {})
    values.update(raw)
    return values


def cli_json(results: Result | list[Result]) -> Any:
    """What `--format json --explain` prints: one Result as an object, several as a list."""
    items = [results] if isinstance(results, Result) else list(results)
    docs = [r.to_dict(explain=True) for r in items]
    return docs[0] if len(docs) == 1 else docs


# --- capabilities that live on other branches --------------------------------------------------


class MissingCapability(Exception):
    """The library module a page needs is not installed on this branch (the API answers 501)."""


def has_module(name: str) -> bool:
    """True when `name` can be imported (its package exists on this branch)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def require(name: str) -> None:
    if not has_module(name):
        raise MissingCapability(name)

"""The command layer's contract: one library function per command, and the JSON its answer takes.

Every command a user can run (`size infer`, `plan`, `tco`, `mig plan`, …) is one function in its
package's `commands.py`, decorated with `@command("size infer", facts=SizeInferFacts)`:
- it takes validated specs / plain arguments and returns an `explain.Result`;
- `facts` is a pydantic model of the answers it promises (numbers as `Quantity`), so
  `aiinfra schema COMMAND` prints a JSON Schema written before the output, and a test can hold
  every command's real output against it.

The CLI and the web only parse input, call that function and render the Result.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

# Packages whose commands.py registers commands (imported only by `schema` and its tests).
COMMAND_PACKAGES = (
    "sizing", "perf", "plan", "serving", "cluster", "cost", "sharing", "provision", "telemetry", "fleet", "catalog",
)


class Quantity(BaseModel):
    """A number with its unit, as every fact that is a number is carried in JSON/YAML."""

    model_config = ConfigDict(extra="forbid")
    value: float | int | str | None  # str only for "inf"/"nan" (strict JSON has no Infinity)
    unit: str


class Facts(BaseModel):
    """Base of every command's facts model. Extra keys are allowed (a Term shown in the table is
    carried as a Quantity under its snake_case name); the declared keys are required."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class CommandInfo:
    name: str
    function: Callable[..., Any]
    facts: type[BaseModel] | None


_REGISTRY: dict[str, CommandInfo] = {}


def command(name: str, facts: type[BaseModel] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `fn` as the library function behind the user command `name`."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = CommandInfo(name, fn, facts)
        fn.command_name = name  # type: ignore[attr-defined]
        return fn

    return wrap


def registry() -> dict[str, CommandInfo]:
    """Every registered command; imports each package's commands.py that exists on this checkout."""
    for pkg in COMMAND_PACKAGES:
        mod = f"aiinfra.{pkg}.commands"
        if importlib.util.find_spec(f"aiinfra.{pkg}") is not None and importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod)
    return dict(sorted(_REGISTRY.items()))


def envelope_schema(info: CommandInfo) -> dict[str, Any]:
    """The JSON Schema of `aiinfra COMMAND --format json [--explain]` for one command."""
    facts = info.facts.model_json_schema() if info.facts else {"type": "object"}
    defs = facts.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"aiinfra {info.name}",
        "type": "object",
        "required": ["title", "facts", "assumptions", "warnings"],
        "additionalProperties": False,
        "properties": {
            "title": {"type": "string"},
            "facts": facts,
            "assumptions": {"type": "array", "items": {"type": "string"}},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "explain": {"type": "array", "items": {"type": "object", "required": ["name", "value", "unit"]}},
        },
        **({"$defs": defs} if defs else {}),
    }

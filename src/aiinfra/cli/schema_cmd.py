"""`aiinfra schema COMMAND`: the JSON Schema of what `aiinfra COMMAND --format json` prints."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from aiinfra.errors import AiinfraError, not_found


def schema(
    command: Annotated[list[str] | None, typer.Argument(help="The command, e.g. tco or size infer; none lists them.")] = None,
) -> None:
    """JSON Schema of a command's --format json output (the envelope and its facts)."""
    from aiinfra.contract import envelope_schema, registry

    commands = registry()
    name = " ".join(command or []).strip()
    if not name:
        sys.stdout.write("\n".join(commands) + "\n")
        return
    if name not in commands:
        if not commands:
            raise AiinfraError("no command declares its output yet")
        raise not_found("command", name, list(commands))
    sys.stdout.write(json.dumps(envelope_schema(commands[name]), indent=2) + "\n")

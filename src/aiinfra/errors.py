"""One error type for everything a user can get wrong.

The shells map AiinfraError to one line on stderr and exit code 2 (CLI) or HTTP 422 (web).
Anything else escaping is a bug in aiinfra, not bad input.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AiinfraError(Exception):
    """Bad input: the message is one sentence saying what was wrong and what would be right."""

    exit_code = 2


class NotFoundError(AiinfraError):
    """A name that is not in the catalog."""


class SpecError(AiinfraError):
    """A spec whose values are out of range or inconsistent."""


class LayoutError(SpecError):
    """A parallel layout that cannot be built (TP not dividing heads, PP above layers, …)."""


class DoesNotFitError(AiinfraError):
    """No configuration fits the memory or resources available."""


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The closest catalog names to `name`, best first (for 'did you mean' messages)."""
    pool = list(candidates)
    hits = difflib.get_close_matches(name.lower(), pool, n=n, cutoff=0.4)
    if not hits:
        # Fall back to substring matches, so "h100" suggests every h100 variant.
        hits = [c for c in pool if name.lower() in c][:n]
    return hits


def not_found(kind: str, name: str, candidates: Iterable[str]) -> NotFoundError:
    pool = sorted(candidates)
    # The name is echoed: keep the message one printable line however odd the name is.
    name = name if name.isprintable() else name.encode("unicode_escape").decode("ascii")
    name = name if len(name) <= 80 else name[:77] + "…"
    hint = closest(name, pool)
    if hint:
        return NotFoundError(f"unknown {kind} '{name}'; closest: {', '.join(hint)}")
    return NotFoundError(f"unknown {kind} '{name}'; known: {', '.join(pool[:12])}{' …' if len(pool) > 12 else ''}")

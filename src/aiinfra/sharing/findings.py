"""What every linter rule produces: a Finding (file, YAML path, rule, message, fix, severity) and the
per-file context the rules add them to. Shared by the config linter (lint.py) and its DRA rules."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass


@dataclass
class Finding:
    file: str
    path: str
    rule: str
    message: str
    fix: str
    severity: str = "error"  # error | warning | info

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return f"{self.file}: {self.path or '<root>'}: {self.severity} [{self.rule}] {self.message} — fix: {self.fix}"


def fmt_path(parts: tuple) -> str:
    """YAML path like mig-configs["all-1g.10gb"][0].mig-devices; '[doc N] ' marks the Nth document of a stream."""
    prefix = ""
    if parts and isinstance(parts[0], str) and parts[0].startswith("doc "):
        prefix, parts = f"[{parts[0]}] ", parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", str(p)):
            out += ("." if out else "") + str(p)
        else:
            out += f'["{p}"]'
    return prefix + out


class LintContext:
    """The findings of one file, each with its YAML path."""

    def __init__(self, file: str):
        self.file = file
        self.findings: list[Finding] = []

    def add(self, path: tuple, rule: str, message: str, fix: str, severity: str = "error") -> None:
        self.findings.append(Finding(self.file, fmt_path(path), rule, message, fix, severity))

"""XID codes: catalog/data/xid.yaml → Xid (meaning, severity bucket, action), read strictly.

doctor, the exporter, the alert rules and the fleet views all read XIDs through xid_catalog(), so a --catalog
override means the same thing everywhere, and a malformed entry is refused in one line instead of being skipped
(a code that silently drops out of the catalog would drop out of the critical-XID alert too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import AiinfraError

SEVERITIES = ("critical", "warn", "app", "info", "unclassified")
# spellings other XID catalogs use for the same buckets (NVIDIA's "fatal", gpud's "warning", …)
_SYNONYMS = {"fatal": "critical", "warning": "warn", "application": "app"}
# each field, then the other names a catalog may give it, first found wins
_TEXT_FIELDS = {"meaning": ("meaning", "err_msg", "description", "name"),
                "action": ("action", "immediate_action", "immediate"),
                "investigate": ("investigatory_action", "investigatory", "investigate")}


@dataclass(frozen=True)
class Xid:
    """One XID code as the catalog describes it (reference §5.7)."""

    code: int
    meaning: str
    severity: str  # one of SEVERITIES
    action: str
    investigate: str = ""

    @property
    def fatal(self) -> bool:
        return self.severity == "critical"


def xid_catalog(required: bool = True) -> dict[int, Xid]:
    """Every XID in the `xid` table by code. With no such table: an error, or {} where `required` is False (views
    that only annotate codes and work without the meanings)."""
    table = default_catalog().table("xid")
    if not table:
        if not required:
            return {}
        raise AiinfraError("the XID catalog (kind: xid, catalog/data/xid.yaml) is missing; it lists each XID's "
                           "meaning, severity and action")
    out = {}
    for key, e in table.items():
        x = _entry(str(key), e)
        out[x.code] = x
    return out


def _entry(key: str, e: dict[str, Any]) -> Xid:
    code = e.get("code", key)
    if isinstance(code, str) and code.strip().isdigit():
        code = int(code)
    if not isinstance(code, int) or isinstance(code, bool) or code < 0:
        raise AiinfraError(f"xid catalog entry '{key}': code {code!r} is not a whole number >= 0")
    if key.strip().isdigit() and int(key) != code:
        raise AiinfraError(f"xid catalog entry '{key}': its code is {code}; the key and the code must agree")
    text = {}
    for field, names in _TEXT_FIELDS.items():
        value = next((e[n] for n in names if e.get(n) is not None), "")
        if not isinstance(value, str):
            raise AiinfraError(f"xid catalog entry '{key}': {field} must be text, got {value!r}")
        text[field] = value
    given = e.get("severity", e.get("alert_class", "unclassified"))
    sev = str(given).strip().lower()
    sev = _SYNONYMS.get(sev, sev)
    if sev not in SEVERITIES:
        raise AiinfraError(f"xid catalog entry '{key}': severity {given!r} is not one of {', '.join(SEVERITIES)} "
                           f"(or {', '.join(_SYNONYMS)})")
    return Xid(code, severity=sev, **text)

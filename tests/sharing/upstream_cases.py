"""The verdict a fixture case records for an upstream component, held against the linter's findings."""

from __future__ import annotations

from aiinfra.sharing import lint


def check_case(found: list[lint.Finding], case: dict) -> None:
    """upstream 'reject': at least one error; 'accept': no error and no warning; 'ignores' (it starts but drops or
    ignores something): warnings only. The rules the case names must be among the findings."""
    errors = [f.line() for f in found if f.severity == "error"]
    warnings = [f.line() for f in found if f.severity == "warning"]
    if case["upstream"] == "reject":
        assert errors, case["name"]
    elif case["upstream"] == "accept":
        assert errors == [] and warnings == [], case["name"]
    else:
        assert errors == [] and warnings, case["name"]
    assert set(case["rules"]) <= {f.rule for f in found}, (case["name"], [f.line() for f in found])

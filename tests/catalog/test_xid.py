"""The XID catalog (catalog/data/xid.yaml), read once for doctor, the exporter, the alert rules and the fleet views."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiinfra.catalog.loader import set_user_catalogs
from aiinfra.catalog.xid import SEVERITIES, xid_catalog
from tests.conftest import assert_one_line_error


def test_shipped_catalog_reads_with_the_codes_operators_meet():
    """NVIDIA's Xid catalog puts 79 (fallen off the bus) and 48 (double-bit ECC) in buckets that need a reset or
    more, and 13 (graphics engine exception) on the application; dcgm-exporter's xid_errors.go names 79 "GPU has
    fallen off the bus"."""
    cat = xid_catalog()
    assert {x.severity for x in cat.values()} <= set(SEVERITIES)
    assert cat[79].fatal and cat[48].fatal and not cat[13].fatal
    assert cat[13].severity == "app"
    assert "fallen off the bus" in cat[79].meaning
    assert all(code == x.code for code, x in cat.items())


def test_other_catalogs_spellings_are_honoured(tmp_path: Path):
    """A user catalog in another tool's words (NVIDIA's "fatal", "warning"; err_msg or description for the text;
    immediate for the action) means the same buckets; an override changes only the fields it gives, and a code
    doctor has never seen is added."""
    mine = tmp_path / "xid.yaml"
    mine.write_text('kind: xid\nentries:\n'
                    '  "13": {code: 13, severity: Fatal, action: "drain"}\n'
                    '  "999": {description: "site-specific code", severity: warning, immediate: "page the site"}\n')
    set_user_catalogs([mine])
    try:
        cat = xid_catalog()
    finally:
        set_user_catalogs([])
    assert cat[13].fatal and cat[13].action == "drain" and cat[13].meaning == "Graphics Engine Exception"
    assert cat[999].severity == "warn" and cat[999].meaning == "site-specific code"
    assert cat[999].action == "page the site"


@pytest.mark.parametrize("entry, needle", [
    ('"79": {code: seventy-nine, err_msg: x, severity: critical}', "field 'code' must be a number"),
    ('"79": {code: 80, err_msg: x, severity: critical}', "the key and the code must agree"),
    ('"79": {code: 79, err_msg: x, severity: catastrophic}', "severity 'catastrophic'"),
    ('"79": {code: 79, err_msg: [a, b], severity: critical}', "field 'err_msg' must be text"),
    ('"79": {code: true, err_msg: x, severity: critical}', "field 'code' must be a number"),
])
def test_a_malformed_xid_entry_is_refused_everywhere(cli, tmp_path: Path, entry: str, needle: str):
    """Before, doctor and the exporter crashed with a traceback on a code that is not a number, and the rules and
    fleet views skipped it without a word, so a critical XID could drop out of the alert; an unknown severity was
    carried as if it meant something. Each is now one line and exit 2, from every command that reads the table."""
    bad = tmp_path / "xid.yaml"
    bad.write_text(f"kind: xid\nentries:\n  {entry}\n")
    assert_one_line_error(cli("--catalog", str(bad), "doctor", "--simulate", "gpus=1,seed=1", "--format", "json"),
                          needle)
    assert_one_line_error(cli("--catalog", str(bad), "rules", "--format", "yaml"), needle)


def test_the_exporter_refuses_a_malformed_xid_table_before_it_opens_a_port(tmp_path: Path):
    """The exporter reads the XID texts on every scrape; a table it cannot read is refused when it starts, so the
    error reaches the operator's terminal once instead of failing each scrape behind an open port."""
    from aiinfra.errors import AiinfraError
    from aiinfra.telemetry.exporter import ExporterConfig, start

    bad = tmp_path / "xid.yaml"
    bad.write_text('kind: xid\nentries:\n  "79": {code: 79, err_msg: x, severity: catastrophic}\n')
    set_user_catalogs([bad])
    try:
        with pytest.raises(AiinfraError, match="severity 'catastrophic'"):
            start([], ExporterConfig(), port=0)
    finally:
        set_user_catalogs([])

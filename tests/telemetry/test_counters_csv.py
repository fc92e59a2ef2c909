"""A counters file (`aiinfra exporter --collectors FILE`) is read as dcgm-exporter reads it.

dcgm-exporter (internal/pkg/counters/counter_config.go, tag 4.5.3-4.8.2-1) parses the file with Go's
encoding/csv, `Comment = '#'` and every other option at its default, stops at the first error (exit 1),
trims spaces around each field and then wants `DCGM field, type, help` rows. The expected answers of
the reader cases below are what Go's csv.Reader (go1.19, same options) returned for the same bytes.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfra.errors import AiinfraError
from aiinfra.telemetry import gocsv
from aiinfra.telemetry.fields import read_counters
from tests.conftest import assert_one_line_error

# (input, Go's records, or Go's error text)
GO_CASES = [
    ('a,b,c\n', [["a", "b", "c"]]),
    ('a,"b,c",d\n', [["a", "b,c", "d"]]),
    ('a,"b ""q"" c",d\n', [["a", 'b "q" c', "d"]]),
    ('a,"b\nc",d\n', [["a", "b\nc", "d"]]),
    ('a,b,"c\n', 'parse error on line 1, column 8: extraneous or missing " in quoted-field'),
    ('a,b,"c" d\n', 'parse error on line 1, column 7: extraneous or missing " in quoted-field'),
    ('a,b, "c"\n', 'parse error on line 1, column 6: bare " in non-quoted-field'),
    ('a,b,c "d"\n', 'parse error on line 1, column 7: bare " in non-quoted-field'),
    ('# x,"open\na,b,c\n', [["a", "b", "c"]]),
    ('  # x\na,b,c\n', "record on line 2: wrong number of fields"),
    ('a,b,c\n   \nd,e,f\n', "record on line 2: wrong number of fields"),
    ('a,b,c\n\n\r\nd,e,f\n', [["a", "b", "c"], ["d", "e", "f"]]),
    ('a,b,c\r\nd,e,f\r\n', [["a", "b", "c"], ["d", "e", "f"]]),
    ('a,b,c\nd,e\n', "record on line 2: wrong number of fields"),
    ('a,"#b",c\n#d,e,f\ng,h,i\n', [["a", "#b", "c"], ["g", "h", "i"]]),
    ('a,"x\n#not a comment",c\n', [["a", "x\n#not a comment", "c"]]),
    ('a,\tb ,c\n', [["a", "\tb ", "c"]]),
    ('é,"ü",c "\n', 'parse error on line 1, column 11: bare " in non-quoted-field'),  # columns count bytes
    ('', []),
    ('# only\n', []),
    ('a,b,c\r', [["a", "b", "c"]]),
    ('a,b,"c\nd,e,f\ng,h,i\n', 'record on line 1; parse error on line 3, column 7: extraneous or missing " in quoted-field'),
]


@pytest.mark.parametrize("text,want", GO_CASES)
def test_reader_answers_as_go_encoding_csv(text, want):
    if isinstance(want, str):
        with pytest.raises(gocsv.CsvError) as e:
            gocsv.read_all(text)
        assert str(e.value) == want
    else:
        assert [r.fields for r in gocsv.read_all(text)] == want


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab,"# \n\r\té')), max_size=40))
def test_reader_never_crashes(text):
    """Any text gives records or a CsvError, and the records start on ascending lines."""
    try:
        records = gocsv.read_all(text)
    except gocsv.CsvError as e:
        assert str(e) and "\n" not in str(e)
        return
    lines = [r.line for r in records]
    assert lines == sorted(set(lines))


def _write(tmp_path, text: str):
    path = tmp_path / "counters.csv"
    path.write_text(text)
    return path


def _run(cli, path):
    return cli("exporter", "--simulate", "gpus=1,seed=1", "--collectors", str(path), "--once")


def _families(out: str) -> list[str]:
    return [line.split()[2] for line in out.splitlines() if line.startswith("# TYPE DCGM")]


# Each (a)-(g) file: dcgm-exporter refuses it at start-up; so does aiinfra, in one line naming file and line.
REFUSED = [
    # (a) an unclosed quote used to swallow the rest of the file into one HELP text
    ('DCGM_FI_DEV_GPU_TEMP, gauge,"temperature\nDCGM_FI_DEV_SM_CLOCK, gauge, clk\n', ("record on line 1", "parse error on line 2")),
    # (c) text after a closing quote
    ('DCGM_FI_DEV_GPU_TEMP, gauge,"temp" C\n', ("line 1", "extraneous or missing")),
    # (d) a quote inside an unquoted field (here after the space that TrimLeadingSpace=false keeps)
    ('DCGM_FI_DEV_GPU_TEMP, gauge, "temp, in C"\n', ("line 1", "bare")),
    ('DCGM_FI_DEV_GPU_TEMP, gauge, temp (in "C")\n', ("line 1", "bare")),
    # (e) a comment that does not start in column 1, and a line of spaces, are one-field records
    ('DCGM_FI_DEV_GPU_TEMP, gauge, t\n  # later\nDCGM_FI_DEV_SM_CLOCK, gauge, c\n', ("record on line 2", "wrong number of fields")),
    ('DCGM_FI_DEV_GPU_TEMP, gauge, t\n   \nDCGM_FI_DEV_SM_CLOCK, gauge, c\n', ("record on line 2", "wrong number of fields")),
    # (f) an empty row names field ''
    ('DCGM_FI_DEV_GPU_TEMP, gauge, t\n,,\n', ("counters.csv:2", "''", "not a DCGM field")),
    # (g) a tab is not trimmed: the type reads '\tgauge'
    ('DCGM_FI_DEV_GPU_TEMP,\tgauge,\tt\n', ("counters.csv:1", "unknown Prometheus type", "\\tgauge")),
    # 4: an exporter field name that dcgm-exporter does not know (counter_config_test.go expects an error)
    ('DCGM_EXP_XID_ERRORS_COUNTXXX, gauge, x\n', ("counters.csv:1", "DCGM_EXP_XID_ERRORS_COUNTXXX", "closest: DCGM_EXP_XID_ERRORS_COUNT")),
]


@pytest.mark.parametrize("text,fragments", REFUSED)
def test_files_dcgm_exporter_refuses_are_refused(cli, tmp_path, text, fragments):
    path = _write(tmp_path, text)
    assert_one_line_error(_run(cli, path), "counters.csv", *fragments)


def test_comment_with_a_quote_hides_nothing(cli, tmp_path):
    """(b) '#' in column 1 drops the line before any quote is read, so later rows are served."""
    path = _write(tmp_path, 'DCGM_FI_DEV_GPU_TEMP, gauge, t\n#x,"disabled row\nDCGM_FI_DEV_SM_CLOCK, gauge, c\n# "end\nDCGM_FI_DEV_MEM_CLOCK, gauge, m\n')
    r = _run(cli, path)
    assert r.code == 0, r.err
    assert _families(r.out) == ["DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK"]


def test_quoted_help_keeps_commas_and_quotes(tmp_path):
    rows, skipped = read_counters(_write(tmp_path, 'DCGM_FI_DEV_GPU_TEMP, gauge,"GPU temperature, in ""C"""\n'))
    assert [(r.name, r.help) for r in rows] == [("DCGM_FI_DEV_GPU_TEMP", 'GPU temperature, in "C"')] and not skipped


def test_exporter_fields_take_any_type(cli, tmp_path):
    """dcgm-exporter checks no type on DCGM_EXP_* rows and writes the row's word in TYPE: a Prometheus type
    is served so; any other word would make Prometheus refuse the scrape ('invalid metric type'), so that row
    is named in the start-up warning and not served."""
    path = _write(tmp_path, "DCGM_FI_DEV_GPU_TEMP, gauge, t\nDCGM_EXP_XID_ERRORS_COUNT, counter, xids\nDCGM_EXP_CLOCK_EVENTS_COUNT, foo, ce\n")
    r = _run(cli, path)
    assert r.code == 0, r.err
    assert "# TYPE DCGM_EXP_XID_ERRORS_COUNT counter\n" in r.out
    assert "DCGM_EXP_CLOCK_EVENTS_COUNT" not in r.out
    warnings = [line for line in r.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "DCGM_EXP_CLOCK_EVENTS_COUNT (type 'foo' is no Prometheus type" in warnings[0]


def test_a_dcgm_field_row_still_needs_a_known_type(tmp_path):
    with pytest.raises(AiinfraError, match="unknown Prometheus type 'untyped'"):
        read_counters(_write(tmp_path, "DCGM_FI_DEV_GPU_TEMP, untyped, t\n"))


@pytest.mark.parametrize("text", ["", "# nothing here\n", "#a,b,c\n\n"])
def test_empty_or_comment_only_file_serves_no_dcgm_families(cli, tmp_path, text):
    """dcgm-exporter starts with an empty counters file and serves no collectors; so does aiinfra, saying so."""
    r = _run(cli, _write(tmp_path, text))
    assert r.code == 0, r.err
    assert _families(r.out) == [] and "# TYPE aiinfra_collections_total counter" in r.out
    warnings = [line for line in r.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "lists no fields" in warnings[0]


def test_text_field_declared_gauge_is_named_not_served(cli, tmp_path):
    """dcgm-exporter would print the driver version text as the sample value ('570.124.06'), which Prometheus
    refuses (strconv.ParseFloat); aiinfra names the row in the warning and writes no HELP/TYPE for it."""
    r = _run(cli, _write(tmp_path, "DCGM_FI_DEV_GPU_TEMP, gauge, t\nDCGM_FI_DRIVER_VERSION, gauge, drv\n"))
    assert r.code == 0, r.err
    assert "# HELP DCGM_FI_DRIVER_VERSION" not in r.out
    assert "DCGM_FI_DRIVER_VERSION (a text field declared gauge" in r.err


def test_numeric_field_declared_label_labels_every_series_with_its_reading(cli, tmp_path):
    """dcgm-exporter turns any `label` row into a label holding the value as text, ints with %d and doubles
    with %f (gpu_collector.go toString), sorted by name after the host label; the reading was dropped here."""
    r = _run(cli, _write(tmp_path, "DCGM_FI_DEV_SM_CLOCK, gauge, c\nDCGM_FI_DEV_POWER_USAGE, label, p\nDCGM_FI_DEV_GPU_TEMP, label, t\n"))
    assert r.code == 0, r.err
    line = next(x for x in r.out.splitlines() if x.startswith("DCGM_FI_DEV_SM_CLOCK{"))
    labels = line[line.index("{") + 1 : line.rindex("}")]
    tail = labels.split('Hostname="sim-node-00",')[1]
    temp, power = tail.split(",")
    assert temp.startswith('DCGM_FI_DEV_GPU_TEMP="') and temp[len('DCGM_FI_DEV_GPU_TEMP="'):-1].isdigit()
    assert power.startswith('DCGM_FI_DEV_POWER_USAGE="') and len(power.split(".")[1]) == 7  # 6 decimals and the quote
    assert "warning" not in r.err

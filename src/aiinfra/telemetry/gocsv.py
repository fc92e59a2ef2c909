"""Go's encoding/csv Reader, as dcgm-exporter configures it to read a counters file.

dcgm-exporter (internal/pkg/counters/counter_config.go ReadCSVFile) makes `csv.NewReader(file)`, sets
`Comment = '#'` and leaves every other option at its default: Comma ',', LazyQuotes false,
TrimLeadingSpace false, FieldsPerRecord 0 (the first record fixes the field count), and calls
ReadAll, which stops at the first error. Python's csv module is lenient where Go is strict (an
unclosed quote swallows the rest of the file, a quote inside an unquoted field passes), and knows no
comment lines, so a file dcgm-exporter refuses would start here with fields quietly missing. This is
a line-for-line reading of Go's `readRecord` (src/encoding/csv/reader.go) with those options:

- a line whose first character is '#' is a comment, but only where a record starts (inside a quoted
  field it is field text); a line holding only a line break is skipped; "\\r\\n" reads as "\\n";
- an unquoted field may hold no '"' (`bare " in non-quoted-field`); a quoted field ends at '"'
  followed by ',' or the end of the line, '""' is one quote, anything else after a closing quote
  (`"temp" C`) and a quote never closed are `extraneous or missing " in quoted-field`;
- a field keeps its spaces and tabs (TrimLeadingSpace is off), so ` "x"` is an unquoted field with
  a bare quote;
- every record has as many fields as the first one (`wrong number of fields`).

Errors carry Go's text, lines and byte columns (1-based), so the message matches what
dcgm-exporter logs for the same file.
"""

from __future__ import annotations

from dataclasses import dataclass

ERR_BARE_QUOTE = 'bare " in non-quoted-field'
ERR_QUOTE = 'extraneous or missing " in quoted-field'
ERR_FIELD_COUNT = "wrong number of fields"


@dataclass(frozen=True)
class Record:
    line: int  # the line the record starts on (1-based)
    fields: list[str]


class CsvError(Exception):
    """Go's csv.ParseError: the record's first line, the line and byte column of the fault, and its text."""

    def __init__(self, start_line: int, line: int, column: int, err: str):
        self.start_line, self.line, self.column, self.err = start_line, line, column, err
        super().__init__(str(self))

    def __str__(self) -> str:  # ParseError.Error()
        if self.err == ERR_FIELD_COUNT:
            return f"record on line {self.line}: {self.err}"
        if self.start_line != self.line:
            return f"record on line {self.start_line}; parse error on line {self.line}, column {self.column}: {self.err}"
        return f"parse error on line {self.line}, column {self.column}: {self.err}"


def _lines(text: str) -> list[str]:
    """Physical lines as Go's readLine returns them: each keeps its '\\n', "\\r\\n" becomes "\\n", and a last
    line without a line break loses one trailing '\\r'."""
    out: list[str] = []
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            line = text[start:]
            out.append(line[:-1] if line.endswith("\r") else line)
            break
        line = text[start:end + 1]
        if line.endswith("\r\n"):
            line = line[:-2] + "\n"
        out.append(line)
        start = end + 1
    return out


def _nl(s: str) -> int:
    return 1 if s.endswith("\n") else 0


def read_all(text: str, comment: str = "#") -> list[Record]:
    """Every record of `text`, or CsvError at the first fault (csv.Reader.ReadAll with Comment set)."""
    lines = _lines(text)
    n = 0  # lines read so far (Go's numLine)
    expected = 0  # FieldsPerRecord: 0 until the first record sets it
    records: list[Record] = []

    def col(full: str, index: int) -> int:  # 1-based byte column of full[index]
        return len(full[:index].encode()) + 1

    while True:
        # Read a line, skipping comment lines and empty lines.
        line = None
        while n < len(lines):
            candidate = lines[n]
            n += 1
            if candidate.startswith(comment) or candidate in ("\n", ""):  # "" : a last line that was only "\r"
                continue
            line = candidate
            break
        if line is None:
            return records
        rec_line = pos_line = n
        full, off = line, 0  # the physical line being parsed, and where `line` starts in it
        fields: list[str] = []
        while True:  # parseField: one field per turn; a turn that ends the record breaks out
            if not line or line[0] != '"':  # unquoted field
                i = line.find(",")
                field = line[:i] if i >= 0 else line[:len(line) - _nl(line)]
                j = field.find('"')
                if j >= 0:
                    raise CsvError(rec_line, n, col(full, off + j), ERR_BARE_QUOTE)
                fields.append(field)
                if i < 0:
                    break
                line, off = line[i + 1:], off + i + 1
                continue
            line, off = line[1:], off + 1  # quoted field
            buf: list[str] = []
            more = False  # another field follows on this record
            while True:
                i = line.find('"')
                if i >= 0:
                    buf.append(line[:i])
                    line, off = line[i + 1:], off + i + 1
                    if line[:1] == '"':  # "" is one quote
                        buf.append('"')
                        line, off = line[1:], off + 1
                    elif line[:1] == ",":  # end of the field
                        line, off = line[1:], off + 1
                        more = True
                        break
                    elif len(line) == _nl(line):  # end of the record
                        break
                    else:
                        raise CsvError(rec_line, n, col(full, off - 1), ERR_QUOTE)
                elif line:  # the field goes on on the next line
                    buf.append(line)
                    nxt = lines[n] if n < len(lines) else ""
                    n += 1
                    if nxt:
                        full, off, line, pos_line = nxt, 0, nxt, n
                    else:
                        off, line = off + len(line), ""
                else:  # the file ends inside the quotes
                    raise CsvError(rec_line, pos_line, col(full, off), ERR_QUOTE)
            fields.append("".join(buf))
            if not more:
                break
        if expected == 0:
            expected = len(fields)
        elif len(fields) != expected:
            raise CsvError(rec_line, rec_line, 1, ERR_FIELD_COUNT)
        records.append(Record(rec_line, fields))

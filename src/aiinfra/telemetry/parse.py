"""A fast parser for Prometheus text format 0.0.4 and OpenMetrics 1.0, and a dcgm-exporter reader.

    families = parse(text)                      # text 0.0.4 (or openmetrics=True / "auto")
    readings = read_dcgm(text)                  # typed DCGM samples, SI units, any naming generation

Format rules kept (shared/reference/dcgm_telemetry_anchors.md §9):
- `# HELP` text unescapes `\\\\` and `\\n`; label values also `\\"`; NaN, +Inf, -Inf values;
- text 0.0.4 timestamps are integer milliseconds, OpenMetrics timestamps float seconds (both
  returned as seconds); `# TYPE` before the samples; an untyped sample is its own family;
- OpenMetrics: `# UNIT`, exemplars after ` # `, no blank lines, and the exposition must end
  with `# EOF` (a partial exposition is wholly invalid).

Families are grouped the way `prometheus_client.parser` groups them; `client_view()` applies its
counter naming (family without `_total`, samples with it) so results compare one to one.

Speed: one compiled regular expression per label instead of a character loop, and no Metric
objects; benchmarks/telemetry.py measures it against prometheus_client.parser.

A malformed exposition raises ParseError naming the line number and the line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiinfra.errors import AiinfraError
from aiinfra.telemetry.fields import alias_index, is_blank

TEXT_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
OM_TYPES = ("counter", "gauge", "histogram", "gaugehistogram", "stateset", "info", "summary", "unknown")
# Sample-name suffixes each family type may carry (text 0.0.4 / OpenMetrics).
_SUFFIXES = {
    "counter": ("", "_total", "_created"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum", "_created"),
    "histogram": ("_count", "_sum", "_bucket", "_created"),
    "gaugehistogram": ("_gcount", "_gsum", "_bucket"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
    "untyped": ("",),
}
_TEXT_SUFFIXES = {"counter": ("",), "summary": ("", "_count", "_sum"), "histogram": ("_count", "_sum", "_bucket")}

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_NAME_RE = re.compile(_NAME + r"\Z")
_QUOTED = r'"((?:[^"\\\n]|\\.)*)"'
# One label: name (bare or quoted) = "value", then an optional comma.
_LABEL_RE = re.compile(r'[ \t]*(?:([a-zA-Z_][a-zA-Z0-9_]*)|' + _QUOTED + r')[ \t]*=[ \t]*' + _QUOTED + r"[ \t]*(,?)")
# A quoted metric name inside the braces ({"my.metric", …}).
_QNAME_RE = re.compile(r"[ \t]*" + _QUOTED + r"[ \t]*(,?)")
_SIMPLE_RE = re.compile(r"(" + _NAME + r")[ \t]+(\S+)(?:[ \t]+(\S+))?[ \t]*\Z")
# The common line shape in one C-speed match: name{a="x",b="y"} value [timestamp]. Anything else
# (quoted names, blanks inside braces, exemplars, errors) takes the careful path below.
_VAL = r'[^"\\\n]*(?:\\.[^"\\\n]*)*'  # unrolled (?:[^"\\]|\\.)*: far fewer regex steps per character
_PAIR = r'[a-zA-Z_][a-zA-Z0-9_]*="' + _VAL + '"'
_FAST_RE = re.compile(r"(" + _NAME + r")\{((?:" + _PAIR + r"(?:," + _PAIR + r")*,?)?)\} (\S+)(?: (\S+))?\Z")
_PAIR_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(' + _VAL + ')"')
_EXEMPLAR_RE = re.compile(r"\{((?:" + _PAIR + r"(?:," + _PAIR + r")*)?)\} (\S+)(?: (\S+))?\Z")
_UNESCAPE_RE = re.compile(r'\\(.)')
_HELP_UNESCAPE_RE = re.compile(r"\\([\\n])")
# Metadata lines. Text 0.0.4 separates tokens by runs of ASCII blanks (prometheus_client splits on
# string.whitespace, not Unicode spaces); OpenMetrics by exactly one space.
_META_RE = re.compile(r"#[ \t\r\x0b\x0c]+(HELP|TYPE|UNIT)[ \t\r\x0b\x0c]+([^ \t\r\x0b\x0c]+)(?:[ \t\r\x0b\x0c]+(.*))?\Z", re.DOTALL)
_META_BARE_RE = re.compile(r"#[ \t]+(HELP|TYPE)[ \t]*\Z")
_OM_META_RE = re.compile(r"# (HELP|TYPE|UNIT) ([^ ]+)(?: (.*))?\Z", re.DOTALL)
_ESC = {"\\": "\\", "n": "\n", '"': '"'}


class ParseError(AiinfraError):
    """A malformed exposition: the message names the line."""


@dataclass(slots=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float
    timestamp: float | None = None  # seconds
    exemplar: tuple[dict[str, str], float, float | None] | None = None


@dataclass(slots=True)
class Family:
    name: str
    type: str = "untyped"
    help: str = ""
    unit: str = ""
    samples: list[Sample] = field(default_factory=list)


def _unescape(s: str) -> str:
    if "\\" not in s:
        return s
    return _UNESCAPE_RE.sub(lambda m: _ESC.get(m.group(1), "\\" + m.group(1)), s)


def _help_unescape(s: str) -> str:
    if "\\" not in s:
        return s
    return _HELP_UNESCAPE_RE.sub(lambda m: "\\" if m.group(1) == "\\" else "\n", s)


def _value(tok: str) -> float:
    if "_" in tok:
        raise ValueError(f"invalid value {tok!r}")
    return float(tok)  # accepts NaN, +Inf, -Inf, exponents


class _Parser:
    def __init__(self, openmetrics: bool):
        self.om = openmetrics
        self.out: list[Family] = []
        self.cur: Family | None = None
        self.allowed: tuple[str, ...] = ()
        self.seen_types: set[str] = set()

    # ---- families

    def _start(self, name: str) -> Family:
        fam = Family(name, "unknown" if self.om else "untyped")
        self.out.append(fam)
        self.cur = fam
        self.allowed = (name,)
        return fam

    def _family_for_meta(self, name: str) -> Family:
        if self.cur is not None and self.cur.name == name:
            return self.cur
        if self.om and name in self.seen_types:
            raise ValueError(f"metadata for {name} after its samples or other families")
        return self._start(name)

    def meta(self, kind: str, name: str, text: str) -> None:
        if name.startswith('"') and name.endswith('"') and len(name) >= 2:
            name = _unescape(name[1:-1])
        elif not _NAME_RE.match(name):
            raise ValueError(f"invalid metric name {name!r} in # {kind}")
        fam = self._family_for_meta(name)
        if kind == "HELP":
            fam.help = _unescape(text) if self.om else _help_unescape(text)
        elif kind == "TYPE":
            typ = text.strip()
            valid = OM_TYPES if self.om else TEXT_TYPES
            if typ not in valid:
                raise ValueError(f"unknown type {typ!r}; valid: {', '.join(valid)}")
            if fam.samples:
                raise ValueError(f"# TYPE for {name} after its samples")
            fam.type = typ
            suffixes = _SUFFIXES[typ] if self.om else _TEXT_SUFFIXES.get(typ, ("",))
            self.allowed = tuple(name + s for s in suffixes)
        elif kind == "UNIT":
            if not self.om:
                return  # a plain comment in text 0.0.4
            unit = text.strip()
            if unit and not name.endswith("_" + unit):
                raise ValueError(f"unit {unit!r} is not a suffix of the metric name {name}")
            fam.unit = unit
        self.seen_types.add(name)

    # ---- samples

    def sample(self, line: str) -> None:
        exemplar = None
        if self.om and " # " in line:
            line, exemplar = self._split_exemplar(line)
        fast = _FAST_RE.match(line)
        m = None if fast else _SIMPLE_RE.match(line)
        if fast:
            name, block, vtok, ttok = fast.groups()
            if self.om and block.endswith(","):
                raise ValueError("trailing comma in labels")
            if "\\" in block:
                pairs = _PAIR_RE.findall(block)
                labels = {k: _unescape(v) for k, v in pairs}
            elif block:
                # Validated above and free of escapes, so quotes come in pairs around the values:
                # 'a="x",b="y"' splits into ['a=', 'x', ',b=', 'y', ''].
                parts = block.split('"')
                pairs = parts[1::2]
                keys = [k[1:-1] for k in parts[2:-1:2]]
                keys.insert(0, parts[0][:-1])
                labels = dict(zip(keys, pairs))
            else:
                pairs, labels = [], {}
            if len(labels) != len(pairs):
                raise ValueError("duplicate label name")
        elif m:
            name, vtok, ttok = m.groups()
            labels: dict[str, str] = {}
            rest = ""
        else:
            name, labels, rest = self._labelled(line)
            parts = rest.split()
            if not 1 <= len(parts) <= 2:
                raise ValueError("expected a value and an optional timestamp after the labels")
            vtok, ttok = parts[0], (parts[1] if len(parts) == 2 else None)
        if self.om and ttok == "#":
            raise ValueError("exemplar without labels")
        value = _value(vtok)
        ts = None
        if ttok is not None:
            if self.om:
                ts = _value(ttok)
                if not math.isfinite(ts):
                    raise ValueError(f"invalid timestamp {ttok!r}")
            else:
                ts = int(ttok) / 1000.0
        s = Sample(name, labels, value, ts, exemplar)
        if name in self.allowed and self.cur is not None:
            self.cur.samples.append(s)
            return
        if self.om:
            fam = self._start(name)
            fam.samples.append(s)
            self.seen_types.add(name)
            return
        # text 0.0.4: a sample outside the current family is an untyped family of its own.
        fam = Family(name, "untyped")
        fam.samples.append(s)
        self.out.append(fam)
        self.cur = None
        self.allowed = ()

    def _labelled(self, line: str) -> tuple[str, dict[str, str], str]:
        brace = line.find("{")
        if brace < 0:
            raise ValueError("expected 'name value [timestamp]' or 'name{labels} value [timestamp]'")
        name = line[:brace].strip()
        labels: dict[str, str] = {}
        pos = brace + 1
        n = len(line)
        if not name:
            qm = _QNAME_RE.match(line, pos)
            if not qm:
                raise ValueError("no metric name")
            name = _unescape(qm.group(1))
            pos = qm.end()
            if not qm.group(2):
                pos = self._close(line, pos)
                return name, labels, line[pos:]
        elif not _NAME_RE.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        while True:
            while pos < n and line[pos] in " \t":
                pos += 1
            if pos < n and line[pos] == "}":
                if self.om and labels and line[pos - 1] == ",":
                    raise ValueError("trailing comma in labels")
                return name, labels, line[pos + 1 :]
            m = _LABEL_RE.match(line, pos)
            if not m:
                raise ValueError(f"bad label at column {pos + 1}")
            key = m.group(1) if m.group(1) is not None else _unescape(m.group(2))
            if key in labels:
                raise ValueError(f"duplicate label {key!r}")
            labels[key] = _unescape(m.group(3))
            pos = m.end()
            if not m.group(4):
                pos = self._close(line, pos)
                return name, labels, line[pos:]

    @staticmethod
    def _close(line: str, pos: int) -> int:
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        if pos >= len(line) or line[pos] != "}":
            raise ValueError(f"expected '}}' at column {pos + 1}")
        return pos + 1

    @staticmethod
    def _split_exemplar(line: str) -> tuple[str, tuple[dict[str, str], float, float | None] | None]:
        """Cut `sample # {labels} value [ts]` at the first ' # ' outside a quoted label value."""
        start = 0
        while (i := line.find(" # ", start)) >= 0:
            quotes = len(re.findall(r'(?<!\\)(?:\\\\)*"', line[:i]))
            if quotes % 2 == 0:
                return line[:i], _Parser._exemplar(line[i + 3 :])
            start = i + 1
        return line, None

    @staticmethod
    def _exemplar(text: str) -> tuple[dict[str, str], float, float | None]:
        m = _EXEMPLAR_RE.match(text)
        if not m:
            raise ValueError("malformed exemplar; expected # {labels} value [timestamp]")
        labels = {k: _unescape(v) for k, v in _PAIR_RE.findall(m.group(1) or "")}
        ts = _value(m.group(3)) if m.group(3) else None
        return labels, _value(m.group(2)), ts


def parse(text: str, openmetrics: bool | str = False) -> list[Family]:
    """Parse an exposition. openmetrics=True for OpenMetrics 1.0, "auto" to detect it by `# EOF`."""
    if openmetrics == "auto":
        openmetrics = text.rstrip("\n").endswith("# EOF")
    p = _Parser(bool(openmetrics))
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    eof = False
    for n, line in enumerate(lines, 1):
        try:
            if eof:
                raise ValueError("content after # EOF")
            if openmetrics:
                if line == "# EOF":
                    eof = True
                    continue
                if not line:
                    raise ValueError("blank lines are not allowed in OpenMetrics")
                if line.endswith("\r"):
                    raise ValueError("CRLF line ending; OpenMetrics lines end with a bare line feed")
            else:
                line = line.strip()
                if not line:
                    continue
            if line[0] == "#":
                if openmetrics:
                    m = _OM_META_RE.match(line)
                    if not m:
                        raise ValueError("only # HELP, # TYPE, # UNIT and # EOF lines are allowed")
                    p.meta(m.group(1), m.group(2), m.group(3) or "")
                    continue
                m = _META_RE.match(line)
                if m:
                    p.meta(m.group(1), m.group(2), m.group(3) or "")
                elif _META_BARE_RE.match(line):
                    raise ValueError("# HELP/# TYPE without a metric name")
                continue
            p.sample(line)
        except ValueError as e:
            shown = line if len(line) <= 120 else line[:117] + "..."
            raise ParseError(f"line {n}: {e}: {shown!r}") from None
    if openmetrics and not eof:
        raise ParseError(f"line {len(lines)}: an OpenMetrics exposition must end with '# EOF'")
    return p.out


def client_view(families: list[Family]) -> Iterator[tuple[str, str, str, list[tuple[str, dict[str, str], float, float | None]]]]:
    """(name, type, help, samples) the way prometheus_client.parser reports the same text 0.0.4."""
    for f in families:
        name, samples = f.name, [(s.name, s.labels, s.value, s.timestamp) for s in f.samples]
        if f.type == "counter":
            if name.endswith("_total"):
                name = name[:-6]
            else:
                samples = [(n + "_total", lab, v, ts) for n, lab, v, ts in samples]
        yield name, "unknown" if f.type == "untyped" else f.type, f.help, samples  # client calls untyped unknown


# ---------------------------------------------------------------- dcgm-exporter reader

# Label spellings across dcgm-exporter versions and scrape set-ups → one name (reference §10.2).
LABEL_ALIASES = {
    "UUID": "gpu_uuid",
    "uuid": "gpu_uuid",
    "gpu": "gpu_index",
    "Hostname": "host",
    "hostname": "host",
    "GPU_I_ID": "gi_id",
    "GPU_I_PROFILE": "gi_profile",
    "DCGM_FI_DRIVER_VERSION": "driver_version",
    "DCGM_FI_SYSTEM_DRIVER_VERSION": "driver_version",
    "modelName": "model",
    "model_name": "model",
    "exported_pod": "pod",
    "pod_name": "pod",
    "exported_namespace": "namespace",
    "pod_namespace": "namespace",
    "exported_container": "container",
    "container_name": "container",
}


def normalize_labels(labels: dict[str, str]) -> dict[str, str]:
    """One spelling per label; `exported_pod` wins over `pod` (honorLabels: false moves ours there)."""
    out: dict[str, str] = {}
    for k, v in labels.items():
        key = LABEL_ALIASES.get(k, k)
        if key in out and not k.startswith("exported_"):
            continue
        out[key] = v
    return out


@dataclass(slots=True)
class Reading:
    """One dcgm-exporter sample, understood: which DCGM field, under which name generation, in SI."""

    field: str  # catalog key, e.g. "fb-used"
    metric: str  # the name as exported
    generation: str  # legacy | v1 | dcgm46 | dcgm4.9
    value: float  # SI (bytes, Hz, J, W, B/s, ratio 0-1, counts)
    unit: str
    labels: dict[str, str]


def read_dcgm(text: str, openmetrics: bool | str = "auto") -> list[Reading]:
    """dcgm-exporter output of any naming generation → SI readings; sentinels and unknown names dropped."""
    idx = alias_index()
    out: list[Reading] = []
    for fam in parse(text, openmetrics):
        alias = idx.get(fam.name)
        if alias is None:
            continue
        f = alias.field
        for s in fam.samples:
            if math.isnan(s.value) or is_blank(s.value):
                continue  # DCGM's not-supported / blank markers are missing data, not numbers
            out.append(Reading(f.key, fam.name, alias.generation, f.to_si(s.value, alias.generation, fam.help or None), f.unit, normalize_labels(s.labels)))
    return out

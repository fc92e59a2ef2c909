"""The DCGM field table (catalog/data/dcgm_fields.yaml) as typed objects, plus the alias index.

One `Field` per DCGM field ID. Values inside aiinfra are SI (bytes, Hz, J, W, B/s, ratio 0–1);
`Field.export_value` converts to what a naming generation prints (legacy MiB/MHz/mJ/%/MB/s, or SI
for dcgm-exporter 4.9), and `Field.to_si` converts back when reading someone else's output.

    >>> f = field("sm-clock")
    >>> f.name("legacy"), f.export_value(1_980_000_000, "legacy")
    ('DCGM_FI_DEV_SM_CLOCK', 1980)
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import AiinfraError, not_found
from aiinfra.telemetry import gocsv

NAMINGS = ("legacy", "dcgm4.9")

# Clock-event ("throttle") reason bits: NVML nvmlClocksEventReason* = DCGM_CLOCKS_EVENT_REASON_*,
# with the label value dcgm-exporter gives each bit in DCGM_EXP_CLOCK_EVENTS_COUNT{clock_event=…}.
# Source: DCGM dcgmlib/dcgm_fields.h @ 72fa3fe and pynvml constants (reference §5.6).
CLOCK_EVENTS: dict[int, str] = {
    0x001: "gpu_idle",
    0x002: "clocks_setting",
    0x004: "power_cap",
    0x008: "hw_slowdown",
    0x010: "sync_boost",
    0x020: "sw_thermal",
    0x040: "hw_thermal",
    0x080: "hw_power_brake",
    0x100: "display_clocks",
}
# Bits that mean the GPU is slowed by something an operator should look at (not idle, not a setting).
THROTTLE_BITS = 0x004 | 0x008 | 0x020 | 0x040 | 0x080

# DCGM's "no value" sentinels: a reader treats anything at or above them as missing (reference §5.10).
DCGM_INT64_BLANK = 0x7FFFFFFFFFFFFFF0
DCGM_FP64_BLANK = 140737488355328.0


@dataclass(frozen=True)
class Field:
    key: str
    id: int
    legacy: str
    dcgm46: str
    dcgm49: str
    dcgm49_verified: bool
    type: str
    value: str
    unit: str
    help: str
    default: bool
    scope: str
    v1: str | None = None
    help49: str | None = None
    value49: str | None = None
    legacy_unit: str | None = None
    legacy_scale: float = 1.0
    truncate: bool = False
    percent_ambiguous: bool = False
    exporter_owned: bool = False
    default49: bool | None = None
    aliases: tuple[str, ...] = ()
    note: str = ""

    def name(self, naming: str) -> str:
        return self.dcgm49 if naming == "dcgm4.9" else self.legacy

    def help_text(self, naming: str) -> str:
        return (self.help49 or self.help) if naming == "dcgm4.9" else self.help

    def is_int(self, naming: str) -> bool:
        kind = (self.value49 or self.value) if naming == "dcgm4.9" else self.value
        return kind == "int"

    def in_default_set(self, naming: str) -> bool:
        if naming == "dcgm4.9" and self.default49 is not None:
            return self.default49
        return self.default

    def export_value(self, si: float, naming: str) -> float | int:
        """The number dcgm-exporter prints for an SI value under `naming` (ints stay ints)."""
        v = si * self.legacy_scale if naming == "legacy" else si
        if self.is_int(naming):
            # dcgm-exporter's MiB are bytes >> 20 (truncated); other ints are rounded readings.
            return int(v) if self.truncate else round(v)
        return float(v)

    def to_si(self, value: float, generation: str, help_text: str | None = None) -> float:
        """Back to SI from a value printed under `generation` (legacy, v1, dcgm46 or dcgm4.9).

        DCGM 4.6 and exporter 4.9 share some names but not units (GPU_UTIL_RATIO is 0–100 in
        DCGM 4.6 and 0–1 in 4.9; NVLINK_THROUGHPUT_TOTAL is MB/s vs B/s), so for those the HELP
        text decides, then the value's range (a "ratio" above 1 is a percentage).
        """
        if self.legacy_scale == 1.0:
            return float(value)
        legacy_units = generation in ("legacy", "v1")
        if generation in ("dcgm46", "dcgm4.9"):
            if help_text and self.legacy_unit and f"(in {self.legacy_unit})" in help_text:
                legacy_units = True
            elif help_text and self.help49 and help_text.strip() == self.help49:
                legacy_units = False
            elif self.percent_ambiguous:
                legacy_units = value > 1.0
            else:
                legacy_units = generation == "dcgm46" and self.dcgm46 != self.dcgm49
        return value / self.legacy_scale if legacy_units else float(value)


@dataclass(frozen=True)
class Alias:
    """What one metric name means: the field, the naming generation, and how to get back to SI."""

    field: Field
    generation: str


def _build(key: str, e: dict) -> Field:
    try:
        return Field(
            key=key,
            id=int(e["id"]),
            legacy=e["legacy"],
            dcgm46=e["dcgm46"],
            dcgm49=e["dcgm49"],
            dcgm49_verified=bool(e.get("dcgm49_verified", False)),
            type=e["type"],
            value=e["value"],
            unit=e.get("unit", ""),
            help=e["help"],
            default=bool(e.get("default", False)),
            scope=e.get("scope", "device"),
            v1=e.get("v1"),
            help49=e.get("help49"),
            value49=e.get("value49"),
            legacy_unit=e.get("legacy_unit"),
            legacy_scale=float(e.get("legacy_scale", 1.0)),
            truncate=bool(e.get("truncate", False)),
            percent_ambiguous=bool(e.get("percent_ambiguous", False)),
            exporter_owned=bool(e.get("exporter_owned", False)),
            default49=e.get("default49"),
            aliases=tuple(e.get("aliases", [])),
            note=e.get("note", ""),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise AiinfraError(f"catalog dcgm_fields entry '{key}' is invalid: {err}") from None


@lru_cache(maxsize=1)
def all_fields() -> tuple[Field, ...]:
    table = default_catalog().table("dcgm_fields")
    return tuple(_build(k, e) for k, e in table.items())


def field(key: str) -> Field:
    for f in all_fields():
        if f.key == key:
            return f
    raise not_found("DCGM field", key, [f.key for f in all_fields()])


@lru_cache(maxsize=1)
def alias_index() -> dict[str, Alias]:
    """Every known metric name (all generations) → Alias. Legacy wins where two names coincide."""
    idx: dict[str, Alias] = {}
    for f in all_fields():
        for gen, name in (("dcgm4.9", f.dcgm49), ("dcgm46", f.dcgm46), ("v1", f.v1), ("legacy", f.legacy)):
            if name:
                idx[name] = Alias(f, gen)
        for name in f.aliases:
            idx.setdefault(name, Alias(f, "legacy"))
    return idx


def exported_fields(naming: str, counters: str = "default") -> list[Field]:
    """The field rows an exporter serves: dcgm-exporter's default set, or every row we can collect."""
    if naming not in NAMINGS:
        raise AiinfraError(f"unknown naming '{naming}'; choose one of: {', '.join(NAMINGS)}")
    if counters not in ("default", "all"):
        raise AiinfraError(f"unknown counter set '{counters}'; choose default or all")
    rows = [f for f in all_fields() if counters == "all" or f.in_default_set(naming)]
    return rows


def is_blank(value: float) -> bool:
    """A DCGM sentinel (blank / not found / not supported / no permission) rather than a reading."""
    return math.isfinite(value) and (value >= DCGM_INT64_BLANK or value >= DCGM_FP64_BLANK)


@dataclass(frozen=True)
class ExportRow:
    """One family an exporter serves: the field, its exported name, TYPE, HELP, and unit generation."""

    field: Field
    name: str
    type: str
    help: str
    units: str  # legacy | dcgm4.9: which unit scale the printed values use


def default_rows(naming: str, counters: str = "default") -> list[ExportRow]:
    return [ExportRow(f, f.name(naming), f.type, f.help_text(naming), naming) for f in exported_fields(naming, counters)]


# What counter_config.go accepts as the type of a DCGM field row (promMetricType in counters/variables.go). dcgm-exporter
# writes histogram and summary rows as it writes gauges: TYPE histogram|summary over plain samples, which Prometheus
# stores as ordinary series; aiinfra does the same.
_PROM_TYPES = ("gauge", "counter", "histogram", "summary", "label")
# The TYPE words Prometheus's text format knows. dcgm-exporter checks no type on its own DCGM_EXP_* rows and writes
# whatever the row says; a word outside these makes Prometheus refuse the whole scrape.
TEXT_TYPES = ("gauge", "counter", "histogram", "summary", "untyped")
# dcgm-exporter's own fields (ExporterCounter, counters/exporter_counters.go); DCGM_FI_UNKNOWN is also known there.
EXPORTER_FIELDS = ("DCGM_EXP_XID_ERRORS_COUNT", "DCGM_EXP_CLOCK_EVENTS_COUNT", "DCGM_EXP_GPU_HEALTH_STATUS", "DCGM_EXP_P2P_STATUS")


@dataclass(frozen=True)
class Skipped:
    """A row of a counters file that is not served, and why (reported once at start-up)."""

    name: str
    reason: str


@lru_cache(maxsize=1)
def dcgm_field_ids() -> dict[str, int]:
    """Every DCGM field name (DCGM 4.6 canonical and deprecated) → field ID (catalog dcgm_field_ids)."""
    out: dict[str, int] = {}
    for entry in default_catalog().table("dcgm_field_ids").values():
        for line in str(entry.get("names", "")).splitlines():
            name, _, fid = line.strip().partition(" ")
            if name and fid.strip().isdigit():
                out[name] = int(fid)
    return out


def _shown(s: str) -> str:
    """A value from the file, quoted and kept on one printable line."""
    s = s if s.isprintable() else s.encode("unicode_escape").decode("ascii")
    return "'" + (s if len(s) <= 80 else s[:77] + "…") + "'"


_CSV_HINTS = {
    gocsv.ERR_BARE_QUOTE: "quote the whole field (no space before the opening quote) and double each quote inside it",
    gocsv.ERR_QUOTE: "a quoted field closes with a quote right before the comma or the end of the line; double each quote inside it",
    gocsv.ERR_FIELD_COUNT: "every row has as many fields as the first; a comment needs '#' in the first column",
}


def read_counters(path: str | Path) -> tuple[list[ExportRow], list[Skipped]]:
    """A dcgm-exporter collectors file (`-f default-counters.csv`), read as dcgm-exporter reads it
    (counter_config.go ReadCSVFile and ExtractCounters): Go's encoding/csv with '#' comment lines
    (telemetry.gocsv), spaces (not tabs) trimmed around each field, then `DCGM field, type, help` rows.
    Names of any generation are understood; the family keeps the name, TYPE and HELP the file gives.

    What dcgm-exporter refuses is refused here in one line naming the file and line: a CSV fault, a row
    without 3 fields, a name that is no DCGM field and no dcgm-exporter field (DCGM_EXP_*), a DCGM field
    row whose type is not one of gauge, counter, histogram, summary, label (DCGM_EXP_* rows take any type,
    as there). A file with no rows is accepted and serves no DCGM families. A real field that aiinfra
    does not collect, a second row with the same name, or a row dcgm-exporter would serve in a form
    Prometheus cannot scrape is skipped and named (`Skipped`), never fatal."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise AiinfraError(f"cannot read collectors file {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        records = gocsv.read_all(text)
    except gocsv.CsvError as e:
        raise AiinfraError(f"collectors file {path}: {e} ({_CSV_HINTS[e.err]})") from None
    idx = alias_index()
    ids = dcgm_field_ids()
    rows: list[ExportRow] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for rec in records:
        n = rec.line
        cols = [c.strip(" ") for c in rec.fields]  # strings.Trim(r, " "): spaces only, tabs stay
        if len(cols) != 3:
            raise AiinfraError(f"{path}:{n}: expected 3 columns (DCGM field, Prometheus type, help), got {len(cols)}")
        name, typ, help_text = cols
        alias = idx.get(name)
        exporter_field = name in EXPORTER_FIELDS or (alias is not None and alias.field.exporter_owned)
        if alias is None and not exporter_field and name not in ids:
            raise AiinfraError(f"{path}:{n}: {_shown(name)} is not a DCGM field or a dcgm-exporter field{_closest_name(name, idx, ids)}")
        if not exporter_field and typ not in _PROM_TYPES:
            raise AiinfraError(f"{path}:{n}: unknown Prometheus type {_shown(typ)} for {name}; use one of {', '.join(_PROM_TYPES)}")
        if alias is None:
            skipped.append(Skipped(name, "aiinfra does not collect this field"))
            continue
        if exporter_field and typ not in TEXT_TYPES:
            skipped.append(Skipped(name, f"type {_shown(typ)} is no Prometheus type (dcgm-exporter writes it in TYPE and Prometheus then "
                                         "refuses every scrape); declare it gauge"))
            continue
        if typ != "label" and alias.field.value == "string":
            skipped.append(Skipped(name, f"a text field declared {typ} (dcgm-exporter prints the text as the sample value, which "
                                         "Prometheus cannot parse); declare it label"))
            continue
        if name in seen:
            skipped.append(Skipped(name, f"listed again on line {n}; the first row is served"))
            continue
        seen.add(name)
        units = "dcgm4.9" if alias.generation == "dcgm4.9" else "legacy"
        rows.append(ExportRow(alias.field, name, typ, help_text, units))
    return rows, skipped


def _closest_name(name: str, idx: dict[str, Alias], ids: dict[str, int]) -> str:
    pool = list(dict.fromkeys([*EXPORTER_FIELDS, *idx] if name.startswith("DCGM_EXP_") else [*idx, *ids]))
    hits = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
    return f"; closest: {', '.join(hits)}" if hits else ""


def read_counters_csv(path: str | Path) -> list[ExportRow]:
    """The rows of a collectors file that aiinfra can serve (see read_counters for what is skipped)."""
    return read_counters(path)[0]

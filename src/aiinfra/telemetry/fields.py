"""The DCGM field table (catalog/data/dcgm_fields.yaml) as typed objects, plus the alias index.

One `Field` per DCGM field ID. Values inside aiinfra are SI (bytes, Hz, J, W, B/s, ratio 0–1);
`Field.export_value` converts to what a naming generation prints (legacy MiB/MHz/mJ/%/MB/s, or SI
for dcgm-exporter 4.9), and `Field.to_si` converts back when reading someone else's output.

    >>> f = field("sm-clock")
    >>> f.name("legacy"), f.export_value(1_980_000_000, "legacy")
    ('DCGM_FI_DEV_SM_CLOCK', 1980)
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import AiinfraError, not_found

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


_CSV_TYPES = ("gauge", "counter", "label")
_PROM_TYPES = ("gauge", "counter", "histogram", "summary", "label")  # what counter_config.go accepts


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


def read_counters(path: str | Path) -> tuple[list[ExportRow], list[Skipped]]:
    """A dcgm-exporter collectors file (`-f default-counters.csv`): `DCGM field, type, help` rows,
    '#' comments, fields trimmed (counter_config.go). Names of any generation are understood; the
    family keeps the name, TYPE and HELP the file gives, as dcgm-exporter does.

    As in dcgm-exporter, a malformed row or a name that is no DCGM field at all is an error; a real
    DCGM field (or exporter field) that aiinfra does not collect is skipped, never fatal, and so is a
    second row with the same metric name (Prometheus allows one family per name)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise AiinfraError(f"cannot read collectors file {path}: {getattr(e, 'strerror', None) or e}") from None
    idx = alias_index()
    ids = dcgm_field_ids()
    rows: list[ExportRow] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    try:
        records = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise AiinfraError(f"collectors file {path} is not CSV: {e}") from None
    for n, raw in enumerate(records, 1):
        if not raw or not "".join(raw).strip() or raw[0].lstrip().startswith("#"):
            continue
        cols = [c.strip() for c in raw]
        if len(cols) != 3:
            raise AiinfraError(f"{path}:{n}: expected 3 columns (DCGM field, Prometheus type, help), got {len(cols)}")
        name, typ, help_text = cols
        if typ not in _PROM_TYPES:
            raise AiinfraError(f"{path}:{n}: unknown Prometheus type '{typ}' for {name}; use gauge, counter or label")
        alias = idx.get(name)
        if alias is None:
            if name in ids or name.startswith("DCGM_EXP_"):
                skipped.append(Skipped(name, "aiinfra does not collect this field"))
                continue
            raise AiinfraError(f"{path}:{n}: {name} is not a DCGM field name (DCGM_FI_…, DCGM_EXP_… or a dcgm-exporter 1.x dcgm_… name)")
        if typ not in _CSV_TYPES:
            skipped.append(Skipped(name, f"type {typ} is not served; declare it gauge or counter"))
            continue
        if name in seen:
            skipped.append(Skipped(name, f"listed again on line {n}; the first row is served"))
            continue
        seen.add(name)
        units = "dcgm4.9" if alias.generation == "dcgm4.9" else "legacy"
        rows.append(ExportRow(alias.field, name, typ, help_text, units))
    if not rows and not skipped:
        raise AiinfraError(f"collectors file {path} has no field rows")
    return rows, skipped


def read_counters_csv(path: str | Path) -> list[ExportRow]:
    """The rows of a collectors file that aiinfra can serve (see read_counters for what is skipped)."""
    return read_counters(path)[0]

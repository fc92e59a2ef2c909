"""Loading and looking up catalog tables.

File format (every file under data/, and any user file given with --catalog):

    kind: gpus                 # the table this file fills
    observed: 2026-11-22       # default date for entries (required where values change)
    source: "…"                # default source for entries
    entries:
      h100-sxm: {…, source: "…", aliases: ["H100 SXM5"]}

A user file may instead hold several tables at once: `{gpus: {key: {…}}, models: {…}}`.
Entries merge per key: a user entry overrides the fields it names and keeps the others.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from aiinfra.errors import AiinfraError, closest, not_found
from aiinfra.safeio import load_json_file, load_trusted_yaml, load_yaml_file
from aiinfra.specs import ATTENTION_KERNELS, FP8_GEMM_ROUTES, LINEAR_DTYPES, arch_family

DATA_DIR = Path(__file__).parent / "data"
T = TypeVar("T", bound=BaseModel)

# Suffixes that do not change a model's size: "meta-llama/Llama-3.1-8B-Instruct" is llama-3.1-8b.
_NOISE_SUFFIXES = ("-instruct", "-chat", "-hf", "-base")


def normalize_name(name: str) -> str:
    """Canonical spelling of a catalog key: lowercase, hyphens, no org prefix."""
    n = name.strip().lower()
    if "/" in n:
        n = n.rsplit("/", 1)[1]
    n = re.sub(r"[\s_]+", "-", n)
    n = re.sub(r"-+", "-", n).strip("-")
    return n


def _strip_noise(n: str) -> str:
    changed = True
    while changed:
        changed = False
        for suffix in _NOISE_SUFFIXES:
            if n.endswith(suffix):
                n, changed = n[: -len(suffix)], True
        if n.startswith("meta-"):
            n, changed = n[len("meta-") :], True
    return n


def singular(kind: str) -> str:
    """'gpus' → 'gpu', 'switches' → 'switch', for error messages."""
    if kind.endswith(("ches", "shes", "sses", "xes")):
        return kind[:-2]
    return kind[:-1] if kind.endswith("s") else kind


def read_yaml(path: Path) -> Any:
    """A user's YAML file through the bounded reader (size, UTF-8, depth, aliases): one-line errors."""
    return load_yaml_file(path)


def read_json(path: Path) -> Any:
    """A user's JSON file (a model config.json) through the bounded reader."""
    return load_json_file(path)


def is_amount(v: Any) -> bool:
    """A catalog quantity: a number >= 0, not a bool (which YAML would let pass as 0 or 1) and not text."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def is_share(v: Any) -> bool:
    """A catalog fraction of a peak or of a time: a number in (0, 1], not a bool and not text."""
    return is_amount(v) and 0 < v <= 1


def is_count(v: Any) -> bool:
    """A catalog count (slots, a block size, GEMMs at once): a whole number >= 1, not a bool."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _tables_of(doc: Any, path: Path) -> dict[str, dict[str, dict]]:
    """Split one catalog document into {kind: {key: entry}}, applying file-level defaults."""
    if not isinstance(doc, dict):
        raise AiinfraError(f"catalog file {path} must be a mapping, got {type(doc).__name__}")
    if "kind" in doc:
        defaults = {k: doc[k] for k in ("observed", "source") if k in doc}
        entries = doc.get("entries") or {}
        if not isinstance(entries, dict):
            raise AiinfraError(f"catalog file {path}: 'entries' must be a mapping of name to entry")
        out = {}
        for key, entry in entries.items():
            if not isinstance(entry, dict):
                raise AiinfraError(f"catalog file {path}: entry '{key}' must be a mapping")
            out[normalize_name(str(key))] = {**defaults, **entry}
        return {str(doc["kind"]): out}
    tables: dict[str, dict[str, dict]] = {}
    for kind, entries in doc.items():
        if not isinstance(entries, dict):
            raise AiinfraError(f"catalog file {path}: '{kind}' must be a mapping of name to entry")
        # the single-table form's keys inside a multi-table file mean the two forms were mixed: refused, not read
        # as entries named "entries"
        mixed = sorted(k for k in entries if k in ("kind", "entries", "observed"))
        if mixed:
            raise AiinfraError(f"catalog file {path}: '{kind}' holds {', '.join(map(repr, mixed))}; write either "
                               f"'kind: {kind}' with 'entries:', or '{kind}:' mapping each name to its entry")
        bad = next((k for k, v in entries.items() if v is not None and not isinstance(v, dict)), None)
        if bad is not None:
            raise AiinfraError(f"catalog file {path}: {kind} entry '{bad}' must be a mapping of fields")
        tables[str(kind)] = {normalize_name(str(k)): dict(v or {}) for k, v in entries.items()}
    return tables


def _shape(v: Any) -> str:
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, list) and v and all(isinstance(p, list) and len(p) == 2 and all(is_amount(x) for x in p) for p in v):
        return "a curve"  # [[x, y], ...]: the efficiency-by-size tables
    if isinstance(v, (int, float)):  # no shipped number is negative: a user's -5 is a typo or a trap, not a setting
        return "a number >= 0" if v >= 0 else "a negative number"
    return ("text" if isinstance(v, (str, date)) else "a map" if isinstance(v, dict) else
            "a list" if isinstance(v, list) else "empty" if v is None else type(v).__name__)


# shapes a reader takes in place of another: a constant where a curve is given, a curve where a constant is, and
# a number where text is (YAML reads an unquoted version such as 25.09 as a number)
_ALSO = {"a number >= 0": ("a curve", "text"), "a negative number": ("text",), "a curve": ("a number >= 0",)}


def _fits(value: Any, allowed: set[str]) -> bool:
    shape = _shape(value)
    return shape in allowed or any(a in allowed for a in _ALSO.get(shape, ()))


def _fields(tables: dict[str, dict[str, dict]]) -> Iterator[tuple[str, tuple[str, ...], Any]]:
    """(entry key, (kind, field, subfield, …), value) for every field of every entry, nested maps included."""

    def walk(key: str, path: tuple[str, ...], entry: dict) -> Iterator[tuple[str, tuple[str, ...], Any]]:
        for field, value in entry.items():
            at = path + (str(field),)
            yield key, at, value
            if isinstance(value, dict):
                yield from walk(key, at, value)

    for kind, entries in tables.items():
        for key, entry in entries.items():
            yield from walk(key, (kind,), entry)


def _shapes(tables: dict[str, dict[str, dict]]) -> dict[tuple[str, ...], set[str]]:
    """What each field holds across the shipped entries of its table ((kind, field, subfield, …) → shapes), so a user
    file that puts a number where every shipped entry has a map is refused here, in one line, and not halfway through
    a command that reads it (or, worse, read as something else)."""
    out: dict[tuple[str, ...], set[str]] = {}
    for _, at, value in _fields(tables):
        out.setdefault(at, set()).add(_shape(value))
    return out


def _check_shapes(tables: dict[str, dict[str, dict]], shapes: dict[tuple[str, ...], set[str]], path: Path) -> None:
    """Refuse a user entry whose field holds another shape than every shipped entry's (a map, a list, a number, a
    negative number, text, true/false); a field no shipped entry has is the reader's to judge."""
    for key, at, value in _fields(tables):
        allowed = shapes.get(at)
        if allowed and not _fits(value, allowed):
            raise AiinfraError(f"catalog file {path}: {singular(at[0])} '{key}' field '{'.'.join(at[1:])}' must be "
                               f"{' or '.join(sorted(allowed))}, as in the shipped catalog; got {value!r}"[:400])


def _closest(name: str, pool) -> str:
    """'; closest: a, b' for a misspelt name, or '' where nothing is close."""
    hint = closest(name, pool)
    return f"; closest: {', '.join(hint)}" if hint else ""


def _check_tables(tables: dict[str, dict[str, dict]], shipped: dict[str, dict[str, dict]], path: Path) -> None:
    """Refuse a table no command reads ('gpu:' for 'gpus:', 'calibration:' for 'calibrations:'): its entries would
    be merged into a table of their own and never looked at, so the user's setting would be dropped silently."""
    for kind in tables:
        if kind not in shipped:
            known = _closest(kind, shipped) or f"; the tables are {', '.join(sorted(shipped))}"
            raise AiinfraError(f"catalog file {path}: no table '{kind}' is read{known}")


# Fields a reader takes that no shipped entry happens to carry (a price's own 1-year figure in place of the
# provider's discount, an XID text under another catalog's name); with the shipped entries' own fields they are every
# field a command reads from an entry.
_READ_ALSO: dict[str, tuple[str, ...]] = {
    "prices": ("reserved_1y", "reserved_3y", "usd_per_gpu_hour", "on_demand_monthly", "spot_monthly",
               "on_demand_note", "reserved_1y_note", "reserved_3y_note", "spot_note"),
    "xid": ("alert_class", "meaning", "description", "name", "immediate_action", "investigatory_action", "investigate"),
}
# the same inside an entry's maps, by path: an engine's per-GPU efficiency may carry its own KV-cache bandwidth share
# and a flat prefill overhead (perf.inference _ENGINE_EFFICIENCY) where no shipped GPU needs them
_READ_ALSO_IN: dict[tuple[str, ...], tuple[str, ...]] = {
    ("engines", "efficiency", "*"): ("kv_bw_fraction", "prefill_overhead_ms")}
# fields that document an entry and are never a setting, accepted in every table
_DOCUMENTATION = frozenset({"observed", "source", "aliases", "note", "notes"})
# tables whose reader is a pydantic spec that refuses an unknown field itself, naming it (a model's entry is not:
# only its config is read into a spec, so a misspelt `confg` is caught here)
_OWN_CHECK = frozenset({"gpus"})


def _names_keyed_by(shipped: dict[str, dict[str, dict]], user: dict[str, dict[str, dict]]) -> dict[str, set[str]]:
    """The names a map inside an entry may be keyed by: GPU keys (an engine's efficiency per GPU) and architectures
    (a framework efficiency per architecture), the user file's own GPUs included."""
    gpus = {**shipped.get("gpus", {}), **user.get("gpus", {})}
    archs = {str(e.get("architecture", "")).lower() for e in gpus.values()} - {""}
    return {"GPU": set(gpus), "architecture": archs | {arch_family(a) for a in archs}}


def known_fields(kind: str, shipped: dict[str, dict[str, dict]]) -> set[str]:
    """Every field a command reads from an entry of table `kind`: its shipped entries' own, the ones readers take
    beyond them (_READ_ALSO), and the documentation fields."""
    return {f for e in shipped[kind].values() for f in e} | set(_READ_ALSO.get(kind, ())) | _DOCUMENTATION


# Maps inside an entry whose keys are names a user may add, not fields a reader knows: a feature gate, device type or
# sharing strategy of a newer DRA driver, a Kubernetes release, a MIG class of a new GPU, a switch's link rate, an
# activation function, a stack's MoE dispatcher (its permute bytes are checked against the stack's dispatchers by
# perf.stacks). Their keys are not checked against the shipped names; the records they hold are. A model's config is
# an HF config.json, which its own parser reads, and is not walked at all.
_NAMED_MAPS = frozenset({("dra_driver", "feature_gates"), ("dra_driver", "required_gates"),
                         ("dra_driver", "device_classes"), ("dra_driver", "attributes"), ("dra_driver", "capacities"),
                         ("dra_driver", "sharing_strategies"), ("dra_driver", "resource_api"), ("mig_layouts", "classes"),
                         ("switches", "speeds"), ("stacks", "moe_activation_syncs"), ("stacks", "moe_dispatchers"),
                         ("stacks", "moe_permute")})
_UNWALKED = frozenset({("models", "config")})
# the form a named map's keys must take, where a reader parses them (sharing.dra sorts releases as numbers)
_KEY_FORMATS = {("dra_driver", "resource_api"): (r"\d+\.\d+", "a Kubernetes release in quotes, such as '1.37' (YAML "
                                                                "reads an unquoted 1.30 as the number 1.3)")}


def _vocabulary(path: tuple[str, ...]) -> set[str] | None:
    """The names a reader builds itself for a map at `path`, or None: a kernel table's GEMM plateau is read by linear
    dtype and by dtype_<route> for the torch._scaled_mm route (perf.compute KernelTable.plateau), its flash-attention
    curves by bf16 and bf16_<route> only (kernel_table drops any other key, so an `fp8` curve would go unread)."""
    if path[0] != "kernels" or len(path) != 2:
        return None
    if path[1] == "gemm_plateau":
        return set(LINEAR_DTYPES) | {f"{d}_{r}" for d in LINEAR_DTYPES for r in FP8_GEMM_ROUTES if r}
    if path[1].startswith("attention_"):
        return {"bf16"} | {f"bf16_{r}" for r in ATTENTION_KERNELS}
    return None


def _map_keys(path: tuple[str, ...], keys: set[str], names: dict[str, set[str]]) -> tuple[str, set[str] | None]:
    """How the keys of a map at `path` are judged, given the keys its shipped maps use: ('names', None) free names,
    (a vocabulary's name, its names), or ('field', None) a record whose keys are the shipped ones."""
    if path in _NAMED_MAPS:
        return "names", None
    vocab = _vocabulary(path)
    if vocab is not None:
        return "dtype or kernel route", vocab
    by = next((w for w, pool in names.items() if keys and keys <= pool), None)
    return (by, names[by]) if by else ("field", None)


def _shipped_maps(shipped: dict[str, dict[str, dict]], names: dict[str, set[str]]) -> dict[tuple[str, ...], set[str]]:
    """The keys the shipped entries use in each nested map, by path (kind, field, subfield, …); below a map keyed by
    names (GPUs, gates, releases) the paths merge at '*', so every GPU's record is checked against them all."""
    out: dict[tuple[str, ...], set[str]] = {}

    def walk(path: tuple[str, ...], maps: list[dict]) -> None:
        if path in _UNWALKED or not maps:
            return
        keys = {str(k) for m in maps for k in m}
        out[path] = keys
        how, _ = _map_keys(path, keys, names)
        if how != "field":
            walk(path + ("*",), [v for m in maps for v in m.values() if isinstance(v, dict)])
            return
        for k in keys:
            walk(path + (k,), [m[k] for m in maps if isinstance(m.get(k), dict)])

    for kind, entries in shipped.items():
        if kind in _OWN_CHECK:
            continue
        for field in {f for e in entries.values() for f in e}:
            walk((kind, str(field)), [e[field] for e in entries.values() if isinstance(e.get(field), dict)])
    return out


def _check_map(where: str, path: tuple[str, ...], value: dict, pools: dict[tuple[str, ...], set[str]],
               names: dict[str, set[str]], path_text: str) -> None:
    """Refuse a key of a nested map that no reader takes (`gemm_plateau: {fp8_scaledmm: …}`, an engine's
    `efficiency: {h100-sxm: {gemm_scal: …}}`): a user map replaces the shipped one whole, so a misspelt key would
    not only go unread, the reader would fall back to a default for the key the user meant."""
    shipped = pools.get(path)
    if shipped is None:  # a map no shipped entry has here (or a model's config, never walked): the reader judges it
        return
    how, pool = _map_keys(path, shipped, names)
    for k in value:
        key = str(k)
        if how == "names":
            fmt = _KEY_FORMATS.get(path)
            if fmt and not (isinstance(k, str) and re.fullmatch(fmt[0], k)):
                raise AiinfraError(f"{where} field '{path_text}' is keyed by {fmt[1]}; got {k!r}")
        elif how == "field":
            known = shipped | _DOCUMENTATION | set(_READ_ALSO_IN.get(path, ()))
            if key not in known:
                raise AiinfraError(f"{where} field '{path_text}' has key '{key}', which no command reads"
                                   f"{_closest(key, known)}")
        elif pool is not None and key not in pool:
            hint = _closest(key, pool) or (f"; it takes {', '.join(sorted(pool))}" if len(pool) <= 12 else "")
            raise AiinfraError(f"{where} field '{path_text}' is keyed by {how}, and '{key}' is none{hint}")
        if isinstance(value[k], dict):
            below = path + (key if how == "field" else "*",)
            _check_map(where, below, value[k], pools, names, f"{path_text}.{key}")


def _check_fields(tables: dict[str, dict[str, dict]], shipped: dict[str, dict[str, dict]], path: Path) -> None:
    """Refuse an entry field no command reads (a misspelt `peak_fracton`): merged as given it would change nothing,
    and the user would believe it had. The entry's own fields are checked, and the keys of every map inside it: a
    record's against the keys the shipped entries use there, a map keyed by GPU or by architecture
    (`framework_efficiency_by_architecture: {hoper: …}`) against those names, a kernel table's per-dtype maps
    against the dtypes and routes its reader builds; maps keyed by names a user may add are left free (_NAMED_MAPS)."""
    names = _names_keyed_by(shipped, tables)
    pools = _shipped_maps(shipped, names)
    for kind, entries in tables.items():
        if kind in _OWN_CHECK:
            continue
        known = known_fields(kind, shipped)
        for key, entry in entries.items():
            where = f"catalog file {path}: {singular(kind)} '{key}'"
            for field, value in entry.items():
                if field not in known:
                    raise AiinfraError(f"{where} has field '{field}', which no command reads"
                                       f"{_closest(str(field), known)}")
                if isinstance(value, dict):
                    _check_map(where, (kind, str(field)), value, pools, names, str(field))


class Catalog:
    """All catalog tables, built from the embedded data plus optional user files."""

    def __init__(self, user_files: Iterable[Path | str] = ()):
        self.tables: dict[str, dict[str, dict]] = {}
        for path in sorted(DATA_DIR.glob("*.yaml")):
            self._merge(_tables_of(load_trusted_yaml(path), path))
        self._add_model_configs(DATA_DIR / "models")
        self.user_files = [Path(p) for p in user_files]
        shapes = _shapes(self.tables) if self.user_files else {}
        for path in self.user_files:
            tables = _tables_of(read_yaml(path), path)
            _check_tables(tables, self.tables, path)
            _check_fields(tables, self.tables, path)
            _check_shapes(tables, shapes, path)
            self._merge(tables, base_dir=path.parent)

    def _merge(self, tables: dict[str, dict[str, dict]], base_dir: Path | None = None) -> None:
        for kind, entries in tables.items():
            table = self.tables.setdefault(kind, {})
            for key, entry in entries.items():
                if base_dir is not None and kind == "models" and "path" in entry:
                    entry = {**entry, "path": str((base_dir / entry["path"]).resolve())}
                table[key] = {**table.get(key, {}), **entry}

    def _add_model_configs(self, folder: Path) -> None:
        """Each models/<key>.json is an HF config.json; its source sits in models/sources.yaml."""
        table = self.tables.setdefault("models", {})
        for path in sorted(folder.glob("*.json")):
            key = normalize_name(path.stem)
            table[key] = {**{"path": str(path)}, **table.get(key, {})}

    def names(self, kind: str) -> list[str]:
        return sorted(self.tables.get(kind, {}))

    def table(self, kind: str) -> dict[str, dict]:
        return self.tables.get(kind, {})

    def resolve(self, kind: str, name: str) -> str:
        """The catalog key for `name` (exact key, alias, or a common spelling), or a NotFoundError."""
        table = self.tables.get(kind, {})
        n = normalize_name(name)
        for candidate in (n, _strip_noise(n)):
            if candidate in table:
                return candidate
            for key, entry in table.items():
                aliases = [normalize_name(a) for a in entry.get("aliases", [])]
                if candidate in aliases:
                    return key
        raise not_found(singular(kind), name, table)

    def entry(self, kind: str, name: str) -> tuple[str, dict]:
        key = self.resolve(kind, name)
        return key, self.tables[kind][key]


def spec_from_entry(cls: type[T], kind: str, key: str, entry: dict) -> T:
    """Validate one catalog entry into its pydantic spec; a bad entry names its field in one line."""
    try:
        return cls(key=key, **entry)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise AiinfraError(f"catalog {singular(kind)} '{key}' is invalid at '{where}': {err['msg']}") from None


_user_files: tuple[str, ...] = ()


def set_user_catalogs(paths: Iterable[Path | str]) -> None:
    """Make `default_catalog()` include user files (the CLI's --catalog option)."""
    global _user_files
    _user_files = tuple(str(p) for p in paths)


def default_catalog() -> Catalog:
    return _catalog_for(_user_files)


@lru_cache(maxsize=8)
def _catalog_for(user_files: tuple[str, ...]) -> Catalog:
    return Catalog(user_files)

"""Reading and writing user files with bounded cost: the one path every file option goes through.

Every file a user names (a model config.json, `--catalog`, `--workloads`, `--demand`, a counters CSV,
a manifest to lint, a web-config) and every YAML/JSON text the web receives is read here, so the
same limits hold everywhere and each failure is one line (`AiinfraError`, exit 2 / HTTP 422):

- size: files over `max_bytes` are refused before they are read;
- text: UTF-8 required, NUL bytes mean a binary file;
- YAML: checked on the event stream (iterative, so it cannot recurse) before anything is built:
  nesting depth, number of aliases, and the size the document would have with every alias expanded
  (a "billion laughs" chain of 473 bytes expands to 10⁹ nodes; libraries downstream, such as a
  schema validator's error text, do expand it);
- JSON: depth-checked before parsing; NaN/Infinity and numbers that overflow a float are refused;
- writing: to a temporary file in the target folder, then renamed, with the usual file mode.

Catalog files shipped inside the package are trusted and load with libyaml's C loader when present.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import yaml

from aiinfra.errors import AiinfraError

MiB = 1 << 20
MAX_FILE_BYTES = 16 * MiB  # the largest config, catalog, workload, demand or manifest file we read
MAX_DEPTH = 64  # real configs nest < 15 levels; Python's recursion limit is 1000
MAX_ALIASES = 1000  # Kubernetes/Helm files use a handful of anchors at most
MAX_EXPANDED_NODES = 2_000_000  # nodes after alias expansion (a 16 MiB file has fewer than this)

SafeLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~8x faster when present


class UnsafeInputError(AiinfraError):
    """A file or text that is too large, binary, not UTF-8, too deep or an alias bomb."""


def _name(source: str | os.PathLike[str]) -> str:
    s = str(source)
    return s if len(s) <= 120 else s[:117] + "…"


def read_bytes(path: str | os.PathLike[str], *, max_bytes: int = MAX_FILE_BYTES, what: str = "file") -> bytes:
    """The bytes of a regular file, refused with one line when missing, unreadable or too large."""
    p = Path(path)
    name = _name(p)
    try:
        st = p.stat()
        if stat.S_ISDIR(st.st_mode):
            raise UnsafeInputError(f"{what} {name} is a directory, not a file")
        if stat.S_ISREG(st.st_mode) and st.st_size > max_bytes:
            raise UnsafeInputError(f"{what} {name} is {st.st_size:,} bytes; the limit is {max_bytes:,} bytes")
        with p.open("rb") as f:
            data = f.read(max_bytes + 1)  # a FIFO or /dev/zero has no size: read one byte past the cap
    except UnsafeInputError:
        raise
    except FileNotFoundError:
        raise UnsafeInputError(f"{what} {name} does not exist") from None
    except OSError as e:
        raise UnsafeInputError(f"cannot read {what} {name}: {e.strerror or e}") from None
    except ValueError as e:  # embedded NUL in the path
        raise UnsafeInputError(f"cannot read {what} {name}: {e}") from None
    if len(data) > max_bytes:
        raise UnsafeInputError(f"{what} {name} is larger than the limit of {max_bytes:,} bytes")
    return data


def decode_text(data: bytes, source: str = "input") -> str:
    """UTF-8 text (a BOM is dropped); binary data and other encodings are refused in one line."""
    if b"\x00" in data:
        raise UnsafeInputError(f"{_name(source)} is binary (it contains NUL bytes); expected UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UnsafeInputError(f"{_name(source)} is not UTF-8 text (invalid byte at offset {e.start})") from None


def read_text(path: str | os.PathLike[str], *, max_bytes: int = MAX_FILE_BYTES, what: str = "file") -> str:
    return decode_text(read_bytes(path, max_bytes=max_bytes, what=what), str(path))


# --- YAML -----------------------------------------------------------------------------------------


def _yaml_error(e: yaml.YAMLError, source: str) -> UnsafeInputError:
    mark = getattr(e, "problem_mark", None)
    where = f"{_name(source)}:{mark.line + 1}" if mark else _name(source)
    problem = getattr(e, "problem", None) or (str(e).splitlines() or ["syntax error"])[0]
    return UnsafeInputError(f"YAML does not parse at {where}: {problem}")


def check_yaml(text: str, source: str = "input", *, max_depth: int = MAX_DEPTH, max_aliases: int = MAX_ALIASES,
               max_nodes: int = MAX_EXPANDED_NODES) -> None:
    """Walk the YAML event stream once and refuse deep nesting, many aliases, or a document whose
    alias-expanded size is over `max_nodes`. Nothing is constructed, nothing recurses."""
    expanded: dict[str, int] = {}  # anchor -> expanded size of the node it names
    stack: list[list[Any]] = []  # open collections: [anchor, size so far]
    aliases = 0
    total = 0

    def close(anchor: str | None, size: int) -> None:
        nonlocal total
        if anchor:
            expanded[anchor] = size
        if stack:
            stack[-1][1] += size
        else:
            total += size
        if total > max_nodes or (stack and stack[-1][1] > max_nodes):
            raise UnsafeInputError(
                f"{_name(source)} expands to more than {max_nodes:,} YAML nodes through its aliases; refused")

    try:
        for ev in yaml.parse(text, Loader=SafeLoader):
            if isinstance(ev, yaml.CollectionStartEvent):
                stack.append([ev.anchor, 1])
                if len(stack) > max_depth:
                    raise UnsafeInputError(f"{_name(source)} nests deeper than {max_depth} levels; refused")
            elif isinstance(ev, yaml.CollectionEndEvent):
                anchor, size = stack.pop()
                close(anchor, size)
            elif isinstance(ev, yaml.ScalarEvent):
                close(ev.anchor, 1)
            elif isinstance(ev, yaml.AliasEvent):
                aliases += 1
                if aliases > max_aliases:
                    raise UnsafeInputError(f"{_name(source)} uses more than {max_aliases} YAML aliases; refused")
                close(None, expanded.get(ev.anchor, 1))
            elif isinstance(ev, yaml.DocumentEndEvent):
                total = 0 if total <= max_nodes else total
    except yaml.YAMLError as e:
        # PyYAML ≥ 6.0.4 (libyaml) refuses deep flow nesting in its scanner, before the event that would trip
        # the check above: the same refusal, said the same way whichever PyYAML is installed
        if "nesting depth" in str(e):
            raise UnsafeInputError(f"{_name(source)} nests deeper than {max_depth} levels; refused") from None
        raise _yaml_error(e, source) from None


def load_yaml_text(text: str, source: str = "input", *, all_documents: bool = False) -> Any:
    """safe_load (or safe_load_all → list) after `check_yaml`; errors name the source and line."""
    check_yaml(text, source)
    try:
        if all_documents:
            return list(yaml.load_all(text, Loader=SafeLoader))
        return yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError as e:
        raise _yaml_error(e, source) from None
    except (RecursionError, MemoryError):
        raise UnsafeInputError(f"{_name(source)} is too deeply nested or too large to load") from None
    except (ValueError, OverflowError) as e:  # e.g. a timestamp or int out of range
        raise UnsafeInputError(f"{_name(source)}: a value cannot be read: {e}") from None


def load_yaml_file(path: str | os.PathLike[str], *, all_documents: bool = False, what: str = "YAML file",
                   max_bytes: int = MAX_FILE_BYTES) -> Any:
    return load_yaml_text(read_text(path, max_bytes=max_bytes, what=what), str(path), all_documents=all_documents)


def load_trusted_yaml(path: str | os.PathLike[str]) -> Any:
    """Package data (the shipped catalog): no limits, the fastest loader available."""
    with open(path, "rb") as f:
        return yaml.load(f, Loader=SafeLoader)


# --- JSON -----------------------------------------------------------------------------------------


def _json_depth_ok(text: str, max_depth: int) -> bool:
    """True when brackets outside strings never nest deeper than max_depth (one linear scan)."""
    depth = 0
    in_str = escape = False
    for ch in text:
        if in_str:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _finite_float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise ValueError(f"number {s[:40]} is out of range")
    return v


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json_text(text: str, source: str = "input", *, max_depth: int = MAX_DEPTH) -> Any:
    if not _json_depth_ok(text, max_depth):
        raise UnsafeInputError(f"{_name(source)} nests deeper than {max_depth} levels; refused")
    try:
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise UnsafeInputError(f"JSON does not parse at {_name(source)}:{e.lineno}: {e.msg}") from None
    except (ValueError, RecursionError, MemoryError) as e:
        raise UnsafeInputError(f"{_name(source)}: {str(e).splitlines()[0][:200]}") from None


def load_json_file(path: str | os.PathLike[str], *, what: str = "JSON file", max_bytes: int = MAX_FILE_BYTES) -> Any:
    return load_json_text(read_text(path, max_bytes=max_bytes, what=what), str(path))


def load_data_file(path: str | os.PathLike[str], *, what: str = "file", max_bytes: int = MAX_FILE_BYTES) -> Any:
    """A YAML or JSON file, chosen by suffix (.json → JSON, anything else → YAML, a superset)."""
    if str(path).lower().endswith(".json"):
        return load_json_file(path, what=what, max_bytes=max_bytes)
    return load_yaml_file(path, what=what, max_bytes=max_bytes)


def expect_mapping(doc: Any, source: str, what: str = "a mapping") -> dict[str, Any]:
    """Wrong-shape input (a list, a scalar, an empty file) gets one line instead of an AttributeError."""
    if not isinstance(doc, dict):
        got = "an empty document" if doc is None else f"a {type(doc).__name__}"
        raise UnsafeInputError(f"{_name(source)} holds {got}; expected {what}")
    return doc


# --- writing --------------------------------------------------------------------------------------


def write_atomic(path: str | os.PathLike[str], data: str | bytes, *, mode: int = 0o644, what: str = "file") -> Path:
    """Write through a temporary file in the same folder and rename it over `path`, so a reader never
    sees half a file. `mode` is the usual 0644 unless the content is secret. OS errors are one line."""
    target = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    if target.exists() and not target.is_file():
        # /dev/null, /dev/stdout, a FIFO: renaming over one would replace the device itself (as root, /dev/null
        # becomes a regular file for the whole machine), so the bytes go to it as to a stream.
        return _write_stream(target, raw, what)
    if target.is_symlink():
        target = target.resolve()  # a link to a file: replace the file it names, keep the link
    tmp = None
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise UnsafeInputError(f"cannot write {what} {_name(target)}: folder {_name(folder)} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:60]}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        tmp = None
    except OSError as e:
        raise UnsafeInputError(f"cannot write {what} {_name(target)}: {e.strerror or e}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return target


def _write_stream(target: Path, raw: bytes, what: str) -> Path:
    if target.is_dir():
        raise UnsafeInputError(f"cannot write {what} {_name(target)}: it is a folder")
    try:
        with open(target, "wb") as f:
            f.write(raw)
    except OSError as e:
        raise UnsafeInputError(f"cannot write {what} {_name(target)}: {e.strerror or e}") from None
    return target

"""Exact weight bytes of a local checkpoint from its safetensors headers, without loading a tensor.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}), then the tensor bytes.
A sharded checkpoint lists its shards in model.safetensors.index.json ({"metadata": {"total_size"},
"weight_map": {tensor: file}}). Real checkpoints mix dtypes (fp8 weights with bf16 embeddings and fp32
scales, MXFP4 experts packed in uint8 blocks), so the bytes on disk are the truth the config cannot give.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

from aiinfra.errors import AiinfraError

ITEM_BYTES = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
    "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1,
}
MAX_HEADER = 100 * 2**20  # the safetensors reference implementation refuses headers above 100 MB
INDEX = "model.safetensors.index.json"


class CheckpointError(AiinfraError):
    """A checkpoint folder, index or safetensors header that cannot be read as one."""


@dataclass
class CheckpointWeights:
    path: str
    total_bytes: int
    tensors: int
    params: int
    bytes_by_dtype: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    from_headers: bool = True  # False when only the index's metadata.total_size was available

    def summary(self) -> dict:
        return {"path": self.path, "total_bytes": self.total_bytes, "tensors": self.tensors, "params": self.params,
                "bytes_by_dtype": dict(sorted(self.bytes_by_dtype.items())), "files": len(self.files),
                "from_headers": self.from_headers}


def read_header(path: Path) -> dict:
    """The JSON header of one .safetensors file (reads 8 + N bytes only)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: too short to be a safetensors file (no 8-byte header length)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or n + 8 > size:
                raise CheckpointError(f"{path}: header length {n} does not fit the file ({size} bytes); not a safetensors file")
            raw = f.read(n)
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: the safetensors header is not UTF-8 JSON") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header must be a JSON object of tensors")
    data_len = size - 8 - n
    for name, t in header.items():
        if name == "__metadata__":
            continue
        _check_tensor(path, name, t, data_len)
    return header


def _check_tensor(path: Path, name: str, t: object, data_len: int) -> None:
    if not isinstance(t, dict) or not {"dtype", "shape", "data_offsets"} <= set(t):
        raise CheckpointError(f"{path}: tensor '{name}' needs dtype, shape and data_offsets")
    if t["dtype"] not in ITEM_BYTES:
        raise CheckpointError(f"{path}: tensor '{name}' has unknown dtype {t['dtype']!r}")
    shape, off = t["shape"], t["data_offsets"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise CheckpointError(f"{path}: tensor '{name}' shape must be a list of non-negative integers")
    if (not isinstance(off, list) or len(off) != 2 or not all(isinstance(o, int) and not isinstance(o, bool) for o in off)
            or not 0 <= off[0] <= off[1] <= data_len):
        raise CheckpointError(f"{path}: tensor '{name}' data_offsets {off!r} fall outside the file's data")
    if off[1] - off[0] != math.prod(shape) * ITEM_BYTES[t["dtype"]]:
        raise CheckpointError(f"{path}: tensor '{name}' spans {off[1] - off[0]} bytes, its shape and dtype need "
                              f"{math.prod(shape) * ITEM_BYTES[t['dtype']]}")


def _read_index(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: not a JSON safetensors index") from None
    wm = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(wm, dict) or not wm or not all(isinstance(v, str) for v in wm.values()):
        raise CheckpointError(f"{path}: a safetensors index needs a non-empty weight_map of tensor → file")
    return doc


def checkpoint_weights(path_str: str) -> CheckpointWeights:
    """Weight bytes of a checkpoint folder, its model.safetensors.index.json, or one .safetensors file."""
    path = Path(path_str).expanduser()
    if path.is_dir():
        index = path / INDEX
        if index.is_file():
            return _from_index(index)
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{path}: no {INDEX} and no .safetensors files in the folder")
        return _from_files(path, files)
    if path.is_file() and path.name.endswith(".index.json"):
        return _from_index(path)
    if path.is_file() and path.suffix == ".safetensors":
        return _from_files(path, [path])
    raise CheckpointError(f"checkpoint {path_str} is not a folder, a safetensors index or a .safetensors file")


def _from_index(index: Path) -> CheckpointWeights:
    doc = _read_index(index)
    shards = sorted(set(doc["weight_map"].values()))
    files = [index.parent / s for s in shards]
    for s in shards:
        if Path(s).is_absolute() or ".." in Path(s).parts:
            raise CheckpointError(f"{index}: shard name {s!r} must be a file next to the index")
    if all(f.is_file() for f in files):
        cw = _from_files(index.parent, files)
        missing = set(doc["weight_map"]) - _names(files)
        if missing:
            raise CheckpointError(f"{index}: tensor '{sorted(missing)[0]}' is mapped to a shard that does not hold it")
        return cw
    total = (doc.get("metadata") or {}).get("total_size") if isinstance(doc.get("metadata"), dict) else None
    if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
        absent = next(f for f in files if not f.is_file())
        raise CheckpointError(f"{index}: shard {absent.name} is missing and the index has no metadata.total_size")
    return CheckpointWeights(str(index), total, len(doc["weight_map"]), 0, {}, shards, from_headers=False)


def _names(files: list[Path]) -> set[str]:
    out: set[str] = set()
    for f in files:
        out |= {k for k in read_header(f) if k != "__metadata__"}
    return out


def _from_files(where: Path, files: list[Path]) -> CheckpointWeights:
    total = params = tensors = 0
    by_dtype: dict[str, int] = {}
    for f in files:
        for name, t in read_header(f).items():
            if name == "__metadata__":
                continue
            n = t["data_offsets"][1] - t["data_offsets"][0]
            total += n
            tensors += 1
            params += math.prod(t["shape"])
            by_dtype[t["dtype"]] = by_dtype.get(t["dtype"], 0) + n
    return CheckpointWeights(str(where), total, tensors, params, by_dtype, [f.name for f in files])

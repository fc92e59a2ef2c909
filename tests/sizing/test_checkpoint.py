"""Exact weights from safetensors headers (format: 8-byte LE header length, JSON header, tensor bytes).
The test files are written here byte by byte; no tensor is ever loaded."""

import json
import struct

import pytest

from aiinfra.sizing.checkpoint import CheckpointError, checkpoint_weights

ITEM = {"BF16": 2, "F32": 4, "F8_E4M3": 1, "U8": 1}


def write_st(path, tensors, metadata=None):
    header, off = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = ITEM[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * off)
    return off


def test_mixed_precision_sharded_checkpoint(tmp_path):
    """An FP8 checkpoint keeps embeddings in bf16 and stores fp32 block scales beside fp8 weights; the bytes
    come from each tensor's dtype × shape, across the shards the index names."""
    a = write_st(tmp_path / "model-00001-of-00002.safetensors",
                 {"model.embed_tokens.weight": ("BF16", [1000, 64]), "model.layers.0.q.weight": ("F8_E4M3", [64, 64])},
                 {"format": "pt"})
    b = write_st(tmp_path / "model-00002-of-00002.safetensors",
                 {"model.layers.0.q.weight_scale_inv": ("F32", [1, 1]), "lm_head.weight": ("BF16", [1000, 64])})
    index = {"metadata": {"total_size": a + b}, "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "model.layers.0.q.weight": "model-00001-of-00002.safetensors",
        "model.layers.0.q.weight_scale_inv": "model-00002-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    cw = checkpoint_weights(str(tmp_path))
    assert cw.total_bytes == 2 * 1000 * 64 * 2 + 64 * 64 + 4 == a + b
    assert cw.bytes_by_dtype == {"BF16": 256000, "F8_E4M3": 4096, "F32": 4}
    assert cw.tensors == 4 and cw.params == 2 * 64000 + 4096 + 1 and cw.from_headers
    assert checkpoint_weights(str(tmp_path / "model.safetensors.index.json")).total_bytes == a + b


def test_index_alone_uses_total_size(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 123456}, "weight_map": {"w": "model-00001-of-00009.safetensors"}}))
    cw = checkpoint_weights(str(tmp_path))
    assert cw.total_bytes == 123456 and not cw.from_headers


@pytest.mark.parametrize("content,msg", [
    (b"\x01\x02", "too short"),
    (struct.pack("<Q", 10**9) + b"{}", "does not fit the file"),
    (struct.pack("<Q", 4) + b"\xff\xfe\x00\x01", "not UTF-8 JSON"),
    (struct.pack("<Q", 2) + b"[]", "JSON object"),
    (struct.pack("<Q", 44) + b'{"w": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 1]}}'[:44], "not UTF-8 JSON"),
])
def test_malformed_headers_are_one_sentence(tmp_path, content, msg):
    p = tmp_path / "model.safetensors"
    p.write_bytes(content)
    with pytest.raises(CheckpointError, match=msg):
        checkpoint_weights(str(p))


def test_inconsistent_tensor_and_bad_index(tmp_path):
    header = json.dumps({"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 6]}}).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    with pytest.raises(CheckpointError, match="spans 6 bytes"):
        checkpoint_weights(str(tmp_path / "model.safetensors"))
    bad = tmp_path / "idx"
    bad.mkdir()
    (bad / "model.safetensors.index.json").write_text('{"weight_map": {}}')
    with pytest.raises(CheckpointError, match="non-empty weight_map"):
        checkpoint_weights(str(bad))
    (bad / "model.safetensors.index.json").write_text('{"weight_map": {"w": "../x.safetensors"}}')
    with pytest.raises(CheckpointError):
        checkpoint_weights(str(bad))


def test_cli_uses_checkpoint_bytes_and_rejects_bad_index(cli, tmp_path):
    """`size infer --checkpoint DIR` uses the headers' bytes; a malformed index is one line and exit 2."""
    n = write_st(tmp_path / "model.safetensors", {"w": ("BF16", [1000, 1000])})
    r = cli("size", "infer", "llama-3.1-8b", "--checkpoint", str(tmp_path), "--format", "json")
    assert r.code == 0
    f = r.json()["facts"]
    assert f["weights"]["value"] == n and f["checkpoint"]["total_bytes"] == n
    (tmp_path / "model.safetensors.index.json").write_text("{not json")
    r = cli("size", "infer", "llama-3.1-8b", "--checkpoint", str(tmp_path))
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err

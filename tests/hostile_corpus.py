"""A corpus of hostile input files, written on demand (imported by the fuzz tests and benchmarks/hostile.py).

Each file is something a careless user or an attacker could hand to a file option: an alias bomb,
deep nesting, numbers that overflow, binary data, another encoding, truncated YAML/JSON/CSV, an
empty file, a directory, a FIFO-less special file. Every file option must answer each with one line
and exit code 2, in bounded time and memory.
"""

from __future__ import annotations

from pathlib import Path

ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join('*' + chr(97 + i) for _ in range(9))}]\n" for i in range(8)
)

CORPUS: dict[str, bytes] = {
    "alias-bomb.yaml": ALIAS_BOMB.encode(),
    "alias-bomb-clusterpolicy.yaml": (
        "apiVersion: nvidia.com/v1\nkind: ClusterPolicy\nmetadata:\n  name: cluster-policy\n"
        "x0: &x0 [a, a, a, a, a, a, a, a, a]\n"
        + "".join(f"x{i}: &x{i} [{', '.join(f'*x{i - 1}' for _ in range(9))}]\n" for i in range(1, 9))
        + "spec:\n  operator: *x8\n"
    ).encode(),
    "deep.yaml": ("a:\n" + "".join(" " * (2 * i) + "- \n" for i in range(1, 3)) + "[" * 20000 + "]" * 20000).encode(),
    "deep.json": ("[" * 200000 + "]" * 200000).encode(),
    "deep-object.json": ('{"a":' * 50000 + "1" + "}" * 50000).encode(),
    "huge-numbers.json": b'{"hidden_size": 1e308, "num_hidden_layers": 1e999, "vocab_size": 1' + b"0" * 5000 + b"}",
    "huge-numbers.yaml": b"workloads:\n  - {name: a, count: 1e308, memory_gb: .inf}\n  - {name: b, count: 99999999999999999999999}\n",
    "nan.json": b'{"hidden_size": NaN, "num_hidden_layers": Infinity}',
    "binary.bin": bytes(range(256)) * 8,
    "png-header.json": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64),
    "latin1.yaml": "name: caf\xe9\nkind: gpus\n".encode("latin-1"),
    "utf16.json": '{"hidden_size": 4096}'.encode("utf-16"),
    "truncated.yaml": b"kind: gpus\nentries:\n  x: {name: [unclosed",
    "truncated.json": b'{"hidden_size": 4096, "num_hidden_layers": ',
    "truncated.csv": b"timestamp,gpus\n2026-01-01T00:00:00,8\n2026-01-01T01:00",
    "wrong-shape.yaml": b"- just\n- a\n- list\n",
    "wrong-shape.json": b'["a", "list"]',
    "scalar.yaml": b"42\n",
    "empty.yaml": b"",
    "empty.json": b"",
    "empty.csv": b"",
    "bom-only.yaml": b"\xef\xbb\xbf",
    "long-line.yaml": b"key: " + b"x" * 2_000_000 + b"\n",
    "many-keys.json": ("{" + ",".join(f'"k{i}": {i}' for i in range(200000)) + "}").encode(),
    "csv-huge-peak.csv": b"hour,gpus\n0,1\n1,50000000\n",
    "csv-negative.csv": b"hour,gpus\n0,-5\n1,nan\n",
    "csv-binary.csv": b"hour,gpus\n\x00\x01\x02,\xff\xfe\n",
}


def write_corpus(folder: Path) -> dict[str, Path]:
    """Write every corpus file into `folder`; also a directory where a file is expected."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in CORPUS.items():
        p = folder / name
        p.write_bytes(data)
        paths[name] = p
    d = folder / "a-directory.yaml"
    d.mkdir(exist_ok=True)
    paths["a-directory.yaml"] = d
    paths["missing.yaml"] = folder / "missing.yaml"
    paths["long-name"] = folder / ("n" * 300 + ".yaml")
    return paths

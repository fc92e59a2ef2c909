"""Bad files into every file option this shell owns: one line on stderr, exit 2, never a traceback.

A corpus written here (binary, non-UTF-8, empty, wrong shape, truncated YAML/JSON/CSV, an alias
bomb, deep nesting, numbers that overflow a float, a peak beyond the bound) and hypothesis-made
random bytes and truncations, into --catalog, tco --demand, tco --bom and a model config.json path.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import assert_one_line_error

BOMB = "a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True))
CORPUS: dict[str, bytes] = {
    "binary": b"\x00\x01\x02\x03binary",
    "latin1": "gpus\n\u00e9t\u00e9\n".encode("latin-1"),
    "empty": b"",
    "list": b"[1, 2, 3]\n",
    "scalar": b"42\n",
    "truncated-yaml": b"kind: prices\nentries: {a: [1, 2\n",
    "truncated-json": b'{"hidden_size": 4096, "num_attention_heads": 32',
    "bomb": BOMB.encode(),
    "deep-json": b"[" * 5000 + b"]" * 5000,
    "deep-yaml": b"a: " + b"[" * 5000 + b"]" * 5000,
    "overflow-json": b'{"hidden_size": 1e400, "num_attention_heads": 32}',
    "nan-json": b'{"hidden_size": NaN}',
    "peak-csv": b"gpus\n1\n5e7\n",
    "negative-csv": b"gpus\n-4\n",
    "text-csv": b"gpus\nmany\n",
}


def _runs(path: str) -> list[list[str]]:
    return [
        ["--catalog", path, "tco", "--gpus", "8", "--cloud", "aws-p5"],
        ["tco", "--demand", path, "--cloud", "aws-p5"],
        ["tco", "--bom", path, "--cloud", "aws-p5"],
        ["size", "infer", path, "--gpu", "l40s"],
        ["infer", path, "--gpu", "l40s"],
    ]


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_file_gives_one_line_and_exit_2(cli, tmp_path, name):
    suffix = ".json" if "json" in name else ".csv" if "csv" in name else ".yaml"
    f = tmp_path / f"{name}{suffix}"
    f.write_bytes(CORPUS[name])
    for argv in _runs(str(f)):
        r = cli(*argv)
        if r.code == 0:  # a file that happens to be valid for this option (e.g. a CSV with an ignored column)
            continue
        assert_one_line_error(r)


def test_missing_and_directory_paths(cli, tmp_path):
    for argv in _runs(str(tmp_path / "nope.yaml")) + _runs(str(tmp_path)):
        assert_one_line_error(cli(*argv))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300),
                      st.sampled_from(list(CORPUS.values()) + [b"kind: gpus\nentries:\n  x: {memory_gb: 80}\n",
                                                               b'{"hidden_size": 4096, "num_layers": 32}',
                                                               b"gpus\n8\n16\n"]).flatmap(
                          lambda b: st.integers(0, len(b)).map(lambda n: b[:n]))),
       which=st.integers(0, 4))
def test_fuzzed_files_never_give_a_traceback(cli, tmp_path_factory, data, which):
    f = tmp_path_factory.mktemp("fz") / "input.yaml"
    f.write_bytes(data)
    r = cli(*_runs(str(f))[which])
    assert r.code in (0, 2), (r.code, r.err[-500:])
    if r.code == 2:
        assert_one_line_error(r)


def test_plot_into_a_read_only_folder_is_one_line(cli, tmp_path):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root ignores the mode bits
            pytest.skip("running as root: a read-only folder is still writable")
        assert_one_line_error(cli("tco", "--gpus", "8", "--cloud", "aws-p5", "--plot", str(ro / "c.html")),
                              "cannot write plot file")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_plot_over_a_directory_is_one_line(cli, tmp_path):
    (tmp_path / "c.html").mkdir()
    assert_one_line_error(cli("tco", "--gpus", "8", "--cloud", "aws-p5", "--plot", str(tmp_path / "c.html")),
                          "cannot write plot file")

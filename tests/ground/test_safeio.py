"""The one reader every file option uses: bounded size, UTF-8, depth, aliases; atomic writes."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfra.errors import AiinfraError
from aiinfra.safeio import (
    check_yaml,
    load_data_file,
    load_json_text,
    load_yaml_text,
    read_text,
    write_atomic,
)

BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join('*' + chr(97 + i) for _ in range(10))}]\n" for i in range(9)
)


def test_alias_bomb_is_refused_quickly():
    """A 9-level chain of 10 aliases expands to 10^10 nodes; it must be refused on the event stream."""
    t0 = time.process_time()
    with pytest.raises(AiinfraError, match="expands to more than"):
        load_yaml_text(BILLION_LAUGHS, "bomb.yaml")
    assert time.process_time() - t0 < 5  # a bound, not a benchmark: the unguarded path runs for minutes


def test_few_anchors_as_in_helm_values_load():
    doc = load_yaml_text("base: &b {gpu: 1}\nx: *b\ny: *b\n")
    assert doc["x"] == {"gpu": 1}


def test_deep_nesting_is_refused_yaml_and_json():
    with pytest.raises(AiinfraError, match="nests deeper"):
        load_yaml_text("[" * 5000 + "]" * 5000)
    with pytest.raises(AiinfraError, match="nests deeper"):
        load_json_text("[" * 100000 + "]" * 100000)


def test_json_nonfinite_and_huge_numbers_are_refused():
    for text in ("1e999", "NaN", "[Infinity]", "1" * 5000):
        with pytest.raises(AiinfraError):
            load_json_text(text)
    assert load_json_text('{"a": "[[[["}') == {"a": "[[[["}  # brackets inside strings do not count


def test_binary_and_non_utf8_files(tmp_path):
    (tmp_path / "bin.json").write_bytes(b"\x89PNG\x00\x01")
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9".encode("latin-1"))
    with pytest.raises(AiinfraError, match="binary"):
        load_data_file(tmp_path / "bin.json")
    with pytest.raises(AiinfraError, match="not UTF-8"):
        load_data_file(tmp_path / "latin1.yaml")


def test_size_cap_missing_and_directory(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" * 100)
    with pytest.raises(AiinfraError, match="limit"):
        read_text(big, max_bytes=50)
    with pytest.raises(AiinfraError, match="does not exist"):
        read_text(tmp_path / "nope.yaml")
    with pytest.raises(AiinfraError, match="directory"):
        read_text(tmp_path)
    with pytest.raises(AiinfraError):
        read_text(tmp_path / ("x" * 5000))  # ENAMETOOLONG is one line too


def test_write_atomic_mode_and_readonly_folder(tmp_path):
    p = write_atomic(tmp_path / "out.yaml", "a: 1\n")
    assert p.read_text() == "a: 1\n" and (os.stat(p).st_mode & 0o777) == 0o644
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores the mode; use a path that cannot exist instead
            target = tmp_path / "out.yaml" / "child"
        else:
            target = ro / "x.yaml"
        with pytest.raises(AiinfraError, match="cannot write"):
            write_atomic(target, "x")
    finally:
        ro.chmod(0o700)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["out.yaml", "ro"]  # no temp file left behind


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_give_data_or_one_line(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("fz") / "f.yaml"
    p.write_bytes(data)
    try:
        load_data_file(p)
    except AiinfraError as e:
        assert "\n" not in str(e)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="[]{}:,-&*ab \n'\"!#|>", max_size=200))
def test_random_yaml_text_gives_data_or_one_line(text):
    try:
        check_yaml(text)
        load_yaml_text(text)
    except AiinfraError as e:
        assert "\n" not in str(e)


def test_write_atomic_writes_into_devices_and_fifos_and_through_links(tmp_path):
    """`--output /dev/null` (or /dev/stdout, or a FIFO) must receive the bytes, never be renamed over: as root the
    old rename turned /dev/null into a regular file for the whole machine (tmux, among others, then failed). A
    symlink to a file keeps its link; the file it names is replaced. A FIFO stands in for the device here, so a
    regression cannot damage the machine the tests run on."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_atomic(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert got == [b"through the pipe\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    real = tmp_path / "real.yaml"
    real.write_text("old")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    write_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    with pytest.raises(AiinfraError, match="is a folder|Is a directory"):
        write_atomic(tmp_path, "x")

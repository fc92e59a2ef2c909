"""Hypothesis fuzz over every CLI command's options: an answer or one line with exit 2, never a traceback.

The commands and their options are read from the CLI itself, so a new command is fuzzed without
editing this file. Values come from pools a careless user or an attacker would type: huge, negative,
non-finite and malformed numbers, very long and non-ASCII strings, catalog names, and the hostile
file corpus (alias bombs, deep nesting, binary, other encodings, truncated files, directories).

- Each call runs in-process under a time budget (SIGALRM); a call over budget is a failure ("hang").
- Servers never start: `serve` is left out and `exporter`/`top` always get `--once`.
- URL options only ever name a closed port on 127.0.0.1 or a malformed URL: no traffic leaves the host.
- Output options point into a scratch folder, or into one that cannot be written.
"""

from __future__ import annotations

import enum
import io
import json
import os
import signal
import socket
import typing
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from aiinfra.catalog.loader import default_catalog, set_user_catalogs
from aiinfra.cli.main import app, main
from tests.hostile_corpus import write_corpus

CALL_BUDGET_S = 60  # generous for 2 CI cores; a quadratic or unbounded path runs for minutes
EXAMPLES = int(os.environ.get("AIINFRA_FUZZ_EXAMPLES", "6"))  # CI keeps the count bounded
SKIP_COMMANDS = {"serve"}  # binds a port and runs until stopped
FORCE_FLAGS = {"exporter": ["--once"], "top": ["--once"]}

_CORPUS_DIR = Path(__file__).parent / ".hostile-corpus"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is: connections are refused


def leaf_commands() -> list[tuple[list[str], object]]:
    root = typer.main.get_command(app)
    out: list[tuple[list[str], object]] = []

    def walk(cmd, path):
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(None):
                walk(cmd.get_command(None, name), [*path, name])
        elif path and path[0] not in SKIP_COMMANDS:
            out.append((path, cmd))

    walk(root, [])
    return out


JUNK = ["", "x", "-1", "0", "1e308", "nan", "inf", "a" * 3000, "héllo wörld ☃", "../../../../etc/passwd",
        "16M", "1T", "tp=8,pp=16", "tp=0", "{}", "[]", "- a", "\x7f", "NULL", "2147483648"]
INTS = ["0", "1", "-1", "7", "2147483648", "1000000000000", str(10**30), "abc", "1.5"]
FLOATS = ["0", "-1", "0.5", "1e308", "-1e308", "inf", "-inf", "nan", "1e-320", "1e9", "x"]


def _names(kind: str) -> list[str]:
    return default_catalog().names(kind)[:12]


def _corpus() -> list[str]:
    paths = write_corpus(_CORPUS_DIR)
    return [str(p) for p in paths.values()]


def value_strategy(param, corpus: list[str], scratch: Path) -> st.SearchStrategy[str]:
    name = param.name.lower()
    ann = param.type_descriptor.annotation
    origin = typing.get_origin(ann)
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    base = args[0] if origin in (list, typing.Union, type(int | None)) and args else ann
    if typing.get_origin(base) is list:
        base = typing.get_args(base)[0]
    if "prometheus" in name or "exporter" in name or name.endswith("url"):
        return st.sampled_from([f"http://127.0.0.1:{_closed_port()}", "not a url", "ftp://127.0.0.1:1/x", ""])
    if name in ("out", "output", "plot", "html", "manifests"):
        return st.sampled_from([str(scratch / "out.txt"), str(scratch / "no" / "such" / "dir" / "f.yaml"),
                                str(Path(corpus[0])) + "/child", "/proc/self/forbidden.yaml"])
    if base is Path or name in ("files", "workloads", "demand", "catalog", "collectors", "counters",
                                "web_config", "root", "bom", "trace", "checkpoint"):
        return st.sampled_from(corpus)
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return st.sampled_from([e.value for e in base] + ["bogus"])
    if base is int:
        return st.sampled_from(INTS)
    if base is float:
        return st.sampled_from(FLOATS)
    if name == "gpu":
        return st.sampled_from(_names("gpus") + JUNK[:6])
    if name == "model":
        return st.sampled_from(_names("models") + corpus[:10] + JUNK[:6])
    return st.sampled_from(JUNK)


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def _not_json(name: str):
    raise AssertionError(f"{name} in a --format json answer")


def run_budgeted(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CALL_BUDGET_S)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(argv)
    except Hang:
        pytest.fail(f"over the {CALL_BUDGET_S} s budget: aiinfra {' '.join(a[:60] for a in argv)}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        set_user_catalogs([])
    return code, out.getvalue(), err.getvalue()


COMMANDS = leaf_commands()


@pytest.fixture(scope="module")
def corpus():
    return _corpus()


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_fuzz_command(path, cmd, corpus, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("fuzz")
    params = [p for p in cmd.params if p.name not in ("fmt", "explain", "help")]
    positional = [p for p in params if getattr(p, "param_type_name", "") == "argument"]
    options = [p for p in params if getattr(p, "param_type_name", "") == "option"]

    def opt_args(p, draw) -> list[str]:
        flag = p.opts[0]
        if p.is_flag:
            return [flag]
        return [flag, draw(value_strategy(p, corpus, scratch))]

    @st.composite
    def argv(draw):
        words = list(path)
        for p in positional:
            words.append(draw(value_strategy(p, corpus, scratch)))
        chosen = draw(st.lists(st.sampled_from(options), max_size=4, unique_by=lambda p: p.name)) if options else []
        for p in chosen:
            words += opt_args(p, draw)
        words += FORCE_FLAGS.get(path[0], [])
        if draw(st.booleans()):
            words += ["--format", draw(st.sampled_from(["json", "yaml", "table"]))] if any(
                p.name == "fmt" for p in cmd.params) else []
        if draw(st.integers(0, 5)) == 0:
            words = ["--catalog", draw(st.sampled_from(corpus)), *words]
        return words

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("AIINFRA_FUZZ_RANDOM"), phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(argv())
    def check(words):
        code, out, err = run_budgeted(words)
        assert code in (0, 1, 2), (words, code, err[-500:])
        assert "Traceback" not in err, (words, err[-2000:])
        if code == 2:
            lines = [x for x in err.strip().splitlines() if x.strip()]
            assert len(lines) == 1, (words, err[-2000:])
        if code == 0 and words[-2:] == ["--format", "json"] and out.strip():
            json.loads(out, parse_constant=_not_json)  # NaN and Infinity are not JSON: a reader's parser refuses them

    check()

"""Every command in README.md's bash blocks runs as written and succeeds.

The commands are read from the README itself, so an example that stops working fails here. Each runs
as a separate `python -m aiinfra` process from a scratch folder that sees the checkout's `examples/`
and `src/`, so files the examples write (`cost.html`, `mig.yaml`, …) land in the scratch folder.

- `pip install …` and `make …` are the setup and test commands themselves (this run is `make test`).
- Servers (`exporter` without `--once`, `serve`) start on a free port and stop after their first
  answer; `curl` lines in the same block are sent to that server. `top` without `--once` stops after
  its first frame.
- `--prometheus http://prometheus:9090` is pointed at a real Prometheus loaded with a simulated fleet.
- A `# … exit N …` comment on a line states the exit code that example is meant to return.
- `> FILE` at the end of a command sends its stdout to FILE in the scratch folder, as a shell would.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TIMEOUT = 300


@dataclass
class Example:
    block: int
    line: int
    command: str
    expect_code: int = 0
    followers: list[str] = field(default_factory=list)  # curl lines answered by a server example

    @property
    def id(self) -> str:
        words = self.command.split()
        return f"L{self.line}-" + "-".join(w for w in words[:4] if not w.startswith("-"))[:60]


def _strip_comment(line: str) -> tuple[str, str]:
    m = re.search(r"\s+#\s(.*)$", line)
    return (line[: m.start()], m.group(1)) if m else (line, "")


def readme_examples() -> list[Example]:
    examples: list[Example] = []
    lines = README.read_text().splitlines()
    block = 0
    in_bash = False
    pending: list[str] = []
    start = 0
    for i, raw in enumerate(lines, 1):
        if raw.strip().startswith("```"):
            in_bash = raw.strip() == "```bash" and not in_bash
            block += in_bash
            continue
        if not in_bash or not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if not pending:
            start = i
        if raw.rstrip().endswith("\\"):
            pending.append(raw.rstrip()[:-1])
            continue
        pending.append(raw)
        text, comment = _strip_comment(" ".join(p.strip() for p in pending))
        pending = []
        code = int(m.group(1)) if (m := re.search(r"\bexit (\d)\b", comment)) else 0
        for part in (p.strip() for p in text.split("&&")):
            if not part or part.startswith(("pip ", "make ")):
                continue  # the install and test commands: this run is that command
            if part.startswith("curl ") and examples and _is_server(examples[-1].command):
                examples[-1].followers.append(part)
                continue
            examples.append(Example(block, start, part, code))
    return examples


def _is_server(cmd: str) -> bool:
    words = cmd.split()
    return len(words) > 1 and words[0] == "aiinfra" and (
        words[1] == "serve" or (words[1] == "exporter" and "--once" not in words))


def _free_port(span: int = 4) -> int:
    """A port with the next `span - 1` free too: a simulated fleet serves one host per port from --port on."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + span > 65535:
            continue
        try:
            for p in range(base, base + span):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", p))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("readme")
    for name in ("examples", "src", "docs"):
        if (ROOT / name).exists():
            (d / name).symlink_to(ROOT / name)
    return d


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory):
    """A real Prometheus holding six hours of a simulated fleet (the analyze examples read it)."""
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        pytest.skip("prometheus/promtool not installed")
    sys.path.insert(0, str(ROOT))
    from tests.integration.prom_fixtures import history

    from aiinfra.fleet.backfill import LocalPrometheus, build_blocks

    root = tmp_path_factory.mktemp("readme-prom")
    build_blocks(history(), root / "data")
    with LocalPrometheus(root / "run", data_dir=root / "data") as url:
        yield url


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(COLUMNS="120", TERM="dumb", NO_COLOR="1")
    return env


def _argv(cmd: str, port: int | None) -> list[str]:
    words = shlex.split(cmd)
    if port is not None and "--port" in words:
        words[words.index("--port") + 1] = str(port)
    if words[0] == "aiinfra":
        return [sys.executable, "-m", "aiinfra", *words[1:]]
    return words


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"server exited {proc.returncode} before answering: {err[-2000:]}")
        try:
            r = httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        # a server that answers 503 before its first collection is up but not ready: ask again, as a scraper would
        if r.status_code != 503:
            return r
        time.sleep(0.2)
    pytest.fail(f"no ready answer from {url} within {timeout} s")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[str, str]:
    proc.send_signal(sig)
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


EXAMPLES = readme_examples()


def test_readme_has_examples():
    assert len(EXAMPLES) >= 20, [e.command for e in EXAMPLES]


@pytest.mark.parametrize("ex", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_readme_example_runs(ex: Example, workdir, request):
    cmd = ex.command
    if "http://prometheus:9090" in cmd:
        cmd = cmd.replace("http://prometheus:9090", request.getfixturevalue("prometheus_url"))
    words = shlex.split(cmd)
    if words[0] not in ("aiinfra", "curl", "python"):
        pytest.fail(f"README line {ex.line}: unknown program {words[0]!r}")
    if _is_server(cmd):
        port = _free_port()
        proc = subprocess.Popen(_argv(cmd, port), cwd=workdir, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            path = "/metrics" if words[1] == "exporter" else "/healthz"
            r = _wait_http(f"http://127.0.0.1:{port}{path}", proc)
            assert r.status_code == 200, (cmd, r.status_code, r.text[:500])
            for follow in ex.followers:
                follow = re.sub(r"localhost:\d+|127\.0\.0\.1:\d+", f"127.0.0.1:{port}", follow)
                fr = subprocess.run(shlex.split(follow), cwd=workdir, capture_output=True, text=True, timeout=TIMEOUT)
                assert fr.returncode == 0 and fr.stdout.strip(), (follow, fr.returncode, fr.stderr)
                assert '"error"' not in fr.stdout, (follow, fr.stdout[:500])
        finally:
            _stop(proc)
        return
    if words[:2] == ["aiinfra", "top"] and "--once" not in words:
        proc = subprocess.Popen(_argv(cmd, None), cwd=workdir, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        out, err = _stop(proc, signal.SIGINT)
        assert "Traceback" not in err, err
        assert out.strip(), f"top printed no frame; stderr: {err[-1000:]}"
        return
    redirect = None
    if ">" in words:
        at = words.index(">")
        words, redirect = words[:at], words[at + 1]
        cmd = shlex.join(words)
    p = subprocess.run(_argv(cmd, None), cwd=workdir, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    assert p.returncode == ex.expect_code, (cmd, p.returncode, p.stderr[-2000:])
    assert p.stdout.strip() or p.stderr.strip(), f"{cmd} printed nothing"
    if redirect:
        (workdir / redirect).write_text(p.stdout)

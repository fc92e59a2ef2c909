"""CLI start-up: CPU seconds of `aiinfra --help`, each command's `--help` and a typical command, as a
ratio to `python -c pass` (the interpreter alone), from interleaved runs (median of >= 5 each).

Prints `name: ours X s, baseline Y s, ratio Z` (CPU = user + sys of the child process).
Run: PYTHONPATH=src python benchmarks/startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys

COMMANDS = {
    "--help": ["--help"],
    "size infer --help": ["size", "infer", "--help"],
    "tco --help": ["tco", "--help"],
    "plan --help": ["plan", "--help"],
    "schema --help": ["schema", "--help"],
    "tco (typical)": ["tco", "--gpus", "256", "--gpu", "h100-sxm", "--cloud", "aws-p5", "--format", "json"],
    "size infer (typical)": ["size", "infer", "mistral-7b", "--gpu", "l40s", "--format", "json"],
}


def cpu_seconds(argv: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=os.environ)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    base_argv = [sys.executable, "-c", "pass"]
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    base: list[float] = []
    for _ in range(max(5, args.rounds)):  # interleaved, so load on the machine hits both alike
        base.append(cpu_seconds(base_argv))
        for name, argv in COMMANDS.items():
            samples[name].append(cpu_seconds([sys.executable, "-m", "aiinfra", *argv]))
    b = statistics.median(base)
    for name, xs in samples.items():
        ours = statistics.median(xs)
        print(f"startup {name}: ours {ours:.3f} s CPU, baseline {b:.3f} s CPU (python -c pass), ratio {ours / b:.2f}")


if __name__ == "__main__":
    main()

"""The output contract, held against every registered command's real output.

For each command in `contract.registry()` and a representative argument set:
- `--format json` and `--format yaml` put one document on stdout and nothing else, and it validates
  against `aiinfra schema COMMAND` (the envelope and the command's declared facts);
- every number the table view prints is present in `facts` (the answers are data, not only text).
"""

from __future__ import annotations

import json
import math
import re

import jsonschema
import pytest
import yaml

from aiinfra.contract import envelope_schema, registry

# A representative run of each command (the README's example where there is one).
ARGS: dict[str, list[str] | None] = {
    "tco": ["tco", "--gpus", "256", "--gpu", "h100-sxm", "--utilization", "0.7", "--years", "4", "--cloud", "aws-p5",
            "--term", "all", "--gpu-hours", "100000", "--tokens-per-s", "1000", "--hybrid"],
    "size infer": ["size", "infer", "mistral-7b", "--gpu", "l40s"],
    "size train": ["size", "train", "llama-3.1-8b", "--gpu", "h100-sxm"],
    "size fits": ["size", "fits", "llama-3.1-8b"],
    "infer": ["infer", "llama-3.1-8b", "--gpu", "l40s", "--batch", "32", "--price", "1.5"],
    "plan": ["plan", "llama-3.1-8b", "--gpu", "h100-sxm", "--gpus", "64", "--seq", "4096", "--global-batch", "256"],
    "design": ["design", "--gpus", "256"],
    "mig plan": ["mig", "plan", "--gpu", "h100-sxm", "--gpus", "16", "--workloads", "examples/workloads.yaml"],
    "mig profiles": ["mig", "profiles", "h100-sxm"],
    "mig geometries": ["mig", "geometries", "a100-80gb", "--maximal"],
    "mig validate": ["mig", "validate", "h100-sxm", "3g.40gb,2g.20gb,1g.10gb,1g.10gb"],
    "k8s lint": ["k8s", "lint", "examples/custom-mig-config.yaml", "examples/time-slicing-config.yaml",
                 "examples/cluster-policy.yaml"],
    "k8s render mig": ["k8s", "render", "mig", "--gpu", "h100-sxm", "--geometry", "1g.10gb:7", "--node", "gpu-node-0"],
    "k8s render timeslice": ["k8s", "render", "timeslice", "--gpu", "h100-sxm", "--workloads",
                             "examples/timeslice-workloads.yaml", "--replicas", "6"],
    "k8s render mps": ["k8s", "render", "mps", "--gpu", "h100-sxm", "--workloads", "examples/timeslice-workloads.yaml",
                       "--replicas", "4"],
    "k8s render operator": ["k8s", "render", "operator", "--device-plugin-config", "time-slicing-config",
                            "--device-plugin-default", "ts-6", "--rdma"],
    "k8s render rdma": ["k8s", "render", "rdma", "--mode", "shared", "--master", "ens1f0"],
    "k8s render dra": ["k8s", "render", "dra", "--gpu", "h100-sxm", "--mig", "1g.10gb", "--kueue-quota", "64"],
    "k8s rollout mig": ["k8s", "rollout", "mig", "--node", "gpu-node-0", "--config", "all-1g.10gb", "--gpu", "h100-sxm",
                        "--geometry", "1g.10gb:7"],
    "k8s rollout driver": ["k8s", "rollout", "driver", "--node", "gpu-node-0", "--version", "570.86.15",
                           "--previous", "565.57.01"],
    "k8s rollout dra": ["k8s", "rollout", "dra", "--node", "gpu-node-0", "--node", "gpu-node-1", "--gpu", "h100-sxm"],
    "doctor": ["doctor", "--root", "examples/node-root", "--simulate", "gpus=2,seed=1,speed=1e-6"],
    "kernels": ["kernels", "--gpu", "h200-sxm", "--from", "examples/kernels-h200-cudnn-frontend.yaml"],
    "serve-plan": ["serve-plan", "llama-3.1-8b", "--gpu", "h100-sxm=2.5", "--rate", "5", "--ttft-ms", "800",
                   "--tpot-ms", "40"],
    "chargeback": None,
    "analyze": None,  # needs a Prometheus: tests/fleet and tests/integration validate it against its schema
    "rules": ["rules"],
    "dashboard": ["dashboard"],
    # speed=1e-6 holds the simulated clock at t=0 for both runs of a command: its values move with int(t), and a
    # table run and a JSON run a second apart would otherwise read different samples (a flaky mismatch).
    "top": ["top", "--simulate", "gpus=2,seed=1,speed=1e-6", "--once"],  # needs a Prometheus: tests/fleet/test_chargeback*.py validate it against its schema
}
COMMANDS = registry()
# Commands whose table numbers its steps or rows (see the ordinal rule in the test below).
ORDINALS = {"k8s rollout mig", "k8s rollout driver", "k8s rollout dra", "mig geometries"}


def _numbers_in(doc) -> list[float]:
    out: list[float] = []

    def walk(v):
        if isinstance(v, bool):
            return
        if isinstance(v, int | float):
            out.append(float(v))
        elif isinstance(v, str):
            out.extend(float(x.replace(",", "")) for x in re.findall(r"-?\d[\d,]*\.?\d*(?:e[+-]?\d+)?", v)
                       if x.replace(",", "").replace(".", "").lstrip("-").isdigit() or "e" in x)
            # A hyphen inside a word is not a minus sign: "H100-80GB", "ts-6", "4.6.0-4.8.3" hold 80, 6, 4.8
            # the way the table shows them (the same tokens _printed_numbers reads).
            out.extend(float(x.replace(",", "")) for x in re.findall(r"(?<![\w.])\d[\d,]*(?:\.\d+)?", v.replace("-", " ")))
        elif isinstance(v, dict) and set(v) == {"value", "unit"} and isinstance(v["value"], int | float) \
                and not isinstance(v["value"], bool):
            out.extend(_scaled(float(v["value"]), str(v["unit"])))
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(doc)
    return out


def _scaled(value: float, unit: str) -> list[float]:
    """A Quantity as a table may print it: with an SI prefix (14483464192 B as 14.48 GB, 0.0123 s as
    12.3 ms, 700000 W as 700 kW), bytes also with a binary prefix (13.49 GiB), seconds also as min/h/days."""
    out = [value * 10.0 ** (3 * k) for k in range(-5, 6)]
    if unit.startswith("B") or unit.lower().startswith(("byte", "bit")):
        out += [value / 2.0 ** (10 * k) for k in range(1, 6)]
    if unit in ("s", "seconds"):
        out += [value / 60, value / 3600, value / 86400]
    return out


def _printed_numbers(text: str) -> list[tuple[str, float]]:
    """Numbers as a table shows them: 1,234.5 / 36% / 6.8800 / 698k (a trailing % is a fraction of 1;
    k and M are the compact thousands and millions of wide tables)."""
    found = []
    text = re.sub(r"\bper 1M\b", "per million", text)  # "$ per 1M tokens" is a unit, like "$/1M"
    for m in re.finditer(r"(?<![\w./])(-?\d[\d,]*(?:\.\d+)?)([kM](?![A-Za-z]))?(%?)", text):
        raw, mult, pct = m.group(1), m.group(2), m.group(3)
        try:
            v = float(raw.replace(",", "")) * {"k": 1e3, "M": 1e6}.get(mult or "", 1.0)
        except ValueError:
            continue
        found.append((m.group(0), v / 100 if pct else v))
    return found


def _present(v: float, shown: str, facts: list[float]) -> bool:
    decimals = len(shown.split(".")[1].rstrip("%kM")) if "." in shown else 0
    tol = 0.5 * 10 ** -decimals
    if shown.endswith(("k", "M")):
        tol *= 1e3 if shown.endswith("k") else 1e6
    if shown.endswith("%"):
        # a share: a fraction in the facts, or the same percentage inside a sentence the facts carry
        if any(abs(f - v * 100) <= tol * 1.0001 + 1e-9 for f in facts if math.isfinite(f)):
            return True
        tol = 0.005 + 1e-9
    return any(abs(f - v) <= tol * 1.0001 + 1e-9 or (v and abs(f - v) <= 1e-3 * abs(v)) for f in facts
               if math.isfinite(f))


def test_every_registered_command_has_a_representative_run():
    assert COMMANDS, "no command registers with contract.command yet"
    missing = sorted(set(COMMANDS) - set(ARGS))
    assert not missing, f"add a representative argument list for {missing} to ARGS"


RUNNABLE = sorted(n for n in COMMANDS if ARGS.get(n) is not None)


@pytest.mark.parametrize("name", RUNNABLE)
def test_json_and_yaml_validate_against_the_schema(cli, name):
    schema = envelope_schema(COMMANDS[name])
    for fmt, parse in (("json", json.loads), ("yaml", yaml.safe_load)):
        for extra in ([], ["--explain"]):
            r = cli(*ARGS[name], "--format", fmt, *extra)
            assert r.code == 0, r.err
            doc = parse(r.out)  # stdout is the document alone
            jsonschema.validate(doc, schema)
            assert ("explain" in doc) == bool(extra)
    r = cli("schema", *name.split())
    assert r.code == 0 and json.loads(r.out) == json.loads(json.dumps(schema))


@pytest.mark.parametrize("name", RUNNABLE)
def test_every_number_of_the_table_is_in_facts(cli, name):
    table = cli(*ARGS[name])
    assert table.code == 0, table.err
    doc = cli(*ARGS[name], "--format", "json").json()
    facts = _numbers_in(doc["facts"])
    dates = re.findall(r"\d{4}-\d{2}-\d{2}", table.out)
    assert all(d in json.dumps(doc["facts"]) for d in dates)
    table.out = re.sub(r"\d{4}-\d{2}-\d{2}", " ", table.out)
    # A clock time (top's header) belongs to the moment of each run: the two runs differ by seconds.
    table.out = re.sub(r"\b\d{2}:\d{2}:\d{2}\b", " ", table.out)
    # Unit definitions in a column header ("GB (1e9 B)", "GiB (2^30 B)") are not answers.
    table.out = re.sub(r"\((?:1e\d+|2\^\d+) B\)", " ", table.out)
    # A brace list is a list, not one number with thousands separators: "{0,2,4,6}:2" (nvidia-smi's
    # placement starts) shows the numbers 0, 2, 4, 6, each of which facts must hold.
    table.out = re.sub(r"\{([\d,]+)\}", lambda m: "{" + " ".join(m[1].split(",")) + "}", table.out)
    if name in ORDINALS:
        assert doc["facts"].get("steps") or doc["facts"].get("geometries"), "ordinals are exempt only beside their list"
        # Step numbers of a runbook ("12. kubectl …") and row numbers of a listing ("│ 9 │ 1g.10gb …"):
        # positions in a list that facts carry itself (facts["steps"], facts["geometries"]).
        table.out = re.sub(r"(?m)^(\s*│?\s*)\d+(\.\s|\s+│)", r"\1\2", table.out)
    # The title is in the document too; numbers inside it (GPU counts, years) come from the input.
    missing = [shown for shown, v in _printed_numbers(table.out) if not _present(v, shown, facts)]
    assert not missing, f"{name}: the table prints {missing[:10]} that facts do not hold"


def test_the_number_check_reads_units_and_words_and_still_flags_what_facts_lack():
    """The helpers above find 14.48 GB in 14483464192 B and 80 in "H100-80GB", and miss 15.3 GB."""
    facts = _numbers_in({"weights": {"value": 14483464192.0, "unit": "B"}, "gpu": "H100-80GB", "power": {"value": 371300.0, "unit": "W"}})
    for shown in ("14.48", "13.49", "80", "371.3"):
        assert _present(float(shown), shown, facts), shown
    for shown in ("15.3", "81", "372", "0.5"):
        assert not _present(float(shown), shown, facts), shown

"""End to end: real Prometheus scrapes `aiinfra exporter --simulate …` processes; analysis, rules, dashboard, top.

Two exporters run as subprocesses, as two kinds of node would:
- A: 2 hosts × 4 H100 on one port, legacy names, `Hostname`, with injected XID 48 and XID 13,
  thermal throttling and an uncorrectable ECC error;
- B: 1 host with two MIG instances per GPU, exporter-4.9 names and units, `hostname`, all idle.
Prometheus scrapes both every second and evaluates the generated rules; the test waits until the
targets are up and the faults have happened, then checks the findings against the schedule.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import aiinfra
from aiinfra.fleet.analysis import AnalysisOptions, analyze
from aiinfra.fleet.backfill import LocalPrometheus
from aiinfra.fleet.dashboard import dashboard, expressions, substitute
from aiinfra.fleet.prom import Prometheus
from aiinfra.catalog.xid import xid_catalog
from aiinfra.fleet.promql import ALIASES
from aiinfra.fleet.rules import RuleOptions, dump, rule_groups
from aiinfra.telemetry.simulate import Fleet, parse_spec
from tests.integration.prom_fixtures import needs_prometheus

pytestmark = needs_prometheus

SPEC_A = "hosts=2,gpus=4,model=h100-sxm,seed=1,workload=mixed,faults=xid48:h0g1@3+xid13:h1g0@2+thermal:h1g2@1+dbe:h1g3@3+xid79:h0g3@14"
LOST = ("sim-node-00", "3")  # XID 79 at 14 s: falls off the bus
SPEC_B = "hosts=1,gpus=2,model=h100-sxm,seed=2,workload=idle,mig=3g.40gb+3g.40gb"
SRC = str(Path(aiinfra.__file__).resolve().parents[1])


def start_exporter(spec: str, *extra: str, counters: str = "all") -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-m", "aiinfra", "exporter", "--simulate", spec, "--port", "0", "--single-port",
                             "--interval", "0.5", "--counters", counters, *extra],
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"serving http://([\d.]+:\d+)/metrics", line or "")
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"exporter {spec} did not start: {proc.stderr.read() if proc.stderr else ''}")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    procs = []
    try:
        a, addr_a = start_exporter(SPEC_A)
        procs.append(a)
        b, addr_b = start_exporter(SPEC_B, "--naming", "dcgm4.9", "--hostname-label", "hostname", "--hostname", "mig-node")
        procs.append(b)
        started = time.time()
        rules = root / "rules.yml"
        rules.write_text(dump(rule_groups(RuleOptions(pod_label="pod"))))
        with LocalPrometheus(root / "prom", targets=[addr_a, addr_b], job="dcgm-exporter", rule_files=[rules]) as url:
            with Prometheus(url) as p:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    ups = [t["health"] for t in p.targets()]
                    if ups == ["up", "up"] and p.query("count(DCGM_FI_DEV_GPU_TEMP) + count(DCGM_FI_DEV_GPU_TEMP_CELSIUS)"):
                        break
                    time.sleep(0.25)
                else:
                    pytest.fail("targets never came up")
            # Let every scheduled fault (the last at 14 s) happen and be scraped a few times.
            time.sleep(max(0.0, started + 17 - time.time()))
            yield url, {"a": addr_a, "b": addr_b}
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def live_report(live):
    url, _ = live
    with Prometheus(url) as p:
        r = analyze(p, AnalysisOptions(range_s=8, idle_ratio=0.05))
        return r, list(p.log.expressions)


def patterns(spec: str) -> dict[tuple[str, str], str]:
    fleet = Fleet(parse_spec(spec))
    return {(h.name, str(g.index)): g.pattern for h in fleet.hosts for g in h.gpus}


def test_both_naming_generations_and_mig_are_seen(live_report):
    r, _ = live_report
    f = r.facts
    assert f["status"] == "ok"
    lost_seen = any((g["host"], g["gpu"]) == LOST for g in f["per_gpu"])  # the 8 s window may start after it went
    assert f["gpus"] == 8 + 4 - (not lost_seen)  # 8 whole GPUs from A, 2 GPUs × 2 MIG instances from B
    assert {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO", "DCGM_FI_DEV_FB_USED_BYTES"} <= set(f["naming"])
    mig = [g for g in f["per_gpu"] if g.get("GPU_I_ID")]
    assert len(mig) == 4 and {g["host"] for g in mig} == {"mig-node"}
    assert all(g["gpu_share"] == pytest.approx(3 / 7) for g in mig)


def test_idle_gpus_are_the_idle_workloads(live_report):
    r, _ = live_report
    expected = sorted(k for k, p in patterns(SPEC_A).items() if p == "idle") + [("mig-node", "0")] * 2 + [("mig-node", "1")] * 2
    got = sorted((g["host"], g["gpu"]) for g in r.facts["idle"] + r.facts["stranded"])
    assert got == sorted(expected)
    busy = {(g["host"], g["gpu"]) for g in r.facts["per_gpu"] if g["state"] == "busy"}
    assert busy == {k for k, p in patterns(SPEC_A).items() if p != "idle"} - {LOST}  # lost is never busy nor idle


def test_injected_xids_with_catalog_severity(live_report):
    r, _ = live_report
    cat = xid_catalog()
    got = {(x["host"], x["gpu"], x["xid"]): x for x in r.facts["xid"]}
    assert ("sim-node-00", "1", 48) in got and ("sim-node-01", "0", 13) in got
    assert got[("sim-node-00", "1", 48)]["severity"] == cat[48].severity == "critical"
    assert got[("sim-node-01", "0", 13)]["severity"] == cat[13].severity == "app"
    assert got[("sim-node-00", "1", 48)]["action"] == cat[48].action


def test_thermal_throttling_and_ecc_on_the_faulty_gpus(live_report):
    r, _ = live_report
    th = {(g["host"], g["gpu"]): g for g in r.facts["throttling"]["gpus"]}
    assert th[("sim-node-01", "2")]["thermal_share"] > 0.2
    assert all(g.get("thermal_share", 0) < 0.05 for k, g in th.items() if k != ("sim-node-01", "2"))
    health = {(g["host"], g["gpu"]): g for g in r.facts["health"]["gpus"]}
    assert ("sim-node-01", "3") in health


def test_leaking_gpu_has_a_time_to_full(live_report):
    r, _ = live_report
    leak = [k for k, p in patterns(SPEC_A).items() if p == "leak"]
    oom = {(g["host"], g["gpu"]): g for g in r.facts["oom_risk"]}
    for k in leak:
        assert k in oom and oom[k]["time_to_full_s"] is not None and oom[k]["time_to_full_s"] < 3 * 3600


def test_lost_gpu_is_listed_with_its_last_sighting(live):
    """The simulated driver raises GPU_IS_LOST after XID 79: the exporter drops the GPU's series and
    sets aiinfra_gpu_lost; the analysis lists the GPU with both reasons and when it was last seen."""
    url, _ = live
    with Prometheus(url) as p:
        r = analyze(p, AnalysisOptions(range_s=600))
    lost = {(x["host"], x["gpu"]): x for x in r.facts["lost"]}
    assert set(lost) == {LOST}
    row = lost[LOST]
    assert {"stopped reporting", "NVML: GPU is lost"} <= set(row["reasons"]) and row["reporting"] is False
    assert row["last_seen"] is not None and 0 < row["last_seen_ago_s"] < 600
    drops = r.facts["gpu_count"]["drops"]
    assert drops == [{"host": "sim-node-00", "seen": 4, "now": 3}]


def test_every_analysis_query_returned_data(live, live_report):
    url, _ = live
    _, exprs = live_report
    with Prometheus(url) as p:
        for e in exprs:
            if "aiinfra_gpu_lost" in e or "timestamp(" in e:
                continue  # asks who is lost: empty when the window starts after the loss
            raw = re.match(r"^(\w+\{[^}]*\})\[(\w+)\]$", e)
            if raw:  # raw samples of one GPU (scrape interval) or of the lost ones (last seen)
                # one GPU's raw samples: the analysis tries a few GPUs, so one of them may be a lost one
                assert "timestamp" not in e, e
                continue
            assert p.query(e), e


def test_every_dashboard_query_returns_data_from_the_exporters(live):
    url, _ = live
    known = {n for names in ALIASES.values() for n, _ in names}
    with Prometheus(url) as p:
        present = set(p.label_values("__name__"))
        end = time.time()
        for raw in expressions(dashboard()):
            got = p.query_range(substitute(raw, rate_interval="4s"), end - 6, end, 1)
            used = {n for n in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", raw) if n in known}
            if used & present and "> 0.95" not in raw and "[1h:1m]" not in raw:
                assert got, f"no data for {raw[:140]}"


def test_generated_rules_fire_in_prometheus(live):
    """The server evaluates the generated rules: fatal XID 48 fires for its GPU, XID 13 (app) does not, and
    XID 79 (fell off the bus) fires for GPU 3: the exporter keeps that XID exported after the GPU is lost."""
    url, _ = live
    with Prometheus(url) as p:
        deadline = time.monotonic() + 20
        fatal = []
        while time.monotonic() < deadline and not fatal:
            fatal = [a for a in p.alerts() if a["labels"]["alertname"] == "AiinfraGPUXidFatal"]
            time.sleep(0.25)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(fatal) < 2:
            fatal = [a for a in p.alerts() if a["labels"]["alertname"] == "AiinfraGPUXidFatal"]
            time.sleep(0.25)
        assert {(a["labels"].get("Hostname"), a["labels"]["gpu"]) for a in fatal} == {("sim-node-00", "1"), ("sim-node-00", "3")}
        assert all(a["state"] == "firing" for a in fatal)
        assert p.query("aiinfra:gpu_busy:ratio"), "recording rules evaluated"


def test_top_reads_the_exporter_and_prometheus(live, cli):
    url, addrs = live
    r = cli("top", "--exporter", f"http://{addrs['b']}", "--once")
    assert r.code == 0, r.err
    assert "mig-node" in r.out and "3g.40gb/1" in r.out
    r = cli("top", "--prometheus", url, "--once", "--limit", "100")
    assert r.code == 0, r.err
    assert "sim-node-01" in r.out and "mig-node" in r.out
    assert "LOST" in r.out and "1 lost" in r.out  # sim-node-00 GPU 3 fell off the bus: still a row
    doc = cli("top", "--prometheus", url, "--format", "json").json()
    lost = [g for g in doc["facts"]["gpus"] if g["lost"]]
    assert [(g["host"], g["gpu"]) for g in lost] == [LOST]
    assert lost[0]["last_seen"] is not None and lost[0]["last_seen"] < doc["facts"]["time"]
    r = cli("top", "--exporter", f"http://{addrs['a']}", "--once")
    assert "LOST" in r.out  # the exporter says aiinfra_gpu_lost 1


def test_with_default_counters_every_unmarked_dashboard_panel_returns_data(tmp_path):
    """An exporter serving dcgm-exporter's default counter set, scraped by a real Prometheus: each panel
    of `aiinfra dashboard --counters default` either returns data or is marked with the counter to enable."""
    from aiinfra.fleet.dashboard import build, served_names

    proc, addr = start_exporter("hosts=1,gpus=2,model=h100-sxm,seed=3,workload=training", counters="default")
    try:
        with LocalPrometheus(tmp_path / "prom", targets=[addr], job="dcgm-exporter") as url, Prometheus(url) as p:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not p.query("count(DCGM_FI_DEV_GPU_TEMP) > 0"):
                time.sleep(0.25)
            time.sleep(4)  # a few scrapes, so rate() windows hold two samples
            names, _ = served_names("default")
            doc, missing = build(served=names)
            assert missing, "the default set lacks throttling/ECC fields: some panel must be marked"
            end = time.time()
            for panel in doc["panels"]:
                if panel["type"] == "row" or "(needs" in panel["title"]:
                    continue
                got = [p.query_range(substitute(t["expr"], rate_interval="4s"), end - 4, end, 1) for t in panel["targets"]]
                if any(x in t["expr"] or t["expr"].endswith("> 0") for t in panel["targets"] for x in ("> 0.95", "[1h:1m]", "> 0)", "xid!=")):
                    continue  # thresholds and one-hour windows: empty on a healthy, young fleet
                assert any(got), f"unmarked panel without data: {panel['title']}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)

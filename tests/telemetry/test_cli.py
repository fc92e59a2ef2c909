"""`aiinfra exporter` as a user runs it: output, and one-line errors with exit 2 for bad input."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import aiinfra
from tests.conftest import assert_one_line_error


def test_once_prints_parseable_metrics(cli):
    r = cli("exporter", "--simulate", "hosts=2,gpus=8,model=h100-sxm,seed=1", "--once", "--interval", "0.05", "--hostname-label", "hostname")
    assert r.code == 0, r.err
    fams = {f.name: f for f in text_string_to_metric_families(r.out)}
    temps = fams["DCGM_FI_DEV_GPU_TEMP"].samples
    assert len(temps) == 16 and {s.labels["hostname"] for s in temps} == {"sim-node-00", "sim-node-01"}


def test_same_seed_same_fleet(cli):
    """Deterministic: the same seed gives the same UUIDs, bus IDs and workloads."""
    outs = []
    for _ in range(2):
        r = cli("exporter", "--simulate", "gpus=4,seed=42", "--once", "--interval", "0.01")
        fams = {f.name: f for f in text_string_to_metric_families(r.out)}
        outs.append(sorted((s.labels["UUID"], s.labels["pci_bus_id"]) for s in fams["DCGM_FI_DEV_GPU_TEMP"].samples))
    assert outs[0] == outs[1] and len(set(outs[0])) == 4


def test_bad_simulate_spec(cli):
    assert_one_line_error(cli("exporter", "--simulate", "gpus=lots", "--once"), "gpus", "integer")
    assert_one_line_error(cli("exporter", "--simulate", "gpu=8", "--once"), "unknown --simulate key 'gpu'")
    assert_one_line_error(cli("exporter", "--simulate", "model=h10", "--once"), "h100")
    assert_one_line_error(cli("exporter", "--simulate", "model=l40s,mig=1g.10gb", "--once"), "does not support MIG")
    assert_one_line_error(cli("exporter", "--simulate", "gpus=2,faults=lost:g5@1", "--once"), "outside the fleet")
    assert_one_line_error(cli("exporter", "--simulate", "faults=melt:g0@1", "--once"), "bad fault")


def test_port_in_use(cli):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli("exporter", "--simulate", "gpus=1", "--port", str(port), "--duration", "0")
    assert_one_line_error(r, f"port {port}", "already in use")


def test_unreadable_web_config(cli, tmp_path):
    assert_one_line_error(cli("exporter", "--simulate", "gpus=1", "--web-config", str(tmp_path / "nope.yml"), "--duration", "0"), "cannot read web config")
    bad = tmp_path / "web.yml"
    bad.write_text("basic_auth_users:\n  prom: plaintext\n")
    assert_one_line_error(cli("exporter", "--simulate", "gpus=1", "--web-config", str(bad), "--duration", "0"), "not a bcrypt hash")
    bad.write_text("tls_server_config: {cert_file: missing.crt, key_file: missing.key}\n")
    assert_one_line_error(cli("exporter", "--simulate", "gpus=1", "--web-config", str(bad), "--duration", "0"), "cannot load TLS certificate")
    bad.write_text("tls_server_config: [\n")
    assert_one_line_error(cli("exporter", "--simulate", "gpus=1", "--web-config", str(bad), "--duration", "0"), "does not parse")


def test_bad_naming(cli):
    assert_one_line_error(cli("exporter", "--simulate", "gpus=1", "--naming", "dcgm5", "--once"), "naming")


def test_subprocess_serves_and_stops():
    """The console path: a real process binds loopback, reports where, and exits on --duration."""
    env = dict(os.environ, PYTHONPATH=str(Path(aiinfra.__file__).resolve().parents[1]))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.run(
        [sys.executable, "-m", "aiinfra", "exporter", "--simulate", "gpus=2", "--port", str(port), "--duration", "0.5"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert p.returncode == 0, p.stderr
    assert f"serving http://127.0.0.1:{port}/metrics (sim-node-00)" in p.stderr


CSV = """# Format
# If line starts with a '#' it is considered a comment
# DCGM FIELD, Prometheus metric type, help message

# Clocks
DCGM_FI_DEV_SM_CLOCK,  gauge, SM clock frequency (in MHz).
DCGM_FI_DEV_DEC_UTIL ,     gauge, Decoder utilization (in %).
DCGM_FI_DEV_GPU_TEMP_CELSIUS, gauge, GPU temperature (in C).
DCGM_FI_DEV_FB_USED_BYTES, gauge, Framebuffer memory used (in bytes).
DCGM_FI_DEV_XID_ERRORS, gauge, Value of the last XID error encountered.
DCGM_FI_DRIVER_VERSION,        label, Driver Version
"""


def test_collectors_csv_like_dcgm_exporter(cli, tmp_path):
    """`--collectors FILE` takes dcgm-exporter's CSV format (counter_config.go: '#' comments, trimmed
    fields, 3 columns); each family keeps the file's name, type and HELP, values in that name's units."""
    path = tmp_path / "counters.csv"
    path.write_text(CSV)
    r = cli("exporter", "--simulate", "gpus=2,seed=1,faults=xid31:g0@0", "--collectors", str(path), "--once", "--interval", "0.01")
    assert r.code == 0, r.err
    fams = [f for f in text_string_to_metric_families(r.out) if not f.name.startswith("aiinfra_")]
    assert [(f.name, f.type, f.documentation) for f in fams] == [
        ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz)."),
        ("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %)."),
        ("DCGM_FI_DEV_GPU_TEMP_CELSIUS", "gauge", "GPU temperature (in C)."),
        ("DCGM_FI_DEV_FB_USED_BYTES", "gauge", "Framebuffer memory used (in bytes)."),
        ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered."),
    ]
    by = {f.name: f for f in fams}
    assert by["DCGM_FI_DEV_SM_CLOCK"].samples[0].value < 10_000  # MHz
    assert by["DCGM_FI_DEV_FB_USED_BYTES"].samples[0].value > 2**30  # bytes
    assert by["DCGM_FI_DEV_XID_ERRORS"].samples[0].labels["DCGM_FI_DRIVER_VERSION"]
    assert by["DCGM_FI_DEV_XID_ERRORS"].samples[0].labels["err_code"] == "31"


def test_bad_collectors_csv(cli, tmp_path):
    path = tmp_path / "counters.csv"
    assert_one_line_error(cli("exporter", "--simulate", "gpus=1", "--collectors", str(path), "--once"), "cannot read collectors file")
    path.write_text("DCGM_FI_DEV_SM_CLOCK, gauge\n")
    assert_one_line_error(cli("exporter", "--simulate", "gpus=1", "--collectors", str(path), "--once"), "counters.csv:1", "3 columns")
    path.write_text("# c\nDCGM_FI_DEV_SM_CLOCK, gauge, x\nDCGM_FI_DEV_FAN_SPED, gauge, Fan\n")
    assert_one_line_error(cli("exporter", "--simulate", "gpus=1", "--collectors", str(path), "--once"), "counters.csv:3", "DCGM_FI_DEV_FAN_SPED")
    path.write_text("DCGM_FI_DEV_SM_CLOCK, gaug, x\n")
    assert_one_line_error(cli("exporter", "--simulate", "gpus=1", "--collectors", str(path), "--once"), "unknown Prometheus type")


def test_real_dcgm_field_we_cannot_read_is_skipped_with_one_warning(cli, tmp_path):
    """A real DCGM field aiinfra does not collect (fan speed, ID 191 in dcgm_fields.h) is skipped with one
    warning line; the exporter starts and serves the rest. A histogram row is served as dcgm-exporter serves
    it (counter_config.go accepts the type; render_metrics.go writes TYPE histogram over plain samples)."""
    path = tmp_path / "counters.csv"
    path.write_text("# c\nDCGM_FI_DEV_SM_CLOCK, gauge, x\nDCGM_FI_DEV_FAN_SPEED, gauge, Fan\nDCGM_FI_DEV_GPU_TEMP, histogram, t\n")
    r = cli("exporter", "--simulate", "gpus=1", "--collectors", str(path), "--once")
    assert r.code == 0, r.err
    warnings = [line for line in r.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "DCGM_FI_DEV_FAN_SPEED" in warnings[0] and "DCGM_FI_DEV_GPU_TEMP" not in warnings[0]
    assert "DCGM_FI_DEV_SM_CLOCK{" in r.out and "FAN_SPEED" not in r.out
    assert "# TYPE DCGM_FI_DEV_GPU_TEMP histogram\nDCGM_FI_DEV_GPU_TEMP{gpu=\"0\"" in r.out

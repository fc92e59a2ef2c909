"""dcgm-exporter's environment variables (pkg/cmd/app.go EnvVars, tag 4.5.3-4.8.2-1) set `aiinfra exporter`.

Its Helm chart sets DCGM_EXPORTER_KUBERNETES and DCGM_EXPORTER_LISTEN; each variable aiinfra has an
option for is honoured (the command line wins, as with urfave/cli), every other one is refused at
start-up in one line unless it holds the value that asks for what aiinfra does anyway. The Go parse
answers below are what strconv.ParseInt(s, 0, 64) and strconv.ParseBool returned (go1.19).
"""

from __future__ import annotations

import pytest

from aiinfra.telemetry.envvars import VARS, from_environment, parse_bool, parse_int
from tests.conftest import assert_one_line_error
from tests.telemetry.conftest import free_port


@pytest.mark.parametrize("text,want", [
    ("30000", 30000), ("0x3e8", 1000), ("0o17", 15), ("017", 15), ("0_17", 15), ("1_000", 1000), ("0b101", 5),
    ("0x_1F", 31), ("-5", -5), ("+5", 5), ("9223372036854775807", 2**63 - 1), ("-9223372036854775808", -(2**63)),
    ("_1", None), ("1__0", None), ("1_", None), ("08", None), (" 5", None), ("", None), ("1e3", None),
    ("9223372036854775808", None), ("0x", None), ("0__7", None),
])
def test_integers_read_as_go_parseint_base_0(text, want):
    assert parse_int(text) == want


@pytest.mark.parametrize("text,want", [
    ("1", True), ("t", True), ("T", True), ("TRUE", True), ("true", True), ("True", True),
    ("0", False), ("f", False), ("F", False), ("FALSE", False), ("false", False), ("False", False),
    ("yes", None), ("tRUE", None), (" true", None),
])
def test_booleans_read_as_go_parsebool(text, want):
    assert parse_bool(text) == want


def _env(environ: dict[str, str], given: tuple[str, ...] = ()):
    return from_environment(environ, lambda p: p in given)


def test_honoured_variables_map_to_options():
    params, warnings = _env({
        "DCGM_EXPORTER_COLLECTORS": "/etc/dcgm-exporter/dcp-metrics-included.csv",
        "DCGM_EXPORTER_LISTEN": ":9400",
        "DCGM_EXPORTER_INTERVAL": "30000",  # ms, as dcgm-exporter's -c
        "DCGM_EXPORTER_KUBERNETES": "true",
        "DCGM_EXPORTER_NO_HOSTNAME": "",  # urfave/cli: an empty boolean is false
        "DCGM_EXPORTER_WEB_CONFIG_FILE": "",
        "DCGM_EXPORTER_XID_COUNT_WINDOW_SIZE": "60000",
        "DCGM_EXPORTER_CLOCK_EVENTS_COUNT_WINDOW_SIZE": "0x3e8",
        "DCGM_POD_RESOURCES_KUBELET_SOCKET": "/run/kubelet.sock",
        "DCGM_HPC_JOB_MAPPING_DIR": "/var/run/jobs",
    })
    assert warnings == []
    assert str(params.pop("collectors")) == "/etc/dcgm-exporter/dcp-metrics-included.csv"
    assert params == {"host": "0.0.0.0", "port": 9400, "interval": 30.0, "kubernetes": True, "no_hostname": False,
                      "web_config": None, "xid_window_ms": 60000, "clock_events_window_ms": 1000,
                      "pod_resources_socket": "/run/kubelet.sock", "hpc_job_dir": "/var/run/jobs"}


def test_the_command_line_wins():
    params, _ = _env({"DCGM_EXPORTER_LISTEN": "10.0.0.1:9500", "DCGM_EXPORTER_KUBERNETES": "1"}, given=("port", "kubernetes"))
    assert params == {"host": "10.0.0.1"}


def test_an_empty_integer_variable_is_not_set():
    assert _env({"DCGM_EXPORTER_INTERVAL": ""}) == ({}, [])


@pytest.mark.parametrize("var", [v for v in VARS if v.option is None], ids=lambda v: v.name)
def test_variables_without_an_equivalent_hold_only_the_value_aiinfra_does(var):
    accepted = var.accept[0]
    text = {bool: lambda b: "true" if b else "false", tuple: lambda t: ",".join(t)}.get(type(accepted), str)(accepted)
    assert _env({var.name: text}) == ({}, [])
    other = {"bool": "false" if accepted else "true", "int": "1", "slice": "team", "string": "something-else"}[var.kind]
    with pytest.raises(Exception, match=f"{var.name}=.*aiinfra exporter does not do"):
        _env({var.name: other})


@pytest.mark.parametrize("environ,fragment", [
    ({"DCGM_EXPORTER_KUBERNETES": "yes"}, "is not a boolean"),
    ({"DCGM_EXPORTER_INTERVAL": "30s"}, "is not an integer"),
    ({"DCGM_EXPORTER_INTERVAL": "0"}, "must be a positive number of milliseconds"),
    ({"DCGM_EXPORTER_LISTEN": "9400"}, "is not <HOST>:<PORT>"),
    ({"DCGM_EXPORTER_LISTEN": ":http"}, "the port must be a number"),
    ({"DCGM_EXPORTER_USE_OLD_NAMESPACE": "true"}, "1.x metric names"),
    ({"DCGM_EXPORTER_DEVICES_STR": "g"}, "GPU selection"),
    ({"DCGM_EXPORTER_CONFIGMAP_DATA": "gpu-operator:metrics"}, "ConfigMap"),
])
def test_refused_at_start_up_in_one_line(cli, monkeypatch, environ, fragment):
    for k, v in environ.items():
        monkeypatch.setenv(k, v)
    assert_one_line_error(cli("exporter", "--simulate", "gpus=1", "--once"), next(iter(environ)), fragment)


def test_helm_chart_variables_are_honoured(cli, monkeypatch):
    """The chart's DCGM_EXPORTER_LISTEN and DCGM_EXPORTER_KUBERNETES: the listener moves, pod labels appear."""
    port = free_port()
    monkeypatch.setenv("DCGM_EXPORTER_LISTEN", f"127.0.0.1:{port}")
    monkeypatch.setenv("DCGM_EXPORTER_KUBERNETES", "true")
    r = cli("exporter", "--simulate", "gpus=1,seed=1", "--duration", "0.3")
    assert r.code == 0, r.err
    assert f"serving http://127.0.0.1:{port}/metrics" in r.err
    r = cli("exporter", "--simulate", "gpus=1,seed=1", "--once")
    assert r.code == 0, r.err
    assert 'pod="' in r.out


def test_collectors_and_no_hostname_from_the_environment(cli, monkeypatch, tmp_path):
    path = tmp_path / "counters.csv"
    path.write_text("DCGM_FI_DEV_GPU_TEMP, gauge, t\n")
    monkeypatch.setenv("DCGM_EXPORTER_COLLECTORS", str(path))
    monkeypatch.setenv("DCGM_EXPORTER_NO_HOSTNAME", "true")
    r = cli("exporter", "--simulate", "gpus=1,seed=1", "--once")
    assert r.code == 0, r.err
    assert [x.split()[2] for x in r.out.splitlines() if x.startswith("# TYPE DCGM")] == ["DCGM_FI_DEV_GPU_TEMP"]
    temp = next(x for x in r.out.splitlines() if x.startswith("DCGM_FI_DEV_GPU_TEMP{"))
    assert "Hostname=" not in temp and "hostname=" not in temp


def test_unknown_variable_is_named_not_ignored(cli, monkeypatch):
    monkeypatch.setenv("DCGM_EXPORTER_KUBERNETS", "true")
    r = cli("exporter", "--simulate", "gpus=1", "--once")
    assert r.code == 0, r.err
    assert "warning: DCGM_EXPORTER_KUBERNETS is set, but dcgm-exporter reads no such variable" in r.err

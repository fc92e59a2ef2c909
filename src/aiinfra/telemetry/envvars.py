"""dcgm-exporter's environment variables, for `aiinfra exporter`.

dcgm-exporter reads each of its options from an environment variable as well (pkg/cmd/app.go, urfave/cli
v2 `EnvVars`); its Helm chart and the GPU Operator configure it that way (DCGM_EXPORTER_LISTEN,
DCGM_EXPORTER_KUBERNETES, DCGM_EXPORTER_COLLECTORS). A deployment moved to aiinfra keeps them, so each
is either honoured through the aiinfra option that does the same, or refused in one line at start-up.
None is ignored.

urfave/cli's rules are kept: an option given on the command line wins over its variable; a boolean
variable is read with Go's strconv.ParseBool and an empty one means false; an integer variable with
strconv.ParseInt(value, 0, 64) and an empty one is not set; a malformed value stops the start.

A variable that asks for something aiinfra does not do is accepted only at the value that means what
aiinfra does anyway (its dcgm-exporter default, such as DCGM_EXPORTER_USE_FAKE_GPUS=false).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiinfra.errors import AiinfraError

PREFIX = "DCGM_EXPORTER_"


@dataclass(frozen=True)
class Var:
    name: str
    kind: str  # bool | int | string | slice: how urfave/cli reads it
    option: str | None = None  # the aiinfra exporter parameter it sets (None: no equivalent)
    accept: tuple[Any, ...] = ()  # without an option: the values that ask for what aiinfra does anyway
    what: str = ""  # what dcgm-exporter does with it, for the refusal


# Every variable dcgm-exporter 4.5.3-4.8.2 reads for the flags aiinfra exporter has (pkg/cmd/app.go), and every
# DCGM_EXPORTER_* one. The other DCGM_EXPORTER_-less ones (DCGM_REMOTE_HOSTENGINE_INFO, NVIDIA_RESOURCE_NAMES,
# KUBERNETES_VIRTUAL_GPUS, KUBERNETES_ENABLE_DRA, DISABLE_STARTUP_VALIDATE) are generic names not checked here.
VARS: tuple[Var, ...] = (
    Var("DCGM_EXPORTER_COLLECTORS", "string", "collectors"),
    Var("DCGM_EXPORTER_LISTEN", "string", "listen"),
    Var("DCGM_EXPORTER_INTERVAL", "int", "interval"),
    Var("DCGM_EXPORTER_KUBERNETES", "bool", "kubernetes"),
    Var("DCGM_EXPORTER_USE_OLD_NAMESPACE", "bool", None, (False,), "dcgm-exporter 1.x metric names"),
    Var("DCGM_EXPORTER_CPU_DEVICES_STR", "string", None, ("f",), "a CPU selection other than f (all)"),
    Var("DCGM_EXPORTER_CONFIGMAP_DATA", "string", None, ("none",), "reading the counters from a Kubernetes ConfigMap"),
    Var("DCGM_EXPORTER_KUBERNETES_ENABLE_POD_LABELS", "bool", None, (False,), "pod labels on every series"),
    Var("DCGM_EXPORTER_KUBERNETES_ENABLE_POD_UID", "bool", None, (False,), "a pod_uid label"),
    # aiinfra matches kubelet device IDs of both kinds (GPU-<uuid> and nvidia<i>), so both settings hold.
    Var("DCGM_EXPORTER_KUBERNETES_GPU_ID_TYPE", "string", None, ("uid", "device-name"), "a GPU ID type other than uid or device-name"),
    Var("DCGM_EXPORTER_KUBERNETES_POD_LABEL_ALLOWLIST_REGEX", "slice", None, ((),), "pod labels on every series"),
    Var("DCGM_EXPORTER_DEVICES_STR", "string", None, ("f",), "a GPU selection other than f (GPUs, or their MIG instances when MIG is on)"),
    Var("DCGM_EXPORTER_NO_HOSTNAME", "bool", "no_hostname"),
    Var("DCGM_EXPORTER_OTHER_DEVICES_STR", "string", None, ("f",), "an NVSwitch selection other than f (all)"),
    Var("DCGM_EXPORTER_USE_FAKE_GPUS", "bool", None, (False,), "fake GPUs"),
    Var("DCGM_EXPORTER_WEB_CONFIG_FILE", "string", "web_config"),
    Var("DCGM_EXPORTER_XID_COUNT_WINDOW_SIZE", "int", "xid_window_ms"),
    Var("DCGM_EXPORTER_REPLACE_BLANKS_IN_MODEL_NAME", "bool", None, (False,), "dashes for the blanks in modelName"),
    Var("DCGM_EXPORTER_DEBUG", "bool", None, (False,), "debug logging"),
    Var("DCGM_EXPORTER_CLOCK_EVENTS_COUNT_WINDOW_SIZE", "int", "clock_events_window_ms"),
    Var("DCGM_EXPORTER_ENABLE_DCGM_LOG", "bool", None, (False,), "DCGM's log on stdout"),
    Var("DCGM_EXPORTER_DCGM_LOG_LEVEL", "string", None, ("NONE",), "a DCGM log level"),
    Var("DCGM_EXPORTER_LOG_FORMAT", "string", None, ("text",), "a log format other than text"),
    Var("DCGM_EXPORTER_DUMP_ENABLED", "bool", None, (False,), "debug dump files"),
    Var("DCGM_EXPORTER_DUMP_DIRECTORY", "string", None, ("/tmp/dcgm-exporter-debug",), "a debug dump folder"),
    Var("DCGM_EXPORTER_DUMP_RETENTION", "int", None, (24,), "a debug dump retention"),
    Var("DCGM_EXPORTER_DUMP_COMPRESSION", "bool", None, (True,), "uncompressed debug dumps"),
    Var("DCGM_EXPORTER_ENABLE_GPU_BIND_UNBIND_WATCH", "bool", None, (False,), "reloading on GPU bind/unbind events"),
    Var("DCGM_EXPORTER_GPU_BIND_UNBIND_POLL_INTERVAL", "string", None, ("1s",), "a GPU bind/unbind poll interval"),
    Var("DCGM_EXPORTER_ENABLE_PPROF", "bool", None, (False,), "/debug/pprof/ endpoints"),
    Var("DCGM_EXPORTER_SYSTEMD_SOCKET", "bool", None, (False,), "systemd socket activation"),
    Var("DCGM_POD_RESOURCES_KUBELET_SOCKET", "string", "pod_resources_socket"),
    Var("DCGM_HPC_JOB_MAPPING_DIR", "string", "hpc_job_dir"),
)
_BY_NAME = {v.name: v for v in VARS}
# The command-line parameters each option sets (DCGM_EXPORTER_LISTEN is --host and --port).
_PARAMS = {"listen": ("host", "port")}

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_GO_INT = re.compile(r"[+-]?(0[xX](_?[0-9a-fA-F])+|0[bB](_?[01])+|0[oO](_?[0-7])+|0(_?[0-7])*|[1-9](_?[0-9])*)")


def parse_bool(text: str) -> bool | None:
    """Go's strconv.ParseBool; None when it fails."""
    return True if text in _TRUE else False if text in _FALSE else None


def parse_int(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 0, 64): a sign, then 0x/0o/0b/0 (octal) prefixes and underscores between
    digits; None when it fails or leaves the int64 range."""
    if not _GO_INT.fullmatch(text):
        return None
    sign = -1 if text[0] == "-" else 1
    body = text.lstrip("+-").replace("_", "")
    if len(body) > 1 and body[0] == "0" and body[1] in "xXbBoO":
        value = int(body[2:], {"x": 16, "b": 2, "o": 8}[body[1].lower()])
    elif len(body) > 1 and body[0] == "0":
        value = int(body[1:], 8)
    else:
        value = int(body)
    value *= sign
    return value if -(2**63) <= value < 2**63 else None


def parse_listen(name: str, text: str) -> tuple[str, int]:
    """<HOST>:<PORT> or [<IPv6>]:<PORT> (Go's net.SplitHostPort); an empty host is every address."""
    m = re.fullmatch(r"\[([^\]]*)\]:([^:]*)|([^:\[\]]*):([^:\[\]]*)", text)
    if m is None:
        raise AiinfraError(f"{name}={text!r} is not <HOST>:<PORT> (or [<IPv6>]:<PORT>), which dcgm-exporter listens on")
    host = m.group(1) if m.group(1) is not None else m.group(3)
    port = m.group(2) if m.group(2) is not None else m.group(4)
    if not port.isdigit() or int(port) > 65535:
        raise AiinfraError(f"{name}={text!r}: the port must be a number from 0 to 65535")
    return host or "0.0.0.0", int(port)


# kind → (value of an empty variable, Go's parser, what the value must be)
_SCALARS = {"bool": (False, parse_bool, "a boolean (true, false, 1, 0, t, f)"), "int": (None, parse_int, "an integer")}


def _read(var: Var, text: str) -> Any:
    """The value urfave/cli reads from `text` (None: an empty integer, which leaves the option unset)."""
    if var.kind in _SCALARS:
        empty, parse, what = _SCALARS[var.kind]
        if text == "":
            return empty
        value = parse(text)
        if value is None:
            raise AiinfraError(f"{var.name}={text!r} is not {what}, as dcgm-exporter reads it")
        return value
    if var.kind == "slice":
        return tuple(s for s in text.split(",") if s) if text else ()
    return text


def _positive(name: str, value: int, unit: str) -> int:
    if value < 1:
        raise AiinfraError(f"{name}={value} must be a positive number of {unit}")
    return value


def _converted(var: Var, value: Any) -> dict[str, Any]:
    """aiinfra parameter → value for an honoured variable."""
    if var.option == "listen":
        host, port = parse_listen(var.name, value)
        return {"host": host, "port": port}
    if var.option == "interval":  # dcgm-exporter: milliseconds; aiinfra --interval: seconds
        return {"interval": _positive(var.name, value, "milliseconds") / 1000.0}
    if var.option in ("xid_window_ms", "clock_events_window_ms"):
        return {var.option: _positive(var.name, value, "milliseconds")}
    if var.option == "collectors":  # an empty path fails to open there too
        return {var.option: Path(value)}
    if var.option == "web_config":
        return {var.option: Path(value) if value else None}
    if var.option == "hpc_job_dir":
        return {var.option: value or None}
    return {var.option: value}


def from_environment(environ: Mapping[str, str], given: Callable[[str], bool]) -> tuple[dict[str, Any], list[str]]:
    """(aiinfra exporter parameters the environment sets, warnings). `given(param)` says whether a parameter was
    on the command line, which wins. A variable aiinfra cannot honour raises AiinfraError naming it."""
    params: dict[str, Any] = {}
    warnings: list[str] = []
    for name in sorted(environ):
        var = _BY_NAME.get(name)
        if var is None:
            if name.startswith(PREFIX):
                warnings.append(f"{name} is set, but dcgm-exporter reads no such variable and neither does aiinfra exporter")
            continue
        text = environ[name]
        value = _read(var, text)
        if var.option is None:
            if value not in var.accept:
                raise AiinfraError(f"{name}={text!r} asks dcgm-exporter for {var.what}, which aiinfra exporter does not do; "
                                   f"unset it" + (f" or set it to {_shown(var.accept[0])}" if var.accept != ((),) else ""))
            continue
        if value is None:
            continue
        for param, v in _converted(var, value).items():
            if not given(param):
                params[param] = v
    return params, warnings


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)

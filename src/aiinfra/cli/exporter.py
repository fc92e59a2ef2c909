"""`aiinfra exporter`: serve dcgm-exporter-compatible /metrics and /healthz from NVML or a simulated fleet."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from aiinfra.telemetry import exporter as tx
from aiinfra.telemetry.envvars import from_environment
from aiinfra.telemetry.fields import read_counters


def exporter(
    ctx: typer.Context,
    simulate: Annotated[
        str | None,
        typer.Option("--simulate", help="Serve a simulated fleet instead of NVML, e.g. hosts=2,gpus=8,model=h100-sxm,seed=1 (keys: hosts, gpus, model, seed, workload, mig, mig_gpus, faults, speed)."),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind; loopback by default.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (dcgm-exporter uses 9400). With several simulated hosts, host i listens on port+i unless --single-port.", min=0, max=65535)] = 9400,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between NVML collections; scrapes read the cached result.")] = 5.0,
    naming: Annotated[str, typer.Option("--naming", help="Metric names and units: legacy (dcgm-exporter <= 4.8) or dcgm4.9 (DCGM 4.7 names, SI units).")] = "legacy",
    counters: Annotated[str, typer.Option("--counters", help="default = dcgm-exporter's default-counters.csv; all = every field aiinfra collects.")] = "default",
    collectors: Annotated[Path | None, typer.Option("--collectors", help="A dcgm-exporter collectors CSV (DCGM field, type, help); overrides --counters.")] = None,
    hostname_label: Annotated[str, typer.Option("--hostname-label", help="Spelling of the host label: Hostname (<= 4.5.3-4.8.2) or hostname (>= 4.6.0-4.8.3).")] = "Hostname",
    hostname: Annotated[str | None, typer.Option("--hostname", help="Value of the host label (default: NODE_NAME, else the OS hostname).")] = None,
    no_hostname: Annotated[bool, typer.Option("--no-hostname", help="Leave the host label out, like dcgm-exporter -n.")] = False,
    web_config: Annotated[Path | None, typer.Option("--web-config", help="exporter-toolkit web-config YAML: tls_server_config (certificates, client_auth_type, versions, ciphers, curves), http_server_config.headers, basic_auth_users (bcrypt), rate_limit.")] = None,
    backend: Annotated[str, typer.Option("--backend", help="dcgm (DCGM's bindings: profiling fields on every generation and per MIG instance), nvml, or auto (DCGM when installed, else NVML).")] = "auto",
    single_port: Annotated[bool, typer.Option("--single-port", help="Serve all simulated hosts on one port.")] = False,
    xid_window_ms: Annotated[int, typer.Option("--xid-count-window-size", help="Window of DCGM_EXP_XID_ERRORS_COUNT in ms.", min=1)] = 300_000,
    clock_events_window_ms: Annotated[int, typer.Option("--clock-events-count-window-size", help="Window of DCGM_EXP_CLOCK_EVENTS_COUNT in ms.", min=1)] = 300_000,
    duration: Annotated[float | None, typer.Option("--duration", help="Stop after this many seconds (default: run until interrupted).")] = None,
    once: Annotated[bool, typer.Option("--once", help="Collect once, print the /metrics text to stdout and exit.")] = False,
    kubernetes: Annotated[bool, typer.Option("--kubernetes", help="Label GPUs, MIG devices and shared replicas with pod, namespace, container from the kubelet PodResources API (simulated kubelets with --simulate).")] = False,
    pod_resources_socket: Annotated[str, typer.Option("--pod-resources-socket", help="Kubelet PodResources socket.")] = "/var/lib/kubelet/pod-resources/kubelet.sock",
    hpc_job_dir: Annotated[str | None, typer.Option("--hpc-job-dir", help="dcgm-exporter HPC job-mapping folder (files <gpu> or <gpu>.<gi> naming jobs) → hpc_job label; with --simulate, jobs are written to DIR/<host>.")] = None,
    dra_resource_slices: Annotated[str | None, typer.Option("--dra-resource-slices", help="kubectl get resourceslices -o json output: maps DRA device names (pool/device) to GPU and MIG UUIDs; without it, gpu-<i> names map to GPU i.")] = None,
    processes: Annotated[bool, typer.Option("--processes", help="Per-process GPU memory and utilization families (aiinfra_process_*), mapped to pods through /proc/<pid>/cgroup; at most 4 per GPU.")] = False,
) -> None:
    """Serve GPU metrics exactly as dcgm-exporter names and labels them, plus aiinfra_ health metrics.

    dcgm-exporter's environment variables are read too (DCGM_EXPORTER_LISTEN, _KUBERNETES, _COLLECTORS,
    _INTERVAL in ms, ...); an option on the command line wins; one aiinfra cannot honour stops the start."""
    # by name: typer carries its own copy of click, whose ParameterSource is not click's
    env, env_warnings = from_environment(os.environ, lambda p: getattr(ctx.get_parameter_source(p), "name", "") == "COMMANDLINE")
    collectors = env.get("collectors", collectors)
    host, port = env.get("host", host), env.get("port", port)
    interval = env.get("interval", interval)
    kubernetes = env.get("kubernetes", kubernetes)
    no_hostname = env.get("no_hostname", no_hostname)
    web_config = env.get("web_config", web_config)
    xid_window_ms = env.get("xid_window_ms", xid_window_ms)
    clock_events_window_ms = env.get("clock_events_window_ms", clock_events_window_ms)
    pod_resources_socket = env.get("pod_resources_socket", pod_resources_socket)
    hpc_job_dir = env.get("hpc_job_dir", hpc_job_dir)
    for line in env_warnings:
        sys.stderr.write(f"warning: {line}\n")
    rows, skipped = read_counters(collectors) if collectors is not None else (None, [])
    if rows == [] and not skipped:  # dcgm-exporter starts with no collectors too
        sys.stderr.write(f"warning: collectors file {collectors} lists no fields: no DCGM metrics are served\n")
    cfg = tx.ExporterConfig(
        naming=naming,
        counters=counters,
        hostname_label="" if no_hostname else hostname_label,
        xid_window_ms=xid_window_ms,
        clock_events_window_ms=clock_events_window_ms,
        rows=tuple(rows) if rows is not None else None,
        skipped=tuple(skipped),
    )
    requested = len(cfg.table()) + len(cfg.skipped)
    web = tx.load_web_config(web_config) if web_config is not None else None
    sources = tx.build_sources(simulate, hostname, cfg, backend, interval)
    from aiinfra.telemetry.attribution import setup as attribution_setup

    attribution, sim_nodes = attribution_setup(sources, simulate is not None, kubernetes, pod_resources_socket, hpc_job_dir, processes, interval, wait=once,
                                                 dra_resource_slices=dra_resource_slices)
    cfg = replace(cfg, attribution=attribution)
    if once:
        exp = tx.Exporter(sources, cfg, interval)
        time.sleep(min(interval, 0.2))  # give rate fields (NVLink, GPM) a measurable interval
        exp.collect_once()
        _warn_unserved(exp.unserved(), requested)
        sys.stdout.write(exp.body.decode())
        exp.stop()
        _stop_attribution(attribution, sim_nodes)
        return
    running = tx.start(sources, cfg, host, port, interval, web, single_port)
    _warn_unserved(running[0][0].unserved(), requested)
    if host not in ("127.0.0.1", "localhost", "::1") and not (web and web.users):
        sys.stderr.write(f"warning: serving on {host} without basic auth; anyone who can reach it can read GPU and host names (see --web-config)\n")
    scheme = "https" if web is not None and web.tls is not None else "http"
    for exp, server in running:
        bound = server.server_address[1]
        hosts = ", ".join(s.host for s in exp.sources)
        sys.stderr.write(f"serving {scheme}://{host}:{bound}/metrics ({hosts})\n")
    sys.stderr.flush()
    # SIGTERM (systemd, Kubernetes) stops like Ctrl-C: close the listeners, stop collection, release
    # NVML/DCGM, exit 0.
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            stop.wait(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        for exp, server in running:
            server.shutdown()
            server.server_close()
            exp.stop()
        _stop_attribution(attribution, sim_nodes)
        sys.stderr.write("exporter stopped\n")


def _warn_unserved(skipped: list, requested: int) -> None:
    """Once at start-up: which requested fields are not served and why (never a start-up failure)."""
    line = tx.warning_for(skipped, requested)
    if line:
        sys.stderr.write(f"warning: {line}\n")


def _stop_attribution(attribution, sim_nodes) -> None:
    if attribution is not None:
        attribution.stop()
    for node in sim_nodes:
        node.server.stop()

"""`aiinfra top`: rows from exporter text (every naming generation, MIG, exported_ pod labels) and from the
simulator; the nvitop-style screen (header, bars, processes, highlights, lost rows, 80 columns); `q` in tmux."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

import aiinfra
from aiinfra.fleet.top import collector_source, frame_from_exposition, render, rows_from_exposition
from tests.conftest import assert_one_line_error

SRC = str(Path(aiinfra.__file__).resolve().parents[1])


def screen(frame, width: int = 80) -> str:
    console = Console(width=width, record=True, file=open(os.devnull, "w"))
    console.print(render(frame))
    return console.export_text()

# Built from the dcgm-exporter line template (§3.1/§4.3): MIG A100 with the scrape's exported_ labels.
LEGACY_MIG = """# HELP DCGM_FI_PROF_GR_ENGINE_ACTIVE Ratio of time the graphics engine is active.
# TYPE DCGM_FI_PROF_GR_ENGINE_ACTIVE gauge
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-a8",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-40GB",GPU_I_PROFILE="3g.20gb",GPU_I_ID="1",hostname="gpu-node-3",exported_pod="triton-0",pod="dcgm-exporter-x"} 0.734000
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-a8",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-40GB",GPU_I_PROFILE="3g.20gb",GPU_I_ID="2",hostname="gpu-node-3",pod="dcgm-exporter-x"} 0.000000
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-a8",GPU_I_PROFILE="3g.20gb",GPU_I_ID="1",hostname="gpu-node-3",exported_pod="triton-0"} 10240
# HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-a8",GPU_I_PROFILE="3g.20gb",GPU_I_ID="1",hostname="gpu-node-3",exported_pod="triton-0"} 10240
# HELP DCGM_FI_DEV_XID_ERRORS Value of the last XID error encountered.
# TYPE DCGM_FI_DEV_XID_ERRORS gauge
DCGM_FI_DEV_XID_ERRORS{gpu="0",UUID="GPU-a8",GPU_I_PROFILE="3g.20gb",GPU_I_ID="2",hostname="gpu-node-3",err_code="31",err_msg="GPU memory page fault"} 31
"""


def test_mig_rows_busy_from_prof_and_pod_from_exported_label():
    rows = {r.mig: r for r in rows_from_exposition(LEGACY_MIG)}
    assert set(rows) == {"3g.20gb/1", "3g.20gb/2"}
    one, two = rows["3g.20gb/1"], rows["3g.20gb/2"]
    assert one.busy == 0.734 and one.pod == "triton-0" and one.host == "gpu-node-3"
    assert one.fb_ratio == 0.5 and one.values["fb_used"] == 10240 * 2**20
    assert two.pod == ""  # the scrape target's own pod is not a workload
    assert two.values["xid_last"] == 31


def test_simulated_fleet_in_both_namings_gives_the_same_rows():
    legacy = collector_source("hosts=1,gpus=2,seed=5,workload=training")().rows
    assert [(r.host, r.gpu) for r in legacy] == [("sim-node-00", "0"), ("sim-node-00", "1")]
    assert all(0.0 <= r.busy <= 1.0 and 0 < r.fb_ratio < 1 and r.values["power"] > 0 for r in legacy)


def test_render_shows_every_row():
    rows = rows_from_exposition(LEGACY_MIG)
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(render(rows, "test"))
    text = console.export_text()
    assert "3g.20gb/1" in text and "triton-0" in text and "31" in text


def test_top_bad_input(cli):
    assert_one_line_error(cli("top", "--exporter", "http://127.0.0.1:9", "--once"), "cannot reach the exporter")
    assert_one_line_error(cli("top", "--exporter", "http://x", "--prometheus", "http://y", "--once"), "choose one source")
    assert_one_line_error(cli("top", "--simulate", "hosts=0", "--once"), "hosts")


def test_top_simulated_once(cli):
    r = cli("top", "--simulate", "hosts=1,gpus=2,seed=1,mig=3g.40gb+3g.40gb", "--once")
    assert r.code == 0, r.err
    assert "3g.40gb/1" in r.out and "sim-node-00" in r.out


def test_top_default_source_is_local_nvml(cli):
    """On a machine without the NVIDIA driver the default source fails in one line; with one it shows the GPUs."""
    r = cli("top", "--once")
    if r.code == 0:
        assert "local NVML" in r.out
    else:
        assert_one_line_error(r, "NVML")


def test_top_live_mode_stops_after_the_iterations(cli):
    r = cli("top", "--simulate", "hosts=1,gpus=1,seed=2", "--interval", "0.1", "--iterations", "3")
    assert r.code == 0, r.err
    assert "sim-node-00" in r.out


LOST_EXPOSITION = """# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-a0",modelName="NVIDIA H100 80GB HBM3",Hostname="n1",DCGM_FI_DRIVER_VERSION="570.124.06"} 91
DCGM_FI_DEV_SLOWDOWN_TEMP{gpu="0",UUID="GPU-a0",modelName="NVIDIA H100 80GB HBM3",Hostname="n1"} 92
DCGM_FI_DEV_GPU_TEMP{gpu="2",UUID="GPU-a2",modelName="NVIDIA H100 80GB HBM3",Hostname="n1"} 50
# TYPE DCGM_FI_DEV_CLOCKS_EVENT_REASONS gauge
DCGM_FI_DEV_CLOCKS_EVENT_REASONS{gpu="2",UUID="GPU-a2",Hostname="n1"} 4
# TYPE aiinfra_gpu_lost gauge
aiinfra_gpu_lost{gpu="0",UUID="GPU-a0",Hostname="n1"} 0
aiinfra_gpu_lost{gpu="1",UUID="GPU-a1",Hostname="n1"} 1
aiinfra_gpu_lost{gpu="2",UUID="GPU-a2",Hostname="n1"} 0
"""


def test_a_lost_gpu_is_a_row_hot_and_throttled_are_flagged():
    f = frame_from_exposition(LOST_EXPOSITION, "test")
    rows = {r.gpu: r for r in f.rows}
    assert rows["1"].lost and rows["1"].uuid == "GPU-a1"  # no metric of its own left, still a row
    assert rows["0"].hot and not rows["0"].lost  # 91 °C is within 5 °C of its own 92 °C slowdown
    assert rows["2"].throttle_reasons == ["power_cap"] and not rows["2"].hot
    assert f.driver == "570.124.06"
    text = screen(f)
    assert "LOST" in text and "HOT" in text and "THR" in text and "1 lost" in text and "1 hot" in text


def test_screen_has_header_bars_processes_and_fits_80_columns():
    read = collector_source("hosts=1,gpus=4,seed=1,workload=mixed,faults=lost:g1@0+thermal:g2@0+xid48:g3@0")
    f = read()
    text = screen(f)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].startswith("aiinfra top") and "sim-node-00" in lines[0]
    assert "Driver 570" in lines[1] and "CUDA 12" in lines[1]
    assert "█" in text and "%" in text  # bars
    rows = {r.gpu: r for r in f.rows}
    assert rows["1"].lost and "LOST" in text  # fell off the bus: a row of its own, not dropped
    assert rows["3"].failing and "XID48" in text
    assert rows["2"].hot and "HOT" in text
    pids = {p.pid for p in f.procs}
    assert len(pids) == 3 and all(p.memory_bytes and p.memory_bytes > 0 for p in f.procs)
    assert "PID" in text and "GPU-MEM" in text and str(min(pids)) in text


def test_many_hosts_and_mig_still_fit_80_columns():
    f = collector_source("hosts=3,gpus=2,seed=3,mig=3g.40gb+2g.20gb+1g.10gb,faults=lost:h2g1@0")()
    text = screen(f)
    assert max(len(line) for line in text.splitlines()) <= 80
    lost = [r for r in f.rows if r.lost]
    assert {(r.host, r.gpu) for r in lost} == {("sim-node-02", "1")}


def test_top_once_json_is_one_frame_as_data(cli):
    r = cli("top", "--simulate", "hosts=1,gpus=2,seed=1,faults=lost:g1@0", "--format", "json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    f = doc["facts"]
    assert f["lost"] == {"value": 1, "unit": "GPUs"} and f["driver"].startswith("570")
    assert [g["lost"] for g in f["gpus"]] == [False, True]
    assert f["gpus"][0]["busy"]["unit"] == "ratio"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux (Debian package tmux) is not installed")
def test_live_screen_in_tmux_refreshes_and_q_quits(tmp_path):
    """A real terminal (tmux, 80×40): the live screen draws the header and rows, refreshes, and `q` ends it."""
    sock = f"aiinfra-top-{os.getpid()}"
    env = {**os.environ, "PYTHONPATH": SRC, "TERM": "xterm-256color"}
    cmd = f"{sys.executable} -m aiinfra top --simulate hosts=1,gpus=3,seed=4,faults=lost:g2@0 --interval 0.3; echo exited $? > {tmp_path}/rc"
    tmux = ["tmux", "-L", sock]
    subprocess.run(tmux + ["new-session", "-d", "-x", "80", "-y", "40", cmd], check=True, env=env)
    try:
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            text = subprocess.run(tmux + ["capture-pane", "-p"], capture_output=True, text=True).stdout
            if "Processes" in text and "LOST" in text:
                break
            time.sleep(0.2)
        assert "aiinfra top" in text and "Driver" in text and "LOST" in text, text
        assert max(len(line) for line in text.splitlines()) <= 80
        subprocess.run(tmux + ["send-keys", "q"], check=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (tmp_path / "rc").exists():
            time.sleep(0.1)
        assert (tmp_path / "rc").read_text().strip() == "exited 0"
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)


def test_process_utilization_comes_from_nvml_where_the_driver_gives_it(monkeypatch):
    """nvmlDeviceGetProcessUtilization (smUtil in %) sets a process's %GPU even with several processes;
    the simulated library lacks the call, so it is added here the way pynvml exposes it."""
    from types import SimpleNamespace

    from aiinfra.fleet import top as t

    read = collector_source("hosts=1,gpus=1,seed=2,workload=training")
    first = read()
    pid = first.procs[0].pid
    real = t._process_utilization

    def with_nvml(exp):
        col = exp.sources[0].collector
        monkeypatch.setattr(col.nv, "nvmlDeviceGetProcessUtilization",
                            lambda h, ts: [SimpleNamespace(pid=pid, smUtil=37, memUtil=5, timeStamp=ts)], raising=False)
        return real(exp)

    monkeypatch.setattr(t, "_process_utilization", with_nvml)
    f = read()
    assert f.procs[0].busy == 0.37

"""`aiinfra top` rows from exporter text (every naming generation, MIG, exported_ pod labels) and from the simulator."""

from __future__ import annotations

from aiinfra.fleet.top import collector_source, render, rows_from_exposition
from tests.conftest import assert_one_line_error

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
    legacy = collector_source("hosts=1,gpus=2,seed=5,workload=training")()
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

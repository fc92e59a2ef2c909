"""GPU capacity as the size commands print it: the total the device shows, in the units of the column it is printed
in (GB = 1e9 B and GiB = 2^30 B), with the datasheet's size as its name ("80GB HBM3"), never the datasheet's number
in a column of measured GB."""

import pytest

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.sizing.commands import fits_report, inference_report, training_report, verdict_line


@pytest.mark.parametrize("key,memory,gb,gib", [
    ("h100-sxm", "80GB HBM3", 85.52, 79.65),  # nvidia-smi "NVIDIA H100 80GB HBM3, 81559 MiB"
    ("h200-sxm", "141GB HBM3e", 150.75, 140.4),  # 143,771 MiB
])
def test_size_train_prints_the_visible_total(key, memory, gb, gib):
    """An H100's total is 81,559 MiB (catalog memory_total_mib, from nvidia-smi) = 85.52 GB = 79.65 GiB; an H200's
    143,771 MiB = 150.75 GB = 140.40 GiB. size train printed capacity_gb 80.0 (141.0) in its "GB (1e9 B)" column,
    the datasheet's product name, while the fit was checked against the visible total."""
    r = training_report(model("llama-3.1-8b"), gpu(key), zero=3, dp=8, recompute="full")
    f = r.facts
    assert (f["memory"], f["capacity_gb"], f["capacity_gib"]) == (memory, gb, gib)
    assert f["capacity_gb"] == f["usable_gb"]
    assert f["headroom_gb"] == pytest.approx(f["capacity_gb"] - r.term("total per GPU").value / 1e9, abs=0.01)
    line = verdict_line(f)
    assert line.startswith(f"fits {key} ({memory}: {gb:,.2f} GB = {gib:,.2f} GiB visible) with ")
    assert "(80 GB)" not in line and "(141 GB)" not in line


def test_size_infer_budget_follows_from_the_printed_totals():
    """size infer llama-3.1-8b on an H100: capacity 85.52 GB / 79.65 GiB visible (was 80.0); the engine budget is
    gpu_memory_utilization × the total vLLM budgets from (nvidia-smi total − the driver's reserve, 85.06 GB),
    76.56 GB, which the facts now show beside it."""
    r, _ = inference_report(model("llama-3.1-8b"), gpu("h100-sxm"))
    f = r.facts
    assert (f["memory"], f["capacity_gb"], f["capacity_gib"]) == ("80GB HBM3", 85.52, 79.65)
    assert f["engine_total_gb"] == pytest.approx(85.06, abs=0.01)
    assert f["engine_budget_gb"] == pytest.approx(f["gpu_memory_utilization"] * f["engine_total_gb"], abs=0.01)
    assert f["engine_total_gb"] < f["capacity_gb"]


def test_size_fits_capacity_column_is_visible_gb():
    """size fits' "capacity GB" column beside "per GPU GB": the visible total, in the same decimal GB."""
    rows = {r["gpu"]: r for r in fits_report(model("llama-3.1-70b"), quant="fp8").facts["fits"]}
    h = rows["h100-sxm"]
    assert (h["memory"], h["capacity_gb"], h["capacity_gib"]) == ("80GB HBM3", 85.52, 79.65)
    assert h["per_gpu_gb"] <= h["capacity_gb"]


def test_cli_and_web_print_the_visible_total(cli):
    """The CLI's verdict line and table carry the visible total and the datasheet name."""
    out = cli("size", "train", "llama-3.1-8b", "--zero", "3", "--dp", "8", "--recompute", "full")
    assert out.code == 0
    assert "fits h100-sxm (80GB HBM3: 85.52 GB = 79.65 GiB visible)" in out.out
    js = cli("size", "infer", "llama-3.1-8b", "--format", "json").json()["facts"]
    assert js["capacity_gb"] == 85.52 and js["capacity_gib"] == 79.65 and js["memory"] == "80GB HBM3"

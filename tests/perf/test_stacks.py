"""What the step model reads from a --catalog file (stacks, kernel rows, fits, links): a malformed setting is
refused in one line.

A user's catalog file may override any stacks.yaml, kernels.yaml, calibration.yaml or interconnects.yaml entry.
Each setting is read strictly: a value the model cannot honour (an overlap flag that is not true/false, a TP mode
it does not know, a GEMM plateau above the peak, a framework efficiency above 1) gets exit 2 and one line naming
the entry and the setting, never a traceback, a silently skipped value, or an MFU above 100%.
"""

from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error

STACK_CASES = [
    ("overlap: 5", "field 'overlap' must be a map"),
    ("overlap: {tpp: true}", "field 'overlap' has key 'tpp', which no command reads; closest: tp"),
    ("moe_permute: {alltoal: 4, source: mine}", "moe_permute alltoal names none of its dispatchers (alltoall, deepep, "
     "hybridep), with or without _one_local_expert"),
    ("overlap: {tp: maybe}", "field 'overlap.tp' must be true/false"),
    ("tp_overlap_modes: [ring, chunky]", "tp_overlap_modes must list"),
    ("tp_overlap_modes: []", "tp_overlap_modes must list"),
    ("overlap_sm_fraction: 1.5", "overlap_sm_fraction must be a fraction"),
    ("overlap_sm_fraction: true", "field 'overlap_sm_fraction' must be a number"),
    ("fp8_gemm: cublas", "fp8_gemm must be scaled_mm"),
    ("tp_overlap_split: 'no'", "field 'tp_overlap_split' must be true/false"),
    ("tp_backward_async: 1", "field 'tp_backward_async' must be true/false"),
]


@pytest.mark.parametrize("setting,needle", STACK_CASES)
def test_malformed_stack_setting_is_refused(cli, tmp_path: Path, setting: str, needle: str):
    mine = tmp_path / "stack.yaml"
    mine.write_text(f"stacks:\n  megatron-core: {{{setting}}}\n")
    r = cli("--catalog", str(mine), "plan", "llama-3.1-8b", "--gpus", "8", "--format", "json")
    assert_one_line_error(r, "stack 'megatron-core'", needle)
    assert r.out == ""


def test_a_dispatcher_a_user_adds_is_planned_with(cli, tmp_path: Path):
    """A stack's MoE dispatchers are names a user may add (a newer Megatron dispatcher): the loader takes a new name
    in moe_dispatchers and moe_permute, and `plan --moe-dispatcher` uses it; the permute bytes are checked against the
    stack's dispatchers instead (the case above)."""
    mine = tmp_path / "stack.yaml"
    mine.write_text("stacks:\n  megatron-core:\n    moe_dispatchers: {alltoall: expert, flex: node}\n"
                    "    moe_permute: {alltoall: 4, flex: 40, source: mine}\n")
    argv = ("plan", "mixtral-8x7b", "--gpus", "64", "--format", "json", "--layout", "ep=8")
    r = cli("--catalog", str(mine), *argv, "--moe-dispatcher", "flex")
    assert r.code == 0, r.err
    base = cli("--catalog", str(mine), *argv)
    assert r.json()["facts"]["step_time"]["value"] != base.json()["facts"]["step_time"]["value"]


def test_a_valid_stack_override_is_honoured(cli, tmp_path: Path):
    """The strict readers accept what the catalog's own entries use: a stack that overlaps nothing and offers
    blocking TP only plans, and its #1 layout's TP communication is then blocking."""
    mine = tmp_path / "stack.yaml"
    mine.write_text("stacks:\n  megatron-core: {overlap: {tp: false, pp: false, grad_reduce: false,"
                    " param_gather: false, cp: false}, tp_overlap_modes: [none], tp_overlap_split: false}\n")
    r = cli("--catalog", str(mine), "plan", "llama-3.1-70b", "--gpus", "64", "--layout", "tp=8", "--format", "json")
    assert r.code == 0, r.err
    assert r.json()["facts"]["tp_overlap"] == "none"


@pytest.mark.parametrize("row,needle", [
    ("hopper: {gemm_plateau: {bf16: 7}}", "gemm_plateau maps each dtype to a fraction"),
    ("hopper: {gemm_plateau: {bf16: 0}}", "gemm_plateau maps each dtype to a fraction"),
    ("hopper: {gemm_plateau: {bf16: fast}}", "field 'gemm_plateau.bf16' must be a number"),
    ("size_curve: {fp8_cast_bytes: 0}", "fp8_cast_bytes must be a number of bytes > 0"),
])
def test_malformed_kernel_row_is_refused(cli, tmp_path: Path, row: str, needle: str):
    """A GEMM plateau of 7 (700% of the datasheet peak) used to plan at an MFU of 140%."""
    mine = tmp_path / "kernels.yaml"
    mine.write_text(f"kernels:\n  {row}\n")
    r = cli("--catalog", str(mine), "plan", "llama-3.1-8b", "--gpus", "8", "--format", "json")
    assert_one_line_error(r, "kernel", needle)


@pytest.mark.parametrize("gpu,text,needle", [
    # each on a GPU whose plan reads that entry itself: the default fit is A100's (Hopper has its own), the links
    # a two-node H100 plan's
    ("a100-80gb-sxm", "calibrations:\n  training: {framework_efficiency: 5}\n",
     "framework_efficiency must be a fraction in (0, 1]"),
    ("h100-sxm", "calibrations:\n  training: {framework_efficiency_by_architecture: {hopper: {value: 2, fit: x}}}\n",
     "framework_efficiency_by_architecture.hopper must be a fraction"),
    ("h100-sxm", "calibrations:\n  training: {framework_efficiency_by_architecture: 7}\n",
     "field 'framework_efficiency_by_architecture' must be a map"),
    ("h100-sxm", "interconnects:\n  ib-ndr: {bw_gbps: 0}\n", "catalog interconnect 'ib-ndr': bw_gbps must be > 0"),
    ("h100-sxm", "interconnects:\n  nvlink-4: {busbw_eff: 1.7}\n", "busbw_eff in (0, 1]"),
])
def test_malformed_fit_or_link_is_refused(cli, tmp_path: Path, gpu: str, text: str, needle: str):
    """A framework efficiency of 2 used to plan H100 runs at an MFU of 134%; a map where a fit belongs, a traceback;
    a negative link bandwidth, nonsense step times. Each is refused in one line."""
    mine = tmp_path / "fit.yaml"
    mine.write_text(text)
    r = cli("--catalog", str(mine), "plan", "llama-3.1-8b", "--gpu", gpu, "--gpus", "16", "--format", "json")
    assert_one_line_error(r, needle)

"""`aiinfra kernels`: kernel measurements → a kernels.yaml row, and the catalog's figures held against them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.loader import set_user_catalogs
from aiinfra.errors import AiinfraError
from aiinfra.perf import kernel_fit as kf
from aiinfra.perf.compute import _interp, gemm_time, kernel_row, kernel_table
from aiinfra.perf.commands import kernels
from tests.conftest import assert_one_line_error

ROOT = Path(__file__).resolve().parents[2]
H200_CUDNN = ROOT / "examples" / "kernels-h200-cudnn-frontend.yaml"


def _doc(**kw) -> dict:
    return {"kind": "kernel-measurements", "device": "test GPU", "date": "2026-12-03", "source": "test", **kw}


def _fit(doc: dict, key: str = "h100-sxm"):
    g = gpu(key)
    _, base_row = kernel_row(g)
    return kf.fit_row(kf.parse_measurements(doc), g, kernel_table(g), base_row)


def test_published_h200_cudnn_timings_give_back_the_hopper_attention_curves():
    """NVIDIA/cudnn-frontend benchmark/sdpa_benchmark_training/results/h200_919_only_cudnn/llama3.1_20260227_034703.csv
    (commit df73764): cuDNN 9.19.1 on an NVIDIA H200, BF16, 64 query / 8 K/V heads of 128, batch 1; the file's
    fwd_time_ms / bwd_time_ms, entered as seconds in examples/kernels-h200-cudnn-frontend.yaml. Fitted against
    H200's 989 TFLOPS, they give the published TFLOPS columns back (8k causal: 644 / 541 = 0.651 / 0.547), which
    are the figures kernels.yaml's hopper row holds: every length within 0.002, and every catalog time within
    0.3% of the measured one."""
    res = kernels(gpu("h200-sxm"), yaml.safe_load(H200_CUDNN.read_text()), source=str(H200_CUDNN))
    row = res.facts["row"]
    hopper = kernel_row(gpu("h100-sxm"))[1]
    for part in ("attention_fwd", "attention_bwd", "attention_fwd_full", "attention_bwd_full"):
        fitted = dict((int(s), e) for s, e in row[part]["bf16_cudnn"])
        assert fitted.keys() == {2048, 4096, 8192, 16384, 32768}
        for s, e in hopper[part]["bf16"]:
            assert fitted[int(s)] == pytest.approx(e, abs=0.002), (part, s)
        assert row[part]["bf16"] == row[part]["bf16_cudnn"]  # cuDNN is the route a stack naming none gets
        assert row[part]["bf16_fa2"] == hopper[part]["bf16_fa2"]  # not measured: kept, and named as kept
    assert row["attention_fwd"]["bf16"][2] == [8192, 0.651] and row["attention_bwd"]["bf16"][2] == [8192, 0.547]
    assert all(abs(c["catalog_over_measured"] - 1) < 0.003 for c in res.facts["comparison"])
    assert res.facts["gemm_deviation"]["value"] is None and not res.warnings
    other = kernels(gpu("h100-sxm"), yaml.safe_load(H200_CUDNN.read_text()))  # same peak, another part: said
    assert "does not name H100" in other.warnings[0]
    assert "Kept from the catalog row 'hopper'" in row["source"] and "gemm_plateau.bf16" in row["source"]


def test_published_h200_head_dim_64_timings_give_back_the_hopper_d64_figures():
    """The same commit's gpt_oss_20260227_034819.csv (NVIDIA/cudnn-frontend benchmark/sdpa_benchmark_training/
    results/h200_919_only_cudnn, df73764): cuDNN 9.19.1 on the same H200, GPT-OSS's 64 query / 8 K/V heads of 64,
    batch 2, causal with a 1,024-token window, FLOPs on the attended positions. Its times, in the same example file,
    fit to the file's TFLOPS columns over 989 (8k: 349 / 300 → 0.353 / 0.303), the figures kernels.yaml's hopper
    row holds as attention_*_d64, about 0.55 of the head-dim-128 ones."""
    res = kernels(gpu("h200-sxm"), yaml.safe_load(H200_CUDNN.read_text()), source=str(H200_CUDNN))
    row, hopper = res.facts["row"], kernel_row(gpu("h100-sxm"))[1]
    for part in ("attention_fwd_d64", "attention_bwd_d64"):
        fitted = dict((int(s), e) for s, e in row[part]["bf16_cudnn"])
        assert fitted.keys() == {2048, 4096, 8192, 16384, 32768}
        for s, e in hopper[part]["bf16"]:
            assert fitted[int(s)] == pytest.approx(e, abs=0.002), (part, s)
    assert row["attention_fwd_d64"]["bf16"][2] == [8192, 0.353] and row["attention_bwd_d64"]["bf16"][2] == [8192, 0.303]
    thin = [c for c in res.facts["comparison"] if "d=64 window 1024" in c["shape"]]
    assert len(thin) == 10 and all(abs(c["catalog_over_measured"] - 1) < 0.003 for c in thin)
    assert "cudnn causal d64 window" in row["source"]


def test_published_h200_mla_timings_give_back_the_hopper_d192_figures():
    """The same commit's dsv3_20260227_034744.csv (NVIDIA/cudnn-frontend benchmark/sdpa_benchmark_training/results/
    h200_919_only_cudnn, df73764): cuDNN 9.19.1 on the same H200, DeepSeek-V3's MLA (128 heads, Q·K head dim 192,
    V 128), batch 1, causal. Its times, in the same example file, fit to 2·b·h·(192 + 128) FLOPs per attended pair
    forward (8k: 643 TFLOPS, the file's own column, → 0.650) and 2.5 forwards backward (0.430; the file counts
    2.6 and prints 442): the figures kernels.yaml's hopper row holds as attention_*_d192. A measured row keeps
    them, and the comparison puts the catalog within 0.3% of every MLA time."""
    res = kernels(gpu("h200-sxm"), yaml.safe_load(H200_CUDNN.read_text()), source=str(H200_CUDNN))
    row, hopper = res.facts["row"], kernel_row(gpu("h100-sxm"))[1]
    for part in ("attention_fwd_d192", "attention_bwd_d192"):
        fitted = dict((int(s), e) for s, e in row[part]["bf16_cudnn"])
        assert fitted.keys() == {2048, 4096, 8192}
        for s, e in hopper[part]["bf16"]:
            assert fitted[int(s)] == pytest.approx(e, abs=0.002), (part, s)
    assert row["attention_fwd_d192"]["bf16"][2] == [8192, pytest.approx(0.650, abs=0.002)]
    assert row["attention_bwd_d192"]["bf16"][2] == [8192, pytest.approx(0.430, abs=0.002)]
    mla = [c for c in res.facts["comparison"] if "d=192/128" in c["shape"]]
    assert len(mla) == 6 and all(abs(c["catalog_over_measured"] - 1) < 0.003 for c in mla)
    assert "cudnn causal d192" in row["source"]
    kept = _fit(_doc(attention=[a for a in yaml.safe_load(H200_CUDNN.read_text())["attention"] if a["head_dim"] == 128]))[0]
    assert kept["attention_fwd_d192"] == hopper["attention_fwd_d192"]  # not measured: the catalog's, carried


def test_head_dim_64_runs_fit_only_beside_their_route_and_a_window_needs_a_mask():
    """A head-dim-64 figure scales its route's head-dim-128 one, so head-dim-64 runs of a route with no larger-head
    causal run to keep or measure are refused in one line; head-dim-64 runs without a mask are compared but not
    fitted, and the fit says so; a sliding window without a causal mask is refused as a record."""
    doc = yaml.safe_load(H200_CUDNN.read_text())
    thin = [a for a in doc["attention"] if a["head_dim"] == 64]  # cuDNN: the hopper row has no bf16_cudnn to keep
    with pytest.raises(AiinfraError, match="head-dim-64 attention measured for bf16_cudnn without causal runs"):
        kernels(gpu("h200-sxm"), dict(doc, attention=thin))
    nomask = dict(thin[0], causal=False, window=None)
    res = kernels(gpu("h200-sxm"), dict(doc, attention=doc["attention"] + [nomask]))
    assert any("1 attention runs (no mask at head dim 64" in n for n in res.warnings)
    with pytest.raises(AiinfraError, match="sliding window needs a causal mask"):
        kernels(gpu("h200-sxm"), dict(doc, attention=[dict(thin[0], causal=False)]))


def test_the_best_gemm_sets_the_plateau_as_mamf_does():
    """stas00/ml-engineering "Maximum Achievable Matmul FLOPS" table: H100 SXM BF16 792.1 TFLOPS at
    6144x17920x2816 → 792.1 / 989 = 0.801, kernels.yaml's hopper bf16 plateau. A slower shape beside it does not
    lower the plateau; one size point cannot replace the shared size curve, and the result says so."""
    row, notes = _fit(_doc(gemm=[{"dtype": "bf16", "m": 6144, "n": 17920, "k": 2816, "tflops": 792.1},
                                 {"dtype": "bf16", "m": 4096, "n": 4096, "k": 4096, "tflops": 650.0}]))
    assert row["gemm_plateau"]["bf16"] == row["gemm_plateau"]["fp16"] == pytest.approx(0.801, abs=5e-4)
    assert row["gemm_plateau"]["fp8"] == 0.81  # Transformer Engine's FP8 route, not measured: kept
    assert "gemm_size_curve_us" not in row and any("shared size curve stays" in n for n in notes)


def _grid_from(curve, plateau: float, g, slow_small: float = 1.0) -> list[dict]:
    """Times a GPU would measure on the harness's shape grid if it ran at plateau × curve (small GEMMs, under
    16 µs at peak, `slow_small` times that)."""
    from aiinfra.perf.kernel_measure import GEMM_SHAPES

    pk = g.peak_flops("bf16")
    out = []
    for m, n, k in GEMM_SHAPES:
        us = 2 * m * n * k / pk * 1e6
        eff = plateau * float(_interp(us, curve)) * (slow_small if us < 16 else 1.0)
        out.append({"dtype": "bf16", "m": m, "n": n, "k": k, "seconds": us / 1e6 / eff})
    return out


def test_a_size_curve_fitted_on_the_harness_grid_predicts_the_measured_times():
    """Round trip through the harness's own shape grid: a GPU that runs the shared size curve gives that curve
    back at its knots (within the interpolation between them), and one whose small GEMMs (< 16 µs at peak) run 20%
    slower gets a lower curve whose predicted times sit within 6% of every measured one, where the shipped row
    is off by up to 25%."""
    g = gpu("h100-sxm")
    shared = kernel_table(g).size_curve_us
    row, notes = _fit(_doc(gemm=_grid_from(shared, 0.80, g)))
    assert not notes
    curve = row["gemm_size_curve_us"]
    assert curve[0][0] == 0.0 and len(curve) > 8 and curve[-1][0] > 1000
    for us, frac in curve[1:]:
        assert frac == pytest.approx(float(_interp(us, shared)), abs=0.03), us
    doc = _doc(gemm=_grid_from(shared, 0.80, g, slow_small=0.8))
    row, _ = _fit(doc)
    mine = kernel_table(g).__class__(**{**kernel_table(g).__dict__, "gemm_plateau": row["gemm_plateau"],
                                        "size_curve_us": tuple(map(tuple, row["gemm_size_curve_us"]))})
    worst_fitted = worst_shipped = 0.0
    for r in kf.parse_measurements(doc).gemm:
        worst_fitted = max(worst_fitted, abs(float(gemm_time(r.m, r.n, r.k, g, "bf16", mine)) / r.time_s - 1))
        worst_shipped = max(worst_shipped, abs(float(gemm_time(r.m, r.n, r.k, g, "bf16", kernel_table(g))) / r.time_s - 1))
    assert worst_fitted < 0.06 < 0.2 < worst_shipped


def test_the_fitted_row_is_a_catalog_file_the_step_time_model_reads(tmp_path):
    """The --out document, given back with --catalog, becomes the GPU's own kernel row (before its architecture's):
    attention measured 10% slower than the catalog's figure at every length makes the attention part of a step
    exactly 1/0.9 as long, and the row's source names the device and date it was measured on."""
    from aiinfra.catalog.models import model
    from aiinfra.perf.training import step_time

    g = gpu("h100-sxm")
    kt = kernel_table(g)
    pk = g.peak_flops("bf16")
    att = []
    for s in (2048, 4096, 8192, 16384, 32768):
        f, b = kt.attention("", s)
        fl = 4.0 * 64 * s * s * 128 * 0.5
        att.append({"route": "cudnn", "causal": True, "seq": s, "batch": 1, "heads": 64, "kv_heads": 8, "head_dim": 128,
                    "fwd_seconds": fl / (pk * f * 0.9), "bwd_seconds": 2.5 * fl / (pk * b * 0.9)})
    row, _ = _fit(_doc(attention=att))
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump(kf.catalog_document(g.key, row, kf.parse_measurements(_doc(attention=att)).date)))
    m = model("llama-3.1-8b")
    args = dict(tp=1, pp=1, dp=8, global_batch=64, seq=8192, dtype="bf16")
    before = step_time(m, g, **args).step
    set_user_catalogs([f])
    try:
        after_kt = kernel_table(g)
        after = step_time(m, g, **args).step
    finally:
        set_user_catalogs([])
    assert after_kt.arch == "h100-sxm" and "Measured on test GPU on 2026-12-03" in after_kt.source

    def att_s(step):
        return next(float(p.value) for p in step.parts if p.name == "attention")

    assert att_s(after) == pytest.approx(att_s(before) / 0.9, rel=2e-3)


@pytest.mark.parametrize("doc,why", [
    (_doc(gemm=[{"dtype": "bf16", "m": 8192, "n": 8192, "k": 8192, "tflops": 1200}]), "faster GPU than h100-sxm"),
    (_doc(gemm=[{"dtype": "bf16", "m": 8, "n": 8, "k": 8, "tflops": 1, "seconds": 1}]), "not both"),
    (_doc(gemm=[{"dtype": "int8", "m": 8, "n": 8, "k": 8, "tflops": 1}]), "gemm.0.dtype"),
    (_doc(gemm=[{"dtype": "bf16", "m": 8, "n": 8, "k": 8, "tflops": 1, "tile": 128}]), "gemm.0.tile"),
    (_doc(), "no gemm or attention"),
    ({**_doc(gemm=[{"dtype": "bf16", "m": 8, "n": 8, "k": 8, "tflops": 1}]), "kind": "kernels"}, "kind"),
])
def test_bad_measurements_are_refused_by_name(doc, why):
    """A setting the fit cannot honour (an unknown field or dtype, both a time and a rate, a rate above the GPU's
    peak: measurements of another GPU) is refused in one line, never dropped."""
    with pytest.raises(AiinfraError, match=why):
        _fit(doc)


def test_cli_fits_a_file_writes_the_catalog_and_refuses_bad_input(cli, tmp_path, monkeypatch):
    """`aiinfra kernels --from FILE --out CAT` writes a catalog file that `aiinfra --catalog CAT plan` reads; a
    broken measurement file, or measuring where PyTorch is missing, is one line on stderr, exit 2, stdout empty,
    and no catalog file is written."""
    out = tmp_path / "k.yaml"
    r = cli("kernels", "--gpu", "h200-sxm", "--from", str(H200_CUDNN), "--out", str(out), "--format", "json")
    assert r.code == 0, r.err
    assert r.json()["facts"]["catalog_file"] == yaml.safe_load(out.read_text())
    r = cli("--catalog", str(out), "plan", "llama-3.1-8b", "--gpu", "h200-sxm", "--gpus", "8", "--global-batch", "64",
            "--format", "json")
    assert r.code == 0, r.err
    bad = tmp_path / "bad.yaml"
    bad.write_text(H200_CUDNN.read_text().replace("head_dim: 128", "head_dim: 0", 1))
    out2 = tmp_path / "k2.yaml"
    r = cli("kernels", "--gpu", "h200-sxm", "--from", str(bad), "--out", str(out2))
    assert_one_line_error(r, "attention.0.head_dim")
    assert r.out == "" and not out2.exists()
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch → ImportError, as on a machine without PyTorch
    r = cli("kernels", "--gpu", "h200-sxm", "--out", str(out2))
    assert_one_line_error(r, "needs PyTorch")
    assert r.out == "" and not out2.exists()


def test_the_standalone_measurement_entry_point_refuses_in_one_line(monkeypatch, capsys):
    """`python -m aiinfra.perf.kernel_measure` (for a GPU host with PyTorch and nothing else of aiinfra's): an
    unknown option, or no PyTorch, is one line on stderr and exit 2, with nothing on stdout."""
    from aiinfra.perf.kernel_measure import main

    assert main(["--bogus"]) == 2
    monkeypatch.setitem(sys.modules, "torch", None)
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 2 and "needs PyTorch" in err


def test_the_harness_runs_its_kernels_and_its_output_fits():
    """The measuring code itself, on whatever PyTorch finds (the CPU where there is no GPU: a test of the harness,
    not a measurement): every record it writes parses, and fits against a GPU whose peak it cannot exceed."""
    pytest.importorskip("torch")
    from aiinfra.perf.kernel_measure import measure

    doc = measure(shapes=((64, 64, 64), (128, 256, 64)), lengths=(128, 256), dtypes=("bf16",), routes=("fa2",),
                  min_time_s=0.002, repeats=2, allow_cpu=True)
    meas = kf.parse_measurements(yaml.safe_load(yaml.safe_dump(doc)))
    cases = {(s, c, d) for s in (128, 256) for c, d in ((True, 128), (False, 128), (True, 64))}
    assert len(meas.gemm) == 2 and {(a.seq, a.causal, a.head_dim) for a in meas.attention} <= cases
    assert meas.attention, doc.get("skipped")
    row, _ = _fit(yaml.safe_load(yaml.safe_dump(doc)), "h100-sxm")
    assert 0 < row["gemm_plateau"]["bf16"] < 1 and row["attention_fwd"]["bf16"] == row["attention_fwd"]["bf16_fa2"]
    if any(a.head_dim == 64 for a in meas.attention):  # the thin-head runs fit the route's head-dim-64 figures
        assert row["attention_fwd_d64"]["bf16_fa2"] == row["attention_fwd_d64"]["bf16"]


@pytest.mark.parametrize("curve", ["[[0, 0.1], [4, 1.3]]", "[[4, 0.5], [0, 0.1]]", "[]", "[[1, 0]]"])
def test_a_row_size_curve_must_be_fractions_in_ascending_size(tmp_path, curve):
    """A row's own gemm_size_curve_us (what `aiinfra kernels --out` writes) holds fractions of the plateau in (0, 1]
    at ascending times; anything else is refused in one line naming the row, not read as a speed-up."""
    f = tmp_path / "k.yaml"
    f.write_text(f"kernels:\n  hopper: {{gemm_size_curve_us: {curve}}}\n")
    set_user_catalogs([f])
    try:
        with pytest.raises(AiinfraError, match=r"kernel( table)? 'hopper'"):
            kernel_table(gpu("h100-sxm"))
    finally:
        set_user_catalogs([])

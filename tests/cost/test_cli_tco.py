"""`aiinfra tco` and `aiinfra catalog prices` as a user runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import aiinfra
from tests.conftest import assert_one_line_error


def test_tco_json_reports_owned_cloud_breakeven_and_recommendation(cli):
    r = cli("tco", "--gpus", "256", "--gpu", "h100-sxm", "--utilization", "0.7", "--years", "4",
            "--cloud", "aws-p5", "--term", "all", "--gpu-hours", "100000", "--tokens-per-s", "1000",
            "--format", "json")
    assert r.code == 0, r.err
    doc = r.json()
    assert set(doc) == {"title", "facts", "assumptions", "warnings"}  # one object, like every command
    f = doc["facts"]
    offers = f["offers"]
    assert [o["term"] for o in offers] == ["on-demand", "1y", "3y", "spot"]
    assert offers[0]["usd_per_gpu_hour"] == 6.88
    assert f["nodes"] == 32 and f["owned_usd_per_gpu_hour"]["unit"] == "$/GPU-h" and f["capex"]["value"] > 0
    assert len(f["jobs"]) == 5 and f["jobs"][0]["option"] == "on-prem"
    # The 3-year term is the cheapest option in its own table, so it is the recommendation.
    cheapest = min(f["options"], key=lambda o: o["total_usd"])
    assert cheapest["option"] == "cloud aws-p5 3y" == f["recommended_option"] and f["recommendation"] == "cloud"
    assert "2023-05-31" in r.err  # the DGX H100 price is stale and says when it was observed
    assert any("prices.yaml:aws-p5" in a and "observed 2026-11-09" in a for a in doc["assumptions"])


def test_tco_explain_shows_sources(cli):
    r = cli("tco", "--gpus", "8", "--cloud", "p5.48xlarge", "--explain")
    assert r.code == 0, r.err
    assert "CRF" in r.out and "prices.yaml:aws-p5" in r.out


def test_hybrid_from_csv_and_html_plot(cli, tmp_path):
    csv = tmp_path / "demand.csv"
    csv.write_text("hour,gpus\n" + "".join(f"{h},{256 if h % 100 < 5 else 64}\n" for h in range(2000)))
    out = tmp_path / "cost.html"
    r = cli("tco", "--demand", str(csv), "--hybrid", "--cloud", "aws-p5", "--plot", str(out), "--format", "json")
    assert r.code == 0, r.err
    f = r.json()["facts"]
    hyb = f["hybrid"]
    assert 0 < hyb["owned_baseline_gpus"] < 256
    assert hyb["saving_vs_cheaper_pure_option_usd"]["value"] > 0
    # The hybrid is the cheapest option in the table, so it is what is recommended (and drawn thicker).
    assert f["recommendation"] == "hybrid" and f["cheapest_option"] == f["recommended_option"]
    html = out.read_text()
    assert "plotly" in html.lower()
    assert "on-prem (256 GPUs)" in html and "aws-p5 on-demand" in html and "hybrid (own" in html
    assert f["plot"] == str(out) and oct(out.stat().st_mode & 0o777) == "0o644"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cost")]


def test_plot_marks_breakeven_within_horizon(tmp_path):
    """Lines start at their up-front cost and grow by their monthly cost; a breakeven inside the
    horizon is drawn and labelled."""
    from aiinfra.cost.plot import Series, figure, write

    fig = figure([Series("own", 1200.0, 10.0), Series("rent", 0.0, 110.0)], 24, [("rent", 12.0), ("x", 99.0)], "t")
    assert list(fig.data[0].y[:2]) == [1200.0, 1210.0] and fig.data[1].y[-1] == pytest.approx(110 * 24)
    labels = [a.text for a in fig.layout.annotations]
    assert labels == ["breakeven rent: 12.0 months"]
    out = write(fig, tmp_path / "p.html")
    assert "breakeven rent" in out.read_text()


@pytest.mark.skipif(not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
                    reason="PNG export through kaleido needs Chrome/Chromium (CI installs chromium)")
def test_png_plot(cli, tmp_path):
    out = tmp_path / "cost.png"
    r = cli("tco", "--gpus", "64", "--cloud", "aws-p5", "--plot", str(out))
    assert r.code == 0, r.err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_csv_row_names_the_line(cli, tmp_path):
    csv = tmp_path / "demand.csv"
    csv.write_text("hour,gpus\n0,8\n1,eight\n")
    assert_one_line_error(cli("tco", "--demand", str(csv)), "demand.csv:3", "eight")


@pytest.mark.parametrize("args,fragment,more", [
    (["--gpus", "8", "--utilization", "0"], "utilization must be at least 0.001, got 0", None),
    (["--gpus", "8", "--utilization", "1e-320"], "utilization must be at least 0.001", None),  # was inf $/busy hour
    (["--gpus", "8", "--tokens-per-s", "1e-320"], "tokens_per_s must be at least 0.001", None),
    (["--gpus", "8", "--utilization", "1.2"], "utilization must be at most 1, got 1.2", None),
    (["--gpus", "8", "--node-price", "-1"], "node_price must be at least 0, got -1", None),
    (["--gpus", "8", "--electricity", "-0.1"], "electricity price must be between 0 and 100", None),
    (["--gpus", "8", "--colo", "-10"], "out of range", None),
    (["--gpus", "2147483648"], "gpus must be at most 1,000,000", "2147483648"),
    (["--gpus", "8", "--years", "1e308"], "years must be at most 50", None),
    (["--hybrid", "--peak", "5e7"], "peak must be at most 1,000,000", None),
    (["--gpus", "8", "--cloud", "p5.48xl"], "unknown instance 'p5.48xl'; closest: p5.48xlarge", None),
    (["--gpus", "8", "--cloud", "aws-p5", "--term", "5y"], "unknown pricing term '5y'", None),
    (["--gpus", "8", "--plot", "x.svg"], "must end in .html or .png", None),
    (["--utilization", "0.5"], "--gpus", None),
])
def test_bad_input_is_one_line_exit_2(cli, args, fragment, more):
    assert_one_line_error(cli("tco", *args), fragment, *([more] if more else []))


def test_negative_price_in_user_catalog(cli, tmp_path):
    f = tmp_path / "neg.yaml"
    f.write_text("kind: prices\nentries:\n  aws-p5: {on_demand: -55.04, observed: 2026-11-20, source: typo}\n")
    assert_one_line_error(cli("--catalog", str(f), "tco", "--gpus", "8", "--cloud", "aws-p5"), "negative")


def test_catalog_prices_older_than(cli):
    r = cli("catalog", "prices", "--older-than", "6m", "--format", "json")
    assert r.code == 0, r.err
    keys = {p["key"] for p in r.json()["facts"]["prices"]}
    assert "dgx-h100" in keys and "aws-p5" not in keys
    r = cli("catalog", "prices")
    assert r.code == 0 and "aws-p5" in r.out and "older than 6 months" in r.err
    assert_one_line_error(cli("catalog", "prices", "--older-than", "soon"), "not understood")


def test_console_script_subprocess():
    """The real entry point: one line and exit 2 for an unknown instance."""
    env = dict(os.environ, PYTHONPATH=str(Path(aiinfra.__file__).resolve().parents[1]))
    p = subprocess.run([sys.executable, "-m", "aiinfra", "tco", "--gpus", "8", "--cloud", "p5.48xlargee"],
                       check=False, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "closest" in p.stderr


def test_bom_file_replaces_per_node_estimate(cli, tmp_path):
    """A 1-SU DGX H100 design (31 nodes, 8 leaf + 4 spine; SuperPOD RA Table 4) costed from a BOM file."""
    f = tmp_path / "bom.yaml"
    f.write_text(
        "items:\n"
        "  - {category: compute, item: dgx-h100, quantity: 31, unit_power_w: 10200, reason: 1 SU minus UFM node}\n"
        "  - {category: fabric, item: qm9700, quantity: 12, unit_power_w: 0, reason: 8 leaf + 4 spine}\n"
    )
    r = cli("tco", "--bom", str(f), "--cloud", "aws-p5", "--format", "json")
    assert r.code == 0, r.err
    own = r.json()["facts"]
    assert own["gpus"] == 248 and own["capex_source"].startswith("BOM file")
    assert own["it_power_kw"]["value"] == pytest.approx(316.2)


@pytest.mark.parametrize("text,fragment", [
    ("items: []\n", "non-empty list"),
    ("- {category: x, item: dgx-h100, quantity: lots}\n", "line item 1"),
    ("- {category: x, item: flux-capacitor, quantity: 1}\n", "unknown priced item 'flux-capacitor'"),
    ("- {category: x, item: qm9700, quantity: 2}\n", "no GPU nodes"),
])
def test_bad_bom_file(cli, tmp_path, text, fragment):
    f = tmp_path / "bom.yaml"
    f.write_text(text)
    assert_one_line_error(cli("tco", "--bom", str(f), "--cloud", "aws-p5"), fragment)


def test_flat_full_demand_owns_everything_with_catalog_prices(cli, tmp_path):
    """A flat 128-GPU demand at 100 % with catalog prices (owned ≈ $2.5/GPU-h vs AWS p5 $6.88):
    the hybrid owns the whole peak and costs exactly the pure on-prem option."""
    csv = tmp_path / "flat.csv"
    csv.write_text("gpus\n" + "128\n" * 24 * 30)
    r = cli("tco", "--demand", str(csv), "--cloud", "aws-p5", "--format", "json", "--explain")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["facts"]["utilization"]["value"] == 1.0
    terms = {t["name"]: t["value"] for t in doc["explain"]}
    assert terms["owned baseline"] == 128
    assert terms["hybrid"] == pytest.approx(terms["pure on-prem"])
    assert terms["hybrid"] < terms["pure cloud"]


def test_unknown_gpu_and_preset_suggest_names(cli):
    assert_one_line_error(cli("tco", "--gpus", "8", "--gpu", "h10"), "unknown gpu 'h10'", "h100-sxm")
    assert_one_line_error(cli("tco", "--gpus", "8", "--pue", "arctic"), "unknown pue preset 'arctic'", "hyperscale")


def test_pue_and_electricity_numbers_must_be_finite_and_plausible(cli):
    """--pue nan and --electricity nan reached the comparison and failed there ("cannot be compared ... total nan")."""
    for flag, value, fragment in (("--pue", "nan", "PUE must be between 1 and 10"), ("--pue", "inf", "PUE must be"),
                                  ("--electricity", "nan", "between 0 and 100 $/kWh"),
                                  ("--electricity", "1e308", "between 0 and 100 $/kWh")):
        assert_one_line_error(cli("tco", "--gpus", "8", flag, value), fragment)
    assert cli("tco", "--gpus", "8", "--pue", "1.3", "--electricity", "0.1", "--format", "json").code == 0


def test_b200_compares_with_p6_b200(cli):
    """DGX B200 (14.3 kW, DGX B200 user guide) against AWS p6-b200.48xlarge $113.9328/h (SkyPilot v8)."""
    r = cli("tco", "--gpus", "16", "--gpu", "b200", "--format", "json")
    assert r.code == 0, r.err
    f = r.json()["facts"]
    assert f["it_power_kw"]["value"] == pytest.approx(2 * 14.3)
    offer = f["offers"][0]
    assert offer["offer"] == "aws-p6-b200" and offer["usd_per_gpu_hour"] == pytest.approx(113.9328 / 8, abs=1e-4)


@pytest.mark.parametrize("args,fragment", [
    (["--gpus", "64", "--dataset-tb", "100"], "--dataset-tb sizes the storage of the cluster --design builds"),
    (["--gpus", "64", "--facility", "owned", "--colo", "200"], "--facility owned pays no colocation"),
    (["--gpus", "64", "--gpu", "h100-sxm", "--node", "dgx-b200"], "conflicts with --node dgx-b200, which holds b200"),
])
def test_options_that_would_be_ignored_are_refused(cli, args, fragment):
    """Each of these used to be accepted and change nothing (or, for --gpu against --node, cost the node's B200s
    while --gpu said H100): one line, exit 2."""
    assert_one_line_error(cli("tco", *args), fragment)


def test_node_alone_decides_the_gpu_and_matching_options_still_run(cli):
    """--node without --gpu costs the node's GPU (DGX B200 against p6-b200); a --gpu naming the same GPU, --colo with
    a colocation facility and --dataset-tb with --design are accepted."""
    f = cli("tco", "--gpus", "16", "--node", "dgx-b200", "--format", "json").json()["facts"]
    assert f["offers"][0]["offer"] == "aws-p6-b200"
    for args in (["--gpu", "b200", "--node", "dgx-b200"], ["--colo", "200"], ["--design", "--dataset-tb", "100"]):
        assert cli("tco", "--gpus", "64", *args, "--format", "json").code == 0, args

"""API and page tests for the capabilities built on other branches (plan, infer, design, tco, mig,
fleet). Each test skips until its library module is merged, and must pass once it is.

Where a CLI command exists, the API answer is compared with `aiinfra … --format json --explain`
and the 422 sentence with the CLI's one line.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.web.test_api import cli_error, field_error, unlinked_numbers


def _cli_json(cli, *argv):
    r = cli(*argv, "--format", "json", "--explain")
    assert r.code == 0, r.err
    return json.loads(r.out)


# --- MIG -----------------------------------------------------------------------------------------

WORKLOADS = "workloads:\n  - {name: nb, count: 10, profile: 1g.10gb}\n  - {name: big, count: 2, profile: 3g.40gb}\n"


def test_mig_plan_api_equals_cli(client, cli, tmp_path):
    pytest.importorskip("aiinfra.sharing.packing")
    f = tmp_path / "w.yaml"
    f.write_text(WORKLOADS)
    r = client.post("/api/mig/plan", json={"gpu": "h100-sxm", "gpus": 8, "workloads": WORKLOADS})
    assert r.status_code == 200, r.text
    assert r.json() == _cli_json(cli, "mig", "plan", "--gpu", "h100-sxm", "--gpus", "8", "--workloads", str(f))


def test_mig_yaml_download_is_the_manifests(client):
    pytest.importorskip("aiinfra.sharing.packing")
    r = client.get("/api/mig/yaml", params={"gpu": "h100-sxm", "gpus": 8, "workloads": WORKLOADS})
    assert r.status_code == 200
    assert r.headers["content-disposition"] == 'attachment; filename="mig-plan.yaml"'
    docs = [d for d in yaml.safe_load_all(r.text) if d]
    cm = next(d for d in docs if d.get("kind") == "ConfigMap")
    config = yaml.safe_load(next(iter(cm["data"].values())))
    assert config["version"] == "v1" and "mig-configs" in config


def test_mig_dra_claims_and_nodes_are_the_clis(client, cli, tmp_path):
    """`aiinfra mig plan --nodes 1 --emit dra --k8s-version 1.33 --mig-mode static` prints DRA claim templates: the
    web's download with the same options is that text, and the page says which manifests it shows."""
    pytest.importorskip("aiinfra.sharing.packing")
    f = tmp_path / "w.yaml"
    f.write_text(WORKLOADS)
    params = {"gpu": "h100-sxm", "nodes": 1, "workloads": WORKLOADS, "emit": "dra", "k8s_version": "1.33",
              "mig_mode": "static"}
    r = client.get("/api/mig/yaml", params=params)
    assert r.status_code == 200, r.text
    want = cli("mig", "plan", "--gpu", "h100-sxm", "--nodes", "1", "--workloads", str(f), "--emit", "dra",
               "--k8s-version", "1.33", "--mig-mode", "static")
    assert want.code == 0, want.err
    assert r.text == want.out
    assert any(d and d.get("kind") == "ResourceClaimTemplate" for d in yaml.safe_load_all(r.text))
    page = client.get("/mig", params=params)
    assert page.status_code == 200 and "DRA ResourceClaims for Kubernetes 1.33 (static MIG)" in page.text
    bad = client.get("/mig", params={**params, "emit": "helm"})
    assert bad.status_code == 422 and "--emit must be one of mig-parted, dra" in bad.text


def test_mig_page_draws_slots_and_offers_yaml(client):
    pytest.importorskip("aiinfra.sharing.packing")
    r = client.get("/mig", params={"gpu": "h100-sxm", "gpus": "8", "workloads": WORKLOADS})
    assert r.status_code == 200
    assert 'id="mig-chart"' in r.text and 'id="yaml-download"' in r.text
    assert "7 compute slices, 8 memory slots" in r.text


def test_mig_bad_profile_is_422_next_to_workloads(client):
    pytest.importorskip("aiinfra.sharing.packing")
    bad = "workloads:\n  - {name: x, profile: 9g.90gb}\n"
    r = client.post("/api/mig/plan", json={"gpu": "h100-sxm", "gpus": 8, "workloads": bad})
    assert r.status_code == 422 and "9g.90gb" in r.json()["error"] and r.json()["field"] == "workloads"
    page = client.get("/mig", params={"gpu": "h100-sxm", "gpus": "8", "workloads": bad})
    assert page.status_code == 422
    assert field_error(page.text) == ("workloads", r.json()["error"])
    assert 'name="gpus" value="8"' in page.text


def test_mig_yaml_that_does_not_parse_names_the_line(client):
    pytest.importorskip("aiinfra.sharing.packing")
    r = client.post("/api/mig/plan", json={"gpu": "h100-sxm", "gpus": 8, "workloads": "workloads:\n  - {name: x\n"})
    assert r.status_code == 422
    assert re.match(r"workloads YAML does not parse at line \d+", r.json()["error"])


# --- TCO -----------------------------------------------------------------------------------------


def test_tco_api_equals_cli(client, cli):
    pytest.importorskip("aiinfra.cost.tco")
    r = client.post("/api/tco", json={"gpus": 256, "gpu": "h100-sxm", "utilization": 0.7, "gpu_hours": 100000})
    assert r.status_code == 200, r.text
    want = _cli_json(cli, "tco", "--gpus", "256", "--gpu", "h100-sxm", "--utilization", "0.7", "--gpu-hours", "100000")
    assert r.json() == want


@pytest.mark.parametrize(("body", "argv", "field"), [
    ({"gpus": 256, "utilization": 1.5}, ["--gpus", "256", "--utilization", "1.5"], "utilization"),
    ({"gpus": 256, "node_price": -1}, ["--gpus", "256", "--node-price", "-1"], "node_price"),
    ({"gpus": 256, "cloud": ["aws-p9"]}, ["--gpus", "256", "--cloud", "aws-p9"], None),
])
def test_tco_422_carries_the_cli_sentence(client, cli, body, argv, field):
    pytest.importorskip("aiinfra.cost.tco")
    r = client.post("/api/tco", json=body)
    assert r.status_code == 422
    assert r.json()["error"] == cli_error(cli, "tco", *argv)
    if field:
        assert r.json()["field"] == field


def test_tco_page_plots_cumulative_cost(client):
    pytest.importorskip("aiinfra.cost.tco")
    r = client.get("/tco", params={"gpus": "256", "gpu": "h100-sxm", "cloud": "aws-p5"})
    assert r.status_code == 200 and 'id="tco-chart"' in r.text and 'id="offers"' in r.text


# --- Design --------------------------------------------------------------------------------------


def test_design_api_equals_cli(client, cli):
    pytest.importorskip("aiinfra.cluster.design")
    r = client.post("/api/design", json={"gpus": 1024})
    assert r.status_code == 200, r.text
    assert r.json() == _cli_json(cli, "design", "--gpus", "1024")


def test_design_api_takes_every_cli_option_but_the_model_path(client, cli):
    """The storage, checkpoint, data-loading, failure and power options of `aiinfra design` through the API give the
    CLI's document; the model stays a parameter count on the web (no config.json path)."""
    pytest.importorskip("aiinfra.cluster.design")
    body = {"gpus": 512, "params": "70B", "copies": 2, "checkpoints_kept": 3, "bytes_per_param": 12, "dp": 64,
            "gds": False, "samples_per_s": 2.0, "bytes_per_sample": 1e6, "failure_rate": 3e-5, "load_factor": 0.8,
            "storage_kw": 40, "control_nodes": 3, "ufm_links": 2, "grad_bytes_per_param": 4}
    r = client.post("/api/design", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == _cli_json(cli, "design", "--gpus", "512", "--params", "70B", "--copies", "2",
                                 "--checkpoints-kept", "3", "--bytes-per-param", "12", "--dp", "64", "--no-gds",
                                 "--samples-per-s", "2.0", "--bytes-per-sample", "1e6", "--failure-rate", "3e-5",
                                 "--load-factor", "0.8", "--storage-kw", "40", "--control-nodes", "3", "--ufm-links", "2",
                                 "--grad-bytes-per-param", "4")
    assert r.json() != client.post("/api/design", json={"gpus": 512, "params": "70B"}).json()
    assert client.post("/api/design", json={"gpus": 512, "model": "/etc/passwd"}).status_code == 422


def test_design_superpod_4su_matches_the_ra(client):
    """DGX SuperPOD H100 RA Table 4 at 4 SU: 127 nodes, 32 leaf and 16 spine switches."""
    pytest.importorskip("aiinfra.cluster.design")
    d = client.post("/api/design", json={"gpus": None, "preset": "superpod", "su": 4}).json()
    terms = {t["name"]: t["value"] for t in d["explain"]}
    assert (terms["nodes"], terms["leaf switches"], terms["spine switches"]) == (127, 32, 16)


def test_design_422_carries_the_cli_sentence(client, cli):
    pytest.importorskip("aiinfra.cluster.design")
    r = client.post("/api/design", json={"gpus": 0})
    assert r.status_code == 422 and r.json()["error"] == cli_error(cli, "design", "--gpus", "0")
    page = client.get("/design", params={"gpus": "0", "dataset_tb": "5"})
    assert page.status_code == 422 and field_error(page.text)[0] == "gpus"
    assert 'name="dataset_tb" value="5"' in page.text


def test_design_library_spec_error_is_the_cli_sentence(client, cli):
    """DesignInput (pydantic) refuses a negative dataset: same sentence as the CLI's, as a 422."""
    pytest.importorskip("aiinfra.cluster.design")
    r = client.post("/api/design", json={"gpus": 64, "dataset_tb": -1})
    assert r.status_code == 422 and r.json()["field"] == "dataset_tb"
    assert r.json()["error"] == cli_error(cli, "design", "--gpus", "64", "--dataset-tb", "-1")


def test_design_page_has_bom_and_fabric_diagram(client):
    pytest.importorskip("aiinfra.cluster.design")
    r = client.get("/design", params={"gpus": "1024"})
    assert r.status_code == 200 and 'id="design-chart"' in r.text and 'id="bom"' in r.text
    for table in ("summary", "tiers", "bom"):
        assert unlinked_numbers(r.text, table) == [], table


# --- Plan ----------------------------------------------------------------------------------------


def test_plan_api_equals_cli(client, cli):
    pytest.importorskip("aiinfra.plan.search")
    r = client.post("/api/plan", json={"model": "llama-3.1-8b", "gpu": "h100-sxm", "gpus": "8", "seq": 4096})
    assert r.status_code == 200, r.text
    assert r.json() == _cli_json(cli, "plan", "llama-3.1-8b", "--gpu", "h100-sxm", "--gpus", "8", "--seq", "4096")


def test_plan_422_carries_the_cli_sentence(client, cli):
    pytest.importorskip("aiinfra.plan.search")
    r = client.post("/api/plan", json={"model": "llama-3.1-8b", "gpus": "0"})
    assert r.status_code == 422 and r.json()["field"] == "gpus"
    assert r.json()["error"] == cli_error(cli, "plan", "llama-3.1-8b", "--gpus", "0")


def test_plan_page_scatter_and_table(client):
    pytest.importorskip("aiinfra.plan.search")
    r = client.get("/plan", params={"model": "llama-3.1-8b", "gpus": "8", "seq": "4096"})
    assert r.status_code == 200 and 'id="plan-chart"' in r.text and 'id="plans"' in r.text
    assert "<th>ZeRO</th><th>offload</th>" in r.text  # what each layout offloads, beside its ZeRO stage


# --- Infer ---------------------------------------------------------------------------------------


def test_infer_api_equals_cli(client, cli):
    pytest.importorskip("aiinfra.perf.inference")
    body = {"model": "llama-3.1-8b", "gpu": "l40s", "prompt": 2048, "output": 256, "batch": 8, "price": ["1.5"]}
    r = client.post("/api/infer", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == _cli_json(cli, "infer", "llama-3.1-8b", "--gpu", "l40s", "--prompt", "2048", "--output", "256",
                                 "--batch", "8", "--price", "1.5")


def test_infer_api_takes_the_engine_as_the_cli_does(client, cli):
    """`--engine tensorrt-llm` (efficiencies fitted on its published benchmarks, engines.yaml) through the API gives
    the CLI's document; an engine the catalog lacks is the CLI's one line, on the engine field."""
    pytest.importorskip("aiinfra.perf.inference")
    body = {"model": "llama-3.1-70b", "gpu": "h100-sxm", "tp": 4, "prompt": 2048, "output": 128, "batch": 16,
            "engine": "tensorrt-llm"}
    r = client.post("/api/infer", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == _cli_json(cli, "infer", "llama-3.1-70b", "--gpu", "h100-sxm", "--tp", "4", "--prompt", "2048",
                                 "--output", "128", "--batch", "16", "--engine", "tensorrt-llm")
    plain = client.post("/api/infer", json={**body, "engine": None}).json()
    assert plain != r.json()  # the engine's fitted efficiencies change the answer
    bad = client.post("/api/infer", json={**body, "engine": "vlm"})
    assert bad.status_code == 422 and bad.json()["field"] == "engine"
    assert bad.json()["error"] == cli_error(cli, "infer", "llama-3.1-70b", "--engine", "vlm")


def test_infer_422_carries_the_cli_sentence(client, cli):
    pytest.importorskip("aiinfra.perf.inference")
    r = client.post("/api/infer", json={"model": "llama-3.1-8b", "batch": 0})
    assert r.status_code == 422 and r.json()["field"] == "batch"
    assert r.json()["error"] == cli_error(cli, "infer", "llama-3.1-8b", "--batch", "0")


def test_infer_page_bars_per_sku(client):
    pytest.importorskip("aiinfra.perf.inference")
    pytest.importorskip("aiinfra.plan.recommend")
    r = client.get("/infer", params={"model": "llama-3.1-8b", "price": "h100-sxm=2.5"})
    assert r.status_code == 200 and 'id="infer-chart"' in r.text and 'id="skus"' in r.text


# --- Fleet ---------------------------------------------------------------------------------------


def test_fleet_simulated_finds_the_injected_faults(client):
    """A lost GPU (XID 79) and an XID 13 injected into the simulated fleet show up in the report."""
    pytest.importorskip("aiinfra.telemetry.simulate")
    spec = "hosts=2,gpus=4,model=h100-sxm,seed=3,faults=xid13:h1g2@60+lost:g1@120"
    r = client.post("/api/fleet", json={"simulate": spec, "columns": 10, "step_s": 30})
    assert r.status_code == 200, r.text
    f = r.json()["facts"]
    assert f["lost"] == ["sim-node-00/gpu1"]
    assert any(x["gpu"] == "sim-node-01/gpu2" and x["xid"] == 13 for x in f["xid"])
    assert len(f["heatmap"]["rows"]) == 8 and len(f["heatmap"]["times"]) == 10


def test_fleet_bad_simulate_spec_is_422(client):
    pytest.importorskip("aiinfra.telemetry.simulate")
    r = client.post("/api/fleet", json={"simulate": "hosts=x"})
    assert r.status_code == 422 and r.json()["field"] == "simulate" and "hosts" in r.json()["error"]


def test_fleet_prometheus_unreachable_is_422_and_only_http(client):
    pytest.importorskip("aiinfra.fleet.analysis")
    from aiinfra.cli.serve import bind

    sock = bind("127.0.0.1", 0)  # a port nobody answers on
    port = sock.getsockname()[1]
    sock.close()
    r = client.post("/api/fleet", json={"source": "prometheus", "prometheus": f"http://127.0.0.1:{port}"})
    assert r.status_code == 422 and r.json()["field"] == "prometheus"
    r = client.post("/api/fleet", json={"source": "prometheus", "prometheus": "file:///etc/passwd"})
    assert r.status_code == 422 and "http://" in r.json()["error"]


# --- missing capabilities ------------------------------------------------------------------------


@pytest.mark.parametrize(("module", "path", "api", "body"), [
    ("plan", "/plan", "/api/plan", {"model": "llama-3.1-8b"}), ("infer", "/infer", "/api/infer", {"model": "llama-3.1-8b"}),
    ("design", "/design", "/api/design", {"gpus": 8}), ("tco", "/tco", "/api/tco", {"gpus": 8}),
    ("mig", "/mig", "/api/mig/plan", {"gpu": "h100-sxm", "gpus": 8, "workloads": WORKLOADS}),
])
def test_missing_capability_shows_no_numbers(client, monkeypatch, module, path, api, body):
    """Without the library module the page says so plainly and the API answers 501, never numbers."""
    import importlib

    mod = importlib.import_module(f"aiinfra.web.pages.{module}")
    monkeypatch.setattr(mod, "has_module", lambda name: False)
    monkeypatch.setattr(mod, "require", _refuse)
    r = client.get(path, params={"gpus": "8"})
    assert r.status_code == 200
    assert "not in the library yet" in r.text and 'class="num"' not in r.text and "<form" not in r.text
    r = client.post(api, json=body)
    assert r.status_code == 501 and "not in the library yet" in r.json()["error"]


def _refuse(name):
    from aiinfra.web.common import MissingCapability

    raise MissingCapability(name)


# --- the API's defaults are the CLI's ------------------------------------------------------------

# (web spec, CLI module, CLI function, option names whose default differs on purpose → why)
MIRRORS = [
    ("size.TrainSpec", "aiinfra.cli.size", "train", {}),
    ("size.InferSpec", "aiinfra.cli.size", "infer", {}),
    ("size.FitsSpec", "aiinfra.cli.size", "fits", {}),
    ("plan.PlanSpec", "aiinfra.cli.plan", "command", {}),
    ("infer.InferPerfSpec", "aiinfra.cli.infer", "command", {}),
    ("tco.TcoForm", "aiinfra.cli.tco", "tco", {"term": "None on the CLI means ['on-demand'] (cli/tco.py)"}),
    ("design.DesignSpec", "aiinfra.cli.design", "design", {}),
    ("mig.MigPlanSpec", "aiinfra.cli.mig", "plan", {}),
]


@pytest.mark.parametrize(("spec", "module", "func", "differs"), MIRRORS)
def test_api_defaults_are_the_cli_defaults(spec, module, func, differs):
    """A request that leaves an option out gets what the command gives when the flag is left out."""
    import importlib
    import inspect
    from enum import Enum

    cli_mod = pytest.importorskip(module)
    page_mod, cls = spec.split(".")
    spec_cls = getattr(importlib.import_module(f"aiinfra.web.pages.{page_mod}"), cls)
    params = inspect.signature(getattr(cli_mod, func)).parameters
    checked = 0
    for name, field in spec_cls.model_fields.items():
        if name not in params or name in differs:
            continue
        cli_default = params[name].default
        checked += 1
        if cli_default is inspect.Parameter.empty:
            assert field.is_required(), f"{name} is required on the CLI"
            continue
        if isinstance(cli_default, Enum):
            cli_default = cli_default.value
        web_default = None if field.is_required() else field.default
        # A repeatable option's None and an empty list both mean "not given".
        assert _given(web_default) == _given(cli_default), (name, web_default, cli_default)
    assert checked >= 3


def _given(v):
    return None if v is None or v == [] else v


def test_tco_design_bom_api_equals_cli(client, cli):
    """`aiinfra tco --design --preset superpod --su 2` priced from the cluster designer's BOM."""
    pytest.importorskip("aiinfra.cost.design_bom")
    r = client.post("/api/tco", json={"design": True, "preset": "superpod", "su": 2, "cloud": ["aws-p5"], "term": ["3y"]})
    assert r.status_code == 200, r.text
    want = _cli_json(cli, "tco", "--design", "--preset", "superpod", "--su", "2", "--cloud", "aws-p5", "--term", "3y")
    assert r.json() == want
    r = client.post("/api/tco", json={"gpus": 64, "preset": "superpod"})
    assert r.status_code == 422 and r.json()["error"] == cli_error(cli, "tco", "--gpus", "64", "--preset", "superpod")


# --- Serve plan ----------------------------------------------------------------------------------

SERVE = {"model": "llama-3.1-70b", "gpu": "h100-sxm=2.5,h200-sxm=3.5,l40s=1.0", "rate": 20, "prompt": "2000:0.5",
         "output": "300:0.5", "ttft_ms": 500, "tpot_ms": 40, "quant": "bf16,fp8"}
SERVE_ARGV = ["serve-plan", "llama-3.1-70b", "--gpu", "h100-sxm=2.5", "--gpu", "h200-sxm=3.5", "--gpu", "l40s=1.0",
              "--rate", "20", "--prompt", "2000:0.5", "--output", "300:0.5", "--ttft-ms", "500", "--tpot-ms", "40",
              "--quant", "bf16", "--quant", "fp8"]


def test_serve_plan_api_equals_cli_and_its_manifests_are_the_clis(client, cli, tmp_path):
    """`aiinfra serve-plan` on the web: the README's example through the API is the CLI's document, and the manifests
    download is the file `--manifests` writes (serving.commands.winner_manifests for both)."""
    pytest.importorskip("aiinfra.serving.commands")
    r = client.post("/api/serve-plan", json=SERVE)
    assert r.status_code == 200, r.text
    assert r.json() == _cli_json(cli, *SERVE_ARGV)
    out = tmp_path / "serve.yaml"
    assert cli(*SERVE_ARGV, "--manifests", str(out)).code == 0
    m = client.post("/api/serve-plan/manifests", json=SERVE)
    assert m.status_code == 200 and m.headers["content-type"].startswith("application/yaml")
    assert list(yaml.safe_load_all(m.text)) == list(yaml.safe_load_all(out.read_text()))
    none = client.post("/api/serve-plan/manifests", json={**SERVE, "ttft_ms": 0.001})
    assert none.status_code == 422 and "no deployment meets the targets" in none.json()["error"]


@pytest.mark.parametrize(("change", "argv", "field"), [
    ({"gpu": "h100-sxm"}, ["--gpu", "h100-sxm"], "gpu"),
    ({"gpu": "h100-sxm=inf"}, ["--gpu", "h100-sxm=inf"], "gpu"),
    ({"rate": 1e12}, ["--gpu", "h100-sxm=2.5", "--rate", "1e12"], "rate"),
    ({"prompt": "many"}, ["--gpu", "h100-sxm=2.5", "--rate", "1", "--prompt", "many"], "prompt"),
    ({"percentile": "p95"}, ["--gpu", "h100-sxm=2.5", "--rate", "1", "--percentile", "p95"], "percentile"),
    ({"gpu_request": "x"}, ["--gpu", "h100-sxm=2.5", "--rate", "1", "--gpu-request", "x"], "gpu_request"),
])
def test_serve_plan_422_carries_the_cli_sentence(client, cli, change, argv, field):
    pytest.importorskip("aiinfra.serving.commands")
    r = client.post("/api/serve-plan", json={**SERVE, **change})
    assert r.status_code == 422
    assert r.json()["error"] == cli_error(cli, "serve-plan", "llama-3.1-70b", *argv)
    assert r.json()["field"] == field


def test_serve_plan_page_shows_the_winner_the_ranking_and_the_manifests(client):
    pytest.importorskip("aiinfra.serving.commands")
    r = client.get("/serve-plan", params=SERVE)
    assert r.status_code == 200
    assert "Winner: <b>" in r.text and 'id="deployments"' in r.text and 'id="serve-yaml"' in r.text
    assert "kind: Deployment" in r.text


# --- TCO with the CLI's files as form text ---------------------------------------------------------

BOM = ("items:\n"
       "  - {category: compute, item: dgx-h100, quantity: 31, unit_power_w: 10200, reason: 1 SU minus UFM node}\n"
       "  - {category: fabric, item: qm9700, quantity: 12, unit_power_w: 0, reason: 8 leaf + 4 spine}\n")


def test_tco_demand_and_bom_as_text_give_the_cli_numbers(client, cli, tmp_path):
    """The web takes the contents of `--demand` (hourly GPU CSV) and `--bom` (YAML line items) in the form, parsed
    by the CLI's own readers (cost.hybrid.parse_demand_csv, cost.capex.parse_bom): the same facts as the CLI reading
    the files, but the BOM's named source. A 1-SU DGX H100 BOM (31 nodes, SuperPOD RA Table 4) is 248 GPUs."""
    pytest.importorskip("aiinfra.cost.tco")
    demand = "gpus\n" + "\n".join(str(64 + 64 * (i % 24 > 18)) for i in range(24 * 30)) + "\n"
    (tmp_path / "demand.csv").write_text(demand)
    (tmp_path / "bom.yaml").write_text(BOM)
    r = client.post("/api/tco", json={"gpus": 64, "hybrid": True, "demand": demand, "cloud": ["aws-p5"]})
    assert r.status_code == 200, r.text
    want = _cli_json(cli, "tco", "--gpus", "64", "--hybrid", "--demand", str(tmp_path / "demand.csv"), "--cloud", "aws-p5")
    assert r.json()["facts"] == want["facts"]
    b = client.post("/api/tco", json={"bom": BOM, "cloud": ["aws-p5"]})
    assert b.status_code == 200, b.text
    want = _cli_json(cli, "tco", "--bom", str(tmp_path / "bom.yaml"), "--cloud", "aws-p5")["facts"]
    got = b.json()["facts"]
    assert got["gpus"] == want["gpus"] == 248 and got["capex"] == want["capex"]
    assert got["capex_source"] == "BOM in the form" and want["capex_source"].startswith("BOM file")
    bad = client.post("/api/tco", json={"gpus": 64, "hybrid": True, "demand": "gpus\nlots\n"})
    assert bad.status_code == 422 and bad.json()["field"] == "demand" and "'lots' is not a GPU count" in bad.json()["error"]
    bad = client.post("/api/tco", json={"bom": "- {category: x, item: qm9700, quantity: 2}\n"})
    assert bad.status_code == 422 and "no GPU nodes" in bad.json()["error"]

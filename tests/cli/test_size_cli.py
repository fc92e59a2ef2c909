"""`aiinfra size …` as a user runs it: outputs, explanations and one-line errors with exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import assert_one_line_error

TRAIN = ["size", "train", "llama-3.1-70b", "--gpu", "h100-sxm", "--tp", "8", "--pp", "2", "--dp", "4", "--zero", "1",
         "--recompute", "selective", "--seq", "4096", "--micro-batch", "1"]


def test_train_table_and_verdict(cli):
    r = cli(*TRAIN)
    assert r.code == 0, r.err
    assert "GB (1e9 B)" in r.out and "GiB (2^30 B)" in r.out
    assert "fits h100-sxm (80GB HBM3: 85.52 GB = 79.65 GiB visible)" in r.out


def test_train_json_explain_carries_formulas_and_sources(cli):
    r = cli(*TRAIN, "--format", "json", "--explain")
    doc = r.json()
    names = [t["name"] for t in doc["explain"]]
    assert names[:3] == ["weights", "gradients", "optimizer"] and names[-1] == "total per GPU"
    act = next(t for t in doc["explain"] if t["name"] == "activations")
    layers = act["parts"][0]
    assert "Korthikanti" in layers["inputs"]["per dense layer"]["sources"]["formula"]
    total = doc["explain"][-1]["value"]
    assert total == pytest.approx(sum(t["value"] for t in doc["explain"][:-1]))


def test_yaml_and_table_explain(cli):
    r = cli("size", "infer", "llama-3.1-8b", "--format", "yaml")
    assert r.code == 0 and yaml.safe_load(r.out)["facts"]["kv_bytes_per_token"] == 131072
    r = cli("size", "infer", "llama-3.1-8b", "--explain")
    assert "2 · L · max(n_kv / tp, 1) · d_head · bytes" in r.out and "source" in r.out


def test_fits_table(cli):
    r = cli("size", "fits", "llama-3.1-70b", "--quant", "int4", "--format", "json")
    rows = {row["gpu"]: row for row in r.json()["facts"]["fits"]}
    assert rows["h200-sxm"]["gpus"] == 1


def test_local_config_json(cli, tmp_path: Path):
    cfg = json.loads((Path(__file__).parents[2] / "src/aiinfra/catalog/data/models/llama-3.1-8b.json").read_text())
    path = tmp_path / "my-model" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    r = cli("size", "infer", str(path), "--format", "json")
    assert r.code == 0, r.err
    assert r.json()["facts"]["model"] == "my-model"


@pytest.mark.parametrize(
    "argv,fragments",
    [
        (["size", "train", "llama-3.1-7b"], ["unknown model 'llama-3.1-7b'", "closest", "llama-3.1-8b"]),
        (["size", "infer", "llama-3.1-8b", "--gpu", "H10"], ["unknown gpu 'H10'", "h100-sxm"]),
        (["size", "train", "llama-3.1-8b", "--tp", "3"], ["TP=3 does not divide the 32 attention heads"]),
        (["size", "train", "llama-3.1-8b", "--pp", "64"], ["PP=64 is larger than the 32 layers"]),
        (["size", "train", "mixtral-8x7b", "--ep", "3", "--dp", "3"], ["EP=3 does not divide the 8 experts"]),
        (["size", "train", "llama-3.1-8b", "--ep", "2", "--dp", "2"], ["needs an MoE model"]),
        (["size", "train", "llama-3.1-8b", "--seq", "0"], ["sequence length must be between 1"]),
        (["size", "train", "llama-3.1-8b", "--micro-batch", "-1"], ["--micro-batch must be between 1"]),
        (["size", "train", "llama-3.1-8b", "--tp", "0"], ["tp must be a whole number"]),
        (["size", "infer", "llama-3.1-8b", "--batch", "0"], ["batch must be positive"]),
        (["size", "infer", "llama-3.1-8b", "--context", "-5"], ["context must be positive"]),
        (["size", "infer", "llama-3.1-8b", "--quant", "int3"], ["unknown quantization 'int3'"]),
        (["size", "train", "llama-3.1-8b", "--recompute", "some"], ["unknown recompute mode"]),
        (["size", "train", "llama-3.1-8b", "--zero", "4"], ["ZeRO stage must be 0, 1, 2 or 3"]),
        (["size", "infer", "llama-3.1-8b", "--gpu-memory-utilization", "1.5"], ["must be in (0, 1]"]),
        (["size", "train", "llama-3.1-8b", "--seq", "abc"], ["--seq"]),
    ],
)
def test_bad_input_one_line_exit_2(cli, argv, fragments):
    assert_one_line_error(cli(*argv), *fragments)


def test_malformed_config_json(cli, tmp_path: Path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"hidden_size": 4096,\n "num_hidden_layers": }')
    assert_one_line_error(cli("size", "infer", str(broken)), "JSON does not parse", "broken.json:2")
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
                                      "intermediate_size": 11008, "vocab_size": 32000}))
    assert_one_line_error(cli("size", "infer", str(incomplete)), "missing the field 'num_attention_heads'")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"model_type": "llama", "hidden_size": -4096, "num_hidden_layers": 32,
                                 "num_attention_heads": 32, "intermediate_size": 11008, "vocab_size": 32000}))
    assert_one_line_error(cli("size", "infer", str(wrong)), "hidden")
    assert_one_line_error(cli("size", "infer", str(tmp_path / "nope.json")), "does not exist")


def test_console_script_exit_code_and_no_traceback():
    """The installed entry point (python -m aiinfra) maps bad input to exit 2 with one stderr line."""
    import aiinfra

    src = str(Path(aiinfra.__file__).resolve().parents[1])
    p = subprocess.run([sys.executable, "-m", "aiinfra", "size", "train", "gpt3", "--tp", "7"],
                       capture_output=True, text=True, env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"})
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "Traceback" not in p.stderr
    assert "TP=7 does not divide the 96 attention heads" in p.stderr

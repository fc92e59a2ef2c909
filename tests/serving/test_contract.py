"""The serving and sizing commands are registered library functions whose JSON carries their facts."""

from aiinfra.contract import registry


def test_commands_registered_with_facts_models():
    reg = registry()
    for name in ("size train", "size infer", "size fits", "serve-plan"):
        assert name in reg and reg[name].facts is not None, name


def test_size_infer_json_matches_its_facts_model(cli):
    reg = registry()
    r = cli("size", "infer", "qwen3-8b", "--gpu", "h100-sxm", "--engine", "vllm", "--format", "json")
    assert r.code == 0
    reg["size infer"].facts.model_validate(r.json()["facts"])
    r = cli("serve-plan", "qwen3-8b", "--gpu", "h100-sxm=2.5", "--rate", "4", "--format", "json")
    assert r.code == 0
    reg["serve-plan"].facts.model_validate(r.json()["facts"])

"""serve-plan beyond TP: pipeline stages across nodes, data-parallel attention + expert parallel for MoE, and
multi-node replicas rendered as LeaderWorkerSets (leaderworkerset.x-k8s.io/v1) that validate against the
LWS CRD schema shipped in catalog/data/crd_schemas (kubernetes-sigs/lws @ 060ab4d, v0.10.0-11) and whose
pod templates validate with kubernetes-validate."""

import jsonschema
import kubernetes_validate
import pytest

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.serving.commands import serve_plan
from aiinfra.serving.k8s import manifests
from aiinfra.serving.search import build_configs, decode_step
from aiinfra.serving.workload import Lengths, Targets, Workload
from aiinfra.sharing.lint import crd_schema

W = Workload(5, Lengths(2000), Lengths(300))


def _layouts(name, g, q):
    return {c.layout: c for c in build_configs(model(name), {g: (gpu(g), 2.0)}, W, quants=[q])}


def test_a_model_too_big_for_one_node_gets_pipeline_stages_across_nodes():
    """Llama 3.1 405B in bf16 (~810 GB) does not fit 8 × H100 80 GB: only TP8 × PP2/PP4 replicas over 2-4 nodes."""
    cs = _layouts("llama-3.1-405b", "h100-sxm", "bf16")
    assert set(cs) == {"TP8 × PP2", "TP8 × PP4"}
    assert cs["TP8 × PP2"].nodes == 2 and cs["TP8 × PP4"].nodes == 4
    r = serve_plan(model("llama-3.1-405b"), W, Targets(5.0, 0.15, "p90"), {"h100-sxm": (gpu("h100-sxm"), 2.5)},
                   quants=["bf16"])
    assert r.facts["feasible"] and r.facts["winner"]["nodes_per_replica"] >= 2 and r.facts["winner"]["pp"] >= 2


def test_pipeline_stages_add_capacity_not_single_sequence_speed():
    """One sequence still crosses every stage (and pp − 1 hops), so its TPOT is no better than TP alone;
    the KV pool grows with the stages."""
    cs = _layouts("llama-3.1-70b", "h100-sxm", "fp8")
    tp8, pp2 = cs["TP8"], cs["TP8 × PP2"]
    assert decode_step(pp2.dec, 1) >= decode_step(tp8.dec, 1) * 0.99
    assert pp2.slots_mem > 2 * tp8.slots_mem


def test_expert_parallel_with_data_parallel_attention_keeps_mla_kv_once():
    """DeepSeek-V3's MLA latent is replicated on every TP rank; with data-parallel attention each GPU keeps only
    its own sequences, so EP8 on one H200 node holds several times the sequences TP8 does."""
    cs = _layouts("deepseek-v3", "h200-sxm", "fp8")
    assert cs["DP8-attention + EP8"].slots_mem > 3 * cs["TP8"].slots_mem
    assert cs["DP16-attention + EP16"].nodes == 2
    # dense models get no EP layouts
    assert not any("EP" in k for k in _layouts("llama-3.1-70b", "h100-sxm", "fp8"))


def _check(docs):
    lws_schema = crd_schema("LeaderWorkerSet")
    for d in docs:
        if d["kind"] == "LeaderWorkerSet":
            assert d["apiVersion"] == lws_schema["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
            jsonschema.Draft7Validator(lws_schema["schema"]).validate(d)
            t = d["spec"]["leaderWorkerTemplate"]
            for which in ("leaderTemplate", "workerTemplate"):
                kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", "metadata": t[which]["metadata"] | {
                    "name": "x"}, "spec": t[which]["spec"]}, "1.34.0", strict=True)
        else:
            kubernetes_validate.validate(d, "1.34.0", strict=True)


def _row(layout_cfg, mode="aggregated"):
    c = layout_cfg
    return {"gpu": c.gpu.key, "quant": c.quant, "tp": c.tp, "pp": c.pp, "ep": c.ep, "gpus_per_replica": c.gpus,
            "nodes_per_replica": c.nodes, "mode": mode, "replicas": 2, "prefill_replicas": 1, "decode_replicas": 1,
            "max_batch": 64, "max_model_len": c.max_model_len}


@pytest.mark.parametrize("gpu_request", ["device-plugin", "dra"])
def test_multi_node_pipeline_replica_is_a_leaderworkerset(gpu_request):
    cs = _layouts("llama-3.1-405b", "h100-sxm", "bf16")
    row = _row(cs["TP8 × PP2"])
    docs = manifests(row, model_name="llama-3.1-405b", hf_id="meta-llama/Llama-3.1-405B", gpu_request=gpu_request)
    _check(docs)
    lws = next(d for d in docs if d["kind"] == "LeaderWorkerSet")
    t = lws["spec"]["leaderWorkerTemplate"]
    assert t["size"] == 2 and lws["spec"]["replicas"] == 2
    leader = " ".join(t["leaderTemplate"]["spec"]["containers"][0]["command"])
    worker = " ".join(t["workerTemplate"]["spec"]["containers"][0]["command"])
    assert "--pipeline-parallel-size 2" in leader and "--tensor-parallel-size 8" in leader
    assert "--distributed-executor-backend ray" in leader and "$(LWS_LEADER_ADDRESS)" in worker
    svc = next(d for d in docs if d["kind"] == "Service")
    assert svc["spec"]["selector"]["role"] == "leader"
    if gpu_request == "device-plugin":
        assert t["workerTemplate"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 8
    # SGLang: the same group with its own rendezvous flags
    docs = manifests(row, model_name="llama-3.1-405b", hf_id="meta-llama/Llama-3.1-405B", engine="sglang",
                     gpu_request=gpu_request)
    _check(docs)
    cmd = next(d for d in docs if d["kind"] == "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]["workerTemplate"][
        "spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--pp-size") + 1] == "2" and cmd[cmd.index("--node-rank") + 1] == "$(LWS_WORKER_INDEX)"


def test_expert_parallel_manifests_single_and_multi_node():
    cs = _layouts("deepseek-v3", "h200-sxm", "fp8")
    one = manifests(_row(cs["DP8-attention + EP8"]), model_name="deepseek-v3", hf_id="deepseek-ai/DeepSeek-V3")
    _check(one)
    cmd = next(d for d in one if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[cmd.index("--data-parallel-size") + 1] == "8" and "--enable-expert-parallel" in cmd
    two = manifests(_row(cs["DP16-attention + EP16"], mode="disaggregated 1:1"), model_name="deepseek-v3",
                    hf_id="deepseek-ai/DeepSeek-V3")
    _check(two)
    assert [d["kind"] for d in two].count("LeaderWorkerSet") == 2
    lws = next(d for d in two if d["kind"] == "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]
    leader = lws["leaderTemplate"]["spec"]["containers"][0]["command"]
    assert leader[leader.index("--data-parallel-size-local") + 1] == "8"
    assert "--headless" in " ".join(lws["workerTemplate"]["spec"]["containers"][0]["command"])



@pytest.mark.parametrize("gpu_request", ["device-plugin", "dra"])
def test_multi_node_tensorrt_llm_is_one_mpi_world_per_group(gpu_request):
    """TensorRT-LLM serves a replica that spans nodes as one MPI world: `mpirun … trtllm-llmapi-launch trtllm-serve`
    over every pod of the group (TensorRT-LLM docs, multi-node trtllm-serve with mpirun/srun). Each LWS group's pods
    run sshd with a key pair from a Secret the operator creates (never a private key in the manifests); the leader
    waits for its workers, lists them by LWS pod naming and runs all gpus_per_replica ranks, rank 0 serving HTTP."""
    from aiinfra.serving.k8s import secrets_to_create

    cs = _layouts("llama-3.1-405b", "h100-sxm", "bf16")
    docs = manifests(_row(cs["TP8 × PP2"]), model_name="llama-3.1-405b", hf_id="meta-llama/Llama-3.1-405B",
                     engine="tensorrt-llm", gpu_request=gpu_request)
    _check(docs)
    t = next(d for d in docs if d["kind"] == "LeaderWorkerSet")["spec"]["leaderWorkerTemplate"]
    assert t["size"] == 2
    leader = t["leaderTemplate"]["spec"]["containers"][0]["command"]
    worker = t["workerTemplate"]["spec"]["containers"][0]["command"]
    assert leader[:2] == ["sh", "-c"] and "mpirun --allow-run-as-root -np 16 -H $hosts" in leader[2]
    assert "trtllm-llmapi-launch trtllm-serve meta-llama/Llama-3.1-405B" in leader[2]
    assert "--tp_size 8" in leader[2] and "--pp_size 2" in leader[2] and "$LWS_GROUP_SIZE" in leader[2]
    assert "hosts=$LWS_LEADER_ADDRESS:8" in leader[2]
    assert "exec /usr/sbin/sshd -D" in worker[2] and "mpirun" not in worker[2]
    for which in ("leaderTemplate", "workerTemplate"):
        vols = t[which]["spec"]["volumes"]
        assert {"name": "mpi-ssh", "secret": {"secretName": "llama-3-1-405b-h100-sxm-mpi-ssh", "defaultMode": 0o400}} in vols
    assert not any(d["kind"] == "Secret" for d in docs)
    notes = secrets_to_create(docs)
    assert len(notes) == 1 and "kubectl create secret generic llama-3-1-405b-h100-sxm-mpi-ssh" in notes[0]
    # one-node TensorRT-LLM stays a plain Deployment running trtllm-serve
    one = manifests(_row(_layouts("llama-3.1-70b", "h100-sxm", "fp8")["TP8"]), model_name="llama-3.1-70b",
                    hf_id="meta-llama/Llama-3.1-70B", engine="tensorrt-llm", gpu_request=gpu_request)
    _check(one)
    cmd = next(d for d in one if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[0] == "trtllm-serve" and secrets_to_create(one) == []

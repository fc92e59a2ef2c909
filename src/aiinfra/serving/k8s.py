"""The chosen deployment as Kubernetes objects: per role (aggregated, or prefill + decode) a Deployment
when one replica fits one node, or a LeaderWorkerSet (leaderworkerset.x-k8s.io/v1, one group of pods per
replica) when it spans nodes; each runs the engine's OpenAI-compatible server with its real flags
(TP, PP, data-parallel attention + expert parallel, multi-node rendezvous), GPUs requested through the
NVIDIA device plugin (nvidia.com/gpu) or a DRA ResourceClaimTemplate (resource.k8s.io/v1, device class
gpu.nvidia.com)."""

from __future__ import annotations

import re
from typing import Any

from aiinfra.errors import SpecError

IMAGES = {
    "vllm": "vllm/vllm-openai:v0.11.0",
    "sglang": "lmsysorg/sglang:v0.5.3",
    "tensorrt-llm": "nvcr.io/nvidia/tensorrt-llm/release:1.0.0",
}
PORT = 8000


def _name(text: str) -> str:
    s = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return s[:50].strip("-") or "model"


def engine_args(engine: str, hf_id: str, row: dict, *, role: str | None = None, node_role: str | None = None) -> list[str]:
    """Command line of the engine's server for this deployment row.

    node_role: None for a one-node replica; "leader" or "worker" for the pods of a multi-node replica
    (a LeaderWorkerSet group: $(LWS_LEADER_ADDRESS), $(LWS_GROUP_SIZE) and $(LWS_WORKER_INDEX) are set by LWS)."""
    tp, pp, ep = int(row["tp"]), int(row.get("pp", 1)), int(row.get("ep", 0))
    batch, mml = str(row["max_batch"]), str(row["max_model_len"])
    nodes = int(row.get("nodes_per_replica", 1))
    if engine == "vllm":
        args = ["vllm", "serve", hf_id, "--host", "0.0.0.0", "--port", str(PORT), "--tensor-parallel-size", str(tp),
                "--max-num-seqs", batch, "--max-model-len", mml, "--gpu-memory-utilization", "0.9"]
        if pp > 1:
            args += ["--pipeline-parallel-size", str(pp)]
        if ep:
            # data-parallel attention ranks, experts spread over all of them
            args += ["--data-parallel-size", str(ep), "--enable-expert-parallel"]
            if nodes > 1:
                local = str(ep // nodes)
                args += ["--data-parallel-size-local", local, "--data-parallel-address", "$(LWS_LEADER_ADDRESS)",
                         "--data-parallel-rpc-port", "13345"]
                if node_role == "worker":
                    args += ["--headless", "--data-parallel-start-rank", "$(DP_START_RANK)"]
        elif nodes > 1:
            args += ["--distributed-executor-backend", "ray"]
        if row["quant"] == "fp8":
            args += ["--quantization", "fp8"]
        if role:
            args += ["--kv-transfer-config",
                     '{"kv_connector":"NixlConnector","kv_role":"kv_both"}']
        if nodes > 1 and not ep:
            # Ray across the group: the leader heads the cluster and serves once every node joined; workers join
            ray = ("bash /vllm-workspace/examples/online_serving/multi-node-serving.sh leader "
                   "--ray_cluster_size=$(LWS_GROUP_SIZE); " if node_role == "leader" else
                   "bash /vllm-workspace/examples/online_serving/multi-node-serving.sh worker "
                   "--ray_address=$(LWS_LEADER_ADDRESS)")
            return ["sh", "-c", ray + (" ".join(_quote(a) for a in args) if node_role == "leader" else "")]
        if nodes > 1 and ep and node_role == "worker":
            local = ep // nodes
            return ["sh", "-c", f"export DP_START_RANK=$(( $LWS_WORKER_INDEX * {local} )); "
                    + " ".join(_quote(a) for a in args).replace("$(DP_START_RANK)", "$DP_START_RANK")
                    .replace("$(LWS_LEADER_ADDRESS)", "$LWS_LEADER_ADDRESS")]
        return args
    if engine == "sglang":
        args = ["python3", "-m", "sglang.launch_server", "--model-path", hf_id, "--host", "0.0.0.0", "--port", str(PORT),
                "--tp", str(ep or tp), "--max-running-requests", batch, "--context-length", mml,
                "--mem-fraction-static", "0.88"]
        if pp > 1:
            args += ["--pp-size", str(pp)]
        if ep:
            args += ["--dp", str(ep), "--enable-dp-attention", "--ep-size", str(ep)]
        if nodes > 1:
            args += ["--dist-init-addr", "$(LWS_LEADER_ADDRESS):20000", "--nnodes", "$(LWS_GROUP_SIZE)",
                     "--node-rank", "$(LWS_WORKER_INDEX)"]
        if row["quant"] == "fp8":
            args += ["--quantization", "fp8"]
        if role:
            args += ["--disaggregation-mode", role]
        return args
    if nodes > 1:
        raise SpecError("multi-node TensorRT-LLM replicas (MPI launch) are not rendered; choose --engine vllm or "
                        "sglang for manifests, or a layout within one node")
    args = ["trtllm-serve", hf_id, "--host", "0.0.0.0", "--port", str(PORT), "--tp_size", str(ep or tp),
            "--max_batch_size", batch, "--max_seq_len", mml, "--kv_cache_free_gpu_memory_fraction", "0.9"]
    if pp > 1:
        args += ["--pp_size", str(pp)]
    if ep:
        args += ["--ep_size", str(ep)]
    return args


def _quote(a: str) -> str:
    """Shell-quote one argument, leaving $(VAR) references for the shell to expand."""
    return a if re.fullmatch(r"[A-Za-z0-9_./:=$()-]+", a) else "'" + a.replace("'", "'\\''") + "'"


def manifests(row: dict, *, model_name: str, hf_id: str, engine: str = "vllm", gpu_request: str = "device-plugin",
              namespace: str = "default") -> list[dict[str, Any]]:
    """Kubernetes objects for one deployment row of `serve-plan`."""
    base = _name(f"{model_name}-{row['gpu']}")
    roles = [(None, row["replicas"])] if row["mode"] == "aggregated" else [
        ("prefill", row["prefill_replicas"]), ("decode", row["decode_replicas"])]
    nodes = int(row.get("nodes_per_replica", 1))
    per_pod = int(row.get("gpus_per_replica", row["tp"])) // nodes
    docs: list[dict[str, Any]] = []
    for role, replicas in roles:
        name = f"{base}-{role}" if role else base
        labels = {"app.kubernetes.io/name": base, "app.kubernetes.io/component": role or "server",
                  "aiinfra.dev/gpu": row["gpu"]}

        def pod(node_role: str | None) -> dict[str, Any]:
            container: dict[str, Any] = {
                "name": "engine", "image": IMAGES[engine],
                "command": engine_args(engine, hf_id, row, role=role, node_role=node_role),
                "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
            }
            if node_role != "worker":
                container["ports"] = [{"containerPort": PORT, "name": "http"}]
                container["readinessProbe"] = {"httpGet": {"path": "/health", "port": PORT}, "periodSeconds": 10}
            spec: dict[str, Any] = {
                "containers": [container],
                "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}],
            }
            if gpu_request == "dra":
                spec["resourceClaims"] = [{"name": "gpus", "resourceClaimTemplateName": f"{name}-gpus"}]
                container["resources"] = {"claims": [{"name": "gpus"}]}
            else:
                container["resources"] = {"limits": {"nvidia.com/gpu": per_pod}}
            return spec

        if gpu_request == "dra":
            docs.append({
                "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
                "metadata": {"name": f"{name}-gpus", "namespace": namespace},
                "spec": {"spec": {"devices": {"requests": [{"name": "gpus", "exactly": {
                    "deviceClassName": "gpu.nvidia.com", "allocationMode": "ExactCount", "count": per_pod}}]}}},
            })
        selector = dict(labels)
        if nodes == 1:
            docs.append({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {"replicas": int(replicas), "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": pod(None)}},
            })
        else:
            # one LWS group per replica: a leader pod (serves HTTP) and nodes − 1 workers, restarted together
            docs.append({
                "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {"replicas": int(replicas), "startupPolicy": "LeaderCreated", "leaderWorkerTemplate": {
                    "size": nodes, "restartPolicy": "RecreateGroupOnPodRestart",
                    "leaderTemplate": {"metadata": {"labels": {**labels, "role": "leader"}}, "spec": pod("leader")},
                    "workerTemplate": {"metadata": {"labels": {**labels, "role": "worker"}}, "spec": pod("worker")},
                }},
            })
            selector["role"] = "leader"
        docs.append({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"selector": selector, "ports": [{"name": "http", "port": PORT, "targetPort": PORT}]},
        })
    return docs

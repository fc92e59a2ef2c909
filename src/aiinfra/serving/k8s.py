"""The chosen deployment as Kubernetes objects: per role (aggregated, or prefill + decode) a Deployment
when one replica fits one node, or a LeaderWorkerSet (leaderworkerset.x-k8s.io/v1, one group of pods per
replica) when it spans nodes; each runs the engine's OpenAI-compatible server with its real flags
(TP, PP, data-parallel attention + expert parallel, multi-node rendezvous), GPUs requested through the
NVIDIA device plugin (nvidia.com/gpu) or a DRA ResourceClaimTemplate (resource.k8s.io/v1, device class
gpu.nvidia.com). A multi-node TensorRT-LLM replica is one MPI world: its pods reach each other over SSH with a key
pair from a Secret the operator creates (`<name>-mpi-ssh`, keys id_ed25519 and id_ed25519.pub)."""

from __future__ import annotations

import re
from typing import Any


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
    args = ["trtllm-serve", hf_id, "--host", "0.0.0.0", "--port", str(PORT), "--tp_size", str(ep or tp),
            "--max_batch_size", batch, "--max_seq_len", mml, "--kv_cache_free_gpu_memory_fraction", "0.9"]
    if pp > 1:
        args += ["--pp_size", str(pp)]
    if ep:
        args += ["--ep_size", str(ep)]
    if nodes > 1:
        return ["sh", "-c", trtllm_mpi_script(args, int(row.get("gpus_per_replica", tp * pp)), nodes, node_role)]
    return args


SSH_PORT = 2222
SSH_DIR = "/etc/aiinfra-mpi-ssh"


def ssh_secret_name(name: str) -> str:
    return f"{name}-mpi-ssh"


def trtllm_mpi_script(serve_args: list[str], gpus: int, nodes: int, node_role: str | None) -> str:
    """A multi-node TensorRT-LLM replica is one MPI world (trtllm-serve under trtllm-llmapi-launch, started by
    mpirun; TensorRT-LLM docs, multi-node serving). Every pod of the LWS group runs sshd on SSH_PORT with the
    group's key pair (a Secret the operator creates: the manifests never carry a private key); the leader
    waits until each worker's sshd answers, then runs mpirun over all pods, rank 0 (the HTTP server) on itself.
    Worker i of a group is reachable as <leader pod name>-i.<leader's subdomain> (LWS pod naming)."""
    per = gpus // nodes
    sshd = (f"mkdir -p /root/.ssh /run/sshd && cp {SSH_DIR}/id_ed25519.pub /root/.ssh/authorized_keys && "
            "chmod 600 /root/.ssh/authorized_keys && ssh-keygen -A >/dev/null && ")
    if node_role == "worker":
        return sshd + f"exec /usr/sbin/sshd -D -e -p {SSH_PORT}"
    ssh = f"-p {SSH_PORT} -o StrictHostKeyChecking=no -i /root/.ssh/id_ed25519"
    serve = " ".join(_quote(a) for a in serve_args)
    return (sshd + f"cp {SSH_DIR}/id_ed25519 /root/.ssh/id_ed25519 && chmod 600 /root/.ssh/id_ed25519 && "
            f"/usr/sbin/sshd -p {SSH_PORT} && "
            "base=${LWS_LEADER_ADDRESS%%.*}; domain=${LWS_LEADER_ADDRESS#*.}; "
            f"hosts=$LWS_LEADER_ADDRESS:{per}; i=1; "
            "while [ $i -lt $LWS_GROUP_SIZE ]; do w=$base-$i.$domain; "
            f"until ssh {ssh} $w true; do sleep 5; done; hosts=$hosts,$w:{per}; i=$((i+1)); done; "
            f"exec mpirun --allow-run-as-root -np {gpus} -H $hosts --mca plm_rsh_args '{ssh}' "
            f"trtllm-llmapi-launch {serve}")


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
            if engine == "tensorrt-llm" and node_role:
                # the group's SSH key pair for mpirun (created by the operator; see ssh_secret_name)
                spec["volumes"].append({"name": "mpi-ssh", "secret": {"secretName": ssh_secret_name(name),
                                                                      "defaultMode": 0o400}})
                container["volumeMounts"].append({"name": "mpi-ssh", "mountPath": SSH_DIR, "readOnly": True})
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


def secrets_to_create(docs: list[dict[str, Any]]) -> list[str]:
    """One line per Secret the manifests mount but do not carry (the MPI SSH key pair of multi-node TensorRT-LLM),
    with the commands that create it."""
    names: list[str] = []
    for d in docs:
        if d["kind"] != "LeaderWorkerSet":
            continue
        t = d["spec"]["leaderWorkerTemplate"]
        for which in ("leaderTemplate", "workerTemplate"):
            for v in t[which]["spec"].get("volumes", []):
                if "secret" in v and v["secret"]["secretName"] not in names:
                    names.append(v["secret"]["secretName"])
    return [f"create Secret {n} before applying (the MPI ranks log in to each other over SSH): ssh-keygen -t ed25519 "
            f"-N '' -f id_ed25519 && kubectl create secret generic {n} --from-file=id_ed25519 --from-file=id_ed25519.pub"
            for n in names]

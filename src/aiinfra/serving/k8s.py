"""The chosen deployment as Kubernetes objects: one Deployment per role (aggregated, or prefill + decode)
running the engine's OpenAI-compatible server with its real flags, GPUs requested through the NVIDIA
device plugin (nvidia.com/gpu) or a DRA ResourceClaimTemplate (resource.k8s.io/v1, device class
gpu.nvidia.com)."""

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


def engine_args(engine: str, hf_id: str, row: dict, *, role: str | None = None) -> list[str]:
    """Command line of the engine's server for this deployment row."""
    tp, batch, mml = str(row["tp"]), str(row["max_batch"]), str(row["max_model_len"])
    if engine == "vllm":
        args = ["vllm", "serve", hf_id, "--host", "0.0.0.0", "--port", str(PORT), "--tensor-parallel-size", tp,
                "--max-num-seqs", batch, "--max-model-len", mml, "--gpu-memory-utilization", "0.9"]
        if row["quant"] == "fp8":
            args += ["--quantization", "fp8"]
        if role:
            args += ["--kv-transfer-config",
                     '{"kv_connector":"NixlConnector","kv_role":"kv_both"}']
        return args
    if engine == "sglang":
        args = ["python3", "-m", "sglang.launch_server", "--model-path", hf_id, "--host", "0.0.0.0", "--port", str(PORT),
                "--tp", tp, "--max-running-requests", batch, "--context-length", mml, "--mem-fraction-static", "0.88"]
        if row["quant"] == "fp8":
            args += ["--quantization", "fp8"]
        if role:
            args += ["--disaggregation-mode", role]
        return args
    return ["trtllm-serve", hf_id, "--host", "0.0.0.0", "--port", str(PORT), "--tp_size", tp,
            "--max_batch_size", batch, "--max_seq_len", mml, "--kv_cache_free_gpu_memory_fraction", "0.9"]


def manifests(row: dict, *, model_name: str, hf_id: str, engine: str = "vllm", gpu_request: str = "device-plugin",
              namespace: str = "default") -> list[dict[str, Any]]:
    """Kubernetes objects for one deployment row of `serve-plan`."""
    base = _name(f"{model_name}-{row['gpu']}")
    roles = [(None, row["replicas"])] if row["mode"] == "aggregated" else [
        ("prefill", row["prefill_replicas"]), ("decode", row["decode_replicas"])]
    docs: list[dict[str, Any]] = []
    for role, replicas in roles:
        name = f"{base}-{role}" if role else base
        labels = {"app.kubernetes.io/name": base, "app.kubernetes.io/component": role or "server",
                  "aiinfra.dev/gpu": row["gpu"]}
        container: dict[str, Any] = {
            "name": "engine", "image": IMAGES[engine], "command": engine_args(engine, hf_id, row, role=role),
            "ports": [{"containerPort": PORT, "name": "http"}],
            "readinessProbe": {"httpGet": {"path": "/health", "port": PORT}, "periodSeconds": 10},
            "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
        }
        pod: dict[str, Any] = {
            "containers": [container],
            "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}],
        }
        if gpu_request == "dra":
            claim = f"{name}-gpus"
            docs.append({
                "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
                "metadata": {"name": claim, "namespace": namespace},
                "spec": {"spec": {"devices": {"requests": [{"name": "gpus", "exactly": {
                    "deviceClassName": "gpu.nvidia.com", "allocationMode": "ExactCount", "count": int(row["tp"])}}]}}},
            })
            pod["resourceClaims"] = [{"name": "gpus", "resourceClaimTemplateName": claim}]
            container["resources"] = {"claims": [{"name": "gpus"}]}
        else:
            container["resources"] = {"limits": {"nvidia.com/gpu": int(row["tp"])}}
        docs.append({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"replicas": int(replicas), "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod}},
        })
        docs.append({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": PORT, "targetPort": PORT}]},
        })
    return docs

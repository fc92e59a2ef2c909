"""Inference memory per GPU: quantized weights, KV cache, activation workspace, runtime overhead.

Also: how many KV tokens and sequences fit under an engine reservation (vLLM's
gpu_memory_utilization), and the fewest GPUs of each catalog SKU that hold a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aiinfra.catalog.gpus import all_gpus
from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import LayoutError, SpecError
from aiinfra.explain import Term, total
from aiinfra.sizing.engine import engine_memory
from aiinfra.sizing.training import capacity_facts

# The byte terms live in model_bytes.py (engine.py uses them too); callers keep importing them from here.
from aiinfra.sizing.model_bytes import (  # noqa: F401
    GROUP_SCALES,
    KV_DTYPES,
    SRC_KV,
    WEIGHT_QUANTS,
    activation_workspace,
    cached_tokens_per_sequence,
    kv_bytes_per_sequence,
    kv_bytes_per_token,
    model_weight_bytes,
    weight_bytes,
)
from aiinfra.specs import GpuSpec, ModelSpec

SRC_VLLM = "vLLM EngineArgs.gpu_memory_utilization: the fraction of GPU memory the engine may use"


@dataclass
class InferenceMemory:
    weights: Term
    kv_cache: Term
    workspace: Term
    overhead: Term
    total: Term
    kv_per_token: Term
    capacity: dict | None = None

    @property
    def terms(self) -> list[Term]:
        return [self.weights, self.kv_cache, self.workspace, self.overhead, self.total]


def inference_memory(
    m: ModelSpec,
    *,
    quant: str = "bf16",
    kv_dtype: str = "bf16",
    context: int = 4096,
    batch: int = 1,
    tp: int = 1,
    pp: int = 1,
    prompt: int | None = None,
    max_batched_tokens: int | None = None,
    overhead_bytes: float | None = None,
    gpu: GpuSpec | None = None,
    gpu_memory_utilization: float | None = None,
    weights_bytes: float | None = None,
) -> InferenceMemory:
    """Per-GPU memory to serve `batch` sequences of `context` tokens with TP × PP GPUs.

    weights_bytes: the checkpoint's exact weight bytes (from its safetensors headers) instead of the
    bytes derived from config.json and `quant`."""
    for name, v in (("context", context), ("batch", batch), ("tp", tp), ("pp", pp)):
        if v <= 0:
            raise SpecError(f"{name} must be positive, got {v}")
    if m.heads % tp:
        raise LayoutError(f"TP={tp} does not divide the {m.heads} attention heads of {m.name}")
    if pp > m.layers:
        raise LayoutError(f"PP={pp} is larger than the {m.layers} layers of {m.name}")
    rt = default_catalog().entry("runtime", "inference")[1]
    util = rt["gpu_memory_utilization"] if gpu_memory_utilization is None else gpu_memory_utilization
    if not 0 < util <= 1:
        raise SpecError(f"gpu memory utilization must be in (0, 1], got {util}")
    chunk_limit = max_batched_tokens or rt["max_batched_tokens"]
    prompt = context if prompt is None else prompt
    shards = tp * pp
    if weights_bytes is None:
        w_all = model_weight_bytes(m, quant)
    else:
        w_all = Term("checkpoint weights", float(weights_bytes), "B", "Σ tensor bytes in the safetensors headers", {},
                     {"checkpoint": "dtype and shape of every tensor, read without loading it"})
    weights = Term("weights", float(w_all.value) / shards, "B", "weights / (tp · pp)",
                   {"model weights": w_all, "tp": tp, "pp": pp})
    per_tok = kv_bytes_per_token(m, kv_dtype, tp)
    per_seq = kv_bytes_per_sequence(m, context, kv_dtype, tp)
    per_seq_gpu = float(per_seq.value) / pp
    kv = Term("KV cache", per_seq_gpu * batch, "B", "KV bytes per sequence / pp · batch",
              {"KV bytes per sequence": per_seq, "pp": pp, "batch": batch},
              {"layers": ", ".join(f"{n} {k}" + (f" (≤ {c} tokens)" if c else "") for k, n, c in m.attention_groups())})
    ws = activation_workspace(m, tokens=min(batch * prompt, chunk_limit), batch=batch, tp=tp)
    if overhead_bytes is None:
        fixed = rt["cuda_context_bytes"] + (rt["comm_buffers_bytes"] if shards > 1 else 0)
        src = {"fixed": "catalog runtime.inference (estimate; override with --overhead-gib)"}
    else:
        if overhead_bytes < 0:
            raise SpecError("overhead must not be negative")
        fixed, src = overhead_bytes, {"fixed": "given by the user"}
    overhead = Term("runtime overhead", fixed, "B", "CUDA context (+ communicator buffers when sharded)", {}, src)
    if gpu is not None:
        # The engine's own accounting (vLLM by default): its budget is a fraction of the total PyTorch sees
        # (MiB, not the datasheet's decimal GB), minus the profile-run activation peak over
        # max_num_batched_tokens, non-torch memory and CUDA graphs (sizing/engine.py, engines.yaml).
        em = engine_memory(m, gpu, engine="vllm", tp=tp, pp=pp, quant=quant, kv_dtype=kv_dtype, max_model_len=context,
                           fraction=util, max_num_batched_tokens=max_batched_tokens, weights_bytes=weights_bytes)
        ws = em.activation
        ws.name = "activation workspace"
        if overhead_bytes is None:
            overhead = total("runtime overhead", [em.non_torch, em.cuda_graphs])
            overhead.note = "vLLM non-torch memory + CUDA graph pool (catalog engines.yaml)"
    tot = total("total per GPU", [weights, kv, ws, overhead])
    result = InferenceMemory(weights, kv, ws, overhead, tot, per_tok)
    if gpu is not None:
        budget = float(em.budget.value)
        kv_budget = budget - float(weights.value) - float(ws.value) - float(overhead.value)
        result.capacity = {
            "gpu": gpu.key,
            **capacity_facts(gpu),
            "gpu_memory_utilization": util,
            # what the engine budgets from: the visible total less the driver's reserve (vLLM: torch's total)
            "engine_total_gb": round(float(em.budget.inputs.get("visible total", budget / util)) / 1e9, 2),
            "engine_budget_gb": round(budget / 1e9, 2),
            "kv_budget_gb": round(kv_budget / 1e9, 2),
            "kv_tokens": em.kv_tokens if overhead_bytes is None else
            max(0, math.floor(kv_budget / (float(per_tok.value) / pp) / 16) * 16),
            "sequences_at_context": int(max(0.0, kv_budget) // per_seq_gpu) if per_seq_gpu else 0,
            "fits": bool(float(tot.value) <= budget),
            "headroom_gb": round((budget - float(tot.value)) / 1e9, 2),
        }
    return result


def _layouts(m: ModelSpec, max_gpus: int) -> list[tuple[int, int]]:
    """TP inside one 8-GPU node first (must divide the heads), then PP across nodes."""
    out = [(tp, 1) for tp in (1, 2, 4, 8) if m.heads % tp == 0]
    tp_node = max(tp for tp, _ in out)
    pp = 2
    while tp_node * pp <= max_gpus and pp <= m.layers:
        out.append((tp_node, pp))
        pp += 1
    return out


def tp_fabric(gpu: GpuSpec, tp: int) -> str:
    """What a TP group of `tp` GPUs of this SKU talks over: its scale-up fabric when the group fits in
    one scale-up domain, else PCIe between the domains."""
    if tp <= 1:
        return "none (one GPU)"
    if gpu.scaleup_link == "pcie":
        return gpu.scaleup_name
    if tp <= (gpu.scaleup_domain or 1):
        return gpu.scaleup_name
    return f"{gpu.scaleup_name} + PCIe between groups of {gpu.scaleup_domain}"


def min_gpus(m: ModelSpec, gpu: GpuSpec, *, max_gpus: int = 512, **settings: Any) -> dict:
    """The fewest GPUs of one SKU whose per-GPU total stays inside the engine reservation."""
    base = {"gpu": gpu.key, **capacity_facts(gpu), "form_factor": gpu.form_factor,
            "scaleup_link": gpu.scaleup_link, "scaleup_domain": gpu.scaleup_domain}
    for tp, pp in _layouts(m, max_gpus):
        r = inference_memory(m, tp=tp, pp=pp, gpu=gpu, **settings)
        if r.capacity["fits"]:
            return {**base, "gpus": tp * pp, "tp": tp, "pp": pp,
                    "per_gpu_gb": round(float(r.total.value) / 1e9, 2),
                    "kv_tokens": r.capacity["kv_tokens"], "interconnect": tp_fabric(gpu, tp),
                    "tp_over_pcie": tp > 1 and (gpu.scaleup_link == "pcie" or tp > (gpu.scaleup_domain or 1))}
    return {**base, "gpus": None, "tp": None, "pp": None, "per_gpu_gb": None, "kv_tokens": None,
            "interconnect": "", "tp_over_pcie": False, "note": f"does not fit in {max_gpus} GPUs"}


def fits(m: ModelSpec, gpus: list[GpuSpec] | None = None, **settings: Any) -> list[dict]:
    """For every catalog GPU, the minimum number of GPUs for this model and setting."""
    rows = [min_gpus(m, g, **settings) for g in (gpus or all_gpus())]
    return sorted(rows, key=lambda r: (r["gpus"] is None, r["gpus"] or 0, r["gpu"]))


# The config keys vLLM reads for a model's maximum length, the smallest present winning (model_max_length, where set,
# instead) before rope scaling stretches it: vllm/config/model.py _get_and_verify_max_len (read 2026-12-08).
MAX_LEN_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len")


def _raw_config(m: ModelSpec) -> dict | None:
    """The config a ModelSpec was read from: a config.json path (its source) or the catalog entry of its name."""
    from pathlib import Path

    from aiinfra.catalog.loader import read_json
    from aiinfra.errors import AiinfraError

    try:
        if m.source.endswith(".json") and Path(m.source).is_file():
            return read_json(Path(m.source))
        key, entry = default_catalog().entry("models", m.name)
        if key != m.name:
            return None
        if isinstance(entry.get("config"), dict):
            return entry["config"]
        return read_json(Path(entry["path"])) if "path" in entry else None
    except (AiinfraError, OSError, ValueError):
        return None


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def max_context(m: ModelSpec) -> tuple[int, str] | None:
    """(the longest sequence the model takes, in tokens, and where that figure comes from) as vLLM derives its
    max_model_len from the HF config (vllm/config/model.py _get_and_verify_max_len): the smallest of MAX_LEN_KEYS
    present (model_max_length where set), times the rope scaling factor unless the rope type is su, longrope or
    llama3 (yarn: original_max_position_embeddings × factor; Gemma 3's figure is already scaled). None where the
    config states none (vLLM then assumes 2048; no check is made here) or the model is a Megatron table row."""
    raw = _raw_config(m)
    if not isinstance(raw, dict):
        return None
    cfg = raw["text_config"] if isinstance(raw.get("text_config"), dict) else raw
    mtype = str(cfg.get("model_type", raw.get("model_type", ""))).lower()
    if mtype == "megatron-gpt":
        return None
    found = [(cfg[k], k) for k in MAX_LEN_KEYS if _number(cfg.get(k))]
    if not found:
        return None
    length, key = min(found)
    if _number(cfg.get("model_max_length")):
        length, key = cfg["model_max_length"], "model_max_length"
    where = f"config {key} {int(length):,}"
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling")
    if isinstance(rope, dict) and "gemma3" not in mtype:
        kind = rope.get("rope_type", rope.get("type"))
        factor = rope.get("factor")
        if kind not in ("su", "longrope", "llama3") and _number(factor):
            if kind == "yarn" and _number(rope.get("original_max_position_embeddings")):
                length = rope["original_max_position_embeddings"]
                where = f"config rope yarn original_max_position_embeddings {int(length):,}"
            length = length * factor
            where += f" × rope factor {factor:g}"
    return int(length), where


def check_context(m: ModelSpec, tokens: int, what: str) -> None:
    """One line, as vLLM refuses a max_model_len above the model's, where `tokens` per sequence exceed the model's
    maximum context (max_context); models whose config states none pass."""
    limit = max_context(m)
    if limit is not None and tokens > limit[0]:
        total = f" = {tokens:,}" if "+" in what or "mean" in what else ""
        raise SpecError(f"{what}{total} tokens per sequence exceeds {m.name}'s maximum context of "
                        f"{limit[0]:,} tokens ({limit[1]}); vLLM refuses a longer max_model_len")

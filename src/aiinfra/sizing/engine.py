"""Engine-faithful start-up memory: what vLLM, SGLang and TensorRT-LLM will report as KV-cache tokens
and maximum concurrency, and whether they start at all for a given max_model_len.

Each engine reserves memory its own way (catalog/data/engines.yaml):
- vLLM: gpu_memory_utilization × the total PyTorch sees, minus weights, the activation peak of a profile
  run over max_num_batched_tokens, non-torch memory and (since v0.21) CUDA graphs; KV in blocks of 16.
  V0 releases before 0.7 (scheduler="v0"): the profile's peak is the larger of the forward and the top-k/top-p
  sampler over max_num_seqs sequences, non-torch memory includes the caching allocator's slack, and NCCL's NVLS
  buffers are rounded to the multicast granularity.
- SGLang: mem_fraction_static × total minus what is in use once the weights are loaded; a token pool.
- TensorRT-LLM: free_gpu_memory_fraction of what is free after weights and runtime buffers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aiinfra.catalog.loader import default_catalog, is_amount, is_count
from aiinfra.errors import SpecError
from aiinfra.explain import Term, total
from aiinfra.sizing.model_bytes import activation_workspace, kv_bytes_per_token, model_weight_bytes
from aiinfra.specs import GpuSpec, ModelSpec
from aiinfra.units import GiB

MiB = 2**20


# engines.yaml byte and count fields: numbers >= 0 (block_size > 0), each checked where the entry is read so a
# --catalog override cannot size an engine from a negative or textual value
_ENGINE_AMOUNTS = ("driver_reserved_mib", "non_torch_bytes", "non_torch_tp_bytes", "nccl_nvls_per_rank_bytes",
                   "nccl_nvls_communicators", "v0_nccl_nvls_granularity_bytes", "activation_factor",
                   "sampler_extra_logit_copies", "v0_sampler_logit_copies", "cuda_graph_bytes", "load_overhead_bytes",
                   "load_overhead_tp_bytes", "runtime_buffer_bytes")


def engine_entry(engine: str) -> tuple[str, dict]:
    key, e = default_catalog().entry("engines", engine)
    bad = [f for f in _ENGINE_AMOUNTS if f in e and not is_amount(e[f])]
    by_gpu = e.get("driver_reserved_mib_by_gpu")
    if by_gpu is not None and (not isinstance(by_gpu, dict) or not all(map(is_amount, by_gpu.values()))):
        bad.append("driver_reserved_mib_by_gpu")
    if not is_count(e.get("block_size")):
        bad.append("block_size")
    if bad:
        raise SpecError(f"engine '{key}': {', '.join(bad)} malformed (byte and count fields are numbers >= 0, "
                        f"block_size a positive integer, driver_reserved_mib_by_gpu a map of GPU to MiB)")
    return key, e


def engine_names() -> list[str]:
    return default_catalog().names("engines")


@dataclass
class EngineMemory:
    engine: str
    budget: Term
    weights: Term
    activation: Term
    non_torch: Term
    cuda_graphs: Term
    kv_pool: Term
    kv_tokens: int
    max_concurrency: float
    max_model_len: int
    starts: bool
    settings: dict

    @property
    def terms(self) -> list[Term]:
        return [self.budget, self.weights, self.activation, self.non_torch, self.cuda_graphs, self.kv_pool]


def visible_total_bytes(gpu: GpuSpec | None, entry: dict, total_mib: float | None = None) -> tuple[float, str]:
    """The total the engine budgets from: nvidia-smi total minus what the driver keeps."""
    if total_mib is not None:
        return total_mib * MiB, "given by the user"
    if gpu is None:
        raise SpecError("engine memory needs a GPU or a total in MiB")
    smi = gpu.memory_total_mib or gpu.memory_gb * 1e9 / MiB
    driver = (entry.get("driver_reserved_mib_by_gpu") or {}).get(gpu.key, entry["driver_reserved_mib"])
    src = f"{gpu.key}: nvidia-smi {smi:,.0f} MiB − driver {driver} MiB (engines.yaml)"
    return (smi - driver) * MiB, src


def serve_defaults(entry: dict, total_bytes: float, gpu: GpuSpec | None) -> dict:
    d = entry.get("serve_defaults")
    if not d:
        return {"max_num_batched_tokens": 8192, "max_num_seqs": 256}
    large = total_bytes >= d["large_gpu_min_gib"] * GiB and not (gpu and gpu.key.startswith("a100"))
    return dict(d["large" if large else "other"])


def _request_tokens(m: ModelSpec, max_model_len: int, batched: int, block: int) -> float:
    """All-layer-equivalent tokens one max_model_len request pins in vLLM's allocator: full layers the whole
    length; sliding/chunked layers window (or chunk) + one step of batched tokens; linear layers none."""
    L = m.attention_layers
    if not L:
        return 0.0
    tokens = 0.0
    for kind, n, cap in m.attention_groups():
        if kind == "linear":
            continue
        kept = max_model_len if cap is None else min(cap - 1 + batched, max_model_len)
        tokens += n * (math.ceil(kept / block) * block)
    return tokens / L


def fused_moe_buffers(m: ModelSpec, tokens: int, tp: int) -> Term:
    """The fused-MoE kernel's scratch for one chunk of `tokens` (vllm/model_executor/layers/fused_moe/fused_moe.py):
    gate+up output (M, top_k, 2·N), the activated product (M·top_k, N) and the down output (M, top_k, hidden), all
    16-bit, with N = moe_intermediate / tp. Dense models: 0."""
    if not m.is_moe:
        return Term("fused-MoE buffers", 0.0, "B", "dense model")
    n = m.moe_ffn / tp
    per_tok = m.experts_per_token * (2 * n + n + m.hidden) * 2.0
    return Term("fused-MoE buffers", tokens * per_tok, "B", "tokens · top_k · (3·N/tp + hidden) · 2 B",
                {"tokens": tokens, "top_k": m.experts_per_token, "N": m.moe_ffn, "tp": tp, "hidden": m.hidden},
                {"layout": "vLLM fused_moe intermediate_cache1/2/3"})


def nvls_active(gpu: GpuSpec | None, tp: int) -> bool:
    """NCCL turns NVLink SHARP on for communicators of more than 2 GPUs on an NVSwitch of Hopper or later
    (vllm-project/vllm#9699); A100 HGX switches have no SHARP."""
    return (gpu is not None and gpu.scaleup_link == "nvlink-switch" and tp > 2
            and (gpu.architecture or "").lower() not in ("ampere", "volta", "turing"))


def v0_non_torch_entry(e: dict, gpu: GpuSpec | None) -> tuple[dict | None, str]:
    """The V0-era non-torch figures for this GPU's architecture (engines.yaml vllm.v0_non_torch), if measured."""
    table = e.get("v0_non_torch") or {}
    arch = (gpu.architecture or "").lower() if gpu is not None else ""
    if arch in table:
        return table[arch], arch
    return None, arch


def vllm_non_torch(e: dict, gpu: GpuSpec | None, tp: int, pp: int, scheduler: str = "v1",
                   nccl_nvls: bool | None = None) -> Term:
    """Per-rank memory outside PyTorch's allocator: CUDA context and cuBLAS workspace, plus with TP the custom
    all-reduce IPC buffers and NCCL buffers, plus NVLS buffers when NCCL uses NVLink SHARP (per communicator:
    nvlsPerRankSize × ranks, as NCCL logs it). V0 releases also count the caching allocator's slack here
    (vllm#11809), measured per architecture from start-up logs."""
    base = float(e["non_torch_bytes"])
    tp_bytes = float(e["non_torch_tp_bytes"]) if tp * pp > 1 else 0.0
    src_base = "engines.yaml vllm.non_torch_bytes (vllm#10517)"
    if scheduler == "v0":
        v0, arch = v0_non_torch_entry(e, gpu)
        if v0 is not None:
            base = float(v0["base_bytes"])
            tp_bytes = float(v0["tp_bytes"]) if tp * pp > 1 else 0.0
            src_base = f"engines.yaml vllm.v0_non_torch.{arch} (start-up logs; allocator slack counted, vllm#11809)"
    nvls = 0.0
    if nvls_active(gpu, tp) and nccl_nvls is not False:
        gran = e.get("v0_nccl_nvls_granularity_bytes", 1) if scheduler == "v0" else 1
        nvls = e["nccl_nvls_communicators"] * math.ceil(e["nccl_nvls_per_rank_bytes"] * tp / gran) * gran
    return Term("non-torch memory", base + tp_bytes + nvls, "B",
                "CUDA context + (TP: custom all-reduce, NCCL) + (NVLS: communicators · roundup(nvlsPerRankSize · tp, multicast granularity))",
                {"CUDA context (B)": base, "TP buffers (B)": tp_bytes, "NVLS buffers (B)": nvls, "tp": tp},
                {"CUDA context": src_base,
                 "NVLS": "engines.yaml vllm.nccl_nvls_* (NCCL log line in vllm#9699; two NCCL communicators per TP group; 512 MiB multicast granularity)"})


def engine_memory(
    m: ModelSpec, gpu: GpuSpec | None, *, engine: str = "vllm", tp: int = 1, pp: int = 1, quant: str = "bf16",
    kv_dtype: str = "bf16", max_model_len: int | None = None, fraction: float | None = None,
    max_num_batched_tokens: int | None = None, max_num_seqs: int | None = None, cuda_graphs: bool | None = None,
    total_mib: float | None = None, weights_bytes: float | None = None, scheduler: str = "v1",
    nccl_nvls: bool | None = None,
) -> EngineMemory:
    """KV tokens and concurrency the engine reports at start-up, per GPU of a TP × PP replica.

    scheduler: "v1" (vLLM ≥ 0.8: the profile also runs the sampler over max_num_seqs sequences) or "v0" (the V0
    profile: top-k/top-p sampler peak, allocator slack counted as non-torch, NCCL 2.20-era NVLS buffers).
    nccl_nvls: False as with NCCL_NVLS_ENABLE=0; None lets NCCL decide (on for > 2 GPUs on a Hopper NVSwitch)."""
    if scheduler not in ("v0", "v1"):
        raise SpecError(f"scheduler must be v0 or v1, got '{scheduler}'")
    key, e = engine_entry(engine)
    max_model_len = max_model_len or m.max_positions
    frac = e["default_fraction"] if fraction is None else fraction
    if not 0 < frac <= 1:
        raise SpecError(f"{e['fraction_flag']} must be in (0, 1], got {frac}")
    if max_model_len <= 0 or tp <= 0 or pp <= 0:
        raise SpecError("max_model_len, tp and pp must be positive")
    total_b, total_src = visible_total_bytes(gpu, e, total_mib)
    d = serve_defaults(e, total_b, gpu)
    batched = max_num_batched_tokens or d["max_num_batched_tokens"]
    seqs = max_num_seqs or d["max_num_seqs"]
    shards = tp * pp
    if weights_bytes is None:
        w_all = model_weight_bytes(m, quant)
        weights = Term("weights", float(w_all.value) / shards, "B", "model weights / (tp · pp)",
                       {"model weights": w_all, "tp": tp, "pp": pp})
    else:
        weights = Term("weights", weights_bytes / shards, "B", "checkpoint bytes / (tp · pp)",
                       {"checkpoint bytes": weights_bytes, "tp": tp, "pp": pp}, {"checkpoint": "safetensors headers"})
    zero = Term("", 0.0, "B")
    if key == "vllm":
        budget = Term("engine budget", frac * total_b, "B", f"{e['fraction_flag']} · visible total",
                      {"fraction": frac, "visible total": total_b}, {"visible total": total_src})
        ws = activation_workspace(m, tokens=batched, batch=min(seqs, batched), tp=tp)
        moe = fused_moe_buffers(m, batched, tp)
        forward = e["activation_factor"] * float(ws.value) + float(moe.value)
        sampled = min(seqs, batched) * m.vocab * 4.0
        if scheduler == "v1":
            sampler = e["sampler_extra_logit_copies"] * sampled
            act = Term("activation peak", forward + sampler, "B",
                       "factor · workspace(max_num_batched_tokens) + fused-MoE buffers + sampler copies · max_num_seqs · V · 4 B",
                       {"factor": e["activation_factor"], "workspace": ws, "max_num_batched_tokens": batched,
                        "fused-MoE buffers": moe, "sampler pass (B)": sampler},
                       {"factor": "engines.yaml vllm.activation_factor (fitted; rows named there)",
                        "sampler": "engines.yaml vllm.sampler_extra_logit_copies (fitted on vllm#23278)"})
        else:
            # V0: the top-k/top-p sampler runs after the forward's activations are freed: the peak is the larger.
            sampler = e["v0_sampler_logit_copies"] * sampled
            act = Term("activation peak", max(forward, sampler), "B",
                       "max(factor · workspace(max_num_batched_tokens) + fused-MoE buffers, V0 sampler copies · max_num_seqs · V · 4 B)",
                       {"factor": e["activation_factor"], "workspace": ws, "max_num_batched_tokens": batched,
                        "fused-MoE buffers": moe, "forward peak (B)": forward, "sampler pass (B)": sampler},
                       {"factor": "engines.yaml vllm.activation_factor (fitted; rows named there)",
                        "sampler": "engines.yaml vllm.v0_sampler_logit_copies (profile run samples top-k/top-p; fitted on vllm#10511)"})
        non_torch = vllm_non_torch(e, gpu, tp, pp, scheduler, nccl_nvls)
        graphs_on = True if cuda_graphs is None else cuda_graphs
        graphs = Term("CUDA graphs", e["cuda_graph_bytes"] if graphs_on else 0.0, "B", "estimated graph pool", {},
                      {"when": f"in the budget since vLLM {e['cuda_graphs_in_budget_since']}; --enforce-eager drops it"})
        pool = budget.value - weights.value - act.value - non_torch.value - graphs.value
    elif key == "sglang":
        budget = Term("engine budget", frac * total_b, "B", f"{e['fraction_flag']} · visible total",
                      {"fraction": frac, "visible total": total_b}, {"visible total": total_src})
        act = Term("activation peak", 0.0, "B", "outside the static fraction (in 1 − mem_fraction_static)")
        nt = e["load_overhead_bytes"] + (e["load_overhead_tp_bytes"] if shards > 1 else 0)
        non_torch = Term("in use after load besides weights", nt, "B", "CUDA context, NCCL, torch reserve", {},
                         {"value": "engines.yaml sglang.load_overhead_bytes (fitted; row named there)"})
        graphs = Term("CUDA graphs", 0.0, "B", "captured in the non-static share")
        pool = budget.value - weights.value - non_torch.value
    else:
        free = total_b - float(weights.value) - e["runtime_buffer_bytes"]
        budget = Term("free after load", free, "B", "visible total − weights − runtime buffers",
                      {"visible total": total_b, "runtime buffers": e["runtime_buffer_bytes"]}, {"visible total": total_src})
        act = Term("runtime buffers", float(e["runtime_buffer_bytes"]), "B", "engines.yaml estimate")
        non_torch = zero
        graphs = Term("CUDA graphs", 0.0, "B", "inside runtime buffers")
        pool = frac * free
        budget = Term("engine budget", frac * free + float(weights.value) + act.value, "B",
                      f"weights + buffers + {e['fraction_flag']} · free", {"free after load": free, "fraction": frac})
    pool = max(0.0, float(pool))
    kv_pool = Term("KV pool", pool, "B", "budget − weights − activation peak − non-torch − CUDA graphs",
                   {"budget": budget, "weights": weights, "activation": act, "non-torch": non_torch, "graphs": graphs})
    per_tok = float(kv_bytes_per_token(m, kv_dtype, tp).value) / pp
    block = e["block_size"]
    blocks = math.floor(pool / (per_tok * block)) if per_tok else 0
    req = _request_tokens(m, max_model_len, batched, block)
    full_only = all(k == "full" for k, _, _ in m.attention_groups())
    if full_only:
        tokens = blocks * block
        concurrency = tokens / max_model_len
    else:
        concurrency = blocks * block / req if req else float("inf")
        tokens = int(concurrency * max_model_len)
    return EngineMemory(
        engine=key, budget=budget, weights=weights, activation=act, non_torch=non_torch, cuda_graphs=graphs,
        kv_pool=kv_pool, kv_tokens=int(tokens), max_concurrency=float(concurrency), max_model_len=max_model_len,
        starts=concurrency >= 1.0 and pool > 0,
        settings={"fraction": frac, "fraction_flag": e["fraction_flag"], "max_num_batched_tokens": batched,
                  "max_num_seqs": seqs, "block_size": block, "kv_bytes_per_token": per_tok, "tp": tp, "pp": pp,
                  "scheduler": scheduler},
    )


def tokens_from_pool(m: ModelSpec, pool_bytes: float, *, engine: str = "vllm", tp: int = 1, kv_dtype: str = "bf16") -> int:
    """KV tokens an engine carves out of a KV pool it reported (e.g. "Available KV cache memory")."""
    _, e = engine_entry(engine)
    per_tok = float(kv_bytes_per_token(m, kv_dtype, tp).value)
    return math.floor(pool_bytes / (per_tok * e["block_size"])) * e["block_size"]


def engine_summary(mem: EngineMemory) -> dict[str, Any]:
    return {
        "engine": mem.engine, "kv_tokens": mem.kv_tokens, "max_concurrency": round(mem.max_concurrency, 2),
        "max_model_len": mem.max_model_len, "starts": mem.starts,
        "kv_pool_gib": round(float(mem.kv_pool.value) / GiB, 2), **mem.settings,
    }


def engine_total(mem: EngineMemory) -> Term:
    return total("engine use per GPU", [mem.weights, mem.activation, mem.non_torch, mem.cuda_graphs, mem.kv_pool])

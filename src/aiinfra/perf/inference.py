"""Inference latency and throughput: prefill (compute-bound) and decode (bandwidth-bound).

- TTFT: prefill FLOPs / (TP · peak · prefill efficiency) plus 2 TP all-reduces per layer; never
  faster than reading the weights once.
- TPOT: each decode step reads this GPU's weights (for MoE only the experts the batch touches)
  and the batch's KV cache at the calibrated fraction of HBM bandwidth, or is compute-bound at
  large batch, whichever is slower; plus 2 small TP all-reduces per layer (perf.comm).
- The batch is capped by how many sequences of prompt + output tokens fit in the KV pool
  (sizing.inference, vLLM-style gpu_memory_utilization).
Pure rooflines overestimate measured engines by 1.4–1.9× (LLM-Viewer issue #4, memory_perf_anchors
§1.10); the calibration in catalog/data/calibration.yaml (entry `inference`) closes that gap and is
printed with every answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aiinfra.errors import AiinfraError, DoesNotFitError, SpecError
from aiinfra.explain import Result, Term, quantity
from aiinfra.perf import comm, compute
from aiinfra.perf.flops import layer_flops
from aiinfra.sizing.inference import (
    inference_memory,
    cached_tokens_per_sequence,
    kv_bytes_per_sequence,
    model_weight_bytes,
)
from aiinfra.sizing.params import param_counts
from aiinfra.specs import ATTENTION_KERNELS, FP8_GEMM_ROUTES, GpuSpec, ModelSpec


def compute_dtype(gpu: GpuSpec, quant: str) -> str:
    """Matmul dtype: fp8 weights run fp8 tensor cores where the GPU has them; weight-only int4/int8
    dequantize to 16-bit (W4A16/W8A16)."""
    if quant in ("fp8", "fp4") and gpu.tflops.get(quant):
        return quant
    return "bf16" if gpu.tflops.get("bf16") else "fp16"


def _expert_fraction(m: ModelSpec, batch: float) -> float:
    """Share of routed experts a decode step touches: 1 − (1 − k/E)^batch (uniform routing)."""
    if not m.is_moe:
        return 1.0
    return 1.0 - (1.0 - m.experts_per_token / m.experts) ** batch


# engines.yaml `efficiency` per GPU: each field and whether its value must be a share in (0, 1] (else a number > 0,
# or >= 0 for a fixed overhead); decode_bw_fraction and gemm_scale are what every step-time formula reads
_ENGINE_EFFICIENCY = {"decode_bw_fraction": "share", "kv_bw_fraction": "share", "gemm_scale": "positive",
                      "prefill_layer_overhead_us": "amount", "prefill_overhead_ms": "amount",
                      "decode_layer_overhead_us": "amount", "fitted_on": "text"}


def engine_efficiency(engine: str | None, gpu: GpuSpec) -> dict | None:
    """Fitted efficiencies of `engine` on this GPU (engines.yaml `efficiency`), or None where none were fitted. Read
    strictly: a --catalog override with a field out of range, or one no formula reads, is refused in one line."""
    if not engine:
        return None
    from aiinfra.catalog.loader import default_catalog, is_amount, is_share

    key, e = default_catalog().entry("engines", engine)
    by_gpu = e.get("efficiency") or {}
    eff = by_gpu.get(gpu.key) if isinstance(by_gpu, dict) else by_gpu
    if not eff:
        return None
    checks = {"share": is_share, "positive": lambda v: is_amount(v) and v > 0, "amount": is_amount,
              "text": lambda v: isinstance(v, str)}
    if not isinstance(eff, dict):
        raise SpecError(f"engine '{key}' efficiency on {gpu.key} must be a map of fields, got {eff!r}")
    bad = ([f for f, v in eff.items() if f not in _ENGINE_EFFICIENCY or not checks[_ENGINE_EFFICIENCY[f]](v)]
           + [f for f in ("decode_bw_fraction", "gemm_scale") if f not in eff])
    if bad:
        raise SpecError(f"engine '{key}' efficiency on {gpu.key}: {', '.join(bad)} missing, unknown or malformed "
                        f"(a map with decode_bw_fraction and kv_bw_fraction in (0, 1], gemm_scale > 0, overheads >= 0)")
    return dict(eff, engine=engine)


def prefill_overhead_s(eff: dict | None, layers: int) -> float:
    """Fixed cost of one prefill step: kernel launches and set-up per layer (prefill_layer_overhead_us) times the
    layers; a flat prefill_overhead_ms where one is given instead."""
    if not eff:
        return 0.0
    if "prefill_layer_overhead_us" in eff:
        return float(eff["prefill_layer_overhead_us"]) * layers / 1e6
    return float(eff.get("prefill_overhead_ms", 0.0)) / 1e3


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split(".") if p.isdigit())


def gqa_kv_rereads(m: ModelSpec, engine: str | None, engine_version: str | None) -> tuple[float, str]:
    """How many times a decode step reads each KV head's cache: heads/kv_heads for an engine release whose
    generation kernel runs one block per query head (TensorRT-LLM before XQA, engines.yaml gqa_xqa_since), else 1."""
    if not engine or not engine_version or m.is_mla or m.kv_heads >= m.heads:
        return 1.0, "one read per KV head (GQA-aware decode kernel)"
    from aiinfra.catalog.loader import default_catalog

    _, e = default_catalog().entry("engines", engine)
    since = e.get("gqa_xqa_since")
    if since and _version(engine_version) < _version(since):
        return m.heads / m.kv_heads, (f"{engine} {engine_version} predates its GQA decode kernel (XQA, {since}): "
                                      f"each of {m.heads // m.kv_heads} query heads per KV head reads the cache")
    return 1.0, "one read per KV head (GQA-aware decode kernel)"


def scale_up_link(gpu: GpuSpec, tp: int) -> comm.Link:
    """The link a replica's TP all-reduces cross: the scale-up fabric inside its domain, else PCIe (a PCIe card, or TP
    wider than the NVLink domain)."""
    if gpu.scaleup_link == "pcie" or tp > (gpu.scaleup_domain or 1):
        return comm.link(f"pcie-gen{gpu.pcie_gen}")
    return comm.node_for(gpu).scale_up


def step_constants(m: ModelSpec, gpu: GpuSpec, *, tp: int = 1, quant: str = "bf16", kv_dtype: str = "bf16",
                   ctx: float, engine: str | None = None, efficiency: dict | None = None,
                   engine_version: str | None = None, pp: int = 1, ep: int = 0, nodes: int = 1,
                   w_gpu: float | None = None) -> dict:
    """Constants of one replica's step-time model (decode_step, prefill_time), shared by `aiinfra infer` and
    `aiinfra serve-plan` so the two cannot disagree. ctx: the mean context a decode step attends (prompt + output / 2).
    w_gpu: weight bytes on one GPU (default: the model's at `quant` over tp · pp). PP: per-stage layers, FLOPs and
    KV; EP with data-parallel attention (ep > 0): tp is 1, each GPU holds its own sequences' KV and E/ep whole
    experts, and MoE layers exchange tokens all-to-all.
    engine / efficiency: the engine's fitted efficiencies on this GPU (engines.yaml), else the generic calibration."""
    cal = compute.inference_calibration()
    eff = efficiency if efficiency is not None else engine_efficiency(engine, gpu)
    decode_bw = float(eff["decode_bw_fraction"]) if eff else cal.decode_bw_fraction
    kv_bw = float(eff.get("kv_bw_fraction", decode_bw)) if eff else decode_bw  # attention kernels reading the KV cache
    gemm_scale = float(eff["gemm_scale"]) if eff else 1.0
    dtype = compute_dtype(gpu, quant)
    pk = float(compute.peak(gpu, dtype).value)
    dense, moe = layer_flops(m)
    matmul_tok = m.dense_layers * dense.matmul + m.moe_layers * (moe.matmul if moe else 0)
    attn_pos = m.dense_layers * dense.attn_per_pos + m.moe_layers * (moe.attn_per_pos if moe else 0)
    head = 2.0 * m.hidden * m.vocab
    expert_flop_share = 0.0
    if m.is_moe:
        expert_flop_share = m.moe_layers * 6.0 * m.hidden * m.moe_ffn * m.experts_per_token / max(matmul_tok, 1.0)
    node = comm.node_for(gpu)
    up = scale_up_link(gpu, tp)
    # links between pipeline stages / EP ranks: NVLink inside the scale-up domain, else the scale-out NICs
    span = ep or tp * pp
    between = node.scale_up if (gpu.scaleup_link != "pcie" and span <= (gpu.scaleup_domain or 1)) else (
        node.scale_out_per_gpu() if nodes > 1 else comm.link(f"pcie-gen{gpu.pcie_gen}"))
    rereads, reread_src = gqa_kv_rereads(m, engine or (eff or {}).get("engine"), engine_version)
    kt, pcal = compute.kernel_table(gpu), prefill_calibration()
    tp_eff = 1 if ep else tp
    if w_gpu is None:
        w_gpu = float(model_weight_bytes(m, quant).value) / (tp * pp)
    flops_div = float(ep if ep else tp * pp)
    # prefill of one prompt: attention/dense on one rank (EP) or tp GPUs per stage; experts over ep GPUs
    pf_div = (1.0 / ((1.0 - expert_flop_share) + expert_flop_share / ep)) if ep else float(tp)
    return {
        "w": w_gpu, "routed": _routed_share(m), "k_over_e": (m.experts_per_token / m.experts) if m.is_moe else 1.0,
        "bw": gpu.memory_bw * decode_bw, "kv_bw": gpu.memory_bw * kv_bw, "hbm": gpu.memory_bw, "peak": pk,
        "decode_bw_fraction": decode_bw, "kv_bw_fraction": kv_bw, "gemm_scale": gemm_scale,
        "layer_oh": float(eff.get("decode_layer_overhead_us", 0.0)) / 1e6 if eff else 0.0,
        "prefill_oh": prefill_overhead_s(eff, m.layers),
        "flops_tok": (matmul_tok + head) / flops_div, "attn_pos": attn_pos / flops_div,
        "matmul_tok": matmul_tok, "attn_pos_total": attn_pos, "head": head,
        "ctx": float(cached_tokens_per_sequence(m, ctx)),  # all-layer equivalent positions a decode step attends
        "kv_seq": float(kv_bytes_per_sequence(m, ctx, kv_dtype, tp_eff).value) / pp, "rereads": rereads,
        "L": m.layers / pp, "L_total": m.layers, "h": m.hidden, "ffn": m.ffn, "tp": tp_eff,
        "ar_bw": up.effective_bw, "ar_alpha": up.alpha, "pp": pp, "dp": ep or 1, "ep": ep, "gpus": ep or tp * pp,
        "pf_div": pf_div, "hop_bw": between.effective_bw, "hop_alpha": between.alpha,
        "moe_layers": m.moe_layers if ep else 0, "top_k": m.experts_per_token if m.is_moe else 0,
        # not broadcast over a grid: text, and what the kernel-level prefill reads (prefill_parts)
        "gpu": gpu, "kernels": kt, "prefill_cal": pcal,
        "dtype": dtype, "fabric": (between.name if (pp > 1 or ep) else up.name), "link": up.name,
        "efficiency": "engine" if eff else "generic", "reread_source": reread_src,
        "calibration": (f"engines.yaml {eff.get('engine', 'given')}.efficiency[{gpu.key}] (fitted on "
                        f"{eff.get('fitted_on', 'given')})" if eff else cal.source),
    }


TEXT_CONSTANTS = ("gpu", "kernels", "prefill_cal", "dtype", "fabric", "link", "efficiency", "reread_source",
                  "calibration")


def decode_parts(d: dict, n) -> dict:
    """The parts of one decode step of n sequences on one replica (numbers, or arrays broadcast over a grid of
    constants and batch sizes); decode_step is their total.

    TP: one step reads this GPU's weights (an MoE only the experts the batch touches: 1 − (1 − k/E)^n of them) and
    the batch's KV cache, or is compute-bound at large batch, whichever is slower; plus 2 TP all-reduces of the
    batch's activations per layer (perf.comm: the faster of ring and tree) and the engine's per-layer launch cost.
    PP: pp micro-batches of n/pp sequences circulate through pp stages; a token waits for all pp stages (each
    reading its 1/pp of the weights) plus the pp − 1 activation hops: PP adds capacity, not speed.
    EP with data-parallel attention: each GPU runs attention for its n/ep sequences and its own experts for the
    tokens routed there; two all-to-alls (dispatch, combine) per MoE layer."""
    n = np.maximum(np.asarray(n, dtype=float), 1.0)
    pp = np.asarray(d["pp"], dtype=float)
    dp = np.asarray(d["dp"], dtype=float)
    ep = np.asarray(d["ep"], dtype=float)
    tp = np.asarray(d["tp"], dtype=float)
    micro = n / pp  # sequences in one stage pass (all DP ranks together)
    touched = 1.0 - (1.0 - d["k_over_e"]) ** micro
    w_read = d["w"] * (1.0 - (1.0 - touched) * d["routed"])
    kv_read = micro / dp * d["kv_seq"] * d["rereads"]
    t_bw = w_read / d["bw"] + kv_read / d["kv_bw"]
    mm_eff = np.minimum(0.95, d["gemm_scale"] * compute.matmul_efficiency(2 * micro * d["h"] * d["ffn"] / tp / 1e9).value)
    t_fl = micro * (d["flops_tok"] + d["attn_pos"] * d["ctx"]) / (d["peak"] * mm_eff)
    t_ar = 2 * d["L"] * comm.all_reduce_seconds(micro * d["h"] * 2, tp, d["ar_bw"], d["ar_alpha"])
    a2a = np.where(ep > 1, 2 * np.asarray(d["moe_layers"], dtype=float) * (
        micro / np.maximum(ep, 1) * d["top_k"] * d["h"] * 2 * (ep - 1) / np.maximum(ep, 1) / d["hop_bw"]
        + d["hop_alpha"]), 0.0)
    overhead = d["L"] * d["layer_oh"]
    stage = np.maximum(t_bw, t_fl) + t_ar + a2a + overhead
    hop = micro * d["h"] * 2 / d["hop_bw"] + d["hop_alpha"]
    total = pp * stage + (pp - 1) * hop
    return {"total": total, "w_read": w_read, "kv_read": kv_read, "t_bw": t_bw, "t_fl": t_fl, "comm": pp * t_ar,
            "a2a": pp * a2a, "overhead": pp * overhead, "mm_eff": mm_eff,
            "roofline": pp * ((w_read + kv_read) / d["hbm"] + t_ar + a2a) + (pp - 1) * hop}


@dataclass(frozen=True)
class PrefillCalibration:
    """How a prefill runs end to end against its kernels (calibration.yaml `inference`): the share of the kernel-level
    time (GEMMs at their plateau and size curve, flash attention at its measured efficiency, kernels.yaml) a whole
    prefill step reaches, by the tokens in the step; the flash-attention route and FP8 GEMM route engines call."""

    share_by_tokens: tuple[tuple[float, float], ...]
    attention_kernels: dict  # architecture → kernels.yaml attention route
    fp8_gemm: str
    source: str

    def attention_kernel(self, gpu: GpuSpec) -> str:
        """The flash-attention route engines run on this GPU's architecture ("": the architecture's bf16 figure)."""
        return self.attention_kernels.get(gpu.architecture, "")


def prefill_calibration() -> PrefillCalibration:
    from aiinfra.catalog.loader import default_catalog

    key, e = default_catalog().entry("calibrations", "inference")
    try:
        curve = tuple(sorted((float(a), float(b)) for a, b in e["prefill_fraction_by_tokens"]))
        if not curve or any(a < 0 or not 0 < b <= 1 for a, b in curve):
            raise ValueError("prefill_fraction_by_tokens must be [[tokens, share of the kernel-level time in (0, 1]], "
                             "...]")
        routes = e.get("attention_kernel") or {}
        if not isinstance(routes, dict) or not all(v in ATTENTION_KERNELS for v in routes.values()):
            raise ValueError(f"attention_kernel maps a GPU architecture to one of {', '.join(ATTENTION_KERNELS)}")
        if e.get("fp8_gemm", "") not in FP8_GEMM_ROUTES:
            raise ValueError(f"fp8_gemm is {' or '.join(r for r in FP8_GEMM_ROUTES if r)} or absent")
        return PrefillCalibration(curve, dict(routes), str(e.get("fp8_gemm", "")),
                                  e.get("prefill_source", e.get("source", "")))
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, KeyError):
            err = f"prefill_fraction_by_tokens {err} is missing"
        raise AiinfraError(f"calibration '{key}': {err}") from None


def prefill_kernel_time(m: ModelSpec, d: dict, prompt, seqs=1) -> dict:
    """Kernel-level seconds of prefilling `seqs` prompts of `prompt` tokens on one replica, with the kernel-level
    efficiencies the training step-time model uses (kernels.yaml, perf.compute.gemm_time and KernelTable.attention):
    - each linear layer's GEMM (M = the step's tokens, N and K the layer's shapes over tp, or for EP with
      data-parallel attention one rank's attention and dense layers and E/ep experts per GPU) at the architecture's
      plateau for the compute dtype (FP8 through the engines' route, calibration.yaml fp8_gemm) × its size curve;
    - causal flash attention over each prompt, FLOPs 2 · tokens · attended positions · heads/tp · (d_qk + d_v), at
      the forward efficiency of the engines' kernel route (calibration.yaml attention_kernel) at the prompt's length
      and head dim, of the 16-bit peak: FP8 weights do not make attention faster;
    - the LM head on each prompt's last token.
    Also the pure roofline of the same FLOPs (peaks, no efficiency), which no prefill beats."""
    from aiinfra.perf.flops import attended_positions
    from aiinfra.perf.training import _layer_gemms

    gpu, kt, pc = d["gpu"], d["kernels"], d["prefill_cal"]
    dtype = d["dtype"]
    path = pc.fp8_gemm if dtype == "fp8" else ""
    p = np.asarray(prompt, dtype=float)
    b = np.asarray(seqs, dtype=float)
    T = b * p
    tp, ep = int(d["tp"]), int(d["ep"])
    pk, pk16 = gpu.peak_flops(dtype), gpu.peak_flops(gpu.half_dtype)
    gemm_t, gemm_f = 0.0, 0.0
    for moe, layers in ((False, m.dense_layers), (True, m.moe_layers)):
        if not layers:
            continue
        shapes = _layer_gemms(m, T, tp, 1, moe, tp) if not ep else (
            [g for g in _layer_gemms(m, T, 1, 1, moe, 1) if g[4] != "expert"]
            + [g for g in _layer_gemms(m, T / ep, 1, ep, moe, 1) if g[4] == "expert"])
        for M, N, K, count, _role, _pieces in shapes:
            gemm_t = gemm_t + layers * count * compute.gemm_time(M, N, K, gpu, dtype, kt, path, group=count)
            gemm_f = gemm_f + layers * count * 2.0 * M * N * K
    head_t = compute.gemm_time(b, m.vocab / tp, m.hidden, gpu, dtype, kt, path)
    head_f = 2.0 * b * m.vocab / tp * m.hidden
    d_qk = (m.qk_nope_dim + m.qk_rope_dim) if m.is_mla else m.head_dim
    d_v = m.v_head_dim if m.is_mla else m.head_dim
    attn_f = m.layers * 2.0 * T * attended_positions(m, p, True) * m.heads / tp * (d_qk + d_v)
    attn_eff = kt.attention(pc.attention_kernel(gpu), p, causal=True, head_dim=d_qk)[0]
    attn_t = attn_f / (pk16 * attn_eff)
    return {"kernel": gemm_t + head_t + attn_t, "gemm": gemm_t + head_t, "attention": attn_t,
            "attention_efficiency": attn_eff, "flops": gemm_f + head_f + attn_f,
            "roofline": (gemm_f + head_f) / pk + attn_f / pk16}


def prefill_parts(m: ModelSpec, d: dict, prompt, seqs=1) -> dict:
    """The parts of prefilling `seqs` prompts of `prompt` tokens together on one replica (prompt may be an array of
    lengths, one prefill each); prefill_time is their total.

    Compute: the kernel-level time (prefill_kernel_time) over the share of it a whole prefill step reaches
    (calibration.yaml prefill_fraction_by_tokens, by the step's tokens) and the engine's GEMM scale, never faster
    than the FLOPs at peak. Never faster than reading the weights once at the decode bandwidth fraction: a one-token
    prefill is a decode step. Plus 2 TP all-reduces of the prompts' activations per layer, the pp − 1 activation
    hops, EP's all-to-alls and the engine's fixed step cost."""
    p = np.asarray(prompt, dtype=float)
    b = np.asarray(seqs, dtype=float)
    tokens = b * p
    k = prefill_kernel_time(m, d, p, b)
    share = compute.log_interp(tokens, d["prefill_cal"].share_by_tokens) * d["gemm_scale"]  # log size, flat beyond
    t_compute = np.maximum(k["kernel"] / share, k["roofline"])
    pp = d["pp"]
    floor = d["w"] * pp / d["bw"]
    t_comm = 2 * d["L_total"] * comm.all_reduce_seconds(tokens * d["h"] * 2, d["tp"], d["ar_bw"], d["ar_alpha"])
    t_hop = (pp - 1) * (tokens * d["h"] * 2 / d["hop_bw"] + d["hop_alpha"]) if pp > 1 else 0.0
    t_a2a = 0.0
    if d["ep"] > 1:
        ep = d["ep"]
        t_a2a = 2 * d["moe_layers"] * (tokens * d["top_k"] * d["h"] * 2 * (ep - 1) / ep / d["hop_bw"] + d["hop_alpha"])
    total = np.maximum(t_compute, floor) + t_comm + t_hop + t_a2a + d["prefill_oh"]
    return {"total": total, "flops": k["flops"], "efficiency": k["roofline"] / t_compute, "share": share,
            "kernel": k["kernel"], "attention": k["attention"], "attention_efficiency": k["attention_efficiency"],
            "compute": t_compute, "floor": floor, "comm": t_comm + t_hop + t_a2a, "overhead": d["prefill_oh"]}


def prefill_time(m: ModelSpec, d: dict, prompt, seqs=1):
    """Seconds to prefill `seqs` prompts of `prompt` tokens together on one replica (prefill_parts)."""
    return prefill_parts(m, d, prompt, seqs)["total"]


def decode_step(d: dict, n):
    """Seconds between two tokens of a sequence when n sequences decode together on one replica (decode_parts)."""
    return decode_parts(d, n)["total"]


def inference_perf(m: ModelSpec, gpu: GpuSpec, *, prompt: int, output: int, batch: int, tp: int = 1,
                   quant: str = "bf16", kv_dtype: str = "bf16", price_per_gpu_hour: float | None = None,
                   gpu_memory_utilization: float | None = None, engine: str | None = None,
                   efficiency: dict | None = None, engine_version: str | None = None) -> Result:
    """Latency and throughput of serving `batch` requests of `prompt` → `output` tokens on `tp` GPUs.

    engine: use that engine's efficiencies fitted on its published benchmarks for this GPU (engines.yaml
    `efficiency`: decode_bw_fraction, gemm_scale) where they exist; otherwise the generic calibration.
    efficiency: the same two numbers given directly (used by the fit itself).
    engine_version: the engine release, where its kernels change the answer (TensorRT-LLM before 0.8 re-reads a
    GQA model's KV cache once per query head); None means a current release."""
    for name, v in (("prompt", prompt), ("output", output), ("batch", batch), ("tp", tp)):
        if v <= 0:
            raise SpecError(f"{name} must be positive, got {v}")
    if price_per_gpu_hour is not None and price_per_gpu_hour <= 0:
        raise SpecError(f"price per GPU-hour must be positive, got {price_per_gpu_hour}")
    cal = compute.inference_calibration()
    eff = efficiency if efficiency is not None else engine_efficiency(engine, gpu)
    decode_bw = float(eff["decode_bw_fraction"]) if eff else cal.decode_bw_fraction
    gemm_scale = float(eff["gemm_scale"]) if eff else 1.0
    kv_bw = float(eff.get("kv_bw_fraction", decode_bw)) if eff else decode_bw  # attention kernels reading the KV cache
    step_overhead = prefill_overhead_s(eff, m.layers)  # fixed cost of a prefill step: launches per layer
    cal_src = (f"engines.yaml {eff.get('engine', 'given')}.efficiency[{gpu.key}] (fitted on {eff.get('fitted_on', 'given')})"
               if eff else cal.source)
    context = prompt + output
    mem = inference_memory(m, quant=quant, kv_dtype=kv_dtype, context=context, batch=batch, tp=tp, gpu=gpu,
                           gpu_memory_utilization=gpu_memory_utilization)
    cap = mem.capacity
    warnings = []
    seqs_fit = cap["sequences_at_context"]
    if seqs_fit < 1:
        raise DoesNotFitError(
            f"{m.name} ({quant}) does not fit on {tp} × {gpu.key}: {float(mem.weights.value) / 1e9:.1f} GB of weights "
            f"per GPU leave no room for one {context}-token sequence in {cap['engine_budget_gb']} GB; raise --tp or quantize")
    eff_batch = min(batch, seqs_fit)
    if eff_batch < batch:
        warnings.append(f"KV cache holds only {seqs_fit} sequences of {context} tokens per replica; batch capped from {batch}")

    dtype = compute_dtype(gpu, quant)
    pk = compute.peak(gpu, dtype)
    weights_gpu = float(model_weight_bytes(m, quant).value) / tp
    # the step-time constants serve-plan's search uses too (decode_parts, prefill_parts)
    avg_ctx = prompt + output / 2
    d = step_constants(m, gpu, tp=tp, quant=quant, kv_dtype=kv_dtype, ctx=avg_ctx, engine=engine, efficiency=eff,
                       engine_version=engine_version)

    # Prefill: the batch's prompts in one step.
    pf = prefill_parts(m, d, prompt, eff_batch)
    pf_frac = float(pf["efficiency"])
    ttft = Term("TTFT", float(pf["total"]), "s",
                "max(kernel-level prefill time / (end-to-end share · engine GEMM scale), FLOPs / peak, "
                "weights / (HBM · decode eff)) + 2·L·t_allreduce + engine step overhead",
                {"prefill FLOPs": float(pf["flops"]), "peak": pk, "kernel-level time (s)": float(pf["kernel"]),
                 "of which attention (s)": float(pf["attention"]),
                 "attention efficiency": float(pf["attention_efficiency"]),
                 "end-to-end share": float(pf["share"]) / gemm_scale, "engine GEMM scale": gemm_scale,
                 "engine step overhead (s)": step_overhead, "tp": tp, "weights per GPU (B)": weights_gpu,
                 "decode efficiency": decode_bw, "TP comm (s)": float(pf["comm"])},
                {"calibration": cal_src, "kernels": f"kernels.yaml {d['kernels'].arch} (GEMM plateau and size curve, "
                 f"flash attention route {d['prefill_cal'].attention_kernel(gpu) or 'default'})",
                 "end-to-end share": d["prefill_cal"].source,
                 "floor": "a one-token prefill is a decode step: the weights read at the decode bandwidth fraction"})

    # Decode: one token per sequence per step (decode_parts: the same step serve-plan's search uses).
    dec = {k: float(v) for k, v in decode_parts(d, eff_batch).items()}
    tpot = Term("TPOT", dec["total"], "s",
                "max(weights read / (HBM · decode eff) + KV read / (HBM · KV eff), decode FLOPs / (peak · eff)) + 2·L·t_allreduce + L · engine per-layer overhead",
                {"weights read (B)": dec["w_read"], "KV read (B)": dec["kv_read"], "HBM B/s": gpu.memory_bw,
                 "decode efficiency": decode_bw, "KV read efficiency": kv_bw, "KV reads per KV head": d["rereads"],
                 "per-layer overhead (s)": d["layer_oh"], "layers": m.layers,
                 "decode FLOPs per GPU": eff_batch * (d["flops_tok"] + d["attn_pos"] * d["ctx"]),
                 "decode GEMM efficiency": dec["mm_eff"], "TP comm (s)": dec["comm"], "TP link": d["link"]},
                {"calibration": cal_src, gpu.key: gpu.source, "KV reads per KV head": d["reread_source"],
                 "all-reduce": "perf.comm.all_reduce_seconds: the faster of ring and tree"})
    roofline_tpot = dec["roofline"]
    # the prefill step emits the first output token; each of the other output − 1 takes a decode step (vLLM's
    # benchmark_serving: TPOT = (latency − TTFT) / (output − 1), the first token excluded)
    request = Term("request latency", ttft.value + (output - 1) * tpot.value, "s", "TTFT + (output − 1) · TPOT",
                   {"TTFT": ttft, "output": output, "TPOT": tpot},
                   {"first token": "emitted by the prefill step; vLLM benchmarks/benchmark_serving.py TPOT excludes it"})
    out_tps = Term("output tokens/s per GPU", eff_batch * output / request.value / tp, "tokens/s",
                   "batch · output / request latency / tp", {"batch": eff_batch, "request": request, "tp": tp})
    dec_tps = Term("decode tokens/s per GPU", eff_batch / tpot.value / tp, "tokens/s", "batch / TPOT / tp",
                   {"batch": eff_batch, "TPOT": tpot})
    terms = [ttft, tpot, request, out_tps, dec_tps]
    facts = {
        "model": m.name, "gpu": gpu.key, "tp": tp, "quant": quant, "compute_dtype": dtype, "kv_dtype": kv_dtype,
        "prompt": prompt, "output": output, "batch_requested": batch, "batch_served": eff_batch,
        "kv_sequences_that_fit": seqs_fit,
        "calibration": (f"decode at {decode_bw:.2f} of HBM bandwidth, prefill at "
                        f"{pf_frac:.2f} of peak (pure rooflines overestimate engines 1.4-1.9x; {cal_src})"),
        "roofline_tpot_uncalibrated": quantity(roofline_tpot, "s"),
    }
    if price_per_gpu_hour is not None:
        cost = Term("cost per 1M output tokens", price_per_gpu_hour / (out_tps.value * 3600) * 1e6, "USD",
                    "$/GPU-hour / (tokens/s per GPU · 3600) · 1e6", {"$/GPU-hour": price_per_gpu_hour, "tokens/s per GPU": out_tps})
        terms.append(cost)
    if tp > 1 and gpu.scaleup_link == "pcie":
        warnings.append(f"TP={tp} on {gpu.key} runs its all-reduces over {gpu.scaleup_name}; prefer one GPU per replica "
                        "or a part with NVLink")
    elif tp > (gpu.scaleup_domain or 1):
        warnings.append(f"TP={tp} on {gpu.key} is wider than its {gpu.scaleup_name}: the all-reduces leave the fast link")
    return Result(f"Inference: {m.name} on {tp} × {gpu.key}", terms, facts, warnings)


def _routed_share(m: ModelSpec) -> float:
    """Fraction of an MoE model's bytes that sit in routed experts."""
    pc = param_counts(m)
    if pc.moe_layer is None:
        return 0.0
    return m.moe_layers * pc.moe_layer.experts / float(pc.total.value)



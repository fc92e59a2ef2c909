"""The serving search: replicas × TP × max batch × quantization × GPU × aggregated or disaggregated
prefill/decode, evaluated for a whole grid at once with numpy.

Per configuration (GPU, TP, quantization) the step times are `aiinfra infer`'s, the same functions
(perf.inference.step_constants, prefill_time, decode_step) with the calibrated efficiencies of
catalog/data/calibration.yaml (or the engine's fitted ones, engines.yaml):
- prefill of p tokens: max(FLOPs(p) / (tp · peak · eff(p)), weights / (HBM · decode efficiency)) + 2·L TP
  all-reduces;
- a decode step of n sequences: max((weights read + n · KV read) / (HBM · decode efficiency),
  n · FLOPs / (tp · peak · eff)) + 2·L small all-reduces; an MoE reads only the experts the batch touches.
Queueing (continuous batching, one FIFO per replica):
- the prefill step emits a request's first output token, so it decodes output − 1 steps;
- decode concurrency N solves N = λ_r · (out − 1) · t_step(N) (Little's law), where the step stretches by the
  prefill work sharing the GPU (aggregated: chunked prefill in the same steps);
- a request waits for one of c = min(max batch, KV slots) slots: Erlang C, P(wait > t) = C·e^{−(cμ−λ)t};
- disaggregated: prefill replicas are M/G/1 queues (Pollaczek–Khinchine mean, exponential tail), decode
  replicas have no prefill interference, and the prompt's KV crosses the scale-out fabric.
The analytical queue is checked against a discrete-event simulation (serving/simulate.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from aiinfra.errors import SpecError
from aiinfra.perf import comm
from aiinfra.perf.inference import TEXT_CONSTANTS, decode_step, prefill_time, step_constants
from aiinfra.serving.workload import Targets, Workload
from aiinfra.sizing.engine import engine_memory
from aiinfra.sizing.inference import (WEIGHT_QUANTS, kv_bytes_per_sequence, kv_bytes_per_token, max_context,
                                      model_weight_bytes)
from aiinfra.sizing.params import param_counts
from aiinfra.specs import GpuSpec, ModelSpec

BATCHES = (4, 8, 16, 32, 64, 128, 256, 512)
TPS = (1, 2, 4, 8)
RATIOS = ((1, 1), (1, 2), (1, 3), (2, 1), (1, 5))  # prefill : decode replicas, disaggregated
MAX_REPLICAS = 64


@dataclass(frozen=True)
class Config:
    """One (GPU, TP, quantization) replica shape with its per-request times and memory."""

    gpu: GpuSpec
    tp: int
    quant: str
    price: float
    slots_mem: int  # sequences of mean context the KV pool holds
    kv_pool: float
    pf_mean: float  # prefill time of a prompt: mean, second moment, quantiles (s)
    pf_m2: float
    pf_q: dict
    pf_mean_prompt: float
    dec: dict  # decode step-time model constants
    kv_transfer: dict  # seconds to move one prompt's KV at each quantile and mean
    fabric: str
    max_model_len: int
    pp: int = 1  # pipeline stages (one replica spans tp · pp GPUs)
    ep: int = 0  # MoE: experts spread over this many GPUs with data-parallel attention (0: experts TP-sharded)
    nodes: int = 1  # nodes one replica spans (> 1: a LeaderWorkerSet group)

    @property
    def gpus(self) -> int:
        return self.ep or self.tp * self.pp

    @property
    def layout(self) -> str:
        if self.ep:
            return f"DP{self.ep}-attention + EP{self.ep}"
        return f"TP{self.tp}" + (f" × PP{self.pp}" if self.pp > 1 else "")


@dataclass
class Grid:
    configs: list[Config]
    cols: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cols["cfg"])


# vLLM runs FP8 and FP4 checkpoints on NVIDIA GPUs without those tensor cores as weight-only quantization: its Marlin
# kernels dequantize the weights to 16 bits inside the GEMM (W8A16 / W4A16; model_executor/layers/quantization/utils/
# marlin_utils_fp4.py: "For GPUs that lack FP4 hardware support, we can leverage the Marlin kernel for fast
# weight-only FP4 quantization", and its start-up warning "Weight-only FP4 compression will be used"). Marlin is a
# CUDA kernel; `aiinfra infer` computes such weights in 16 bits too (perf.inference.compute_dtype).
WEIGHT_ONLY_SOURCE = ("vLLM's Marlin kernels (quantization/utils/marlin_utils_fp4.py, marlin_utils_fp8.py): weights "
                      "dequantized to 16 bits in the GEMM where the GPU has no tensor cores for them")


# NVIDIA architectures older than each Marlin kernel: FP4 Marlin needs compute capability 7.5 (marlin_utils_fp4.py
# is_fp4_marlin_supported), FP8 Marlin Ampere (vLLM's supported-hardware table: "Marlin (GPTQ/AWQ/FP8)" from Ampere)
MARLIN_TOO_OLD = {"fp4": {"kepler", "maxwell", "pascal", "volta"},
                  "fp8": {"kepler", "maxwell", "pascal", "volta", "turing"}}


def quant_support(gpu: GpuSpec, quant: str) -> str | None:
    """How `quant` weights run on `gpu`: 'native' (tensor cores for it, or weight-only int4/int8 anywhere),
    'weight-only' (fp8/fp4 dequantized to 16 bits on an NVIDIA GPU without those tensor cores, vLLM's Marlin path), or
    None (no kernel: fp8/fp4 on a non-NVIDIA GPU, or one older than Marlin, without them)."""
    if quant not in ("fp8", "fp4") or gpu.tflops.get(quant):
        return "native"
    ok = gpu.vendor == "nvidia" and gpu.architecture.lower() not in MARLIN_TOO_OLD[quant]
    return "weight-only" if ok else None


def no_kernel_reason(gpu: GpuSpec, quant: str) -> str:
    """Why `quant` weights do not run on `gpu` (quant_support None), in a few words."""
    why = ("vLLM's Marlin runs on NVIDIA GPUs only" if gpu.vendor != "nvidia"
           else f"vLLM's {quant.upper()} Marlin kernel needs a newer architecture than {gpu.architecture}")
    return f"{quant} on {gpu.key}: no {quant.upper()} tensor cores and no weight-only {quant.upper()} kernel ({why})"


def _quant_ok(gpu: GpuSpec, quant: str) -> bool:
    return quant_support(gpu, quant) is not None


def _decode_consts(m: ModelSpec, gpu: GpuSpec, tp: int, quant: str, w_gpu: float, ctx_mean: float,
                   engine: str | None = None, *, pp: int = 1, ep: int = 0, nodes: int = 1) -> dict:
    """Constants of one replica's step-time model: perf.inference.step_constants, the same ones `aiinfra infer` uses
    (bf16 KV cache, as vLLM's kv_cache_dtype auto keeps it for 16-bit models). fp8 and fp4 weights compute on their
    tensor cores where the GPU has them; weight-only (W8A16 / W4A16, quant_support) they compute in 16 bits
    (perf.inference.compute_dtype)."""
    return step_constants(m, gpu, tp=tp, quant=quant, kv_dtype="bf16", ctx=ctx_mean, engine=engine, pp=pp, ep=ep,
                          nodes=nodes, w_gpu=w_gpu)


def _routed_share(m: ModelSpec) -> float:
    if not m.is_moe:
        return 0.0
    pc = param_counts(m)
    return m.moe_layers * pc.moe_layer.experts / float(pc.total.value)


def layouts(m: ModelSpec, g: GpuSpec, tps: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(tp, pp, ep) replica shapes worth searching on this GPU:
    - TP inside the scale-up domain (as before);
    - PP where TP cannot grow: TP at its largest in one node × 2 or 4 stages (replicas over 2-4 nodes), and on
      PCIe GPUs TP1/TP2 × 2-4 stages inside the node (PP needs one activation hop per stage, not 2 all-reduces
      per layer);
    - MoE: experts over 4, 8 or 16 GPUs with data-parallel attention (each GPU keeps only its own sequences'
      KV: no KV replicated when TP exceeds the KV heads, and MLA's latent not copied per rank)."""
    node = comm.node_for(g).gpus_per_node
    cap = max(8, g.scaleup_domain or 1)
    tp_ok = [tp for tp in tps if m.heads % tp == 0 and tp <= cap]
    out = [(tp, 1, 0) for tp in tp_ok]
    in_node = [tp for tp in tp_ok if tp <= node and (g.scaleup_link != "pcie" or tp <= 8)]
    if in_node:
        top = max(in_node)
        out += [(top, pp, 0) for pp in (2, 4) if top * pp > node]
    if g.scaleup_link == "pcie":
        out += [(tp, pp, 0) for tp in (1, 2) if tp in tp_ok for pp in (2, 4) if tp * pp <= node]
    if m.is_moe:
        out += [(1, 1, ep) for ep in (4, 8, 16) if ep <= m.experts and ep <= 2 * node]
    return sorted(set(out))


def build_configs(m: ModelSpec, gpus: dict[str, tuple[GpuSpec, float]], w: Workload, *, quants: list[str] | None = None,
                  tps: tuple[int, ...] = TPS, engine: str = "vllm") -> list[Config]:
    prompts, outputs = w.prompt.draw(), w.output.draw(seed=1)
    ctx_mean = float(prompts.mean() + outputs.mean() / 2)
    max_len = int(np.quantile(prompts + outputs, 0.999))
    limit = max_context(m)
    if limit is not None:  # vLLM starts with no longer max_model_len; longer requests are rejected (serve_plan warns)
        max_len = min(max_len, limit[0])
    out: list[Config] = []
    qs = quants or ["bf16", "fp8"]
    for q in qs:
        if q not in WEIGHT_QUANTS:
            raise SpecError(f"unknown quantization '{q}'; choose among {', '.join(WEIGHT_QUANTS)}")
    for key, (g, price) in gpus.items():
        for q in qs:
            if not _quant_ok(g, q):
                continue
            w_all = float(model_weight_bytes(m, q).value)
            for tp, pp, ep in layouts(m, g, tps):
                gpus_n = ep or tp * pp
                node = comm.node_for(g)
                nodes = math.ceil(gpus_n / node.gpus_per_node)
                if ep:
                    routed = _routed_share(m)
                    w_rank = w_all * (1 - routed) + w_all * routed / ep
                    em = engine_memory(m, g, engine=engine, tp=1, quant=q, max_model_len=max_len, weights_bytes=w_rank)
                    per_seq = float(kv_bytes_per_sequence(m, prompts.mean() + outputs.mean(), "bf16", 1).value)
                    slots = ep * int(float(em.kv_pool.value) // per_seq) if per_seq else 0
                    w_gpu = w_rank
                else:
                    em = engine_memory(m, g, engine=engine, tp=tp, pp=pp, quant=q, max_model_len=max_len)
                    per_seq = float(kv_bytes_per_sequence(m, prompts.mean() + outputs.mean(), "bf16", tp).value) / pp
                    slots = int(float(em.kv_pool.value) // per_seq) if per_seq else 0
                    w_gpu = w_all / (tp * pp)
                pool = float(em.kv_pool.value)
                if slots < 1 or not em.starts:
                    continue
                d = _decode_consts(m, g, tp, q, w_gpu, ctx_mean, engine, pp=pp, ep=ep, nodes=nodes)
                if ep:
                    d["routed"] = (w_all * _routed_share(m) / ep) / w_rank
                pf = prefill_time(m, d, prompts)
                so = node.scale_out_per_gpu()
                kv_full = float(kv_bytes_per_token(m, "bf16", 1).value)
                shard = 1 if ep else tp  # GPUs the prompt's KV leaves from in parallel (disaggregated)
                xfer = {k: float(np.quantile(prompts, v)) * kv_full / (shard * so.effective_bw) + so.alpha
                        for k, v in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
                xfer["mean"] = float(prompts.mean()) * kv_full / (shard * so.effective_bw) + so.alpha
                out.append(Config(
                    g, 1 if ep else tp, q, price, slots, pool, float(pf.mean()), float((pf**2).mean()),
                    {k: float(np.quantile(pf, v)) for k, v in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))},
                    float(prompts.mean()), d, xfer, d["fabric"] if (pp > 1 or ep) else so.name, max_len,
                    pp=pp, ep=ep, nodes=nodes,
                ))
    return out


def _erlang_c(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Probability of waiting in M/M/c with offered load a (Erlang) and c servers; 1 where a ≥ c."""
    b = np.ones_like(a)
    cmax = int(c.max()) if c.size else 0
    out = np.ones_like(a)
    for k in range(1, cmax + 1):
        b = a * b / (k + a * b)
        out = np.where(c == k, b, out)
    with np.errstate(divide="ignore", invalid="ignore"):
        cc = c * out / (c - a * (1.0 - out))
    return np.where(a < c, np.clip(cc, 0.0, 1.0), 1.0)


def evaluate(m: ModelSpec, w: Workload, t: Targets, configs: list[Config], *, batches: tuple[int, ...] = BATCHES,
             max_replicas: int = MAX_REPLICAS, ratios: tuple[tuple[int, int], ...] = RATIOS,
             disaggregated: bool = True) -> Grid:
    """Every candidate deployment at once: arrays of TTFT/TPOT at the target percentile, cost and GPUs."""
    if not configs:
        return Grid(configs, {"cfg": np.zeros(0, dtype=int)})
    C, NB, NR = len(configs), len(batches), max_replicas
    modes = [(0, 0)] + (list(ratios) if disaggregated else [])
    NM = len(modes)
    shape = (C, NB, NR, NM)
    cfg = np.broadcast_to(np.arange(C)[:, None, None, None], shape).ravel()
    bcap = np.broadcast_to(np.asarray(batches, dtype=float)[None, :, None, None], shape).ravel()
    reps = np.broadcast_to(np.arange(1, NR + 1, dtype=float)[None, None, :, None], shape).ravel()
    mode = np.broadcast_to(np.arange(NM)[None, None, None, :], shape).ravel()
    parts = np.array([1.0] + [float(p + d) for p, d in modes[1:]])[mode]
    rp_share = np.array([0.0] + [p / (p + d) for p, d in modes[1:]])[mode]
    dis = mode > 0
    rp = np.where(dis, np.round(reps * rp_share), 0.0)
    rd = np.where(dis, reps - rp, reps)
    # a p:d split needs a multiple of p + d replicas (so 1:1 and 2:1 never name the same deployment)
    valid = (rd >= 1) & (np.mod(reps, parts) == 0)

    def col(name: str, sub: str | None = None) -> np.ndarray:
        vals = np.array([getattr(c, name)[sub] if sub else getattr(c, name) for c in configs], dtype=float)
        return vals[cfg]

    d = {k: col("dec", k) for k in configs[0].dec if k not in TEXT_CONSTANTS}
    tp = d["tp"]
    q = t.percentile
    z = {"p50": 0.0, "p90": 1.2816, "p99": 2.3263}[q]
    out_mean = float(w.output.draw(seed=1).mean())
    slots = np.minimum(bcap, col("slots_mem"))
    lam_d = w.rate / np.maximum(rd, 1.0)
    pf_mean, pf_m2, pf_q = col("pf_mean"), col("pf_m2"), col("pf_q", q)
    # decode steps a request holds a slot for: the prefill step emits the first output token (aggregated, as vLLM
    # does; its benchmark's TPOT excludes that token), so output − 1; a disaggregated decode replica emits them all
    steps_req = np.where(dis, out_mean, max(out_mean - 1.0, 0.0))
    # Prefill load per replica: in the decode replicas themselves (aggregated) or in a prefill pool.
    rho_pf = np.where(dis, 0.0, lam_d * pf_mean)
    # Decode concurrency fixed point N = λ_r · out · t_step(N), the step stretched by prefill sharing the GPU.
    n = np.minimum(slots, np.maximum(1.0, lam_d * steps_req * decode_step(d, 1.0)))
    for _ in range(40):
        step = decode_step(d, np.minimum(n, slots)) / np.maximum(1.0 - rho_pf, 1e-3)
        n_new = lam_d * steps_req * step
        n = 0.5 * n + 0.5 * np.minimum(n_new, slots * 4)
    step = decode_step(d, np.minimum(n, slots)) / np.maximum(1.0 - rho_pf, 1e-3)
    hold = steps_req * step + np.where(dis, 0.0, pf_mean)
    a = lam_d * hold
    stable = (a < slots) & (rho_pf < 0.95)
    pw = _erlang_c(np.where(stable, a, slots), slots)
    mu_gap = np.maximum(slots / hold - lam_d, 1e-9)
    wq = np.where(pw > 1 - t.q, np.log(np.maximum(pw, 1e-12) / (1 - t.q)) / mu_gap, 0.0)
    def mg1_wait(lam: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """M/G/1 wait at the target percentile: Pollaczek–Khinchine mean, exponential tail P(W>t)=ρe^{−ρt/E[W]}."""
        rho = lam * s1
        mean = np.where(rho < 1, lam * s2 / (2 * np.maximum(1 - rho, 1e-9)), np.inf)
        tail = np.where(rho > 1 - t.q, mean / np.maximum(rho, 1e-9) * np.log(np.maximum(rho, 1e-12) / (1 - t.q)), 0.0)
        return rho, tail

    # Aggregated TTFT: wait for a slot, queue behind other prompts' prefill (the replica prefills one chunk
    # budget per step), half a running step, then prefill in chunks that also carry the running decodes.
    dstep = decode_step(d, np.minimum(n, slots))
    chunks = np.ceil(col("pf_mean_prompt") / 8192.0)
    s1 = pf_mean + chunks * dstep
    s2 = pf_m2 + 2 * pf_mean * chunks * dstep + (chunks * dstep) ** 2
    _, wq_pf = mg1_wait(lam_d, s1, s2)
    ttft_agg = wq + wq_pf + pf_q + chunks * dstep + dstep / 2
    # Disaggregated TTFT: M/G/1 prefill replica queue + prefill + KV transfer + first decode step.
    lam_p = w.rate / np.maximum(rp, 1.0)
    rho_p, wq_p = mg1_wait(lam_p, pf_mean, pf_m2)
    ttft_dis = wq_p + pf_q + col("kv_transfer", q) + step + wq
    stable = stable & np.where(dis, rho_p < 0.95, True)
    ttft = np.where(dis, ttft_dis, ttft_agg)
    # TPOT: the steady step; a request also sees Poisson-many prefills land in its decode steps (aggregated).
    m_pf = lam_d * steps_req * step  # prefills arriving while a request decodes
    k_q = np.maximum(0.0, m_pf + z * np.sqrt(m_pf))
    tpot = np.where(dis, step, decode_step(d, np.minimum(n, slots)) + k_q * pf_mean / np.maximum(steps_req, 1.0))
    gpus = reps * d["gpus"]
    price = col("price")
    tokens_h = w.rate * 3600 * (float(w.prompt.draw().mean()) + out_mean)
    usd_h = gpus * price
    ok = valid & stable & np.isfinite(ttft) & np.isfinite(tpot)
    grid = Grid(configs)
    grid.cols = {
        "cfg": cfg, "batch": bcap, "replicas": reps, "prefill_replicas": rp, "decode_replicas": rd, "mode": mode,
        "tp": tp, "gpus": gpus, "slots": slots, "concurrency": n, "ttft": np.where(ok, ttft, np.inf),
        "tpot": np.where(ok, tpot, np.inf), "stable": ok, "usd_per_hour": usd_h,
        "usd_per_1m": usd_h / tokens_h * 1e6, "usd_per_1m_out": usd_h / (w.rate * 3600 * out_mean) * 1e6,
        "meets": ok & (ttft <= t.ttft_s) & (tpot <= t.tpot_s), "step": step, "pf": pf_q, "valid": valid,
    }
    grid.modes = modes  # type: ignore[attr-defined]
    return grid


def describe(grid: Grid, i: int) -> dict:
    c = grid.configs[int(grid.cols["cfg"][i])]
    col = grid.cols
    mode = int(col["mode"][i])
    p, dd = grid.modes[mode]  # type: ignore[attr-defined]
    layout = (f"{int(col['replicas'][i])} × {c.layout}" if mode == 0 else
              f"{int(col['prefill_replicas'][i])} prefill + {int(col['decode_replicas'][i])} decode × {c.layout}")
    return {
        "gpu": c.gpu.key, "quant": c.quant, "tp": c.tp, "pp": c.pp, "ep": c.ep, "gpus_per_replica": c.gpus,
        "nodes_per_replica": c.nodes, "mode": "aggregated" if mode == 0 else f"disaggregated {p}:{dd}",
        "layout": layout, "replicas": int(col["replicas"][i]), "prefill_replicas": int(col["prefill_replicas"][i]),
        "decode_replicas": int(col["decode_replicas"][i]), "max_batch": int(col["batch"][i]),
        "kv_slots": int(col["slots"][i]), "gpus": int(col["gpus"][i]),
        "ttft_ms": _ms(col["ttft"][i]), "tpot_ms": _ms(col["tpot"][i]), "concurrency": round(float(col["concurrency"][i]), 1),
        "usd_per_hour": round(float(col["usd_per_hour"][i]), 2), "usd_per_1m_tokens": round(float(col["usd_per_1m"][i]), 4),
        "usd_per_1m_output_tokens": round(float(col["usd_per_1m_out"][i]), 4), "price_per_gpu_hour": c.price,
        "fabric": c.fabric, "max_model_len": c.max_model_len,
    }


def _ms(v: float) -> float | None:
    return round(float(v) * 1e3, 2) if math.isfinite(float(v)) else None

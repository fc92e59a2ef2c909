"""Vectorized parallelism search: memory filter (sizing) → step time (perf) → top-k with reasons.

Every candidate of `plan.space` is evaluated by the same formula code that explains one layout,
on numpy arrays in chunks, with no Python loop per candidate. The winner is then re-evaluated as
scalars so `--explain` shows its derivation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from aiinfra.errors import AiinfraError, DoesNotFitError, SpecError
from aiinfra.explain import Term
from aiinfra.perf import comm
from aiinfra.perf.flops import training_flops
from aiinfra.perf.stacks import TP_MODES, stack
from aiinfra.perf.training import step_time
from aiinfra.plan.heap import kept_heap
from aiinfra.plan.space import Space, build_space, describe, offload_name, recompute_name
from aiinfra.sizing.activations import saved_input_bytes
from aiinfra.sizing.layout import zero_phrase
from aiinfra.sizing.offload import optimizer_offload
from aiinfra.sizing.pipeline import EdgeSlots, pipeline_edge_slots, pipeline_layers
from aiinfra.sizing.pipeline_layout import PipelineLayout
from aiinfra.sizing.recompute import module_policy
from aiinfra.sizing.training import device_memory, training_memory
from aiinfra.specs import GpuSpec, ModelSpec

CHUNK = 262_144
STEP_PARTS = ("matmul compute", "FP8/FP4 casts", "attention", "elementwise (memory-bound)",
              "host-bound MoE layers (exposed)", "TP communication",
              "CP communication", "EP communication", "PP communication", "pipeline bubble",
              "DP communication (exposed)", "optimizer step")
REASON = {"matmul compute": "compute (recompute or smaller GEMMs)", "elementwise (memory-bound)": "elementwise work",
          "FP8/FP4 casts": "FP8 casts", "attention": "attention (recompute, shorter chunks or CP ring merges)",
          "optimizer step": "optimizer step (less sharded optimizer state)",
          "TP communication": "TP communication", "CP communication": "CP communication",
          "EP communication": "EP communication", "PP communication": "PP communication",
          "pipeline bubble": "pipeline bubble", "DP communication (exposed)": "DP communication",
          "host-bound MoE layers (exposed)": "host-bound MoE layers (less work per kernel, or the all-to-all not overlapped)"}


@dataclass
class Options:
    """What the search may vary and assume (defaults: a modern Megatron/FSDP stack)."""

    dtype: str = "bf16"
    flash_attention: bool = True
    sequence_parallel: bool = True
    zero_stages: tuple[int, ...] = (0, 1, 2, 3)
    # offload bit flags searched (1 optimizer, 2 weights, 4 activations): all combinations by default,
    # each charged at host-link bandwidth
    offloads: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)
    # full recompute on this share of each stage's layers (Megatron --recompute-num-layers, block method)
    recompute_fractions: tuple[float, ...] = (0.125, 0.25, 0.5, 0.75, 1.0)
    # activations offloaded from this share of each stage's layers, the first ones (Megatron
    # --cpu-offloading-num-layers); 1 (every layer) only where the stack allows it
    offload_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    recompute: tuple[int, ...] = (0, 1, 2)
    micro_batches: tuple[int, ...] | None = None  # None: every divisor of the per-replica batch
    interleaves: tuple[int, ...] | None = None  # None: every count that leaves each virtual stage a layer
    context_parallel: tuple[int, ...] | None = None  # None: every divisor of the sequence (≥ min_cp_tokens each)
    min_cp_tokens: int = 1024
    overlap_dp: bool = True
    causal: bool = True
    software: str = "megatron-core"
    max_tp: int | None = None  # None: every TP that divides the heads
    framework_efficiency: float | None = None  # None: the catalog's fitted value
    memory_reserve: float | None = None  # fixed runtime bytes per GPU (CUDA context + NCCL); None = catalog
    tp_overlaps: tuple[int, ...] | None = None  # TP modes (0 blocking, 1 overlapped); None: every mode the stack offers
    grad_dtype: str | None = None  # gradient buffers and their reduction: "fp32" | "bf16"; None: fp32 (Megatron default)
    ep_overlap: bool = False  # MoE all-to-all under another micro-batch's compute (Megatron's EP overlap, opt-in)
    pipeline_split: str = "auto"  # embedding/loss pipeline slots: auto | even | account (sizing.pipeline.PIPELINE_SPLITS)
    moe_dispatcher: str = "alltoall"  # MoE token dispatcher: alltoall | deepep | hybridep (stacks.yaml moe_dispatchers)
    moe_sync_free: bool = False  # MoE dispatch without a host sync (full-iteration CUDA graphs): no stacks.yaml moe_host
    # what selective recompute repeats, as Megatron's recompute_modules (sizing.recompute.RECOMPUTE_MODULES); (): the
    # stack's own policy
    recompute_modules: tuple[str, ...] = ()
    mtp: bool = True  # train the model's multi-token-prediction layers, if its config has any (DeepSeek-V3: one)
    # Megatron's per-layer CUDA graphs (--cuda-graph-scope, perf.host): () runs eagerly
    cuda_graph_scope: tuple[str, ...] = ()
    # weights kept in the FP8/FP4 dtype and gathered so (Megatron --fp8-param-gather / --fp4-param-gather)
    quantized_params: bool = False


def _selective(opt: Options) -> str:
    """The selective-recompute policy the options run: the stack's, or Megatron's named modules."""
    return module_policy(opt.software, opt.recompute_modules)


def _host_free(opt: Options) -> dict:
    """step_time overrides for a sync-free MoE dispatch: no host time per linear module, no stall after a sync."""
    return {"moe_module_ms": 0.0, "moe_stall_ms": 0.0} if opt.moe_sync_free else {}


@dataclass
class Evaluated:
    """Per-candidate arrays after evaluation (step parts are recomputed on demand for the few rows shown)."""

    space: Space
    memory: np.ndarray  # bytes per GPU
    step: np.ndarray  # seconds
    tokens_per_s: np.ndarray
    fits: np.ndarray
    context: tuple = ()

    def parts_at(self, index) -> dict[str, np.ndarray]:
        """Step-time parts of the given candidates (re-evaluated through the same formulas)."""
        m, gpu, seq, opt, node = self.context
        sub = self.space.take(index)
        return _evaluate(m, gpu, sub, seq, opt, node, with_parts=True)[1]

    @property
    def seconds_per_token(self) -> np.ndarray:
        """1 / tokens per second, infinite for candidates that never rank (no division by zero)."""
        return self.step / (self.space.batch * self.context[2])

    @property
    def parts(self) -> dict[str, np.ndarray]:
        return self.parts_at(np.arange(len(self.space)))


@dataclass
class PlanResult:
    model: ModelSpec
    gpu: GpuSpec
    seq: int
    global_batch: int
    candidates: int
    feasible: int
    top: list[dict]
    rejected: list[str]
    winner_terms: list[Term]
    objective: str
    notes: list[str] = field(default_factory=list)
    evaluated: Evaluated | None = None  # every candidate's arrays, kept when a caller asks (fixed-layout mode)
    context: dict = field(default_factory=dict)

    def row_of(self, i: int) -> dict:
        """The table row of candidate `i` (needs `evaluated`)."""
        c = self.context
        return _row(self.model, self.gpu, self.evaluated, i, self.seq, c.get("tokens"), c.get("price"))

    def explain_index(self, i: int) -> list[Term]:
        """The explained Terms of candidate `i` (needs `evaluated`)."""
        c = self.context
        return explain_candidate(self.model, self.gpu, self.evaluated.space.row(i), self.global_batch, self.seq,
                                 c["options"], c["node"], c.get("tokens"), c.get("price"))


def _evaluate(m: ModelSpec, gpu: GpuSpec, space: Space, seq: int, opt: Options, node: comm.Node,
              with_parts: bool = False) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    """(memory, step) per candidate, flat; parts too when asked. Base fields broadcast against knobs."""
    b = space.bcast
    mem = training_memory(
        m, seq=seq, micro_batch=b("mb"), tp=b("tp"), pp=b("pp"), dp=b("dp"), cp=b("cp"), ep=b("ep"),
        sp=b("sp"), vp=b("vp"), num_microbatches=space.batch // (b("dp") * b("mb")), zero=b("zero"),
        recompute=b("recompute"), precision="bf16" if opt.dtype in ("bf16", "fp16") else opt.dtype,
        flash_attention=opt.flash_attention, overhead_bytes=opt.memory_reserve, offload=b("offload"),
        total_only=not with_parts, recompute_fraction=b("rfrac"), selective=_selective(opt),
        input_bytes=saved_input_bytes(opt.software, opt.dtype), grad_dtype=opt.grad_dtype, etp=b("etp"),
        edge_slots=edge_slots(m, opt), offload_fraction=b("ofrac"), mtp=opt.mtp,
        interleave=stack(opt.software).interleave, quantized_params=opt.quantized_params,
        optimizer_offload=optimizer_offload(opt.software),
    )
    perf = step_time(
        m, gpu, tp=b("tp"), pp=b("pp"), dp=b("dp"), cp=b("cp"), ep=b("ep"), micro_batch=b("mb"), vp=b("vp"),
        recompute=b("recompute"), zero=b("zero"), global_batch=space.batch, seq=seq, dtype=opt.dtype,
        flash_attention=opt.flash_attention, causal=opt.causal, overlap_dp=opt.overlap_dp, node=node,
        software=opt.software, framework_eff=opt.framework_efficiency, offload=b("offload"), step_only=not with_parts,
        recompute_fraction=b("rfrac"), tp_overlap=b("tpo"), grad_reduce=opt.grad_dtype, etp=b("etp"),
        ep_overlap=opt.ep_overlap, pipeline_split=opt.pipeline_split, sp=b("sp"), moe_dispatcher=opt.moe_dispatcher,
        offload_fraction=b("ofrac"), recompute_modules=opt.recompute_modules, mtp=opt.mtp,
        cuda_graph_scope=opt.cuda_graph_scope, quantized_params=opt.quantized_params, **_host_free(opt),
    )
    shape = (space.n_base, space.k)
    memory = np.broadcast_to(np.asarray(mem if not with_parts else mem.total.value, dtype=float), shape).ravel()
    step = np.broadcast_to(np.asarray(perf if not with_parts else perf.step.value, dtype=float), shape).ravel()
    # layouts that never rank or count: TP1's "overlapped" twins, offload pairs the stack refuses (unbuildable)
    step = np.where(np.broadcast_to(unbuildable(space, opt, b), shape).ravel(), np.inf, step)
    parts = {}
    if with_parts:
        parts = {p.name: np.broadcast_to(np.asarray(p.value, dtype=float), shape).ravel() for p in perf.step.parts}
    return (memory, step), parts


def unbuildable(space: Space, opt: Options, b: Callable | None = None) -> np.ndarray:
    """Candidates that never rank or count, broadcast (base, knobs): the TP1 twins (TP1 has no TP collectives, so
    its "overlapped" twin is the same layout) and activation offload under pipeline parallelism where the stack
    refuses that pair (Megatron-LM: no CPU offloading with PP), a ZeRO stage the stack does not run beside
    pipeline parallelism (DeepSpeed: ZeRO-2 and 3 without PP only), and optimizer offload at a ZeRO stage the stack's
    offload does not run with (stacks.yaml optimizer_offload: Megatron's needs the distributed optimizer)."""
    b = b or space.bcast
    out = (b("tp") == 1) & (b("tpo") == 1)
    stk = stack(opt.software)
    rule = optimizer_offload(opt.software)
    if rule.zero_stages != (0, 1, 2, 3):
        out = out | (((b("offload") & 1) > 0) & ~np.isin(b("zero"), rule.zero_stages))
    if stk.zero_stages_with_pp != stk.zero_stages:  # e.g. DeepSpeed's pipeline engine: ZeRO-0 and 1
        out = out | ((b("pp") > 1) & ~np.isin(b("zero"), stk.zero_stages_with_pp))
    if not stk.offload.pipeline:
        out = out | ((b("pp") > 1) & ((b("offload") & 4) > 0))
    return out


def edge_slots(m: ModelSpec, opt: Options) -> bool | EdgeSlots | PipelineLayout:
    """Whether the embedding and the loss take a pipeline slot under these options (sizing.pipeline.pipeline_edge_slots
    for the options' stack and --pipeline-split); memory, step time, the space and the layout check all use it."""
    return pipeline_edge_slots(m, stack(opt.software).uneven_pipeline, opt.pipeline_split, opt.mtp)


def searched_zero_stages(opt: Options) -> tuple[int, ...]:
    """The ZeRO stages searched: the caller's that the software stack can run (stacks.yaml zero_stages), or one line
    saying none is left."""
    stk = stack(opt.software)
    stages = tuple(z for z in opt.zero_stages if z in stk.zero_stages)
    if not stages:
        raise SpecError(f"the {stk.key} stack shards as {zero_phrase(stk.zero_stages)}; ZeRO "
                        f"{', '.join(map(str, opt.zero_stages))} leaves none to search")
    return stages


def searched_offloads(opt: Options) -> tuple[int, ...]:
    """The offload codes searched: the caller's, less optimizer offload where the stack runs none (stacks.yaml
    optimizer_offload host []), or one line saying none is left."""
    if optimizer_offload(opt.software).runs:
        return tuple(opt.offloads)
    codes = tuple(o for o in opt.offloads if not o & 1)
    if not codes:
        raise SpecError(f"the {opt.software} stack runs no optimizer offload; --offload leaves nothing else to search "
                        "(add none)")
    return codes


def tp_modes(opt: Options) -> tuple[int, ...]:
    """The TP overlap modes searched: the caller's, or every mode the software stack offers; blocking only without
    sequence parallelism (Megatron-LM: TP communication/GEMM overlap needs --sequence-parallel)."""
    modes = tuple(opt.tp_overlaps) if opt.tp_overlaps is not None else stack(opt.software).tp_modes
    return modes if opt.sequence_parallel else (0,)


def evaluate(m: ModelSpec, gpu: GpuSpec, space: Space, seq: int, opt: Options, node: comm.Node,
             progress: Callable[[int], None] | None = None) -> Evaluated:
    """Evaluate every candidate, in chunks of base rows (bounded memory, progress callbacks)."""
    if len(space) == 0:
        raise AiinfraError("empty search space")
    per = max(1, CHUNK // space.k)
    mems, steps = [], []
    for start in range(0, space.n_base, per):  # plan() holds the heap (plan.heap): each chunk reuses the last's pages
        part = space.base_slice(start, start + per)
        (mem, step), _ = _evaluate(m, gpu, part, seq, opt, node)
        mems.append(mem)
        steps.append(step)
        if progress:
            progress(len(part))
    memory = np.concatenate(mems)
    step = np.concatenate(steps)
    with np.errstate(divide="ignore"):
        rate = space.batch * seq / step  # 0 where the step is infinite (unbuildable)
    return Evaluated(space, memory, step, rate,
                     (memory <= device_memory(gpu).value) & np.isfinite(step), (m, gpu, seq, opt, node))


def _check_inputs(gpus: list[int], global_batch: int, seq: int, tokens: float | None, price: float | None, gpn: int) -> None:
    if global_batch <= 0:
        raise SpecError(f"global batch must be positive, got {global_batch}")
    if seq <= 0:
        raise SpecError(f"sequence length must be positive, got {seq}")
    if tokens is not None and tokens <= 0:
        raise SpecError(f"token budget must be positive, got {tokens:g}")
    if price is not None and price <= 0:
        raise SpecError(f"price per GPU-hour must be positive, got {price:g}")
    for n in gpus:
        if n <= 0:
            raise SpecError(f"GPU count must be positive, got {n}")
        if n > gpn and n % gpn:
            raise SpecError(f"{n} GPUs cannot be split into whole nodes of {gpn}; use a multiple of {gpn}")


@kept_heap()  # the space, the chunks and the ranking reuse freed memory (plan.heap)
def plan(
    m: ModelSpec,
    gpu: GpuSpec,
    gpus: int | list[int],
    *,
    global_batch: int,
    seq: int,
    tokens: float | None = None,
    price_per_gpu_hour: float | None = None,
    objective: str = "time",
    top: int = 5,
    options: Options | None = None,
    progress: Callable[[int, int], None] | None = None,
    keep: bool = False,
) -> PlanResult:
    """The best layouts for training `m` on `gpus` × `gpu`, ranked by time (or cost)."""
    opt = options or Options()
    counts = [gpus] if isinstance(gpus, int) else list(gpus)
    node = comm.node_for(gpu)
    gpn = node.gpus_per_node
    _check_inputs(counts, global_batch, seq, tokens, price_per_gpu_hour, gpn)
    if objective not in ("time", "cost"):
        raise SpecError(f"objective must be time or cost, not {objective}")
    space_edge = edge_slots(m, opt)
    stk = stack(opt.software)
    zero_stages = searched_zero_stages(opt)
    space = build_space(m, counts, global_batch=global_batch, seq=seq, gpus_per_node=gpn,
                        micro_batches=opt.micro_batches, interleaves=opt.interleaves, recompute=opt.recompute,
                        zero_stages=zero_stages, context_parallel=opt.context_parallel, offloads=searched_offloads(opt),
                        recompute_fractions=opt.recompute_fractions, offload_fractions=opt.offload_fractions,
                        offload_rules=stk.offload,
                        sequence_parallel=opt.sequence_parallel, min_cp_tokens=opt.min_cp_tokens, max_tp=opt.max_tp,
                        scaleup_domain=gpu.scaleup_domain, uneven_pipeline=stk.uneven_pipeline,
                        edge_slots=space_edge, tp_overlaps=tp_modes(opt), ep_overlap=opt.ep_overlap,
                        parallel_axes=stk.parallelism, interleave=stk.interleave,
                        tp_past_kv_heads=stk.tp_past_kv_heads)
    if space.n_base and not space.k:  # every recompute/offload combination asked for is one the stack refuses
        raise SpecError(f"the {stk.key} stack offloads activations only without recompute"
                        + ("" if stk.offload.every_layer else " and from fewer layers than the model has")
                        + "; widen --recompute or --offload" if not stk.offload.recompute else
                        f"the {stk.key} stack offloads every layer's activations or none; widen --offload")
    if len(space) == 0:
        c = ", ".join(str(n) for n in counts)
        raise SpecError(
            f"{c} GPUs cannot be split into TP × PP × CP × DP for {m.name} with a global batch of {global_batch} "
            f"sequences (TP must divide {m.heads} heads, PP the {m.layers} layers, DP × micro-batch the batch)")
    total_n = len(space)
    never_count = int(np.sum(unbuildable(space, opt)))
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress(done[0], total_n)

    ev = evaluate(m, gpu, space, seq, opt, node, tick)
    if not ev.fits.any():
        raise _shortfall(m, gpu, counts, ev, global_batch, seq, opt, node)

    # Rank: time = 1 / tokens/s (comparable across GPU counts); cost = GPUs / tokens/s.
    score = np.where(ev.fits, ev.seconds_per_token, np.inf)
    if objective == "cost":
        score = score * space.gpus
    best_of_layout = distinct_layouts(space, score, top)
    order = None
    rows = [_row(m, gpu, ev, i, seq, tokens, price_per_gpu_hour) for i in best_of_layout]
    rejected = _rejections(ev, space, order, best_of_layout, score, objective, gpu)
    win = best_of_layout[0]
    terms = explain_candidate(m, gpu, space.row(win), global_batch, seq, opt, node, tokens, price_per_gpu_hour)
    notes = []
    t = rows[0]["tp"]
    dom = gpu.scaleup_domain or gpn
    if t > 1 and gpu.scaleup_link == "pcie":
        notes.append(f"TP={t} on PCIe cards runs over PCIe; an SXM/NVLink part would cut TP communication")
    elif t > 1 and t <= dom:
        notes.append(f"TP={t} stays inside one scale-up domain: it runs over {gpu.scaleup_name} "
                     f"({node.scale_up.name})" + (" — NVLink" if "NVLink" not in gpu.scaleup_name + node.scale_up.name else ""))
    e = rows[0]["ep"]
    if e > 1 and t * e > 8 and t * e <= dom and gpu.scaleup_link != "pcie":
        notes.append(f"TP·EP = {t * e} GPUs exchange tokens inside one scale-up domain: the all-to-alls run over "
                     f"{gpu.scaleup_name}")
    if t > dom:
        notes.append(f"TP={t} spans {t // dom} scale-up domains of {dom} GPUs ({gpu.scaleup_name}): its collectives "
                     f"cross the NICs ({node.scale_out.name})")
    if rows[0]["pp"] > 1 and isinstance(space_edge, PipelineLayout):
        notes.append(f"pipeline layout '{space_edge.text}' on PP{rows[0]['pp']} (v{rows[0]['vp']}): "
                     f"{space_edge.describe(rows[0]['pp'])}, the last also the LM head")
    elif rows[0]["pp"] > 1:
        first, middle, last = (int(x) for x in pipeline_layers(m.layers, rows[0]["pp"], rows[0]["vp"], space_edge))
        how = (f"the loss and the MTP layers take {space_edge.last} layer slots, the embedding none"
               if isinstance(space_edge, EdgeSlots) else
               "the embedding and the loss take a layer's slot each" if space_edge else "layers dealt alone")
        head = (f"{m.mtp_layers} MTP layer{'s' * (m.mtp_layers > 1)} and the LM head" if opt.mtp and m.mtp_layers
                else "the LM head")
        notes.append(f"pipeline split {opt.pipeline_split} ({how}): in {rows[0]['layout']} v{rows[0]['vp']} the first / "
                     f"busiest middle / last GPU hold {first} / {middle} / {last} layers, the last also {head}")
    return PlanResult(m, gpu, seq, global_batch, total_n - never_count, int(ev.fits.sum()), rows, rejected, terms, objective, notes,
                      ev if keep else None,
                      {"tokens": tokens, "price": price_per_gpu_hour, "options": opt, "node": node})


def distinct_layouts(space: Space, score: np.ndarray, k: int) -> list[int]:
    """The best candidate of each distinct (N, TP, PP, CP, EP, DP) layout, best first; infinite scores (out of
    memory) never rank. Equal scores put fewer model-parallel ranks first. Works per base row (the best knob
    combination of each), so the sort is K times smaller than the space."""
    S = score.reshape(space.n_base, space.k)
    kbest = np.argmin(S, axis=1)
    sbest = S[np.arange(space.n_base), kbest]
    b = space.base
    mp = b["tp"] * b["pp"] * b["cp"] * b["ep"]
    order = np.lexsort((mp, sbest))
    order = order[np.isfinite(sbest[order])]
    key = space.layout_key(order * space.k)
    _, first = np.unique(key, return_index=True)
    rows = order[np.sort(first)][:k]
    return [int(r * space.k + kbest[r]) for r in rows]


def _row(m: ModelSpec, gpu: GpuSpec, ev: Evaluated, i: int, seq: int, tokens: float | None, price: float | None) -> dict:
    r = ev.space.row(i)
    n = r["gpus"]
    selective = _selective(ev.context[3]) if ev.context else "attention"
    mtp = ev.context[3].mtp if ev.context else True
    fl = training_flops(m, tokens=ev.space.batch * seq, seq=seq, recompute=r["recompute"], causal=True,
                        recompute_fraction=r.get("rfrac", 1.0), selective=selective, mtp=mtp)
    full = training_flops(m, tokens=ev.space.batch * seq, seq=seq, causal=False, mtp=mtp)
    step = float(ev.step[i])
    peak = gpu.datasheet_flops(gpu.half_dtype)  # MFU against the datasheet, as published MFU is
    row = {
        **r, "layout": describe(r), "recompute": recompute_name(r["recompute"], r.get("rfrac", 1.0)), "index": i,
        "offload": offload_name(r.get("offload", 0), r.get("ofrac", 1.0)), "tp_overlap": TP_MODES[int(r.get("tpo", 0))],
        "step_s": step, "tokens_per_s": float(ev.tokens_per_s[i]), "memory_gb": float(ev.memory[i]) / 1e9,
        "headroom_gb": (float(device_memory(gpu).value) - float(ev.memory[i])) / 1e9, "fits": bool(ev.fits[i]),
        "tflops": float(fl.hardware.value) / n / step / 1e12, "mfu": float(fl.model.value) / n / step / peak,
        "mfu_full_attention": float(full.model.value) / n / step / peak,
        "parts": {k: float(v[0]) for k, v in ev.parts_at([i]).items()},
    }
    if tokens:
        secs = tokens / row["tokens_per_s"]
        row["days"] = secs / 86400
        row["gpu_hours"] = secs / 3600 * n
        if price:
            row["cost_usd"] = row["gpu_hours"] * price
    return row


def _rejections(ev: Evaluated, space: Space, order: np.ndarray, chosen: list[int], score: np.ndarray,
                objective: str, gpu: GpuSpec, limit: int = 3) -> list[str]:
    """Why faster candidates lost (out of memory: the ones closest to fitting) and why the runners-up trail
    the winner (the step-time term that grew most)."""
    win = chosen[0]
    raw = ev.seconds_per_token * (space.gpus if objective == "cost" else 1.0)
    faster_oom = np.nonzero((raw < raw[win]) & ~ev.fits)[0]
    out = []
    if faster_oom.size:
        seen = set()
        for i in faster_oom[np.argsort(ev.memory[faster_oom], kind="stable")]:
            r = space.row(int(i))
            key = describe(r)
            if key in seen:
                continue
            seen.add(key)
            gain = 1 - raw[i] / raw[win]
            off = offload_name(r.get("offload", 0), r.get("ofrac", 1.0))
            out.append(f"rejected {key} mb{r['mb']} {recompute_name(r['recompute'], r.get('rfrac', 1.0))} recompute "
                       f"ZeRO-{r['zero']}{'' if off == 'none' else ' offload ' + off}: "
                       f"{gain:.1%} faster but out of memory ({ev.memory[i] / 1e9:.1f} GB per GPU > "
                       f"{device_memory(gpu).value / 1e9:.1f} GB usable)")
            if len(seen) >= limit:
                break
    shown = chosen[1:limit + 1]
    pa = ev.parts_at([win, *shown]) if shown else {}
    for j, i in enumerate(shown, 1):
        diff = {k: v[j] - v[0] for k, v in pa.items()}
        worst = max(diff, key=diff.get)
        slower = raw[i] / raw[win] - 1
        out.append(f"runner-up {describe(space.row(i))}: {slower:.1%} slower, mostly {REASON.get(worst, worst)} "
                   f"(+{diff[worst] * 1e3:.0f} ms per step)")
    return out


def explain_candidate(m: ModelSpec, gpu: GpuSpec, r: dict, global_batch: int, seq: int, opt: Options,
                      node: comm.Node, tokens: float | None = None, price: float | None = None) -> list[Term]:
    """Terms for one layout: step time with its parts, rates and memory per GPU.

    Evaluated through the same array code path as the search (one-element arrays, then `pick`),
    so uneven pipeline stages that the scalar layout check rejects are explained too.
    """
    one = {k: np.asarray([v]) for k, v in r.items()}
    mem = training_memory(m, seq=seq, micro_batch=one["mb"], tp=one["tp"], pp=one["pp"], dp=one["dp"], cp=one["cp"],
                          ep=one["ep"], sp=one["sp"], vp=one["vp"], num_microbatches=global_batch // (one["dp"] * one["mb"]),
                          zero=one["zero"], recompute=one["recompute"],
                          precision="bf16" if opt.dtype in ("bf16", "fp16") else opt.dtype,
                          flash_attention=opt.flash_attention, overhead_bytes=opt.memory_reserve,
                          offload=one.get("offload", 0), recompute_fraction=one.get("rfrac", 1.0),
                          selective=_selective(opt),
                          input_bytes=saved_input_bytes(opt.software, opt.dtype), grad_dtype=opt.grad_dtype,
                          etp=one.get("etp"), edge_slots=edge_slots(m, opt), offload_fraction=one.get("ofrac", 1.0),
                          mtp=opt.mtp, interleave=stack(opt.software).interleave,
                          quantized_params=opt.quantized_params, optimizer_offload=optimizer_offload(opt.software))
    perf = step_time(m, gpu, tp=one["tp"], pp=one["pp"], dp=one["dp"], cp=one["cp"], ep=one["ep"], micro_batch=one["mb"],
                     vp=one["vp"], recompute=one["recompute"], zero=one["zero"], global_batch=global_batch, seq=seq,
                     dtype=opt.dtype, flash_attention=opt.flash_attention, causal=opt.causal,
                     overlap_dp=opt.overlap_dp, node=node, software=opt.software,
                     framework_eff=opt.framework_efficiency, offload=one.get("offload", 0),
                     recompute_fraction=one.get("rfrac", 1.0), tp_overlap=one.get("tpo"), grad_reduce=opt.grad_dtype,
                     etp=one.get("etp"), ep_overlap=opt.ep_overlap, pipeline_split=opt.pipeline_split, sp=one["sp"],
                     moe_dispatcher=opt.moe_dispatcher, offload_fraction=one.get("ofrac", 1.0),
                     recompute_modules=opt.recompute_modules, mtp=opt.mtp,
                     cuda_graph_scope=opt.cuda_graph_scope, quantized_params=opt.quantized_params,
                     **_host_free(opt))
    terms = [perf.step, perf.tokens_per_s, perf.tflops_per_gpu, perf.mfu, perf.mfu_full, perf.hfu, mem.total]
    if tokens:
        terms += perf.time_to_train(tokens, price)
    return [t.pick(0) for t in terms]


def _shortfall(m: ModelSpec, gpu: GpuSpec, counts: list[int], ev: Evaluated, global_batch: int, seq: int,
               opt: Options, node: comm.Node) -> DoesNotFitError:
    """No layout fits: name the smallest per-GPU need and the fewest nodes that would fit."""
    gpn = node.gpus_per_node
    best = float(ev.memory.min())
    n = max(counts)
    need = None
    for _ in range(12):  # doubling the GPU count: at most 4096× the request
        n = n * 2 if n >= gpn else gpn
        space = build_space(m, [n], global_batch=global_batch * n, seq=seq, gpus_per_node=gpn,
                            micro_batches=(1,), interleaves=(1,), recompute=(2,), zero_stages=searched_zero_stages(opt),
                            context_parallel=opt.context_parallel, sequence_parallel=opt.sequence_parallel,
                            uneven_pipeline=stack(opt.software).uneven_pipeline, edge_slots=edge_slots(m, opt))
        if len(space) and evaluate(m, gpu, space, seq, opt, node).fits.any():
            need = n
            break
    where = f"{max(counts)} × {gpu.key}"
    if need is None:
        return DoesNotFitError(f"{m.name} does not fit on {where} or up to {n} GPUs: {best / 1e9:.0f} GB per GPU at best, "
                               f"{device_memory(gpu).value / 1e9:.1f} GB usable")
    nodes = math.ceil(need / gpn)
    return DoesNotFitError(f"{m.name} does not fit on {where}; needs at least {nodes} nodes of {gpn} × {gpu.key}: "
                           f"{best / 1e9:.0f} GB per GPU at best, {device_memory(gpu).value / 1e9:.1f} GB usable")

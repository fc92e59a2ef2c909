"""`aiinfra size train|infer|fits`: one library function per command, for the CLI and the web alike.

The shells resolve names (the CLI also accepts config.json paths and checkpoint folders, the web only
catalog names) and pass the specs here, so the titles, facts and warnings cannot differ between them.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from aiinfra.contract import Facts, Quantity, command
from aiinfra.errors import SpecError
from aiinfra.explain import Result, quantity
from aiinfra.sizing.activations import saved_input_bytes
from aiinfra.sizing.inference import InferenceMemory, check_context, fits, inference_memory
from aiinfra.sizing.layout import check_kv_split, check_stack_parallelism, check_stack_zero, sp_divides
from aiinfra.sizing.offload import check_activation_offload, check_optimizer_offload, optimizer_offload, parse_offload
from aiinfra.sizing.params import param_counts
from aiinfra.sizing.pipeline import check_interleave, pipeline_edge_slots, stack_interleave, stack_uneven_pipeline
from aiinfra.sizing.pipeline_layout import PipelineLayout
from aiinfra.sizing.recompute import RECOMPUTE, check_recompute_modules, module_policy, parse_recompute_modules
from aiinfra.sizing.states import check_quantized_params
from aiinfra.sizing.training import capacity_text, fit_verdict, training_memory
from aiinfra.specs import MAX_GLOBAL_BATCH, MAX_SEQ, GpuSpec, ModelSpec
from aiinfra.units import GiB


# What the capacity facts mean (JSON schema descriptions; size train, size infer and each size fits row carry them).
# capacity_gb was the datasheet figure (80 for an H100) until 2026-12-08.
CAPACITY_GB = ("the GPU's visible total, nvidia-smi's memory.total (catalog memory_total_mib; the datasheet figure "
               "where the catalog has none) in GB = 1e9 B: 85.52 for an H100, whose datasheet says 80GB")
CAPACITY_GIB = "the same visible total in GiB = 2^30 B: 79.65 for an H100"
MEMORY = "the datasheet's name for the GPU's memory, as text: '80GB HBM3'"


class SizeTrainFacts(Facts):
    model: str
    gpus: int
    layout: str
    fits: bool
    headroom_gb: float
    capacity_gb: float = Field(description=CAPACITY_GB)
    capacity_gib: float = Field(description=CAPACITY_GIB)
    memory: str = Field(description=MEMORY)


class SizeInferFacts(Facts):
    model: str
    context: int
    batch: int
    weights: Quantity
    kv_cache: Quantity
    total_per_gpu: Quantity
    kv_bytes_per_token: int
    kv_tokens: int
    sequences_at_context: int
    fits: bool
    capacity_gb: float = Field(description=CAPACITY_GB)
    capacity_gib: float = Field(description=CAPACITY_GIB)
    memory: str = Field(description=MEMORY)
    engine_total_gb: float = Field(description="what the engine budgets from, in GB: the visible total less the "
                                   "driver's reserve (vLLM: torch's total); engine_budget_gb is "
                                   "gpu_memory_utilization × this")


class SizeFitsFacts(Facts):
    model: str
    context: int  # tokens per sequence the memory is sized for
    batch: int  # sequences held at once
    fits: list[dict]


def verdict_line(v: dict) -> str:
    if v.get("fits"):
        return f"fits {v['gpu']} ({capacity_text(v)}) with {v['headroom_gb']:,.2f} GB to spare"
    return f"does NOT fit {v['gpu']} ({capacity_text(v)}): short by {-v['headroom_gb']:,.2f} GB"


MAX_OVERHEAD_GIB = 1024.0  # a runtime reserve above 1 TiB per GPU is a typo, not a runtime


def _overhead_bytes(overhead_gib: float | None) -> float | None:
    """--overhead-gib in bytes; it must be a finite amount between 0 and 1 TiB."""
    if overhead_gib is None:
        return None
    if not 0 <= overhead_gib <= MAX_OVERHEAD_GIB:  # also false for nan
        raise SpecError(f"--overhead-gib must be between 0 and {MAX_OVERHEAD_GIB:g} GiB, got {overhead_gib}")
    return overhead_gib * GiB


@command("size train", facts=SizeTrainFacts)
def training_report(
    m: ModelSpec, g: GpuSpec, *, tp: int = 1, pp: int = 1, dp: int = 1, cp: int = 1, ep: int = 1,
    sp: bool | None = None, interleave: int = 1, zero: int = 0, distributed_optimizer: bool = False,
    recompute: str = "none", seq: int = 4096, micro_batch: int = 1, num_microbatches: int | None = None,
    precision: str = "bf16", optimizer: str = "adam", grad_dtype: str | None = None, offload: str = "none",
    flash_attention: bool = True, overhead_gib: float | None = None, fragmentation: float | None = None,
    software: str = "megatron-core", pipeline_split: str = "auto", etp: int | None = None,
    recompute_modules: str | None = None, mtp: bool = True, quantized_params: bool = False,
) -> Result:
    """`aiinfra size train`: memory per GPU and whether it fits `g`. Sequence parallelism defaults to TP > 1 where TP
    divides each CP rank's tokens.
    `etp`: the experts' TP size, 1 (whole experts, EP folded over TP, as plan's ETP1) or TP (the default).
    `recompute_modules`: what selective recompute drops, as Megatron's recompute_modules ('layernorm,moe_act').
    `mtp`: the model's multi-token-prediction layers on the last stage, where its config has them.
    `software` names the stack whose selective-recompute and activation-offload rules apply (as in `aiinfra plan
    --software`). `offload` as the planner prints it: '+' combinations of optimizer, weights, activations, the
    activations with an optional share of each stage's layers ('activations 50%').
    `quantized_params`: FP8/FP4 weights with no 16-bit copy (Megatron --fp8-param-gather / --fp4-param-gather), which
    Megatron runs only with the distributed optimizer or FSDP and without optimizer offload (as `plan`)."""
    if num_microbatches is not None and not 1 <= num_microbatches <= MAX_GLOBAL_BATCH:
        raise SpecError(f"--num-microbatches must be between 1 and {MAX_GLOBAL_BATCH:,} (micro-batches per pipeline "
                        f"flush), got {num_microbatches}")
    if not 1 <= seq <= MAX_SEQ:  # the bound plan takes
        raise SpecError(f"sequence length must be between 1 and {MAX_SEQ:,} tokens, got {seq}")
    if not 1 <= micro_batch <= MAX_GLOBAL_BATCH:
        raise SpecError(f"--micro-batch must be between 1 and {MAX_GLOBAL_BATCH:,} sequences, got {micro_batch}")
    code, share = parse_offload(offload)
    if quantized_params:
        check_quantized_params(precision, zero > 0 or distributed_optimizer, bool(code & 1), dtype_flag="--precision",
                               zero_fix="set --zero 1, 2 or 3 or --distributed-optimizer")
    if etp is not None and not m.is_moe:
        raise SpecError(f"--etp (the experts' TP size) applies to MoE models; {m.name} has no experts")
    modules = parse_recompute_modules(recompute_modules)
    check_recompute_modules(m, modules)
    if modules and recompute != "selective":
        raise SpecError(f"--recompute-modules names what selective recompute drops; --recompute is {recompute}")
    check_stack_parallelism(software, tp=tp, pp=pp, cp=cp, ep=ep)
    check_stack_zero(software, max(zero, int(distributed_optimizer)), pp)
    if code & 1:
        check_optimizer_offload(software, max(zero, int(distributed_optimizer)))
    if tp >= 1:  # a TP below 1 is refused below, with the other layout checks
        check_kv_split(m, tp, software)
    split = pipeline_edge_slots(m, stack_uneven_pipeline(software), pipeline_split, mtp)
    if isinstance(split, PipelineLayout) and interleave == 1:  # the default: the layout's stages say how many
        interleave = split.vp(pp)
    # SP on with TP > 1 where each CP rank's tokens split evenly over TP (else Megatron could not run it)
    default_sp = bool(tp > 1 and cp >= 1 and seq >= cp and sp_divides(seq, cp, tp))
    rule = stack_interleave(software)
    if num_microbatches is not None or rule == "none":  # unset: at least PP, which every schedule takes
        check_interleave(num_microbatches or pp, pp, interleave, rule, f"{software}'s")
    mem = training_memory(
        m, seq=seq, micro_batch=micro_batch, tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, sp=default_sp if sp is None else sp,
        vp=interleave, num_microbatches=num_microbatches, zero=zero, distributed_optimizer=distributed_optimizer,
        recompute=recompute, precision=precision, optimizer=optimizer, grad_dtype=grad_dtype, offload=code,
        offload_fraction=share, flash_attention=flash_attention, overhead_bytes=_overhead_bytes(overhead_gib),
        fragmentation=fragmentation, selective=module_policy(software, modules),
        input_bytes=saved_input_bytes(software, precision),
        edge_slots=split, etp=etp, mtp=mtp, interleave=rule, quantized_params=quantized_params,
        optimizer_offload=optimizer_offload(software),
    )
    if code & 4:  # after training_memory, which has refused an unknown recompute mode
        check_activation_offload(m, software, share=share, pp=pp, recompute=RECOMPUTE[recompute])
    verdict = fit_verdict(float(mem.total.value), g)
    layout = f"TP{tp}·PP{pp}·DP{dp}" + (f"·CP{cp}" if cp > 1 else "") + (f"·EP{ep}" if ep > 1 else "")
    layout += "(ETP1)" if ep > 1 and etp == 1 and tp > 1 else ""
    result = Result(
        f"Training memory per GPU: {m.name} on {g.key}, {layout}, {precision}, ZeRO-{zero}, recompute {recompute}",
        terms=mem.terms,
        facts={"model": m.name, "gpus": tp * pp * dp * cp, "layout": layout, "stage": str(mem.stage),
               "params_per_gpu": int(mem.params_per_gpu), **verdict},
    )
    if code & 1:
        result.assumptions.append(f"optimizer offload as the {software} stack runs it: "
                                  f"{optimizer_offload(software).phrase()} (catalog stacks.{software}.optimizer_offload)")
    if not verdict["fits"]:
        result.warnings.append(verdict_line(verdict))
    return result


def inference_report(
    m: ModelSpec, g: GpuSpec, *, quant: str = "bf16", kv_dtype: str = "bf16", context: int = 4096, batch: int = 1,
    tp: int = 1, pp: int = 1, prompt: int | None = None, gpu_memory_utilization: float | None = None,
    max_batched_tokens: int | None = None, overhead_gib: float | None = None, engine: str | None = None,
    max_model_len: int | None = None, checkpoint: str | None = None,
) -> tuple[Result, InferenceMemory]:
    """`aiinfra size infer`: memory per GPU and the KV tokens/sequences that fit the engine budget.

    engine: also say what vLLM / SGLang / TensorRT-LLM will report at start-up (KV tokens, maximum
    concurrency at max_model_len) and whether it starts. checkpoint: exact weight bytes from the
    checkpoint's safetensors headers instead of config.json × quant.
    """
    check_context(m, context, f"--context {context:,}")
    if engine and max_model_len:
        check_context(m, max_model_len, f"--max-model-len {max_model_len:,}")
    weights_bytes = None
    ckpt = None
    if checkpoint:
        from aiinfra.sizing.checkpoint import checkpoint_weights

        ckpt = checkpoint_weights(checkpoint)
        weights_bytes = float(ckpt.total_bytes)
    mem = inference_memory(
        m, quant=quant, kv_dtype=kv_dtype, context=context, batch=batch, tp=tp, pp=pp, prompt=prompt,
        max_batched_tokens=max_batched_tokens, overhead_bytes=_overhead_bytes(overhead_gib),
        gpu=g, gpu_memory_utilization=gpu_memory_utilization, weights_bytes=weights_bytes,
    )
    cap = mem.capacity
    layers = ", ".join(f"{n} {k}" + (f" (≤ {c})" if c else "") for k, n, c in m.attention_groups())
    result = Result(
        f"Inference memory per GPU: {m.name} on {g.key}, weights {'checkpoint' if ckpt else quant}, KV {kv_dtype}, "
        f"{batch} × {context} tokens, TP{tp}·PP{pp}",
        terms=mem.terms,
        facts={"model": m.name, "context": context, "batch": batch, "tp": tp, "pp": pp,
               "kv_bytes_per_token": int(mem.kv_per_token.value), "attention_layers": layers,
               "weights": quantity(float(mem.weights.value), "B"), "kv_cache": quantity(float(mem.kv_cache.value), "B"),
               "activation_workspace": quantity(float(mem.workspace.value), "B"),
               "runtime_overhead": quantity(float(mem.overhead.value), "B"),
               "total_per_gpu": quantity(float(mem.total.value), "B"), **cap},
    )
    if ckpt:
        result.facts["checkpoint"] = ckpt.summary()
        result.assumptions.append(f"weights: {ckpt.total_bytes:,} B read from {ckpt.path}"
                                  + ("" if ckpt.from_headers else " (index metadata.total_size; shards absent)"))
    if not cap["fits"]:
        result.warnings.append(
            f"does NOT fit {g.key} at gpu_memory_utilization {cap['gpu_memory_utilization']}: "
            f"short by {-cap['headroom_gb']:,.2f} GB; try `aiinfra size fits {m.name}`"
        )
    if engine:
        from aiinfra.sizing.engine import engine_memory, engine_summary

        em = engine_memory(m, g, engine=engine, tp=tp, pp=pp, quant=quant, kv_dtype=kv_dtype,
                           max_model_len=max_model_len or context, fraction=gpu_memory_utilization,
                           max_num_batched_tokens=max_batched_tokens, weights_bytes=weights_bytes)
        es = engine_summary(em)
        result.facts["engine"] = es
        result.facts["engine_kv_tokens"] = em.kv_tokens
        result.facts["engine_max_concurrency"] = es["max_concurrency"]
        result.facts["engine_starts"] = em.starts
        result.terms.append(em.kv_pool)
        result.assumptions.append(
            f"{em.engine}: {es['fraction_flag']} {es['fraction']}, max_num_batched_tokens {es['max_num_batched_tokens']}, "
            f"max_num_seqs {es['max_num_seqs']}, block {es['block_size']} (catalog engines.yaml)")
        nvls = float(em.non_torch.inputs.get("NVLS buffers (B)", 0.0)) if em.engine == "vllm" else 0.0
        if nvls:
            # NCCL's NVLink SHARP buffers are the largest piece of non-torch memory at TP > 2 on Hopper NVSwitch
            # systems; NCCL_NVLS_ENABLE=0 gives them back to the KV cache (vllm#9699 measured both settings).
            off = engine_memory(m, g, engine=engine, tp=tp, pp=pp, quant=quant, kv_dtype=kv_dtype,
                                max_model_len=max_model_len or context, fraction=gpu_memory_utilization,
                                max_num_batched_tokens=max_batched_tokens, weights_bytes=weights_bytes, nccl_nvls=False)
            es["nvls_buffers_gib"] = round(nvls / GiB, 2)
            es["kv_tokens_with_nvls_off"] = off.kv_tokens
            result.assumptions.append(
                f"NCCL NVLink SHARP (NVLS) buffers counted: {nvls / GiB:,.2f} GiB per GPU at TP{tp} on {g.key}; "
                f"NCCL_NVLS_ENABLE=0 frees them: {off.kv_tokens:,} KV tokens instead of {em.kv_tokens:,} "
                "(all-reduces lose the switch's in-network reduction; vllm-project/vllm#9699)")
        if not em.starts:
            result.warnings.append(
                f"{em.engine} will not start: one {em.max_model_len:,}-token sequence needs more KV than the "
                f"{float(em.kv_pool.value) / GiB:,.2f} GiB pool; lower max_model_len, raise {es['fraction_flag']}, "
                "quantize or add GPUs")
    return result, mem


@command("size infer", facts=SizeInferFacts)
def size_infer(m: ModelSpec, g: GpuSpec, **settings: Any) -> Result:
    return inference_report(m, g, **settings)[0]


@command("size fits", facts=SizeFitsFacts)
def fits_report(m: ModelSpec, *, explain: bool = True, **settings: Any) -> Result:
    """`aiinfra size fits`: the fewest GPUs of every catalog SKU for this model and setting."""
    counts = param_counts(m)
    s = {"quant": "bf16", "kv_dtype": "bf16", "context": 4096, "batch": 1} | settings
    rows = fits(m, **settings)
    warnings = [f"{r['gpu']}: TP{r['tp']} all-reduces cross PCIe ({r['interconnect']}); expect slower "
                "TTFT/TPOT than inside one NVLink/NVSwitch or Infinity Fabric domain" for r in rows if r.get("tp_over_pcie")]
    return Result(
        f"Fewest GPUs to serve {m.name}: weights {s['quant']}, KV {s['kv_dtype']}, {s['batch']} × {s['context']} tokens",
        terms=[counts.total, counts.active] if explain else [],
        facts={"model": m.name, "quant": s["quant"], "kv_dtype": s["kv_dtype"], "context": s["context"], "batch": s["batch"],
               "fits": rows},
        warnings=warnings,
    )

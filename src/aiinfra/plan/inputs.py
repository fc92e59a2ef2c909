"""Plan inputs as users type them (16M tokens, GPU ranges, ZeRO/recompute/offload lists, price flags),
parsed once for the CLI and the web into the search's Options."""

from __future__ import annotations

import math
import re

from aiinfra.catalog.prices import parse_prices
from aiinfra.errors import SpecError
from aiinfra.perf.host import graphed_search, parse_cuda_graph_scope
from aiinfra.plan.search import Options
from aiinfra.plan.space import RECOMPUTE_NAMES
from aiinfra.sizing.layout import stack_parallelism
from aiinfra.sizing.recompute import module_policy, parse_recompute_modules
from aiinfra.sizing.states import check_quantized_params
from aiinfra.specs import MAX_GLOBAL_BATCH, MAX_SEQ  # noqa: F401 - callers read them from here

__all__ = ["parse_size", "parse_bytes", "parse_gpu_counts", "parse_prices", "batch_sequences", "parse_offloads",
           "build_options", "stack_key"]

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9, "t": 1e12, "p": 1e15}
_BINARY = {"ki": 2.0**10, "mi": 2.0**20, "gi": 2.0**30, "ti": 2.0**40}


def _scaled(text: str) -> float | None:
    """'16M' → 16e6, '2Mi' → 2·2^20, '1.5e9' → 1.5e9; None when the text is not such a number."""
    s = str(text).strip().replace("_", "").replace(",", "")
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([a-zA-Z]{0,2})", s)
    unit = m.group(2).lower() if m else ""
    if not m or (unit not in _SUFFIX and unit not in _BINARY):
        return None
    return float(m.group(1)) * (_BINARY.get(unit) or _SUFFIX[unit])


def parse_size(text: str, what: str) -> float:
    """'16M' → 16e6, '15T' → 15e12, '2Mi' → 2·2^20, '1.5e9' → 1.5e9; must be positive."""
    value = _scaled(text)
    if value is None:
        raise SpecError(f"{what} '{text}' is not a number like 16M, 15T or 2048")
    if not math.isfinite(value):
        raise SpecError(f"{what} '{text}' is too large to be a number")
    if value <= 0:
        raise SpecError(f"{what} must be positive, got {text}")
    return value


def parse_bytes(text: str, what: str) -> float:
    """A memory size in bytes: '2GiB' → 2·2^30, '2GB' → 2e9, '512MiB', '4096B' → 4096, '1.5e9'; a bare count or
    k/M/G/T suffix as parse_size. GB (10^9) and GiB (2^30) stay apart."""
    s = str(text).strip()
    # a byte unit: drop the B, keep decimal vs binary; a bare B is bytes here, never parse_size's billions
    if re.fullmatch(r".*[0-9.\s](?:[kKMGTP]i?)?B", s):
        s = s[:-1]
    value = _scaled(s)
    if value is None or not math.isfinite(value):
        raise SpecError(f"{what} '{text}' is not a size like 2GiB, 512MiB, 2GB or 2e9 (bytes)")
    if value <= 0:
        raise SpecError(f"{what} must be positive, got {text}")
    return value


MAX_COUNTS = 4096


def parse_gpu_counts(text: str) -> list[int]:
    """'1024', '512,1024,2048', a range '512-2048' (every multiple of 8 between) or '512-16384:512' (a step).

    A range never changes silently: more than 4,096 counts is an error that asks for a step."""
    s = str(text).strip()
    try:
        if "-" in s[1:]:
            span, _, step_text = s.partition(":")
            lo, hi = (int(x) for x in span.split("-", 1))
            if lo <= 0 or hi < lo:
                raise SpecError(f"GPU range '{text}' must be low-high with 0 < low ≤ high")
            step = int(step_text) if step_text else (8 if lo >= 8 else 1)
            if step <= 0:
                raise SpecError(f"GPU range step in '{text}' must be positive")
            out = list(range(lo, hi + 1, step))
            if len(out) > MAX_COUNTS:
                raise SpecError(f"GPU range '{text}' holds {len(out):,} counts (more than {MAX_COUNTS:,}); "
                                f"give a step, e.g. {lo}-{hi}:{-(-(-(-(hi - lo) // (MAX_COUNTS - 1))) // 8) * 8}")
            return out
        counts = [int(x) for x in s.split(",")]
    except ValueError:
        raise SpecError(f"--gpus '{text}' must be a count (1024), a list (512,1024) or a range (512-2048, "
                        "512-16384:512)") from None
    for n in counts:
        if n <= 0:
            raise SpecError(f"GPU count must be positive, got {n}")
    return counts




def batch_sequences(tokens_text: str | None, sequences: int | None, seq: int) -> tuple[int, str]:
    """Global batch in sequences, from --global-batch (sequences) or --global-batch-tokens."""
    if not 0 < seq <= MAX_SEQ:
        raise SpecError(f"sequence length must be between 1 and {MAX_SEQ:,} tokens, got {seq}")
    if sequences is not None:
        if not 0 < sequences <= MAX_GLOBAL_BATCH:
            raise SpecError(f"global batch must be between 1 and {MAX_GLOBAL_BATCH:,} sequences, got {sequences}")
        return sequences, f"{sequences} sequences"
    tokens = parse_size(tokens_text or "4Mi", "--global-batch-tokens")
    if tokens % seq and re.search(r"[kmgt]$", str(tokens_text).strip().lower()):
        # Literature batch sizes are powers of two: Llama 3's "16M tokens" is 2048 × 8192 = 16 Mi.
        binary = parse_size(str(tokens_text).strip() + "i", "--global-batch-tokens")
        if binary % seq == 0:
            tokens = binary
    if tokens / seq > MAX_GLOBAL_BATCH:
        raise SpecError(f"global batch of {tokens:,.3g} tokens is more than {MAX_GLOBAL_BATCH:,} sequences of {seq}")
    b = round(tokens / seq)
    if b < 1:
        raise SpecError(f"global batch of {tokens:,.0f} tokens is less than one {seq}-token sequence")
    return b, f"{tokens:,.0f} tokens = {b} sequences of {seq}"


def stack_key(name: str) -> str:
    from aiinfra.perf.stacks import stack

    return stack(name).key


OFFLOAD_NAMES = {"none": 0, "optimizer": 1, "weights": 2, "activations": 4}


def parse_offloads(text: str) -> tuple[int, ...]:
    """'all' or a list of none/optimizer/weights/activations and '+' combinations → bit-flag codes."""
    if text.strip().lower() == "all":
        return tuple(range(8))
    out = set()
    for item in text.split(","):
        code = 0
        for name in item.strip().lower().split("+"):
            if name not in OFFLOAD_NAMES:
                raise SpecError(f"--offload '{name}' is not one of all, none, optimizer, weights, activations "
                                "(combine with +, list with commas)")
            code |= OFFLOAD_NAMES[name]
        out.add(code)
    return tuple(sorted(out))


def build_options(dtype: str, flash: bool, sp: bool, zero: str, recompute: str, cp: bool, overlap: bool,
                  memory_reserve: str | None = None, *, causal: bool = True, offload: str = "all",
                  software: str = "megatron-core", grad_dtype: str | None = None, ep_overlap: bool = False,
                  moe_dispatcher: str = "alltoall", moe_sync_free: bool = False,
                  pipeline_split: str = "auto", recompute_modules: str | None = None, mtp: bool = True,
                  cuda_graph_scope: str | None = None, quantized_params: bool = False) -> Options:
    """The search options `aiinfra plan` and the web's plan page take, parsed and checked the same way for both.
    `recompute_modules`: Megatron's selective modules, 'layernorm,moe_act' (refused for a stack whose selective
    recompute is its own). `cuda_graph_scope`: Megatron's per-layer CUDA graphs, 'attn,moe_router,moe_preprocess'
    (perf.host); Megatron runs them with no full recompute and no activation offload, so the search leaves those
    out, and a stack with no per-layer host time (not Megatron-core) refuses them. `quantized_params`: FP8/FP4
    weights gathered in that dtype (Megatron --fp8-param-gather / --fp4-param-gather), which Megatron runs only with
    the distributed optimizer or FSDP (ZeRO 1-3) and, with the optimizer on the host, only under delayed scaling (the
    planner's FP8 is current scaling): the search leaves ZeRO 0 and optimizer offload out."""
    if grad_dtype not in (None, "fp32", "bf16"):
        raise SpecError(f"--grad-dtype must be fp32 or bf16, not {grad_dtype!r}")
    try:
        zero_stages = tuple(sorted({int(z) for z in zero.split(",")}))
    except ValueError:
        raise SpecError(f"--zero '{zero}' must list stages 0-3, e.g. 0,1") from None
    if not zero_stages or any(z not in (0, 1, 2, 3) for z in zero_stages):
        raise SpecError(f"--zero '{zero}' must list stages 0-3, e.g. 0,1")
    modes = tuple(x.strip() for x in recompute.split(","))
    bad = [x for x in modes if x not in RECOMPUTE_NAMES]
    if bad:
        raise SpecError(f"--recompute '{bad[0]}' is not one of none, selective, full")
    software = stack_key(software)
    modules = parse_recompute_modules(recompute_modules)
    module_policy(software, modules)  # a stack with its own selective policy takes no module names
    if modules and "selective" not in modes:
        raise SpecError("--recompute-modules names what selective recompute repeats; --recompute leaves selective out")
    if ep_overlap and "ep" not in stack_parallelism(software):
        raise SpecError(f"--ep-overlap overlaps expert-parallel all-to-alls; the {software} stack runs no expert "
                        "parallelism")
    if ep_overlap and "moe" in modules:  # Megatron's TransformerConfig refuses the pair
        raise SpecError("--ep-overlap runs no recompute of the whole MoE layer: drop moe from --recompute-modules")
    if ep_overlap and modes == ("full",):
        raise SpecError("--ep-overlap runs no full recompute (Megatron refuses the pair): add none or selective to "
                        "--recompute")
    scope = parse_cuda_graph_scope(cuda_graph_scope)
    offloads = parse_offloads(offload)
    if scope:
        from aiinfra.perf.stacks import stack

        stk = stack(software)
        if not (stk.moe_module_s or stk.moe_stall_s):
            raise SpecError(f"--cuda-graph-scope is Megatron-core's (Transformer Engine per-layer graphs); the "
                            f"{software} stack has no such option")
        if modes == ("full",):  # Megatron's TransformerConfig: full recompute only under full-iteration graphs
            raise SpecError("--cuda-graph-scope runs no full recompute (Megatron refuses the pair): add none or "
                            "selective to --recompute")
        if all(o & 4 for o in offloads):
            raise SpecError("--cuda-graph-scope runs no activation offload (Megatron: CUDA graphs are not supported "
                            "with CPU offloading): add none or optimizer to --offload")
    recompute_codes, offloads = graphed_search(scope, tuple(RECOMPUTE_NAMES.index(x) for x in modes), offloads)
    if quantized_params:
        zero_stages, offloads = quantized_search(dtype, zero_stages, offloads)
    return Options(dtype=dtype, flash_attention=flash, sequence_parallel=sp, zero_stages=zero_stages,
                   recompute=recompute_codes,
                   context_parallel=None if cp else (1,), overlap_dp=overlap,
                   memory_reserve=parse_bytes(memory_reserve, "--memory-reserve") if memory_reserve else None,
                   causal=causal, offloads=offloads, software=software,
                   grad_dtype=grad_dtype, ep_overlap=ep_overlap, moe_dispatcher=moe_dispatcher,
                   moe_sync_free=moe_sync_free, pipeline_split=pipeline_split, recompute_modules=modules,
                   mtp=mtp, cuda_graph_scope=scope, quantized_params=quantized_params)


def quantized_search(dtype: str, zero_stages: tuple[int, ...],
                     offloads: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ZeRO stages and offload codes a search with quantized parameters may take (ZeRO 1-3, no optimizer
    offload), or one line saying why none (sizing.states.check_quantized_params)."""
    zs = tuple(z for z in zero_stages if z >= 1)
    offs = tuple(o for o in offloads if not o & 1)
    check_quantized_params(dtype, bool(zs), not offs, offload_fix="add none to --offload")
    return zs, offs

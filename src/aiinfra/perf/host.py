"""What the host issues for one Megatron-core MoE layer, and what per-layer CUDA graphs take off it.

A dropless MoE layer cannot be captured whole in a CUDA graph: its expert GEMMs take shapes the router decides at
run time, so Megatron issues them from Python each micro-batch, and where the GPU finishes the layer's kernels sooner
than the host issues them the layer runs at the host's pace (perf.training, "host-bound MoE layers").

The host's work is counted here in Transformer Engine linear modules: each module's forward and backward go through
its Python and C++ setup (quantizers, workspace checks, one call per GEMM) before a kernel starts, and that setup,
not the kernels' count, is what grows with the layer's structure (Megatron-LM docs/discussions/deepseek-v3-gb200-
optimization: recomputing MLA's two up-projections "has serious CPU overhead"; CUDA graphs and fewer PyTorch calls
are its fixes). One module, forward and backward, is one unit; a forward repeated by recompute is a third of one,
as the forward is one of a module's three GEMM passes. The routed experts' grouped GEMMs count as two modules (fc1,
fc2) whatever the number of local experts: Transformer Engine's GroupedLinear loops over them in C++.

Per-layer CUDA graphs (Megatron --cuda-graph-impl transformer_engine --cuda-graph-scope, TransformerConfig
cuda_graph_modules at d98e8a6) replay a scope's kernels with no per-module host work: attn the attention block,
moe_router the router and the shared experts (not overlapped here), moe_preprocess the dispatcher's preprocessing
(no linear module), mlp a dense layer's MLP (no host term is charged for dense layers). The whole-layer moe scope
needs token drop with padded expert inputs, which the planner's dropless MoE is not, so it is refused.
"""

from __future__ import annotations

from aiinfra.errors import LayoutError, SpecError
from aiinfra.specs import ModelSpec

CUDA_GRAPH_SCOPES = ("attn", "mlp", "moe", "moe_router", "moe_preprocess")
SRC_SCOPES = ("Megatron-LM megatron/core/transformer/transformer_config.py at d98e8a6: cuda_graph_modules and the "
              "checks in __post_init__")


def parse_cuda_graph_scope(text: str | list | tuple | None) -> tuple[str, ...]:
    """'attn,moe_router,moe_preprocess' (or a list) → the sorted scope names; empty or None → () (no CUDA graphs).
    An unknown or repeated name is refused in one line, as Megatron refuses an invalid choice."""
    if text is None:
        return ()
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    for n in names:
        if n not in CUDA_GRAPH_SCOPES:
            raise SpecError(f"CUDA graph scope {n!r} is not one of {', '.join(CUDA_GRAPH_SCOPES)}")
    if len(set(names)) != len(names):
        raise SpecError(f"CUDA graph scope lists a scope twice: {','.join(names)}")
    return tuple(sorted(names))


def check_cuda_graph_scope(m: ModelSpec, scope: tuple[str, ...], recompute_modules: tuple[str, ...] = ()) -> None:
    """Megatron's own refusals for per-layer CUDA graphs on this model (TransformerConfig.__post_init__ at d98e8a6),
    one line each. The planner's MoE is dropless, so the whole-layer moe scope (token drop with padded expert inputs
    only) is refused too."""
    s = set(scope)
    if "moe" in s and "moe_router" in s:
        raise SpecError("CUDA graph scopes moe and moe_router exclude each other")
    if "moe_preprocess" in s and "moe_router" not in s:
        raise SpecError("CUDA graph scope moe_preprocess needs moe_router")
    if s & {"moe", "moe_router"} and not m.is_moe:
        raise SpecError(f"CUDA graph scopes moe and moe_router need a MoE model; {m.name} has no experts")
    if "mlp" in s and m.is_moe and not m.dense_layers:
        raise SpecError(f"CUDA graph scope mlp captures dense layers' MLPs; every layer of {m.name} is MoE")
    if "moe" in s:
        raise SpecError("CUDA graph scope moe captures only token-drop MoE with padded expert inputs; the planner's "
                        "MoE is dropless: capture moe_router,moe_preprocess instead")
    if "moe" in recompute_modules and "moe_router" in s:
        raise SpecError("recompute module moe cannot run with the moe_router CUDA graph (Megatron refuses the pair)")


def graphed_search(scope: tuple[str, ...], recompute: tuple[int, ...],
                   offloads: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The recompute modes (0 none, 1 selective, 2 full) and offload codes (bit 4: activations) a search may pair
    with the per-layer CUDA graphs of `scope`: Megatron runs them with no full recompute (that needs full-iteration
    graphs) and no activation offload (CPU offloading); without graphs, all of them."""
    if not scope:
        return tuple(recompute), tuple(offloads)
    return tuple(r for r in recompute if r != 2), tuple(o for o in offloads if not o & 4)


def check_graphed_layout(recompute: int | None, activation_offload: bool) -> None:
    """One line naming what Megatron refuses beside per-layer CUDA graphs in a fixed layout (TransformerConfig
    __post_init__ at d98e8a6): full recompute (`recompute` 2), activation offload."""
    if recompute == 2:
        raise LayoutError("--cuda-graph-scope runs no full recompute (Megatron allows it only under full-iteration "
                          "graphs): use recompute=selective or none")
    if activation_offload:
        raise LayoutError("--cuda-graph-scope runs no activation offload (Megatron: CUDA graphs are not supported "
                          "with CPU offloading)")


def attention_modules(m: ModelSpec) -> int:
    """Linear modules of the attention block: MLA's q down and up projections (one q projection without a q LoRA
    rank), kv down and up, output; otherwise the fused QKV and the output (Megatron's TE layer spec)."""
    if m.is_mla:
        return (2 if m.q_lora_rank else 1) + 3
    return 2


def layer_modules(m: ModelSpec, scope: tuple[str, ...] = ()) -> dict[str, int]:
    """The linear modules of one MoE layer the host issues each micro-batch, by block, after the CUDA graphs of
    `scope` take theirs: attention, routed experts (fc1, fc2), shared experts (fc1, fc2)."""
    s = set(scope)
    return {"attention": 0 if "attn" in s else attention_modules(m),
            "routed experts": 2,
            "shared experts": 0 if ("moe_router" in s or not m.shared_experts) else 2}


def recomputed_modules(m: ModelSpec, scope: tuple[str, ...], modules) -> int:
    """Linear modules whose forward selective recompute of `modules` (Megatron recompute_modules) runs again
    outside a CUDA graph: mla_up_proj the q and kv up-projections, moe the routed and shared experts, shared_experts
    the shared experts."""
    mods = layer_modules(m, scope)
    n = 0
    if "mla_up_proj" in modules and m.is_mla and mods["attention"]:
        n += 2 if m.q_lora_rank else 1
    if "moe" in modules:
        n += mods["routed experts"] + mods["shared experts"]
    elif "shared_experts" in modules:
        n += mods["shared experts"]
    return n

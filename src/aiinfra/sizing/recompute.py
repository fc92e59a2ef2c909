"""Activation recomputation: none / selective / full, what \"selective\" repeats in each stack, and Megatron's
recompute_modules lists."""

from __future__ import annotations

from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import SpecError
from aiinfra.specs import ModelSpec

RECOMPUTE = {"none": 0, "selective": 1, "full": 2}


# What "selective" recompute repeats, per stack: Megatron's core attention (Korthikanti et al. 2022), or
# torchtitan's op-level policy (every second matmul of a block and every elementwise op).
SELECTIVE_POLICIES = ("attention", "every_second_linear")


def selective_policy(software: str = "megatron-core") -> str:
    """What "selective" recompute keeps under a software stack (catalog stacks.yaml `selective`)."""
    key, entry = default_catalog().entry("stacks", software)
    policy = str(entry.get("selective", "attention"))
    if policy not in SELECTIVE_POLICIES:
        raise SpecError(f"stack '{key}': selective must be one of {', '.join(SELECTIVE_POLICIES)}, not '{policy}'")
    return policy


# Megatron-core's selective recompute modules (TransformerConfig.recompute_modules; its default is core_attn alone,
# which is what the "attention" policy recomputes). The norms, the MoE activation and the MLA up projections are
# checkpointed without their outputs; core attention, the dense MLP, the MoE layer and the shared experts keep their
# inputs and run their forward again.
RECOMPUTE_MODULES = ("core_attn", "moe_act", "layernorm", "mla_up_proj", "mlp", "moe", "shared_experts")
MODULES_PREFIX = "modules:"


def parse_recompute_modules(text: str | list | tuple | None) -> tuple[str, ...]:
    """'layernorm,moe_act' (or a list) → the sorted module names; empty or None → () (the stack's own selective
    policy). An unknown or repeated name is refused in one line, as Megatron refuses invalid choices."""
    if text is None:
        return ()
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    if isinstance(text, str) and text.strip() and not any(names):
        raise SpecError(f"recompute modules {text!r} names no module; Megatron's are {', '.join(RECOMPUTE_MODULES)}")
    names = [n for n in names if n]
    bad = [n for n in names if n not in RECOMPUTE_MODULES]
    if bad:
        raise SpecError(f"unknown recompute module '{bad[0]}'; Megatron's are {', '.join(RECOMPUTE_MODULES)}")
    if len(set(names)) != len(names):
        raise SpecError(f"recompute modules name one twice: {','.join(names)}")
    return tuple(sorted(names))


def module_policy(software: str, modules: tuple[str, ...] = ()) -> str:
    """The selective policy a stack runs with Megatron `recompute_modules`: the stack's own (stacks.yaml `selective`)
    when none are named or only core_attn, else 'modules:<names>'. Only a stack whose selective recompute is
    Megatron's (policy attention) takes module names; another is refused in one line, not run as Megatron."""
    base = selective_policy(software)
    if modules and base != "attention":
        raise SpecError(f"recompute modules are Megatron-core's; the {software} stack's selective recompute is "
                        f"its own ({base}); leave --recompute-modules out or use a megatron stack")
    if not modules or tuple(modules) == ("core_attn",):
        return base
    return MODULES_PREFIX + ",".join(modules)


def policy_modules(policy: str) -> frozenset[str]:
    """The Megatron modules a selective policy recomputes: core_attn for 'attention', the named ones for
    'modules:...', none for another stack's policy."""
    if policy == "attention":
        return frozenset({"core_attn"})
    if policy.startswith(MODULES_PREFIX):
        return frozenset(policy[len(MODULES_PREFIX):].split(","))
    return frozenset()


def check_recompute_modules(m: ModelSpec, modules: tuple[str, ...]) -> None:
    """Megatron's own refusals (TransformerConfig.__post_init__): moe_act needs MoE grouped GEMMs (a MoE model),
    mla_up_proj multi-latent attention."""
    if "moe_act" in modules and not m.is_moe:
        raise SpecError(f"recompute module moe_act needs a MoE model; {m.name} has no experts")
    if "mla_up_proj" in modules and not m.is_mla:
        raise SpecError(f"recompute module mla_up_proj needs multi-latent attention; {m.name} has none")

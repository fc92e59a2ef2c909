"""Per-job costs: a training run from its GPU-hours, and inference per million tokens.

    run cost     = GPU-hours × $/GPU-h
    $/1M tokens  = $/GPU-h / (tokens/s per GPU × 3600 s/h) × 10⁶
"""

from __future__ import annotations

from aiinfra.errors import AiinfraError
from aiinfra.explain import Term


def training_run_cost(gpu_hours: float, price: Term, label: str) -> Term:
    """Cost of a training run of `gpu_hours` (given, or from the planner) at `price` $/GPU-h."""
    if gpu_hours <= 0:
        raise AiinfraError(f"GPU-hours must be > 0, got {gpu_hours:g}")
    return Term(f"training run ({label})", gpu_hours * price.value, "$", "GPU-hours × $/GPU-h",
                {"GPU-hours": gpu_hours, "$/GPU-h": price})


def cost_per_million_tokens(tokens_per_gpu_s: float, price: Term, label: str) -> Term:
    """Serving cost per 10⁶ tokens for a GPU producing `tokens_per_gpu_s` tokens per second."""
    if tokens_per_gpu_s <= 0:
        raise AiinfraError(f"tokens per second per GPU must be > 0, got {tokens_per_gpu_s:g}")
    return Term(f"$/1M tokens ({label})", price.value / (tokens_per_gpu_s * 3600) * 1e6, "$/1M tokens",
                "$/GPU-h / (tokens/s × 3600) × 1e6", {"$/GPU-h": price, "tokens/s per GPU": tokens_per_gpu_s})

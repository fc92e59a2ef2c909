"""The search space: every layout that divides correctly, as flat numpy arrays (one entry per candidate).

Axes: GPU count N, TP, CP, PP, EP, micro-batch, interleave (virtual stages), recompute mode
(0 none / 1 selective / 2 full) and ZeRO stage. Rules (Megatron-LM and DeepSpeed constraints):
- TP divides the attention heads (inside the GPU's scale-up domain at NVLink speed, beyond it over
  the NICs); SP is on whenever TP > 1 (as NeMo's AutoConfigurator does) unless switched off;
- PP is any stage count that leaves every (virtual) stage a layer: uneven stages, the first and last
  lighter, as Megatron's --decoder-first/last-pipeline-num-layers allow (Llama 3 405B ran 126
  layers on PP16); CP divides the sequence and leaves each rank at least `min_cp_tokens` tokens (CP is for
  long context); DP = N / (TP·PP·CP) is whole;
- EP divides the experts and DP·CP (MoE only);
- the global batch splits into whole micro-batches per DP rank: B % (DP·mb) = 0;
- interleaving needs PP > 1, PP·v ≤ layers and micro-batches a multiple of PP;
- ZeRO-2/3 (DeepSpeed, FSDP) run as pure data parallelism (TP = PP = CP = 1); with model
  parallelism the optimizer is sharded ZeRO-1 style (Megatron's distributed optimizer).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from aiinfra.specs import ModelSpec

AXES = ("gpus", "tp", "pp", "dp", "cp", "ep", "mb", "vp", "recompute", "zero")
RECOMPUTE_NAMES = ("none", "selective", "full")


@dataclass
class Space:
    gpus: np.ndarray
    tp: np.ndarray
    pp: np.ndarray
    dp: np.ndarray
    cp: np.ndarray
    ep: np.ndarray
    mb: np.ndarray
    vp: np.ndarray
    recompute: np.ndarray
    zero: np.ndarray
    sp: np.ndarray
    batch: int  # global batch in sequences

    def _arrays(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "batch"]

    def __len__(self) -> int:
        return int(self.tp.size)

    def take(self, index) -> Space:
        return Space(**{n: getattr(self, n)[index] for n in self._arrays()}, batch=self.batch)

    def row(self, i: int) -> dict:
        return {n: getattr(self, n)[i].item() for n in self._arrays()}

    @property
    def microbatches(self) -> np.ndarray:
        return self.batch // (self.dp * self.mb)


def _i64(xs) -> np.ndarray:
    return np.asarray(xs, dtype=np.int64)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def build_space(
    m: ModelSpec,
    gpu_counts: list[int],
    *,
    global_batch: int,
    seq: int,
    gpus_per_node: int = 8,
    micro_batches: tuple[int, ...] = (1, 2, 4, 8, 16),
    interleaves: tuple[int, ...] = (1, 2, 3, 4, 6, 8),
    recompute: tuple[int, ...] = (0, 1, 2),
    zero_stages: tuple[int, ...] = (0, 1, 2, 3),
    context_parallel: tuple[int, ...] = (1, 2, 4, 8, 16, 32),
    sequence_parallel: bool = True,
    min_cp_tokens: int = 4096,
    max_tp: int | None = None,
    scaleup_domain: int | None = None,
    uneven_pipeline: bool = True,
) -> Space:
    """All valid layouts for `m` over the given GPU counts, as flat arrays."""
    # TP: every divisor of the heads; inside the scale-up domain it runs at NVLink speed, beyond it
    # the collectives cross the NICs (perf.training charges that), so the step time decides.
    # A TP group inside a domain must tile it (no group straddles two domains); beyond it, whole domains.
    dom = scaleup_domain or gpus_per_node
    tps = [t for t in divisors(m.heads) if t <= max(gpu_counts) and (max_tp is None or t <= max_tp)
           and (dom % t == 0 or t % dom == 0)]
    # uneven stages allowed (every stage needs one layer) where the software stack supports them
    pps = list(range(1, m.layers + 1)) if uneven_pipeline else divisors(m.layers)
    cps = [c for c in context_parallel if seq % c == 0 and (c == 1 or seq // c >= min_cp_tokens)]
    eps = [e for e in divisors(m.experts) if e <= 256] if m.is_moe else [1]
    # Structural axes first (few thousand rows), filtered before the knobs multiply them.
    g = np.meshgrid(_i64(gpu_counts), _i64(tps), _i64(pps), _i64(cps), _i64(eps), indexing="ij")
    N, tp, pp, cp, ep = (x.ravel() for x in g)
    mp = tp * pp * cp
    ok = (N % mp == 0) & (N >= mp)
    dp = N // mp
    ok &= ((dp * cp) % ep == 0) & (global_batch % np.maximum(dp, 1) == 0)
    N, tp, pp, cp, ep, dp = (x[ok] for x in (N, tp, pp, cp, ep, dp))
    k = np.meshgrid(_i64(micro_batches), _i64(interleaves), _i64(recompute), _i64(zero_stages), indexing="ij")
    mb_k, vp_k, rc_k, z_k = (x.ravel() for x in k)
    S, K = N.size, mb_k.size
    N, tp, pp, cp, ep, dp = (np.repeat(x, K) for x in (N, tp, pp, cp, ep, dp))
    mb, vp, rc, zero = (np.tile(x, S) for x in (mb_k, vp_k, rc_k, z_k))
    ok = global_batch % (dp * mb) == 0
    M = global_batch // (dp * mb)
    fits_stages = (pp * vp <= m.layers) if uneven_pipeline else (m.layers % (pp * vp) == 0)
    ok &= (vp == 1) | ((pp > 1) & fits_stages & (M % pp == 0))
    ok &= (zero <= 1) | ((tp == 1) & (pp == 1) & (cp == 1))
    idx = np.nonzero(ok)[0]
    space = Space(N[idx], tp[idx], pp[idx], dp[idx], cp[idx], ep[idx], mb[idx], vp[idx], rc[idx], zero[idx],
                  (tp[idx] > 1) & sequence_parallel, global_batch)
    return space


def describe(row: dict) -> str:
    """'TP8·PP8·DP24 mb1 v3 full ZeRO-1' — how a layout is written in tables and messages."""
    parts = [f"TP{row['tp']}", f"PP{row['pp']}"]
    if row["cp"] > 1:
        parts.append(f"CP{row['cp']}")
    if row["ep"] > 1:
        parts.append(f"EP{row['ep']}")
    parts.append(f"DP{row['dp']}")
    return "·".join(parts)

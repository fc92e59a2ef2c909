"""The search space: every layout that divides correctly, as flat numpy arrays (one entry per candidate).

Axes: GPU count N, TP, CP, PP, EP, micro-batch, interleave (virtual stages), recompute mode
(0 none / 1 selective / 2 full), ZeRO stage, offload (with activations, the share of each stage's layers whose
activations go) and the TP overlap mode (blocking or overlapped chunk by chunk, where the software stack offers both;
TP1 has no TP mode to choose). Rules (Megatron-LM and DeepSpeed constraints):
- TP divides the attention heads and the KV heads, or is a multiple of the KV heads where the stack replicates
  them (megatron-core: stacks.yaml tp_past_kv_heads); inside the GPU's scale-up domain at NVLink speed, beyond it
  over the NICs; SP is on whenever TP > 1 (as NeMo's AutoConfigurator does) and TP divides each CP rank's tokens,
  unless switched off;
- PP is any stage count that leaves every (virtual) stage a layer: uneven stages, the first and last
  lighter, as Megatron's --decoder-first/last-pipeline-num-layers allow (Llama 3 405B ran 126
  layers on PP16); the sequence splits into 2·CP equal chunks and leaves each rank at least `min_cp_tokens`
  tokens (CP is for long context); DP = N / (TP·PP·CP) is whole;
- EP divides the experts and DP·CP (MoE only), with experts split over TP (Megatron's default ETP = TP); or,
  with whole experts (ETP 1, Megatron's MoE parallel folding), EP divides TP·DP·CP;
- the global batch splits into whole micro-batches per DP rank: B % (DP·mb) = 0;
- interleaving needs PP > 1, PP·v ≤ layers (+ 2 where the embedding and the loss take a slot each) and
  micro-batches the stack's schedule can group (stacks.yaml interleave: a multiple of PP in Megatron before
  2024-11; Megatron-Core's groups of G ≥ PP; PyTorch's rounds);
- ZeRO 0-3 combine with any TP/PP/CP (ZeRO-1 = Megatron's distributed optimizer; ZeRO-2 with TP/PP as
  DeepSpeed and Megatron-FSDP run it; ZeRO-3 = FSDP with TP/PP as torchtitan runs it); ZeRO-3
  re-gathers parameters every micro-batch, which the step time charges.
"""

from __future__ import annotations

import numpy as np

from aiinfra.sizing.layout import PARALLEL_AXES, sp_divides, tp_fits_kv_heads
from aiinfra.sizing.offload import ActivationOffload
from aiinfra.sizing.pipeline import EdgeSlots, microbatch_group, pipeline_fits
from aiinfra.sizing.pipeline_layout import PipelineLayout
from aiinfra.specs import ModelSpec

AXES = ("gpus", "tp", "pp", "dp", "cp", "ep", "mb", "vp", "recompute", "zero")
RECOMPUTE_NAMES = ("none", "selective", "full")


BASE = ("gpus", "tp", "pp", "dp", "cp", "ep", "mb", "vp", "sp", "etp")
KNOBS = ("recompute", "rfrac", "zero", "offload", "ofrac", "tpo")


class Space:
    """Candidates as base rows (the layout: GPUs, TP, PP, DP, CP, EP, micro-batch, interleave, SP) times a
    grid of knobs every base row takes (recompute mode, ZeRO stage). Candidate i is base row i // K with
    knob combination i % K. Evaluating base arrays shaped (b, 1) against knob arrays shaped (1, K) lets
    numpy compute each term once per base row or per knob where it does not depend on the other."""

    def __init__(self, base: dict[str, np.ndarray], knobs: dict[str, np.ndarray], batch: int):
        self.base = base
        self.knobs = knobs
        self.batch = batch  # global batch in sequences
        self.n_base = int(next(iter(base.values())).size) if base else 0
        self.k = int(next(iter(knobs.values())).size) if knobs else 1

    def __len__(self) -> int:
        return self.n_base * self.k

    def full(self, name: str) -> np.ndarray:
        """One value per candidate (flat)."""
        if name in self.base:
            return np.repeat(self.base[name], self.k)
        return np.tile(self.knobs[name], self.n_base)

    def __getattr__(self, name: str) -> np.ndarray:
        if name in BASE or name in KNOBS:
            return self.full(name)
        raise AttributeError(name)

    def bcast(self, name: str) -> np.ndarray:
        """Broadcastable view for evaluation: (base, 1) or (1, K)."""
        if name in self.base:
            return self.base[name][:, None]
        return self.knobs[name][None, :]

    def base_slice(self, start: int, stop: int) -> Space:
        return Space({n: v[start:stop] for n, v in self.base.items()}, self.knobs, self.batch)

    def take(self, index) -> Space:
        """A flat space (every field per candidate) of the given candidates."""
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        b, k = idx // self.k, idx % self.k
        fields = {n: v[b] for n, v in self.base.items()}
        fields.update({n: v[k] for n, v in self.knobs.items()})
        return Space(fields, {}, self.batch)

    def matching(self, **values) -> np.ndarray:
        """Flat indices of the candidates whose fields equal `values` (base and knob fields tested on their own
        arrays, so memory follows the matches, not the space)."""
        rows, knobs = np.ones(self.n_base, dtype=bool), np.ones(self.k, dtype=bool)
        for name, v in values.items():
            if name in self.base:
                rows &= self.base[name] == v
            elif name in self.knobs:
                knobs &= self.knobs[name] == v
            else:
                raise KeyError(name)
        return (np.nonzero(rows)[0][:, None] * self.k + np.nonzero(knobs)[0][None, :]).ravel()

    def row(self, i: int) -> dict:
        b, k = divmod(int(i), self.k)
        out = {n: self.base[n][b].item() for n in BASE if n in self.base}
        out.update({n: (self.knobs[n][k] if n in self.knobs else self.base[n][b]).item() for n in KNOBS})
        return out

    def layout_key(self, index=None) -> np.ndarray:
        """One int64 per candidate (all, or those in `index`) naming its (TP, PP, CP, EP, DP, expert TP) layout; the
        GPU count is their product. Field widths fit 63 bits: TP, PP, EP < 2⁹, CP < 2¹¹, DP < 2²⁰, one bit for ETP 1."""
        key = np.zeros(self.n_base, dtype=np.int64)
        folded = (self.base["etp"] != self.base["tp"]).astype(np.int64) if "etp" in self.base else 0
        for value, width in ((self.base["tp"], 1 << 9), (self.base["pp"], 1 << 9), (self.base["cp"], 1 << 11),
                             (self.base["ep"], 1 << 9), (self.base["dp"], 1 << 20), (folded, 2)):
            key = key * width + value
        if index is not None:
            return key[np.asarray(index) // self.k]
        return np.repeat(key, self.k)

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
    micro_batches: tuple[int, ...] | None = None,
    interleaves: tuple[int, ...] | None = None,
    recompute: tuple[int, ...] = (0, 1, 2),
    zero_stages: tuple[int, ...] = (0, 1, 2, 3),
    offloads: tuple[int, ...] = (0,),
    tp_overlaps: tuple[int, ...] = (0,),
    recompute_fractions: tuple[float, ...] = (1.0,),
    offload_fractions: tuple[float, ...] = (1.0,),
    offload_rules: ActivationOffload | None = None,
    context_parallel: tuple[int, ...] | None = None,
    sequence_parallel: bool = True,
    min_cp_tokens: int = 1024,
    max_tp: int | None = None,
    scaleup_domain: int | None = None,
    uneven_pipeline: bool = True,
    edge_slots: bool | EdgeSlots | PipelineLayout = False,
    ep_overlap: bool = False,
    parallel_axes: tuple[str, ...] = PARALLEL_AXES,
    interleave: str = "multiple",
    tp_past_kv_heads: bool = True,
) -> Space:
    """All valid layouts for `m` over the given GPU counts, as flat arrays.

    None for micro_batches / interleaves / context_parallel means every value that divides: every
    micro-batch dividing the per-replica batch, every interleave that leaves each virtual stage a
    layer, every CP dividing the sequence that leaves each rank `min_cp_tokens` tokens. A PipelineLayout in
    `edge_slots` (Megatron's custom layout) fixes the stages: PP is a divisor of its stage count, VP the quotient.
    `ep_overlap` (Megatron's --overlap-moe-expert-parallel-comm) keeps only what Megatron runs with it
    (TransformerConfig.__post_init__ at d98e8a6): EP > 1, VP > 1 wherever PP > 1, and no full recompute.
    `parallel_axes`: the model-parallel axes the software stack runs (stacks.yaml parallelism); the others stay 1.
    `interleave`: how the stack's interleaved schedule takes a step's micro-batches (sizing INTERLEAVE_RULES).
    `tp_past_kv_heads`: TP may be a multiple of the KV heads (Megatron-Core), else it must divide them."""
    # TP: every divisor of the heads; inside the scale-up domain it runs at NVLink speed, beyond it
    # the collectives cross the NICs (perf.training charges that), so the step time decides.
    # A TP group inside a domain must tile it (no group straddles two domains); beyond it, whole domains.
    dom = scaleup_domain or gpus_per_node
    tps = [t for t in divisors(m.heads) if t <= max(gpu_counts) and (max_tp is None or t <= max_tp)
           and (dom % t == 0 or t % dom == 0) and tp_fits_kv_heads(m.kv_heads, t, tp_past_kv_heads)]
    # uneven stages allowed (every stage needs one layer) where the software stack supports them
    layout = edge_slots if isinstance(edge_slots, PipelineLayout) else None
    pps = list(range(1, m.layers + 1)) if uneven_pipeline else divisors(m.layers)
    if layout is not None:  # one stage count: PP·VP = its stages (PP 1 only where it is a single stage)
        pps = [p for p in divisors(layout.n_stages) if p > 1 or layout.n_stages == 1]
    cp_values = divisors(seq) if context_parallel is None else context_parallel
    # load-balanced causal CP cuts the sequence into 2·CP chunks (Megatron-LM arguments.py: seq % (2·CP) == 0)
    cps = [c for c in cp_values if c == 1 or (seq % (2 * c) == 0 and seq // c >= min_cp_tokens)]
    mbs = divisors(global_batch) if micro_batches is None else list(micro_batches)
    vps = list(range(1, m.layers + 3)) if interleaves is None else list(interleaves)
    eps = [e for e in divisors(m.experts) if e <= 256] if m.is_moe else [1]
    # a stack that does not run an axis (llm-foundry: data parallelism only) keeps it at 1
    tps, pps, cps, eps = ([v for v in vals if v == 1 or axis in parallel_axes]
                          for axis, vals in (("tp", tps), ("pp", pps), ("cp", cps), ("ep", eps)))
    # Structural axes first (few thousand rows), filtered before the knobs multiply them.
    g = np.meshgrid(_i64(gpu_counts), _i64(tps), _i64(pps), _i64(cps), _i64(eps), indexing="ij")
    N, tp, pp, cp, ep = (x.ravel() for x in g)
    # expert TP: TP (every layout), or 1 where it differs (TP > 1) and EP > 1: EP folded over the TP ranks
    fold = (tp > 1) & (ep > 1)
    etp = np.concatenate([tp, np.ones(int(fold.sum()), dtype=np.int64)])
    N, tp, pp, cp, ep = (np.concatenate([x, x[fold]]) for x in (N, tp, pp, cp, ep))
    mp = tp * pp * cp
    ok = (N % mp == 0) & (N >= mp)
    dp = N // mp
    ep_group = np.where(etp == 1, tp * dp * cp, dp * cp)
    ok &= (ep_group % ep == 0) & (global_batch % np.maximum(dp, 1) == 0)
    N, tp, pp, cp, ep, dp, etp = (x[ok] for x in (N, tp, pp, cp, ep, dp, etp))
    # Per (dp, pp): the (micro-batch, interleave) pairs that divide; then every base row of that key.
    key = dp * 100_000 + pp
    parts = []
    stage_vps: dict[int, list[int]] = {}  # per PP, the interleaves whose stages all get their layers
    for kval in np.unique(key):
        rows = np.nonzero(key == kval)[0]
        d, p = int(dp[rows[0]]), int(pp[rows[0]])
        if p not in stage_vps:
            # every GPU keeps its edge slots and no fewer than zero layers (the loss stage of an MTP model takes
            # three slots, so this binds without interleaving too); a layout string places layers itself
            cand = _i64(vps if layout is None else [layout.n_stages // p])
            ok = (np.ones(cand.size, dtype=bool) if layout is not None else
                  np.asarray(pipeline_fits(m.layers, p, cand, edge_slots), dtype=bool) if uneven_pipeline else
                  m.layers % (p * cand) == 0)
            stage_vps[p] = [int(v) for v in cand[ok]]
        pairs = []
        for mb in mbs:
            if global_batch % (d * mb):
                continue
            M = global_batch // (d * mb)
            # interleaving: micro-batches the stack's schedule can group (Megatron-Core: M mod PP 0, or groups of
            # G ≥ PP that leave 0 or at least PP over)
            groups = p > 1 and microbatch_group(M, p, interleave) > 0
            pairs += [(mb, vp) for vp in stage_vps[p] if vp == 1 or groups]
        if not pairs:
            continue
        pa = _i64(pairs)
        parts.append((np.repeat(rows, len(pa)), np.tile(pa[:, 0], rows.size), np.tile(pa[:, 1], rows.size)))
    if parts:
        r_idx = np.concatenate([x[0] for x in parts])
        mb_a = np.concatenate([x[1] for x in parts])
        vp_a = np.concatenate([x[2] for x in parts])
    else:
        r_idx = mb_a = vp_a = _i64([])
    base = {"gpus": N[r_idx], "tp": tp[r_idx], "pp": pp[r_idx], "dp": dp[r_idx], "cp": cp[r_idx], "ep": ep[r_idx],
            "mb": mb_a, "vp": vp_a, "etp": etp[r_idx],
            # SP only where each CP rank's tokens split evenly over TP; elsewhere TP runs without it
            "sp": (tp[r_idx] > 1) & sequence_parallel & sp_divides(seq, cp[r_idx], tp[r_idx])}
    if ep_overlap:
        keep = (base["ep"] > 1) & ((base["pp"] == 1) | (base["vp"] > 1))
        base = {k: v[keep] for k, v in base.items()}
        recompute = tuple(r for r in recompute if r != 2)
    # recompute modes: none, selective, and full on a fraction of each stage's layers (block method)
    pairs = [(r, 1.0) for r in recompute if r != 2]
    pairs += [(2, f) for f in recompute_fractions] if 2 in recompute else []
    # offload flags, activations (bit 4) on a share of each stage's layers (the first ones)
    opairs = [(o, f) for o in offloads for f in (offload_fractions if o & 4 else (1.0,))]
    kg = np.meshgrid(np.arange(len(pairs)), _i64(zero_stages), np.arange(len(opairs)), _i64(tp_overlaps),
                     indexing="ij")
    pr = np.asarray(pairs, dtype=float).reshape(-1, 2)
    po = np.asarray(opairs, dtype=float).reshape(-1, 2)
    knobs = {"recompute": pr[kg[0].ravel(), 0].astype(np.int64), "rfrac": pr[kg[0].ravel(), 1],
             "zero": kg[1].ravel(), "offload": po[kg[2].ravel(), 0].astype(np.int64), "ofrac": po[kg[2].ravel(), 1],
             "tpo": kg[3].ravel()}
    # what the stack cannot combine with activation offload (Megatron-LM: no recompute, fewer layers than the model;
    # a stack without the layer-wise scheme: every layer or none); no rules: every combination
    if offload_rules is not None:
        r = offload_rules
        act = (knobs["offload"] & 4) > 0
        drop = act & (((knobs["recompute"] > 0) & (not r.recompute)) | ((knobs["ofrac"] >= 1.0) & (not r.every_layer))
                      | ((knobs["ofrac"] < 1.0) & (not r.share)))
        knobs = {k: v[~drop] for k, v in knobs.items()}
    return Space(base, knobs, global_batch)


def recompute_name(code: int, fraction: float = 1.0) -> str:
    """'none' | 'selective' | 'full' | 'full 50%' (full recompute of that share of each stage's layers)."""
    name = RECOMPUTE_NAMES[int(code)]
    return f"full {fraction:.0%}" if name == "full" and fraction < 1.0 else name


def offload_name(code: int, fraction: float = 1.0) -> str:
    """Bit flags → 'none' | 'optimizer' | 'weights+activations' | 'activations 50%' (that share of each stage's
    layers) …"""
    names = [n for bit, n in ((1, "optimizer"), (2, "weights"), (4, "activations")) if int(code) & bit]
    if int(code) & 4 and fraction < 1.0:
        names[-1] += f" {fraction:.0%}"
    return "+".join(names) or "none"


def describe(row: dict) -> str:
    """'TP8·PP8·DP24 mb1 v3 full ZeRO-1' — how a layout is written in tables and messages."""
    parts = [f"TP{row['tp']}", f"PP{row['pp']}"]
    if row["cp"] > 1:
        parts.append(f"CP{row['cp']}")
    if row["ep"] > 1:
        parts.append(f"EP{row['ep']}" + ("(ETP1)" if row.get("etp", row["tp"]) != row["tp"] else ""))
    parts.append(f"DP{row['dp']}")
    return "·".join(parts)

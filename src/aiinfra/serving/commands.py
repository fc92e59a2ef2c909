"""`aiinfra serve-plan`: the cheapest deployment that serves a request rate within TTFT/TPOT targets."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from aiinfra.contract import Facts, Quantity, command
from aiinfra.errors import SpecError
from aiinfra.explain import Result, Term, quantity
from aiinfra.perf import compute
from aiinfra.perf.inference import prefill_calibration
from aiinfra.serving.search import (BATCHES, MAX_REPLICAS, TPS, WEIGHT_ONLY_SOURCE, Grid, build_configs, describe,
                                    evaluate, no_kernel_reason, quant_support)
from aiinfra.serving.workload import REPLICAS_BOUND, Targets, Workload
from aiinfra.sizing.inference import check_context, max_context
from aiinfra.specs import GpuSpec, ModelSpec


class ServePlanFacts(Facts):
    model: str
    feasible: bool
    candidates: int
    meeting_targets: int
    winner: dict | None
    ranking: list[dict]
    cheaper_misses: list[dict]
    closest: list[dict]
    usd_per_1m_tokens: Quantity | None
    gpus: int | None


def hf_id(m: ModelSpec) -> str:
    """The Hub id a catalog model's source names (e.g. "meta-llama/Llama-3.1-8B"), else its name."""
    found = re.match(r"\s*([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)\s", m.source + " ")
    return found.group(1) if found else m.name


def _misses(row: dict, t: Targets) -> str:
    p = t.percentile
    out = []
    if row["ttft_ms"] is None or row["ttft_ms"] > t.ttft_s * 1e3:
        out.append(f"TTFT {p} {_fmt(row['ttft_ms'])} > {t.ttft_s * 1e3:g} ms")
    if row["tpot_ms"] is None or row["tpot_ms"] > t.tpot_s * 1e3:
        out.append(f"TPOT {p} {_fmt(row['tpot_ms'])} > {t.tpot_s * 1e3:g} ms")
    return "; ".join(out) or "meets both"


def _fmt(v: float | None) -> str:
    return "unbounded (queue grows)" if v is None else f"{v:,.1f} ms"


def _unique(grid: Grid, idx: np.ndarray, key_cols: tuple[str, ...], limit: int) -> list[int]:
    seen, out = set(), []
    for i in idx:
        k = (int(grid.cols["cfg"][i]),) + tuple(float(grid.cols[c][i]) for c in key_cols)
        if k in seen:
            continue
        seen.add(k)
        out.append(int(i))
        if len(out) >= limit:
            break
    return out


@command("serve-plan", facts=ServePlanFacts)
def serve_plan(m: ModelSpec, w: Workload, t: Targets, gpus: dict[str, tuple[GpuSpec, float]], *,
               quants: list[str] | None = None, engine: str = "vllm", max_replicas: int = MAX_REPLICAS,
               disaggregated: bool = True, top: int = 5, price_sources: dict[str, str] | None = None) -> Result:
    """Search replicas × TP × max batch × quantization × GPU × aggregated/disaggregated for the cheapest
    deployment (by $ per 1M tokens, then GPUs) whose TTFT and TPOT at the target percentile meet the targets."""
    if not gpus:
        raise SpecError("give at least one candidate GPU with its price, e.g. --gpu h100-sxm=2.5")
    if not 1 <= max_replicas <= REPLICAS_BOUND:
        raise SpecError(f"--max-replicas must be between 1 and {REPLICAS_BOUND}, got {max_replicas}")
    long_share = _check_lengths(m, w)
    configs = build_configs(m, gpus, w, quants=quants, tps=TPS, engine=engine)
    grid = evaluate(m, w, t, configs, batches=BATCHES, max_replicas=max_replicas, disaggregated=disaggregated)
    n = int(grid.cols["valid"].sum()) if "valid" in grid.cols else 0
    title = (f"Serving plan: {m.name}, {w.describe()}, TTFT {t.percentile} ≤ {t.ttft_s * 1e3:g} ms, "
             f"TPOT {t.percentile} ≤ {t.tpot_s * 1e3:g} ms")
    cal = compute.inference_calibration()
    assumptions = [
        f"{k}: ${p:g}/GPU-hour ({(price_sources or {}).get(k, 'your --gpu flag')})" for k, (_, p) in gpus.items()]
    assumptions += [
        f"engine {engine}: KV slots from its start-up memory (engines.yaml), max_num_batched_tokens 8192, "
        "gpu_memory_utilization 0.9",
        *[f"step times on {c.gpu.key}: {engine}'s efficiencies fitted on its published benchmarks (engines.yaml "
          f"{engine}.efficiency; rows and held-out errors in benchmarks/serving_fidelity.py)"
          for c in {c.gpu.key: c for c in configs if c.dec.get("efficiency") == "engine"}.values()],
        *[f"step times on {', '.join(generic)}: rooflines with decode at {cal.decode_bw_fraction:.2f} of HBM bandwidth "
          f"({cal.source}) and prefill at kernels.yaml's GEMM plateaus and flash-attention efficiencies over the share "
          f"of them a prefill step reaches ({prefill_calibration().source}); no published {engine} benchmark fitted "
          "for them"
          for generic in [sorted({c.gpu.key for c in configs if c.dec.get("efficiency") != "engine"})] if generic],
        "queueing: Erlang C for batch slots, M/G/1 for prefill; checked against a discrete-event simulation "
        "(tests/serving/test_queue_vs_simulation.py)",
        "cost per 1M tokens counts prompt + output tokens; disaggregated KV moves over the scale-out fabric",
    ]
    qs = quants or ["bf16", "fp8"]
    weight_only = sorted({(c.gpu.key, c.quant) for c in configs if quant_support(c.gpu, c.quant) == "weight-only"})
    if weight_only:
        assumptions.append(
            "; ".join(f"{q} weights on {g} run weight-only ({q.upper()} stored, 16-bit compute: the GPU has no "
                      f"{q.upper()} tensor cores)" for g, q in weight_only)
            + f", as vLLM runs them ({WEIGHT_ONLY_SOURCE}) and `aiinfra infer` computes them")
    warnings: list[str] = []
    if long_share:
        limit = max_context(m)
        warnings.append(f"{long_share:.1%} of requests (prompt + output) are longer than {m.name}'s maximum context of "
                        f"{limit[0]:,} tokens ({limit[1]}): vLLM rejects them; max_model_len is sized at {limit[0]:,}")
    no_kernel = sorted({(g.key, q) for g, _ in gpus.values() for q in qs if quant_support(g, q) is None})
    reasons = [no_kernel_reason(g, q) for g, _ in gpus.values() for q in qs if (g.key, q) in no_kernel]
    unfit = sorted({g.key for g, _ in gpus.values()} - {c.gpu.key for c in configs}
                   - {g for g, _ in no_kernel if all((g, q) in no_kernel for q in qs)})
    if unfit:
        warnings.append(f"{m.name} does not fit (or its engine would not start) on up to 8 × {', '.join(unfit)} "
                        "at these quantizations and lengths")
    if no_kernel:
        warnings.append("; ".join(reasons))
    if not configs:
        why = list(reasons)
        why += ([f"it does not fit, or its engine would not start, on up to 8 × {', '.join(unfit)} at "
                 f"{', '.join(qs)} and these lengths; add larger GPUs or quantize further (int4, fp4)"] if unfit else [])
        raise SpecError(f"{m.name} can be served on none of the candidates: " + "; ".join(why))
    c = grid.cols
    meets = np.flatnonzero(c["meets"])
    # At equal cost (and GPUs) the lower latency against its target ranks first, then the less quantized weights,
    # then the smaller batch; never a smaller batch at a higher latency (TIE_BREAK).
    order = meets[np.lexsort((c["batch"][meets], _quant_rank(grid)[meets], _latency(c, t)[meets], c["gpus"][meets],
                              np.round(c["usd_per_1m"][meets], 9)))]
    assumptions.append(TIE_BREAK)
    key = ("mode", "prefill_replicas", "decode_replicas")
    ranking = [describe(grid, i) for i in _unique(grid, order, key, top)]
    facts: dict[str, Any] = {"model": m.name, "candidates": n, "meeting_targets": int(meets.size),
                             "feasible": bool(meets.size), "workload": w.describe(),
                             "targets": {"percentile": t.percentile, "ttft_ms": t.ttft_s * 1e3, "tpot_ms": t.tpot_s * 1e3}}
    terms: list[Term] = []
    stable = np.flatnonzero(c["stable"])
    violation = np.maximum(c["ttft"] / t.ttft_s, c["tpot"] / t.tpot_s)
    if meets.size:
        # The analytical queue ranks; the discrete-event simulation confirms the top aggregated rows in order,
        # and the first one it confirms wins (disaggregated rows stand on the analytical queue alone).
        picks = _unique(grid, order, key, top)
        best, sim = picks[0], None
        rejected: dict[int, dict] = {}
        for i in picks:
            if describe(grid, i)["mode"] != "aggregated":
                best, sim = i, None
                break
            s_i = _simulate_winner(grid, i, w, t)
            if s_i["ttft_ms"] <= t.ttft_s * 1e3 and s_i["tpot_ms"] <= t.tpot_s * 1e3:
                best, sim = i, s_i
                break
            rejected[i] = s_i
            if sim is None:
                sim = s_i
        else:
            best = picks[0]
        ranking = [describe(grid, best)] + [r for i, r in zip(picks, ranking) if i != best]
        win = ranking[0]
        for i, r in zip([best] + [i for i in picks if i != best], ranking):
            r["meets"] = "meets both"
            if i in rejected and i != best:
                r["meets"] = (f"analytically only: simulated TTFT {rejected[i]['ttft_ms']:,.1f} ms, "
                              f"TPOT {rejected[i]['tpot_ms']:,.2f} ms")
        if sim is not None:
            facts["winner_simulated"] = sim
            if sim["ttft_ms"] > t.ttft_s * 1e3 or sim["tpot_ms"] > t.tpot_s * 1e3:
                warnings.append(f"the discrete-event simulation of the winner gives TTFT {t.percentile} "
                                f"{sim['ttft_ms']:,.1f} ms and TPOT {sim['tpot_ms']:,.2f} ms, beyond a target; no row of "
                                "the ranking was confirmed by simulation")
        if best != picks[0]:
            first = describe(grid, picks[0])
            warnings.append(f"{first['gpus']} × {first['gpu']} {first['layout']} met the targets analytically but not in "
                            "the discrete-event simulation; the next confirmed row wins")
        cheaper = stable[(c["usd_per_1m"][stable] < c["usd_per_1m"][best]) & ~c["meets"][stable]]
        cheaper = cheaper[np.lexsort((violation[cheaper], c["usd_per_1m"][cheaper]))]
        misses = []
        for i in _unique(grid, cheaper, ("mode",), top):
            row = describe(grid, i)
            row["misses"] = _misses(row, t)
            misses.append(row)
        facts |= {"winner": win, "ranking": ranking, "cheaper_misses": misses, "closest": [],
                  "usd_per_1m_tokens": quantity(win["usd_per_1m_tokens"], "USD"), "gpus": win["gpus"],
                  "ttft": quantity(win["ttft_ms"], "ms"), "tpot": quantity(win["tpot_ms"], "ms")}
        terms = _winner_terms(grid, best, w, t)
        why = (f"{win['gpus']} × {win['gpu']} ({win['quant']}, {win['layout']}, {win['mode']}, max batch "
               f"{win['max_batch']}) is the cheapest at ${win['usd_per_1m_tokens']:.4f} per 1M tokens with TTFT "
               f"{t.percentile} {win['ttft_ms']:,.1f} ms and TPOT {t.percentile} {win['tpot_ms']:,.1f} ms")
        facts["why"] = why
        if misses:
            facts["why_not_cheaper"] = [f"{r['gpus']} × {r['gpu']} {r['quant']} {r['layout']} ({r['mode']}) at "
                                        f"${r['usd_per_1m_tokens']:.4f}/1M misses: {r['misses']}" for r in misses]
    else:
        cand = stable if stable.size else np.flatnonzero(c["valid"])
        # the miss in steps of 1% (a ratio to the target), then the fewer targets missed, then the cheaper and the
        # fewer GPUs: more replicas that miss by 14.01 ms instead of 14.02 ms are not closer, they cost more (CLOSEST)
        miss = _miss_bins(violation)
        missed = (~(c["ttft"] <= t.ttft_s)).astype(int) + (~(c["tpot"] <= t.tpot_s)).astype(int)
        cand = cand[np.lexsort((c["gpus"][cand], np.round(c["usd_per_1m"][cand], 9), missed[cand], miss[cand]))]
        closest = []
        for i in _unique(grid, cand, key, top):
            row = describe(grid, i)
            row["misses"] = _misses(row, t)
            closest.append(row)
        facts |= {"winner": None, "ranking": [], "cheaper_misses": [], "closest": closest,
                  "usd_per_1m_tokens": None, "gpus": None}
        assumptions.append(CLOSEST)
        warnings.append(f"no deployment of up to {max_replicas} replicas meets TTFT {t.percentile} ≤ "
                        f"{t.ttft_s * 1e3:g} ms and TPOT {t.percentile} ≤ {t.tpot_s * 1e3:g} ms; the closest are listed "
                        "with the target each misses")
    return Result(title, terms, facts, warnings, assumptions)


TIE_BREAK = ("ranking: cheapest $ per 1M tokens first, then fewest GPUs; at equal cost the lower latency against its "
             "target ranks first (the larger of TTFT / TTFT target and TPOT / TPOT target), then the less quantized "
             "weights (bf16 before fp8, int8, fp4, int4), then the smaller max batch")
CLOSEST = ("closest: ranked by how far each misses its targets (the larger of TTFT / TTFT target and TPOT / TPOT "
           "target) in steps of 1%, then by how many of the two it misses, then cheapest $ per 1M tokens, then fewest "
           "GPUs")
MISS_STEP = 0.01  # relative resolution at which two misses count as equal (closest ranking)


def _miss_bins(violation: np.ndarray) -> np.ndarray:
    """How far a deployment misses, max(TTFT / target, TPOT / target), in steps of MISS_STEP relative (1%): misses
    within 1% of each other share a bin and rank by cost. Unbounded (a queue that grows) stays infinite."""
    with np.errstate(divide="ignore", invalid="ignore"):
        bins = np.round(np.log(np.maximum(violation, 1e-300)) / np.log1p(MISS_STEP))
    return np.where(np.isfinite(violation), bins, np.inf)


# weight bits, most first: the tie-break prefers less quantization
QUANT_ORDER = {"fp32": 0, "bf16": 1, "fp16": 1, "fp8": 2, "int8": 2, "fp4": 3, "int4": 3}


def _latency(c: dict, t: Targets) -> np.ndarray:
    """Latency against the targets: max(TTFT / TTFT target, TPOT / TPOT target), rounded so float noise ties."""
    return np.round(np.maximum(c["ttft"] / t.ttft_s, c["tpot"] / t.tpot_s), 9)


def _quant_rank(grid: Grid) -> np.ndarray:
    ranks = np.array([QUANT_ORDER.get(cfg.quant, 4) for cfg in grid.configs], dtype=float)
    return ranks[grid.cols["cfg"]]


def _check_lengths(m: ModelSpec, w: Workload) -> float:
    """Refuse (one line, as vLLM refuses such a max_model_len) a workload whose requests are longer than the model's
    maximum context: fixed lengths, or a mean request over it; else the share of sampled requests over it, which
    vLLM would reject."""
    limit = max_context(m)
    if limit is None:
        return 0.0
    lengths = w.prompt.draw() + w.output.draw(seed=1)
    fixed = w.prompt.samples is None and w.output.samples is None and not w.prompt.cv and not w.output.cv
    if fixed:
        check_context(m, int(lengths[0]), f"--prompt {w.prompt.mean:,.0f} + --output {w.output.mean:,.0f}")
    else:
        check_context(m, int(lengths.mean()), "the mean request (prompt + output)")
    return float(np.mean(lengths > limit[0]))


def _simulate_winner(grid: Grid, i: int, w: Workload, t: Targets, n: int = 2000) -> dict:
    """Re-check the winner with the discrete-event simulation: one replica's share of the arrivals (round-robin
    of the trace, or Poisson at rate / replicas)."""
    from aiinfra.serving.simulate import simulate

    c = grid.cols
    cfg = grid.configs[int(c["cfg"][i])]
    reps = int(c["replicas"][i])
    if w.arrivals is not None:
        arrivals = w.arrivals[::reps]
        prompts = w.prompt.samples[::reps]
        outputs = w.output.samples[::reps]
    else:
        arrivals, prompts, outputs = None, w.prompt.draw(n, seed=11), w.output.draw(n, seed=12)
    sim = simulate(cfg, rate=w.rate / reps, prompts=prompts, outputs=outputs, slots=int(c["slots"][i]),
                   arrivals=arrivals)
    return {"requests": int(len(prompts)), "ttft_ms": round(sim.percentile("ttft", t.q) * 1e3, 2),
            "tpot_ms": round(sim.percentile("tpot", t.q) * 1e3, 2), "percentile": t.percentile,
            "arrivals": "trace (round-robin share)" if w.arrivals is not None else "Poisson"}


def _winner_terms(grid: Grid, i: int, w: Workload, t: Targets) -> list[Term]:
    c = grid.cols
    cfg = grid.configs[int(c["cfg"][i])]
    ttft = Term(f"TTFT {t.percentile}", float(c["ttft"][i]), "s",
                "slot wait (Erlang C) + prefill queue (M/G/1) + prefill + chunked-prefill decode steps",
                {"prefill (s)": float(c["pf"][i]), "decode step (s)": float(c["step"][i]),
                 "concurrency": float(c["concurrency"][i]), "slots": float(c["slots"][i])},
                {"queue": "Erlang C / Pollaczek–Khinchine; validated against serving/simulate.py"})
    tpot = Term(f"TPOT {t.percentile}", float(c["tpot"][i]), "s",
                "decode step at the steady concurrency + prefills landing in a request's decode steps",
                {"decode step (s)": float(c["step"][i]), "concurrency": float(c["concurrency"][i]),
                 "weights per GPU (B)": cfg.dec["w"], "KV per sequence per GPU (B)": cfg.dec["kv_seq"]},
                {cfg.gpu.key: cfg.gpu.source})
    out_mean = float(w.output.draw(seed=1).mean())
    cost = Term("cost per 1M tokens", float(c["usd_per_1m"][i]), "USD",
                "GPUs · $/GPU-hour / (rate · 3600 · (prompt + output)) · 1e6",
                {"GPUs": float(c["gpus"][i]), "$/GPU-hour": cfg.price, "rate": w.rate,
                 "prompt": float(w.prompt.draw().mean()), "output": out_mean})
    return [ttft, tpot, cost]


class InferFacts(Facts):
    """`aiinfra infer`: one batch on one replica, or (recommend) every GPU ranked for the workload."""

    model: str
    ranking: list[dict] | None = None


@command("infer", facts=InferFacts)
def infer(m: ModelSpec, g: GpuSpec, *, prompt: int, output: int, batch: int = 1, tp: int = 1, quant: str = "bf16",
          kv_dtype: str = "bf16", prices: dict[str, float] | None = None, catalog_prices: bool = False,
          recommend: bool = False, engine: str | None = None) -> Result:
    """TTFT (compute-bound prefill), TPOT (bandwidth-bound decode), tokens/s per GPU and $ per 1M tokens for one
    replica; with `recommend`, every catalog GPU ranked for the workload (cost only among priced GPUs)."""
    from aiinfra.catalog.prices import gpu_hour_price
    from aiinfra.perf.inference import inference_perf
    from aiinfra.plan.recommend import inference_recommendation

    check_context(m, prompt + output, f"--prompt {prompt:,} + --output {output:,}")
    if recommend:
        res = inference_recommendation(m, prompt=prompt, output=output, batch=batch, quant=quant, prices=prices,
                                       catalog_prices=catalog_prices)
        res.facts.setdefault("model", m.name)
        return res
    p = gpu_hour_price(g.key, given=prices, use_catalog=catalog_prices)
    res = inference_perf(m, g, prompt=prompt, output=output, batch=batch, tp=tp, quant=quant, kv_dtype=kv_dtype,
                         price_per_gpu_hour=p.usd_per_gpu_hour if p else None, engine=engine)
    res.facts.setdefault("model", m.name)
    if p is not None:
        res.assumptions.append(f"price of {p.assumption()}")
    return res


GPU_REQUESTS = ("device-plugin", "dra")  # how the manifests' pods ask for GPUs (serving.k8s)


def check_gpu_request(value: str) -> str:
    if value not in GPU_REQUESTS:
        raise SpecError(f"--gpu-request must be device-plugin or dra, got '{value}'")
    return value


def winner_manifests(result: Result, m: ModelSpec, *, engine: str, gpu_request: str) -> list[dict]:
    """The Kubernetes manifests of serve_plan's winner (serving.k8s), adding to `result`'s warnings the Secrets to
    create and what the engine's manifests leave out."""
    from aiinfra.serving.k8s import manifests, secrets_to_create

    winner = result.facts["winner"]
    docs = manifests(winner, model_name=m.name, hf_id=hf_id(m), engine=engine, gpu_request=gpu_request)
    result.warnings.extend(secrets_to_create(docs))
    if engine == "tensorrt-llm" and winner["mode"] != "aggregated":
        result.warnings.append("TensorRT-LLM's prefill/decode roles are not rendered: each role's pods run an "
                               "aggregated trtllm-serve; use --no-disagg, or vLLM/SGLang, for disaggregated manifests")
    return docs

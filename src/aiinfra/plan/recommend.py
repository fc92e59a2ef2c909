"""Which GPU to buy or rent for a job: every catalog GPU ranked by time and by cost.

Training: the full layout search (plan.search) on each GPU type at the same GPU count.
Inference: the smallest TP that holds the model and the batch, then tokens/s per GPU and cost
per 1M output tokens (perf.inference).

Prices: the caller's ($/GPU-hour per GPU key, `--price`) and, only with `catalog_prices=True`
(`--catalog-prices`), the catalog's price for the rest: `catalog.prices.gpu_hour_price`, the same
lookup `aiinfra tco` uses, so a GPU costs the same in plan, infer and tco. "Best by cost" ranks only
priced GPUs; each row names its price's source and `price_assumptions(rows)` lists them for the
Result's assumptions.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aiinfra.catalog.gpus import all_gpus
from aiinfra.catalog.prices import price_table
from aiinfra.errors import AiinfraError
from aiinfra.explain import Result
from aiinfra.perf.host import check_cuda_graph_scope
from aiinfra.perf.inference import inference_perf
from aiinfra.plan.search import Options, plan
from aiinfra.sizing.recompute import check_recompute_modules
from aiinfra.specs import GpuSpec, ModelSpec


def _prices(given: dict[str, float] | None, use_catalog: bool, gpus: list[GpuSpec]) -> dict[str, tuple[float, str]]:
    """{gpu key: ($/GPU-hour, source)} from the one price lookup on the ground floor."""
    table = price_table([g.key for g in gpus], given, use_catalog)
    return {k: (p.usd_per_gpu_hour, p.source) for k, p in table.items()}


def price_assumptions(rows: list[dict]) -> list[str]:
    """One line per price a ranking used: the GPU, the figure and where it came from."""
    out = []
    for r in rows:
        if r.get("usd_per_gpu_hour") is not None:
            out.append(f"price of {r['gpu']}: ${r['usd_per_gpu_hour']:,.4g}/GPU-h, {r['price_source']}")
    return out


def _needs_nvlink(g: GpuSpec, tp: int) -> str:
    """What TP across `tp` GPUs runs over on this GPU's system (the catalog's scale-up link and domain)."""
    if tp <= 1:
        return "no (TP = 1)"
    link, domain = g.scaleup_link, g.scaleup_domain or 1
    if link in ("nvlink-switch", "infinity-fabric") and tp <= domain:
        return f"yes: TP{tp} over {g.scaleup_name}"
    if link == "nvlink-bridge" and tp <= domain:
        return f"TP{tp} needs {g.scaleup_name}"
    if domain > 1:
        return f"TP{tp} crosses {g.scaleup_name} into PCIe or the network: slow"
    return f"TP{tp} over {g.scaleup_name}: slow"


REFINE = 3  # GPU types given the full search after the coarse pass, by time and by cost each


def coarse_options(opt: Options) -> Options:
    """A subset of `opt`'s space that still holds the usual winners: no offload, whole-stage recompute,
    power-of-two micro-batches up to 8 and interleaves up to 4 (where the caller left them to the search)."""
    return replace(opt, offloads=tuple(o for o in opt.offloads if o == 0) or opt.offloads[:1],
                   recompute_fractions=(1.0,),
                   micro_batches=opt.micro_batches or (1, 2, 4, 8),
                   interleaves=opt.interleaves or (1, 2, 4))


def _recommend_row(m: ModelSpec, g: GpuSpec, gpus: int, global_batch: int, seq: int, tokens: float | None,
                   priced_at: dict, opt: Options, search: str) -> dict:
    price = priced_at.get(g.key, (None, ""))
    try:
        r = plan(m, g, gpus, global_batch=global_batch, seq=seq, tokens=tokens, price_per_gpu_hour=price[0],
                 options=opt, top=1)
    except AiinfraError as e:
        return {"gpu": g.key, "fits": False, "why": str(e), "search": search}
    w = r.top[0]
    return {"gpu": g.key, "fits": True, "layout": w["layout"], "mb": w["mb"], "vp": w["vp"],
            "recompute": w["recompute"], "zero": w["zero"], "offload": w["offload"], "tokens_per_s": w["tokens_per_s"],
            "mfu": w["mfu"], "memory_gb": w["memory_gb"], "days": w.get("days"),
            "cost_usd": w.get("cost_usd"), "usd_per_gpu_hour": price[0], "price_source": price[1],
            "nvlink": _needs_nvlink(g, w["tp"]), "form_factor": g.form_factor, "search": search,
            "candidates": r.candidates}


def recommend_training(m: ModelSpec, gpus: int, *, global_batch: int, seq: int, tokens: float | None = None,
                       prices: dict[str, float] | None = None, options: Options | None = None,
                       candidates: list[GpuSpec] | None = None,
                       catalog_prices: bool = False) -> tuple[list[dict], list[str]]:
    """One row per GPU type: best layout, tokens/s, days and cost for the budget; plus notes.

    Two passes keep this fast: every GPU type is searched over a coarse subset of the space (no offload,
    whole-stage recompute, power-of-two micro-batches and interleaves), then the REFINE fastest and the
    REFINE cheapest of them, and any type the coarse pass could not fit, get the full search. The coarse
    space is a subset of the full one, so a coarse row's speed is a lower bound on that GPU's full answer;
    each row says which search produced it."""
    pool = candidates or all_gpus()
    priced_at = _prices(prices, catalog_prices, pool)
    opt = options or Options()
    check_recompute_modules(m, opt.recompute_modules)
    check_cuda_graph_scope(m, opt.cuda_graph_scope, opt.recompute_modules)
    coarse_opt = coarse_options(opt)
    coarse: dict[str, dict] = {}
    for g in pool:
        coarse[g.key] = _recommend_row(m, g, gpus, global_batch, seq, tokens, priced_at, coarse_opt, "coarse")
    ok = [r for r in coarse.values() if r["fits"]]
    refine = {r["gpu"] for r in sorted(ok, key=lambda r: -r["tokens_per_s"])[:REFINE]}
    refine |= {r["gpu"] for r in sorted((r for r in ok if r.get("cost_usd") is not None),
                                        key=lambda r: r["cost_usd"])[:REFINE]}
    refine |= {k for k, r in coarse.items() if not r["fits"]}
    rows = [(_recommend_row(m, g, gpus, global_batch, seq, tokens, priced_at, opt, "full") if g.key in refine
             else coarse[g.key]) for g in pool]
    ok = [r for r in rows if r["fits"]]
    ok.sort(key=lambda r: -r["tokens_per_s"])
    for rank, r in enumerate(ok, 1):
        r["rank_time"] = rank
    priced = sorted((r for r in ok if r.get("cost_usd") is not None), key=lambda r: r["cost_usd"])
    for rank, r in enumerate(priced, 1):
        r["rank_cost"] = rank
    notes = []
    if ok:
        notes.append(f"fastest: {ok[0]['gpu']} ({ok[0]['layout']}); "
                     + ("its TP spans GPUs, so it needs an NVLink/SXM system" if ok[0]["nvlink"].startswith("yes") else
                        "no tensor parallelism needed"))
    if priced:
        c = priced[0]
        unpriced = [r["gpu"] for r in ok if r.get("cost_usd") is None]
        notes.append(f"cheapest for the budget among priced GPUs: {c['gpu']} (${c['cost_usd']:,.0f} at "
                     f"${c['usd_per_gpu_hour']:.2f}/GPU-h, {c['price_source']})"
                     + (f"; not priced, ranked by time only: {', '.join(unpriced)} (give --price, or --catalog-prices)"
                        if unpriced else ""))
    elif not tokens:
        notes.append("give --tokens (a budget) to rank by cost")
    else:
        notes.append("no GPU has a price: ranked by time only (give --price GPU=$/h, or --catalog-prices)")
    if any(r["search"] == "coarse" for r in ok):
        notes.append(f"full search for {', '.join(r['gpu'] for r in ok if r['search'] == 'full')}; the others from a "
                     "coarse pass (no offload, whole-stage recompute, micro-batches 1-8, interleave 1-4), so their "
                     "tokens/s are lower bounds")
    return ok + [r for r in rows if not r["fits"]], notes


def recommend_inference(m: ModelSpec, *, prompt: int, output: int, batch: int, quant: str = "bf16",
                        prices: dict[str, float] | None = None,
                        candidates: list[GpuSpec] | None = None,
                        catalog_prices: bool = False) -> tuple[list[dict], list[str]]:
    """One row per GPU type at the smallest TP (1, 2, 4, 8) that serves the batch; ranked by cost or tokens/s."""
    pool = candidates or all_gpus()
    priced_at = _prices(prices, catalog_prices, pool)
    rows = []
    for g in pool:
        row = {"gpu": g.key, "fits": False, "form_factor": g.form_factor}
        for tp in (1, 2, 4, 8):
            if m.heads % tp:
                continue
            try:
                r = inference_perf(m, g, prompt=prompt, output=output, batch=batch, tp=tp, quant=quant,
                                   price_per_gpu_hour=priced_at.get(g.key, (None, ""))[0])
            except AiinfraError as e:
                row["why"] = str(e)
                continue
            row.update(fits=True, tp=tp, batch=r.facts["batch_served"], ttft_s=r.term("TTFT").value,
                       tpot_s=r.term("TPOT").value, tokens_per_s_gpu=r.term("output tokens/s per GPU").value,
                       nvlink=_needs_nvlink(g, tp))
            if g.key in priced_at:
                row["usd_per_1m"] = r.term("cost per 1M output tokens").value
                row["usd_per_gpu_hour"], row["price_source"] = priced_at[g.key]
            row.pop("why", None)
            break
        rows.append(row)
    ok = [r for r in rows if r["fits"]]
    # Priced GPUs by cost per token first; the rest after them by throughput.
    ok.sort(key=lambda r: (0, r["usd_per_1m"]) if "usd_per_1m" in r else (1, -r["tokens_per_s_gpu"]))
    notes = []
    if ok:
        best = ok[0]
        unpriced = [r["gpu"] for r in ok if "usd_per_1m" not in r]
        if "usd_per_1m" in best:
            notes.append(f"best by cost per 1M tokens: {best['gpu']} at TP{best['tp']} "
                         f"(${best['usd_per_1m']:.3f}, {best['price_source']}), among priced GPUs only"
                         + (f"; not priced, ranked after them by tokens/s: {', '.join(unpriced)} "
                            "(give --price, or --catalog-prices)" if unpriced else ""))
        else:
            notes.append(f"best by tokens/s per GPU: {best['gpu']} at TP{best['tp']} "
                         "(no GPU has a price; give --price GPU=$/h, or --catalog-prices, to rank by cost)")
        if best["form_factor"] == "pcie" and best["tp"] == 1:
            notes.append(f"{best['gpu']} is a PCIe card serving one replica per GPU: no NVLink needed, so PCIe "
                         "inference cards are the better buy here")
        elif best["tp"] > 1:
            notes.append(f"TP{best['tp']} splits every layer across GPUs: choose an NVLink/SXM system")
    return ok + [r for r in rows if not r["fits"]], notes


class InferenceQuery(BaseModel):
    """`aiinfra infer` options with their bounds, shared by the CLI and the web form/API."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = Field(max_length=200)
    gpu: str = Field("h100-sxm", max_length=80)
    prompt: int = Field(2048, ge=1, le=10_000_000)
    output: int = Field(256, ge=1, le=10_000_000)
    batch: int = Field(1, ge=1, le=1_000_000)
    tp: int = Field(1, ge=1, le=1024)
    quant: Literal["bf16", "fp16", "fp8", "int8", "int4", "fp4"] = "bf16"
    kv_dtype: Literal["bf16", "fp16", "fp8", "int8"] = "bf16"
    price: list[str] = Field([], max_length=64)
    catalog_prices: bool = False


def inference_recommendation(m: ModelSpec, *, prompt: int, output: int, batch: int, quant: str = "bf16",
                             prices: dict[str, float] | None = None, catalog_prices: bool = False,
                             candidates: list[GpuSpec] | None = None) -> Result:
    """`aiinfra infer --recommend` as one Result: the ranking, the best GPU, and every price's source."""
    rows, notes = recommend_inference(m, prompt=prompt, output=output, batch=batch, quant=quant, prices=prices,
                                      candidates=candidates, catalog_prices=catalog_prices)
    ok = [r for r in rows if r["fits"]]
    facts: dict = {"ranking": rows, "best_gpu": ok[0]["gpu"] if ok else None,
                   "ranked_by": "cost per 1M tokens" if ok and "usd_per_1m" in ok[0] else "tokens/s per GPU"}
    assumptions = price_assumptions(rows) or ["no GPU has a price; the ranking is by tokens/s per GPU"]
    return Result(f"GPU recommendation: serving {m.name} ({quant}), {prompt}→{output} tokens, batch {batch}", [],
                  facts, notes, assumptions)

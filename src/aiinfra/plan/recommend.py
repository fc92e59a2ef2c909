"""Which GPU to buy or rent for a job: every catalog GPU ranked by time and by cost.

Training: the full layout search (plan.search) on each GPU type at the same GPU count.
Inference: the smallest TP that holds the model and the batch, then tokens/s per GPU and cost
per 1M output tokens (perf.inference). Prices: the caller's ($/GPU-hour per GPU key) where given,
else the cheapest dated on-demand cloud offer for that GPU in catalog/data/prices.yaml (read as
data; training only considers offers with a scale-out fabric). Each row names the offer it used.
"""

from __future__ import annotations

from aiinfra.catalog.gpus import all_gpus
from aiinfra.catalog.loader import default_catalog
from aiinfra.errors import AiinfraError
from aiinfra.perf.inference import inference_perf
from aiinfra.plan.search import Options, plan
from aiinfra.specs import GpuSpec, ModelSpec


def catalog_prices(need_fabric: bool) -> dict[str, tuple[float, str]]:
    """{gpu key: ($/GPU-hour, 'offer (observed date)')}: the cheapest on-demand cloud offer per GPU."""
    cat = default_catalog()
    best: dict[str, tuple[float, str]] = {}
    for key, e in cat.table("prices").items():
        if e.get("type") != "cloud" or not e.get("gpu") or e.get("on_demand") is None:
            continue
        if need_fabric and e.get("fabric") == "none":
            continue
        try:
            g = cat.resolve("gpus", str(e["gpu"]))
            per_gpu = float(e["on_demand"]) / (1 if e.get("unit") == "gpu-hour" else float(e.get("gpus") or 1))
        except (AiinfraError, TypeError, ValueError, ZeroDivisionError):
            continue
        if per_gpu > 0 and (g not in best or per_gpu < best[g][0]):
            best[g] = (per_gpu, f"{key} on-demand, observed {e.get('observed', 'undated')}")
    return best


def _prices(given: dict[str, float] | None, need_fabric: bool) -> dict[str, tuple[float, str]]:
    out = catalog_prices(need_fabric)
    out.update({k: (v, "given with --price") for k, v in (given or {}).items()})
    return out


def _needs_nvlink(g: GpuSpec, tp: int) -> str:
    if tp <= 1:
        return "no (TP = 1)"
    if g.form_factor == "pcie" and not g.nvlink_gbps:
        return f"TP{tp} over PCIe (no NVLink): slow"
    if g.form_factor == "pcie":
        return (f"TP{tp} needs NVLink-bridged card pairs" if tp == 2 else
                f"TP{tp} crosses PCIe beyond NVLink-bridged pairs: slow; an SXM system fits better")
    return f"yes: TP{tp} over NVLink/NVSwitch ({g.form_factor.upper()})"


def recommend_training(m: ModelSpec, gpus: int, *, global_batch: int, seq: int, tokens: float | None = None,
                       prices: dict[str, float] | None = None, options: Options | None = None,
                       candidates: list[GpuSpec] | None = None) -> tuple[list[dict], list[str]]:
    """One row per GPU type: best layout, tokens/s, days and cost for the budget; plus notes."""
    priced_at = _prices(prices, need_fabric=gpus > 8)
    rows = []
    for g in candidates or all_gpus():
        price = priced_at.get(g.key, (None, ""))
        try:
            r = plan(m, g, gpus, global_batch=global_batch, seq=seq, tokens=tokens, price_per_gpu_hour=price[0],
                     options=options, top=1)
        except AiinfraError as e:
            rows.append({"gpu": g.key, "fits": False, "why": str(e)})
            continue
        w = r.top[0]
        rows.append({"gpu": g.key, "fits": True, "layout": w["layout"], "tokens_per_s": w["tokens_per_s"],
                     "mfu": w["mfu"], "memory_gb": w["memory_gb"], "days": w.get("days"),
                     "cost_usd": w.get("cost_usd"), "usd_per_gpu_hour": price[0], "price_source": price[1],
                     "nvlink": _needs_nvlink(g, w["tp"]), "form_factor": g.form_factor})
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
        notes.append(f"cheapest for the budget: {c['gpu']} (${c['cost_usd']:,.0f} at ${c['usd_per_gpu_hour']:.2f}/GPU-h, "
                     f"{c['price_source']}); GPUs without a price are ranked by time only")
    elif not tokens:
        notes.append("give --tokens (a budget) to rank by cost")
    return ok + [r for r in rows if not r["fits"]], notes


def recommend_inference(m: ModelSpec, *, prompt: int, output: int, batch: int, quant: str = "bf16",
                        prices: dict[str, float] | None = None,
                        candidates: list[GpuSpec] | None = None) -> tuple[list[dict], list[str]]:
    """One row per GPU type at the smallest TP (1, 2, 4, 8) that serves the batch; ranked by cost or tokens/s."""
    priced_at = _prices(prices, need_fabric=False)
    rows = []
    for g in candidates or all_gpus():
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
            row.update(fits=True, tp=tp, batch=r.facts["batch served"], ttft_s=r.term("TTFT").value,
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
        basis = "cost per 1M tokens" if "usd_per_1m" in best else "tokens/s per GPU (give --price to rank by cost)"
        notes.append(f"best by {basis}: {best['gpu']} at TP{best['tp']}")
        if best["form_factor"] == "pcie" and best["tp"] == 1:
            notes.append(f"{best['gpu']} is a PCIe card serving one replica per GPU: no NVLink needed, so PCIe "
                         "inference cards are the better buy here")
        elif best["tp"] > 1:
            notes.append(f"TP{best['tp']} splits every layer across GPUs: choose an NVLink/SXM system")
    return ok + [r for r in rows if not r["fits"]], notes

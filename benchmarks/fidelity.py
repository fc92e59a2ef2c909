"""Step-time fidelity against published training results (catalog/data/training_validation.yaml).

Prints the fitted constants (framework_efficiency; the MoE host time per layer, with its fit row; each power-limited
GPU's sustained compute fraction, with its fit rows; each unfused stack's elementwise factor, with its fit rows), every row
(published, predicted, error, the layout evaluated), then per table the mean and
max |error|, then a leave-one-source-out figure: the one end-to-end constant (framework_efficiency, per
architecture family where the catalog fits one) refitted without that source, and the error on the held-out
source with it; then where each published
split ranks in the full search and, in numbers, why the model prefers #1.
Run: PYTHONPATH=src python benchmarks/fidelity.py
"""

from __future__ import annotations

from aiinfra.catalog.gpus import gpu
from aiinfra.perf.stacks import stack
from aiinfra.perf.training import fitted_architectures, framework_efficiency
from aiinfra.plan import fidelity, validation


def main() -> None:
    preds = fidelity.predict_all()
    fw, _ = framework_efficiency()
    own = ", ".join(f"{a} {v:.3f}" for a, (v, _) in fitted_architectures().items())
    print(f"framework_efficiency (catalog, fitted on the rows marked fit): default {fw:.3f}; {own}")
    host_fit = {r["key"] for r in fidelity.moe_host_fit_rows().values()}
    mc, (h, st) = stack("megatron-core"), fidelity.solve_moe_host()
    print(f"MoE host constants (stacks.yaml megatron-core moe_host): {mc.moe_module_s * 1e3:.2f} ms per linear module "
          f"of a MoE layer (forward + backward), "
          f"{mc.moe_stall_s * 1e3:.2f} ms of host time after each forward sync (the GPU idles it less the dispatch "
          f"issued first), fitted on {', '.join(sorted(host_fit))}; "
          f"solved again here: {h:.2f}, {st:.2f}")
    for key, fit in sorted(fidelity.sustained_clock_fit_rows().items()):
        print(f"sustained compute fraction (gpus.yaml {key}): {gpu(key).sustained_compute_fraction:.2f}, fitted on "
              f"{', '.join(sorted(r['key'] for r in fit))}; solved again here: {fidelity.solve_sustained_clock(key):.3f}")
    for key, fit in sorted(fidelity.elementwise_fit_rows().items()):
        print(f"elementwise factor (stacks.yaml {key}): {stack(key).elementwise_factor:.2f} of the fused traffic, fitted "
              f"on {', '.join(sorted(r['key'] for r in fit))}; solved again here: "
              f"{fidelity.solve_elementwise_factor(key):.3f}")
    fitted = {r["key"] for r in validation.rows() if validation.fitted_on(r)}
    for p in preds:
        mark = "fit" if p.key in fitted else "out"
        print(f"  [{mark}] {p.key:24s} {p.metric:14s} published {p.published:>9.3f}  predicted {p.predicted:>9.3f}  "
              f"error {p.error:+6.1%}  {p.layout}")
    print("per table (mean |error|, max |error|):")
    for table, (mean, worst, n) in fidelity.table_errors(preds).items():
        print(f"  {table:42s} mean {mean:5.1%}  max {worst:5.1%}  ({n} rows)")
    print("leave one source out (framework_efficiency refitted on the other sources):")
    for table, (fw_t, mean, worst) in fidelity.leave_one_source_out().items():
        print(f"  {table:42s} refit {fw_t:.3f}  held-out mean {mean:5.1%}  max {worst:5.1%}")
    print("published split (TP, PP, CP, DP) ranked in the full search, and why #1 beats it:")
    top3 = 0
    ranked = [fidelity.published_rank(r) for r in fidelity.rows() if r["metric"] != "layer_ms"]
    for x in ranked:
        why = "; ".join(x["why"]) or "-"
        if x["rank"] is None:  # a schedule the search cannot run: the reason, no rank
            print(f"  {x['key']:24s} {why}")
            continue
        top3 += x["rank"] <= 3
        print(f"  {x['key']:24s} #{x['rank']:<3d} of {x['layouts']:4d}  #1 {x['best']:22s} {x['speedup_of_best']:.3f}x  {why}")
    unranked = sum(x["rank"] is None for x in ranked)
    print(f"  published split in the top 3: {top3} of {len(ranked) - unranked} ranked rows"
          + (f" ({unranked} not ranked, above)" if unranked else ""))


if __name__ == "__main__":
    main()

"""Step-time fidelity against published training results (catalog/data/training_validation.yaml).

Prints every row (published, predicted, error, the layout evaluated), then per table the mean and
max |error|, then a leave-one-source-out figure: the one end-to-end constant (framework_efficiency)
refitted without that source, and the error on the held-out source with it.
Run: PYTHONPATH=src python benchmarks/fidelity.py
"""

from __future__ import annotations

from aiinfra.perf.training import framework_efficiency
from aiinfra.plan import fidelity


def main() -> None:
    preds = fidelity.predict_all()
    fw, _ = framework_efficiency()
    print(f"framework_efficiency (catalog, fitted on the rows marked fit): {fw:.3f}")
    for p in preds:
        mark = "fit" if p.fit else "out"
        print(f"  [{mark}] {p.key:24s} {p.metric:14s} published {p.published:>9.3f}  predicted {p.predicted:>9.3f}  "
              f"error {p.error:+6.1%}  {p.layout}")
    print("per table (mean |error|, max |error|):")
    for table, (mean, worst, n) in fidelity.table_errors(preds).items():
        print(f"  {table:42s} mean {mean:5.1%}  max {worst:5.1%}  ({n} rows)")
    print("leave one source out (framework_efficiency refitted on the other sources):")
    for table, (fw_t, mean, worst) in fidelity.leave_one_source_out().items():
        print(f"  {table:42s} refit {fw_t:.3f}  held-out mean {mean:5.1%}  max {worst:5.1%}")


if __name__ == "__main__":
    main()

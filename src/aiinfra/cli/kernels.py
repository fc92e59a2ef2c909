"""`aiinfra kernels --gpu GPU`: measure GEMM and flash-attention throughput on this machine's GPU (or read a
measurement file with --from), write the kernels.yaml row it gives (--out, for `aiinfra --catalog FILE plan …`)
and show how far the catalog's figures are from it. Logic lives in `perf.commands.kernels`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aiinfra.cli.output import ExplainOpt, Format, FormatOpt, emit, err_console

if TYPE_CHECKING:
    from rich.table import Table

    from aiinfra.explain import Result


def _table(r: Result) -> Table:
    from rich.table import Table

    f = r.facts
    t = Table(title=r.title, caption=(
        f"mean |catalog/measured − 1|: GEMM {_pct(f['gemm_deviation']['value'])}, "
        f"attention {_pct(f['attention_deviation']['value'])}"))
    for col in ("kernel", "shape", "catalog ms", "measured ms", "catalog/measured"):
        t.add_column(col, justify="left" if col in ("kernel", "shape") else "right")
    for c in f["comparison"]:
        t.add_row(c["kernel"], c["shape"], f"{c['catalog_time']['value'] * 1e3:,.4f}",
                  f"{c['measured_time']['value'] * 1e3:,.4f}",
                  f"{c['catalog_over_measured']:.3f}")
    return t


def _pct(v: float | None) -> str:
    return "not measured" if v is None else f"{v:.1%}"


def kernels(
    gpu: Annotated[str, typer.Option(help="Catalog GPU the measurements are of (its peak turns times into efficiencies).")],
    source: Annotated[Path | None, typer.Option("--from", help="Fit a saved measurement file (YAML/JSON, kind: kernel-measurements) instead of measuring.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the fitted kernels.yaml row as a catalog file, for aiinfra --catalog FILE plan ….")] = None,
    save: Annotated[Path | None, typer.Option("--save-measurements", help="Also write the raw measurements (to fit again later with --from).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Measure a smaller grid (a third of the GEMM shapes, two attention lengths).")] = False,
    fmt: FormatOpt = Format.table,
    explain: ExplainOpt = False,
) -> None:
    """Measure GEMM and flash-attention efficiency on this GPU, fit a kernels.yaml row, compare the catalog's."""
    import yaml

    from aiinfra.catalog.gpus import gpu as lookup_gpu
    from aiinfra.perf.commands import kernels as kernels_command
    from aiinfra.safeio import expect_mapping, load_data_file, write_atomic

    spec = lookup_gpu(gpu)
    doc = None
    if source is not None:
        doc = expect_mapping(load_data_file(source, what="measurement file"), str(source))
    result = kernels_command(spec, doc, source=str(source or ""), quick=quick,
                             progress=lambda msg: err_console.print(f"[dim]{msg}[/]"))
    if save is not None:
        write_atomic(save, yaml.safe_dump(result.facts["measurements"], sort_keys=False), what="measurement file")
    if out is not None:
        write_atomic(out, yaml.safe_dump(result.facts["catalog_file"], sort_keys=False), what="catalog file")
    emit(result, fmt, explain, table=_table)

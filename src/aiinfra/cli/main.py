"""Entry point: a lazy typer app (one module per command, imported only when that command runs or
shows its help) and the mapping of errors to one line and exit 2.

`aiinfra --help` lists the commands from the static table below, so it imports no command module;
`aiinfra tco …` imports cli/tco.py alone. Add a command with one row in `COMMANDS`.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from aiinfra.errors import AiinfraError

try:  # typer >= 0.24 vendors its own click; older typer uses click itself.
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover
    from click import exceptions as cx


# (name, module, attribute, one-line help). An attribute named `app` is a typer sub-app (a group);
# anything else is a command function. Help lists commands in this order: plan → partition →
# provision → observe → shells. The one-line help repeats the first line of the command's docstring.
COMMANDS: list[tuple[str, str, str, str]] = [
    ("plan", "aiinfra.cli.plan", "command", "Search every TP/PP/CP/EP/DP layout, micro-batch, recompute, ZeRO and interleave; rank by time or cost."),
    ("infer", "aiinfra.cli.infer", "command", "Prefill (compute-bound) and decode (bandwidth-bound) latency with calibrated efficiencies."),
    ("kernels", "aiinfra.cli.kernels", "kernels", "Measure GEMM and flash-attention efficiency on this GPU, fit a kernels.yaml row, compare the catalog's."),
    ("serve-plan", "aiinfra.cli.serve_plan", "command", "Size an inference deployment for a request rate and TTFT/TPOT targets; rank by $ per 1M tokens."),
    ("size", "aiinfra.cli.size", "app", "Model memory for training and inference, and which GPUs fit it."),
    ("design", "aiinfra.cli.design", "design", "Design a GPU cluster: fabric, storage, management, racks, power and a BOM with reasons."),
    ("tco", "aiinfra.cli.tco", "tco", "Cost per GPU-hour owned vs rented, breakeven utilization and months, hybrid baseline, recommendation."),
    ("mig", "aiinfra.cli.mig", "app", "MIG profiles, valid geometries, geometry checks and exact packing plans."),
    ("k8s", "aiinfra.cli.k8s", "app", "Kubernetes manifests for GPU sharing, rollout runbooks and a config linter."),
    ("doctor", "aiinfra.cli.doctor", "doctor", "Check drivers, GPU health, NVLink/PCIe, InfiniBand, GPUDirect modules and the fabric manager."),
    ("exporter", "aiinfra.cli.exporter", "exporter", "Serve GPU metrics exactly as dcgm-exporter names and labels them, plus aiinfra_ health metrics."),
    ("analyze", "aiinfra.cli.analyze", "analyze_cmd", "Fleet report from Prometheus: utilization, idle/stranded GPUs and their cost, OOM risk, throttling, XIDs, ECC."),
    ("chargeback", "aiinfra.cli.chargeback", "chargeback_cmd", "GPU-hours allocated, busy, idle-but-held and stranded, with $ and kWh, by namespace, pod and job."),
    ("rules", "aiinfra.cli.rules", "rules_cmd", "Alerting and recording rules: exporter down, fatal/recurring XIDs, ECC, row remap, throttling, OOM risk, stranded GPUs, NVLink/PCIe."),
    ("dashboard", "aiinfra.cli.dashboard", "dashboard_cmd", "Grafana dashboard for dcgm-exporter / aiinfra exporter data: import it, pick the Prometheus data source."),
    ("top", "aiinfra.cli.top", "top_cmd", "Live GPU table in the style of nvitop. Default source: the local GPUs through NVML."),
    ("serve", "aiinfra.cli.serve", "serve", "Serve the web app: Size, Plan, Infer, Serve, Design, TCO, MIG and Fleet pages, and the JSON API at /docs."),
    ("catalog", "aiinfra.cli.catalog_cmd", "app", "Browse the dated catalog: GPUs and models."),
    ("schema", "aiinfra.cli.schema_cmd", "schema", "JSON Schema of a command's --format json output (the envelope and its facts)."),
]
_BY_NAME = {row[0]: row for row in COMMANDS}


def load_command(name: str) -> Any:
    """The click command behind `aiinfra NAME`, built from its module (imported here, not before)."""
    _, module, attr, short = _BY_NAME[name]
    obj = getattr(importlib.import_module(module), attr)
    if isinstance(obj, typer.Typer):
        obj._add_completion = False  # the sub-app is not the program: no --install-completion of its own
        cmd = typer.main.get_command(obj)
    else:
        sub = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
        sub.command(name)(obj)
        cmd = typer.main.get_command(sub)
    cmd.name = name
    cmd.short_help = short
    _plain_help(cmd)
    return cmd


def _plain_help(cmd: Any) -> None:
    """Help as plain click text: typer's rich help imports ~0.1 s of modules (markdown, tables) for
    every `--help`, more than the whole start-up budget allows."""
    if hasattr(cmd, "rich_markup_mode"):
        cmd.rich_markup_mode = None
    for sub in getattr(cmd, "commands", {}).values():
        _plain_help(sub)


class LazyGroup(TyperGroup):
    """A group whose commands are imported on first use; its help lists them from `COMMANDS`."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [row[0] for row in COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in _BY_NAME:
            return None
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if self._listing:  # the group's own help: a stand-in that carries the one-line help
            return TyperCommand(cmd_name, help=_BY_NAME[cmd_name][3], short_help=_BY_NAME[cmd_name][3])
        self.commands[cmd_name] = load_command(cmd_name)
        return self.commands[cmd_name]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="aiinfra",
    cls=LazyGroup,
    rich_markup_mode=None,
    help="Plan, partition, provision and observe GPU infrastructure for AI. Every number explains itself.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global(
    catalog: Annotated[
        list[Path] | None,
        typer.Option("--catalog", help="Extra catalog YAML that adds or overrides entries (repeatable).", envvar="AIINFRA_CATALOG"),
    ] = None,
) -> None:
    # The catalog module (pydantic, YAML) is imported only when a catalog is named or already in use.
    if catalog or "aiinfra.catalog.loader" in sys.modules:
        from aiinfra.catalog.loader import set_user_catalogs

        set_user_catalogs(catalog or [])


INTERNAL_ERROR = 70  # EX_SOFTWARE (sysexits.h): neither success (0), a finding (1) nor bad input (2)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code. Bad input → one line on stderr and 2, never a traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = _explain_level(argv)
    try:
        rv = app(args=argv, prog_name="aiinfra", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except AiinfraError as e:
        _fail(str(e))
        return e.exit_code
    except _validation_error() as e:  # evaluated only when an exception is being matched
        from aiinfra.render import validation_sentence

        _fail(validation_sentence(e.errors()[0]))
        return 2
    except cx.NoArgsIsHelpError as e:
        if e.ctx is not None:
            sys.stdout.write(e.ctx.get_help() + "\n")
        return 0
    except cx.UsageError as e:
        msg = e.format_message().replace("\n", " ")
        cmd = e.ctx.command_path if e.ctx else "aiinfra"
        _fail(f"{msg} (see '{cmd} --help')")
        return 2
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        _fail("aborted")
        return 1
    except cx.ClickException as e:
        _fail(e.format_message())
        return e.exit_code
    except Exception as e:  # a defect, not bad input: one line to report; the traceback only on request
        if os.environ.get("AIINFRA_TRACEBACK"):
            raise
        _fail(f"internal error ({type(e).__name__}: {e}); this is a bug in aiinfra: please report it with the "
              "command line (AIINFRA_TRACEBACK=1 prints the traceback)")
        return INTERNAL_ERROR


def _explain_level(argv: list[str]) -> list[str]:
    """`--explain full` (or `--explain=full`): every level of every explanation. The word is taken out
    here, so each command keeps a plain `--explain` flag."""
    out: list[str] = []
    full = False
    for i, a in enumerate(argv):
        if a == "--":
            out += argv[i:]
            break
        if a in ("--explain=full", "--explain=compact"):
            full = full or a.endswith("full")
            out.append("--explain")
        elif a in ("full", "compact") and out and out[-1] == "--explain":
            full = full or a == "full"
        else:
            out.append(a)
    if full or "aiinfra.cli.output" in sys.modules:
        from aiinfra.cli.output import set_explain_full

        set_explain_full(full)
    return out


class _NeverRaised(Exception):
    pass


def _validation_error() -> type[Exception]:
    """pydantic's ValidationError when pydantic is loaded (nothing else can raise one), without
    importing pydantic for commands that never use it."""
    pd = sys.modules.get("pydantic")
    return pd.ValidationError if pd is not None else _NeverRaised


def _fail(message: str) -> None:
    from aiinfra.render import one_line

    sys.stderr.write(f"error: {one_line(message) if message else 'failed'}\n")


def run() -> None:
    sys.exit(main())

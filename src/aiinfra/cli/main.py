"""Entry point: builds the typer app from one module per command group and maps errors to exit 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from aiinfra.catalog import set_user_catalogs
from aiinfra.cli import analyze, catalog_cmd, dashboard, rules, size, top
from aiinfra.cli import chargeback as chargeback_cmd
from aiinfra.cli import design as design_cmd
from aiinfra.cli import doctor as doctor_cmd
from aiinfra.cli import exporter as exporter_cmd
from aiinfra.cli import infer as infer_cmd
from aiinfra.cli import k8s as k8s_cmd
from aiinfra.cli import mig as mig_cmd
from aiinfra.cli import plan as plan_cmd
from aiinfra.cli import serve_plan as serve_plan_cmd
from aiinfra.cli import tco as tco_cmd
from aiinfra.cli.serve import serve
from aiinfra.errors import AiinfraError

try:  # typer >= 0.24 vendors its own click; older typer uses click itself.
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover
    from click import exceptions as cx

app = typer.Typer(
    name="aiinfra",
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
    set_user_catalogs(catalog or [])


# Help lists commands in this order: plan → partition → provision → observe → shells.
app.command("plan")(plan_cmd.command)
app.command("infer")(infer_cmd.command)
app.command("serve-plan")(serve_plan_cmd.command)
app.add_typer(size.app, name="size")
app.command("design")(design_cmd.design)
app.command("tco")(tco_cmd.tco)
app.add_typer(mig_cmd.app, name="mig")
app.add_typer(k8s_cmd.app, name="k8s")
app.command("doctor")(doctor_cmd.doctor)
app.command("exporter")(exporter_cmd.exporter)
app.command("analyze")(analyze.analyze_cmd)
app.command("chargeback")(chargeback_cmd.chargeback_cmd)
app.command("rules")(rules.rules_cmd)
app.command("dashboard")(dashboard.dashboard_cmd)
app.command("top")(top.top_cmd)
app.command("serve")(serve)
app.add_typer(catalog_cmd.app, name="catalog")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code. Bad input → one line on stderr and 2, never a traceback."""
    try:
        rv = app(args=argv, prog_name="aiinfra", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except AiinfraError as e:
        _fail(str(e))
        return e.exit_code
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        _fail(f"invalid {where}: {err['msg']}" if where else err["msg"])
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


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")


def run() -> None:
    sys.exit(main())

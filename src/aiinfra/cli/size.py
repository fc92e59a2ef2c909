"""`aiinfra size train|infer|fits`: will this model fit, and on how many GPUs of which kind."""

from __future__ import annotations

import typer

app = typer.Typer(help="Model memory for training and inference, and which GPUs fit it.", no_args_is_help=True)

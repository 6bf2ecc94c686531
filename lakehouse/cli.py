"""The ``lakehouse`` command line: the root app; each command group lives in ``lakehouse.commands``."""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.markup import escape

from lakehouse.config import Config, ConfigError, get_config

app = typer.Typer(
    help="An open lakehouse for stock quotes: Iceberg + REST catalog, dlt, dbt, ML, ClickHouse marts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console()
err_console = Console(stderr=True)


def load_or_exit() -> Config:
    """The configuration (telemetry turned off in this process), or exit 2 with the message naming the bad key."""
    try:
        cfg = get_config()
    except ConfigError as exc:
        err_console.print(f"[red]configuration error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    for k, v in cfg.telemetry_env.items():
        os.environ.setdefault(k, v)
    return cfg


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    err_console.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(code)


from lakehouse.commands import register_all  # noqa: E402 - the commands import this module's helpers

register_all(app)

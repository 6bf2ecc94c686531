"""The ``lakehouse`` command line: the root app; each command group lives in ``lakehouse.commands``."""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.markup import escape

from lakehouse.config import Config, ConfigError, get_config


class LakehouseApp(typer.Typer):
    """The root app; a lake that cannot be opened ends any command with its message, not a traceback."""

    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204 - typer's signature
        from lakehouse.lake import LakeUnavailable

        try:
            return super().__call__(*args, **kwargs)
        except LakeUnavailable as exc:
            err_console.print(f"[red]error:[/] {escape(str(exc))}")
            raise SystemExit(1) from exc


app = LakehouseApp(
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

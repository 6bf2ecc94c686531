"""``lakehouse config show``: the effective configuration and where each value came from."""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    """Add the ``config`` sub-app to the root app."""
    config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    @config_app.command("show")
    def show() -> None:
        """Show the effective configuration with the source of each value (secrets masked)."""
        from lakehouse.cli import load_or_exit
        from lakehouse.config import mask

        cfg = load_or_exit()
        table = Table(title=f"config: {cfg.config_file or 'built-in defaults'} · state dir {cfg.home}")
        table.add_column("key")
        table.add_column("value")
        table.add_column("source")
        for key, value in cfg.flat().items():
            table.add_row(key, repr(mask(key, value)), cfg.origin_of(key))
        table.add_row("home", str(cfg.home), "env LAKEHOUSE_HOME" if "LAKEHOUSE_HOME" in os.environ else "default")
        table.add_row("warehouse_uri (derived)", cfg.warehouse_uri, "derived")
        Console().print(table)

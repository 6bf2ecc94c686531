"""CLI command modules. Each module named in COMMAND_MODULES defines ``register(app)`` that adds
its commands or sub-apps to the root typer app; modules not written yet are skipped."""

from __future__ import annotations

import importlib

import typer

COMMAND_MODULES = ("catalog", "ingest", "transform", "sql", "ml", "clickhouse")


def register_all(app: typer.Typer) -> None:
    """Add every available command module to ``app``."""
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"lakehouse.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"lakehouse.commands.{name}":
                continue
            raise
        module.register(app)

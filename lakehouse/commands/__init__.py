"""The CLI's command groups, one module each; every module defines ``register(app)``."""

from __future__ import annotations

import typer


def register_all(app: typer.Typer) -> None:
    """Add every command group to the root app."""
    from lakehouse.commands import (
        catalog,
        clickhouse,
        config,
        dashboards,
        ingest,
        ml,
        pipeline,
        report,
        services,
        sql,
        transform,
    )

    for module in (pipeline, services, config, catalog, ingest, transform, ml, sql, clickhouse, report,
                   dashboards):
        module.register(app)

"""``lakehouse transform``: the dbt projects (``lake``: dbt-duckdb features in Iceberg;
``dwh``: dbt-clickhouse marts in ClickHouse)."""

from __future__ import annotations

import typer

transform_app = typer.Typer(help="Run the dbt transformations.", no_args_is_help=True)


@transform_app.command("lake")
def lake(
    full_refresh: bool = typer.Option(False, "--full-refresh", help="Rebuild the Iceberg feature tables "
                                      "from all of raw.quotes instead of only the new trading days."),
    select: list[str] = typer.Option(None, "--select", "-s", help="dbt node selection (repeatable), "
                                     "e.g. stg_quotes, fct_daily_features+, test_type:singular."),
) -> None:
    """dbt build of dbt_lake/: raw.quotes -> stg_quotes -> features.fct_daily_features (Iceberg) + tests."""
    from rich.console import Console
    from rich.markup import escape

    from lakehouse.cli import load_or_exit
    from lakehouse.lake_transform import TransformError, build, print_summary

    console, err = Console(), Console(stderr=True)
    cfg = load_or_exit()
    try:
        result = build(cfg, full_refresh=full_refresh, select=select or (), console=err)
    except TransformError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    print_summary(result, console)
    if not result.ok:
        raise typer.Exit(1)


@transform_app.command("dwh")
def dwh(
    full_refresh: bool = typer.Option(False, "--full-refresh", help="Rebuild every mart and stg_quotes from "
                                      "scratch instead of loading only new raw rows."),
    select: list[str] = typer.Option(None, "--select", "-s", help="dbt node selection (repeatable), "
                                     "e.g. mart_daily_prices+, tag:marts."),
) -> None:
    """dbt build of dbt_dwh/: lake tables (pinned Iceberg snapshots) -> ClickHouse marts + tests."""
    from rich.console import Console
    from rich.markup import escape

    from lakehouse.cli import load_or_exit
    from lakehouse.dwh import DwhError, build, print_summary

    console, err = Console(), Console(stderr=True)
    cfg = load_or_exit()
    try:
        result = build(cfg, full_refresh=full_refresh, select=select or (), console=err)
    except (DwhError, RuntimeError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    print_summary(result, console)
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``transform`` sub-app to the root app."""
    app.add_typer(transform_app, name="transform")

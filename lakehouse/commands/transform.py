"""``lakehouse transform``: the dbt stages on their own (``lake``: dbt-duckdb features in Iceberg;
``dwh``: dbt-clickhouse marts in ClickHouse)."""

from __future__ import annotations

import typer


def _run(stage: str, full_refresh: bool, select: list[str] | None) -> None:
    from lakehouse.cli import console, fail, load_or_exit
    from lakehouse.pipeline.runner import run_one
    from lakehouse.pipeline.stage import StageFailed

    cfg = load_or_exit()
    try:
        # a --select build is partial: it does not count as the pipeline's stage
        run_one(cfg, stage, console, options={"full_refresh": full_refresh, "select": select or ()},
                record=not select)
    except StageFailed as exc:
        raise fail(str(exc)) from exc


def register(app: typer.Typer) -> None:
    """Add the ``transform`` sub-app to the root app."""
    transform_app = typer.Typer(help="Run the dbt transformations.", no_args_is_help=True)
    app.add_typer(transform_app, name="transform")

    @transform_app.command("lake")
    def lake(
        full_refresh: bool = typer.Option(False, "--full-refresh", help="Rebuild the Iceberg tables from all of "
                                          "raw.quotes instead of only the new trading days."),
        select: list[str] = typer.Option(None, "--select", "-s", help="dbt node selection (repeatable), "
                                         "e.g. stg_quotes, fct_daily_features+, test_type:singular."),
    ) -> None:
        """dbt build of dbt_lake/: raw.quotes -> staging.stg_quotes -> features.fct_daily_features (Iceberg) + tests."""
        _run("transform-lake", full_refresh, select)

    @transform_app.command("dwh")
    def dwh(
        full_refresh: bool = typer.Option(False, "--full-refresh", help="Rebuild every mart from scratch instead "
                                          "of only the changed years."),
        select: list[str] = typer.Option(None, "--select", "-s", help="dbt node selection (repeatable), "
                                         "e.g. mart_daily_prices+, tag:marts."),
    ) -> None:
        """dbt build of dbt_dwh/: lake tables (pinned Iceberg snapshots) -> ClickHouse marts + tests."""
        _run("transform-dwh", full_refresh, select)

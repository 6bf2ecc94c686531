"""Pipeline stage ``transform-lake``: dbt build of dbt_lake/ (incremental features in Iceberg)."""

from __future__ import annotations

from rich.console import Console

from lakehouse.config import Config


def run_stage(cfg: Config, console: Console) -> str:
    """Build staging, features.fct_daily_features and their tests; raise when dbt failed."""
    from lakehouse.lake_transform import build, print_summary

    result = build(cfg, console=console)
    print_summary(result, console)
    if not result.ok:
        raise RuntimeError(f"dbt build failed: {result.one_line()} (log {result.log_path})")
    return result.one_line()

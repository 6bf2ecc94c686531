"""Pipeline stage ``transform-dwh``: dbt build of dbt_dwh/ (ClickHouse marts over the lake's Iceberg tables)."""

from __future__ import annotations

from rich.console import Console

from lakehouse.config import Config


def run_stage(cfg: Config, console: Console) -> str:
    """Build the marts and their tests; print where they are; raise when dbt failed."""
    from lakehouse.dwh import build, print_summary

    result = build(cfg, console=console)
    print_summary(result, console)
    if not result.ok:
        raise RuntimeError(f"dbt build failed: {result.one_line()} (log {result.log_path})")
    return result.one_line()

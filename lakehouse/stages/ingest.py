"""Pipeline stage ``ingest``: load the configured default source (``sample`` out of the box, offline)
into Iceberg ``raw.quotes``, incrementally."""

from __future__ import annotations

from rich.console import Console

from lakehouse.config import Config


def run_stage(cfg: Config, console: Console) -> str:
    """Ingest ``sources.default``; raise when any ticker failed (its rows are not lost for others)."""
    from lakehouse.ingestion.run import print_summary, run_ingest

    summary = run_ingest(cfg, cfg.sources_config.default, console=console)
    print_summary(summary, console)
    if not summary.ok:
        raise RuntimeError(f"{summary.detail()}: " + "; ".join(summary.failed))
    return summary.detail()

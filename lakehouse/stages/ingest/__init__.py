"""Stage ``ingest``: quote sources -> dlt (extract, normalize, state) -> Iceberg ``raw`` tables, one atomic
commit per table per load.

- :mod:`.run`: one ingestion (finish an interrupted load, extract, commit, per-ticker summary);
- :mod:`.destination`: the dlt destination that commits each load package as one Iceberg transaction;
- :mod:`.tables`: the ``raw.*`` tables and the merge / append commits into them.
"""

from __future__ import annotations

from lakehouse.pipeline.stage import StageContext, StageFailed


def run_stage(ctx: StageContext) -> str:
    """Ingest the configured source (or ``ctx.options``: source, tickers, start, end); StageFailed naming
    every ticker that failed (the other tickers' rows are committed)."""
    from lakehouse.stages.ingest.run import print_summary, run_ingest

    summary = run_ingest(ctx.cfg, ctx.option("source"), ctx.option("tickers"), ctx.option("start"),
                         ctx.option("end"), console=ctx.console)
    print_summary(summary, ctx.console)
    if not summary.ok:
        raise StageFailed(ctx.stage or "ingest", f"{summary.detail()}: " + "; ".join(summary.failed))
    return summary.detail()

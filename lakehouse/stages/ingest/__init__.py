"""Stage ``ingest``: quote sources -> dlt (extract, normalize, state) -> Iceberg ``raw`` tables, one atomic
commit per table per load.

- :mod:`.run`: one ingestion (finish an interrupted load, extract, commit, per-ticker summary);
- :mod:`.extract_files`: ``raw.quotes`` rows written as Iceberg data files while they are extracted
  (handed to dlt as file imports: every row is encoded once);
- :mod:`.destination`: the dlt destination that commits each load package as one Iceberg transaction;
- :mod:`.file_commit`: that commit placing the extract's files as they are, when that is exactly right;
- :mod:`.tables`: the ``raw.*`` tables and the merge / append commits into them;
- :mod:`.staging`: what the extract leaves in memory for the commit.
"""

from __future__ import annotations

from lakehouse.pipeline.stage import StageContext, StageFailed


def run_stage(ctx: StageContext) -> str:
    """Ingest the configured source (or ``ctx.options``: source, tickers, start, end).

    When some tickers fail, the others' rows are committed and the stage still fails (StageFailed
    whose cause is :class:`~lakehouse.stages.ingest.run.TickersFailed`): ``lakehouse run`` then does
    not build features, models and marts on a cross-section with holes that would look complete, and
    records no fingerprint, so the next run ingests again and retries the failed tickers (their state
    did not move) before anything downstream runs. A ticker that stays broken is named in every run;
    ``lakehouse run --from transform-lake`` builds downstream on what was loaded anyway."""
    from lakehouse.stages.ingest.run import TickersFailed, print_summary, run_ingest

    summary = run_ingest(ctx.cfg, ctx.option("source"), ctx.option("tickers"), ctx.option("start"),
                         ctx.option("end"), console=ctx.console)
    print_summary(summary, ctx.console)
    if not summary.ok:
        raise StageFailed(ctx.stage or "ingest", TickersFailed(summary))
    return summary.detail()

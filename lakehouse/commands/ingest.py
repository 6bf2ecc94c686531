"""``lakehouse ingest``: the ingest stage on its own (load quotes into the Iceberg table ``raw.quotes``)."""

from __future__ import annotations

import typer

from lakehouse.sources import SOURCE_NAMES


def register(app: typer.Typer) -> None:
    """Add the ``ingest`` command to the root app."""

    @app.command()
    def ingest(
        source: str = typer.Option(None, "--source", "-s",
                                   help=f"Source: {' | '.join(SOURCE_NAMES)} (default: sources.default)."),
        tickers: str = typer.Option(None, "--tickers", "-t", help="Comma-separated tickers (default: configured)."),
        start: str = typer.Option(None, "--start", help="Backfill from this date (YYYY-MM-DD); default: resume "
                                  "each ticker after its last loaded trade date."),
        end: str = typer.Option(None, "--end", help="Last date to load (YYYY-MM-DD; default: today)."),
    ) -> None:
        """Load daily quotes into Iceberg raw.quotes (dlt; incremental, idempotent, one commit per load).

        Bad rows (NaN, text, missing dates, rows of another ticker, duplicate days...) go to raw.quotes_rejected
        with their reason; a ticker whose fetch fails, fails alone.

        Exit codes:
        0  every ticker loaded;
        1  the load failed: nothing of this run is committed (an interrupted commit is finished next run);
        2  bad arguments or configuration;
        3  partial: some tickers failed (named on stderr), the others are committed; the next run retries them.
        """
        from rich.markup import escape

        from lakehouse.cli import console, err_console, fail, load_or_exit
        from lakehouse.pipeline.runner import run_one
        from lakehouse.pipeline.stage import StageFailed
        from lakehouse.stages.ingest.run import PARTIAL_EXIT, TickersFailed

        cfg = load_or_exit()
        if source is not None and source not in SOURCE_NAMES:
            raise fail(f"unknown source {source!r} (known: {', '.join(SOURCE_NAMES)})", 2)
        names = tickers.split(",") if tickers else None
        options = {"source": source, "tickers": names, "start": start, "end": end}
        # only a run of the configured default load counts as the pipeline's ingest stage
        whole = source in (None, cfg.sources_config.default) and not (names or start or end)
        from dlt.pipeline.exceptions import PipelineStepFailed

        try:
            run_one(cfg, "ingest", console, options=options, record=whole)
        except StageFailed as exc:
            cause = exc.cause
            if isinstance(cause, TickersFailed):
                err_console.print(f"[yellow]partial load:[/] {escape(cause.headline)}:")
                for message in cause.summary.failed:
                    err_console.print(f"  - {escape(message)}")
                raise typer.Exit(PARTIAL_EXIT) from exc
            if isinstance(cause, ValueError):
                raise fail(str(cause), 2) from exc
            if isinstance(cause, PipelineStepFailed):
                inner = cause.exception
                if exc.context:
                    err_console.print(f"[red]{escape(exc.context)}[/]")
                err_console.print(f"[red]ingest failed at the {cause.step} step:[/] {type(inner).__name__}: {inner}")
                if cause.step == "load":
                    err_console.print(f"raw.quotes is unchanged; load package {cause.load_id} is kept and the next "
                                      "`lakehouse ingest` commits it first.")
                raise typer.Exit(1) from exc
            raise fail(str(exc)) from exc


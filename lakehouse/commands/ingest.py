"""``lakehouse ingest``: load quotes from a source into the Iceberg table ``raw.quotes``."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

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
        """Load daily quotes into Iceberg raw.quotes (dlt; incremental, idempotent, one commit per load)."""
        from lakehouse.cli import load_or_exit
        from lakehouse.ingestion.run import print_summary, run_ingest

        console, err = Console(), Console(stderr=True)
        cfg = load_or_exit()
        if source is not None and source not in SOURCE_NAMES:
            err.print(f"[red]error:[/] unknown source {source!r} (known: {', '.join(SOURCE_NAMES)})")
            raise typer.Exit(2)
        names = tickers.split(",") if tickers else None
        from dlt.pipeline.exceptions import PipelineStepFailed

        try:
            summary = run_ingest(cfg, source, names, start, end, console=console)
        except ValueError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from exc
        except PipelineStepFailed as exc:
            cause = exc.exception
            err.print(f"[red]ingest failed at the {exc.step} step:[/] {escape(f'{type(cause).__name__}: {cause}')}")
            if exc.step == "load":
                err.print(f"raw.quotes is unchanged; load package {exc.load_id} is kept and the next "
                          "`lakehouse ingest` commits it first.")
            raise typer.Exit(1) from exc
        print_summary(summary, console)
        if not summary.ok:
            for msg in summary.failed:
                err.print(f"[red]failed:[/] {escape(msg)}")
            raise typer.Exit(1)

"""``lakehouse report``: the HTML run report on its own (lakehouse.report); ``lakehouse run`` writes it too."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape


def write_after_run(cfg, console: Console) -> None:  # noqa: ANN001 - Config
    """The report after ``lakehouse run``: print its path, or a warning -- never fail the run for it."""
    from lakehouse.report import ReportUnavailable, write_report

    try:
        written = write_report(cfg)
    except ReportUnavailable as exc:
        console.print(f"[yellow]warning: run report not written: {escape(str(exc))}[/]")
        return
    except Exception as exc:  # noqa: BLE001 - a report problem must not fail a successful run
        console.print(f"[yellow]warning: run report not written ({type(exc).__name__}): {escape(str(exc))}; "
                      "`lakehouse report` retries it[/]")
        return
    console.print(f"report: {written.latest} ({written.tickers} tickers, {written.seconds:.1f} s; "
                  f"copy {written.dated.name})", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``report`` to the root app."""

    @app.command()
    def report() -> None:
        """Write the run report: $LAKEHOUSE_HOME/reports/latest.html and a dated copy, one self-contained page
        (opens offline) with per-ticker prices and forecasts, the model leaderboard, forecasts against actual,
        data freshness and lineage. `lakehouse run` writes it after every run."""
        from lakehouse.cli import console, fail, load_or_exit
        from lakehouse.report import ReportUnavailable, write_report

        cfg = load_or_exit()
        try:
            written = write_report(cfg)
        except ReportUnavailable as exc:
            raise fail(f"no report: {exc}") from exc
        console.print(f"wrote {written.latest} ({written.tickers} tickers, {written.seconds:.1f} s); "
                      f"dated copy {written.dated}", soft_wrap=True)

"""Run one ingestion: finish any interrupted load, extract the source with dlt, commit to Iceberg,
and summarize per ticker.

A ticker that fails (HTTP error, unreadable response, anything its source raises) fails alone: the
other tickers' rows are committed, and the run ends in :class:`TickersFailed` naming each failed ticker
and its cause (``lakehouse ingest`` exits with :data:`PARTIAL_EXIT`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgressBar
from rich.table import Table as RichTable

from lakehouse.config import Config, telemetry_off_env
from lakehouse.sources.quotes import PRIMARY_KEY, QUOTES_TABLE, ExtractReport, Progress, parse_date
from lakehouse.stages.ingest.tables import CommitResult

#: Exit code of ``lakehouse ingest`` when the load committed but some tickers failed (1: the load itself
#: failed, nothing of this run is committed; 2: bad arguments or configuration).
PARTIAL_EXIT = 3


@dataclass
class IngestSummary:
    """Outcome of one ``run_ingest``."""

    source: str
    report: ExtractReport
    load_ids: list[str] = field(default_factory=list)
    commits: list[CommitResult] = field(default_factory=list)
    resumed_load_ids: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step: extract, normalize, load

    def _rows(self, table: str) -> int:
        return sum(c.rows for c in self.commits if c.table == table)

    @property
    def rows_loaded(self) -> int:
        """Rows written to raw.quotes by this run (after de-duplication)."""
        return self._rows("quotes")

    @property
    def rows_rejected(self) -> int:
        """Rows written to raw.quotes_rejected by this run."""
        return self._rows("quotes_rejected")

    @property
    def failed(self) -> list[str]:
        """Messages of the tickers that failed."""
        return [t.error for t in self.report.failed if t.error]

    @property
    def failed_tickers(self) -> list[str]:
        """Names of the tickers that failed."""
        return [t.ticker for t in self.report.failed]

    @property
    def ok(self) -> bool:
        return not self.failed

    def detail(self) -> str:
        """One line for the pipeline summary."""
        text = (f"{self.source}: {self.rows_loaded} rows loaded, {self.rows_rejected} rejected, "
                f"{len(self.report.tickers)} tickers in {self.elapsed:.1f}s")
        if self.failed:
            text += f"; {len(self.failed)} failed"
        return text


class TickersFailed(RuntimeError):
    """Some tickers of an ingest failed; the rows of the others are committed. Their incremental state
    did not move, so the next run fetches them again."""

    def __init__(self, summary: IngestSummary) -> None:
        self.summary = summary
        self.failed = summary.failed_tickers
        self.headline = (f"{len(self.failed)} of {len(summary.report.tickers)} tickers failed; the other tickers' "
                         "rows are committed and the next run retries these")
        super().__init__(f"{self.headline}: " + "; ".join(summary.failed))


class RichTickerProgress(Progress):
    """A rich progress bar per ticker (rows, pages)."""

    def __init__(self, bar: RichProgressBar) -> None:
        self.bar = bar
        self.tasks: dict[str, int] = {}
        self.pages: dict[str, int] = {}

    def start_ticker(self, ticker: str, total: int | None = None) -> None:
        self.tasks[ticker] = self.bar.add_task(ticker, total=total, pages="")
        self.pages[ticker] = 0

    def advance(self, ticker: str, rows: int, pages: int = 1, total: int | None = None) -> None:
        self.pages[ticker] = self.pages.get(ticker, 0) + pages
        self.bar.update(self.tasks[ticker], advance=rows, total=total, pages=f"page {self.pages[ticker]}")

    def finish_ticker(self, ticker: str, ok: bool, note: str = "") -> None:
        if ticker not in self.tasks:
            self.tasks[ticker] = self.bar.add_task(ticker, total=0, pages="")
        task = self.bar.tasks[self.tasks[ticker]]
        status = f"[green]{note}[/]" if ok else f"[red]{note}[/]"
        self.bar.update(self.tasks[ticker], total=task.completed or 1, completed=task.completed or 1,
                        pages=status)


def _progress_bar(console: Console) -> RichProgressBar:
    return RichProgressBar(
        TextColumn("[bold]{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[pages]}"), TimeElapsedColumn(), console=console, transient=False,
        disable=not console.is_terminal and os.environ.get("LAKEHOUSE_PROGRESS") != "1",
    )


class _TraceDumpFailure(logging.Filter):
    """dlt saves a trace of each step into its working dir and, when that fails (a full or read-only disk),
    logs the traceback as a warning, in the middle of the ingest's own clear error: keep one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Failed to create trace dump") and record.exc_info:
            record.msg, record.args = f"dlt could not save its step trace: {record.exc_info[1]}", ()
            record.exc_info = None
        return True


_DLT_LOG_FILTER = _TraceDumpFailure()


@contextmanager
def _exclusive(cfg: Config, source: str) -> Iterator[None]:
    """One ingest per source at a time: dlt's pipeline working dir is not safe for concurrent runs."""
    path = cfg.path("dlt", create=True) / f"lakehouse_{source}.lock"
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"another `lakehouse ingest --source {source}` is running (lock {path})") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


#: dlt settings of our loads: a committed package's job files are deleted (the rows are in Iceberg; dlt
#: keeps the package folder with its state and trace), otherwise dlt's working dir grows by every load's
#: rows (141 MB for the 2.6M-row benchmark load). A failed package keeps its files for the next run.
DLT_ENV = {"LOAD__DELETE_COMPLETED_JOBS": "true"}


def run_ingest(
    cfg: Config, source: str | None = None, tickers: Sequence[str] | None = None,
    start: str | dt.date | None = None, end: str | dt.date | None = None, console: Console | None = None,
) -> IngestSummary:
    """Load ``source`` (default: the configured one) into ``raw.quotes`` / ``raw.quotes_rejected``.

    Without ``start`` each ticker resumes after its last loaded trade date (dlt state); ``start``/``end``
    backfill a window. A package left by an interrupted earlier run is committed first.
    """
    for k, v in {**telemetry_off_env(), **DLT_ENV}.items():
        os.environ.setdefault(k, v)
    import dlt

    logging.getLogger("dlt").addFilter(_DLT_LOG_FILTER)  # idempotent: a filter is added once
    from lakehouse.heap import settle as settle_heap
    from lakehouse.lake import import_lake_modules, open_lake
    from lakehouse.sources import default_tickers, make_fetcher
    from lakehouse.sources.resource import quote_source
    from lakehouse.stages.ingest import staging
    from lakehouse.stages.ingest.destination import COMMITS, iceberg_lake, register_catalog, unregister_catalog
    from lakehouse.stages.ingest.extract_files import ExtractSink, expected_metadata

    console = console or Console()
    source = source or cfg.sources_config.default
    fetcher = make_fetcher(cfg, source)
    if end is None and source == "sample" and cfg.sources_config.sample.end:
        end = parse_date(cfg.sources_config.sample.end, "sources.sample.end")
    start_d, end_d = parse_date(start, "--start"), parse_date(end, "--end")
    if start_d and end_d and start_d > end_d:
        raise ValueError(f"--start {start_d} is after --end {end_d}")
    # sorted and unique: rows then reach the commit in key order (no re-sort needed)
    names = sorted({t.strip().upper() for t in (tickers or default_tickers(cfg, source)) if t.strip()})
    if not names:
        raise ValueError("no tickers to load")
    report = ExtractReport(source)
    summary = IngestSummary(source, report)
    t0 = time.perf_counter()
    key = f"ingest-{uuid.uuid4().hex}"
    import_lake_modules(cfg)
    settle_heap()  # dlt, pyiceberg and the catalog are imported, the lake not opened yet: lakehouse.heap
    with _exclusive(cfg, source), open_lake(cfg) as lake:
        register_catalog(key, lake.catalog)
        sink: ExtractSink | None = None
        files_dir = cfg.path("dlt", create=True) / f"lakehouse_{source}.files"
        shutil.rmtree(files_dir, ignore_errors=True)  # left by a killed run; its package holds links
        try:
            pipeline = dlt.pipeline(
                pipeline_name=f"lakehouse_{source}", pipelines_dir=str(cfg.path("dlt", create=True)),
                destination=iceberg_lake(catalog_key=key), dataset_name="raw",
            )
            if pipeline.has_pending_data:
                console.print("[yellow]finishing an interrupted load from an earlier run[/]")
                pipeline.normalize()
                info = pipeline.load()
                for lid in info.loads_ids:
                    summary.resumed_load_ids.append(lid)
                    summary.commits.extend(COMMITS.pop(lid, []))
            t1 = time.perf_counter()
            meta = expected_metadata(lake.catalog, QUOTES_TABLE)
            sink = ExtractSink(files_dir, {QUOTES_TABLE: meta} if meta else {}, {QUOTES_TABLE: PRIMARY_KEY},
                               loaded_at_us=time.time_ns() // 1000)
            with _progress_bar(console) as bar:
                src = quote_source(fetcher, names, start_d, end_d, report, RichTickerProgress(bar), sink=sink)
                pipeline.extract(src)
            sink.discard()  # dlt linked the files into the load package
            t2 = time.perf_counter()
            with console.status("committing to Iceberg"):
                pipeline.normalize()
                t3 = time.perf_counter()
                info = pipeline.load()
            summary.phases = {"extract": t2 - t1, "normalize": t3 - t2, "load": time.perf_counter() - t3}
            for lid in info.loads_ids:
                summary.load_ids.append(lid)
                summary.commits.extend(COMMITS.pop(lid, []))
        finally:
            if sink is not None:
                sink.discard()
            staging.discard()
            unregister_catalog(key)
            client = getattr(fetcher, "client", None)
            if client is not None:
                client.close()
    summary.elapsed = time.perf_counter() - t0
    return summary


def print_summary(summary: IngestSummary, console: Console) -> None:
    """The per-ticker summary table and totals."""
    table = RichTable(title=f"ingest {summary.source}: {', '.join(summary.load_ids) or 'no new load'}")
    cols = (("ticker", "left"), ("rows", "right"), ("rejected", "right"), ("pages", "right"),
            ("seconds", "right"), ("status", "left"))
    for col, just in cols:
        table.add_column(col, justify=just)
    for t in summary.report.tickers.values():
        status = f"[red]failed: {escape(t.error)}[/]" if t.error else (t.note or "ok")
        rejected = f"{t.rejected} ({t.duplicates} dup)" if t.duplicates else str(t.rejected)
        table.add_row(t.ticker, str(t.rows), rejected, str(t.pages), f"{t.seconds:.2f}", status)
    table.add_section()
    replaced = sum(c.replaced for c in summary.commits if c.table == "quotes")
    collapsed = sum(c.duplicates for c in summary.commits if c.table == "quotes")
    note = f"[red]{len(summary.failed)} failed[/]" if summary.failed else "ok"
    note += f"; {replaced} existing rows replaced" if replaced else ""
    note += f"; {collapsed} duplicate keys collapsed at commit (last kept)" if collapsed else ""
    if summary.resumed_load_ids:
        note += f"; finished interrupted load {', '.join(summary.resumed_load_ids)}"
    table.add_row("[bold]loaded[/]", f"[bold]{summary.rows_loaded}[/]", f"[bold]{summary.rows_rejected}[/]",
                  str(sum(t.pages for t in summary.report.tickers.values())), f"{summary.elapsed:.1f}", note)
    console.print(table)

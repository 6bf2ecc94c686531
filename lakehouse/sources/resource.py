"""The dlt resource every quote source shares: per-ticker incremental windows kept in dlt state,
validation into ``quotes`` / ``quotes_rejected``, per-ticker failure isolation, progress.

A source only implements :class:`Fetcher` (fetch one ticker's window as normalized Arrow rows).

Failure isolation: whatever goes wrong while a ticker is fetched and read (HTTP error, unreadable body,
an unexpected exception in a source) fails that ticker alone: its rows are not loaded, its incremental
state does not move (the next run fetches the same window again), and the other tickers load. The
state of a ticker moves only to the newest trade date among its own *loaded* rows, and only within the
window asked for, so neither a row of another ticker nor a far-future date can move it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.extract.resource import DltResource
from dlt.extract.source import DltSource

from lakehouse.sources.quotes import (
    DUPLICATE_PREFIX,
    PRIMARY_KEY,
    QUOTES_TABLE,
    REJECTED_TABLE,
    ExtractReport,
    Progress,
    SourceError,
    Window,
    flag_foreign_rows,
    split_valid,
    ticker_window,
)

#: Valid rows are buffered across tickers and handed to dlt in batches of about this many rows.
BATCH_ROWS = 250_000


class BatchSink(Protocol):
    """Takes the resource's validated batches (the ingest runner's: see
    ``lakehouse.stages.ingest.extract_files.ExtractSink``)."""

    def add(self, table_name: str, table: pa.Table) -> bool:
        """See every batch of dlt table ``table_name``, in order; True when the sink took the rows
        itself (the resource does not yield them), False when the resource yields them to dlt."""
        ...

    def finish(self) -> list[Any]:
        """Items to yield after the last batch (dlt file imports of what the sink took)."""
        ...


class _PageCounter(Progress):
    """Forwards progress and counts pages into the ticker's result."""

    def __init__(self, inner: Progress, report: ExtractReport) -> None:
        self.inner, self.report = inner, report

    def start_ticker(self, ticker: str, total: int | None = None) -> None:
        self.inner.start_ticker(ticker, total)

    def advance(self, ticker: str, rows: int, pages: int = 1, total: int | None = None) -> None:
        self.report.ticker(ticker).pages += pages
        self.inner.advance(ticker, rows, pages, total)

    def finish_ticker(self, ticker: str, ok: bool, note: str = "") -> None:
        self.inner.finish_ticker(ticker, ok, note)


class Fetcher(Protocol):
    """One source: fetch a ticker's window as (normalized quotes table, raw records or None)."""

    name: str
    default_start: dt.date

    def fetch(self, ticker: str, window: Window, progress: Progress) -> tuple[pa.Table, Any]: ...


def _counts(rejected: pa.Table) -> dict[str, int]:
    if rejected.num_rows == 0:
        return {}
    c = rejected.group_by("ticker").aggregate([([], "count_all")])
    return dict(zip(c["ticker"].to_pylist(), c["count_all"].to_pylist(), strict=True))


def _duplicate_counts(rejected: pa.Table) -> dict[str, int]:
    if rejected.num_rows == 0:
        return {}
    return _counts(rejected.filter(pc.starts_with(rejected["reason"], DUPLICATE_PREFIX)))


def _failure(source: str, ticker: str, exc: Exception) -> str:
    """The message of a failed ticker: a SourceError names source, ticker and URL itself."""
    if isinstance(exc, SourceError):
        return str(exc)
    return f"{source} {ticker}: unexpected {type(exc).__name__} while reading the response: {exc}"


def quote_resource(
    fetcher: Fetcher, tickers: Sequence[str], start: dt.date | None, end: dt.date | None,
    report: ExtractReport, progress: Progress, sink: BatchSink | None = None,
) -> DltResource:
    """The dlt resource yielding ``quotes`` (merge on source, ticker, trade_date) and ``quotes_rejected``
    (append). The last loaded trade date of every ticker lives in the resource's dlt state. Tickers are
    fetched one by one and validated in batches of about :data:`BATCH_ROWS` rows. ``sink`` sees every
    batch first and may take it (the ingest runner writes ``quotes`` into Iceberg data files as it goes
    and keeps the rest for the commit)."""

    progress = _PageCounter(progress, report)

    def validate(batch: list[tuple[str, pa.Table, Any]], state: dict[str, str]) -> Iterator[Any]:
        """Validate a batch of tickers at once (vectorized) and yield its rejected and valid rows."""
        table = pa.concat_tables([t for _, t, _ in batch])
        offsets = list(itertools.accumulate([0] + [t.num_rows for _, t, _ in batch]))

        def raw_record(i: int) -> dict[str, Any] | None:
            k = bisect.bisect_right(offsets, i) - 1
            raws = batch[k][2]
            if raws is None:
                return None
            return raws[i - offsets[k]] if not callable(raws) else raws(i - offsets[k])

        good, rejected = split_valid(table, raw_record if any(r is not None for _, _, r in batch) else None)
        bad_counts, dup_counts = _counts(rejected), _duplicate_counts(rejected)
        for ticker, t, _ in batch:
            result = report.ticker(ticker)
            result.rejected += bad_counts.get(ticker, 0)
            result.duplicates += dup_counts.get(ticker, 0)
            result.rows += t.num_rows - bad_counts.get(ticker, 0)
        if good.num_rows:
            if rejected.num_rows == 0:  # every row valid, so each fetched table is one ticker's rows
                newest = [(ticker, pc.max(t["trade_date"]).as_py()) for ticker, t, _ in batch if t.num_rows]
            else:
                grouped = good.group_by("ticker").aggregate([("trade_date", "max")])
                newest = zip(grouped["ticker"].to_pylist(), grouped["trade_date_max"].to_pylist(), strict=True)
            for ticker, last in newest:
                if last is not None and (state.get(ticker) is None or last.isoformat() > state[ticker]):
                    state[ticker] = last.isoformat()
        if rejected.num_rows:
            # a table variant: the resource's own hints (merge on the key) stay with `quotes`
            hints = dlt.mark.make_hints(table_name=REJECTED_TABLE, write_disposition="append", primary_key=[])
            if sink is None or not sink.add(REJECTED_TABLE, rejected):
                yield dlt.mark.with_hints(rejected, hints, create_table_variant=True)
        if good.num_rows and (sink is None or not sink.add(QUOTES_TABLE, good)):
            yield good

    def extract() -> Iterator[Any]:
        state: dict[str, str] = dlt.current.resource_state().setdefault("last_trade_date", {})
        batch: list[tuple[str, pa.Table, Any]] = []
        batch_rows = 0
        for ticker in tickers:
            result = report.ticker(ticker)
            window = ticker_window(state, ticker, fetcher.default_start, start, end)
            if window.empty:
                result.note = f"up to date (last {state.get(ticker)})"
                progress.finish_ticker(ticker, True, result.note)
                continue
            progress.start_ticker(ticker)
            t0 = time.perf_counter()
            try:
                table, raws = fetcher.fetch(ticker, window, progress)
                table = flag_foreign_rows(table, ticker, window)
            except Exception as exc:  # noqa: BLE001 - this ticker fails alone: its rows are not loaded, the others are
                result.error = _failure(fetcher.name, ticker, exc)
                result.seconds = time.perf_counter() - t0
                progress.finish_ticker(ticker, False, "failed")
                continue
            result.seconds = time.perf_counter() - t0
            if table.num_rows == 0:
                result.note = "no new rows" if window.resumed else "no rows in window"
            batch.append((ticker, table, raws))
            batch_rows += table.num_rows
            if batch_rows >= BATCH_ROWS:
                yield from validate(batch, state)
                batch, batch_rows = [], 0
            progress.finish_ticker(ticker, True, f"{table.num_rows} rows")
        if batch:
            yield from validate(batch, state)
        if sink is not None:
            yield from sink.finish()

    return dlt.resource(
        extract,
        name=f"{fetcher.name}_quotes",
        table_name=QUOTES_TABLE,
        write_disposition={"disposition": "merge", "strategy": "upsert"},
        primary_key=list(PRIMARY_KEY),
    )


def quote_source(
    fetcher: Fetcher, tickers: Sequence[str], start: dt.date | None, end: dt.date | None,
    report: ExtractReport, progress: Progress, sink: BatchSink | None = None,
) -> DltSource:
    """A dlt source (schema named after the source) with the one quotes resource."""

    @dlt.source(name=fetcher.name, max_table_nesting=0)
    def source() -> DltResource:
        return quote_resource(fetcher, tickers, start, end, report, progress, sink)

    return source()

"""What every quote source yields: the normalized Arrow layout of a daily bar, validation, and the
per-ticker incremental window.

Sources turn their raw records into an Arrow table with :data:`QUOTE_SCHEMA` and pass it to
:func:`split_valid`, which keeps good rows for ``raw.quotes`` and turns bad ones into
``raw.quotes_rejected`` rows (reason + the raw record as JSON). Nothing is dropped silently.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.contracts import RAW_QUOTES, RAW_QUOTES_REJECTED

QUOTES_TABLE = RAW_QUOTES.name
REJECTED_TABLE = RAW_QUOTES_REJECTED.name
PRIMARY_KEY = RAW_QUOTES.key
PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")

#: Columns stamped at commit time, not produced by sources.
COMMIT_STAMPS = ("loaded_at", "load_id")

#: Columns a source produces: ``raw.quotes`` without the commit stamps, the date still nullable (a
#: record without a readable date is quarantined, not refused).
QUOTE_SCHEMA = pa.schema([
    f.with_nullable(True) if f.name == "trade_date" else f
    for f in RAW_QUOTES.arrow_schema if f.name not in COMMIT_STAMPS
])

#: Valid rows: the key columns are never null (dlt marks primary-key columns non-nullable).
VALID_SCHEMA = pa.schema([f for f in RAW_QUOTES.arrow_schema if f.name not in COMMIT_STAMPS])

REJECTED_SCHEMA = pa.schema([f for f in RAW_QUOTES_REJECTED.arrow_schema if f.name not in COMMIT_STAMPS])


class SourceError(RuntimeError):
    """Fetching one ticker from a source failed; the message names the source, ticker and URL."""

    def __init__(self, source: str, ticker: str, message: str, url: str | None = None) -> None:
        self.source, self.ticker, self.url = source, ticker, url
        where = f" ({url})" if url else ""
        super().__init__(f"{source} {ticker}: {message}{where}")


def quotes_table(columns: dict[str, Any]) -> pa.Table:
    """An Arrow table in :data:`QUOTE_SCHEMA` from column arrays (missing columns become null)."""
    n = len(next(iter(columns.values()))) if columns else 0
    arrays = []
    for f in QUOTE_SCHEMA:
        value = columns.get(f.name)
        if value is None:
            arrays.append(pa.nulls(n, f.type))
        else:
            arrays.append(pa.array(value, type=f.type) if not isinstance(value, pa.Array | pa.ChunkedArray)
                          else value.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=QUOTE_SCHEMA)


def _reasons(t: pa.Table) -> pa.Array:
    """The first failed check per row, or null for a valid row (vectorized)."""
    checks: list[tuple[pa.Array, str]] = [(pc.is_null(t["trade_date"]), "missing trade_date")]
    for col in ("open", "high", "low", "close"):
        checks.append((pc.is_null(t[col]), f"missing {col}"))
    for col in PRICE_COLUMNS:
        checks.append((pc.fill_null(pc.less_equal(t[col], 0), False), f"non-positive {col}"))
    checks.append((pc.fill_null(pc.less(t["high"], t["low"]), False), "high < low"))
    outside = pc.or_(pc.less(t["close"], t["low"]), pc.greater(t["close"], t["high"]))
    checks.append((pc.fill_null(outside, False), "close outside [low, high]"))
    checks.append((pc.fill_null(pc.less(t["volume"], 0), False), "negative volume"))
    any_bad = checks[0][0]
    for mask, _ in checks[1:]:
        any_bad = pc.or_(any_bad, mask)
    reason = pa.nulls(t.num_rows, pa.string())
    if not pc.any(any_bad).as_py():
        return reason
    for mask, text in reversed(checks):  # the first check in the list wins
        reason = pc.if_else(mask, pa.scalar(text), reason)
    return reason


def split_valid(
    table: pa.Table, raw_records: Sequence[dict[str, Any]] | Callable[[int], dict[str, Any]] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Split normalized rows into (valid quotes, rejected rows with reason and raw record JSON).

    ``raw_records`` gives the source's original record for row ``i`` (a list, or a function that may
    return None); without one the normalized row itself is recorded.
    """
    if table.num_rows == 0:
        return table.cast(VALID_SCHEMA), REJECTED_SCHEMA.empty_table()
    reason = _reasons(table)
    bad = pc.is_valid(reason)
    if not pc.any(bad).as_py():
        return table.cast(VALID_SCHEMA), REJECTED_SCHEMA.empty_table()
    good = table.filter(pc.invert(bad)).cast(VALID_SCHEMA)
    bad_idx = pc.indices_nonzero(bad).to_pylist()
    rows = table.take(bad_idx).to_pylist()
    raws = []
    for i, row in zip(bad_idx, rows, strict=True):
        if callable(raw_records):
            raw = raw_records(i)
        elif raw_records is not None:
            raw = raw_records[i]
        else:
            raw = None
        if raw is None:
            raw = row
        raws.append(json.dumps(raw, default=str, ensure_ascii=False))
    rejected = pa.Table.from_arrays(
        [table["source"].take(bad_idx), table["ticker"].take(bad_idx), table["trade_date"].take(bad_idx),
         reason.take(pa.array(bad_idx)), pa.array(raws, pa.string())],
        schema=REJECTED_SCHEMA,
    )
    return good, rejected


def parse_date(value: str | dt.date | None, what: str = "date") -> dt.date | None:
    """A date from ``YYYY-MM-DD`` (or a date); None stays None; bad text raises ValueError naming it."""
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise ValueError(f"{what} {value!r} is not a date (expected YYYY-MM-DD)") from exc


@dataclass
class Window:
    """The dates to fetch for one ticker; ``resumed`` when the start came from incremental state."""

    start: dt.date
    end: dt.date
    resumed: bool = False

    @property
    def empty(self) -> bool:
        return self.start > self.end


def ticker_window(
    state: dict[str, str], ticker: str, default_start: dt.date, start: dt.date | None, end: dt.date | None,
) -> Window:
    """Incremental window: an explicit ``start`` backfills; otherwise resume the day after the last
    loaded trade date kept in the dlt resource state (or the configured default start)."""
    stop = end or dt.date.today()
    if start is not None:
        return Window(start, stop)
    last = state.get(ticker)
    if last:
        return Window(dt.date.fromisoformat(last) + dt.timedelta(days=1), stop, resumed=True)
    return Window(default_start, stop)


@dataclass
class TickerResult:
    """What happened to one ticker during extraction."""

    ticker: str
    rows: int = 0
    rejected: int = 0
    pages: int = 0
    seconds: float = 0.0
    error: str | None = None
    note: str = ""


@dataclass
class ExtractReport:
    """Per-ticker outcome collected by a source while it runs (read by the summary)."""

    source: str
    tickers: dict[str, TickerResult] = field(default_factory=dict)

    def ticker(self, name: str) -> TickerResult:
        return self.tickers.setdefault(name, TickerResult(name))

    @property
    def failed(self) -> list[TickerResult]:
        return [t for t in self.tickers.values() if t.error]


class Progress:
    """Callbacks a source reports progress to (no-op by default; the CLI plugs rich in)."""

    def start_ticker(self, ticker: str, total: int | None = None) -> None: ...

    def advance(self, ticker: str, rows: int, pages: int = 1, total: int | None = None) -> None: ...

    def finish_ticker(self, ticker: str, ok: bool, note: str = "") -> None: ...

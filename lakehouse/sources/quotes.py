"""What every quote source yields: the normalized Arrow layout of a daily bar, validation, and the
per-ticker incremental window.

Sources turn their raw records into an Arrow table with :data:`SOURCE_SCHEMA` (:func:`quotes_table`) and
the shared resource passes it to :func:`split_valid`, which keeps good rows for ``raw.quotes`` and turns
bad ones into ``raw.quotes_rejected`` rows (reason + the raw record as JSON). Nothing is dropped silently:

- a value of the wrong kind (a text price, a date that is not a date) becomes null in its column and the
  row carries the reason in :data:`PROBLEM`; so do rows a source finds unusable itself (a malformed row,
  a row of another ticker) and rows dated outside the requested window (:func:`flag_foreign_rows`);
- the value rules (:func:`_checks`): missing prices, NaN and +-Infinity, non-positive prices,
  high < low, close outside [low, high], negative volume;
- duplicate keys: a ``(source, ticker, trade_date)`` carried by more than one otherwise valid row of a
  load. Identical copies load once (the other copies are quarantined as duplicates); copies that
  disagree are all quarantined, since nothing tells which one is right.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.contracts import RAW_QUOTES, RAW_QUOTES_REJECTED

QUOTES_TABLE = RAW_QUOTES.name
REJECTED_TABLE = RAW_QUOTES_REJECTED.name
PRIMARY_KEY = RAW_QUOTES.key
PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")
#: Numeric columns that must be finite when present.
NUMERIC_COLUMNS = (*PRICE_COLUMNS, "volume")

#: Columns stamped at commit time, not produced by sources.
COMMIT_STAMPS = ("loaded_at", "load_id")

#: Columns a source produces: ``raw.quotes`` without the commit stamps, the date still nullable (a
#: record without a readable date is quarantined, not refused).
QUOTE_SCHEMA = pa.schema([
    f.with_nullable(True) if f.name == "trade_date" else f
    for f in RAW_QUOTES.arrow_schema if f.name not in COMMIT_STAMPS
])

#: Why a source could not read a record (null when it read cleanly): the record is quarantined with it.
PROBLEM = "problem"
#: What a source hands to validation: :data:`QUOTE_SCHEMA` plus :data:`PROBLEM`.
SOURCE_SCHEMA = QUOTE_SCHEMA.append(pa.field(PROBLEM, pa.string()))

#: Valid rows: the key columns are never null (dlt marks primary-key columns non-nullable).
VALID_SCHEMA = pa.schema([f for f in RAW_QUOTES.arrow_schema if f.name not in COMMIT_STAMPS])

REJECTED_SCHEMA = pa.schema([f for f in RAW_QUOTES_REJECTED.arrow_schema if f.name not in COMMIT_STAMPS])

#: Reasons given to duplicate keys (both start with :data:`DUPLICATE_PREFIX`, which the summary counts).
DUPLICATE_PREFIX = "duplicate "
DUPLICATE_COPY = "duplicate row: an identical copy is loaded"
DUPLICATE_CONFLICT = "duplicate key with different values ({n} rows in this load)"


class SourceError(RuntimeError):
    """Fetching one ticker from a source failed; the message names the source, ticker and URL."""

    def __init__(self, source: str, ticker: str, message: str, url: str | None = None) -> None:
        self.source, self.ticker, self.url = source, ticker, url
        where = f" ({url})" if url else ""
        super().__init__(f"{source} {ticker}: {message}{where}")


def show(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for reasons that quote attacker-controlled values."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_cell(value: Any, kind: pa.DataType) -> tuple[Any, str | None]:
    """(value for an Arrow column of type ``kind``, None) or (None, what is wrong with it)."""
    if value is None:
        return None, None
    if pa.types.is_floating(kind):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, "non-numeric"
        try:
            return float(value), None
        except OverflowError:  # an integer beyond the float range
            return None, "out-of-range"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return (value, None) if isinstance(value, str) else (None, "non-text")
    if pa.types.is_date32(kind):
        ok = isinstance(value, dt.date) and not isinstance(value, dt.datetime)
        return (value, None) if ok else (None, "unreadable")
    return value, None


def _read_column(name: str, values: Sequence[Any], kind: pa.DataType,
                 problems: list[str | None]) -> pa.Array:
    """An Arrow column from Python values read one by one: a value of the wrong kind becomes null and
    its row's problem (the first one wins) names the column and the value."""
    out = []
    for i, value in enumerate(values):
        cell, wrong = _read_cell(value, kind)
        if wrong and problems[i] is None:
            problems[i] = f"{wrong} {name}: {show(value)}"
        out.append(cell)
    return pa.array(out, type=kind)


def quotes_table(columns: dict[str, Any], problems: Sequence[str | None] | None = None) -> pa.Table:
    """An Arrow table in :data:`SOURCE_SCHEMA` from column arrays (missing columns become null).

    Arrow and numpy arrays are taken as they are (the offline sources); Python lists (records decoded
    from JSON) are read value by value, so that a text price or a date of the wrong type quarantines its row
    instead of failing the whole batch. ``problems`` gives a source's own reason per row (or None)."""
    n = len(next(iter(columns.values()))) if columns else 0
    problem: list[str | None] | None = list(problems) if problems is not None else None
    arrays = []
    for f in QUOTE_SCHEMA:
        value = columns.get(f.name)
        if value is None:
            arrays.append(pa.nulls(n, f.type))
        elif isinstance(value, pa.Array | pa.ChunkedArray):
            arrays.append(value if value.type == f.type else value.cast(f.type))
        elif isinstance(value, list | tuple):
            if problem is None:
                problem = [None] * n
            arrays.append(_read_column(f.name, value, f.type, problem))
        else:  # numpy arrays: typed already
            arrays.append(pa.array(value, type=f.type))
    # no problem list to read (Arrow/numpy columns, no source reasons): an all-null column, not n Nones
    arrays.append(pa.nulls(n, pa.string()) if problem is None else pa.array(problem, pa.string()))
    return pa.Table.from_arrays(arrays, schema=SOURCE_SCHEMA)


def with_problem_column(table: pa.Table) -> pa.Table:
    """``table`` in :data:`SOURCE_SCHEMA` (a table without the :data:`PROBLEM` column gets a null one)."""
    if table.schema.equals(SOURCE_SCHEMA, check_metadata=True) and not any(
            table[f.name].null_count for f in SOURCE_SCHEMA if not f.nullable):
        # what quotes_table builds: selecting and casting would change nothing (the cast still runs, and
        # refuses the table, when a column that may not be null has a null)
        return table
    if PROBLEM not in table.column_names:
        table = table.append_column(PROBLEM, pa.nulls(table.num_rows, pa.string()))
    return table.select(SOURCE_SCHEMA.names).cast(SOURCE_SCHEMA)


def _add_problem(table: pa.Table, mask: pa.Array, text: str) -> pa.Table:
    """Rows where ``mask`` holds get ``text`` as their problem unless they already have one."""
    i = table.column_names.index(PROBLEM)
    flagged = pc.if_else(mask, pa.scalar(text), pa.scalar(None, pa.string()))
    return table.set_column(i, PROBLEM, pc.coalesce(table[PROBLEM], flagged))


def flag_foreign_rows(table: pa.Table, ticker: str, window: Window) -> pa.Table:
    """Rows of another ticker or dated outside ``window`` get a problem, and every row the requested
    ``ticker``: such a row must neither load under a ticker nobody asked for, nor move a ticker's
    incremental state (a far-future date would stop its updates for good)."""
    table = with_problem_column(table)
    if table.num_rows == 0:
        return table
    # Each test first asks the cheap question a clean batch answers (every ticker equal and none null;
    # the earliest and latest date inside the window) and builds row masks only when it fails.
    tickers = table["ticker"]
    if tickers.null_count or not pc.all(pc.equal(tickers, pa.scalar(ticker))).as_py():
        other = pc.fill_null(pc.not_equal(tickers, pa.scalar(ticker)), True)
        table = _add_problem(table, other, "row of another ticker")
        i = table.column_names.index("ticker")
        table = table.set_column(i, table.schema.field(i), pa.repeat(pa.scalar(ticker), table.num_rows))
    td = table["trade_date"]
    first, last = pc.min_max(td).values()  # nulls skipped, as the masks below leave them unflagged
    if first.is_valid and (first.as_py() < window.start or last.as_py() > window.end):
        outside = pc.or_(pc.less(td, pa.scalar(window.start, pa.date32())),
                         pc.greater(td, pa.scalar(window.end, pa.date32())))
        outside = pc.fill_null(outside, False)
        table = _add_problem(table, outside, f"trade_date outside the requested window {window.start}..{window.end}")
    return table


def _checks(t: pa.Table) -> list[tuple[pa.Array, str]]:
    """The value rules in the order they are reported (the first failed one names the row's reason)."""
    checks: list[tuple[pa.Array, str]] = [(pc.is_null(t["trade_date"]), "missing trade_date")]
    for col in ("open", "high", "low", "close"):
        checks.append((pc.is_null(t[col]), f"missing {col}"))
    for col in NUMERIC_COLUMNS:  # NaN and +-Infinity compare false with everything: catch them first
        checks.append((pc.invert(pc.fill_null(pc.is_finite(t[col]), True)), f"non-finite {col}"))
    for col in PRICE_COLUMNS:
        checks.append((pc.fill_null(pc.less_equal(t[col], 0), False), f"non-positive {col}"))
    checks.append((pc.fill_null(pc.less(t["high"], t["low"]), False), "high < low"))
    outside = pc.or_(pc.less(t["close"], t["low"]), pc.greater(t["close"], t["high"]))
    checks.append((pc.fill_null(outside, False), "close outside [low, high]"))
    checks.append((pc.fill_null(pc.less(t["volume"], 0), False), "negative volume"))
    return checks


def _float_values(column: pa.Array, fill: float) -> np.ndarray:
    """A float64 array as numpy, nulls replaced by ``fill`` (a value every rule accepts); no copy when
    it has no nulls."""
    if column.null_count:
        column = pc.fill_null(column, fill)
    return column.to_numpy(zero_copy_only=True)


def _values_pass(t: pa.Table) -> bool:
    """True only when no rule of :func:`_checks` fails on any row, decided in one fused numpy pass
    instead of ~50 Arrow kernels and masks over the whole table (the clean batch, the usual one).
    False means "not proven": :func:`_reasons` then runs the rules themselves.

    The conjunction implies every rule: ``open > 0`` and ``open < inf`` make open finite and positive;
    ``0 < low <= close <= high < inf`` does the same for low, close and high and covers high < low and
    close outside [low, high]; adj_close and volume may be null (the rules skip a null there), else
    ``0 < adj_close < inf`` and ``0 <= volume < inf``. NaN fails every comparison, so it never passes.

    Chunk by chunk (a batch is one chunk per ticker): numpy reads the Arrow buffers in place, where
    combining the chunks first copied every price column of the batch."""
    required = ("trade_date", "open", "high", "low", "close")
    if any(t[c].null_count for c in required):
        return False
    if any(t[c].type != pa.float64() for c in NUMERIC_COLUMNS):
        return False
    inf = np.inf
    for batch in t.select(["open", "high", "low", "close", "adj_close", "volume"]).to_batches():
        o, h, lo, c = (_float_values(batch.column(i), 1.0) for i in range(4))
        ac, v = _float_values(batch.column(4), 1.0), _float_values(batch.column(5), 0.0)
        ok = o > 0
        ok &= o < inf
        ok &= lo > 0
        ok &= h >= lo
        ok &= h < inf
        ok &= c >= lo
        ok &= c <= h
        ok &= ac > 0
        ok &= ac < inf
        ok &= v >= 0
        ok &= v < inf
        if not ok.all():
            return False
    return True


def _reasons(t: pa.Table) -> pa.Array:
    """The source's problem, else the first failed value rule per row, or null for a valid row (vectorized)."""
    problem = t[PROBLEM].combine_chunks() if PROBLEM in t.column_names else pa.nulls(t.num_rows, pa.string())
    if _values_pass(t):
        return problem
    checks = _checks(t)
    any_bad = checks[0][0]
    for mask, _ in checks[1:]:
        any_bad = pc.or_(any_bad, mask)
    if not pc.any(any_bad).as_py():
        return problem
    reason = pa.nulls(t.num_rows, pa.string())
    for mask, text in reversed(checks):  # the first check in the list wins
        reason = pc.if_else(mask, pa.scalar(text), reason)
    return pc.coalesce(problem, reason)


def strictly_increasing(t: pa.Table, keys: Sequence[str]) -> bool:
    """True when every row's key is greater than the previous row's (so no key repeats; vectorized).
    Sources deliver one ticker's days in order, so this settles almost every batch without hashing."""
    n = t.num_rows
    if n < 2:
        return True
    by_runs = _increasing_by_runs(t, keys)
    if by_runs is not None:
        return by_runs
    return _pairs_increasing(t.slice(0, n - 1), t.slice(1), keys)


@lru_cache(maxsize=64)
def _uniform_offsets(n: int, width: int) -> pa.Buffer:
    """The offsets buffer of ``n`` strings of ``width`` bytes each (int32, from 0)."""
    return pa.py_buffer(np.arange(n + 1, dtype=np.int32) * np.int32(width))


def _constant_text(chunk: pa.Array) -> bool:
    """True when a string chunk holds one value ``len(chunk)`` times, read off its buffers with two memory
    compares (every value as long as the first, the bytes the first value repeated); False when unsure."""
    n = len(chunk)
    if n == 0 or chunk.null_count or chunk.type != pa.string() or chunk.offset:
        return False
    _, offsets, data = chunk.buffers()
    first, width = (int(x) for x in np.frombuffer(offsets, np.int32, count=2))
    if first != 0 or n * width >= 2**31:
        return False
    if not offsets.slice(0, (n + 1) * 4).equals(_uniform_offsets(n, width)):
        return False
    return data.slice(0, n * width).equals(pa.py_buffer(data.slice(0, width).to_pybytes() * n))


def _run_starts(column: pa.ChunkedArray) -> np.ndarray:
    """Sorted row numbers where a run of equal values may begin: every change of value and every chunk
    start (a superset is harmless, see :func:`_increasing_by_runs`). A chunk of one repeated text - a
    ticker's rows - is recognized from its buffers; other chunks are run-end encoded."""
    parts, base = [np.zeros(1, np.int64)], 0
    for chunk in column.chunks:
        parts.append(np.array([base], np.int64))
        if not _constant_text(chunk):
            ends = pc.run_end_encode(chunk).run_ends.to_numpy().astype(np.int64)
            parts.append(base + ends[:-1])
        base += len(chunk)
    return np.unique(np.concatenate(parts))


def _increasing_by_runs(t: pa.Table, keys: Sequence[str]) -> bool | None:
    """:func:`strictly_increasing` without comparing every pair of text keys: within runs where the
    leading (text) keys repeat - a ticker's rows - only the last key is compared, in numpy; the full
    key is compared only where a run may begin. None when this does not apply (a null key, a last key
    numpy does not order, a key type runs cannot be found for): the caller compares every pair."""
    *lead, last = keys
    if any(t[k].null_count for k in keys):
        return None
    kind = t.schema.field(last).type
    if not (pa.types.is_integer(kind) or pa.types.is_date(kind) or pa.types.is_timestamp(kind)):
        return None
    try:
        starts = np.unique(np.concatenate([_run_starts(t[k]) for k in lead] or [np.zeros(1, np.int64)]))
    except pa.ArrowNotImplementedError:
        return None
    n = t.num_rows
    starts = starts[(starts > 0) & (starts < n)]
    values = t[last].to_numpy()
    not_greater = np.flatnonzero(values[1:] <= values[:-1]) + 1
    # a row whose leading keys equal the previous row's (not a run start) must have a greater last key
    if not np.isin(not_greater, starts).all():
        return False
    if len(starts) == 0:
        return True
    pairs = t.select(list(keys)).take(pa.array(np.column_stack([starts - 1, starts]).ravel()))  # one take
    return _pairs_increasing(pairs.take(pa.array(np.arange(0, 2 * len(starts), 2))),
                             pairs.take(pa.array(np.arange(1, 2 * len(starts), 2))), keys)


def _pairs_increasing(a: pa.Table, b: pa.Table, keys: Sequence[str]) -> bool:
    """True when every row of ``b`` has a greater key than the same row of ``a`` (lexicographic over
    ``keys``; a null compared while the order is still open counts as out of order)."""
    tie = None  # pairs equal on every key so far
    for k in keys:
        a_k, b_k = a[k], b[k]
        greater = pc.fill_null(pc.greater(a_k, b_k), True)
        equal = pc.fill_null(pc.equal(a_k, b_k), False)
        if tie is None:
            if pc.any(greater).as_py():
                return False
            tie = equal
        else:
            if pc.any(pc.and_(tie, greater)).as_py():
                return False
            tie = pc.and_(tie, equal)
    return not pc.any(tie).as_py()


def _duplicate_reasons(t: pa.Table, reason: pa.Array) -> pa.Array:
    """``reason`` with duplicate keys among the still-valid rows marked (see the module docstring)."""
    keys = list(PRIMARY_KEY)
    if reason.null_count == len(reason):  # no row rejected so far: all are candidates, nothing to take
        candidates = t.select(keys)
        if strictly_increasing(candidates, keys):
            return reason
        valid_idx = pa.array(np.arange(t.num_rows, dtype=np.uint64))  # what indices_nonzero gives
    else:
        valid_idx = pc.indices_nonzero(pc.is_null(reason))
        candidates = t.select(keys).take(valid_idx)
        if strictly_increasing(candidates, keys):
            return reason
    counts = candidates.group_by(keys).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1)).select(keys)
    if repeated.num_rows == 0:
        return reason
    hits = candidates.append_column("_row", valid_idx).join(repeated, keys, join_type="inner")
    groups: dict[tuple, list[int]] = {}
    for row in sorted(hits.to_pylist(), key=lambda r: r["_row"]):
        groups.setdefault(tuple(row[k] for k in keys), []).append(row["_row"])
    values = t.drop_columns([PROBLEM]) if PROBLEM in t.column_names else t
    marks: dict[int, str] = {}
    for rows in groups.values():
        copies = values.take(rows).to_pylist()
        if all(c == copies[0] for c in copies[1:]):
            marks.update(dict.fromkeys(rows[1:], DUPLICATE_COPY))
        else:
            marks.update(dict.fromkeys(rows, DUPLICATE_CONFLICT.format(n=len(rows))))
    extra = [marks.get(i) for i in range(t.num_rows)]
    return pc.coalesce(reason, pa.array(extra, pa.string()))


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and +-Infinity spelled as text, so the stored record is standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def record_json(record: Any) -> str:
    """A source record as standard JSON text (dates and other objects as strings)."""
    return json.dumps(_json_safe(record), default=str, ensure_ascii=False, allow_nan=False)


def split_valid(
    table: pa.Table, raw_records: Sequence[Any] | Callable[[int], Any] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Split normalized rows into (valid quotes, rejected rows with reason and raw record JSON).

    ``raw_records`` gives the source's original record for row ``i`` (a list, or a function that may
    return None); without one the normalized row itself is recorded.
    """
    if table.num_rows == 0:
        return VALID_SCHEMA.empty_table(), REJECTED_SCHEMA.empty_table()
    reason = _duplicate_reasons(table, _reasons(table))
    values = table.drop_columns([PROBLEM]) if PROBLEM in table.column_names else table
    if reason.null_count == len(reason):  # nothing rejected
        return values.cast(VALID_SCHEMA), REJECTED_SCHEMA.empty_table()
    bad = pc.is_valid(reason)
    good = values.filter(pc.invert(bad)).cast(VALID_SCHEMA)
    bad_idx = pc.indices_nonzero(bad).to_pylist()
    rows = values.take(bad_idx).to_pylist()
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
        raws.append(record_json(raw))
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
    duplicates: int = 0  # rows among ``rejected`` quarantined as duplicate keys
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

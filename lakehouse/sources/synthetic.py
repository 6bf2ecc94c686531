"""A deterministic synthetic quote source for benchmarks and tests: ``n`` tickers x business days,
geometric random walks seeded per ticker (same arguments -> identical rows, on every machine).

Usable as the dlt source ``synthetic`` (``lakehouse ingest --source synthetic``) and directly as
Arrow (:func:`generate`) by the features/ML/marts benchmarks.
"""

from __future__ import annotations

import datetime as dt
import zlib
from functools import lru_cache

import numpy as np
import pyarrow as pa

from lakehouse.sources.quotes import Progress, SourceError, Window, quotes_table

EPOCH = np.datetime64("1970-01-01", "D")


def synthetic_tickers(n: int) -> list[str]:
    """``n`` ticker names: SYN0000, SYN0001, ..."""
    return [f"SYN{i:04d}" for i in range(n)]


@lru_cache(maxsize=8)
def business_days(start: dt.date, end: dt.date) -> np.ndarray:
    """Mon-Fri dates between start and end inclusive, as datetime64[D] (read-only, cached)."""
    days = np.arange(np.datetime64(start, "D"), np.datetime64(end, "D") + 1)
    out = days[np.is_busday(days)]
    out.flags.writeable = False
    return out


@lru_cache(maxsize=8)
def _business_dates32(start: dt.date, end: dt.date) -> pa.Array:
    """:func:`business_days` as an Arrow date32 array, built once: every ticker of a run slices the same
    one (Arrow arrays are immutable, so sharing is safe) instead of converting its own copy."""
    days = (business_days(start, end) - EPOCH).astype(np.int32)
    return pa.array(days, pa.int32()).view(pa.date32())


@lru_cache(maxsize=32)
def _constant_strings(value: str, n: int) -> pa.Array:
    """``n`` copies of ``value`` as an Arrow string array, cached: the source and currency columns are
    the same for every ticker of a run."""
    return _repeat_string(value, n)


def _repeat_string(value: str, n: int) -> pa.Array:
    """``n`` copies of ``value`` as an Arrow string array, from its buffers (cheaper than ``pa.repeat``)."""
    data = value.encode()
    if n * len(data) >= 2**31:  # beyond 32-bit offsets
        return pa.repeat(pa.scalar(value, pa.string()), n)
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(len(data))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))


def ticker_bars(ticker: str, start: dt.date, end: dt.date, first_day: dt.date) -> dict[str, np.ndarray]:
    """OHLCV arrays of one ticker on business days in [start, end]; the walk starts at ``first_day``
    so any window of the same ticker yields the same values for the same dates.

    The normal draws are the ones ``rng.normal(loc, scale, n)`` makes (it computes ``loc + scale * z``
    from the same standard normals in the same order), taken with ``standard_normal`` and scaled in
    place: the same bits without numpy's per-element call. Everything after the cumulative sum is
    computed for the kept days only (a resumed window of a few days skips the other 20 years)."""
    all_days = business_days(first_day, end)
    n = len(all_days)
    k = int(np.searchsorted(all_days, np.datetime64(start, "D")))  # the first kept day (days are sorted)
    rng = np.random.default_rng(zlib.crc32(ticker.encode()))
    start_price = 20 + rng.random() * 180
    drift, vol = rng.normal(0.0003, 0.0002), 0.01 + rng.random() * 0.02
    z = rng.standard_normal(2 * n)  # the returns, then the open gaps
    close = z[:n]
    close *= vol
    close += drift
    np.cumsum(close, out=close)
    close = close[k:]
    np.exp(close, out=close)
    close *= start_price
    open_ = z[n + k:]
    open_ *= vol / 3  # rng.normal(0, scale) adds loc=0: only a -0.0 could change, and exp(-0.0) == exp(0.0)
    np.exp(open_, out=open_)
    open_ *= close
    spread = rng.standard_normal(n)[k:]  # its own array: not kept in the table, so its memory is reused
    spread *= vol / 2  # likewise abs(-0.0) == abs(0.0)
    np.abs(spread, out=spread)
    high = np.maximum(open_, close)
    high *= 1 + spread
    low = np.minimum(open_, close)
    low *= np.subtract(1, spread, out=spread)
    volume = rng.lognormal(13, 1, n)[k:]  # kept as the generator's own: it uses the C library's exp
    np.floor(volume, out=volume)
    return {"trade_date": all_days[k:], "open": open_, "high": high, "low": low, "close": close,
            "volume": volume}


class SyntheticFetcher:
    """Deterministic random-walk quotes for tickers named ``SYNnnnn``."""

    name = "synthetic"
    default_start = dt.date(2005, 1, 3)

    def __init__(self, first_day: dt.date | None = None) -> None:
        self.first_day = first_day or self.default_start

    def fetch(self, ticker: str, window: Window, progress: Progress) -> tuple[pa.Table, None]:
        """Bars of ``ticker`` in the window (business days only)."""
        if not ticker.startswith("SYN"):
            raise SourceError(self.name, ticker, "unknown ticker (synthetic tickers are SYN0000, SYN0001, ...)")
        start = max(window.start, self.first_day)
        if start > window.end:
            return quotes_table({"source": []}), None
        bars = ticker_bars(ticker, start, window.end, self.first_day)
        n = len(bars["trade_date"])
        dates = _business_dates32(self.first_day, window.end)
        table = quotes_table({
            "source": _constant_strings(self.name, n),
            "ticker": _repeat_string(ticker, n),
            "trade_date": dates.slice(len(dates) - n),  # the kept days are the last n
            "open": bars["open"], "high": bars["high"], "low": bars["low"], "close": bars["close"],
            "adj_close": bars["close"], "volume": bars["volume"],
            "currency": _constant_strings("USD", n),
        })
        progress.advance(ticker, n, pages=1, total=n)
        return table, None


def generate(n_tickers: int = 500, years: int = 20, end: dt.date = dt.date(2024, 12, 31)) -> pa.Table:
    """All rows of ``n_tickers`` x ``years`` of business days as one Arrow table (~2.6M for 500 x 20)."""
    first = dt.date(end.year - years + 1, 1, 1)
    fetcher = SyntheticFetcher(first_day=first)
    parts = [fetcher.fetch(t, Window(first, end), Progress())[0] for t in synthetic_tickers(n_tickers)]
    return pa.concat_tables(parts)

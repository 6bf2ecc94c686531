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


def ticker_bars(ticker: str, start: dt.date, end: dt.date, first_day: dt.date) -> dict[str, np.ndarray]:
    """OHLCV arrays of one ticker on business days in [start, end]; the walk starts at ``first_day``
    so any window of the same ticker yields the same values for the same dates."""
    all_days = business_days(first_day, end)
    n = len(all_days)
    rng = np.random.default_rng(zlib.crc32(ticker.encode()))
    start_price = 20 + rng.random() * 180
    drift, vol = rng.normal(0.0003, 0.0002), 0.01 + rng.random() * 0.02
    rets = rng.normal(drift, vol, n)
    close = start_price * np.exp(np.cumsum(rets))
    open_ = close * np.exp(rng.normal(0, vol / 3, n))
    spread = np.abs(rng.normal(0, vol / 2, n))
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    volume = np.floor(rng.lognormal(13, 1, n))
    keep = all_days >= np.datetime64(start, "D")
    return {"trade_date": all_days[keep], "open": open_[keep], "high": high[keep], "low": low[keep],
            "close": close[keep], "volume": volume[keep]}


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
        days = (bars["trade_date"] - EPOCH).astype(np.int32)
        table = quotes_table({
            "source": pa.repeat(pa.scalar(self.name, pa.string()), n),
            "ticker": pa.repeat(pa.scalar(ticker, pa.string()), n),
            "trade_date": pa.array(days, pa.int32()).cast(pa.date32()),
            "open": bars["open"], "high": bars["high"], "low": bars["low"], "close": bars["close"],
            "adj_close": bars["close"], "volume": bars["volume"],
            "currency": pa.repeat(pa.scalar("USD", pa.string()), n),
        })
        progress.advance(ticker, n, pages=1, total=n)
        return table, None


def generate(n_tickers: int = 500, years: int = 20, end: dt.date = dt.date(2024, 12, 31)) -> pa.Table:
    """All rows of ``n_tickers`` x ``years`` of business days as one Arrow table (~2.6M for 500 x 20)."""
    first = dt.date(end.year - years + 1, 1, 1)
    fetcher = SyntheticFetcher(first_day=first)
    parts = [fetcher.fetch(t, Window(first, end), Progress())[0] for t in synthetic_tickers(n_tickers)]
    return pa.concat_tables(parts)

"""The offline ``sample`` source: daily quotes of AAPL, IBM, MSFT, GOOG and FB (2000-2013, 12,154 rows)
shipped in ``data/stocks.csv.gz`` (public domain, see ``data/ATTRIBUTION.md``)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from lakehouse.sources.quotes import Progress, SourceError, Window, quotes_table

SAMPLE_FILE = Path(__file__).resolve().parent / "data" / "stocks.csv.gz"
SAMPLE_ROWS = 12_154


@lru_cache(maxsize=1)
def read_sample(path: Path = SAMPLE_FILE) -> pa.Table:
    """The whole sample file as an Arrow table (Ticker, Date, Open, High, Low, Close, Volume, Adj Close)."""
    opts = pacsv.ConvertOptions(column_types={
        "Ticker": pa.string(), "Date": pa.date32(), "Open": pa.float64(), "High": pa.float64(),
        "Low": pa.float64(), "Close": pa.float64(), "Volume": pa.float64(), "Adj Close": pa.float64(),
    })
    return pacsv.read_csv(path, convert_options=opts)


class SampleFetcher:
    """Rows of one ticker from the shipped CSV, filtered to the window."""

    name = "sample"
    default_start = dt.date(1990, 1, 1)

    def __init__(self, path: Path = SAMPLE_FILE) -> None:
        self.data = read_sample(path)
        self.known = set(pc.unique(self.data["Ticker"]).to_pylist())

    def fetch(self, ticker: str, window: Window, progress: Progress) -> tuple[pa.Table, None]:
        """The ticker's rows between ``window.start`` and ``window.end`` (inclusive)."""
        if ticker not in self.known:
            raise SourceError(self.name, ticker, f"unknown ticker (the sample has {', '.join(sorted(self.known))})",
                              SAMPLE_FILE.as_uri())
        d = self.data
        mask = pc.and_(pc.equal(d["Ticker"], ticker),
                       pc.and_(pc.greater_equal(d["Date"], pa.scalar(window.start, pa.date32())),
                               pc.less_equal(d["Date"], pa.scalar(window.end, pa.date32()))))
        rows = d.filter(mask)
        n = rows.num_rows
        table = quotes_table({
            "source": pa.array([self.name] * n, pa.string()), "ticker": rows["Ticker"],
            "trade_date": rows["Date"], "open": rows["Open"], "high": rows["High"], "low": rows["Low"],
            "close": rows["Close"], "adj_close": rows["Adj Close"], "volume": rows["Volume"],
            "currency": pa.array(["USD"] * n, pa.string()),
        })
        progress.advance(ticker, n, pages=1, total=n)
        return table, None

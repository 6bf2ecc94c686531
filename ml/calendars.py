"""Trading days of each ticker's exchange (exchange-calendars): target dates that are real sessions.

A forecast "5 trading days ahead" must name a day the exchange is open, not a weekday that may be a
holiday. The exchange comes from the source that delivered the ticker's quotes (``moex`` -> XMOS,
every other source -> XNYS). Building a calendar takes seconds for decades of history, so each is
built once per process, over the years the data needs only.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from lakehouse.config import Config

#: Exchange of the quotes of each source; sources not listed trade on the NYSE calendar.
SOURCE_EXCHANGE = {"moex": "XMOS"}
DEFAULT_EXCHANGE = "XNYS"


def ticker_exchanges(cfg: Config, tickers: list[str]) -> dict[str, str]:
    """Each ticker's exchange, from the source of its quotes in staging.stg_quotes (NYSE when unknown)."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    from lakehouse.contracts import STG_QUOTES
    from lakehouse.lake import open_lake

    out = dict.fromkeys(tickers, DEFAULT_EXCHANGE)
    with open_lake(cfg) as lake:
        try:
            tbl = lake.catalog.load_table(STG_QUOTES.identifier)
        except (NoSuchTableError, NoSuchNamespaceError):
            return out
        if tbl.current_snapshot() is None:
            return out
        src = tbl.scan(selected_fields=("ticker", "source")).to_arrow().group_by(["ticker", "source"]).aggregate([])
    for rec in src.to_pylist():
        if rec["ticker"] in out:
            out[rec["ticker"]] = exchange_of(rec["source"])
    return out


def exchange_of(source: str | None) -> str:
    """The exchange-calendars code for a quote source."""
    return SOURCE_EXCHANGE.get((source or "").lower(), DEFAULT_EXCHANGE)


_CACHE: dict[str, tuple[int, int, np.ndarray]] = {}


def _build(exchange: str, first_year: int, last_year: int) -> np.ndarray:
    import exchange_calendars as xcals

    cal = xcals.get_calendar(exchange, start=f"{first_year}-01-01", end=f"{last_year}-12-31")
    return cal.sessions.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def sessions(exchange: str, start: dt.date | pd.Timestamp, end: dt.date | pd.Timestamp) -> np.ndarray:
    """Sessions of ``exchange`` covering at least ``start``..``end`` plus a year either side.

    One calendar per exchange and process, rebuilt over a wider range only when a request falls
    outside the one built.
    """
    first, last = max(pd.Timestamp(start).year - 1, 1990), pd.Timestamp(end).year + 1
    have = _CACHE.get(exchange)
    if have is None or first < have[0] or last > have[1]:
        if have is not None:
            first, last = min(first, have[0]), max(last, have[1])
        _CACHE[exchange] = (first, last, _build(exchange, first, last))
    return _CACHE[exchange][2]


def sessions_after(exchange: str, dates: np.ndarray, h: int, horizon_end: pd.Timestamp | None = None) -> np.ndarray:
    """The ``h``-th session of ``exchange`` strictly after each date (datetime64[ns] array)."""
    dates = np.asarray(dates, dtype="datetime64[ns]")
    if len(dates) == 0:
        return dates
    lo, hi = pd.Timestamp(dates.min()), pd.Timestamp(horizon_end if horizon_end is not None else dates.max())
    s = sessions(exchange, lo, hi)
    pos = np.searchsorted(s, dates, side="right") + h - 1
    if (pos >= len(s)).any():
        raise ValueError(f"{exchange} calendar ends {pd.Timestamp(s[-1]).date()}: cannot place a target date")
    return s[pos]


def week_last_sessions(exchange: str, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """The last session of each calendar week (Monday-Sunday) of ``exchange`` between ``start`` and ``end``.

    Weeks are taken from the calendar, not from the data: a week the data covers only up to Wednesday
    still ends on its Friday session, which is then after ``end`` and not returned (so cutting the
    data mid-week never invents an as-of date that the full data would not have).
    """
    s = sessions(exchange, start, end)
    week = pd.DatetimeIndex(s).to_period("W-SUN")
    last = pd.Series(s).groupby(week.to_numpy()).max().to_numpy(dtype="datetime64[ns]")
    last = np.sort(last)
    return last[(last >= np.datetime64(pd.Timestamp(start), "ns")) & (last <= np.datetime64(pd.Timestamp(end), "ns"))]

"""The ``yahoo`` source: daily bars from the Yahoo Finance chart API (unofficial; personal use).

``GET {base}/v8/finance/chart/{ticker}?period1=..&period2=..&interval=1d`` (epoch seconds, period2
exclusive) -> ``chart.result[0]``: ``timestamp`` (session open, UTC), ``indicators.quote[0]`` and
``indicators.adjclose[0].adjclose``; values may be null. Needs a browser-like User-Agent.

A chart whose blocks are missing or of the wrong shape, an indicator whose length differs from the
timestamps (bars can no longer be lined up), or a ``gmtoffset`` that is not a number fails the ticker
(:class:`SourceError`). A bad *bar* only quarantines that bar, with the reason: a missing or unreadable
timestamp, and any value of the wrong kind (text, booleans; NaN and Infinity fail validation).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from lakehouse.sources.http import BROWSER_USER_AGENT, JsonClient, RetryPolicy
from lakehouse.sources.quotes import Progress, SourceError, Window, quotes_table, show


def _epoch(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def _chart_error(status: int, doc: Any) -> str | None:
    try:
        err = doc["chart"]["error"]
        return f"{err.get('code')}: {err.get('description')}"
    except (KeyError, TypeError, AttributeError):
        return None


class YahooFetcher:
    """One request per ticker and window."""

    name = "yahoo"

    def __init__(self, base_url: str, default_start: dt.date, timeout: float,
                 policy: RetryPolicy | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.default_start = default_start
        self.client = JsonClient(self.name, timeout=timeout, policy=policy,
                                 headers={"User-Agent": BROWSER_USER_AGENT})

    def fetch(self, ticker: str, window: Window, progress: Progress) -> tuple[pa.Table, list[dict[str, Any]]]:
        """The daily bars of the window; raw records are one dict per timestamp."""
        url = f"{self.base_url}/v8/finance/chart/{quote(ticker, safe='')}"
        params = {"period1": _epoch(window.start), "period2": _epoch(window.end + dt.timedelta(days=1)),
                  "interval": "1d", "events": "div,split", "includeAdjustedClose": "true"}
        full = f"{url}?period1={params['period1']}&period2={params['period2']}&interval=1d"
        doc = self.client.get_json(url, params, ticker, error_body=_chart_error)

        def fail(message: str) -> SourceError:
            return SourceError(self.name, ticker, message, full)

        try:
            chart = doc["chart"]
            if chart.get("error"):
                raise fail(f"error {_chart_error(200, doc)}")
            result = chart["result"][0]
            meta = result.get("meta") or {}
            stamps = result.get("timestamp") or []
            indicators = result.get("indicators") or {}
            quote_block = (indicators.get("quote") or [{}])[0] or {}
            adj = ((indicators.get("adjclose") or [{}])[0] or {}).get("adjclose")
            currency, offset = meta.get("currency") or "USD", meta.get("gmtoffset") or 0
            opens, highs, lows = quote_block.get("open"), quote_block.get("high"), quote_block.get("low")
            closes, volumes = quote_block.get("close"), quote_block.get("volume")
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise fail(f"unexpected response shape ({type(exc).__name__} {exc})") from exc
        if not isinstance(stamps, list):
            raise fail(f"timestamp is not a list: {show(stamps)}")
        if isinstance(offset, bool) or not isinstance(offset, int | float) or not math.isfinite(offset):
            raise fail(f"gmtoffset {show(offset)} is not a number")
        if not stamps and not window.resumed:
            raise fail(f"no bars between {window.start} and {window.end}")

        def series(name: str, values: Any) -> list[Any]:
            if values is None:
                return [None] * len(stamps)
            if not isinstance(values, list):
                raise fail(f"indicator {name} is not a list: {show(values)}")
            if len(values) != len(stamps):
                raise fail(f"indicator length {len(values)} != {len(stamps)} timestamps ({name})")
            return values

        opens, highs, lows = series("open", opens), series("high", highs), series("low", lows)
        closes, volumes, adjs = series("close", closes), series("volume", volumes), series("adjclose", adj)
        days, problems = zip(*(_session_date(ts, offset) for ts in stamps), strict=True) if stamps else ((), ())
        records = [{"timestamp": ts, "open": o, "high": h, "low": lo, "close": c, "volume": v, "adjclose": a}
                   for ts, o, h, lo, c, v, a in zip(stamps, opens, highs, lows, closes, volumes, adjs, strict=True)]
        n = len(stamps)
        table = quotes_table({
            "source": [self.name] * n, "ticker": [ticker] * n, "trade_date": list(days), "open": opens,
            "high": highs, "low": lows, "close": closes,
            "adj_close": [a if a is not None else c for a, c in zip(adjs, closes, strict=True)],
            "volume": volumes, "currency": [currency] * n,
        }, list(problems))
        progress.advance(ticker, n, pages=1, total=n)
        return table, records


def _session_date(ts: Any, offset: float) -> tuple[dt.date | None, str | None]:
    """The exchange-local date of a bar's session-open timestamp, or None and what is wrong with it."""
    if ts is None:
        return None, "missing timestamp"
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return None, f"unreadable timestamp: {show(ts)}"
    try:
        return dt.datetime.fromtimestamp(ts + offset, dt.UTC).date(), None
    except (OverflowError, OSError, ValueError):  # NaN, Infinity, years beyond 9999
        return None, f"unreadable timestamp: {show(ts)}"

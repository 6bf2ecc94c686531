"""The ``yahoo`` source: daily bars from the Yahoo Finance chart API (unofficial; personal use).

``GET {base}/v8/finance/chart/{ticker}?period1=..&period2=..&interval=1d`` (epoch seconds, period2
exclusive) -> ``chart.result[0]``: ``timestamp`` (session open, UTC), ``indicators.quote[0]`` and
``indicators.adjclose[0].adjclose``; values may be null. Needs a browser-like User-Agent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from lakehouse.sources.http import BROWSER_USER_AGENT, JsonClient, RetryPolicy
from lakehouse.sources.quotes import Progress, SourceError, Window, quotes_table


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
        url = f"{self.base_url}/v8/finance/chart/{ticker}"
        params = {"period1": _epoch(window.start), "period2": _epoch(window.end + dt.timedelta(days=1)),
                  "interval": "1d", "events": "div,split", "includeAdjustedClose": "true"}
        full = f"{url}?period1={params['period1']}&period2={params['period2']}&interval=1d"
        doc = self.client.get_json(url, params, ticker, error_body=_chart_error)
        try:
            chart = doc["chart"]
            if chart.get("error"):
                raise SourceError(self.name, ticker, f"error {_chart_error(200, doc)}", full)
            result = chart["result"][0]
            meta = result.get("meta") or {}
            stamps = result.get("timestamp") or []
            quote = (result.get("indicators", {}).get("quote") or [{}])[0]
            adj = (result.get("indicators", {}).get("adjclose") or [{}])[0].get("adjclose")
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise SourceError(self.name, ticker, f"unexpected response shape ({type(exc).__name__} {exc})",
                              full) from exc
        if not stamps and not window.resumed:
            raise SourceError(self.name, ticker, f"no bars between {window.start} and {window.end}", full)
        offset = int(meta.get("gmtoffset") or 0)
        currency = meta.get("currency") or "USD"

        def series(values: list[Any] | None) -> list[Any]:
            values = values or []
            if len(values) not in (0, len(stamps)):
                raise SourceError(self.name, ticker, f"indicator length {len(values)} != {len(stamps)} timestamps",
                                  full)
            return values or [None] * len(stamps)

        opens, highs, lows = series(quote.get("open")), series(quote.get("high")), series(quote.get("low"))
        closes, volumes, adjs = series(quote.get("close")), series(quote.get("volume")), series(adj)
        days = [dt.datetime.fromtimestamp(ts + offset, dt.UTC).date() for ts in stamps]
        records = [{"timestamp": ts, "open": o, "high": h, "low": lo, "close": c, "volume": v, "adjclose": a}
                   for ts, o, h, lo, c, v, a in zip(stamps, opens, highs, lows, closes, volumes, adjs, strict=True)]
        n = len(stamps)
        table = quotes_table({
            "source": [self.name] * n, "ticker": [ticker] * n, "trade_date": days, "open": opens, "high": highs,
            "low": lows, "close": closes, "adj_close": [a if a is not None else c for a, c in zip(adjs, closes,
                                                                                              strict=True)],
            "volume": volumes, "currency": [currency] * n,
        })
        progress.advance(ticker, n, pages=1, total=n)
        return table, records

"""The ``moex`` source: daily history of shares on a Moscow Exchange board from the MOEX ISS API.

``GET {base}/iss/history/engines/stock/markets/shares/boards/{board}/securities/{ticker}.json``
with ``from``/``till`` and ``start`` paging through the ``history.cursor`` block (INDEX, TOTAL,
PAGESIZE) until ``start >= TOTAL``. MOEX has no adjusted prices: ``adj_close`` = ``close``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from lakehouse.sources.http import JsonClient, RetryPolicy
from lakehouse.sources.quotes import Progress, SourceError, Window, quotes_table

#: MOEX reports roubles with the legacy code SUR; the lake stores ISO 4217.
CURRENCY_CODES = {"SUR": "RUB"}
MAX_PAGES = 10_000


class MoexFetcher:
    """Paged MOEX ISS history of one board."""

    name = "moex"

    def __init__(self, base_url: str, board: str, default_start: dt.date, timeout: float,
                 policy: RetryPolicy | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.board = board
        self.default_start = default_start
        self.client = JsonClient(self.name, timeout=timeout, policy=policy)

    def url(self, ticker: str) -> str:
        """The history URL of ``ticker`` on the configured board."""
        return (f"{self.base_url}/iss/history/engines/stock/markets/shares/boards/{self.board}"
                f"/securities/{ticker}.json")

    def fetch(self, ticker: str, window: Window, progress: Progress) -> tuple[pa.Table, list[dict[str, Any]]]:
        """Every page of the window; raw records are the MOEX rows as column -> value dicts."""
        url = self.url(ticker)
        records: list[dict[str, Any]] = []
        start = 0
        for _ in range(MAX_PAGES):
            params = {"from": window.start.isoformat(), "till": window.end.isoformat(), "start": start,
                      "iss.meta": "off", "iss.only": "history,history.cursor"}
            doc = self.client.get_json(url, params, ticker)
            page_url = f"{url}?from={params['from']}&till={params['till']}&start={start}"
            rows, (index, total, page_size) = self._parse_page(doc, ticker, page_url)
            if index != start:
                raise SourceError(self.name, ticker, f"cursor INDEX {index} does not match start={start}", page_url)
            records.extend(rows)
            progress.advance(ticker, len(rows), pages=1, total=total)
            if not rows or start + len(rows) >= total:
                break
            start += len(rows)
        else:
            raise SourceError(self.name, ticker, f"more than {MAX_PAGES} pages", url)
        if not records and not window.resumed:
            raise SourceError(self.name, ticker, f"no history on board {self.board} between {window.start} and "
                              f"{window.end} (unknown ticker?)", url)
        return self._to_table(ticker, records), records

    def _parse_page(self, doc: Any, ticker: str, url: str) -> tuple[list[dict[str, Any]], tuple[int, int, int]]:
        try:
            hist = doc["history"]
            columns, data = hist["columns"], hist["data"]
            cur = doc["history.cursor"]
            cursor = dict(zip(cur["columns"], cur["data"][0], strict=True)) if cur["data"] else {}
            index, total = int(cursor.get("INDEX", 0)), int(cursor.get("TOTAL", len(data)))
            page_size = int(cursor.get("PAGESIZE", len(data) or 100))
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise SourceError(self.name, ticker, f"unexpected response shape (no history/history.cursor block: "
                              f"{type(exc).__name__} {exc})", url) from exc
        rows = [dict(zip(columns, row, strict=False)) for row in data]
        if rows and not {"TRADEDATE", "CLOSE"} <= set(columns):
            raise SourceError(self.name, ticker, f"history block lacks TRADEDATE/CLOSE (columns {columns})", url)
        return rows, (index, total, page_size)

    def _to_table(self, ticker: str, records: list[dict[str, Any]]) -> pa.Table:
        def col(name: str) -> list[Any]:
            return [r.get(name) for r in records]

        def day(value: Any) -> dt.date | None:
            try:
                return dt.date.fromisoformat(value) if value else None
            except (TypeError, ValueError):
                return None

        n = len(records)
        currency = [CURRENCY_CODES.get(c, c) if c else "RUB" for c in col("CURRENCYID")]
        close = col("CLOSE")
        return quotes_table({
            "source": [self.name] * n, "ticker": [r.get("SECID") or ticker for r in records],
            "trade_date": [day(v) for v in col("TRADEDATE")], "open": col("OPEN"), "high": col("HIGH"),
            "low": col("LOW"), "close": close, "adj_close": close, "volume": col("VOLUME"), "currency": currency,
        })

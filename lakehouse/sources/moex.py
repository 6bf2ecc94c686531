"""The ``moex`` source: daily history of shares on a Moscow Exchange board from the MOEX ISS API.

``GET {base}/iss/history/engines/stock/markets/shares/boards/{board}/securities/{ticker}.json``
with ``from``/``till`` and ``start`` paging through the ``history.cursor`` block (INDEX, TOTAL,
PAGESIZE) until ``start >= TOTAL``. MOEX has no adjusted prices: ``adj_close`` = ``close``.

A page whose blocks are missing or of the wrong shape fails the ticker (:class:`SourceError`); a bad
*row* only quarantines that row, with the reason: a row that is not a list of one value per column
(``null``, too short), an unreadable ``TRADEDATE``, a ``SECID`` other than the ticker asked for (stored
under the requested ticker, its own SECID kept in the raw record), and any value of the wrong kind.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from lakehouse.sources.http import JsonClient, RetryPolicy
from lakehouse.sources.quotes import Progress, SourceError, Window, quotes_table, show

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
        return (f"{self.base_url}/iss/history/engines/stock/markets/shares/boards/{quote(self.board, safe='')}"
                f"/securities/{quote(ticker, safe='')}.json")

    def fetch(self, ticker: str, window: Window, progress: Progress) -> tuple[pa.Table, list[dict[str, Any]]]:
        """Every page of the window; raw records are the MOEX rows as column -> value dicts (a malformed
        row as ``{"row": <what was sent>}``)."""
        url = self.url(ticker)
        rows: list[tuple[dict[str, Any], str | None]] = []
        start = 0
        for _ in range(MAX_PAGES):
            params = {"from": window.start.isoformat(), "till": window.end.isoformat(), "start": start,
                      "iss.meta": "off", "iss.only": "history,history.cursor"}
            doc = self.client.get_json(url, params, ticker)
            page_url = f"{url}?from={params['from']}&till={params['till']}&start={start}"
            page, (index, total, page_size) = self._parse_page(doc, ticker, page_url)
            if index != start:
                raise SourceError(self.name, ticker, f"cursor INDEX {index} does not match start={start}", page_url)
            rows.extend(page)
            progress.advance(ticker, len(page), pages=1, total=total)
            if not page or start + len(page) >= total:
                break
            start += len(page)
        else:
            raise SourceError(self.name, ticker, f"more than {MAX_PAGES} pages", url)
        if not rows and not window.resumed:
            raise SourceError(self.name, ticker, f"no history on board {self.board} between {window.start} and "
                              f"{window.end} (unknown ticker?)", url)
        return self._to_table(ticker, rows)

    def _parse_page(self, doc: Any, ticker: str,
                    url: str) -> tuple[list[tuple[dict[str, Any], str | None]], tuple[int, int, int]]:
        """The page's rows as (record, what is wrong with its shape or None) and its cursor."""
        try:
            hist = doc["history"]
            columns, data = hist["columns"], hist["data"]
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                raise TypeError(f"history.columns is not a list of names: {show(columns)}")
            if not isinstance(data, list):
                raise TypeError(f"history.data is not a list: {show(data)}")
            cur = doc["history.cursor"]
            cursor = dict(zip(cur["columns"], cur["data"][0], strict=True)) if cur["data"] else {}
            index, total = int(cursor.get("INDEX", 0)), int(cursor.get("TOTAL", len(data)))
            page_size = int(cursor.get("PAGESIZE", len(data) or 100))
        except (KeyError, TypeError, IndexError, ValueError, OverflowError) as exc:
            raise SourceError(self.name, ticker, f"unexpected response shape (no history/history.cursor block: "
                              f"{type(exc).__name__} {exc})", url) from exc
        if data and not {"TRADEDATE", "CLOSE"} <= set(columns):
            raise SourceError(self.name, ticker, f"history block lacks TRADEDATE/CLOSE (columns {columns})", url)
        return [_record(columns, row) for row in data], (index, total, page_size)

    def _to_table(self, ticker: str, rows: list[tuple[dict[str, Any], str | None]]) -> tuple[pa.Table,
                                                                                             list[dict[str, Any]]]:
        records = [record for record, _ in rows]
        problems: list[str | None] = []
        days: list[dt.date | None] = []
        for record, problem in rows:
            day = None
            if problem is None:
                day, problem = _trade_date(record.get("TRADEDATE"))
            secid = record.get("SECID")
            if problem is None and secid is not None and str(secid).strip().upper() != ticker:
                problem = f"row of another ticker: SECID {show(secid)}"
            problems.append(problem)
            days.append(day)

        def col(name: str) -> list[Any]:
            return [r.get(name) for r in records]

        n = len(records)
        currency = [CURRENCY_CODES.get(c, c) if isinstance(c, str) else "RUB" if c is None else c
                    for c in col("CURRENCYID")]
        close = col("CLOSE")
        table = quotes_table({
            "source": [self.name] * n, "ticker": [ticker] * n, "trade_date": days, "open": col("OPEN"),
            "high": col("HIGH"), "low": col("LOW"), "close": close, "adj_close": close, "volume": col("VOLUME"),
            "currency": currency,
        }, problems)
        return table, records


_JSON_KINDS = ((type(None), "null"), (bool, "a boolean"), (str, "text"), (int | float, "a number"),
               (dict, "an object"))


def _record(columns: list[str], row: Any) -> tuple[dict[str, Any], str | None]:
    """One history row as a column -> value dict, and what is wrong with its shape (a row that is not a
    list of one value per column keeps only ``{"row": <what was sent>}``)."""
    if not isinstance(row, list):
        kind = next((name for t, name in _JSON_KINDS if isinstance(row, t)), type(row).__name__)
        return {"row": row}, f"malformed row: {kind} instead of {len(columns)} values"
    if len(row) != len(columns):
        return {"row": row}, f"malformed row: {len(row)} values for {len(columns)} columns"
    return dict(zip(columns, row, strict=True)), None


def _trade_date(value: Any) -> tuple[dt.date | None, str | None]:
    """A TRADEDATE as a date; None when absent (the row is rejected as missing its date) or, with the
    reason, when unreadable."""
    if value is None or value == "":
        return None, None
    try:
        return dt.date.fromisoformat(value), None
    except (TypeError, ValueError):
        return None, f"unreadable trade_date: {show(value)}"

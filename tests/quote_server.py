"""A local HTTP server replaying realistic MOEX ISS and Yahoo chart responses for ingestion tests.

Data is generated deterministically per ticker; the server honors MOEX ``from``/``till``/``start``
paging (page size 100) and Yahoo ``period1``/``period2``. Special tickers misbehave on purpose:

- MOEX ``GAZP``: first request 429 with ``Retry-After: 1``; ``LKOH``: first request 503 (no header);
  ``NOPE``: unknown (200, empty history); ``HTML``: 200 HTML challenge page; ``TRUNC``: truncated JSON;
  ``E404``: HTTP 404; ``EMPTY``: 200 with an empty body; ``DOWN``: always 503.
- Yahoo ``MSFT``: first request 429 ``Edge: Too Many Requests``; ``NOPE``: 404 chart error; any request
  without a browser User-Agent: 429.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from lakehouse.net import free_port

MOEX_COLUMNS = ["BOARDID", "TRADEDATE", "SHORTNAME", "SECID", "NUMTRADES", "VALUE", "OPEN", "LOW", "HIGH",
                "LEGALCLOSEPRICE", "WAPRICE", "CLOSE", "VOLUME", "MARKETPRICE2", "MARKETPRICE3", "ADMITTEDQUOTE",
                "MP2VALTRD", "MARKETPRICE3TRADESVALUE", "ADMITTEDVALUE", "WAVAL", "TRADINGSESSION", "CURRENCYID",
                "TRENDCLSPR"]
MOEX_PAGE = 100
#: MOEX days served for normal tickers: business days of 2024 (262 days).
MOEX_FIRST, MOEX_LAST = dt.date(2024, 1, 1), dt.date(2024, 12, 31)
#: SBER quirks: an untraded day (null prices) and a row with high < low; both must be rejected.
SBER_NULL_DAY, SBER_BAD_DAY = dt.date(2024, 3, 8), dt.date(2024, 5, 6)
YAHOO_FIRST, YAHOO_LAST = dt.date(2024, 1, 2), dt.date(2024, 3, 28)
YAHOO_NULL_DAY = dt.date(2024, 2, 14)

HTML_PAGE = ("<!DOCTYPE html><html><head><title>Just a moment...</title></head><body><noscript>Enable "
             "JavaScript and cookies to continue</noscript><script>/* challenge */</script></body></html>")


def business_days(first: dt.date, last: dt.date) -> list[dt.date]:
    """Mon-Fri dates in [first, last]."""
    out, d = [], first
    while d <= last:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


def moex_rows(ticker: str) -> list[list]:
    """Every history row of ``ticker`` (full column set, like the live API)."""
    rows = []
    base = 100.0 + (sum(map(ord, ticker)) % 50)
    for i, day in enumerate(business_days(MOEX_FIRST, MOEX_LAST)):
        close = round(base + (i % 17) - 8 + i * 0.05, 2)
        open_, low, high = round(close - 0.5, 2), round(close - 1.5, 2), round(close + 1.25, 2)
        volume = 100000 + i * 10
        row = ["TQBR", day.isoformat(), f"{ticker} ao", ticker, 1000 + i, close * volume, open_, low, high,
               close, close, close, volume, close, close, close, close * volume, close * volume, close * volume, 0,
               3, "SUR", 0.1]
        if ticker == "SBER" and day == SBER_NULL_DAY:
            for col in ("OPEN", "LOW", "HIGH", "CLOSE", "WAPRICE", "LEGALCLOSEPRICE"):
                row[MOEX_COLUMNS.index(col)] = None
            row[MOEX_COLUMNS.index("NUMTRADES")] = 0
            row[MOEX_COLUMNS.index("VOLUME")] = 0
        if ticker == "SBER" and day == SBER_BAD_DAY:
            row[MOEX_COLUMNS.index("HIGH")], row[MOEX_COLUMNS.index("LOW")] = low, high
        rows.append(row)
    return rows


def yahoo_bars(ticker: str) -> list[tuple[int, dict]]:
    """(session-open epoch, values) for every bar of ``ticker``."""
    out = []
    for i, day in enumerate(business_days(YAHOO_FIRST, YAHOO_LAST)):
        ts = int(dt.datetime(day.year, day.month, day.day, 14, 30, tzinfo=dt.UTC).timestamp())
        close = 180.0 + i * 0.5
        vals = {"open": close - 1, "high": close + 2, "low": close - 2, "close": close, "volume": 50_000_000 + i,
                "adjclose": close * 0.98}
        if day == YAHOO_NULL_DAY:
            vals = dict.fromkeys(vals)
        out.append((ts, vals))
    return out


class QuoteServer:
    """The replay server on a free loopback port; ``requests`` logs (path, query dict, user agent)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[tuple[str, dict[str, str], str]] = []
        self.hits: Counter[str] = Counter()
        self.delay = 0.0  # seconds to sleep before answering (for kill tests)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                ua = self.headers.get("User-Agent", "")
                server.requests.append((url.path, query, ua))
                server.hits[url.path] += 1
                if server.delay:
                    threading.Event().wait(server.delay)
                status, headers, body = server.route(url.path, query, ua, server.hits[url.path])
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> QuoteServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def moex_requests(self, ticker: str) -> list[dict[str, str]]:
        """Query strings of the MOEX history requests made for ``ticker``."""
        return [q for p, q, _ in self.requests if p.endswith(f"/securities/{ticker}.json")]

    # -- routing -------------------------------------------------------------------------------------
    def route(self, path: str, q: dict[str, str], ua: str, hit: int) -> tuple[int, dict[str, str], bytes]:
        js = {"Content-Type": "application/json; charset=utf-8"}
        if path.startswith("/iss/history/"):
            ticker = path.rsplit("/", 1)[-1].removesuffix(".json")
            if ticker == "GAZP" and hit == 1:
                return 429, {"Retry-After": "1", "Content-Type": "text/plain"}, b"Too Many Requests"
            if ticker == "LKOH" and hit == 1:
                return 503, {"Content-Type": "text/plain"}, b"Service Unavailable"
            if ticker == "DOWN":
                return 503, {"Content-Type": "text/plain"}, b"Service Unavailable"
            if ticker == "HTML":
                return 200, {"Content-Type": "text/html; charset=utf-8"}, HTML_PAGE.encode()
            if ticker == "E404":
                return 404, {"Content-Type": "text/html"}, b"<html><body>404 Not Found</body></html>"
            if ticker == "EMPTY":
                return 200, js, b""
            body = json.dumps(self.moex_page(ticker, q)).encode()
            if ticker == "TRUNC":
                body = body[: len(body) // 2]
            return 200, js, body
        if path.startswith("/v8/finance/chart/"):
            ticker = path.rsplit("/", 1)[-1]
            if "Mozilla" not in ua:
                return 429, {"Content-Type": "text/plain"}, b"Edge: Too Many Requests"
            if ticker == "MSFT" and hit == 1:
                return 429, {"Content-Type": "text/plain"}, b"Edge: Too Many Requests"
            if ticker == "NOPE":
                err = {"chart": {"result": None, "error": {"code": "Not Found",
                                                           "description": "No data found, symbol may be delisted"}}}
                return 404, js, json.dumps(err).encode()
            return 200, js, json.dumps(self.yahoo_chart(ticker, q)).encode()
        return 404, {"Content-Type": "text/plain"}, b"not found"

    def moex_page(self, ticker: str, q: dict[str, str]) -> dict:
        rows = [] if ticker == "NOPE" else moex_rows(ticker)
        lo, hi = q.get("from", "0000"), q.get("till", "9999")
        rows = [r for r in rows if lo <= r[1] <= hi]
        start = int(q.get("start", 0))
        page = rows[start:start + MOEX_PAGE]
        return {"history": {"columns": MOEX_COLUMNS, "data": page},
                "history.cursor": {"columns": ["INDEX", "TOTAL", "PAGESIZE"], "data": [[start, len(rows), MOEX_PAGE]]}}

    def yahoo_chart(self, ticker: str, q: dict[str, str]) -> dict:
        p1, p2 = int(q["period1"]), int(q["period2"])
        bars = [(ts, v) for ts, v in yahoo_bars(ticker) if p1 <= ts < p2]
        quote = {k: [v[k] for _, v in bars] for k in ("open", "high", "low", "close", "volume")}
        result = {"meta": {"currency": "USD", "symbol": ticker, "exchangeTimezoneName": "America/New_York",
                           "gmtoffset": -18000},
                  "timestamp": [ts for ts, _ in bars],
                  "indicators": {"quote": [quote], "adjclose": [{"adjclose": [v["adjclose"] for _, v in bars]}]}}
        if not bars:
            result.pop("timestamp")
        return {"chart": {"result": [result], "error": None}}

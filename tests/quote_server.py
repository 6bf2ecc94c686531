"""A local HTTP server replaying realistic MOEX ISS and Yahoo chart responses for ingestion tests.

Data is generated deterministically per ticker; the server honors MOEX ``from``/``till``/``start``
paging (page size 100) and Yahoo ``period1``/``period2``. Special tickers misbehave on purpose:

- MOEX ``GAZP``: first request 429 with ``Retry-After: 1``; ``LKOH``: first request 503 (no header);
  ``SLOW``: every other request 429 with ``Retry-After: 30``; ``NOPE``: unknown (200, empty history);
  ``HTML``: 200 HTML challenge page; ``TRUNC``: truncated JSON; ``E404``: HTTP 404; ``EMPTY``: 200 with an
  empty body; ``DOWN``: always 503; ``FLAKY``: first request an HTML page, then normal; ``BADV``: a
  history of hostile rows (:func:`moex_hostile_rows`: NaN, Infinity, text prices, missing and unreadable
  dates, duplicated dates, a row of another SECID, a null row, a short row, a row far outside the
  requested window).
- Yahoo ``MSFT``: first request 429 ``Edge: Too Many Requests``; ``NOPE``: 404 chart error; any request
  without a browser User-Agent: 429; ``YBAD``: hostile bars (:func:`yahoo_hostile_chart`); ``YLEN``: an
  indicator shorter than the timestamps; ``YOFF``: a ``gmtoffset`` that is not a number.
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
#: The foreign SECID the hostile MOEX ticker slips in (dated MOEX_LAST, so it would move that ticker's state).
FOREIGN_SECID = "GAZP"

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


def _moex_day(i: int) -> dt.date:
    return business_days(MOEX_FIRST, MOEX_LAST)[i]


#: What the hostile MOEX ticker ``BADV`` does to its history, by business-day index of 2024: the value
#: it sends and the reason the row must be quarantined with (see :func:`moex_hostile_rows`).
MOEX_HOSTILE = {
    10: ("CLOSE", float("nan"), "non-finite close"),
    11: ("HIGH", float("inf"), "non-finite high"),
    12: ("LOW", float("-inf"), "non-finite low"),
    13: ("CLOSE", "n/a", "non-numeric close: 'n/a'"),
    14: ("OPEN", "101.5", "non-numeric open: '101.5'"),
    15: ("VOLUME", float("nan"), "non-finite volume"),
    16: ("TRADEDATE", None, "missing trade_date"),
    17: ("TRADEDATE", "2024-02-30", "unreadable trade_date: '2024-02-30'"),
}
#: Index of a day sent twice with identical values (one copy loads) and of a day sent twice with
#: different closes (both quarantined).
MOEX_DUP_SAME, MOEX_DUP_CONFLICT = 20, 21
#: Index of the day after which a null row and a 3-value row are sent.
MOEX_JUNK_AFTER = 40


def moex_hostile_rows() -> list[tuple[str, object]]:
    """(date used for the from/till filter, row) of ``BADV``: its clean 2024 history with the rows of
    :data:`MOEX_HOSTILE` broken, duplicated days, a null and a short row, a row of :data:`FOREIGN_SECID`
    and a row dated 2099 (both sent with the last day)."""
    col = MOEX_COLUMNS.index
    out: list[tuple[str, object]] = []
    for i, row in enumerate(moex_rows("BADV")):
        day = row[1]
        if i in MOEX_HOSTILE:
            name, value, _ = MOEX_HOSTILE[i]
            row[col(name)] = value
        out.append((day, row))
        if i == MOEX_DUP_SAME:
            out.append((day, list(row)))
        if i == MOEX_DUP_CONFLICT:
            other = list(row)
            other[col("CLOSE")] = round(row[col("CLOSE")] + 0.5, 2)
            out.append((day, other))
        if i == MOEX_JUNK_AFTER:
            out.append((day, None))
            out.append((day, row[:3]))
    last = out[-1][0]
    foreign = list(out[-1][1])
    foreign[col("SECID")], foreign[col("SHORTNAME")] = FOREIGN_SECID, f"{FOREIGN_SECID} ao"
    future = list(out[-1][1])
    future[col("TRADEDATE")] = "2099-01-05"
    out.extend([(last, foreign), (last, future)])
    return out


def moex_hostile_reasons() -> dict[tuple[str | None, str], int]:
    """(trade date or None, reason) -> count of the quarantined rows ``BADV`` must produce in a 2024 load."""
    reasons: dict[tuple[str | None, str], int] = {}

    def add(day: str | None, reason: str, n: int = 1) -> None:
        reasons[(day, reason)] = reasons.get((day, reason), 0) + n

    for i, (name, _, reason) in MOEX_HOSTILE.items():
        add(None if name == "TRADEDATE" else _moex_day(i).isoformat(), reason)
    add(_moex_day(MOEX_DUP_SAME).isoformat(), "duplicate row: an identical copy is loaded")
    add(_moex_day(MOEX_DUP_CONFLICT).isoformat(), "duplicate key with different values (2 rows in this load)", 2)
    add(None, "malformed row: null instead of 23 values")
    add(None, "malformed row: 3 values for 23 columns")
    add(MOEX_LAST.isoformat(), f"row of another ticker: SECID {FOREIGN_SECID!r}")
    add("2099-01-05", "trade_date outside the requested window 2024-01-01..2024-12-31")
    return reasons


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
            if ticker == "SLOW" and hit % 2 == 1:
                return 429, {"Retry-After": "30", "Content-Type": "text/plain"}, b"Too Many Requests"
            if ticker == "LKOH" and hit == 1:
                return 503, {"Content-Type": "text/plain"}, b"Service Unavailable"
            if ticker == "FLAKY" and hit == 1:
                return 200, {"Content-Type": "text/html; charset=utf-8"}, HTML_PAGE.encode()
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
        dated = moex_hostile_rows() if ticker == "BADV" else [] if ticker == "NOPE" else \
            [(r[1], r) for r in moex_rows(ticker)]
        lo, hi = q.get("from", "0000"), q.get("till", "9999")
        rows = [r for day, r in dated if lo <= day <= hi]
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
        if ticker == "YBAD":
            yahoo_hostile_chart(result)
        if ticker == "YLEN":
            quote["close"] = quote["close"][:-1]
        if ticker == "YOFF":
            result["meta"]["gmtoffset"] = "EST"
        return {"chart": {"result": [result], "error": None}}


#: What ``YBAD`` does to its bars, by index in the response: (field, value, reason it must be quarantined
#: with); a trade date of None means the row has no readable date.
YAHOO_HOSTILE = {
    3: ("timestamp", None, "missing timestamp"),
    4: ("timestamp", "1704900000", "unreadable timestamp: '1704900000'"),
    5: ("close", "n/a", "non-numeric close: 'n/a'"),
    6: ("open", float("nan"), "non-finite open"),
    7: ("high", float("inf"), "non-finite high"),
    8: ("volume", True, "non-numeric volume: True"),
    9: ("timestamp", 10**20, "unreadable timestamp: 100000000000000000000"),
}
#: Index of a bar whose timestamp is sent twice with the same values (one copy loads).
YAHOO_DUP = 12


def yahoo_hostile_chart(result: dict) -> None:
    """Break the bars of a chart result in place as :data:`YAHOO_HOSTILE` says and repeat bar
    :data:`YAHOO_DUP` right after itself."""
    stamps = result["timestamp"]
    quote = result["indicators"]["quote"][0]
    adj = result["indicators"]["adjclose"][0]["adjclose"]
    for i, (name, value, _) in YAHOO_HOSTILE.items():
        if name == "timestamp":
            stamps[i] = value
        else:
            quote[name][i] = value
    for series in (stamps, adj, *quote.values()):
        series.insert(YAHOO_DUP + 1, series[YAHOO_DUP])

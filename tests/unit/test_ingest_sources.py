"""Quote sources against a local server replaying MOEX ISS / Yahoo chart responses, HTTP retries and
body checks, and validation rules (no lake involved)."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
from urllib3.util.retry import RequestHistory

from lakehouse.net import free_port
from lakehouse.sources.http import JsonClient, RetryPolicy
from lakehouse.sources.moex import MoexFetcher
from lakehouse.sources.quotes import Progress, SourceError, Window, quotes_table, split_valid
from lakehouse.sources.sample import SAMPLE_ROWS, SampleFetcher, read_sample
from lakehouse.sources.synthetic import SyntheticFetcher, generate
from lakehouse.sources.yahoo import YahooFetcher
from tests.quote_server import SBER_BAD_DAY, SBER_NULL_DAY, YAHOO_NULL_DAY, QuoteServer, business_days

FAST = RetryPolicy(max_retries=3, base_delay=0.01, max_delay=2.0)
YEAR_2024 = Window(dt.date(2024, 1, 1), dt.date(2024, 12, 31))


@pytest.fixture(scope="module")
def server():
    with QuoteServer() as srv:
        yield srv


class Pages(Progress):
    def __init__(self) -> None:
        self.pages: dict[str, int] = {}

    def advance(self, ticker, rows, pages=1, total=None) -> None:
        self.pages[ticker] = self.pages.get(ticker, 0) + pages


def moex(server) -> MoexFetcher:
    return MoexFetcher(server.url, "TQBR", dt.date(2024, 1, 1), timeout=5, policy=FAST)


def test_moex_pages_through_cursor_and_rejects_bad_rows(server):
    progress = Pages()
    table, raws = moex(server).fetch("SBER", YEAR_2024, progress)
    days = business_days(dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    assert table.num_rows == len(days) == 262
    assert progress.pages["SBER"] == 3  # 100 + 100 + 62
    assert [int(q["start"]) for q in server.moex_requests("SBER")][-3:] == [0, 100, 200]
    q = server.moex_requests("SBER")[-1]
    assert q["iss.meta"] == "off" and q["iss.only"] == "history,history.cursor"
    good, rejected = split_valid(table, raws)
    assert good.num_rows == 260
    reasons = dict(zip(rejected["trade_date"].to_pylist(), rejected["reason"].to_pylist(), strict=True))
    assert reasons == {SBER_NULL_DAY: "missing open", SBER_BAD_DAY: "high < low"}
    raw = json.loads(rejected["raw_record"][0].as_py())
    assert raw["SECID"] == "SBER" and raw["NUMTRADES"] == 0 and raw["OPEN"] is None
    assert set(good["currency"].to_pylist()) == {"RUB"}


def test_moex_window_is_sent_as_from_till(server):
    table, _ = moex(server).fetch("SBER", Window(dt.date(2024, 7, 1), dt.date(2024, 7, 31)), Progress())
    assert table.num_rows == 23
    assert min(table["trade_date"].to_pylist()) == dt.date(2024, 7, 1)
    q = server.moex_requests("SBER")[-1]
    assert (q["from"], q["till"]) == ("2024-07-01", "2024-07-31")


def test_moex_429_retry_after_then_success(server):
    fetcher = moex(server)
    table, _ = fetcher.fetch("GAZP", YEAR_2024, Progress())
    assert table.num_rows == 262
    assert fetcher.client.retries == 1
    assert 0.95 <= fetcher.client.waits[0] < 1.9  # Retry-After: 1 honored (not the 0.01 s backoff)


def test_moex_retry_after_is_capped_at_the_backoff_maximum(server):
    fetcher = MoexFetcher(server.url, "TQBR", dt.date(2024, 1, 1), timeout=5,
                          policy=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.2))
    table, _ = fetcher.fetch("SLOW", YEAR_2024, Progress())  # every page first answers 429, Retry-After: 30
    assert table.num_rows == 262
    assert fetcher.client.retries == 3 and max(fetcher.client.waits) < 0.6


def test_moex_503_backoff_then_success(server):
    fetcher = moex(server)
    table, _ = fetcher.fetch("LKOH", YEAR_2024, Progress())
    assert table.num_rows == 262
    assert fetcher.client.retries == 1 and FAST.base_delay / 2 <= fetcher.client.waits[0] < 0.5


def test_connection_errors_are_retried_then_named():
    client = JsonClient("moex", timeout=2, policy=RetryPolicy(max_retries=2, base_delay=0.01, max_delay=0.05))
    url = f"http://127.0.0.1:{free_port()}/iss/history/X.json"
    with pytest.raises(SourceError) as err:
        client.get_json(url, {"from": "2024-01-01"}, "X")
    msg = str(err.value)
    assert msg.startswith("moex X: request failed after 3 attempts: NewConnectionError")
    assert f"{url}?from=2024-01-01" in msg
    assert client.retries == 2


@pytest.mark.parametrize(("ticker", "needle"), [
    ("NOPE", "no history on board TQBR"),
    ("HTML", "HTML page instead of JSON"),
    ("TRUNC", "truncated or invalid JSON"),
    ("E404", "HTTP 404"),
    ("EMPTY", "empty response"),
    ("DOWN", "HTTP 503 after 4 attempts"),
])
def test_moex_errors_name_source_ticker_and_url(server, ticker, needle):
    fetcher = moex(server)
    with pytest.raises(SourceError) as err:
        fetcher.fetch(ticker, YEAR_2024, Progress())
    msg = str(err.value)
    assert needle in msg
    assert msg.startswith(f"moex {ticker}:")
    assert f"{server.url}/iss/history/engines/stock/markets/shares/boards/TQBR/securities/{ticker}.json" in msg


def test_moex_resumed_window_without_rows_is_not_an_error(server):
    window = Window(dt.date(2025, 1, 1), dt.date(2025, 1, 5), resumed=True)
    table, _ = moex(server).fetch("SBER", window, Progress())
    assert table.num_rows == 0


def test_yahoo_chart_with_nulls_and_browser_user_agent(server):
    fetcher = YahooFetcher(server.url, dt.date(2024, 1, 1), timeout=5, policy=FAST)
    table, raws = fetcher.fetch("AAPL", Window(dt.date(2024, 1, 1), dt.date(2024, 3, 31)), Progress())
    assert table.num_rows == len(business_days(dt.date(2024, 1, 2), dt.date(2024, 3, 28)))
    assert "Mozilla" in server.requests[-1][2]
    assert table["trade_date"][0].as_py() == dt.date(2024, 1, 2)  # session open 14:30Z -> local date
    good, rejected = split_valid(table, raws)
    assert rejected.num_rows == 1 and rejected["trade_date"][0].as_py() == YAHOO_NULL_DAY
    assert rejected["reason"][0].as_py() == "missing open"
    first = good.slice(0, 1).to_pylist()[0]
    assert first["close"] == 180.0 and first["adj_close"] == pytest.approx(176.4) and first["currency"] == "USD"


def test_yahoo_429_then_success_and_404_error(server):
    fetcher = YahooFetcher(server.url, dt.date(2024, 1, 1), timeout=5, policy=FAST)
    table, _ = fetcher.fetch("MSFT", Window(dt.date(2024, 1, 1), dt.date(2024, 1, 31)), Progress())
    assert table.num_rows == 22 and fetcher.client.retries == 1
    with pytest.raises(SourceError, match=r"yahoo NOPE: HTTP 404: 'Not Found: No data found.*/v8/finance/chart/NOPE"):
        fetcher.fetch("NOPE", Window(dt.date(2024, 1, 1), dt.date(2024, 1, 31)), Progress())


def test_yahoo_without_browser_user_agent_is_throttled(server):
    client = JsonClient("yahoo", timeout=5, policy=RetryPolicy(1, 0.01, 0.05))
    with pytest.raises(SourceError, match="HTTP 429 after 2 attempts: 'Edge: Too Many Requests'"):
        client.get_json(f"{server.url}/v8/finance/chart/AAPL", {"period1": 0, "period2": 1}, "AAPL")


def test_retry_policy_is_bounded_with_jitter():
    retry = RetryPolicy(max_retries=10, base_delay=0.5, max_delay=4.0).retry()
    assert retry.total == 10 and retry.is_retry("GET", 429) and retry.is_retry("GET", 503)
    assert not retry.is_retry("GET", 404) and not retry.is_retry("POST", 503)

    def delays(errors: int) -> list[float]:
        after = retry.new(history=tuple(RequestHistory("GET", "/", None, 503, None) for _ in range(errors)))
        return [after.get_backoff_time() for _ in range(50)]

    first = delays(1)
    assert min(first) >= 0.25 and max(first) <= 0.5  # the first retry waits too
    assert len({round(d, 6) for d in first}) > 20  # jittered
    assert all(2.0 <= d <= 4.0 for d in delays(9))  # exponential, capped at max_delay
    assert retry.parse_retry_after("120") == 4.0  # a long Retry-After is capped
    assert retry.parse_retry_after("3") == 3.0 and retry.parse_retry_after("soon") == 0.0  # -> the backoff
    assert retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_validation_rules_each_reason():
    rows = {
        "source": ["t"] * 7, "ticker": ["X"] * 7,
        "trade_date": [dt.date(2024, 1, d) for d in (1, 2, 3, 4, 5, 8)] + [None],
        "open": [10, 0, 10, 10, 10, 10, 10], "high": [11, 11, 9, 11, 11, 11, 11],
        "low": [9, 9, 10, 9, 9, 9, 9], "close": [10, 10, 10, 12, 10, 10, 10],
        "adj_close": [10, 10, 10, 10, 10, 10, 10], "volume": [1, 1, 1, 1, -5, None, 1],
    }
    good, rejected = split_valid(quotes_table(rows))
    assert good.num_rows == 2  # the first row and the one with a null volume
    assert rejected["reason"].to_pylist() == [
        "non-positive open", "high < low", "close outside [low, high]", "negative volume", "missing trade_date"]
    assert json.loads(rejected["raw_record"][0].as_py())["open"] == 0
    assert good.schema.field("trade_date").nullable is False


def test_sample_source_has_the_documented_rows():
    data = read_sample()
    assert data.num_rows == SAMPLE_ROWS == 12_154
    fetcher = SampleFetcher()
    counts = {t: fetcher.fetch(t, Window(dt.date(1990, 1, 1), dt.date(2030, 1, 1)), Progress())[0].num_rows
              for t in ("AAPL", "IBM", "MSFT", "GOOG", "FB")}
    assert counts == {"AAPL": 3270, "IBM": 3270, "MSFT": 3270, "GOOG": 2148, "FB": 196}
    with pytest.raises(SourceError, match="sample ZZZ: unknown ticker"):
        fetcher.fetch("ZZZ", Window(dt.date(2000, 1, 1), dt.date(2001, 1, 1)), Progress())


def test_synthetic_is_deterministic_and_window_stable():
    a = generate(3, 2, end=dt.date(2024, 12, 31))
    b = generate(3, 2, end=dt.date(2024, 12, 31))
    assert a.equals(b) and a.num_rows == 3 * len(business_days(dt.date(2023, 1, 1), dt.date(2024, 12, 31)))
    f = SyntheticFetcher(dt.date(2023, 1, 2))
    full = f.fetch("SYN0001", Window(dt.date(2023, 1, 2), dt.date(2024, 12, 31)), Progress())[0]
    tail = f.fetch("SYN0001", Window(dt.date(2024, 6, 1), dt.date(2024, 12, 31)), Progress())[0]
    assert full.slice(full.num_rows - tail.num_rows).equals(tail)
    assert split_valid(full)[1].num_rows == 0
    assert isinstance(full["ticker"], pa.ChunkedArray)


# -- hostile and malformed upstream data (issue 11) ------------------------------------------------------
def _reasons_by_day(rejected: pa.Table) -> dict[tuple[str | None, str], int]:
    out: dict[tuple[str | None, str], int] = {}
    for day, reason in zip(rejected["trade_date"].to_pylist(), rejected["reason"].to_pylist(), strict=True):
        key = (day.isoformat() if day else None, reason)
        out[key] = out.get(key, 0) + 1
    return out


def test_nan_and_infinity_are_rejected_in_every_value_column():
    n = 8
    rows = {
        "source": ["t"] * n, "ticker": ["X"] * n, "trade_date": [dt.date(2024, 1, d + 1) for d in range(n)],
        "open": [10.0] * n, "high": [11.0] * n, "low": [9.0] * n, "close": [10.0] * n,
        "adj_close": [10.0] * n, "volume": [1.0] * n,
    }
    bad = [("open", float("nan")), ("high", float("inf")), ("low", float("-inf")), ("close", float("nan")),
           ("adj_close", float("inf")), ("volume", float("nan")), ("volume", float("inf"))]
    for i, (col, value) in enumerate(bad, start=1):
        rows[col][i] = value
    good, rejected = split_valid(quotes_table(rows))
    assert good["trade_date"].to_pylist() == [dt.date(2024, 1, 1)]
    assert rejected["reason"].to_pylist() == [f"non-finite {col}" for col, _ in bad]
    raw = json.loads(rejected["raw_record"][0].as_py())  # stays standard JSON: NaN is spelled as text
    assert raw["open"] == "NaN"
    assert json.loads(rejected["raw_record"][1].as_py(), parse_constant=pytest.fail)["high"] == "Infinity"


def test_duplicate_keys_in_one_load_are_quarantined_and_counted():
    days = [dt.date(2024, 1, 2), dt.date(2024, 1, 2), dt.date(2024, 1, 3), dt.date(2024, 1, 3), dt.date(2024, 1, 4)]
    rows = {"source": ["t"] * 5, "ticker": ["X"] * 5, "trade_date": days, "open": [10.0] * 5, "high": [11.0] * 5,
            "low": [9.0] * 5, "close": [10.0, 10.0, 10.0, 10.5, 10.0], "adj_close": [10.0] * 5, "volume": [1.0] * 5}
    good, rejected = split_valid(quotes_table(rows))
    # identical copies: one is loaded; copies that disagree: none is (which one is right is unknowable)
    assert good["trade_date"].to_pylist() == [dt.date(2024, 1, 2), dt.date(2024, 1, 4)]
    assert _reasons_by_day(rejected) == {
        ("2024-01-02", "duplicate row: an identical copy is loaded"): 1,
        ("2024-01-03", "duplicate key with different values (2 rows in this load)"): 2,
    }
    # the same date under two tickers is no duplicate
    other = {k: (v[:1] * 2 if k != "ticker" else ["X", "Y"]) for k, v in rows.items()}
    assert split_valid(quotes_table(other))[0].num_rows == 2


def test_moex_hostile_history_is_quarantined_row_by_row(server):
    """NaN, Infinity, text prices, missing and unreadable dates, duplicated days, a null and a short row,
    a row of another SECID and one outside the window: each is quarantined with its reason, the rest loads."""
    from tests.quote_server import FOREIGN_SECID, moex_hostile_reasons

    table, raws = moex(server).fetch("BADV", YEAR_2024, Progress())
    from lakehouse.sources.quotes import flag_foreign_rows

    good, rejected = split_valid(flag_foreign_rows(table, "BADV", YEAR_2024), raws)
    assert _reasons_by_day(rejected) == moex_hostile_reasons()
    assert set(good["ticker"].to_pylist()) == set(rejected["ticker"].to_pylist()) == {"BADV"}
    assert good.num_rows == 262 - 8 - 1 and max(good["trade_date"].to_pylist()) == dt.date(2024, 12, 31)
    foreign = [json.loads(r) for r, why in zip(rejected["raw_record"].to_pylist(), rejected["reason"].to_pylist(),
                                               strict=True) if "another ticker" in why]
    assert [r["SECID"] for r in foreign] == [FOREIGN_SECID]
    text = [json.loads(r) for r in rejected["raw_record"].to_pylist() if '"n/a"' in r]
    assert text[0]["CLOSE"] == "n/a"


def test_yahoo_hostile_bars_are_quarantined_row_by_row(server):
    from tests.quote_server import YAHOO_HOSTILE

    fetcher = YahooFetcher(server.url, dt.date(2024, 1, 1), timeout=5, policy=FAST)
    window = Window(dt.date(2024, 1, 1), dt.date(2024, 3, 31))
    table, raws = fetcher.fetch("YBAD", window, Progress())
    good, rejected = split_valid(table, raws)
    days = business_days(dt.date(2024, 1, 2), dt.date(2024, 3, 28))
    expected = {(None if name == "timestamp" else days[i].isoformat(), reason): 1
                for i, (name, _, reason) in YAHOO_HOSTILE.items()}
    expected[(YAHOO_NULL_DAY.isoformat(), "missing open")] = 1
    expected[(days[12].isoformat(), "duplicate row: an identical copy is loaded")] = 1
    assert _reasons_by_day(rejected) == expected
    assert good.num_rows == len(days) - len(YAHOO_HOSTILE) - 1
    assert json.loads(rejected.filter(pa.compute.equal(rejected["reason"], "missing timestamp"))["raw_record"][0]
                      .as_py())["timestamp"] is None


@pytest.mark.parametrize(("ticker", "needle"), [
    ("YLEN", "indicator length"),
    ("YOFF", "gmtoffset 'EST' is not a number"),
])
def test_yahoo_unreadable_response_fails_only_that_ticker(server, ticker, needle):
    fetcher = YahooFetcher(server.url, dt.date(2024, 1, 1), timeout=5, policy=FAST)
    with pytest.raises(SourceError, match=f"yahoo {ticker}: .*{needle}.*/v8/finance/chart/{ticker}"):
        fetcher.fetch(ticker, Window(dt.date(2024, 1, 1), dt.date(2024, 1, 31)), Progress())

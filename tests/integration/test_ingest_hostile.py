"""Ingestion against hostile and malformed upstream responses (replayed by tests/quote_server.py), end to end
into Iceberg: bad rows are quarantined with their reason, a failing ticker fails alone (the others load and
commit, the exit code says "partial"), and no ticker's incremental state moves on rows that were not loaded."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import BIN, ROOT, applied_env, isolated_env
from rich.console import Console

from lakehouse.config import get_config
from lakehouse.lake import open_lake
from lakehouse.stages.ingest.run import run_ingest
from tests.quote_server import (
    FOREIGN_SECID,
    MOEX_COLUMNS,
    MOEX_DUP_SAME,
    YAHOO_HOSTILE,
    QuoteServer,
    business_days,
    moex_hostile_reasons,
    moex_rows,
)

QUIET = Console(quiet=True)
MOEX_DAYS = len(business_days(dt.date(2024, 1, 1), dt.date(2024, 12, 31)))  # 262
PARTIAL_EXIT = 3  # documented in `lakehouse ingest --help` and lakehouse/README.md


@pytest.fixture(scope="module")
def server():
    with QuoteServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def env(tmp_path_factory, server):
    values = isolated_env(tmp_path_factory.mktemp("hostile") / "home")
    values.update({
        "LAKEHOUSE_SOURCES__MOEX__BASE_URL": server.url,
        "LAKEHOUSE_SOURCES__MOEX__START": "2024-01-01",
        "LAKEHOUSE_SOURCES__YAHOO__BASE_URL": server.url,
        "LAKEHOUSE_SOURCES__YAHOO__START": "2024-01-01",
        "LAKEHOUSE_SOURCES__BACKOFF_BASE_SECONDS": "0.01",
        "LAKEHOUSE_SOURCES__BACKOFF_MAX_SECONDS": "0.5",
        "LAKEHOUSE_SOURCES__MAX_RETRIES": "2",
    })
    with applied_env(values):
        yield values


def scan(table: str, source: str) -> pa.Table:
    with open_lake(get_config()) as lake:
        return lake.catalog.load_table(table).scan(row_filter=f"source == '{source}'").to_arrow()


def per_ticker(data: pa.Table) -> dict[str, int]:
    counts = data.group_by("ticker").aggregate([([], "count_all")])
    return dict(zip(counts["ticker"].to_pylist(), counts["count_all"].to_pylist(), strict=True))


def reasons(rejected: pa.Table) -> dict[tuple[str | None, str], int]:
    out: dict[tuple[str | None, str], int] = {}
    for day, why in zip(rejected["trade_date"].to_pylist(), rejected["reason"].to_pylist(), strict=True):
        key = (day.isoformat() if day else None, why)
        out[key] = out.get(key, 0) + 1
    return out


def ticker_state(source: str) -> dict[str, str]:
    """The last loaded trade date per ticker, as kept in the dlt pipeline's resource state."""
    import dlt

    pipeline = dlt.attach(pipeline_name=f"lakehouse_{source}", pipelines_dir=str(get_config().path("dlt")))
    resources = pipeline.state["sources"][source]["resources"]
    return dict(resources[f"{source}_quotes"]["last_trade_date"])


def ingest_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lakehouse"), "ingest", *args], capture_output=True, text=True,
                          env={**os.environ, **env, "COLUMNS": "200"}, timeout=300, cwd=ROOT)


def test_hostile_moex_history_next_to_clean_tickers_through_the_cli(env, server):
    """A replayed MOEX history with NaN, Infinity, text prices, a duplicated date and a foreign SECID, next to a
    clean ticker and three failing ones in the same `lakehouse ingest` run."""
    args = ("--source", "moex", "--tickers", "AFLT,BADV,FLAKY,E404,TRUNC", "--end", "2024-12-31")
    proc = ingest_cli(env, *args)
    out, err = " ".join(proc.stdout.split()), " ".join(proc.stderr.split())
    assert proc.returncode == PARTIAL_EXIT, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    # the summary names every failed ticker with its cause
    assert "3 of 5 tickers failed" in err
    assert "moex FLAKY: got an HTML page instead of JSON" in err
    assert "moex E404: HTTP 404" in err
    assert "moex TRUNC: truncated or invalid JSON" in err
    bad = moex_hostile_reasons()
    assert re.search(rf"BADV\W+{MOEX_DAYS - 9}\W+{sum(bad.values())}\W", out)  # ticker, rows, rejected

    # raw.quotes: only the clean rows, each under the ticker it was requested for
    quotes = scan("raw.quotes", "moex")
    assert per_ticker(quotes) == {"AFLT": MOEX_DAYS, "BADV": MOEX_DAYS - 9}
    badv = quotes.filter(pc.equal(quotes["ticker"], "BADV"))
    assert pc.all(pc.is_finite(badv["close"])).as_py() and pc.all(pc.is_finite(badv["volume"])).as_py()
    dup_day = business_days(dt.date(2024, 1, 1), dt.date(2024, 12, 31))[MOEX_DUP_SAME]
    row = badv.filter(pc.equal(badv["trade_date"], pa.scalar(dup_day, pa.date32())))
    assert row["close"].to_pylist() == [moex_rows("BADV")[MOEX_DUP_SAME][MOEX_COLUMNS.index("CLOSE")]]

    # raw.quotes_rejected: every bad row with its reason and its original record; nothing from AFLT
    rejected = scan("raw.quotes_rejected", "moex")
    assert reasons(rejected) == bad
    assert set(rejected["ticker"].to_pylist()) == {"BADV"}
    records = [json.loads(r) for r in rejected["raw_record"].to_pylist()]
    assert sum(1 for r in records if isinstance(r, dict) and r.get("SECID") == FOREIGN_SECID) == 1

    # incremental state: moved only by loaded rows of the requested tickers; failed tickers keep none
    assert ticker_state("moex") == {"AFLT": "2024-12-31", "BADV": "2024-12-31"}

    # the next run retries the failed tickers (FLAKY recovers) and does not re-fetch the loaded ones
    before = len(server.moex_requests("AFLT"))
    again = ingest_cli(env, *args)
    assert again.returncode == PARTIAL_EXIT, again.stdout + again.stderr
    assert "2 of 5 tickers failed" in " ".join(again.stderr.split())
    assert len(server.moex_requests("AFLT")) == before
    assert per_ticker(scan("raw.quotes", "moex")) == {"AFLT": MOEX_DAYS, "BADV": MOEX_DAYS - 9, "FLAKY": MOEX_DAYS}
    assert reasons(scan("raw.quotes_rejected", "moex")) == bad  # not quarantined twice
    assert ticker_state("moex") == {"AFLT": "2024-12-31", "BADV": "2024-12-31", "FLAKY": "2024-12-31"}


def test_partial_ingest_fails_the_stage_with_the_tickers_named(env):
    """In `lakehouse run` a partial load is a failed ingest stage (its downstream waits for the next run); the
    cause names the failed tickers and the committed rows stay."""
    from lakehouse.pipeline.runner import run_one
    from lakehouse.pipeline.stage import StageFailed
    from lakehouse.stages.ingest.run import TickersFailed

    with pytest.raises(StageFailed) as err:
        run_one(get_config(), "ingest", QUIET, options={"source": "moex", "tickers": ["SBER", "E404"],
                                                         "end": "2024-06-30"}, record=False)
    assert isinstance(err.value.cause, TickersFailed)
    assert err.value.cause.failed == ["E404"]
    assert "1 of 2 tickers failed" in str(err.value) and "moex E404: HTTP 404" in str(err.value)
    assert per_ticker(scan("raw.quotes", "moex"))["SBER"] > 0


def test_hostile_yahoo_bars_next_to_a_clean_ticker(env):
    summary = run_ingest(get_config(), "yahoo", tickers=["AAPL", "YBAD", "YLEN", "YOFF"], end="2024-03-31",
                         console=QUIET)
    assert sorted(t.ticker for t in summary.report.failed) == ["YLEN", "YOFF"]
    days = len(business_days(dt.date(2024, 1, 2), dt.date(2024, 3, 28)))
    quotes = scan("raw.quotes", "yahoo")
    assert per_ticker(quotes) == {"AAPL": days - 1, "YBAD": days - 1 - len(YAHOO_HOSTILE)}
    rejected = scan("raw.quotes_rejected", "yahoo")
    got = {why for why in rejected["reason"].to_pylist()}
    assert {why for _, _, why in YAHOO_HOSTILE.values()} | {"missing open"} <= got
    assert per_ticker(rejected) == {"AAPL": 1, "YBAD": len(YAHOO_HOSTILE) + 2}  # + the null day, the duplicate
    assert summary.report.tickers["YBAD"].duplicates == 1
    assert ticker_state("yahoo") == {"AAPL": "2024-03-28", "YBAD": "2024-03-28"}

"""The ClickHouse marts (dbt_dwh, dbt-clickhouse) built through the real front from a small lake written
through the REST catalog (raw quotes staged by the real dbt_lake stg_quotes model): table, incremental
and view models; expected rows and values; new Iceberg snapshots seen by the next build; the reader
pinned to the catalog's metadata file."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

from lakehouse.clickhouse.front import http_client, temporary_front
from lakehouse.config import load_config
from lakehouse.lake import open_lake
from lakehouse.stages.transform_dwh import build
from tests.conftest import isolated_env, run_cli
from tests.dwh_support import (
    BACKTEST_AS_OF,
    N_DAYS,
    TICKERS,
    append,
    build_small_lake,
    business_days,
    prediction_rows,
    price,
    quote_rows,
    stage_quotes,
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env = {**base, **isolated_env(tmp_path_factory.mktemp("dwh") / "home")}
    cfg = load_config(env=env)
    with open_lake(cfg) as lake:
        small = build_small_lake(lake.catalog)
        stage_quotes(cfg)
    with temporary_front(cfg) as ep:
        first = build(cfg, ep=ep)
        client = http_client(ep)
        yield {"cfg": cfg, "ep": ep, "small": small, "first": first, "client": client}
        client.close()


def rows(client, sql: str, **params):
    return client.query(sql, parameters=params).result_rows


def test_first_build_succeeds_with_all_model_kinds(env) -> None:
    res = env["first"]
    assert res.ok, res.errors[-10:]
    models = {n.name: n.status for n in res.nodes if n.kind == "model"}
    assert models == {m: "success" for m in (
        "mart_daily_prices", "mart_weekly_summary", "mart_latest_forecast",
        "mart_forecast_vs_actual", "mart_model_leaderboard", "ticker_overview")}
    tests = [n for n in res.nodes if n.kind == "test"]
    assert tests and all(n.status == "pass" for n in tests)
    # stg_quotes is the lake's Iceberg table read in place (ephemeral), not copied into ClickHouse
    assert "stg_quotes" not in res.row_counts
    assert res.row_counts["mart_daily_prices"] == 3 * N_DAYS
    assert res.row_counts["mart_weekly_summary"] == 3 * 52
    assert res.row_counts["mart_latest_forecast"] == 3
    assert res.row_counts["mart_forecast_vs_actual"] == 30 + 2 * 2 * len(BACKTEST_AS_OF)  # live + backtest
    assert res.row_counts["mart_model_leaderboard"] == 2
    engines = dict(rows(env["client"], "SELECT name, engine FROM system.tables WHERE database = {d:String}",
                        d=env["ep"].database))
    assert engines["ticker_overview"] == "View" and engines["mart_daily_prices"] == "MergeTree"


def test_daily_prices_values(env) -> None:
    c, days = env["client"], env["small"].days
    last = days[-1]
    (row,) = rows(c, "SELECT close, ret_1d, sma_20, sma_50, sma_200, rsi_14, volume FROM mart_daily_prices "
                     "WHERE ticker = 'AAA' AND trade_date = {d:Date32}", d=last)
    i = N_DAYS - 1
    assert row[0] == price("AAA", i)
    assert row[1] == pytest.approx(price("AAA", i) / price("AAA", i - 1) - 1)
    assert row[2] == pytest.approx(price("AAA", i) - 9.5)  # mean of the last 20 values of a line
    assert row[3] == pytest.approx(price("AAA", i) - 24.5)
    assert row[4] == pytest.approx(price("AAA", i) - 99.5)
    assert row[5] == 55.0 and row[6] == 1000 + i
    # moving averages wait for a full window; the first day has no return
    (first,) = rows(c, "SELECT ret_1d, sma_20, sma_200 FROM mart_daily_prices WHERE ticker = 'BBB' "
                       "AND trade_date = {d:Date32}", d=days[0])
    assert first == (None, None, None)
    assert rows(c, "SELECT count() FROM mart_daily_prices WHERE ticker = 'BBB' AND sma_200 IS NOT NULL") == [(61,)]
    # newest load wins (CCC day 10 re-loaded), an older row of another source loses
    assert rows(c, "SELECT close FROM mart_daily_prices WHERE ticker = 'CCC' AND trade_date = {d:Date32}",
                d=days[10]) == [(11.0,)]
    assert rows(c, "SELECT close, source FROM mart_daily_prices WHERE ticker = 'AAA' AND trade_date = {d:Date32}",
                d=days[0]) == [(100.0, "sample")]


def test_weekly_summary_values(env) -> None:
    c, days = env["client"], env["small"].days
    got = rows(c, "SELECT week_start, trading_days, open, close, high, low, volume, weekly_return, volatility "
                  "FROM mart_weekly_summary WHERE ticker = 'BBB' ORDER BY week_start LIMIT 2")
    p = [price("BBB", i) for i in range(10)]
    assert got[0][:7] == (days[0], 5, p[0] - 0.5, p[4], p[4] + 1, p[0] - 1, sum(1000.0 + i for i in range(5)))
    assert got[0][7] is None  # no previous week
    assert got[1][7] == pytest.approx(p[9] / p[4] - 1)
    assert got[1][8] == pytest.approx(0.0, abs=1e-12)  # a constant 1% daily return has no dispersion


def test_forecast_marts(env) -> None:
    c, days = env["client"], env["small"].days
    (aaa,) = rows(c, "SELECT last_trade_date, last_close, as_of_date, forecast_1d, forecast_5d, target_date_5d, "
                     "expected_change_pct, model_version, is_stale FROM mart_latest_forecast WHERE ticker = 'AAA'")
    base = price("AAA", N_DAYS - 1)
    assert aaa[:3] == (days[-1], base, days[-1])
    assert aaa[3] == pytest.approx(base * 1.01) and aaa[4] == pytest.approx(base * 1.05)
    assert aaa[5] == business_days(days[-1] + dt.timedelta(days=1), 5)[-1]
    assert aaa[6] == pytest.approx(5.0) and aaa[7] == "2" and not aaa[8]

    realized = rows(c, "SELECT horizon_days, actual_close, abs_pct_error, direction_hit FROM mart_forecast_vs_actual "
                       "WHERE forecast_source = 'live' AND ticker = 'AAA' AND as_of_date = {d:Date32} "
                       "ORDER BY horizon_days", d=days[-6])
    assert [r[0] for r in realized] == [1, 2, 3, 4, 5]
    assert realized[0][1] == pytest.approx(price("AAA", N_DAYS - 5)) and realized[0][3] is True
    pred = price("AAA", N_DAYS - 6) * 1.01
    assert realized[0][2] == pytest.approx(abs(price("AAA", N_DAYS - 5) - pred) / price("AAA", N_DAYS - 5) * 100)
    pending = rows(c, "SELECT count(), countIf(is_realized), countIf(actual_close IS NULL) "
                      "FROM mart_forecast_vs_actual WHERE as_of_date = {d:Date32}", d=days[-1])
    assert pending == [(15, 0, 15)]

    assert rows(c, "SELECT countIf(is_interpolated) FROM mart_forecast_vs_actual WHERE forecast_source = 'live'") == [
        (24,)]

    # the backtest's weekly forecasts, realized on one price basis from stg_quotes
    bt = rows(c, "SELECT as_of_date, actual_return, is_realized, direction_hit FROM mart_forecast_vs_actual "
                 "WHERE forecast_source = 'backtest' AND model_name = 'ridge' AND ticker = 'AAA' ORDER BY as_of_date")
    i0, i1, i2 = BACKTEST_AS_OF
    assert [b[0] for b in bt] == [days[i0], days[i1], days[i2]]
    assert bt[0][1] == pytest.approx(price("AAA", i0 + 5) / price("AAA", i0) - 1) and bt[0][2] and bt[0][3] is True
    assert bt[2][1:] == (None, False, None)  # its target lies past the data
    assert rows(c, "SELECT count(), countIf(direction_hit IS NULL) FROM mart_forecast_vs_actual "
                   "WHERE forecast_source = 'backtest' AND model_name = 'naive'") == [(6, 6)]  # no predicted move

    board = rows(c, "SELECT rank, model_name, model_version, is_champion, is_candidate, holdout_mase, cv_mase, "
                    "n_backtest, n_backtest_realized, backtest_mae, n_evaluated, live_mae, live_dir_acc "
                    "FROM mart_model_leaderboard ORDER BY rank")
    assert [b[:5] for b in board] == [(1, "ridge", "", False, True), (2, "naive", "1", True, False)]
    ridge = board[0]
    assert ridge[5:7] == (pytest.approx(0.80), pytest.approx(0.85))  # the newest run, not run-1
    actual = [price("AAA", i + 5) / price("AAA", i) - 1 for i in (i0, i1)] + [1.01**5 - 1] * 2
    assert ridge[7:10] == (6, 4, pytest.approx(sum(abs(0.01 - a) for a in actual) / 4))
    assert ridge[10:] == (2, pytest.approx(0.04), 0.5)  # the interpolated day-4 row is not scored
    assert board[1][10] == 0


def test_new_snapshots_are_seen_and_marts_rebuilt(env) -> None:
    """A new ingest (and forecast) lands; a stray newer metadata file must not be read; the marts follow."""
    cfg, ep, c, days = env["cfg"], env["ep"], env["client"], env["small"].days
    new_days = business_days(days[-1] + dt.timedelta(days=1), 3)
    loaded = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
    with open_lake(cfg) as lake:
        tbl = lake.catalog.load_table("staging.stg_quotes")
        before = Path(tbl.metadata_location.removeprefix("file://"))
        append(lake.catalog, "raw.quotes", quote_rows(new_days, N_DAYS, "load-3", loaded))
        stage_quotes(cfg)  # the incremental dbt_lake build adds the 3 new days
        append(lake.catalog, "ml.predictions", prediction_rows(
            new_days[-1], {t: price(t, N_DAYS + 2) for t in TICKERS}, loaded, "3"))
        # indicators that arrive late for days already in the marts
        append(lake.catalog, "features.fct_daily_features", [
            {"ticker": "BBB", "trade_date": d, "rsi_14": 40.0} for d in days[100:110]])
        tbl = lake.catalog.load_table("staging.stg_quotes")
        location = tbl.location().removeprefix("file://")
    # The trap: a metadata file the catalog never committed, with a higher version number (an older
    # table state). A catalog-less reader listing metadata/ picks it up.
    stray = before.parent / "00999-00000000-0000-0000-0000-000000000000.metadata.json"
    shutil.copy(before, stray)
    unpinned = rows(c, f"SELECT count() FROM icebergLocal('{location}')")[0][0]
    assert unpinned == 3 * N_DAYS  # the stale state: the trap is real

    second = build(cfg, ep=ep)
    assert second.ok, second.errors[-10:]
    assert second.lake["staging.stg_quotes"].snapshot_id != env["first"].lake["staging.stg_quotes"].snapshot_id
    assert rows(c, "SELECT count(), max(trade_date) FROM mart_daily_prices") == [(3 * (N_DAYS + 3), new_days[-1])]
    (row,) = rows(c, "SELECT close, sma_20 FROM mart_daily_prices WHERE ticker = 'AAA' AND trade_date = {d:Date32}",
                  d=new_days[-1])
    assert row == (price("AAA", N_DAYS + 2), pytest.approx(price("AAA", N_DAYS + 2) - 9.5))
    assert rows(c, "SELECT as_of_date, model_version FROM mart_latest_forecast WHERE ticker = 'BBB'") == [
        (new_days[-1], "3")]
    # predictions made on the old last day are now (partly) realized
    assert rows(c, "SELECT countIf(is_realized) FROM mart_forecast_vs_actual WHERE as_of_date = {d:Date32}",
                d=days[-1]) == [(9,)]
    assert rows(c, "SELECT last_trade_date FROM ticker_overview WHERE ticker = 'CCC'") == [(new_days[-1],)]
    assert rows(c, "SELECT count(), min(trade_date) FROM mart_daily_prices WHERE rsi_14 = 40") == [(10, days[100])]
    stray.unlink()


def test_incremental_builds_equal_a_full_refresh(env) -> None:
    cfg, ep, c = env["cfg"], env["ep"], env["client"]
    incremental = ("mart_daily_prices", "mart_weekly_summary")
    for name in incremental:
        c.command(f"DROP TABLE IF EXISTS {name}_inc")
        c.command(f"CREATE TABLE {name}_inc ENGINE = Memory AS SELECT * FROM {name}")
    full = build(cfg, ep=ep, full_refresh=True)
    assert full.ok, full.errors[-10:]
    for name in incremental:
        assert rows(c, f"SELECT count() FROM {name}") == rows(c, f"SELECT count() FROM {name}_inc")
        only_inc = rows(c, f"SELECT count() FROM (SELECT * FROM {name}_inc EXCEPT SELECT * FROM {name})")
        only_full = rows(c, f"SELECT count() FROM (SELECT * FROM {name} EXCEPT SELECT * FROM {name}_inc)")
        assert only_inc == only_full == [(0,)], name
        c.command(f"DROP TABLE {name}_inc")


def test_transform_dwh_cli_needs_the_staged_quotes(lh_env) -> None:
    res = run_cli("transform", "dwh", env=lh_env)
    assert res.returncode == 1
    assert "staging.stg_quotes" in res.stderr and "lakehouse transform lake" in res.stderr

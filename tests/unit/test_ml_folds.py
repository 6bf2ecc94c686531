"""The backtest's schedule and rules without a lake: per-row gap by each row's own target date, exchange
sessions as target dates, weekly as-of dates from the calendar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml import calendars
from ml.backtest import compute, make_plan
from ml.features import normalize
from tests.features_reference import reference_features
from tests.ml_helpers import START, TRAIN_TICKERS, sample_quotes

XNYS = dict.fromkeys([*TRAIN_TICKERS, "FB"], "XNYS")


def _features(quotes: pd.DataFrame) -> pd.DataFrame:
    return normalize(reference_features(quotes))


@pytest.fixture(scope="module")
def gapped():
    """Sample features where IBM misses 3 sessions before the third retrain date and 8 after it."""
    q = sample_quotes(TRAIN_TICKERS)
    q = q[q["trade_date"] >= START]
    retrain = make_plan(_features(q), XNYS, "year", 250).retrain_dates[2]
    sessions = pd.DatetimeIndex(np.sort(q["trade_date"].unique()))
    i = sessions.searchsorted(retrain)
    gap = sessions[i - 3:i + 8]
    q = q[~((q["ticker"] == "IBM") & q["trade_date"].isin(gap))]
    return _features(q), retrain, sessions[i - 6]


def test_a_ticker_with_missing_days_never_trains_on_targets_inside_its_test_window(gapped):
    frame, retrain, union_cut = gapped
    from ml.features import with_target_dates

    df = with_target_dates(frame)
    # the trap is real: IBM rows that a gap counted on the calendar of all tickers (5 sessions before the
    # retrain date) would train on, while their own 5-day target lies inside the test period
    straddle = df[(df["ticker"] == "IBM") & (df["trade_date"] <= union_cut) & (df["target_date"] >= retrain)]
    assert len(straddle) >= 3
    clean, _, _ = compute(frame, ["ridge"], XNYS, "year", 250)
    # poison every target not known before the retrain date, those rows included
    poisoned = frame.copy()
    poisoned.loc[df["target_date"].isna() | (df["target_date"] >= retrain), "target_return_5d"] = 10.0
    dirty, _, _ = compute(poisoned, ["ridge"], XNYS, "year", 250)
    up_to = clean["retrain_date"] <= retrain
    assert up_to.sum() > 50
    np.testing.assert_array_equal(clean.loc[up_to, "predicted_return"], dirty.loc[up_to, "predicted_return"])
    # ... while the next refit, which may learn those targets, does change
    assert not np.allclose(clean.loc[~up_to, "predicted_return"], dirty.loc[~up_to, "predicted_return"])
    # and no forecast exists where the ticker had no price
    ibm = clean[clean["ticker"] == "IBM"]
    assert set(ibm["as_of_date"]).isdisjoint(set(frame.loc[frame["ticker"] != "IBM", "trade_date"]) -
                                              set(frame.loc[frame["ticker"] == "IBM", "trade_date"]))


def test_target_dates_are_exchange_sessions_not_holidays():
    # Thanksgiving 2012-11-22 and hurricane Sandy (2012-10-29/30) closed the NYSE
    got = calendars.sessions_after("XNYS", pd.to_datetime(["2012-11-16", "2012-10-26"]).to_numpy(), 5)
    assert list(pd.DatetimeIndex(got).date.astype(str)) == ["2012-11-26", "2012-11-06"]
    # the week of 2012-12-24 ends on Friday the 28th; a data cut on Wednesday adds no as-of date
    weeks = calendars.week_last_sessions("XNYS", pd.Timestamp("2012-12-17"), pd.Timestamp("2012-12-26"))
    assert list(pd.DatetimeIndex(weeks).date.astype(str)) == ["2012-12-21"]


def test_backtest_rows_are_5_day_forecasts_on_week_last_sessions(gapped):
    frame, _, _ = gapped
    rows, fitted, cached = compute(frame, ["naive", "drift"], XNYS, "year", 250)
    assert cached == 0 and fitted == 2 * rows["retrain_date"].nunique()
    assert set(rows["horizon_days"]) == {5}
    weeks = set(calendars.week_last_sessions("XNYS", rows["as_of_date"].min(), rows["as_of_date"].max()))
    assert set(rows["as_of_date"].to_numpy()) <= weeks
    sessions = set(calendars.sessions("XNYS", rows["as_of_date"].min(), rows["target_date"].max()))
    assert set(rows["target_date"].to_numpy()) <= sessions
    assert (rows["retrain_date"] <= rows["as_of_date"]).all() and (rows["train_end_date"] < rows["retrain_date"]).all()
    naive = rows[rows["model_name"] == "naive"]
    assert (naive["predicted_return"] == 0).all() and (naive["predicted_close"] == naive["last_close"]).all()

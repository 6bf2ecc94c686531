"""The backtest on the sample through the real `lakehouse backtest` command and the lake: point in time
(cutting the data at a date changes no forecast made before it), actual returns against the raw prices,
reruns that neither duplicate rows nor refit, and a new trading day that refits nothing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from lakehouse.config import get_config
from lakehouse.lake import open_lake
from ml.backtest import TABLE, backtest
from tests.conftest import run_cli
from tests.ml_helpers import SHORT_TICKER, TRAIN_TICKERS, isolated, sample_features, sample_quotes, write_features

CUTOFF = "2012-10-17"  # a Wednesday inside the last yearly period: the cut lake ends mid-week
MODELS = {"naive", "drift", "ridge", "hist_gbr"}


def _scan(cfg) -> pd.DataFrame:
    with open_lake(cfg) as lake:
        df = lake.catalog.load_table(TABLE).scan().to_pandas()
    for c in ("as_of_date", "target_date", "train_end_date", "retrain_date"):
        df[c] = pd.to_datetime(df[c])
    return df


def _snapshots(cfg) -> int:
    with open_lake(cfg) as lake:
        return len(lake.catalog.load_table(TABLE).snapshots())


@pytest.fixture(scope="module")
def cut(tmp_path_factory):
    """A lake whose quotes stop at CUTOFF, backtested through the CLI."""
    gen = isolated(tmp_path_factory.mktemp("bt-cut") / "home")
    next(gen)
    cfg = get_config(reload=True)
    write_features(cfg, sample_features(CUTOFF))
    proc = run_cli("backtest")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield SimpleNamespace(cfg=cfg, rows=_scan(cfg), out=proc.stdout)
    next(gen, None)


@pytest.fixture(scope="module")
def full(tmp_path_factory, cut):
    """Another lake (its own fit cache) holding the whole sample."""
    gen = isolated(tmp_path_factory.mktemp("bt-full") / "home")
    next(gen)
    cfg = get_config(reload=True)
    write_features(cfg, sample_features())
    result = backtest(cfg, Console(width=120))
    yield SimpleNamespace(cfg=cfg, rows=_scan(cfg), result=result)
    next(gen, None)


def test_backtest_covers_every_ticker_and_week_with_every_model(cut):
    rows = cut.rows
    assert "fitted" in cut.out and "ml.backtest_predictions" in cut.out
    assert set(rows["model_name"]) == MODELS
    assert set(rows["ticker"]) == {*TRAIN_TICKERS, SHORT_TICKER}  # FB too, from its first week
    assert not rows.duplicated(["model_name", "ticker", "as_of_date"]).any()
    assert set(rows["horizon_days"]) == {5} and rows["predicted_return"].notna().all()
    assert (rows["retrain_date"] <= rows["as_of_date"]).all()
    assert (rows["as_of_date"] <= pd.Timestamp(CUTOFF)).all()
    per_model = rows.groupby("model_name").size()
    assert per_model.nunique() == 1  # every model forecasts the same rows


def test_a_forecast_as_of_d_is_the_same_whether_the_lake_ends_at_d_or_today(cut, full):
    keys = ["model_name", "ticker", "as_of_date"]
    merged = cut.rows.merge(full.rows, on=keys, how="left", suffixes=("_cut", "_full"), indicator=True)
    assert (merged["_merge"] == "both").all()  # every forecast of the cut lake exists in the full one
    for c in ("predicted_return", "predicted_close", "naive_scale"):
        np.testing.assert_array_equal(merged[f"{c}_cut"].to_numpy(), merged[f"{c}_full"].to_numpy(), err_msg=c)
    for c in ("target_date", "train_end_date", "retrain_date", "fit_key"):
        assert (merged[f"{c}_cut"] == merged[f"{c}_full"]).all(), c
    # what the cut lake could not know yet is unknown there, and known in the full lake
    late = merged["target_date_cut"] > pd.Timestamp(CUTOFF)
    assert late.any() and merged.loc[late, "actual_return_cut"].isna().all()
    assert merged.loc[late, "actual_return_full"].notna().all()
    assert len(full.rows) > len(cut.rows)


def test_actual_return_matches_the_raw_prices_of_every_row(full):
    raw = sample_quotes().set_index(["ticker", "trade_date"])["adj_close"]
    rows = full.rows
    base = raw.reindex(pd.MultiIndex.from_arrays([rows["ticker"], rows["as_of_date"]])).to_numpy()
    after = raw.reindex(pd.MultiIndex.from_arrays([rows["ticker"], rows["target_date"]])).to_numpy()
    np.testing.assert_allclose(rows["last_close"], base, rtol=0, atol=0)
    expected = after / base - 1
    known = ~np.isnan(expected)
    assert known.sum() > 0.99 * len(rows) - 4 * 5  # all but the last week
    np.testing.assert_allclose(rows.loc[known, "actual_return"], expected[known], rtol=1e-12)
    assert rows.loc[~known, "actual_return"].isna().all()
    np.testing.assert_allclose(rows["predicted_close"], rows["last_close"] * (1 + rows["predicted_return"]))


def test_rerun_writes_nothing_and_fits_nothing(full):
    before = _snapshots(full.cfg)
    again = backtest(full.cfg, Console(width=120))
    assert again.fitted == 0 and again.cached == full.result.fitted
    assert again.snapshot_id is None and _snapshots(full.cfg) == before
    rows = _scan(full.cfg)
    assert len(rows) == len(full.rows) and not rows.duplicated(["model_name", "ticker", "as_of_date"]).any()


def test_new_trading_days_refit_no_past_model(cut):
    """The cut lake receives more days: within the same yearly period nothing is refit and old forecasts
    keep their run id; the next year adds exactly one refit per model."""
    write_features(cut.cfg, sample_features("2012-12-14"))
    result = backtest(cut.cfg, Console(width=120))
    assert result.fitted == 0 and result.cached > 0
    rows = _scan(cut.cfg)
    assert not rows.duplicated(["model_name", "ticker", "as_of_date"]).any()
    merged = rows.merge(cut.rows, on=["model_name", "ticker", "as_of_date"], suffixes=("", "_old"))
    assert len(merged) == len(cut.rows) < len(rows)
    np.testing.assert_array_equal(merged["predicted_return"], merged["predicted_return_old"])
    unchanged = merged["actual_return_old"].notna()
    assert unchanged.any() and (merged.loc[unchanged, "run_id"] == merged.loc[unchanged, "run_id_old"]).all()
    write_features(cut.cfg, sample_features())  # into 2013: a new retrain date
    result = backtest(cut.cfg, Console(width=120))
    assert result.fitted == len(MODELS) and result.cached == result.periods * len(MODELS) - len(MODELS)

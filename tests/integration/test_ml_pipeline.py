"""Backtest -> selection and champion rule -> predict -> evaluate on the sample with the local (embedded)
MLflow store, through the real `lakehouse` console script where it matters.

The features table is built from the shipped sample quotes by the test oracle (tests/features_reference.py)
and written through open_lake + pyiceberg.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from lakehouse.config import get_config
from lakehouse.contracts import MODEL_METRICS
from lakehouse.lake import open_lake
from ml import tracking
from ml.errors import FeaturesUnavailable
from ml.evaluate import evaluate
from ml.features import FEATURES_TABLE
from ml.predict import predict
from ml.registry import champion_rule
from tests.conftest import run_cli
from tests.ml_helpers import SHORT_TICKER, TRAIN_TICKERS, isolated, sample_features, sample_quotes, write_features

CUTOFF = "2013-02-15"  # the sample ends 2013-03-01: two weeks of "future" for evaluate
MODELS = {"naive", "drift", "ridge", "hist_gbr"}
TICKERS = {*TRAIN_TICKERS, SHORT_TICKER}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    gen = isolated(tmp_path_factory.mktemp("ml-local") / "home")
    next(gen)
    cfg = get_config(reload=True)
    snap = write_features(cfg, sample_features(CUTOFF))
    bt = run_cli("backtest")
    assert bt.returncode == 0, bt.stdout + bt.stderr
    proc = run_cli("train")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tracking.configure(cfg)
    yield SimpleNamespace(cfg=cfg, snap=snap, out=proc.stdout + proc.stderr, client=mlflow.MlflowClient())
    next(gen, None)


def _runs(t):
    exp = t.client.get_experiment_by_name(t.cfg.mlflow.experiment)
    runs = t.client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parents, runs


def _scan(cfg, name, snapshot_id=None) -> pd.DataFrame:
    with open_lake(cfg) as lake:
        return lake.catalog.load_table(name).scan(snapshot_id=snapshot_id).to_pandas()


def test_selection_logs_every_score_and_the_decision(trained):
    t = trained
    assert "walk-forward backtest scores" in t.out and "decision:" in t.out
    parents, runs = _runs(t)
    parent = parents[-1]
    assert parent.data.params["holdout_weeks"] == "26"
    assert parent.data.tags["decision"] and parent.data.tags["champion"] in MODELS
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert {c.info.run_name for c in children} == MODELS
    for child in children:
        for split in ("cv", "holdout"):
            for m in ("mase", "rel_mae", "mae", "n_obs"):
                assert f"{split}_{m}" in child.data.metrics, (child.info.run_name, split, m)
        if child.info.run_name != "naive":
            assert {"holdout_dir_acc", "holdout_up_rate", "holdout_dm_stat", "holdout_dm_pvalue", "holdout_ic",
                    "holdout_ic_tstat"} <= set(child.data.metrics)
    naive = next(c for c in children if c.info.run_name == "naive")
    assert naive.data.metrics["holdout_rel_mae"] == pytest.approx(1.0)
    # the decision as recorded follows the rule on the recorded numbers
    scores = {c.info.run_name: {k.removeprefix("holdout_"): v for k, v in c.data.metrics.items()
                                if k.startswith("holdout_")} for c in children}
    cand = parent.data.tags["candidate"]
    cv = {c.info.run_name: c.data.metrics["cv_mase"] for c in children if c.info.run_name != "naive"}
    assert cand == min(cv, key=cv.get)  # chosen on cv, not on the holdout
    expected = champion_rule(cand, {**{"dm_stat": math.nan, "dm_pvalue": math.nan}, **scores[cand]}, None, None,
                             t.cfg.mlflow.dm_pvalue_max)
    assert parent.data.tags["champion"] == expected.champion
    assert parent.data.tags["decision"] == expected.reason


def test_model_metrics_has_cv_and_holdout_rows_in_return_units(trained):
    t = trained
    mm = _scan(t.cfg, "ml.model_metrics")
    assert set(MODEL_METRICS.column_names) <= set(mm.columns)
    assert len(mm) == 2 * len(MODELS) and set(mm["split"]) == {"cv", "holdout"}
    assert set(mm["model_name"]) == MODELS
    hold = mm[mm["split"] == "holdout"].set_index("model_name")
    assert hold.loc["naive", "rel_mae"] == 1.0 and pd.isna(hold.loc["naive", "dm_pvalue"])
    assert (hold["period_start"] > mm[mm["split"] == "cv"].set_index("model_name")["period_end"]).all()
    assert hold["n_tickers"].min() >= 3 and (hold["n_obs"] > 50).all()
    assert mm["is_candidate"].sum() == 2 and mm["is_champion"].sum() == 2  # one model, both splits
    champ = t.client.get_model_version_by_alias(t.cfg.mlflow.model_name, "champion")
    row = mm[mm["is_champion"]].iloc[0]
    assert champ.tags["model_name"] == row["model_name"] and row["model_version"] == str(champ.version)


def test_every_ticker_gets_a_5_day_forecast_on_exchange_sessions_and_reruns_replace(trained):
    t = trained
    first = run_cli("predict")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "next-week forecast" in first.stdout
    predict(t.cfg, Console(width=120))  # rerun for the same as-of date
    p = _scan(t.cfg, "ml.predictions")
    assert set(p["ticker"]) == TICKERS  # FB (196 rows, no 200-day average) included
    assert len(p) == len(TICKERS) * 5 and not p.duplicated(["ticker", "as_of_date", "horizon_days"]).any()
    champ = t.client.get_model_version_by_alias(t.cfg.mlflow.model_name, "champion")
    fb = p[(p["ticker"] == SHORT_TICKER) & (p["horizon_days"] == 5)]
    assert len(fb) == 1 and not fb["is_interpolated"].iloc[0] and np.isfinite(fb["predicted_return"].iloc[0])
    assert set(p["model_name"]) == {champ.tags["model_name"]} and set(p["model_version"]) == {str(champ.version)}
    # 2013-02-18 (Presidents' Day) is no session: the five targets are the next five NYSE sessions
    for _, g in p.groupby("ticker"):
        g = g.sort_values("horizon_days")
        assert [str(d) for d in g["target_date"]] == ["2013-02-19", "2013-02-20", "2013-02-21", "2013-02-22",
                                                      "2013-02-25"]
        assert list(g["is_interpolated"]) == [True, True, True, True, False]
        r5 = g["predicted_return"].iloc[-1]
        expected = g["last_close"].iloc[0] * (1 + r5) ** (g["horizon_days"] / 5)
        assert g["predicted_close"].to_numpy() == pytest.approx(expected.to_numpy())
    assert (p["feature_snapshot_id"] == t.snap).all()


def test_evaluate_scores_returns_on_one_price_basis(trained):
    t = trained
    if not len(_scan(t.cfg, "ml.predictions")):
        pytest.skip("needs the predictions of the previous test")
    full = sample_features()
    write_features(t.cfg, full)  # two more weeks arrive
    proc = run_cli("evaluate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    acc = _scan(t.cfg, "ml.prediction_accuracy")
    assert len(acc) == len(TICKERS) * 5 and acc["is_interpolated"].sum() == len(TICKERS) * 4
    raw = sample_quotes().set_index(["ticker", "trade_date"])["adj_close"]
    for rec in acc.to_dict("records"):
        expected = raw[(rec["ticker"], pd.Timestamp(rec["target_date"]))] / raw[(rec["ticker"],
                                                                                pd.Timestamp(rec["as_of_date"]))] - 1
        assert rec["actual_return"] == pytest.approx(expected)
        assert rec["actual_close"] == pytest.approx(rec["last_close"] * (1 + expected))
        assert rec["return_error"] == pytest.approx(rec["predicted_return"] - expected)
    # a second evaluate rebuilds the same rows; a new day's forecast adds rows
    evaluate(t.cfg, Console(width=120))
    assert len(_scan(t.cfg, "ml.prediction_accuracy")) == len(acc)
    predict(t.cfg, Console(width=120))
    p = _scan(t.cfg, "ml.predictions")
    assert len(p) == 2 * len(TICKERS) * 5
    assert not p.duplicated(["ticker", "as_of_date", "horizon_days"]).any()


def test_bad_input_gives_clear_messages(lh_env):
    cfg = get_config(reload=True)
    proc = run_cli("predict")
    assert proc.returncode == 1
    assert "no registered model stock_forecaster@champion" in proc.stderr and "lakehouse train" in proc.stderr
    proc = run_cli("train")
    assert proc.returncode == 1 and "lakehouse backtest" in " ".join(proc.stderr.split())  # rich wraps lines
    from ml.backtest import backtest

    with pytest.raises(FeaturesUnavailable, match="does not exist.*lakehouse transform lake"):
        backtest(cfg, Console(width=120))
    from tests.ml_helpers import features_arrow

    schema = features_arrow(sample_features().head(1)).schema
    with open_lake(cfg) as lake:
        lake.catalog.create_namespace_if_not_exists("features")
        lake.catalog.create_table(FEATURES_TABLE, schema=schema)
    with pytest.raises(FeaturesUnavailable, match="is empty"):
        backtest(cfg, Console(width=120))

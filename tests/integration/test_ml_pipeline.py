"""Train -> register -> predict -> evaluate on the sample data with the local (embedded) MLflow store.

The features table is built from the shipped sample quotes by the test oracle (tests/features_reference.py)
and written through open_lake + pyiceberg; training runs through the real `lakehouse` console script.
"""

from __future__ import annotations

from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
from rich.console import Console

from lakehouse.config import get_config
from lakehouse.lake import open_lake
from ml import tracking
from ml.errors import FeaturesUnavailable
from ml.evaluate import evaluate
from ml.features import FEATURES_TABLE
from ml.predict import predict
from ml.registry import choose_champion
from tests.conftest import run_cli
from tests.ml_helpers import (
    SHORT_TICKER,
    TRAIN_TICKERS,
    features_arrow,
    isolated,
    sample_features,
    write_features,
)

CUTOFF = "2013-02-15"  # the sample ends 2013-03-01: 10 trading days of "future" for evaluate
MODELS = {"naive", "drift", "ridge", "hist_gbr"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    gen = isolated(tmp_path_factory.mktemp("ml-local") / "home")
    next(gen)
    cfg = get_config(reload=True)
    snap = write_features(cfg, sample_features(CUTOFF))
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


def test_train_logs_a_parent_run_with_one_child_per_model(trained):
    t = trained
    assert f"ticker {SHORT_TICKER} skipped" in t.out.replace("\n", " ")
    assert "walk-forward evaluation" in t.out and "promotion:" in t.out
    parents, runs = _runs(t)
    parent = parents[0]
    assert parent.data.tags["feature_snapshot_id"] == str(t.snap)
    assert parent.data.tags["feature_table"] == FEATURES_TABLE
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert {c.info.run_name for c in children} == MODELS
    for child in children:
        assert child.data.tags["feature_snapshot_id"] == str(t.snap)
        assert child.data.params["n_folds"] == "3"
        for m in ("mase", "mae", "rmse", "mape"):
            assert m in child.data.metrics
        assert len(t.client.get_metric_history(child.info.run_id, "fold_mae")) == 3
        files = {f.path for f in t.client.list_artifacts(child.info.run_id)}
        assert {"metrics.csv", "features.json", "plots"} <= files
        plots = {f.path for f in t.client.list_artifacts(child.info.run_id, "plots")}
        assert plots == {f"plots/{x}.png" for x in TRAIN_TICKERS}
        if child.info.run_name in ("ridge", "hist_gbr"):
            assert {"feature_importance.csv", "feature_importance.png"} <= files
    naive = next(c for c in children if c.info.run_name == "naive")
    assert naive.data.metrics["mase"] == pytest.approx(1.0)
    # champion rule, as recorded: lowest MASE only if < 1, else naive
    mase = {c.info.run_name: c.data.metrics["mase"] for c in children}
    expected, _ = choose_champion(mase)
    assert parent.data.tags["champion"] == expected
    assert expected == "naive" or mase[expected] < 1
    assert parent.data.tags["promotion"]


def test_every_model_is_a_registered_version_and_the_champion_loads(trained):
    t = trained
    name = t.cfg.mlflow.model_name
    versions = t.client.search_model_versions(f"name = '{name}'")
    assert {v.tags["model_name"] for v in versions} == MODELS
    champ = t.client.get_model_version_by_alias(name, "champion")
    parents, _ = _runs(t)
    assert champ.tags["model_name"] == parents[0].data.tags["champion"]
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert model.metadata.signature is not None
    rows = _scan(t.cfg, FEATURES_TABLE).sort_values("trade_date").groupby("ticker").tail(1)
    rows = rows[rows["ticker"].isin(TRAIN_TICKERS)]
    from ml.features import INPUT_COLUMNS, normalize

    out = model.predict(normalize(rows).loc[:, list(INPUT_COLUMNS)])
    assert list(out.columns) == ["predicted_return_5d", "predicted_close_5d"] and len(out) == 3


def test_model_metrics_table_has_one_row_per_model_and_one_champion(trained):
    t = trained
    mm = _scan(t.cfg, "ml.model_metrics")
    assert set(mm["model_name"]) == MODELS and len(mm) == 4
    assert mm["is_champion"].sum() == 1
    champ = t.client.get_model_version_by_alias(t.cfg.mlflow.model_name, "champion")
    assert mm.loc[mm["is_champion"], "model_version"].item() == str(champ.version)
    assert (mm["feature_snapshot_id"] == t.snap).all() and (mm["n_folds"] == 3).all()


def test_predict_writes_5_days_per_ticker_traceable_and_rerun_does_not_duplicate(trained):
    t = trained
    first = run_cli("predict")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "next-week forecast" in first.stdout
    predict(t.cfg, Console(width=120))  # rerun for the same as-of date
    p = _scan(t.cfg, "ml.predictions")
    assert len(p) == len(TRAIN_TICKERS) * 5  # the rerun replaced, not appended
    assert not p.duplicated(["ticker", "as_of_date", "horizon_days"]).any()
    assert set(p["ticker"]) == set(TRAIN_TICKERS)  # FB has no complete latest row
    champ = t.client.get_model_version_by_alias(t.cfg.mlflow.model_name, "champion")
    for _ticker, g in p.groupby("ticker"):
        g = g.sort_values("horizon_days")
        assert list(g["horizon_days"]) == [1, 2, 3, 4, 5]
        as_of = pd.Timestamp(g["as_of_date"].iloc[0])
        assert as_of == pd.Timestamp("2013-02-15")
        assert [pd.Timestamp(d) for d in g["target_date"]] == list(pd.bdate_range("2013-02-18", periods=5))
        r5 = g["predicted_return"].iloc[-1]
        expected = g["last_close"].iloc[0] * (1 + r5) ** (g["horizon_days"] / 5)
        assert g["predicted_close"].to_numpy() == pytest.approx(expected.to_numpy())
    assert set(p["model_version"]) == {str(champ.version)}
    assert set(p["run_id"]) == {champ.run_id}
    assert set(p["model_name"]) == {champ.tags["model_name"]}
    # the feature snapshot the forecast used can still be scanned
    snap = int(p["feature_snapshot_id"].iloc[0])
    assert snap == t.snap
    assert len(_scan(t.cfg, FEATURES_TABLE, snapshot_id=snap)) > 0


def test_evaluate_scores_forecasts_once_actuals_exist(trained):
    t = trained
    if not len(_scan(t.cfg, "ml.predictions")):
        pytest.skip("needs the predictions of the previous test")
    full = sample_features()
    write_features(t.cfg, full)  # ten more trading days arrive
    proc = run_cli("evaluate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    acc = _scan(t.cfg, "ml.prediction_accuracy")
    assert len(acc) == len(TRAIN_TICKERS) * 5
    for rec in acc.to_dict("records"):
        series = full[full["ticker"] == rec["ticker"]].sort_values("trade_date")
        after = series[pd.to_datetime(series["trade_date"]) > pd.Timestamp(rec["as_of_date"])]
        actual = after["adj_close"].iloc[rec["horizon_days"] - 1]  # h-th trading day (2013-02-18 is a holiday)
        assert rec["actual_close"] == pytest.approx(actual)
        assert rec["error"] == pytest.approx(rec["predicted_close"] - actual)
        assert rec["abs_pct_error"] == pytest.approx(abs(rec["predicted_close"] - actual) / actual)
    # a second evaluate rebuilds the same rows (no duplicates); a new day's forecast adds rows
    evaluate(t.cfg, Console(width=120))
    assert len(_scan(t.cfg, "ml.prediction_accuracy")) == len(acc)
    predict(t.cfg, Console(width=120))
    p = _scan(t.cfg, "ml.predictions")
    assert len(p) == 2 * len(TRAIN_TICKERS) * 5
    assert not p.duplicated(["ticker", "as_of_date", "horizon_days"]).any()


def test_retraining_keeps_the_old_champion_as_previous(trained):
    from ml.train import needs_training, train

    t = trained
    name = t.cfg.mlflow.model_name
    old = t.client.get_model_version_by_alias(name, "champion")
    result = train(t.cfg, Console(width=120), models=["ridge"], force=True)
    assert set(result.results) == {"naive", "ridge"}  # naive is always trained as the baseline
    new = t.client.get_model_version_by_alias(name, "champion")
    assert str(new.version) == result.champion_version != str(old.version)
    assert new.run_id == result.results[result.champion].run_id
    assert str(t.client.get_model_version_by_alias(name, "previous").version) == str(old.version)
    assert needs_training(t.cfg, result.snapshot_id)[0] is False


def test_bad_input_gives_clear_messages(lh_env):
    cfg = get_config(reload=True)
    proc = run_cli("predict")
    assert proc.returncode == 1
    assert "no registered model stock_forecaster@champion" in proc.stderr and "lakehouse train" in proc.stderr
    from ml.train import train

    with pytest.raises(FeaturesUnavailable, match="does not exist.*lakehouse transform lake"):
        train(cfg, Console(width=120))
    schema = features_arrow(sample_features().head(1)).schema
    with open_lake(cfg) as lake:
        lake.catalog.create_namespace_if_not_exists("features")
        lake.catalog.create_table(FEATURES_TABLE, schema=schema)
    with pytest.raises(FeaturesUnavailable, match="is empty"):
        train(cfg, Console(width=120))

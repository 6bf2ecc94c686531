"""Services mode: training and inference against a real `mlflow server` (started by the supervisor on a
free port) whose artifacts are proxied into the SeaweedFS object store."""

from __future__ import annotations

import mlflow
import pytest
from rich.console import Console

from lakehouse.config import get_config
from lakehouse.lake import open_lake
from lakehouse.services.objectstore import s3_client
from lakehouse.services.supervisor import ServiceError, down, is_running, up
from ml import tracking
from ml.backtest import backtest
from ml.predict import predict
from ml.train import train
from tests.ml_helpers import isolated, sample_features, write_features

TICKERS = ["AAPL", "IBM"]


@pytest.fixture(scope="module")
def server_cfg(tmp_path_factory):
    # Other suites start services on this machine too: a free port taken between choosing it and
    # binding it gives a ServiceError; then try once more with fresh ports.
    for attempt in (1, 2):
        home = tmp_path_factory.mktemp("ml-server") / "home"
        gen = isolated(home, {
            "LAKEHOUSE_GENERAL__MODE": "services",
            # the lake stays on local files here; only MLflow runs as a service in this test
            "LAKEHOUSE_CATALOG__WAREHOUSE": (home / "warehouse").as_uri(),
            "LAKEHOUSE_MLFLOW__HOLDOUT_WEEKS": "26",
        })
        next(gen)
        cfg = get_config(reload=True)
        try:
            up(cfg, ["mlflow"], echo=lambda *_: None)  # starts the object store first (depends_on)
        except ServiceError:
            down(cfg, ["mlflow", "objectstore"], echo=lambda *_: None)
            next(gen, None)
            if attempt == 2:
                raise
            continue
        try:
            yield cfg
        finally:
            down(cfg, ["mlflow", "objectstore"], echo=lambda *_: None)
            next(gen, None)
        return


def test_train_and_predict_through_the_tracking_server(server_cfg):
    cfg = server_cfg
    assert is_running(cfg, "mlflow") and is_running(cfg, "objectstore")
    target = tracking.tracking_target(cfg)
    assert target.kind == "server" and target.tracking_uri == f"http://127.0.0.1:{cfg.mlflow.port}"

    df = sample_features()
    snap = write_features(cfg, df[df["ticker"].isin(TICKERS)])
    backtest(cfg, Console(width=120), models=["ridge"])
    result = train(cfg, Console(width=120), models=["ridge"])
    assert set(result.scores) == {"naive", "ridge"} and result.candidate == "ridge"
    client = mlflow.MlflowClient()
    assert mlflow.get_tracking_uri() == target.tracking_uri
    child = client.get_run(result.run_ids["ridge"])
    assert child.info.artifact_uri.startswith("mlflow-artifacts:")
    assert child.data.tags["feature_snapshot_id"] == str(snap)

    # artifacts went through the server into the object store bucket
    s3 = s3_client(cfg)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=cfg.objectstore.bucket, Prefix="mlflow/")
            .get("Contents", [])]
    assert any(k.endswith("/backtest.png") for k in keys), keys[:20]
    assert any(k.endswith("/MLmodel") for k in keys), keys[:20]

    champ = client.get_model_version_by_alias(cfg.mlflow.model_name, "champion")
    assert str(champ.version) == result.champion_version
    out = predict(cfg, Console(width=120))
    assert set(out.rows["ticker"]) == set(TICKERS) and len(out.rows) == 10
    assert out.model_version == str(champ.version) and out.run_id == champ.run_id
    with open_lake(cfg) as lake:
        p = lake.catalog.load_table("ml.predictions").scan().to_pandas()
        assert len(lake.catalog.load_table("features.fct_daily_features").scan(snapshot_id=snap).to_arrow())
    assert len(p) == 10 and set(p["feature_snapshot_id"]) == {snap}

"""Inference: the champion model forecasts every ticker's 5-day return and adjusted close.

The model predicts the 5-trading-day return r5 from each ticker's latest feature row; every model
handles missing features, so a ticker with a short history (FB) is forecast too, and each row names
the model kind and registered version that served it. A ticker that cannot be forecast (no price on
its latest row) is reported, never skipped silently.

Only day 5 is a model output. Days 1-4 are written for charts, interpolated geometrically on the
same compounding path (last_close * (1 + r5) ** (h / 5)) and flagged ``is_interpolated``: they are
never scored. Target dates are sessions of the ticker's exchange (exchange-calendars: XNYS, XMOS),
so no forecast targets a holiday.

Rows go to ``ml.predictions`` in one Iceberg commit that replaces earlier rows of the same
(ticker, as_of_date): rerunning for the same day never duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from rich.console import Console
from threadpoolctl import threadpool_limits

from lakehouse.config import Config
from lakehouse.pipeline.stage import StageContext
from ml import calendars, lake_tables, registry, reports
from ml.errors import FeaturesUnavailable, NoChampion
from ml.features import HORIZON_DAYS, INPUT_COLUMNS, latest_rows, load_features


@dataclass
class PredictResult:
    """Forecast rows written and where they came from."""

    rows: pd.DataFrame
    model_name: str
    model_version: str
    run_id: str
    feature_snapshot_id: int
    predictions_snapshot_id: int | None
    skipped: dict[str, str] = field(default_factory=dict)

    def detail(self) -> str:
        """One line for the pipeline summary."""
        n = self.rows["ticker"].nunique() if len(self.rows) else 0
        skipped = "; not forecast: " + ", ".join(f"{t} ({why})" for t, why in self.skipped.items())
        return (f"{n} tickers x {HORIZON_DAYS}-day forecast (days 1-4 interpolated) from {self.model_name} "
                f"v{self.model_version} into {lake_tables.PREDICTIONS}" + (skipped if self.skipped else ""))


def load_champion(cfg: Config):
    """(pyfunc model, ModelVersion) of ``models:/<model_name>@champion``; NoChampion when there is none."""
    import mlflow

    from ml import tracking

    tracking.configure(cfg)
    name = cfg.mlflow.model_name
    version = registry.champion_version(mlflow.MlflowClient(), name)
    if version is None:
        raise NoChampion(
            f"no registered model {name}@{registry.CHAMPION} in MLflow ({tracking.tracking_target(cfg).tracking_uri}); "
            "run `lakehouse train` first"
        )
    model = mlflow.pyfunc.load_model(f"models:/{name}@{registry.CHAMPION}")
    return model, version


def forecast_rows(latest: pd.DataFrame, predicted_return_5d, version, snapshot_id: int,
                  exchanges: dict[str, str] | None = None) -> pd.DataFrame:
    """The ``ml.predictions`` rows (5 per ticker) for the latest feature rows and their 5-day returns."""
    created = datetime.now(UTC)
    exchanges = exchanges or {}
    targets = {}
    for exchange, g in latest.groupby(latest["ticker"].map(lambda t: exchanges.get(t, calendars.DEFAULT_EXCHANGE))):
        dates = g["trade_date"].to_numpy()
        targets.update({(t, h): pd.Timestamp(d) for h in range(1, HORIZON_DAYS + 1)
                        for t, d in zip(g["ticker"], calendars.sessions_after(exchange, dates, h), strict=True)})
    rows = []
    for (_, row), r5 in zip(latest.iterrows(), predicted_return_5d, strict=True):
        for h in range(1, HORIZON_DAYS + 1):
            growth = (1 + float(r5)) ** (h / HORIZON_DAYS)
            rows.append({
                "ticker": row["ticker"], "as_of_date": row["trade_date"].date(),
                "target_date": targets[(row["ticker"], h)].date(), "horizon_days": h,
                "is_interpolated": h != HORIZON_DAYS, "predicted_close": float(row["adj_close"]) * growth,
                "predicted_return": growth - 1, "last_close": float(row["adj_close"]),
                "model_name": version.tags.get("model_name", ""), "model_version": str(version.version),
                "run_id": version.run_id, "feature_snapshot_id": snapshot_id, "created_at": created,
            })
    return pd.DataFrame(rows)


def predict(cfg: Config, console: Console | None = None) -> PredictResult:
    """Forecast the next 5 trading days for every ticker with the champion and write ml.predictions."""
    from lakehouse.lake import open_lake

    console = console or Console()
    model, version = load_champion(cfg)

    def warn(msg: str) -> None:
        console.print(f"[yellow]warning:[/] {msg}")

    fs = load_features(cfg)
    latest = latest_rows(fs, warn)
    if latest.empty:
        raise FeaturesUnavailable(
            f"no ticker has a price on its latest row in {fs.table} (snapshot {fs.snapshot_id}); see warnings"
        )
    with threadpool_limits(limits=1):  # a handful of rows: threads only add OpenMP overhead
        out = model.predict(latest.loc[:, list(INPUT_COLUMNS)])
    r5 = out["predicted_return_5d"].to_numpy(dtype=float)
    bad = ~np.isfinite(r5)
    for t in latest.loc[bad, "ticker"]:
        fs.skipped[t] = f"{version.tags.get('model_name', '?')} v{version.version} returned no finite forecast"
        warn(f"ticker {t} not forecast: {fs.skipped[t]}")
    latest, r5 = latest[~bad].reset_index(drop=True), r5[~bad]
    exchanges = calendars.ticker_exchanges(cfg, sorted(latest["ticker"]))
    rows = forecast_rows(latest, r5, version, fs.snapshot_id, exchanges)
    with open_lake(cfg) as lake:
        snap = lake_tables.replace_rows(
            lake.catalog, lake_tables.PREDICTIONS, rows.to_dict("records"), keys=("ticker", "as_of_date"),
        )
    result = PredictResult(rows, version.tags.get("model_name", ""), str(version.version), version.run_id,
                           fs.snapshot_id, snap, dict(fs.skipped))
    console.print(reports.forecast_table(
        rows, title=f"next-week forecast (adjusted close) · {cfg.mlflow.model_name}@champion, features snapshot "
                    f"{fs.snapshot_id}",
    ))
    return result


def run_stage(ctx: StageContext) -> str:
    """The ``predict`` stage: forecast with the champion into ml.predictions."""
    return predict(ctx.cfg, ctx.console).detail()

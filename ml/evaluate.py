"""Scoring past forecasts: ``ml.predictions`` joined with realized prices into ``ml.prediction_accuracy``.

The realized price of a forecast made on ``as_of_date`` with horizon h is the adjusted close on the
h-th trading day of that ticker after the as-of date (from ``features.fct_daily_features``), which
matches what the model was trained on even when a business-day target date was a holiday.
Forecasts whose h-th day has not happened yet are left for a later run. The table is rebuilt in
one atomic commit each run (it is derived entirely from predictions and prices), so reruns never
duplicate and rows appear as actuals arrive.

Columns: ``error`` = predicted - actual; ``abs_pct_error`` = |error| / actual (a fraction);
``direction_hit`` = predicted and realized moves from the last close have the same sign (null when
the forecast is no change, as the naive model's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from lakehouse.config import Config
from lakehouse.contracts import contract
from lakehouse.pipeline.stage import StageContext
from ml import lake_tables
from ml.features import load_features


@dataclass
class EvaluateResult:
    """How many forecasts were scored and how many wait for actuals."""

    rows: pd.DataFrame
    pending: int
    snapshot_id: int | None

    def detail(self) -> str:
        """One line for the pipeline summary."""
        if self.rows.empty:
            return f"no forecast has its actual price yet ({self.pending} pending)"
        mape = self.rows["abs_pct_error"].mean()
        return (f"{len(self.rows)} forecasts scored (MAPE {mape:.2%}), {self.pending} waiting for actuals "
                f"-> {lake_tables.PREDICTION_ACCURACY}")


def score(predictions: pd.DataFrame, prices: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Accuracy rows for the predictions whose realized price is known, and the count still pending."""
    out, pending = [], 0
    prices = prices.assign(trade_date=pd.to_datetime(prices["trade_date"])).sort_values(["ticker", "trade_date"])
    series = {t: (g["trade_date"].to_numpy(), g["adj_close"].to_numpy(dtype=float))
              for t, g in prices.groupby("ticker")}
    now = datetime.now(UTC)
    for rec in predictions.to_dict("records"):
        dates, closes = series.get(rec["ticker"], (np.array([], dtype="datetime64[ns]"), np.array([])))
        pos = int(np.searchsorted(dates, np.datetime64(pd.Timestamp(rec["as_of_date"])), side="right"))
        pos += int(rec["horizon_days"]) - 1
        if pos >= len(dates) or not np.isfinite(closes[pos]):
            pending += 1
            continue
        actual, pred, last = closes[pos], float(rec["predicted_close"]), float(rec["last_close"])
        pred_move, real_move = np.sign(pred - last), np.sign(actual - last)
        out.append({
            "ticker": rec["ticker"], "as_of_date": rec["as_of_date"], "target_date": rec["target_date"],
            "horizon_days": int(rec["horizon_days"]), "predicted_close": pred, "actual_close": float(actual),
            "error": pred - actual, "abs_pct_error": abs(pred - actual) / actual if actual else None,
            "direction_hit": None if pred_move == 0 else bool(pred_move == real_move),
            "model_name": rec["model_name"], "model_version": rec["model_version"], "evaluated_at": now,
        })
    return pd.DataFrame(out, columns=list(contract(lake_tables.PREDICTION_ACCURACY).column_names)), pending


def evaluate(cfg: Config, console: Console | None = None) -> EvaluateResult:
    """Score every stored forecast whose actual is known; rebuild ml.prediction_accuracy atomically."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    from lakehouse.lake import open_lake

    console = console or Console()
    with open_lake(cfg) as lake:
        try:
            preds = lake.catalog.load_table(lake_tables.PREDICTIONS).scan().to_pandas()
        except (NoSuchTableError, NoSuchNamespaceError):
            preds = pd.DataFrame()
    if preds.empty:
        console.print(f"nothing to evaluate: {lake_tables.PREDICTIONS} has no forecasts yet (run `lakehouse predict`)")
        return EvaluateResult(pd.DataFrame(), 0, None)
    fs = load_features(cfg)
    rows, pending = score(preds, fs.frame[["ticker", "trade_date", "adj_close"]])
    with open_lake(cfg) as lake:
        snap = lake_tables.replace_rows(lake.catalog, lake_tables.PREDICTION_ACCURACY,
                                        rows.to_dict("records"), keys=None)
    result = EvaluateResult(rows, pending, snap)
    if not rows.empty:
        table = Table(title=f"forecast accuracy ({lake_tables.PREDICTION_ACCURACY})")
        for c in ("model", "version", "forecasts", "MAPE", "direction hit rate"):
            table.add_column(c, justify="right" if c != "model" else "left")
        for (m, v), g in rows.groupby(["model_name", "model_version"]):
            hits = g["direction_hit"].dropna()
            table.add_row(m, str(v), str(len(g)), f"{g['abs_pct_error'].mean():.2%}",
                          f"{hits.mean():.1%}" if len(hits) else "-")
        console.print(table)
    console.print(result.detail())
    return result


def run_stage(ctx: StageContext) -> str:
    """The ``evaluate`` stage: score the forecasts whose actuals exist into ml.prediction_accuracy."""
    return evaluate(ctx.cfg, ctx.console).detail()

"""Scoring live forecasts: ``ml.predictions`` against what happened, into ``ml.prediction_accuracy``.

Scored the way the backtest is, on one price basis: the realized return of a forecast made as of d
for target date t is adj_close(t) / adj_close(d) - 1 with both closes from the *current* features
snapshot, so a split or dividend re-adjustment after the forecast scales both and cancels out
(comparing the forecast's price with today's adjusted price would show it as a huge error). The
realized close is then put on the forecast's basis: ``actual_close`` = last_close x (1 + actual
return). A forecast whose target session has no quote yet is left for a later run.

Only the 5-day horizon is a model output: rows of days 1-4 are stored (flagged ``is_interpolated``)
for charts but kept out of the scores, which are the same as the backtest's (:mod:`ml.metrics`, the
MASE scale from the ticker's targets known before the as-of date). The table is rebuilt in one
atomic commit each run (it derives entirely from predictions and prices): reruns never duplicate.
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
from ml.features import HORIZON_DAYS, TARGET_RETURN, load_features, training_rows
from ml.metrics import naive_scale
from ml.metrics import score as score_rows


@dataclass
class EvaluateResult:
    """How many forecasts were scored and how many wait for actuals."""

    rows: pd.DataFrame
    pending: int
    snapshot_id: int | None
    scores: dict[tuple[str, str], dict[str, float]] | None = None

    def detail(self) -> str:
        """One line for the pipeline summary."""
        if self.rows.empty:
            return f"no live forecast has its actual yet ({self.pending} pending)"
        n5 = int((~self.rows["is_interpolated"].astype(bool)).sum())
        return (f"{len(self.rows)} forecast rows realized ({n5} 5-day forecasts scored), {self.pending} waiting "
                f"for actuals -> {lake_tables.PREDICTION_ACCURACY}")


def realize(predictions: pd.DataFrame, prices: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Accuracy rows for the predictions whose target session has a quote, and the count still pending."""
    prices = prices.assign(trade_date=pd.to_datetime(prices["trade_date"]).astype("datetime64[ns]"))
    if "is_interpolated" not in predictions.columns:  # written before the column existed
        predictions = predictions.assign(is_interpolated=None)
    p = predictions.assign(as_of_ts=pd.to_datetime(predictions["as_of_date"]).astype("datetime64[ns]"),
                           target_ts=pd.to_datetime(predictions["target_date"]).astype("datetime64[ns]"))
    close = prices.set_index(["ticker", "trade_date"])["adj_close"]
    last_day = prices.groupby("ticker")["trade_date"].max()
    p["base_now"] = close.reindex(pd.MultiIndex.from_arrays([p["ticker"], p["as_of_ts"]])).to_numpy()
    p["target_now"] = close.reindex(pd.MultiIndex.from_arrays([p["ticker"], p["target_ts"]])).to_numpy()
    known = p["target_now"].notna() & p["base_now"].gt(0)
    pending = int((~known & (p["target_ts"] > p["ticker"].map(last_day).fillna(pd.Timestamp.min))).sum())
    d = p[known].copy()
    now = datetime.now(UTC)
    d["actual_return"] = d["target_now"] / d["base_now"] - 1
    d["actual_close"] = d["last_close"] * (1 + d["actual_return"])
    d["return_error"] = d["predicted_return"] - d["actual_return"]
    d["error"] = d["predicted_close"] - d["actual_close"]
    d["abs_pct_error"] = (d["error"].abs() / d["actual_close"]).where(d["actual_close"] != 0)
    pred_sign, real_sign = np.sign(d["predicted_return"]), np.sign(d["actual_return"])
    d["direction_hit"] = (pred_sign == real_sign).astype(object).where(pred_sign != 0, None)
    d["is_interpolated"] = d["is_interpolated"].fillna(d["horizon_days"] != HORIZON_DAYS).astype(bool)
    d["evaluated_at"] = now
    d["horizon_days"] = d["horizon_days"].astype(int)
    return d.loc[:, list(contract(lake_tables.PREDICTION_ACCURACY).column_names)].reset_index(drop=True), pending


def live_scores(rows: pd.DataFrame, frame: pd.DataFrame) -> dict[tuple[str, str], dict[str, float]]:
    """(model, version) -> the backtest's scores (:func:`ml.metrics.score`) on the realized 5-day forecasts."""
    five = rows[~rows["is_interpolated"].astype(bool)].copy()
    if five.empty:
        return {}
    five["as_of_date"] = pd.to_datetime(five["as_of_date"])
    train = training_rows(frame)
    five["naive_scale"] = np.nan
    for ticker, idx in five.groupby("ticker").groups.items():
        g = train[train["ticker"] == ticker]
        five.loc[idx, "naive_scale"] = naive_scale(g[TARGET_RETURN], g["target_date"], five.loc[idx, "as_of_date"])
    return {(m, v): score_rows(g) for (m, v), g in five.groupby(["model_name", "model_version"])}


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
    rows, pending = realize(preds, fs.frame[["ticker", "trade_date", "adj_close"]])
    with open_lake(cfg) as lake:
        records = rows.astype(object).where(rows.notna(), None).to_dict("records")
        snap = lake_tables.replace_rows(lake.catalog, lake_tables.PREDICTION_ACCURACY, records, keys=None)
    scores = live_scores(rows, fs.frame) if not rows.empty else {}
    result = EvaluateResult(rows, pending, snap, scores)
    if scores:
        table = Table(title=f"live 5-day forecasts against what happened ({lake_tables.PREDICTION_ACCURACY})")
        for c in ("model", "version", "n", "MASE", "rel MAE", "dir acc", "up rate"):
            table.add_column(c, justify="right" if c != "model" else "left")
        for (m, v), s in sorted(scores.items()):
            table.add_row(m, str(v), f"{s['n_obs']:.0f}", *(("-" if s[k] != s[k] else f"{s[k]:.3f}")
                                                              for k in ("mase", "rel_mae", "dir_acc", "up_rate")))
        console.print(table)
    console.print(result.detail())
    return result


def run_stage(ctx: StageContext) -> str:
    """The ``evaluate`` stage: score the forecasts whose actuals exist into ml.prediction_accuracy."""
    return evaluate(ctx.cfg, ctx.console).detail()

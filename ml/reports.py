"""Human-readable outputs of a training run: plots, feature importance, tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # Agg canvas, no pyplot state, no display needed
from rich.table import Table
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

from ml.features import MODEL_FEATURES
from ml.metrics import METRIC_NAMES


def prediction_plot(oof: pd.DataFrame, ticker: str, model: str) -> Figure:
    """Predicted vs realized 5-day-ahead adjusted close of one ticker over the walk-forward folds."""
    d = oof[oof["ticker"] == ticker].sort_values("trade_date")
    fig = Figure(figsize=(10, 4), dpi=90)
    ax = fig.add_subplot()
    ax.plot(d["trade_date"], d["actual_close"], label="realized close (t+5)", lw=1.2, color="black")
    ax.plot(d["trade_date"], d["pred_close"], label=f"{model} forecast", lw=1.0, color="tab:blue", alpha=0.8)
    for fold, g in d.groupby("fold"):
        ax.axvspan(g["trade_date"].min(), g["trade_date"].max(), alpha=0.06 if fold % 2 else 0.12, color="grey")
    ax.set_title(f"{ticker}: {model}, 5-trading-day-ahead adjusted close (walk-forward test folds)")
    ax.set_xlabel("as-of date")
    ax.set_ylabel("adjusted close")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def feature_importance(est, X_test: pd.DataFrame, y_test: np.ndarray) -> pd.DataFrame | None:
    """Importance of each model feature, or None for models without features (baselines).

    Ridge: |standardized coefficient|; random forest: impurity importance; gradient boosting:
    permutation importance (MAE increase) on the last walk-forward test fold, which permutes one
    feature's values within that held-out fold only.
    """
    if not isinstance(est, Pipeline):
        return None
    last = est.steps[-1][1]
    if hasattr(last, "coef_"):
        values, method = np.abs(np.ravel(last.coef_)), "abs standardized coefficient"
    elif hasattr(last, "feature_importances_"):
        values, method = last.feature_importances_, "impurity importance"
    else:
        if len(X_test) < 10:
            return None
        res = permutation_importance(
            est, X_test, y_test, scoring="neg_mean_absolute_error", n_repeats=3, random_state=0, n_jobs=1,
        )
        imp = pd.Series(res.importances_mean, index=X_test.columns)
        values, method = imp.reindex(list(MODEL_FEATURES)).to_numpy(), "permutation (MAE increase, last fold)"
    out = pd.DataFrame({"feature": list(MODEL_FEATURES), "importance": values, "method": method})
    return out.sort_values("importance", ascending=False).reset_index(drop=True)


def importance_plot(imp: pd.DataFrame, model: str) -> Figure:
    """Horizontal bar chart of feature importance."""
    d = imp.iloc[::-1]
    fig = Figure(figsize=(7, 0.3 * len(d) + 1.2), dpi=90)
    ax = fig.add_subplot()
    ax.barh(d["feature"], d["importance"], color="tab:blue")
    ax.set_title(f"{model}: feature importance ({imp['method'].iloc[0]})")
    fig.tight_layout()
    return fig


_SHORT = {"directional_accuracy": "dir acc", "rank_ic": "rank ic"}


def _fmt(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def summary_table(overall: dict[str, dict], versions: dict[str, str], champion: str, title: str) -> Table:
    """Models x metrics, champion marked."""
    table = Table(title=title)
    table.add_column("model")
    for m in METRIC_NAMES:
        table.add_column(_SHORT.get(m, m), justify="right")
    table.add_column("version", justify="right")
    table.add_column("")
    for name in sorted(overall, key=lambda n: (math.isnan(overall[n]["mase"]), overall[n]["mase"])):
        mark = "[bold green]champion[/]" if name == champion else ""
        table.add_row(name, *(_fmt(overall[name][m]) for m in METRIC_NAMES), versions.get(name, ""), mark)
    return table


def forecast_table(rows: pd.DataFrame, title: str, max_tickers: int = 30) -> Table:
    """Next-week forecast: one row per ticker (the first ``max_tickers``), one column per target date."""
    as_of = sorted({str(d) for d in rows["as_of_date"]})
    one_day = len(as_of) == 1
    table = Table(title=f"{title}\nas of {as_of[0]}" if one_day else title)
    table.add_column("ticker")
    if not one_day:
        table.add_column("as of", justify="right")
    table.add_column("last close", justify="right")
    dates = sorted(rows["target_date"].unique())
    for d in dates:
        table.add_column(pd.Timestamp(d).strftime("%a %m-%d"), justify="right")
    table.add_column("5d return", justify="right")
    groups = list(rows.groupby("ticker", sort=True))
    if len(groups) > max_tickers:
        table.caption = f"{len(groups) - max_tickers} more tickers in ml.predictions"
    for ticker, g in groups[:max_tickers]:
        by_date = dict(zip(g["target_date"], g["predicted_close"], strict=True))
        r5 = g.loc[g["horizon_days"].idxmax(), "predicted_return"]
        table.add_row(
            ticker, *([] if one_day else [str(g["as_of_date"].iloc[0])]), f"{g['last_close'].iloc[0]:.2f}",
            *(f"{by_date[d]:.2f}" if d in by_date else "" for d in dates), f"{r5:+.2%}",
        )
    return table

"""Forecast quality metrics for 5-day-ahead price forecasts.

- ``mae``, ``rmse``: on the adjusted close (price units);
- ``mape``: mean absolute percentage error as a fraction (0.03 = 3 %);
- ``mase``: the model's MAE divided by the naive (last close) forecast's MAE on the same rows,
  so the naive model scores exactly 1 and < 1 beats it;
- ``directional_accuracy``: share of rows where the predicted and realized 5-day returns have the
  same sign, over rows where both are non-zero (NaN for a model that never predicts a move);
- ``ic`` / ``rank_ic``: Pearson / Spearman correlation of predicted and realized 5-day returns,
  pooled over the rows (NaN when either side is constant, e.g. the naive model).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, root_mean_squared_error

METRIC_NAMES = ("mase", "mae", "rmse", "mape", "directional_accuracy", "ic", "rank_ic")


def _corr(fn, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(fn(a, b)[0])


def forecast_metrics(
    actual_close: np.ndarray, pred_close: np.ndarray, last_close: np.ndarray,
) -> dict[str, float]:
    """Every metric of :data:`METRIC_NAMES` for aligned arrays (realized, predicted, last known close)."""
    actual_close, pred_close, last_close = (np.asarray(x, dtype=float) for x in (actual_close, pred_close,
                                                                                last_close))
    if len(actual_close) == 0:
        return dict.fromkeys(METRIC_NAMES, math.nan)
    mae = float(mean_absolute_error(actual_close, pred_close))
    naive_mae = float(mean_absolute_error(actual_close, last_close))
    actual_ret = actual_close / last_close - 1
    pred_ret = pred_close / last_close - 1
    moved = (pred_ret != 0) & (actual_ret != 0)
    return {
        "mase": mae / naive_mae if naive_mae > 0 else math.nan,
        "mae": mae,
        "rmse": float(root_mean_squared_error(actual_close, pred_close)),
        "mape": float(mean_absolute_percentage_error(actual_close, pred_close)),
        "directional_accuracy": (
            float(np.mean(np.sign(pred_ret[moved]) == np.sign(actual_ret[moved]))) if moved.any() else math.nan
        ),
        "ic": _corr(pearsonr, pred_ret, actual_ret),
        "rank_ic": _corr(spearmanr, pred_ret, actual_ret),
    }

"""Forecast scores in return units, per ticker and then averaged over tickers with equal weight.

Why per ticker and in returns: pooled price errors let the most expensive stock decide (an error of
8 dollars on GOOG outweighs 0.5 on MSFT), and a price adjustment after the forecast shows up as a
huge error. Every score here is on the 5-day simple return from the as-of close, and every ticker
counts once.

For one model, over the rows of one split (``cv`` or ``holdout``), per ticker:

- ``mase``: Hyndman's mean absolute scaled error: |error| divided by the *in-sample* MAE of the
  naive 5-day forecast (no change, so the mean |5-day return|) over the training window of the fit
  that made the forecast (targets known before its retrain date). Naive scores about 1, not exactly.
- ``rel_mae``: the model's MAE over naive's MAE on the same rows (naive = 1 exactly).
- ``dir_acc``: share of rows where the predicted and realized moves have the same sign, over rows
  where both are non-zero (NaN for naive); ``up_rate``: share of up moves in those same rows (the
  accuracy of "always up" there); ``always_up_acc``: share of up moves over all rows with a move.
  A ``dir_acc`` equal to ``up_rate`` is zero skill.
- ``ic`` / ``rank_ic``: Pearson / Spearman correlation of predicted and realized returns (NaN for a
  constant forecast), with a HAC t-statistic (``ic_tstat``, ``rank_ic_tstat``) of the mean product of
  the ticker-standardized values (ranks for ``rank_ic``), averaged over tickers per date.
- ``dm_stat`` / ``dm_pvalue``: Diebold-Mariano test of equal accuracy against naive: the per-date
  mean over tickers of the scaled loss differential (|e_model| - |e_naive|) / scale, its mean
  divided by a Newey-West (Bartlett) standard error with ``lag`` >= horizon - 1, two-sided normal
  p-value. Negative = the model's errors are smaller.

The HAC standard error comes from statsmodels (OLS of the series on a constant, ``cov_type='HAC'``,
no small-sample correction): that is the textbook Newey-West long-run variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Columns of a scored frame: one row per ticker and as-of date.
SCORED_COLUMNS = ("ticker", "as_of_date", "predicted_return", "actual_return", "naive_scale")

#: Scores of one model on one split, in the order of ml.model_metrics.
SCORE_NAMES = (
    "mase", "rel_mae", "mae", "dir_acc", "up_rate", "always_up_acc", "ic", "ic_tstat", "rank_ic",
    "rank_ic_tstat", "dm_stat", "dm_pvalue", "n_obs", "n_tickers", "n_dates",
)

#: Fewest known 5-day returns of a ticker before a retrain date that define its MASE scale.
MIN_SCALE_ROWS = 20


def hac_mean_test(series: np.ndarray, lag: int) -> tuple[float, float]:
    """(t-statistic, two-sided p-value) of "the mean of ``series`` is zero" with a Newey-West
    (Bartlett kernel, ``lag`` lags) standard error; NaN when the series is too short or constant."""
    x = np.asarray(series, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < max(3, lag + 2) or np.allclose(x, x[0]):
        return math.nan, math.nan
    from statsmodels.regression.linear_model import OLS  # not statsmodels.api: seconds of imports

    fit = OLS(x, np.ones(len(x))).fit(cov_type="HAC", cov_kwds={"maxlags": int(lag), "use_correction": False})
    return float(fit.tvalues[0]), float(fit.pvalues[0])


def diebold_mariano(loss_model: np.ndarray, loss_reference: np.ndarray, lag: int) -> tuple[float, float]:
    """Diebold-Mariano statistic and p-value of equal expected loss (negative: the model's loss is lower)."""
    return hac_mean_test(np.asarray(loss_model, float) - np.asarray(loss_reference, float), lag)


def naive_scale(returns: pd.Series, known_dates: pd.Series, cut_dates: pd.Series | np.ndarray,
                min_rows: int = MIN_SCALE_ROWS) -> np.ndarray:
    """In-sample MAE of the naive 5-day forecast (mean |5-day return|) of one ticker before each cut date.

    ``returns``/``known_dates``: the ticker's realized 5-day returns and the dates they became known
    (their target dates). For each cut date: the mean |return| over returns known strictly before it,
    NaN with fewer than :data:`MIN_SCALE_ROWS`.
    """
    order = np.argsort(known_dates.to_numpy(dtype="datetime64[ns]"), kind="stable")
    dates = known_dates.to_numpy(dtype="datetime64[ns]")[order]
    absret = np.abs(returns.to_numpy(dtype=float)[order])
    ok = np.isfinite(absret)
    dates, absret = dates[ok], absret[ok]
    csum = np.concatenate([[0.0], np.cumsum(absret)])
    n = np.searchsorted(dates, np.asarray(cut_dates, dtype="datetime64[ns]"), side="left")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = csum[n] / n
    out[n < min_rows] = np.nan
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def _zscores(groups, x: pd.Series) -> pd.Series:
    """``x`` standardized within its groups (NaN for a constant group)."""
    sd = groups.transform("std", ddof=0)
    return (x - groups.transform("mean")) / sd.where(sd > 0)


@dataclass
class _TickerScores:
    mase: float
    rel_mae: float
    mae: float
    dir_acc: float
    up_rate: float
    always_up_acc: float
    ic: float
    rank_ic: float


def _ticker_scores(g: pd.DataFrame) -> _TickerScores:
    pred, act = g["predicted_return"].to_numpy(float), g["actual_return"].to_numpy(float)
    err = np.abs(pred - act)
    naive_mae = float(np.mean(np.abs(act)))
    moved = (pred != 0) & (act != 0)
    any_move = act != 0
    return _TickerScores(
        mase=float(np.mean(err / g["naive_scale"].to_numpy(float))),
        rel_mae=float(np.mean(err)) / naive_mae if naive_mae > 0 else math.nan,
        mae=float(np.mean(err)),
        dir_acc=float(np.mean(np.sign(pred[moved]) == np.sign(act[moved]))) if moved.any() else math.nan,
        up_rate=float(np.mean(act[moved] > 0)) if moved.any() else math.nan,
        always_up_acc=float(np.mean(act[any_move] > 0)) if any_move.any() else math.nan,
        ic=_corr(pred, act),
        rank_ic=_corr(pd.Series(pred).rank().to_numpy(), pd.Series(act).rank().to_numpy()),
    )


def score(rows: pd.DataFrame, lag: int = 4) -> dict[str, float]:
    """Every score of :data:`SCORE_NAMES` for one model's scored rows (:data:`SCORED_COLUMNS`).

    Naive's forecast is a zero return, so its error on a row is |actual|: ``rel_mae`` and the DM test
    need no second frame. Rows without an actual return or a scale are dropped first.
    """
    d = rows.dropna(subset=["actual_return", "naive_scale", "predicted_return"])
    d = d[d["naive_scale"] > 0]
    out: dict[str, float] = dict.fromkeys(SCORE_NAMES, math.nan)
    out.update(n_obs=len(d), n_tickers=d["ticker"].nunique(), n_dates=d["as_of_date"].nunique())
    if d.empty:
        return out
    per = [_ticker_scores(g) for _, g in d.groupby("ticker", sort=True)]
    for name in ("mase", "rel_mae", "mae", "dir_acc", "up_rate", "always_up_acc", "ic", "rank_ic"):
        vals = np.array([getattr(p, name) for p in per], dtype=float)
        out[name] = float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan
    # IC t-statistics: per-date mean over tickers of the products of ticker-standardized values
    by_t = d.groupby("ticker", sort=False)
    ranks = pd.DataFrame({"p": by_t["predicted_return"].rank(), "a": by_t["actual_return"].rank(),
                          "ticker": d["ticker"]}).groupby("ticker", sort=False)
    zp = _zscores(by_t["predicted_return"], d["predicted_return"])
    za = _zscores(by_t["actual_return"], d["actual_return"])
    rp, ra = _zscores(ranks["p"], ranks.obj["p"]), _zscores(ranks["a"], ranks.obj["a"])
    for name, prod in (("ic_tstat", zp * za), ("rank_ic_tstat", rp * ra)):
        series = prod.groupby(d["as_of_date"]).mean().sort_index()
        out[name] = hac_mean_test(series.to_numpy(), lag)[0]
    # Diebold-Mariano against naive (|actual| is naive's loss), scaled per row, averaged per date
    diff = (np.abs(d["predicted_return"] - d["actual_return"]) - np.abs(d["actual_return"])) / d["naive_scale"]
    series = diff.groupby(d["as_of_date"]).mean().sort_index()
    out["dm_stat"], out["dm_pvalue"] = hac_mean_test(series.to_numpy(), lag)
    return out


def compare(rows: pd.DataFrame, reference: pd.DataFrame, lag: int = 4) -> dict[str, float]:
    """Candidate vs another model on the same keys: both MASEs and the DM test (negative: candidate better)."""
    keys = ["ticker", "as_of_date"]
    m = rows.merge(reference[[*keys, "predicted_return"]], on=keys, suffixes=("", "_ref"))
    m = m.dropna(subset=["actual_return", "naive_scale", "predicted_return", "predicted_return_ref"])
    m = m[m["naive_scale"] > 0]
    if m.empty:
        return {"mase": math.nan, "mase_ref": math.nan, "dm_stat": math.nan, "dm_pvalue": math.nan, "n_obs": 0}
    e = np.abs(m["predicted_return"] - m["actual_return"]) / m["naive_scale"]
    e_ref = np.abs(m["predicted_return_ref"] - m["actual_return"]) / m["naive_scale"]
    per = pd.DataFrame({"ticker": m["ticker"], "e": e, "e_ref": e_ref}).groupby("ticker").mean()
    series = (e - e_ref).groupby(m["as_of_date"]).mean().sort_index()
    stat, p = hac_mean_test(series.to_numpy(), lag)
    return {"mase": float(per["e"].mean()), "mase_ref": float(per["e_ref"].mean()), "dm_stat": stat,
            "dm_pvalue": p, "n_obs": len(m)}

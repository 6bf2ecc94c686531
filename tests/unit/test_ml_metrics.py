"""Scores in return units on tiny hand-worked examples, the Diebold-Mariano test against the textbook
Newey-West formula, and the champion rule on synthetic holdouts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from ml.metrics import compare, diebold_mariano, hac_mean_test, naive_scale, score
from ml.registry import beats_naive, champion_rule

D = pd.to_datetime(["2020-01-03", "2020-01-10", "2020-01-17", "2020-01-24"])


def _rows(pred_a, act_a, pred_b, act_b, scale_a=0.05, scale_b=0.10) -> pd.DataFrame:
    return pd.DataFrame({
        "ticker": ["A"] * 4 + ["B"] * 4, "as_of_date": list(D) * 2,
        "predicted_return": [*pred_a, *pred_b], "actual_return": [*act_a, *act_b],
        "naive_scale": [scale_a] * 4 + [scale_b] * 4,
    })


def test_naive_scale_is_the_in_sample_naive_mae_before_each_cut():
    # 5-day returns known on these dates; naive forecasts 0, so its in-sample MAE is the mean |return|
    rets = pd.Series([0.02, -0.04, 0.06, -0.08])
    known = pd.Series(pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-06"]))
    cuts = pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-06", "2020-02-01"]).to_numpy()
    got = naive_scale(rets, known, cuts, min_rows=2)
    # before 01-02: one return (too few); before 01-03: |.02|,|-.04|; before 01-06: + .06; all four
    assert math.isnan(got[0])
    assert got[1:] == pytest.approx([0.03, 0.04, 0.05])


def test_scores_per_ticker_then_equal_weight_on_a_hand_example():
    # ticker A (scale 0.05): predictions .01 .01 -.01 .02 vs actual .02 -.01 -.03 .00
    # ticker B (scale 0.10): predictions -.02 .03 .01 .01 vs actual -.04 .05 .02 -.01
    rows = _rows([0.01, 0.01, -0.01, 0.02], [0.02, -0.01, -0.03, 0.0],
                 [-0.02, 0.03, 0.01, 0.01], [-0.04, 0.05, 0.02, -0.01])
    s = score(rows, lag=1)
    # A: |e| = .01 .02 .02 .02 -> MAE .0175; naive MAE = mean|act| = (.02+.01+.03+0)/4 = .015
    # B: |e| = .02 .02 .01 .02 -> MAE .0175; naive MAE = (.04+.05+.02+.01)/4 = .03
    assert s["mae"] == pytest.approx(0.0175)
    assert s["rel_mae"] == pytest.approx((0.0175 / 0.015 + 0.0175 / 0.03) / 2)
    assert s["mase"] == pytest.approx((0.0175 / 0.05 + 0.0175 / 0.10) / 2)
    # direction: A rows with a move on both sides: 1 (hit), 2 (miss), 3 (hit) -> 2/3, up rate there 1/3;
    # B: all four move: hit, hit, hit, miss -> 3/4, up rate 2/4
    assert s["dir_acc"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert s["up_rate"] == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert s["always_up_acc"] == pytest.approx((1 / 3 + 2 / 4) / 2)
    ic_a = np.corrcoef([0.01, 0.01, -0.01, 0.02], [0.02, -0.01, -0.03, 0.0])[0, 1]
    ic_b = np.corrcoef([-0.02, 0.03, 0.01, 0.01], [-0.04, 0.05, 0.02, -0.01])[0, 1]
    assert s["ic"] == pytest.approx((ic_a + ic_b) / 2)
    assert s["n_obs"] == 8 and s["n_tickers"] == 2 and s["n_dates"] == 4
    # DM: per date, the mean over tickers of (|e| - |actual|) / scale
    diff = pd.Series([(0.01 - 0.02) / 0.05, (0.02 - 0.01) / 0.05, (0.02 - 0.03) / 0.05, (0.02 - 0.0) / 0.05,
                      (0.02 - 0.04) / 0.10, (0.02 - 0.05) / 0.10, (0.01 - 0.02) / 0.10, (0.02 - 0.01) / 0.10])
    per_date = (diff[:4].to_numpy() + diff[4:].to_numpy()) / 2
    assert (s["dm_stat"], s["dm_pvalue"]) == pytest.approx(hac_mean_test(per_date, 1))


def test_naive_scores_rel_mae_one_and_has_no_direction_or_test():
    rows = _rows([0.0] * 4, [0.02, -0.01, -0.03, 0.01], [0.0] * 4, [-0.04, 0.05, 0.02, -0.01])
    s = score(rows)
    assert s["rel_mae"] == 1.0
    assert math.isnan(s["dir_acc"]) and math.isnan(s["ic"]) and math.isnan(s["dm_stat"])
    assert s["always_up_acc"] == pytest.approx(0.5)  # 2 of 4 up in each ticker: the base rate is still reported


def test_drift_always_up_has_dir_acc_equal_to_its_base_rate():
    rows = _rows([0.01] * 4, [0.02, -0.01, -0.03, 0.01], [0.01] * 4, [-0.04, 0.05, 0.02, -0.01])
    s = score(rows)
    assert s["dir_acc"] == s["up_rate"]  # zero skill, as the base rate shows


def test_diebold_mariano_matches_the_textbook_newey_west_formula():
    """DM = mean(d) / sqrt(LRV / T), LRV = g0 + 2 sum_j (1 - j/(L+1)) g_j, g_j = 1/T sum (d_t - m)(d_t-j - m)."""
    e_model = np.array([1.0, 0.5, 2.0, 0.2, 0.1, 0.9, 0.4, 1.5])
    e_naive = np.array([1.2, 0.9, 1.5, 0.8, 0.6, 1.0, 1.1, 1.3])
    d = e_model - e_naive  # -0.2 -0.4 0.5 -0.6 -0.5 -0.1 -0.7 0.2
    T, m, L = len(d), d.mean(), 2
    g = [np.sum((d[j:] - m) * (d[: T - j] - m)) / T for j in range(L + 1)]
    lrv = g[0] + 2 * sum((1 - j / (L + 1)) * g[j] for j in range(1, L + 1))
    expected = m / math.sqrt(lrv / T)
    stat, p = diebold_mariano(e_model, e_naive, lag=L)
    assert m == pytest.approx(-0.225)
    assert stat == pytest.approx(expected)
    assert p == pytest.approx(2 * norm.sf(abs(expected)))
    # with no lag it is the plain t-statistic with the population variance
    assert hac_mean_test(d, 0)[0] == pytest.approx(m / math.sqrt(np.var(d) / T))


def test_constant_or_too_short_series_has_no_test():
    assert all(math.isnan(x) for x in hac_mean_test(np.zeros(50), 4))
    assert all(math.isnan(x) for x in hac_mean_test(np.array([0.1, -0.2]), 4))


# -- the champion rule on synthetic holdouts -------------------------------------------------------

def _synthetic(skill: float, noise: float, seed: int, n_dates: int = 120, tickers=("A", "B", "C")) -> pd.DataFrame:
    """Forecasts = skill x realized + noise, for a few tickers and weekly dates (the same realized returns)."""
    rng = np.random.default_rng(0)
    dates = pd.date_range("2020-01-03", periods=n_dates, freq="W-FRI")
    actual = rng.normal(0.002, 0.03, size=(len(tickers), n_dates))
    own = np.random.default_rng(seed).normal(0, noise, size=actual.shape)
    return pd.DataFrame({
        "ticker": np.repeat(tickers, n_dates), "as_of_date": np.tile(dates, len(tickers)),
        "actual_return": actual.ravel(), "predicted_return": (skill * actual + own).ravel(), "naive_scale": 0.025,
    })


def test_a_better_but_not_significant_candidate_is_not_promoted():
    cand = _synthetic(skill=0.05, noise=0.01, seed=4)  # rel_mae 0.989, DM -0.54, p 0.59
    s = score(cand)
    assert s["rel_mae"] < 1 and s["dm_stat"] < 0  # better than naive on these rows ...
    assert s["dm_pvalue"] > 0.10  # ... but not significantly
    assert not beats_naive(s, 0.10)
    d = champion_rule("ridge", s, current="drift", vs_current=None, threshold=0.10)
    assert d.champion == "drift" and not d.promote
    assert "does not beat naive significantly" in d.reason and "drift stays champion" in d.reason
    d = champion_rule("ridge", s, current=None, vs_current=None, threshold=0.10)
    assert d.champion == "naive" and d.promote  # no champion yet: naive holds it until a model earns it
    # the same candidate passes a looser threshold only if its p-value is under it
    assert champion_rule("ridge", s, None, None, threshold=min(0.99, s["dm_pvalue"] + 0.01)).champion == "ridge"


def test_a_candidate_worse_than_the_current_champion_is_not_promoted():
    champion = _synthetic(skill=0.5, noise=0.005, seed=2)
    cand = _synthetic(skill=0.25, noise=0.005, seed=3)
    s = score(cand)
    assert beats_naive(s, 0.10)  # significantly better than naive ...
    vs = compare(cand, champion)
    assert vs["mase"] > vs["mase_ref"]  # ... but worse than the champion's kind on the same holdout
    d = champion_rule("hist_gbr", s, current="ridge", vs_current=vs, threshold=0.10)
    assert d.champion == "ridge" and not d.promote
    assert "not the current champion ridge" in d.reason
    # the other way round the candidate is promoted
    d = champion_rule("ridge", score(champion), current="hist_gbr", vs_current=compare(champion, cand),
                      threshold=0.10)
    assert d.champion == "ridge" and d.promote and "beats the current champion hist_gbr" in d.reason


def test_no_candidate_keeps_or_installs_naive():
    assert champion_rule(None, None, None, None, 0.1).champion == "naive"
    d = champion_rule(None, None, "ridge", None, 0.1)
    assert d.champion == "ridge" and not d.promote

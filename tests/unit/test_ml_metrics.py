"""Forecast metrics on a tiny hand-made example, and the champion rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml.errors import FeaturesUnavailable
from ml.features import FeatureSet, latest_rows, normalize, training_frame
from ml.metrics import forecast_metrics
from ml.registry import choose_champion

ACTUAL = [110.0, 90.0, 100.0, 105.0]
LAST = [100.0, 100.0, 100.0, 100.0]
PRED = [105.0, 95.0, 101.0, 100.0]


def test_metrics_on_a_hand_made_example():
    m = forecast_metrics(ACTUAL, PRED, LAST)
    # absolute errors 5, 5, 1, 5; naive (last close) errors 10, 10, 0, 5
    assert m["mae"] == pytest.approx(4.0)
    assert m["rmse"] == pytest.approx(math.sqrt((25 + 25 + 1 + 25) / 4))
    assert m["mape"] == pytest.approx((5 / 110 + 5 / 90 + 1 / 100 + 5 / 105) / 4)
    assert m["mase"] == pytest.approx(4.0 / 6.25)
    # predicted returns .05 -.05 .01 0, realized .10 -.10 0 .05: only rows 1 and 2 both move, both hit
    assert m["directional_accuracy"] == pytest.approx(1.0)
    # Pearson by hand: sum of co-deviations / sqrt(product of sums of squares)
    assert m["ic"] == pytest.approx(0.009875 / math.sqrt(0.005075 * 0.021875))
    # ranks of predicted (4, 1, 3, 2) vs realized (4, 1, 2, 3): 1 - 6 * 2 / (4 * 15)
    assert m["rank_ic"] == pytest.approx(0.8)


def test_naive_forecast_scores_mase_one_and_has_no_direction():
    m = forecast_metrics(ACTUAL, LAST, LAST)
    assert m["mase"] == pytest.approx(1.0)
    assert m["mae"] == pytest.approx(6.25)
    assert math.isnan(m["directional_accuracy"]) and math.isnan(m["ic"]) and math.isnan(m["rank_ic"])


def test_wrong_direction_counts_as_a_miss():
    m = forecast_metrics([110.0, 90.0], [95.0, 105.0], [100.0, 100.0])
    assert m["directional_accuracy"] == 0.0
    assert m["mase"] == pytest.approx(15 / 10)


def test_champion_rule_does_not_promote_a_model_worse_than_naive():
    champ, why = choose_champion({"naive": 1.0, "drift": 1.10, "ridge": 1.02, "hist_gbr": float("nan")})
    assert champ == "naive" and "no model beats naive" in why and "ridge" in why
    champ, _ = choose_champion({"naive": 1.0, "ridge": 1.0})  # equal is not better
    assert champ == "naive"
    champ, why = choose_champion({"naive": 1.0, "drift": 0.99, "ridge": 0.97, "hist_gbr": 1.01})
    assert champ == "ridge" and "0.9700 < 1" in why
    assert choose_champion({"naive": 1.0})[0] == "naive"


def _tiny_features(rows_per_ticker: dict[str, int]) -> pd.DataFrame:
    from tests.ml_helpers import sample_features

    df = sample_features()
    parts = [df[df["ticker"] == t].tail(n) for t, n in rows_per_ticker.items()]
    return normalize(pd.concat(parts))


def test_short_history_and_nans_skip_the_ticker_with_a_warning():
    df = _tiny_features({"AAPL": 400, "IBM": 400})
    df.loc[df["ticker"] == "IBM", "rsi_14"] = np.nan  # IBM unusable
    last_aapl = df.index[df["ticker"] == "AAPL"][-1]
    fs = FeatureSet(df, snapshot_id=1)
    warnings: list[str] = []
    out = training_frame(fs, min_history=250, warn=warnings.append)
    assert set(out["ticker"]) == {"AAPL"}
    assert "IBM" in fs.skipped and any("ticker IBM skipped" in w for w in warnings)
    df.loc[last_aapl, "vol_20d"] = np.inf
    latest = latest_rows(FeatureSet(df, snapshot_id=1), warn=warnings.append)
    assert latest.empty
    assert any("AAPL skipped: latest row" in w and "vol_20d" in w for w in warnings)


def test_no_usable_ticker_is_a_clear_error():
    fs = FeatureSet(_tiny_features({"AAPL": 100}), snapshot_id=1)
    with pytest.raises(FeaturesUnavailable, match="no ticker .* has 250 usable rows"):
        training_frame(fs, min_history=250, warn=lambda _: None)

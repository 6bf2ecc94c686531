"""Walk-forward folds: time order, expanding window, the gap, and no training on the future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.errors import FeaturesUnavailable
from ml.features import FeatureSet, normalize, training_frame
from ml.train import GAP_DAYS, evaluate_model
from ml.walkforward import walk_forward_folds
from tests.ml_helpers import sample_features


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    fs = FeatureSet(normalize(sample_features()), snapshot_id=0)
    return training_frame(fs, min_history=250, warn=lambda _: None)


def test_folds_never_train_on_or_after_test_start_and_keep_the_gap(frame):
    folds = walk_forward_folds(frame["trade_date"], n_folds=4, test_days=40, gap=GAP_DAYS, min_train_days=250)
    assert len(folds) == 4
    calendar = pd.DatetimeIndex(np.sort(frame["trade_date"].unique()))
    prev_train, prev_test_end = 0, None
    for fold in folds:
        train_dates = frame.loc[fold.train_mask, "trade_date"]
        test_dates = frame.loc[fold.test_mask, "trade_date"]
        assert train_dates.max() < test_dates.min() == fold.test_start
        # exactly GAP_DAYS trading days strictly between the last training date and the test start
        between = calendar[(calendar > train_dates.max()) & (calendar < fold.test_start)]
        assert len(between) == GAP_DAYS == 5
        # no training target (5 trading days ahead) reaches into the test period
        i_last = np.searchsorted(calendar, train_dates.max())
        assert calendar[i_last + 5] < fold.test_start
        # fixed-size test folds, in time order, adjacent, not overlapping; expanding training window
        assert len(np.unique(test_dates)) == 40
        assert not (fold.train_mask & fold.test_mask).any()
        if prev_test_end is not None:
            assert fold.test_start > prev_test_end
            assert calendar[np.searchsorted(calendar, prev_test_end) + 1] == fold.test_start
        assert fold.train_mask.sum() > prev_train
        prev_train, prev_test_end = fold.train_mask.sum(), fold.test_end
    assert folds[-1].test_end == calendar[-1]


def test_a_fold_is_unaffected_by_data_after_its_test_period(frame):
    """Corrupting every target after fold 0 must not change fold 0's forecasts (nothing peeks ahead)."""
    folds = walk_forward_folds(frame["trade_date"], n_folds=3, test_days=40, gap=GAP_DAYS, min_train_days=250)
    clean = evaluate_model("ridge", frame, folds)
    corrupted = frame.copy()
    later = corrupted["trade_date"] > folds[0].test_end
    corrupted.loc[later, "target_return_5d"] = 10.0
    corrupted.loc[later, "ret_1d"] = -5.0
    dirty = evaluate_model("ridge", corrupted, folds)
    f0c, f0d = clean.oof[clean.oof["fold"] == 0], dirty.oof[dirty.oof["fold"] == 0]
    np.testing.assert_allclose(f0c["pred_close"], f0d["pred_close"])
    # ... while a later fold, which trains on the corrupted rows, does change
    assert not np.allclose(clean.oof[clean.oof["fold"] == 2]["pred_close"],
                           dirty.oof[dirty.oof["fold"] == 2]["pred_close"])


def test_too_few_dates_gives_a_clear_error(frame):
    short = frame[frame["trade_date"] < frame["trade_date"].min() + pd.Timedelta(days=300)]
    with pytest.raises(FeaturesUnavailable, match="walk-forward evaluation needs at least"):
        walk_forward_folds(short["trade_date"], n_folds=3, test_days=63, gap=5, min_train_days=250)


def test_fewer_folds_when_history_is_short(frame):
    n_dates = frame["trade_date"].nunique()
    folds = walk_forward_folds(frame["trade_date"], n_folds=50, test_days=200, gap=5, min_train_days=250)
    assert len(folds) == (n_dates - 255) // 200

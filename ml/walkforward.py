"""Walk-forward evaluation folds over the trading calendar.

Expanding training window, fixed-size test folds in time order, and a gap of ``gap`` trading days
between the last training date and the first test date, so that no training target (which looks
``HORIZON_DAYS`` ahead) overlaps a test period. Folds are built by scikit-learn's
``TimeSeriesSplit`` on the sorted unique trading dates of all tickers; nothing is shuffled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import TimeSeriesSplit

from ml.errors import FeaturesUnavailable


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: boolean row masks and the dates bounding train and test."""

    index: int
    train_mask: np.ndarray
    test_mask: np.ndarray
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp


def walk_forward_folds(
    dates: pd.Series, n_folds: int, test_days: int, gap: int, min_train_days: int
) -> list[Fold]:
    """Folds over the rows whose trade dates are ``dates`` (one entry per row, any order).

    The last fold ends at the last date. When there are too few dates for ``n_folds`` folds of
    ``test_days`` after ``min_train_days`` training days and the gap, fewer folds are made; with
    none possible, FeaturesUnavailable says how many dates are needed.
    """
    calendar = np.sort(pd.unique(dates.to_numpy()))
    n = len(calendar)
    available = (n - min_train_days - gap) // test_days
    k = min(n_folds, available)
    if k < 1:
        raise FeaturesUnavailable(
            f"walk-forward evaluation needs at least {min_train_days + gap + test_days} trading days "
            f"({min_train_days} training + {gap} gap + {test_days} test), the features have {n}"
        )
    splitter = TimeSeriesSplit(n_splits=k, test_size=test_days, gap=gap)
    row_dates = dates.to_numpy()
    folds = []
    for i, (train_idx, test_idx) in enumerate(splitter.split(calendar)):
        train_end, test_start, test_end = calendar[train_idx[-1]], calendar[test_idx[0]], calendar[test_idx[-1]]
        folds.append(Fold(
            index=i,
            train_mask=row_dates <= train_end,
            test_mask=(row_dates >= test_start) & (row_dates <= test_end),
            train_end=pd.Timestamp(train_end),
            test_start=pd.Timestamp(test_start),
            test_end=pd.Timestamp(test_end),
        ))
    return folds

"""Shared helpers of the ML tests: an isolated state dir with a small contract-shaped features table."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from lakehouse.config import Config, get_config
from ml.reference_features import compute_features, sample_quotes, write_features_table

#: Three tickers with long history plus FB (too short for the 200-day features: must be skipped).
TRAIN_TICKERS = ["AAPL", "GOOG", "IBM"]
SHORT_TICKER = "FB"
START = "2008-01-01"

#: Small, fast settings: 3 folds of 40 trading days, two learning models.
ML_SETTINGS = {
    "LAKEHOUSE_MLFLOW__CV_FOLDS": "3",
    "LAKEHOUSE_MLFLOW__CV_TEST_DAYS": "40",
    "LAKEHOUSE_MLFLOW__MIN_HISTORY_DAYS": "250",
    "LAKEHOUSE_MLFLOW__MODELS": "naive,drift,ridge,hist_gbr",
    "LAKEHOUSE_MLFLOW__PLOT_TICKERS": "3",
}


def sample_features(cutoff: str | None = None) -> pd.DataFrame:
    """Contract features of the sample tickers from START (only quotes up to ``cutoff`` when given)."""
    q = sample_quotes([*TRAIN_TICKERS, SHORT_TICKER])
    q = q[q["trade_date"] >= START]
    if cutoff:
        q = q[q["trade_date"] <= cutoff]
    return compute_features(q)


def isolated(home: Path, extra: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Generator for a module-scoped fixture: isolated env applied to os.environ, config reloaded."""
    from tests.conftest import isolated_env

    mp = pytest.MonkeyPatch()
    for k in list(os.environ):
        if k.startswith("LAKEHOUSE_"):
            mp.delenv(k)
    env = {**isolated_env(home), **ML_SETTINGS, **(extra or {})}
    for k, v in env.items():
        mp.setenv(k, v)
    get_config(reload=True)
    try:
        yield env
    finally:
        mp.undo()
        get_config(reload=True)


def write_features(cfg: Config, df: pd.DataFrame) -> int:
    """Write the features table through open_lake + pyiceberg; return its snapshot id."""
    return write_features_table(cfg, df)

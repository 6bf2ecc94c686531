"""Shared helpers of the ML tests: an isolated state dir with a small contract-shaped features table.

The features are computed by the test oracle ``tests/features_reference.py`` (proven cell-by-cell equal
to the dbt model ``fct_daily_features`` by tests/test_features.py) from the shipped sample quotes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa

from lakehouse.config import Config
from lakehouse.sources.sample import read_sample
from tests.features_reference import reference_features

#: Three tickers with long history plus FB (196 rows: too short for the 200-day features, must still be forecast).
TRAIN_TICKERS = ["AAPL", "GOOG", "IBM"]
SHORT_TICKER = "FB"
START = "2008-01-01"

#: Small, fast settings: yearly refits from 2009, a 26-week holdout, two learning models.
ML_SETTINGS = {
    "LAKEHOUSE_MLFLOW__RETRAIN_EVERY": "year",
    "LAKEHOUSE_MLFLOW__HOLDOUT_WEEKS": "26",
    "LAKEHOUSE_MLFLOW__MIN_HISTORY_DAYS": "250",
    "LAKEHOUSE_MLFLOW__MODELS": "naive,drift,ridge,hist_gbr",
    "LAKEHOUSE_MLFLOW__PLOT_TICKERS": "3",
}

_SAMPLE_COLUMNS = {
    "Ticker": "ticker", "Date": "trade_date", "Open": "open", "High": "high", "Low": "low",
    "Close": "close", "Volume": "volume", "Adj Close": "adj_close",
}


def sample_quotes(tickers: list[str] | None = None) -> pd.DataFrame:
    """The shipped sample quotes as raw.quotes-like rows (contract names, one load: loaded_at, load_id)."""
    df = read_sample().to_pandas().rename(columns=_SAMPLE_COLUMNS)
    df["trade_date"] = pd.to_datetime(df["trade_date"])
    if tickers:
        df = df[df["ticker"].isin(tickers)]
    return df.assign(loaded_at=pd.Timestamp("2020-01-01", tz="UTC"), load_id="sample").reset_index(drop=True)


def sample_features(cutoff: str | None = None) -> pd.DataFrame:
    """Contract features of the sample tickers from START (only quotes up to ``cutoff`` when given)."""
    q = sample_quotes([*TRAIN_TICKERS, SHORT_TICKER])
    q = q[q["trade_date"] >= START]
    if cutoff:
        q = q[q["trade_date"] <= cutoff]
    df = reference_features(q)
    df["trade_date"] = df["trade_date"].dt.date
    for col in ("day_of_week", "month", "days_since_listing"):
        df[col] = df[col].astype("int32")
    return df


def features_arrow(df: pd.DataFrame) -> pa.Table:
    """The features frame as Arrow with contract types (date, double, int)."""
    return pa.Table.from_pandas(df, preserve_index=False)


def write_features(cfg: Config, df: pd.DataFrame, table: str = "features.fct_daily_features") -> int:
    """(Re)create the features table through ``open_lake`` and write ``df``; return its snapshot id."""
    from lakehouse.lake import open_lake

    arrow = features_arrow(df)
    with open_lake(cfg) as lake:
        cat = lake.catalog
        cat.create_namespace_if_not_exists(table.split(".")[0])
        if cat.table_exists(table):
            tbl = cat.load_table(table)
            tbl.overwrite(arrow)
        else:
            tbl = cat.create_table(table, schema=arrow.schema)
            tbl.append(arrow)
        return tbl.current_snapshot().snapshot_id


def isolated(home: Path, extra: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Generator for a module-scoped fixture: isolated env applied to os.environ, config reloaded."""
    from tests.conftest import applied_env, isolated_env

    env = {**isolated_env(home), **ML_SETTINGS, **(extra or {})}
    with applied_env(env):
        yield env

"""A small pandas implementation of the ``features.fct_daily_features`` contract.

The lake's real features are built by dbt (``dbt_lake/``). This module exists so the ML stage's
tests and benchmark can build a contract-shaped table from the shipped sample quotes or from
deterministic synthetic prices without depending on the dbt project. Every feature at day t uses
data up to t only; targets look 5 trading days ahead and are null at the end of each series.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ml.features import CONTRACT_COLUMNS, HORIZON_DAYS

SAMPLE_CSV = Path(__file__).resolve().parent.parent / "lakehouse" / "sources" / "data" / "stocks.csv.gz"


def sample_quotes(tickers: list[str] | None = None) -> pd.DataFrame:
    """The shipped sample quotes with contract column names (ticker, trade_date, open, ..., adj_close)."""
    with gzip.open(SAMPLE_CSV, "rt") as f:
        df = pd.read_csv(f)
    df = df.rename(columns={
        "Ticker": "ticker", "Date": "trade_date", "Open": "open", "High": "high", "Low": "low",
        "Close": "close", "Volume": "volume", "Adj Close": "adj_close",
    })
    df["trade_date"] = pd.to_datetime(df["trade_date"])
    if tickers:
        df = df[df["ticker"].isin(tickers)]
    return df.reset_index(drop=True)


def synthetic_quotes(n_tickers: int, n_days: int, seed: int = 7) -> pd.DataFrame:
    """Deterministic geometric-random-walk quotes for ``n_tickers`` x ``n_days`` business days."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2000-01-03", periods=n_days)
    drift = rng.normal(0.0003, 0.0002, n_tickers)
    vol = rng.uniform(0.01, 0.03, n_tickers)
    rets = rng.standard_normal((n_days, n_tickers)) * vol + drift
    # a little momentum so that learning models have something to find
    for t in range(1, n_days):
        rets[t] += 0.05 * rets[t - 1]
    close = 20.0 * np.exp(np.cumsum(rets, axis=0)) * rng.uniform(0.5, 5.0, n_tickers)
    spread = np.abs(rng.standard_normal((n_days, n_tickers))) * vol * close
    frames = []
    for i in range(n_tickers):
        c = close[:, i]
        frames.append(pd.DataFrame({
            "ticker": f"S{i:04d}", "trade_date": dates,
            "open": c * (1 + rng.normal(0, vol[i] / 3, n_days)),
            "high": c + spread[:, i], "low": c - spread[:, i] * 0.9, "close": c, "adj_close": c,
            "volume": rng.integers(10_000, 5_000_000, n_days).astype(float),
        }))
    return pd.concat(frames, ignore_index=True)


def _features_one(g: pd.DataFrame) -> pd.DataFrame:
    g = g.sort_values("trade_date")
    adj = g["adj_close"].astype(float)
    factor = adj / g["close"].astype(float)
    out = pd.DataFrame({
        "ticker": g["ticker"].values, "trade_date": g["trade_date"].dt.date.values,
        "close": g["close"].astype(float).values, "adj_close": adj.values, "adj_factor": factor.values,
        "volume": g["volume"].astype(float).values,
    }, index=g.index)
    for k in (1, 5, 20):
        out[f"ret_{k}d"] = adj.pct_change(k, fill_method=None)
        out[f"log_ret_{k}d"] = np.log(adj / adj.shift(k))
    for k in (5, 20, 60):
        out[f"vol_{k}d"] = out["log_ret_1d"].rolling(k).std()
    for k in (5, 20, 50, 200):
        out[f"close_sma_{k}_ratio"] = adj / adj.rolling(k).mean()
    out["ema_12"] = adj.ewm(span=12, adjust=False).mean()
    out["ema_26"] = adj.ewm(span=26, adjust=False).mean()
    out["macd"] = out["ema_12"] - out["ema_26"]
    out["macd_signal"] = out["macd"].ewm(span=9, adjust=False).mean()
    delta = adj.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
    out["rsi_14"] = np.where(loss == 0, 100.0, 100 - 100 / (1 + gain / loss.replace(0, np.nan)))
    out.loc[gain.isna(), "rsi_14"] = np.nan
    sma20, sd20 = adj.rolling(20).mean(), adj.rolling(20).std()
    out["bb_pct_b_20"] = (adj - (sma20 - 2 * sd20)) / (4 * sd20)
    vol = g["volume"].astype(float)
    out["volume_z_20"] = (vol - vol.rolling(20).mean()) / vol.rolling(20).std()
    high, low = g["high"].astype(float) * factor, g["low"].astype(float) * factor
    prev = adj.shift(1)
    tr = pd.concat([high - low, (high - prev).abs(), (low - prev).abs()], axis=1).max(axis=1)
    out["atr_14"] = tr.ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
    out["day_of_week"] = g["trade_date"].dt.day_of_week.astype("int32") + 1  # ISO: Monday = 1
    out["month"] = g["trade_date"].dt.month.astype("int32")
    out["days_since_listing"] = (g["trade_date"] - g["trade_date"].iloc[0]).dt.days.astype("int32")
    out["target_close_5d"] = adj.shift(-HORIZON_DAYS)
    out["target_return_5d"] = out["target_close_5d"] / adj - 1
    return out


def compute_features(quotes: pd.DataFrame) -> pd.DataFrame:
    """Contract-shaped daily features (one row per ticker and trading day) from OHLCV quotes."""
    parts = [_features_one(g) for _, g in quotes.groupby("ticker", sort=True)]
    df = pd.concat(parts, ignore_index=True).loc[:, list(CONTRACT_COLUMNS)]
    num = df.columns.difference(["ticker", "trade_date", "day_of_week", "month", "days_since_listing"])
    df[num] = df[num].replace([np.inf, -np.inf], np.nan)
    return df


def features_arrow(df: pd.DataFrame) -> pa.Table:
    """The features frame as Arrow with contract types (date, double, int)."""
    return pa.Table.from_pandas(df, preserve_index=False)


def write_features_table(cfg, df: pd.DataFrame, table: str = "features.fct_daily_features") -> int:
    """(Re)create the features table through ``open_lake`` and write ``df``; return the snapshot id."""
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

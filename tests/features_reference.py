"""An independent pandas/numpy implementation of the documented feature definitions
(dbt_lake/macros/daily_features.sql), used by tests/test_features*.py to check the dbt model.

Written from the definitions, not from the SQL: recursions are plain Python loops and windows are
pandas rolling windows."""

from __future__ import annotations

import numpy as np
import pandas as pd

FEATURE_COLUMNS = [
    "ticker", "trade_date", "close", "adj_close", "adj_factor", "volume",
    "ret_1d", "ret_5d", "ret_20d", "log_ret_1d", "log_ret_5d", "log_ret_20d",
    "vol_5d", "vol_20d", "vol_60d", "close_sma_5_ratio", "close_sma_20_ratio", "close_sma_50_ratio",
    "close_sma_200_ratio", "ema_12", "ema_26", "macd", "macd_signal", "rsi_14", "bb_pct_b_20", "volume_z_20",
    "atr_14", "day_of_week", "month", "days_since_listing", "target_close_5d", "target_return_5d",
]


def latest_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per (ticker, trade_date): the newest load (loaded_at, then load_id) wins."""
    raw = raw.sort_values(["ticker", "trade_date", "loaded_at", "load_id"])
    return raw.drop_duplicates(["ticker", "trade_date"], keep="last").reset_index(drop=True)


def ema(values: np.ndarray, n: int) -> np.ndarray:
    """EMA with alpha = 2/(n+1), seeded at the first value, as an explicit loop."""
    alpha = 2.0 / (n + 1)
    out = np.empty(len(values))
    state = values[0]
    for i, v in enumerate(values):
        state = v if i == 0 else alpha * v + (1 - alpha) * state
        out[i] = state
    return out


def cutler_rsi(x: np.ndarray, n: int = 14) -> np.ndarray:
    """100 * gains / (gains + losses) over the last n changes; 50 when flat; NaN before n changes."""
    out = np.full(len(x), np.nan)
    d = np.diff(x)
    for i in range(n, len(x)):
        window = d[i - n:i]
        moves = np.abs(window).sum()
        out[i] = 50.0 if moves == 0 else 100 * window[window > 0].sum() / moves
    return out


def reference_features(raw: pd.DataFrame) -> pd.DataFrame:
    """fct_daily_features recomputed from raw.quotes rows (columns as in the contract)."""
    out = []
    for ticker, g in latest_rows(raw).groupby("ticker", sort=True):
        g = g.sort_values("trade_date").reset_index(drop=True)
        close = g["close"].astype(float)
        x = g["adj_close"].fillna(g["close"]).astype(float)
        f = x / close
        high, low, vol = g["high"] * f, g["low"] * f, g["volume"] / f
        r = pd.DataFrame({"ticker": ticker, "trade_date": g["trade_date"], "close": close, "adj_close": x,
                          "adj_factor": f, "volume": g["volume"].astype(float)})
        for n in (1, 5, 20):
            r[f"ret_{n}d"] = x / x.shift(n) - 1
            r[f"log_ret_{n}d"] = np.log(x / x.shift(n))
        for n in (5, 20, 60):
            r[f"vol_{n}d"] = r["log_ret_1d"].rolling(n, min_periods=n).std(ddof=1)
        for n in (5, 20, 50, 200):
            r[f"close_sma_{n}_ratio"] = x / x.rolling(n, min_periods=n).mean()
        r["ema_12"] = ema(x.to_numpy(), 12)
        r["ema_26"] = ema(x.to_numpy(), 26)
        r["macd"] = r["ema_12"] - r["ema_26"]
        r["macd_signal"] = ema(r["macd"].to_numpy(), 9)
        r["rsi_14"] = cutler_rsi(x.to_numpy(), 14)
        sma20, sd20 = x.rolling(20, min_periods=20).mean(), x.rolling(20, min_periods=20).std(ddof=0)
        r["bb_pct_b_20"] = (x - (sma20 - 2 * sd20)) / (4 * sd20)
        r["volume_z_20"] = (vol - vol.rolling(20, min_periods=20).mean()) / vol.rolling(20, min_periods=20).std()
        prev = x.shift(1)
        tr = pd.concat([high - low, (high - prev).abs(), (low - prev).abs()], axis=1).max(axis=1)
        r["atr_14"] = tr.where(prev.notna()).rolling(14, min_periods=14).mean()
        days = pd.to_datetime(g["trade_date"])
        r["day_of_week"] = days.dt.day_of_week + 1
        r["month"] = days.dt.month
        r["days_since_listing"] = (days - days.iloc[0]).dt.days
        r["target_close_5d"] = x.shift(-5)
        r["target_return_5d"] = x.shift(-5) / x - 1
        out.append(r)
    return pd.concat(out, ignore_index=True)[FEATURE_COLUMNS]


def mismatches(expected: pd.DataFrame, got: pd.DataFrame, rel: float = 1e-9) -> list[str]:
    """Cells that differ beyond ``rel`` (relative to max(1, |value|)) or in NULL-ness, as messages."""
    keys = ["ticker", "trade_date"]
    e = expected.set_index(keys).sort_index()
    g = got.set_index(keys).sort_index()
    problems = []
    if list(e.index) != list(g.index):
        missing = e.index.difference(g.index)
        extra = g.index.difference(e.index)
        problems.append(f"keys differ: {len(missing)} missing (e.g. {list(missing[:3])}), {len(extra)} extra")
        common = e.index.intersection(g.index)
        e, g = e.loc[common], g.loc[common]
    for col in e.columns:
        a = e[col].astype(float).to_numpy()
        b = g[col].astype(float).to_numpy()
        null_diff = np.isnan(a) != np.isnan(b)
        with np.errstate(invalid="ignore"):
            far = np.abs(a - b) > rel * np.maximum(1.0, np.abs(b))
        bad = null_diff | (far & ~np.isnan(a) & ~np.isnan(b))
        if bad.any():
            i = int(np.argmax(bad))
            problems.append(f"{col}: {int(bad.sum())} cells differ, first at {e.index[i]}: "
                            f"expected {a[i]!r}, got {b[i]!r}")
    return problems

"""Reading ``features.fct_daily_features`` from the lake and turning it into model inputs.

The table is read with pyiceberg as Arrow at one pinned snapshot (the id is recorded with every
run and prediction). Rows are checked for the contract columns; infinities become missing values.
Missing feature values (the warm-up of the 200-day averages, a short history) are kept: the models
handle them, so every ticker with a price gets a forecast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lakehouse.config import Config
from lakehouse.contracts import FEATURES
from ml.errors import FeaturesUnavailable

FEATURES_TABLE = FEATURES.identifier
HORIZON_DAYS = 5
TARGET_RETURN = "target_return_5d"
TARGET_CLOSE = "target_close_5d"

#: Columns of the features contract (lakehouse.contracts).
CONTRACT_COLUMNS = FEATURES.column_names

#: Contract columns used as model features as they are (scale-free: returns, ratios, oscillators).
RAW_FEATURES = (
    "ret_1d", "ret_5d", "ret_20d", "log_ret_1d", "log_ret_5d", "log_ret_20d",
    "vol_5d", "vol_20d", "vol_60d",
    "close_sma_5_ratio", "close_sma_20_ratio", "close_sma_50_ratio", "close_sma_200_ratio",
    "rsi_14", "bb_pct_b_20", "volume_z_20", "day_of_week", "month",
)

#: Price-level contract columns, made scale-free by dividing by the adjusted close.
PRICE_LEVEL_FEATURES = ("ema_12", "ema_26", "macd", "macd_signal", "atr_14")

#: Columns the model sees (the derived ones are computed by :func:`model_matrix`).
MODEL_FEATURES = (*RAW_FEATURES, *(f"{c}_rel" for c in PRICE_LEVEL_FEATURES))

#: Columns a model's input row must carry (what ``predict`` passes to the registered model).
INPUT_COLUMNS = ("ticker", "adj_close", *RAW_FEATURES, *PRICE_LEVEL_FEATURES)

Warn = Callable[[str], None]


@dataclass
class FeatureSet:
    """Feature rows read from the lake at one snapshot."""

    frame: pd.DataFrame
    snapshot_id: int
    table: str = FEATURES_TABLE
    skipped: dict[str, str] = field(default_factory=dict)  # ticker -> reason


def load_features(cfg: Config, snapshot_id: int | None = None) -> FeatureSet:
    """Read the features table (current snapshot unless given) as a pandas frame sorted by ticker, date."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    from lakehouse.lake import open_lake

    with open_lake(cfg) as lake:
        try:
            table = lake.catalog.load_table(FEATURES_TABLE)
        except (NoSuchTableError, NoSuchNamespaceError) as exc:
            raise FeaturesUnavailable(
                f"the features table {FEATURES_TABLE} does not exist in the lake; build it first with "
                "`lakehouse transform lake` (or `lakehouse run`)"
            ) from exc
        snap = table.snapshot_by_id(snapshot_id) if snapshot_id is not None else table.current_snapshot()
        if snap is None:
            raise FeaturesUnavailable(
                f"the features table {FEATURES_TABLE} is empty (no snapshot"
                + (f" {snapshot_id}" if snapshot_id is not None else "")
                + "); run `lakehouse ingest` and `lakehouse transform lake` first"
            )
        arrow = table.scan(snapshot_id=snap.snapshot_id).to_arrow()
    missing = [c for c in CONTRACT_COLUMNS if c not in arrow.column_names]
    if missing:
        raise FeaturesUnavailable(
            f"{FEATURES_TABLE} lacks contract column(s) {', '.join(missing)} (snapshot {snap.snapshot_id})"
        )
    if arrow.num_rows == 0:
        raise FeaturesUnavailable(
            f"the features table {FEATURES_TABLE} has no rows (snapshot {snap.snapshot_id}); "
            "run `lakehouse ingest` and `lakehouse transform lake` first"
        )
    return FeatureSet(normalize(arrow.to_pandas()), snap.snapshot_id)


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Contract columns with uniform dtypes (datetime dates, float numbers), sorted by ticker and date."""
    df = df.loc[:, list(CONTRACT_COLUMNS)].copy()
    df["ticker"] = df["ticker"].astype(str)
    df["trade_date"] = pd.to_datetime(df["trade_date"]).astype("datetime64[ns]")
    numeric = [c for c in CONTRACT_COLUMNS if c not in ("ticker", "trade_date")]
    df[numeric] = df[numeric].astype("float64").replace([np.inf, -np.inf], np.nan)
    dup = df.duplicated(["ticker", "trade_date"])
    if dup.any():
        raise FeaturesUnavailable(
            f"{FEATURES_TABLE} has {int(dup.sum())} duplicate (ticker, trade_date) rows; the key must be unique"
        )
    return df.sort_values(["ticker", "trade_date"], kind="stable").reset_index(drop=True)


def model_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """The model's feature columns (:data:`MODEL_FEATURES`) from contract columns, as float64."""
    out = pd.DataFrame(index=df.index)
    for c in RAW_FEATURES:
        out[c] = df[c].astype("float64")
    price = df["adj_close"].astype("float64")
    for c in PRICE_LEVEL_FEATURES:
        out[f"{c}_rel"] = df[c].astype("float64") / price
    return out.replace([np.inf, -np.inf], np.nan)


def with_target_dates(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (sorted by ticker, date) with ``target_date``: the date of the row ``HORIZON_DAYS`` rows
    later of the same ticker, i.e. the day its ``target_return_5d`` became known (NaT when unknown).

    Each training row's own target date decides whether it may train a model refit on a given date:
    a ticker with missing days has targets further out than the calendar of other tickers suggests.
    """
    out = df.copy()
    out["target_date"] = out.groupby("ticker", sort=False)["trade_date"].shift(-HORIZON_DAYS)
    out.loc[out[TARGET_RETURN].isna(), "target_date"] = pd.NaT
    return out


def training_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows a model may learn from: a positive adjusted close and a known 5-day target (with its date).

    Missing feature values are kept: the models handle them (gradient boosting natively, ridge by
    imputing training medians with missing-value indicators), so a short history (the 200-day
    averages' warm-up, a recent listing such as FB) still trains and gets forecasts.
    """
    d = df if "target_date" in df.columns else with_target_dates(df)
    mask = d["adj_close"].gt(0) & d[TARGET_RETURN].notna() & d["target_date"].notna()
    return d[mask]


def latest_rows(fs: FeatureSet, warn: Warn) -> pd.DataFrame:
    """Each ticker's latest feature row. Missing features are fine (the models handle them); a ticker
    whose latest row has no positive adjusted close cannot be forecast: it is listed in
    ``fs.skipped`` with the reason and warned about."""
    df = fs.frame
    last = df.groupby("ticker", sort=True).tail(1)
    ok = last["adj_close"].gt(0)
    for _, row in last[~ok].iterrows():
        reason = f"latest row {row['trade_date'].date()} has no adjusted close to forecast from"
        fs.skipped[row["ticker"]] = reason
        warn(f"ticker {row['ticker']} not forecast: {reason}")
    return last[ok].reset_index(drop=True)

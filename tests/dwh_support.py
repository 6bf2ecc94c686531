"""Small deterministic lake tables for the marts tests, written through ``open_lake`` with the contract
schemas of lakehouse.contracts (the real stages write the same shapes)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lakehouse.contracts import ensure_table

UTC = dt.UTC
TS = pa.timestamp("us", tz="UTC")


def ensure(catalog, ident: str):
    """Load or create ``ident`` from its contract (lakehouse.contracts)."""
    return ensure_table(catalog, ident)


def append(catalog, ident: str, rows: list[dict]) -> None:
    """Append ``rows`` to ``ident`` in one commit."""
    tbl = ensure(catalog, ident)
    tbl.append(pa.Table.from_pylist(rows, schema=tbl.schema().as_arrow()))


def business_days(start: dt.date, n: int) -> list[dt.date]:
    days = np.busday_offset(np.datetime64(start, "D"), np.arange(n), roll="forward")
    return [d.astype(dt.date) for d in days]


@dataclass
class SmallLake:
    """What the small lake holds, for computing expected mart values."""

    days: list[dt.date]
    close: dict[str, list[float]]


START = dt.date(2024, 1, 1)
N_DAYS = 260
TICKERS = ("AAA", "BBB", "CCC")


def price(ticker: str, i: int) -> float:
    """Deterministic closes: AAA linear, BBB geometric, CCC constant."""
    return {"AAA": 100.0 + i, "BBB": 50.0 * 1.01**i, "CCC": 10.0}[ticker]


def quote_rows(days: list[dt.date], offset: int, load_id: str, loaded_at: dt.datetime,
               source: str = "sample") -> list[dict]:
    rows = []
    for t in TICKERS:
        for k, d in enumerate(days):
            c = price(t, offset + k)
            rows.append({"source": source, "ticker": t, "trade_date": d, "open": c - 0.5, "high": c + 1.0,
                         "low": c - 1.0, "close": c, "adj_close": c, "volume": 1000.0 + offset + k,
                         "currency": "USD", "loaded_at": loaded_at, "load_id": load_id})
    return rows


def prediction_rows(as_of: dt.date, base: dict[str, float], created_at: dt.datetime, version: str) -> list[dict]:
    rows = []
    targets = business_days(as_of + dt.timedelta(days=1), 5)
    for t in TICKERS:
        for h, target in enumerate(targets, start=1):
            rows.append({"ticker": t, "as_of_date": as_of, "target_date": target, "horizon_days": h,
                         "predicted_close": base[t] * (1 + 0.01 * h), "predicted_return": 0.01 * h,
                         "last_close": base[t], "model_name": "ridge", "model_version": version,
                         "run_id": f"run-{version}", "feature_snapshot_id": 1, "created_at": created_at})
    return rows


def stage_quotes(cfg) -> None:
    """Build the lake's staging.stg_quotes from raw.quotes with the real dbt_lake model (newest load wins)."""
    from rich.console import Console

    from lakehouse.stages.transform_lake import run_dbt

    # cautious: only the tests of stg_quotes itself (the small lake's features table is a stub)
    result = run_dbt(cfg, ["build", "--select", "stg_quotes", "--indirect-selection", "cautious"],
                     console=Console(quiet=True))
    assert result.ok, result.errors[-10:]


def build_small_lake(catalog) -> SmallLake:
    """raw.quotes (two loads, a stale second source), features for AAA, predictions, accuracy, metrics."""
    days = business_days(START, N_DAYS)
    t1 = dt.datetime(2025, 1, 2, 8, tzinfo=UTC)
    append(catalog, "raw.quotes", quote_rows(days, 0, "load-1", t1))
    # an older row from another source for the same key loses; a newer re-load of one day wins
    stale = quote_rows(days[:1], 0, "load-0", t1 - dt.timedelta(days=1), source="other")
    for r in stale:
        r["close"] = r["adj_close"] = 1.0
    append(catalog, "raw.quotes", stale)
    fix = [r for r in quote_rows(days[10:11], 10, "load-2", t1 + dt.timedelta(hours=1)) if r["ticker"] == "CCC"]
    fix[0]["close"] = fix[0]["adj_close"] = 11.0
    append(catalog, "raw.quotes", fix)

    feats = [{"ticker": "AAA", "trade_date": d, "rsi_14": 55.0, "macd": 0.5, "macd_signal": 0.4, "vol_20d": 0.01}
             for d in days[-30:]]
    append(catalog, "features.fct_daily_features", feats)

    last = {t: price(t, N_DAYS - 1) for t in TICKERS}
    older = {t: price(t, N_DAYS - 6) for t in TICKERS}
    append(catalog, "ml.predictions", prediction_rows(days[-6], older, t1, "1"))
    append(catalog, "ml.predictions", prediction_rows(days[-1], last, t1, "2"))
    append(catalog, "ml.prediction_accuracy", [
        {"ticker": "AAA", "as_of_date": days[-6], "target_date": days[-5], "horizon_days": 1, "predicted_close": 1.0,
         "actual_close": 1.0, "error": 0.0, "abs_pct_error": 2.0, "direction_hit": True, "model_name": "ridge",
         "model_version": "1", "evaluated_at": t1},
        {"ticker": "BBB", "as_of_date": days[-6], "target_date": days[-5], "horizon_days": 1, "predicted_close": 1.0,
         "actual_close": 1.0, "error": 0.0, "abs_pct_error": 4.0, "direction_hit": False, "model_name": "ridge",
         "model_version": "1", "evaluated_at": t1},
    ])
    append(catalog, "ml.model_metrics", [
        {"run_id": "run-1", "model_name": "ridge", "model_version": "1", "mase": 0.9, "mae": 1.2, "rmse": 1.5,
         "mape": 2.0, "directional_accuracy": 0.55, "ic": 0.1, "rank_ic": 0.12, "n_folds": 5,
         "feature_snapshot_id": 1, "trained_at": t1 - dt.timedelta(days=3), "is_champion": False},
        {"run_id": "run-2", "model_name": "ridge", "model_version": "2", "mase": 0.8, "mae": 1.1, "rmse": 1.4,
         "mape": 1.9, "directional_accuracy": 0.57, "ic": 0.15, "rank_ic": 0.14, "n_folds": 5,
         "feature_snapshot_id": 1, "trained_at": t1, "is_champion": True},
        {"run_id": "run-3", "model_name": "naive", "model_version": "1", "mase": 1.0, "mae": 1.3, "rmse": 1.6,
         "mape": 2.2, "directional_accuracy": 0.5, "ic": 0.0, "rank_ic": 0.0, "n_folds": 5,
         "feature_snapshot_id": 1, "trained_at": t1, "is_champion": False},
    ])
    closes = {t: [price(t, i) for i in range(N_DAYS)] for t in TICKERS}
    closes["CCC"][10] = 11.0
    return SmallLake(days, closes)

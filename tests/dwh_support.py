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
                         "is_interpolated": h != 5,
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

def metric_rows(run_id: str, model: str, version: str, holdout_mase: float, trained_at: dt.datetime,
                champion: bool) -> list[dict]:
    """ml.model_metrics rows of one model in one selection run: cv and holdout."""
    out = []
    for split, mase in (("cv", holdout_mase + 0.05), ("holdout", holdout_mase)):
        out.append({"run_id": run_id, "model_name": model, "model_version": version, "split": split, "mase": mase,
                    "rel_mae": mase, "mae": 0.02, "dir_acc": 0.55, "up_rate": 0.56, "always_up_acc": 0.56,
                    "ic": 0.05, "ic_tstat": 1.0, "rank_ic": 0.04, "rank_ic_tstat": 0.8, "dm_stat": -1.0,
                    "dm_pvalue": 0.3, "n_obs": 100, "n_tickers": 3, "n_dates": 34, "period_start": START,
                    "period_end": START, "feature_snapshot_id": 1, "backtest_snapshot_id": 2,
                    "trained_at": trained_at, "is_candidate": model == "ridge", "is_champion": champion,
                    "decision": "naive stays champion"})
    return out


#: Backtest as-of dates (indexes into the days): two realized weeks and one still pending at the end.
BACKTEST_AS_OF = (200, 205, N_DAYS - 3)


def backtest_rows(model: str, days: list[dt.date], predicted_return: float, created_at: dt.datetime) -> list[dict]:
    """ml.backtest_predictions rows of AAA and BBB; the last as-of date's target lies past the data."""
    out = []
    for t in ("AAA", "BBB"):
        for i in BACKTEST_AS_OF:
            target = business_days(days[i] + dt.timedelta(days=1), 5)[-1]
            known = i + 5 < N_DAYS
            out.append({"model_name": model, "ticker": t, "as_of_date": days[i], "target_date": target,
                        "horizon_days": 5, "predicted_return": predicted_return,
                        "predicted_close": price(t, i) * (1 + predicted_return), "last_close": price(t, i),
                        "actual_return": price(t, i + 5) / price(t, i) - 1 if known else None,
                        "actual_close": price(t, i + 5) if known else None, "naive_scale": 0.02,
                        "train_end_date": days[150], "retrain_date": days[151], "fit_key": f"{model}-k",
                        "run_id": "bt-1", "feature_snapshot_id": 1, "created_at": created_at})
    return out


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
        {"ticker": "AAA", "as_of_date": days[-6], "target_date": days[-1], "horizon_days": 5,
         "is_interpolated": False, "predicted_return": 0.05, "actual_return": 0.03, "return_error": 0.02,
         "last_close": 1.0, "predicted_close": 1.05, "actual_close": 1.03, "error": 0.02, "abs_pct_error": 0.02,
         "direction_hit": True, "model_name": "ridge", "model_version": "1", "evaluated_at": t1},
        {"ticker": "BBB", "as_of_date": days[-6], "target_date": days[-1], "horizon_days": 5,
         "is_interpolated": False, "predicted_return": 0.05, "actual_return": -0.01, "return_error": 0.06,
         "last_close": 1.0, "predicted_close": 1.05, "actual_close": 0.99, "error": 0.06, "abs_pct_error": 0.06,
         "direction_hit": False, "model_name": "ridge", "model_version": "1", "evaluated_at": t1},
        {"ticker": "BBB", "as_of_date": days[-6], "target_date": days[-2], "horizon_days": 4,
         "is_interpolated": True, "predicted_return": 0.04, "actual_return": 0.5, "return_error": -0.46,
         "last_close": 1.0, "predicted_close": 1.04, "actual_close": 1.5, "error": -0.46, "abs_pct_error": 0.3,
         "direction_hit": True, "model_name": "ridge", "model_version": "1", "evaluated_at": t1},
    ])
    append(catalog, "ml.model_metrics", [
        *metric_rows("run-1", "ridge", "1", 0.90, t1 - dt.timedelta(days=3), champion=False),
        *metric_rows("run-2", "ridge", "", 0.80, t1, champion=False),
        *metric_rows("run-3", "naive", "1", 1.00, t1, champion=True),
    ])
    append(catalog, "ml.backtest_predictions", [
        *backtest_rows("naive", days, 0.0, t1), *backtest_rows("ridge", days, 0.01, t1),
    ])
    closes = {t: [price(t, i) for i in range(N_DAYS)] for t in TICKERS}
    closes["CCC"][10] = 11.0
    return SmallLake(days, closes)

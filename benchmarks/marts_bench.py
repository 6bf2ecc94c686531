"""Dashboard query latency: ClickHouse marts through the HTTP front vs DuckDB on the Iceberg tables.

Builds a private lake (embedded mode, a temporary state dir unless --home is given) with the synthetic
quote set (500 tickers x 20 years of business days, ~2.6M rows in raw.quotes, written through the REST
catalog with the ingestion's partitioning) plus forecasts and model metrics, builds the marts with
``lakehouse.stages.transform_dwh.build`` (full, then incremental after one more day of quotes), and times the dashboard
queries:

- latest forecasts (one row per ticker),
- one ticker's 5-year daily prices with moving averages,
- weekly summary for all tickers (latest week; and the last 52 weeks),

through the front with clickhouse-connect (HTTP, Native format, decoded to Python rows), next to
DuckDB computing the same answers straight from the Iceberg tables (``iceberg_scan`` of the current
metadata file). Prints p50/p95 per query; the target is p95 < 50 ms through the front.

    .venvs/core/bin/python benchmarks/marts_bench.py [--tickers 500] [--years 20] [--runs 50]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console(width=150)


def _quotes(n_tickers: int, years: int, end: dt.date) -> pa.Table:
    from lakehouse.sources.synthetic import generate

    data = generate(n_tickers, years, end)
    stamp = pa.scalar(dt.datetime(2025, 1, 1, tzinfo=dt.UTC), pa.timestamp("us", tz="UTC"))
    for name, value in (("loaded_at", stamp), ("load_id", pa.scalar("bench-1"))):
        col = pa.repeat(value, data.num_rows)
        data = (data.set_column(data.column_names.index(name), name, col) if name in data.column_names
                else data.append_column(name, col))
    return data


def _predictions(last_days: list[dt.date], closes: dict[str, float]) -> list[dict]:
    import numpy as np

    rows = []
    created = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    for as_of in last_days:
        targets = [d.astype(dt.date) for d in np.busday_offset(np.datetime64(as_of, "D"), np.arange(1, 6))]
        for t, c in closes.items():
            for h, target in enumerate(targets, start=1):
                rows.append({"ticker": t, "as_of_date": as_of, "target_date": target, "horizon_days": h,
                             "predicted_close": c * (1 + 0.002 * h), "predicted_return": 0.002 * h, "last_close": c,
                             "model_name": "ridge", "model_version": "1", "run_id": "bench", "feature_snapshot_id": 1,
                             "created_at": created})
    return rows


def make_lake(cfg, n_tickers: int, years: int) -> dict:
    from lakehouse.lake import open_lake
    from lakehouse.stages.ingest.tables import ensure_table
    from tests.dwh_support import append

    end = dt.date(2024, 12, 31)
    t0 = time.perf_counter()
    data = _quotes(n_tickers, years, end)
    console.print(f"synthetic quotes: {data.num_rows:,} rows ({time.perf_counter() - t0:.1f}s)")
    with open_lake(cfg) as lake:
        t0 = time.perf_counter()
        tbl = ensure_table(lake.catalog, "quotes")
        tbl.append(data.select(tbl.schema().as_arrow().names).cast(tbl.schema().as_arrow()))
        console.print(f"raw.quotes written through the REST catalog ({time.perf_counter() - t0:.1f}s)")
        last_day = pc.max(data["trade_date"]).as_py()
        days = sorted(set(data.filter(pc.greater(data["trade_date"], pa.scalar(last_day - dt.timedelta(days=40))))
                          ["trade_date"].to_pylist()))[-20:]
        lastrows = data.filter(pc.equal(data["trade_date"], pa.scalar(last_day)))
        closes = dict(zip(lastrows["ticker"].to_pylist(), lastrows["close"].to_pylist(), strict=True))
        append(lake.catalog, "ml.predictions", _predictions(days, closes))
        append(lake.catalog, "ml.model_metrics", [
            {"run_id": "bench", "model_name": m, "model_version": "1", "mase": 0.9 + i / 10, "mae": 1.0, "rmse": 1.2,
             "mape": 2.0, "directional_accuracy": 0.52, "ic": 0.05, "rank_ic": 0.04, "n_folds": 5,
             "feature_snapshot_id": 1, "trained_at": dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "is_champion": i == 0}
            for i, m in enumerate(("ridge", "hist_gbr", "drift", "naive"))])
    return {"last_day": last_day, "tickers": sorted(closes), "rows": data.num_rows}


def add_one_day(cfg, tickers: list[str], day: dt.date) -> None:
    from lakehouse.lake import open_lake
    from tests.dwh_support import append

    loaded = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    rows = [{"source": "synthetic", "ticker": t, "trade_date": day, "open": 100.0, "high": 101.0, "low": 99.0,
             "close": 100.5, "adj_close": 100.5, "volume": 1e6, "currency": "USD", "loaded_at": loaded,
             "load_id": "bench-2"} for t in tickers]
    with open_lake(cfg) as lake:
        append(lake.catalog, "raw.quotes", rows)


def timed(fn, runs: int) -> tuple[float, float, int]:
    fn()  # warm-up
    samples, n = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        n = fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(round(0.95 * len(samples))) - 1)], n


FRONT_QUERIES = {
    "latest forecasts": (
        "SELECT ticker, last_trade_date, last_close, as_of_date, forecast_1d, forecast_2d, forecast_3d, forecast_4d, "
        "forecast_5d, expected_change_pct, model_version FROM mart_latest_forecast ORDER BY ticker", {}),
    "1 ticker, 5y daily": (
        "SELECT trade_date, open, high, low, close, volume, ret_1d, sma_20, sma_50, sma_200 FROM mart_daily_prices "
        "WHERE ticker = {t:String} AND trade_date > {since:Date32} ORDER BY trade_date", {"t": None}),
    "weekly, all tickers, latest week": (
        "SELECT ticker, week_start, open, close, high, low, weekly_return, volatility, volume FROM mart_weekly_summary "
        "WHERE week_start = (SELECT max(week_start) FROM mart_weekly_summary) ORDER BY ticker", {}),
    "weekly, all tickers, 52 weeks": (
        "SELECT ticker, week_start, open, close, high, low, weekly_return, volatility, volume FROM mart_weekly_summary "
        "WHERE week_start > {since52:Date32} ORDER BY ticker, week_start", {}),
}

DUCK_QUERIES = {
    "latest forecasts": """
        WITH p AS (SELECT * FROM iceberg_scan('{pred}')),
        l AS (SELECT ticker, max(as_of_date) AS as_of_date FROM p GROUP BY ticker),
        f AS (SELECT p.ticker, p.as_of_date, any_value(p.last_close) AS base_close,
                     max(p.predicted_close) FILTER (WHERE horizon_days = 1) AS f1,
                     max(p.predicted_close) FILTER (WHERE horizon_days = 5) AS f5, any_value(model_version) AS v
              FROM p JOIN l USING (ticker, as_of_date) GROUP BY ALL),
        q AS (SELECT ticker, arg_max(adj_close, trade_date) AS last_close, max(trade_date) AS last_trade_date
              FROM iceberg_scan('{quotes}') GROUP BY ticker)
        SELECT f.*, q.last_close, q.last_trade_date, (f.f5 / f.base_close - 1) * 100 AS expected_change_pct
        FROM f LEFT JOIN q USING (ticker) ORDER BY ticker""",
    "1 ticker, 5y daily": """
        SELECT * FROM (
            SELECT trade_date, open, high, low, close, volume,
                   adj_close / lag(adj_close) OVER w - 1 AS ret_1d,
                   avg(adj_close) OVER (w ROWS BETWEEN 19 PRECEDING AND CURRENT ROW) AS sma_20,
                   avg(adj_close) OVER (w ROWS BETWEEN 49 PRECEDING AND CURRENT ROW) AS sma_50,
                   avg(adj_close) OVER (w ROWS BETWEEN 199 PRECEDING AND CURRENT ROW) AS sma_200
            FROM iceberg_scan('{quotes}') WHERE ticker = $t
            WINDOW w AS (ORDER BY trade_date))
        WHERE trade_date > $since ORDER BY trade_date""",
    "weekly, all tickers, latest week": """
        WITH w AS (SELECT ticker, date_trunc('week', trade_date) AS week_start, arg_min(open, trade_date) AS open,
                          arg_max(close, trade_date) AS close, max(high) AS high, min(low) AS low, sum(volume) AS volume
                   FROM iceberg_scan('{quotes}') WHERE trade_date >= $since_week GROUP BY ALL)
        SELECT * FROM w WHERE week_start = (SELECT max(week_start) FROM w) ORDER BY ticker""",
    "weekly, all tickers, 52 weeks": """
        SELECT ticker, date_trunc('week', trade_date) AS week_start, arg_min(open, trade_date) AS open,
               arg_max(close, trade_date) AS close, max(high) AS high, min(low) AS low, sum(volume) AS volume,
               stddev_samp(close) AS dispersion
        FROM iceberg_scan('{quotes}') WHERE trade_date > $since52 GROUP BY ALL ORDER BY ticker, week_start""",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickers", type=int, default=500)
    ap.add_argument("--years", type=int, default=20)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--home", type=Path, default=None, help="state dir to use (default: a temporary one)")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="marts-bench-") if args.home is None else None
    home = Path(tmp.name) if tmp else args.home
    for k in [k for k in os.environ if k.startswith("LAKEHOUSE_")]:
        del os.environ[k]
    from lakehouse.net import free_port

    os.environ.update(LAKEHOUSE_HOME=str(home), LAKEHOUSE_CATALOG__PORT=str(free_port()),
                      LAKEHOUSE_CLICKHOUSE__PORT=str(free_port()))
    from lakehouse.clickhouse.front import http_client, temporary_front
    from lakehouse.config import get_config, telemetry_off_env
    from lakehouse.lake import open_lake
    from lakehouse.stages.transform_dwh import build
    from lakehouse.transform.duck import connect

    os.environ.update(telemetry_off_env())
    cfg = get_config(reload=True)
    info = make_lake(cfg, args.tickers, args.years)
    rng = random.Random(7)
    since = info["last_day"] - dt.timedelta(days=5 * 365)
    since52 = info["last_day"] - dt.timedelta(weeks=52)
    since_week = info["last_day"] - dt.timedelta(days=14)
    results: dict[str, dict[str, tuple]] = {}

    with temporary_front(cfg) as ep:
        t0 = time.perf_counter()
        full = build(cfg, ep=ep, console=Console(stderr=True))
        t_full = time.perf_counter() - t0
        if not full.ok:
            console.print("[red]marts build failed[/]", full.errors[-10:])
            return 1
        add_one_day(cfg, info["tickers"], info["last_day"] + dt.timedelta(days=3))
        t0 = time.perf_counter()
        inc = build(cfg, ep=ep, console=Console(stderr=True))
        t_inc = time.perf_counter() - t0
        per_model = {n.name: n.seconds for n in inc.nodes if n.kind == "model"}
        console.print(f"marts build: full {t_full:.1f}s, after one new day {t_inc:.1f}s "
                      f"(stg_quotes {per_model.get('stg_quotes', 0):.2f}s incremental, "
                      f"mart_daily_prices {per_model.get('mart_daily_prices', 0):.2f}s); rows: {full.row_counts}")

        client = http_client(ep)
        for name, (sql, _) in FRONT_QUERIES.items():
            def run(sql=sql, name=name) -> int:
                params = {"since": since, "since52": since52}
                if "{t:String}" in sql:
                    params["t"] = rng.choice(info["tickers"])
                return len(client.query(sql, parameters=params).result_rows)
            results.setdefault(name, {})["front"] = timed(run, args.runs)
        client.close()

    with open_lake(cfg) as lake:
        quotes_meta = lake.catalog.load_table("raw.quotes").metadata_location
        pred_meta = lake.catalog.load_table("ml.predictions").metadata_location
    con = connect()
    for name, sql in DUCK_QUERIES.items():
        text = sql.format(quotes=quotes_meta, pred=pred_meta)

        def run(text=text) -> int:
            used = set(re.findall(r"\$(\w+)", text))
            values = {"since": since, "since52": since52, "since_week": since_week}
            params = {k: v for k, v in values.items() if k in used}
            if "t" in used:
                params["t"] = rng.choice(info["tickers"])
            return len(con.execute(text, params).fetchall())
        results[name]["duckdb"] = timed(run, max(5, args.runs // 5))
    con.close()

    table = Table(title=f"dashboard queries, {info['rows']:,} quote rows, {len(info['tickers'])} tickers "
                        f"(ms; front: {args.runs} runs, DuckDB: {max(5, args.runs // 5)} runs)")
    for col in ("query", "rows", "front p50", "front p95", "DuckDB on Iceberg p50", "DuckDB p95", "p95 < 50 ms"):
        table.add_column(col, justify="left" if col == "query" else "right")
    for name, r in results.items():
        f50, f95, n = r["front"]
        d50, d95, _ = r["duckdb"]
        table.add_row(name, str(n), f"{f50:.1f}", f"{f95:.1f}", f"{d50:.1f}", f"{d95:.1f}",
                      "[green]yes[/]" if f95 < 50 else "[red]no[/]")
    console.print(table)
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

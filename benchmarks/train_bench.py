"""Backtest + selection time of the ML stages on the sample and on ~2.6M synthetic rows.

Usage: .venvs/core/bin/python benchmarks/train_bench.py [--tickers 500] [--years 20] [--skip-synthetic]

Both runs use a throw-away state dir (embedded mode: local Iceberg warehouse behind the REST catalog,
local MLflow store). The features table is built by the real platform, as `lakehouse run` does: the
`sample` / deterministic `synthetic` source is ingested into raw.quotes and `dbt_lake` builds
features.fct_daily_features. Then: the backtest cold (every fit), the backtest again (every fit from
the cache, nothing written), the selection (scores, champion rule, MLflow, registry) and predict.
Prints timings beside their anchors and the holdout table.

Anchors (issue 16's budget): on the sample, backtest + train + predict cold well under 15 s on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console(width=130)


def _fresh_env(home: Path, models: str, extra: dict[str, str] | None = None) -> None:
    for k in [k for k in os.environ if k.startswith("LAKEHOUSE_")]:
        del os.environ[k]
    from lakehouse.net import free_port

    os.environ["LAKEHOUSE_HOME"] = str(home)
    os.environ["LAKEHOUSE_CATALOG__PORT"] = str(free_port())
    os.environ["LAKEHOUSE_MLFLOW__MODELS"] = models
    os.environ["LAKEHOUSE_MLFLOW__PLOT_TICKERS"] = "5"
    os.environ.update(extra or {})
    from lakehouse.config import get_config, telemetry_off_env

    for k, v in telemetry_off_env().items():
        os.environ.setdefault(k, v)
    get_config(reload=True)


def run(label: str, source: str, models: str, extra: dict[str, str] | None = None) -> dict:
    """Ingest -> dbt_lake features -> backtest (cold, cached) -> train (selection) -> predict; returns timings."""
    from lakehouse.config import get_config
    from lakehouse.stages.ingest.run import run_ingest
    from lakehouse.stages.transform_lake import build
    from ml.backtest import backtest
    from ml.features import load_features
    from ml.predict import predict
    from ml.train import train

    quiet = Console(quiet=True)
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        _fresh_env(Path(tmp) / "home", models, extra)
        cfg = get_config()
        t = {}
        t0 = time.perf_counter()
        run_ingest(cfg, source, console=quiet)
        t[f"ingest raw.quotes ({source})"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        built = build(cfg, full_refresh=True, console=quiet)
        if not built.ok:
            raise SystemExit(f"{label}: dbt build failed: {built.one_line()}\n" + "\n".join(built.errors[-10:]))
        t["features (dbt_lake build incl. tests)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        feats = load_features(cfg).frame
        t["read Iceberg (Arrow)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        bt = backtest(cfg, console)
        t[f"backtest cold ({bt.fitted} fits, {len(bt.rows):,} forecasts)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = backtest(cfg, quiet)
        t[f"backtest rerun ({again.fitted} fits, {again.cached} cached, wrote {again.changed} rows)"] = (
            time.perf_counter() - t0)
        t0 = time.perf_counter()
        result = train(cfg, console)
        t["train: scores + champion rule + MLflow + registry"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        predict(cfg, console)
        t["predict"] = time.perf_counter() - t0
        ml = sum(v for k, v in t.items() if k.startswith(("backtest cold", "train", "predict")))
        t["ML stages cold: backtest + train + predict (anchor: < 15 s on the sample)"] = ml
        return {"label": label, "rows": len(feats), "tickers": feats["ticker"].nunique(), "times": t,
                "result": result}


def print_report(res: dict) -> None:
    from ml import reports

    table = Table(title=f"{res['label']}: {res['rows']:,} feature rows, {res['tickers']} tickers")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for k, v in res["times"].items():
        table.add_row(k, f"{v:.1f}")
    console.print(table)
    r = res["result"]
    console.print(reports.holdout_table(r.scores, r.candidate, r.champion,
                                        title=f"{res['label']}: holdout from {r.holdout_start:%Y-%m-%d}"))
    console.print(f"decision: {r.decision.reason}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickers", type=int, default=500)
    ap.add_argument("--years", type=int, default=20)
    ap.add_argument("--models", default="naive,drift,ridge,hist_gbr")
    ap.add_argument("--synthetic-retrain", default="year", choices=("month", "quarter", "year"),
                    help="refit schedule of the backtest on the synthetic set ([mlflow] retrain_every)")
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args()

    reports = [run("sample (stocks.csv.gz)", "sample", args.models)]
    print_report(reports[-1])
    if not args.skip_synthetic:
        reports.append(run(f"synthetic {args.tickers} x {args.years}y", "synthetic", args.models, {
            "LAKEHOUSE_MLFLOW__RETRAIN_EVERY": args.synthetic_retrain,
            "LAKEHOUSE_SOURCES__SYNTHETIC__N_TICKERS": str(args.tickers),
            "LAKEHOUSE_SOURCES__SYNTHETIC__START": f"{dt.date.today().year - args.years + 1}-01-01",
        }))
        print_report(reports[-1])

if __name__ == "__main__":
    main()

"""Training + walk-forward evaluation time of the ML stage on the sample and on ~2.5M synthetic rows.

Usage: .venvs/core/bin/python benchmarks/train_bench.py [--tickers 500] [--years 20] [--skip-synthetic]

Both runs use a throw-away state dir (embedded mode: local Iceberg warehouse, local MLflow store).
The features are computed with the pandas reference implementation of the features contract
(ml.reference_features) from the shipped sample quotes and from the deterministic synthetic source
(lakehouse.sources.synthetic when present). Prints timings and the per-model evaluation table.
"""

from __future__ import annotations

import argparse
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
    os.environ["LAKEHOUSE_HOME"] = str(home)
    os.environ["LAKEHOUSE_MLFLOW__MODELS"] = models
    os.environ["LAKEHOUSE_MLFLOW__PLOT_TICKERS"] = "5"
    os.environ.update(extra or {})
    from lakehouse.config import get_config, telemetry_off_env

    for k, v in telemetry_off_env().items():
        os.environ.setdefault(k, v)
    get_config(reload=True)


def synthetic_quotes(n_tickers: int, years: int):
    """Synthetic OHLCV as pandas: the ingestion helper's deterministic source, else ml's fallback."""
    try:
        from lakehouse.sources.synthetic import generate
    except ImportError:
        from ml.reference_features import synthetic_quotes as fallback

        return fallback(n_tickers, years * 261), "ml.reference_features.synthetic_quotes"
    import pandas as pd

    df = generate(n_tickers=n_tickers, years=years).to_pandas()
    df["trade_date"] = pd.to_datetime(df["trade_date"])
    return df, "lakehouse.sources.synthetic.generate"


def run(label: str, quotes, models: str, extra: dict[str, str] | None = None) -> dict:
    """Features -> Iceberg -> train (walk-forward + MLflow + registry) -> predict; returns timings."""
    from lakehouse.config import get_config
    from ml.features import load_features
    from ml.predict import predict
    from ml.reference_features import compute_features, write_features_table
    from ml.train import train

    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        _fresh_env(Path(tmp) / "home", models, extra)
        cfg = get_config()
        t = {}
        t0 = time.perf_counter()
        feats = compute_features(quotes)
        t["features (pandas)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_features_table(cfg, feats)
        t["write Iceberg"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_features(cfg)
        t["read Iceberg (Arrow)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = train(cfg, console)
        t["train total (eval + MLflow + registry)"] = time.perf_counter() - t0
        for name, r in result.results.items():
            t[f"  {name}: walk-forward + final fit"] = r.seconds
        t0 = time.perf_counter()
        predict(cfg, console)
        t["predict"] = time.perf_counter() - t0
        return {"label": label, "rows": len(feats), "tickers": feats["ticker"].nunique(), "times": t,
                "result": result}


def print_report(res: dict) -> None:
    table = Table(title=f"{res['label']}: {res['rows']:,} feature rows, {res['tickers']} tickers")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for k, v in res["times"].items():
        table.add_row(k, f"{v:.1f}")
    console.print(table)
    r = res["result"]
    ev = Table(title=f"{res['label']}: walk-forward evaluation (champion: {r.champion})")
    for c in ("model", "MASE", "MAE", "RMSE", "MAPE", "dir. accuracy", "IC", "rank IC", "folds"):
        ev.add_column(c, justify="right" if c != "model" else "left")
    for name, m in sorted(r.results.items(), key=lambda kv: kv[1].overall["mase"]):
        o = m.overall

        def f(v: float, fmt: str = "{:.4f}") -> str:
            return "-" if v != v else fmt.format(v)

        ev.add_row(name, f(o["mase"]), f(o["mae"]), f(o["rmse"]), f(o["mape"], "{:.2%}"),
                   f(o["directional_accuracy"], "{:.3f}"), f(o["ic"]), f(o["rank_ic"]), str(len(m.folds)))
    console.print(ev)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickers", type=int, default=500)
    ap.add_argument("--years", type=int, default=20)
    ap.add_argument("--models", default="naive,drift,ridge,hist_gbr")
    ap.add_argument("--synthetic-folds", type=int, default=3,
                    help="walk-forward folds on the synthetic set (sample: [mlflow] cv_folds, default 5)")
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args()

    from ml.reference_features import sample_quotes

    reports = [run("sample (stocks.csv.gz)", sample_quotes(), args.models)]
    print_report(reports[-1])
    if not args.skip_synthetic:
        t0 = time.perf_counter()
        quotes, origin = synthetic_quotes(args.tickers, args.years)
        console.print(f"synthetic quotes: {len(quotes):,} rows from {origin} in {time.perf_counter() - t0:.1f}s")
        reports.append(run(f"synthetic {args.tickers} x {args.years}y", quotes, args.models,
                           {"LAKEHOUSE_MLFLOW__CV_FOLDS": str(args.synthetic_folds)}))
        print_report(reports[-1])


if __name__ == "__main__":
    main()

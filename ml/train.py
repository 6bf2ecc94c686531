"""Training: walk-forward evaluation of every model, MLflow tracking and registry, leaderboard rows.

``train(cfg, console)`` reads ``features.fct_daily_features`` at its current snapshot, evaluates each
model on expanding-window folds (see :mod:`ml.walkforward`), refits it on all rows with a known
target, logs one MLflow child run per model under a parent run, registers every model as a version
of ``[mlflow] model_name`` and applies the champion rule (:mod:`ml.registry`). Overall metrics go to
the Iceberg table ``ml.model_metrics`` for the ClickHouse leaderboard.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from threadpoolctl import threadpool_limits

from lakehouse.config import Config
from lakehouse.pipeline.stage import StageContext
from ml import lake_tables, registry, reports
from ml.features import (
    FEATURES_TABLE,
    HORIZON_DAYS,
    INPUT_COLUMNS,
    MODEL_FEATURES,
    TARGET_CLOSE,
    TARGET_RETURN,
    FeatureSet,
    load_features,
    training_frame,
)
from ml.metrics import METRIC_NAMES, forecast_metrics
from ml.models import BASELINE, MODEL_FACTORIES, ForecastModel, build_model, design, estimator_params
from ml.walkforward import Fold, walk_forward_folds

GAP_DAYS = HORIZON_DAYS


@dataclass
class ModelResult:
    """Walk-forward results and the final fit of one model."""

    name: str
    folds: list[dict]
    overall: dict[str, float]
    oof: pd.DataFrame  # out-of-fold predictions: ticker, trade_date, fold, last/actual/pred close
    estimator: object
    importance: pd.DataFrame | None
    seconds: float
    run_id: str = ""
    version: str = ""


@dataclass
class TrainResult:
    """What a training run produced."""

    parent_run_id: str
    snapshot_id: int
    results: dict[str, ModelResult]
    champion: str
    champion_version: str
    previous_version: str | None
    reason: str
    skipped: dict[str, str] = field(default_factory=dict)
    trained: bool = True

    def detail(self) -> str:
        """One line for the pipeline summary."""
        if not self.trained:
            return self.reason
        c = self.results[self.champion]
        return (f"{len(self.results)} models, champion {self.champion} v{self.champion_version} "
                f"(MASE {c.overall['mase']:.3f}), features snapshot {self.snapshot_id}")


def evaluate_model(
    name: str, frame: pd.DataFrame, folds: list[Fold], advance: Callable[[str], None] = lambda _: None,
) -> ModelResult:
    """Walk-forward evaluation of model ``name`` on ``frame``, then a final fit on all of it."""
    t0 = time.perf_counter()
    X, y = design(frame), frame[TARGET_RETURN].to_numpy(dtype=float)
    parts, fold_rows = [], []
    est = None
    for fold in folds:
        est = build_model(name).fit(X[fold.train_mask], y[fold.train_mask])
        test = frame.loc[fold.test_mask, ["ticker", "trade_date", "adj_close", TARGET_CLOSE]]
        pred_ret = est.predict(X[fold.test_mask])
        oof = pd.DataFrame({
            "ticker": test["ticker"].to_numpy(), "trade_date": test["trade_date"].to_numpy(), "fold": fold.index,
            "last_close": test["adj_close"].to_numpy(), "actual_close": test[TARGET_CLOSE].to_numpy(),
            "pred_close": test["adj_close"].to_numpy() * (1 + pred_ret),
        })
        parts.append(oof)
        m = forecast_metrics(oof["actual_close"], oof["pred_close"], oof["last_close"])
        fold_rows.append({
            "fold": fold.index, "train_end": fold.train_end.date(), "test_start": fold.test_start.date(),
            "test_end": fold.test_end.date(), "n_train": int(fold.train_mask.sum()),
            "n_test": int(fold.test_mask.sum()), **m,
        })
        advance(f"{name}: fold {fold.index + 1}/{len(folds)}")
    last = folds[-1]
    importance = reports.feature_importance(est, X[last.test_mask], y[last.test_mask])
    all_oof = pd.concat(parts, ignore_index=True)
    overall = forecast_metrics(all_oof["actual_close"], all_oof["pred_close"], all_oof["last_close"])
    final = build_model(name).fit(X, y)
    advance(f"{name}: final fit")
    return ModelResult(name, fold_rows, overall, all_oof, final, importance, time.perf_counter() - t0)


def compute_threads(n_rows: int) -> int:
    """OpenMP/BLAS threads for fitting: one.

    On this platform's 2-core machines other stages run at the same time, and OpenMP spin-waiting
    made multi-threaded HistGradientBoosting fits several times slower than single-threaded ones
    (300k rows: 7.5 s with 1 thread, 41.7 s with 2 on a loaded machine; sample data: 4.7 s vs 64 s).
    """
    return 1


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )


def evaluate_models(
    frame: pd.DataFrame, model_names: list[str], folds: list[Fold], console: Console,
    on_result: Callable[[ModelResult], None] | None = None,
) -> dict[str, ModelResult]:
    """Evaluate every model with a progress bar over models x (folds + final fit)."""
    results: dict[str, ModelResult] = {}
    with _progress(console) as progress, threadpool_limits(limits=compute_threads(len(frame))):
        task = progress.add_task("walk-forward", total=len(model_names) * (len(folds) + 1))
        for name in model_names:
            def advance(desc: str) -> None:
                progress.update(task, advance=1, description=desc)

            res = evaluate_model(name, frame, folds, advance)
            if on_result:
                progress.update(task, description=f"{name}: logging to MLflow")
                on_result(res)
            results[name] = res
    return results


def resolve_models(requested: list[str] | None, cfg: Config) -> list[str]:
    """The models to train: requested (or ``[mlflow] models``), validated, naive always included."""
    names = list(dict.fromkeys(requested or cfg.mlflow.models))
    unknown = [n for n in names if n not in MODEL_FACTORIES]
    if unknown:
        source = "--models" if requested else f"[mlflow] models ({cfg.origin_of('mlflow.models')})"
        raise ValueError(f"{source}: unknown model(s) {', '.join(unknown)} (known: {', '.join(MODEL_FACTORIES)})")
    if BASELINE not in names:
        names.insert(0, BASELINE)  # MASE and the champion rule are relative to naive
    return names


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}


@contextmanager
def _quiet(*loggers: str):
    """Raise the given loggers to ERROR for the block.

    Hides MLflow's notes that a PythonModel object is serialized with cloudpickle (our deliberate
    choice: the model classes live in the installed ``ml`` package) and that pip's version is unknown.
    """
    saved = [(lg, lg.level) for lg in map(logging.getLogger, loggers)]
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


def _pip_requirements() -> list[str]:
    import cloudpickle
    import mlflow
    import sklearn

    return [f"mlflow=={mlflow.__version__}", f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}",
            f"numpy=={np.__version__}", f"cloudpickle=={cloudpickle.__version__}"]


def _log_child(
    cfg: Config, res: ModelResult, frame: pd.DataFrame, fs: FeatureSet, folds: list[Fold], tags: dict[str, str],
) -> None:
    """One MLflow child run for one model: params, metrics, artifacts, the registered model."""
    import mlflow
    from mlflow.models import infer_signature

    parent = mlflow.active_run()
    with mlflow.start_run(run_name=res.name, nested=True, experiment_id=parent.info.experiment_id,
                          tags={**tags, "model_name": res.name}) as run:
        res.run_id = run.info.run_id
        mlflow.log_params({
            "model": res.name, "horizon_days": HORIZON_DAYS, "n_folds": len(folds), "gap_days": GAP_DAYS,
            "test_days": cfg.mlflow.cv_test_days, "n_rows": len(frame), "n_tickers": frame["ticker"].nunique(),
            "n_features": len(MODEL_FEATURES), "target": TARGET_RETURN,
            **{f"hp_{k}": v[:250] for k, v in estimator_params(res.estimator).items()},
        })
        for row in res.folds:
            mlflow.log_metrics(_finite({f"fold_{m}": row[m] for m in METRIC_NAMES}), step=row["fold"])
        mlflow.log_metrics({**_finite(res.overall), "train_seconds": res.seconds})
        mlflow.log_dict({"model_features": list(MODEL_FEATURES), "input_columns": list(INPUT_COLUMNS)},
                        "features.json")
        metrics_df = pd.DataFrame([*res.folds, {"fold": "overall", **res.overall}])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "metrics.csv"
            metrics_df.to_csv(path, index=False)
            mlflow.log_artifact(str(path))
            if res.importance is not None:
                ipath = Path(tmp) / "feature_importance.csv"
                res.importance.to_csv(ipath, index=False)
                mlflow.log_artifact(str(ipath))
                mlflow.log_figure(reports.importance_plot(res.importance, res.name), "feature_importance.png")
        for ticker in sorted(res.oof["ticker"].unique())[: cfg.mlflow.plot_tickers]:
            mlflow.log_figure(reports.prediction_plot(res.oof, ticker, res.name), f"plots/{ticker}.png")
        example = frame.loc[frame.index[-5:], list(INPUT_COLUMNS)].reset_index(drop=True)
        pyfunc = ForecastModel(res.name, res.estimator)
        with _quiet("mlflow.pyfunc", "mlflow.utils.environment"):
            info = mlflow.pyfunc.log_model(
                name="model", python_model=pyfunc, input_example=example,
                signature=infer_signature(example, pyfunc.predict(None, example)),
                registered_model_name=cfg.mlflow.model_name, pip_requirements=_pip_requirements(),
            )
        res.version = str(info.registered_model_version)
        client = mlflow.MlflowClient()
        for k, v in {"model_name": res.name, "feature_snapshot_id": str(fs.snapshot_id),
                     "feature_table": fs.table, "mase": f"{res.overall['mase']:.6f}"}.items():
            client.set_model_version_tag(cfg.mlflow.model_name, res.version, k, v)


def needs_training(cfg: Config, snapshot_id: int | None = None) -> tuple[bool, str]:
    """Whether a champion exists, and whether it was trained on ``snapshot_id`` (when given)."""
    import mlflow

    from ml import tracking

    tracking.configure(cfg)
    champ = registry.champion_version(mlflow.MlflowClient(), cfg.mlflow.model_name)
    if champ is None:
        return True, f"no champion for {cfg.mlflow.model_name} yet"
    if snapshot_id is not None and champ.tags.get("feature_snapshot_id") != str(snapshot_id):
        return True, f"features changed since champion v{champ.version} (snapshot {snapshot_id})"
    what = f" on features snapshot {snapshot_id}" if snapshot_id is not None else ""
    return False, f"champion v{champ.version} ({champ.tags.get('model_name', '?')}) already trained{what}"


def train(
    cfg: Config, console: Console | None = None, models: list[str] | None = None, force: bool = True,
) -> TrainResult:
    """Train, evaluate, log and register every model; apply the champion rule; write ml.model_metrics.

    With ``force=False`` nothing is trained when the champion was trained on the current features
    snapshot. Raises :class:`ml.errors.MLError` subclasses with a clear message on bad input.
    """
    import mlflow

    from lakehouse.lake import open_lake
    from ml import tracking

    console = console or Console()
    target = tracking.configure(cfg)
    names = resolve_models(models, cfg)

    def warn(msg: str) -> None:
        console.print(f"[yellow]warning:[/] {msg}")

    fs = load_features(cfg)
    if not force:
        needed, why = needs_training(cfg, fs.snapshot_id)
        if not needed:
            return TrainResult("", fs.snapshot_id, {}, "", "", None, f"skipped: {why} (use --force)", trained=False)
    frame = training_frame(fs, cfg.mlflow.min_history_days, warn)
    folds = walk_forward_folds(frame["trade_date"], cfg.mlflow.cv_folds, cfg.mlflow.cv_test_days, GAP_DAYS,
                               cfg.mlflow.min_history_days)
    console.print(
        f"training {', '.join(names)} on {len(frame)} rows, {frame['ticker'].nunique()} tickers, "
        f"{FEATURES_TABLE} snapshot {fs.snapshot_id}; {len(folds)} walk-forward folds of "
        f"{cfg.mlflow.cv_test_days} trading days, gap {GAP_DAYS}; MLflow {target.tracking_uri}"
    )
    exp_id = tracking.ensure_experiment(cfg, target)
    tags = {"feature_table": fs.table, "feature_snapshot_id": str(fs.snapshot_id)}
    trained_at = datetime.now(UTC)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"train-{trained_at:%Y%m%d-%H%M%S}", tags=tags) as parent:
        mlflow.log_params({
            "models": ",".join(names), "n_folds": len(folds), "test_days": cfg.mlflow.cv_test_days,
            "gap_days": GAP_DAYS, "horizon_days": HORIZON_DAYS, "min_history_days": cfg.mlflow.min_history_days,
            "n_rows": len(frame), "tickers": ",".join(sorted(frame["ticker"].unique()))[:500],
        })
        if fs.skipped:
            mlflow.log_dict(fs.skipped, "skipped_tickers.json")
        results = evaluate_models(
            frame, names, folds, console, on_result=lambda r: _log_child(cfg, r, frame, fs, folds, tags),
        )
        champion, reason = registry.choose_champion({n: r.overall["mase"] for n, r in results.items()})
        client = mlflow.MlflowClient()
        promo = registry.promote(client, cfg.mlflow.model_name, results[champion].version)
        mlflow.set_tags({"champion": champion, "champion_version": promo.champion_version,
                         "previous_version": promo.previous_version or "", "promotion": reason})
        summary = pd.DataFrame([{"model": n, "version": r.version, "run_id": r.run_id, **r.overall}
                                for n, r in results.items()])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "metrics_summary.csv"
            summary.to_csv(path, index=False)
            mlflow.log_artifact(str(path))
        mlflow.log_metric("champion_mase", results[champion].overall["mase"])
        rows = [{
            "run_id": r.run_id, "model_name": n, "model_version": r.version,
            **{m: (None if not math.isfinite(r.overall[m]) else r.overall[m]) for m in METRIC_NAMES},
            "n_folds": len(folds), "feature_snapshot_id": fs.snapshot_id, "trained_at": trained_at,
            "is_champion": n == champion,
        } for n, r in results.items()]
        with open_lake(cfg) as lake:
            lake_tables.append_rows(lake.catalog, lake_tables.MODEL_METRICS, rows)
    console.print(reports.summary_table(
        {n: r.overall for n, r in results.items()}, {n: r.version for n, r in results.items()}, champion,
        title=f"walk-forward evaluation ({len(folds)} folds, 5-day horizon)",
    ))
    console.print(f"[bold]promotion:[/] {reason}; {cfg.mlflow.model_name}@champion = v{promo.champion_version}"
                  + (f", @previous = v{promo.previous_version}" if promo.previous_version else ""))
    return TrainResult(parent.info.run_id, fs.snapshot_id, results, champion, promo.champion_version,
                       promo.previous_version, reason, dict(fs.skipped))


def run_stage(ctx: StageContext) -> str:
    """The ``train`` stage: train, evaluate, register and promote (``models`` option: the model list)."""
    return train(ctx.cfg, ctx.console, models=ctx.option("models"), force=True).detail()

"""Model selection on the backtest, the champion rule, MLflow tracking and registry, ml.model_metrics.

``lakehouse train`` fits nothing new: the backtest (:mod:`ml.backtest`) already holds every model's
point-in-time forecasts, and the walk-forward evaluation is scoring them. The as-of dates with a
realized return are split in time: the last ``[mlflow] holdout_weeks`` weeks are the *holdout*,
everything before is *cv* (the inner walk-forward folds: one per retrain date). Steps:

1. score every model on both splits in return units (:func:`ml.metrics.score`);
2. choose the candidate on ``cv`` only (lowest MASE among the non-naive models), so the holdout
   score of the chosen model carries no selection bias;
3. apply the champion rule on the holdout (:mod:`ml.registry`): beat naive with a Diebold-Mariano
   p-value under ``[mlflow] dm_pvalue_max`` and beat the current champion's kind on the same rows;
4. register the promoted model -- the backtest's newest fit of that kind, from the fit cache, so the
   model serving live forecasts is exactly the one the backtest scores -- and move the alias;
5. log every score, the split, the candidate and the decision to MLflow (a parent run, one child
   run per model), and append the scores to ``ml.model_metrics``.
"""

from __future__ import annotations

import logging
import math
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from threadpoolctl import threadpool_limits

from lakehouse.config import Config
from lakehouse.pipeline.stage import StageContext
from ml import lake_tables, registry, reports
from ml.errors import MLError
from ml.features import HORIZON_DAYS, INPUT_COLUMNS, TARGET_RETURN, load_features, training_rows
from ml.metrics import SCORE_NAMES, compare, score
from ml.models import BASELINE, ForecastModel, build_model, design, estimator_params

#: Newey-West lags of the significance tests: at least horizon - 1.
HAC_LAG = HORIZON_DAYS - 1
SPLITS = ("cv", "holdout")


class BacktestMissing(MLError):
    """The backtest has not run (or not for the requested models)."""


@dataclass
class TrainResult:
    """What a selection run decided."""

    parent_run_id: str
    feature_snapshot_id: int
    backtest_snapshot_id: int
    scores: dict[str, dict[str, dict[str, float]]]  # model -> split -> score
    holdout_start: object
    candidate: str | None
    decision: registry.Decision
    champion: str
    champion_version: str
    previous_version: str | None
    registered: dict[str, str] = field(default_factory=dict)  # model -> version registered by this run
    run_ids: dict[str, str] = field(default_factory=dict)  # model -> its MLflow child run

    def detail(self) -> str:
        """One line for the pipeline summary."""
        c = self.candidate or BASELINE
        h = self.scores[c]["holdout"]
        return (f"candidate {c} (holdout rel_mae {h['rel_mae']:.3f}, MASE {h['mase']:.3f}, DM p "
                f"{h['dm_pvalue']:.3f}); champion {self.champion} v{self.champion_version}: {self.decision.reason}")


def load_backtest(cfg: Config) -> tuple[pd.DataFrame, int]:
    """The rows of ml.backtest_predictions at its current snapshot, and the snapshot id."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    from lakehouse.lake import open_lake

    with open_lake(cfg) as lake:
        try:
            tbl = lake.catalog.load_table(lake_tables.BACKTEST_PREDICTIONS)
        except (NoSuchTableError, NoSuchNamespaceError):
            tbl = None
        snap = tbl.current_snapshot() if tbl is not None else None
        if snap is None:
            raise BacktestMissing(f"{lake_tables.BACKTEST_PREDICTIONS} has no forecasts yet: run `lakehouse backtest` "
                                  "(or `lakehouse run`) first")
        df = tbl.scan(snapshot_id=snap.snapshot_id).to_pandas()
    df["as_of_date"] = pd.to_datetime(df["as_of_date"])
    for c in ("retrain_date", "target_date", "train_end_date"):
        df[c] = pd.to_datetime(df[c])
    return df, snap.snapshot_id


def holdout_start(df: pd.DataFrame, weeks: int) -> pd.Timestamp:
    """First as-of date of the holdout: the last ``weeks`` as-of dates with a realized return."""
    dates = np.sort(df.loc[df["actual_return"].notna(), "as_of_date"].unique())
    if len(dates) < weeks + 26:
        raise BacktestMissing(
            f"the backtest has {len(dates)} weeks with a realized return; a holdout of {weeks} weeks "
            f"([mlflow] holdout_weeks) needs at least {weeks + 26} (26 for model selection before it)"
        )
    return pd.Timestamp(dates[-weeks])


def score_models(df: pd.DataFrame, models: list[str], start: pd.Timestamp) -> dict[str, dict[str, dict[str, float]]]:
    """model -> split -> scores (:data:`ml.metrics.SCORE_NAMES`), plus the split's period bounds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for m in models:
        rows = df[df["model_name"] == m]
        out[m] = {}
        for split, part in (("cv", rows[rows["as_of_date"] < start]), ("holdout", rows[rows["as_of_date"] >= start])):
            s = score(part, lag=HAC_LAG)
            realized = part[part["actual_return"].notna()]
            s["period_start"] = realized["as_of_date"].min() if len(realized) else None
            s["period_end"] = realized["as_of_date"].max() if len(realized) else None
            out[m][split] = s
    return out


def choose_candidate(scores: dict[str, dict[str, dict[str, float]]]) -> str | None:
    """The non-naive model with the lowest cv MASE (None when there is none with a finite MASE)."""
    ranked = sorted((s["cv"]["mase"], m) for m, s in scores.items()
                    if m != BASELINE and math.isfinite(s["cv"]["mase"]))
    return ranked[0][1] if ranked else None


@contextmanager
def _quiet(*loggers: str):
    """Raise the given loggers to ERROR for the block (MLflow's notes on cloudpickle and pip)."""
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


def newest_fit(cfg: Config, df: pd.DataFrame, model: str):  # noqa: ANN201
    """(estimator, fit key, retrain date) of the model's newest backtest fit: from the fit cache, else refit
    on the current features with the same rule (targets known before the retrain date)."""
    from ml.fitcache import FitCache

    rows = df[df["model_name"] == model]
    retrain = rows["retrain_date"].max()
    key = str(rows.loc[rows["retrain_date"] == retrain, "fit_key"].iloc[0])
    est = FitCache(cfg).get(model, key)
    if est is None:
        train = training_rows(load_features(cfg).frame)
        train = train[train["target_date"] < retrain]
        with threadpool_limits(limits=1):
            est = build_model(model).fit(design(train), train[TARGET_RETURN].to_numpy(float))
    return est, key, retrain


def _register(cfg: Config, model: str, est, key: str, retrain: pd.Timestamp, example: pd.DataFrame,
              tags: dict[str, str]) -> str:
    """Log the pyfunc in the active run and register it; the new version."""
    import mlflow
    from mlflow.models import infer_signature

    pyfunc = ForecastModel(model, est)
    with _quiet("mlflow.pyfunc", "mlflow.utils.environment", "mlflow.models.model"):
        info = mlflow.pyfunc.log_model(
            name="model", python_model=pyfunc, input_example=example,
            signature=infer_signature(example, pyfunc.predict(None, example)),
            registered_model_name=cfg.mlflow.model_name, pip_requirements=_pip_requirements(),
        )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    tags = {"model_name": model, "fit_key": key, "retrain_date": str(pd.Timestamp(retrain).date()), **tags}
    for k, v in tags.items():
        client.set_model_version_tag(cfg.mlflow.model_name, version, k, v)
    return version


def _finite(d: dict, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in d.items()
            if k in SCORE_NAMES and v is not None and math.isfinite(float(v))}


def train(cfg: Config, console: Console | None = None, models: list[str] | None = None) -> TrainResult:
    """Score the backtest, choose the candidate, apply the champion rule, log and register; see module doc."""
    import mlflow

    from lakehouse.lake import open_lake
    from ml import tracking
    from ml.backtest import resolve_models

    console = console or Console()
    target = tracking.configure(cfg)
    ml = cfg.mlflow
    df, bt_snap = load_backtest(cfg)
    names = resolve_models(models, cfg)
    missing = sorted(set(names) - set(df["model_name"]))
    if missing:
        raise BacktestMissing(f"{lake_tables.BACKTEST_PREDICTIONS} has no forecasts of {', '.join(missing)}: run "
                              f"`lakehouse backtest{' --models ' + ','.join(names) if models else ''}` first")
    df = df[df["model_name"].isin(names)]
    start = holdout_start(df, ml.holdout_weeks)
    scores = score_models(df, names, start)
    candidate = choose_candidate(scores)
    feature_snap = int(df["feature_snapshot_id"].max())
    client = mlflow.MlflowClient()
    current_v = registry.champion_version(client, ml.model_name)
    current = current_v.tags.get("model_name") if current_v is not None else None
    holdout = df[df["as_of_date"] >= start]
    vs_current = None
    if candidate and current and current not in (candidate, BASELINE) and current in names:
        vs_current = compare(holdout[holdout["model_name"] == candidate],
                             holdout[holdout["model_name"] == current], lag=HAC_LAG)
    decision = registry.champion_rule(candidate, scores[candidate]["holdout"] if candidate else None, current,
                                      vs_current, ml.dm_pvalue_max)
    console.print(f"scoring {', '.join(names)} on the backtest ({lake_tables.BACKTEST_PREDICTIONS} snapshot "
                  f"{bt_snap}): cv {scores[BASELINE]['cv']['period_start']:%Y-%m-%d} .. holdout from "
                  f"{start:%Y-%m-%d} ({ml.holdout_weeks} weeks); MLflow {target.tracking_uri}")
    exp_id = tracking.ensure_experiment(cfg, target)
    trained_at = datetime.now(UTC)
    tags = {"feature_snapshot_id": str(feature_snap), "backtest_snapshot_id": str(bt_snap)}
    registered: dict[str, str] = {}
    run_ids: dict[str, str] = {}
    with mlflow.start_run(experiment_id=exp_id, run_name=f"select-{trained_at:%Y%m%d-%H%M%S}", tags=tags) as parent:
        mlflow.log_params({
            "models": ",".join(names), "holdout_start": str(start.date()), "holdout_weeks": ml.holdout_weeks,
            "retrain_every": ml.retrain_every, "dm_pvalue_max": ml.dm_pvalue_max, "hac_lag": HAC_LAG,
            "horizon_days": HORIZON_DAYS, "selection": "lowest cv MASE among non-naive models",
            "current_champion": f"{current} v{current_v.version}" if current_v is not None else "none",
        })
        for m in names:
            with mlflow.start_run(run_name=m, nested=True, experiment_id=exp_id,
                                  tags={**tags, "model_name": m}) as child:
                run_ids[m] = child.info.run_id
                mlflow.log_metrics({**_finite(scores[m]["cv"], "cv_"), **_finite(scores[m]["holdout"], "holdout_")})
                mlflow.log_params({"model": m, **{f"hp_{k}": v[:250] for k, v in
                                                  estimator_params(build_model(m)).items()}})
                if m == decision.champion and decision.promote:
                    est, key, retrain = newest_fit(cfg, df, m)
                    if current_v is not None and current_v.tags.get("fit_key") == key:
                        registered[m] = str(current_v.version)  # the same fit already holds the alias
                    else:
                        feats = load_features(cfg).frame
                        example = feats.groupby("ticker").tail(1).loc[:, list(INPUT_COLUMNS)].head(5)
                        registered[m] = _register(cfg, m, est, key, retrain, example.reset_index(drop=True), {
                            **tags, "holdout_mase": f"{scores[m]['holdout']['mase']:.6f}",
                            "holdout_dm_pvalue": f"{scores[m]['holdout']['dm_pvalue']:.6f}"})
                if m == candidate and ml.plot_tickers:
                    rows = df[(df["model_name"] == m) & df["actual_return"].notna()]
                    tickers = sorted(rows["ticker"].unique())[: ml.plot_tickers]
                    mlflow.log_figure(reports.backtest_plot(rows, tickers, m, start), "backtest.png")
        promo = registry.Promotion(str(current_v.version), None) if current_v is not None else None
        if decision.promote:
            promo = registry.promote(client, ml.model_name, registered[decision.champion])
        mlflow.set_tags({"candidate": candidate or "", "champion": decision.champion,
                         "champion_version": promo.champion_version, "previous_version": promo.previous_version or "",
                         "promoted": str(decision.promote).lower(), "decision": decision.reason[:5000]})
        if vs_current is not None:
            mlflow.log_metrics(_finite({"mase": vs_current["mase"], "dm_stat": vs_current["dm_stat"],
                                        "dm_pvalue": vs_current["dm_pvalue"]}, "vs_champion_"))
        table = pd.DataFrame([{"model": m, "split": s, **scores[m][s]} for m in names for s in SPLITS])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "scores.csv"
            table.to_csv(path, index=False)
            mlflow.log_artifact(str(path))
    rows = []
    for m in names:
        for s in SPLITS:
            sc = scores[m][s]
            rows.append({
                "run_id": run_ids[m], "model_name": m, "model_version": registered.get(m, ""), "split": s,
                **{k: (None if not math.isfinite(float(sc[k])) else float(sc[k])) for k in SCORE_NAMES
                   if k not in ("n_obs", "n_tickers", "n_dates")},
                "n_obs": int(sc["n_obs"]), "n_tickers": int(sc["n_tickers"]), "n_dates": int(sc["n_dates"]),
                "period_start": sc["period_start"].date() if sc["period_start"] is not None else None,
                "period_end": sc["period_end"].date() if sc["period_end"] is not None else None,
                "feature_snapshot_id": feature_snap, "backtest_snapshot_id": bt_snap, "trained_at": trained_at,
                "is_candidate": m == candidate, "is_champion": m == decision.champion, "decision": decision.reason,
            })
    with open_lake(cfg) as lake:
        lake_tables.append_rows(lake.catalog, lake_tables.MODEL_METRICS, rows)
    title = f"walk-forward backtest scores (5-day returns; holdout from {start.date()})"
    console.print(reports.holdout_table(scores, candidate, decision.champion, title=title))
    console.print(f"[bold]decision:[/] {decision.reason}; {ml.model_name}@champion = v{promo.champion_version}"
                  + (f", @previous = v{promo.previous_version}" if promo.previous_version else ""))
    return TrainResult(parent.info.run_id, feature_snap, bt_snap, scores, start, candidate, decision,
                       decision.champion, promo.champion_version, promo.previous_version, registered, run_ids)


def run_stage(ctx: StageContext) -> str:
    """The ``train`` stage: select on the backtest, champion rule, registry (``models`` option: the model list)."""
    return train(ctx.cfg, ctx.console, models=ctx.option("models")).detail()

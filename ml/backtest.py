"""The backtest: every model's point-in-time 5-day forecast for every ticker and week of the history.

Each model is refit on a fixed calendar schedule (``[mlflow] retrain_every``: the first day of each
month, quarter or year). The fit of retrain date R learns from the rows whose 5-day target was known
before R -- decided per row by its own target date (the ticker's 5th next trading row), so a ticker
with missing days never trains on a target that falls after R -- and forecasts every as-of date in
[R, next R). As-of dates are the last session of each week of the ticker's exchange.

Point in time: a forecast as of d depends only on data before d. The fit uses targets known before
R <= d, the features of d look back only (the dbt model is tested for it), hyper-parameters are
fixed, scaling and imputation are learned inside each fit, and a ticker is forecast whenever it has
a price on d (every model handles missing features). The first retrain date is the first one with
``[mlflow] min_history_days`` complete training rows before it (or ``[mlflow] backtest_start``),
which again only looks at data before it. So the lake holding data up to d or up to today gives the
same forecast as of d (tested).

``actual_return`` is the adjusted close on the target date over the adjusted close on the as-of
date, minus 1, both from the same features snapshot: a later split or dividend re-adjustment
scales both and cancels out. The MASE scale of each row (the ticker's in-sample naive MAE over the
fit's training window) is stored with it, so scoring needs nothing but this table.

The backtest *is* the walk-forward evaluation: the train stage scores its forecasts (``cv`` before
the holdout, ``holdout`` after) instead of fitting anything again. Fits are cached
(:mod:`ml.fitcache`): a rerun fits only retrain dates whose training rows changed, and a new
trading day fits nothing until a new retrain date begins. Rows go to ``ml.backtest_predictions`` in
one commit, and only when a forecast or an actual changed: a rerun never duplicates rows and a
no-change rerun writes no snapshot.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from threadpoolctl import threadpool_limits

from lakehouse.config import Config
from lakehouse.contracts import BACKTEST_PREDICTIONS
from lakehouse.pipeline.stage import StageContext
from ml import calendars, lake_tables
from ml.errors import FeaturesUnavailable
from ml.features import (
    HORIZON_DAYS,
    INPUT_COLUMNS,
    TARGET_RETURN,
    FeatureSet,
    load_features,
    model_matrix,
    training_rows,
    with_target_dates,
)
from ml.fitcache import FitCache, TrainingDigests, fit_key
from ml.metrics import naive_scale
from ml.models import BASELINE, MODEL_FACTORIES, build_model, design

TABLE = BACKTEST_PREDICTIONS.identifier
KEY = ("model_name", "ticker", "as_of_date")
#: Columns that make a forecast row what it is (compared to decide whether anything changed).
VALUE_COLUMNS = ("target_date", "horizon_days", "predicted_return", "predicted_close", "last_close", "actual_return",
                 "actual_close", "naive_scale", "train_end_date", "retrain_date", "fit_key")
_FREQ = {"month": "MS", "quarter": "QS", "year": "YS"}
#: Columns whose content a fit depends on (the training-row digest).
DIGEST_COLUMNS = ("trade_date", *INPUT_COLUMNS, TARGET_RETURN)

Advance = Callable[[str, bool], None]


@dataclass
class BacktestPlan:
    """Retrain dates and the as-of rows each one serves."""

    retrain_dates: list[pd.Timestamp]
    as_of: pd.DataFrame  # feature rows of the as-of dates, with exchange, retrain_date
    train: pd.DataFrame  # rows with known targets (and their target dates), sorted by ticker, date

    @property
    def n_fits_per_model(self) -> int:
        return int(self.as_of["retrain_date"].nunique())


@dataclass
class BacktestResult:
    """What a backtest run computed and wrote."""

    rows: pd.DataFrame
    models: list[str]
    periods: int
    fitted: int
    cached: int
    changed: int
    snapshot_id: int | None
    feature_snapshot_id: int
    seconds: float
    skipped: dict[str, str] = field(default_factory=dict)

    def detail(self) -> str:
        """One line for the pipeline summary."""
        if self.rows.empty:
            return "no as-of date with enough history: nothing to backtest"
        first, last = (pd.Timestamp(self.rows["as_of_date"].agg(f)).date() for f in ("min", "max"))
        wrote = f"{self.changed} new/changed rows -> {TABLE}" if self.snapshot_id else f"{TABLE} unchanged"
        return (f"{len(self.models)} models x {self.rows['ticker'].nunique()} tickers, weekly {first} .. {last} "
                f"({len(self.rows)} forecasts, {self.periods} refits per model: {self.fitted} fitted, "
                f"{self.cached} cached); {wrote}")


def retrain_schedule(complete_target_dates: np.ndarray, first: pd.Timestamp, last: pd.Timestamp, every: str,
                     min_rows: int, start: str = "") -> list[pd.Timestamp]:
    """The retrain dates from the first with ``min_rows`` complete training rows (and >= ``start``) to ``last``.

    ``complete_target_dates``: target dates of the training rows with every feature present, sorted.
    """
    if every not in _FREQ:
        raise ValueError(f"[mlflow] retrain_every must be one of {', '.join(_FREQ)}, got {every!r}")
    candidates = pd.date_range(first.normalize(), last, freq=_FREQ[every])
    if start:
        candidates = candidates[candidates >= pd.Timestamp(start)]
    counts = np.searchsorted(complete_target_dates, candidates.to_numpy(dtype="datetime64[ns]"), side="left")
    ok = np.flatnonzero(counts >= min_rows)
    return list(candidates[ok[0]:]) if len(ok) else []


def make_plan(frame: pd.DataFrame, exchanges: dict[str, str], every: str, min_rows: int,
              start: str = "") -> BacktestPlan:
    """Retrain dates and as-of rows for the features ``frame`` (normalized, sorted by ticker and date)."""
    df = with_target_dates(frame)
    train = training_rows(df)
    complete = model_matrix(train).notna().all(axis=1)
    complete_dates = np.sort(train.loc[complete, "target_date"].to_numpy(dtype="datetime64[ns]"))
    first, last = df["trade_date"].min(), df["trade_date"].max()
    retrains = retrain_schedule(complete_dates, first, last, every, min_rows, start)
    if not retrains:
        return BacktestPlan([], df.iloc[0:0].assign(exchange="", retrain_date=pd.NaT), train)
    parts = []
    df = df.assign(exchange=df["ticker"].map(lambda t: exchanges.get(t, calendars.DEFAULT_EXCHANGE)))
    for exchange, g in df.groupby("exchange", sort=True):
        weeks = calendars.week_last_sessions(exchange, retrains[0], last)
        parts.append(g[g["trade_date"].isin(weeks) & g["adj_close"].gt(0)])
    as_of = pd.concat(parts).sort_values(["ticker", "trade_date"], kind="stable")
    r = np.array(retrains, dtype="datetime64[ns]")
    as_of["retrain_date"] = r[np.searchsorted(r, as_of["trade_date"].to_numpy(dtype="datetime64[ns]"),
                                              side="right") - 1]
    return BacktestPlan(retrains, as_of, train)


def _target_dates(as_of: pd.DataFrame) -> np.ndarray:
    out = np.empty(len(as_of), dtype="datetime64[ns]")
    for exchange, idx in as_of.groupby("exchange").indices.items():
        out[idx] = calendars.sessions_after(exchange, as_of["trade_date"].to_numpy()[idx], HORIZON_DAYS)
    return out


def _scales(plan: BacktestPlan) -> np.ndarray:
    out = np.full(len(plan.as_of), np.nan)
    tr = plan.train.groupby("ticker")
    for ticker, idx in plan.as_of.groupby("ticker").indices.items():
        if ticker not in tr.groups:
            continue
        g = tr.get_group(ticker)
        out[idx] = naive_scale(g[TARGET_RETURN], g["target_date"], plan.as_of["retrain_date"].to_numpy()[idx])
    return out


def compute(frame: pd.DataFrame, models: list[str], exchanges: dict[str, str], every: str, min_rows: int,
            start: str = "", cache: FitCache | None = None,
            advance: Advance | None = None) -> tuple[pd.DataFrame, int, int]:
    """Every model's backtest forecasts for ``frame``; (rows, fits made, fits from the cache).

    Rows carry the contract columns of ml.backtest_predictions except ``run_id``,
    ``feature_snapshot_id`` and ``created_at``.
    """
    plan = make_plan(frame, exchanges, every, min_rows, start)
    cols = [c for c in BACKTEST_PREDICTIONS.column_names if c not in ("run_id", "feature_snapshot_id", "created_at")]
    if plan.as_of.empty:
        return pd.DataFrame(columns=cols), 0, 0
    as_of = plan.as_of.reset_index(drop=True)
    base = pd.DataFrame({
        "ticker": as_of["ticker"].to_numpy(), "as_of_date": as_of["trade_date"].to_numpy(),
        "target_date": _target_dates(as_of), "horizon_days": HORIZON_DAYS,
        "last_close": as_of["adj_close"].to_numpy(float), "retrain_date": as_of["retrain_date"].to_numpy(),
    })
    prices = frame[["ticker", "trade_date", "adj_close"]].rename(
        columns={"trade_date": "target_date", "adj_close": "actual_close"})
    base = base.merge(prices, on=["ticker", "target_date"], how="left", validate="many_to_one")
    base["actual_return"] = base["actual_close"] / base["last_close"] - 1
    base["naive_scale"] = _scales(BacktestPlan(plan.retrain_dates, as_of, plan.train))
    digests = TrainingDigests(plan.train, DIGEST_COLUMNS)
    train_dates = np.sort(plan.train["target_date"].to_numpy(dtype="datetime64[ns]"))
    X_all, y_all = design(plan.train), plan.train[TARGET_RETURN].to_numpy(float)
    target_all = plan.train["target_date"].to_numpy(dtype="datetime64[ns]")
    X_asof = design(as_of)
    periods = sorted(base["retrain_date"].unique())
    fitted = cached = 0
    parts = []
    with threadpool_limits(limits=1):
        for model in models:
            pred = np.full(len(base), np.nan)
            keys = np.empty(len(base), dtype=object)
            for r in periods:
                r = pd.Timestamp(r)
                key = fit_key(model, r, digests.digest(r))
                est = cache.get(model, key) if cache is not None else None
                hit = est is not None
                if est is None:
                    mask = target_all < np.datetime64(r, "ns")
                    est = build_model(model).fit(X_all[mask], y_all[mask])
                    if cache is not None:
                        cache.put(model, key, est)
                fitted += not hit
                cached += hit
                rows = (base["retrain_date"] == r).to_numpy()
                pred[rows] = est.predict(X_asof[rows])
                keys[rows] = key
                if advance:
                    advance(f"{model}: refit {r.date()}", hit)
            out = base.assign(model_name=model, predicted_return=pred, fit_key=keys)
            parts.append(out)
    rows = pd.concat(parts, ignore_index=True)
    rows["predicted_close"] = rows["last_close"] * (1 + rows["predicted_return"])
    n_before = np.searchsorted(train_dates, rows["retrain_date"].to_numpy(dtype="datetime64[ns]"), side="left")
    rows["train_end_date"] = train_dates[np.maximum(n_before - 1, 0)]
    return rows[cols], fitted, cached


def resolve_models(requested: list[str] | None, cfg: Config) -> list[str]:
    """The models to run: requested (or ``[mlflow] models``), validated, naive always included."""
    names = list(dict.fromkeys(requested or cfg.mlflow.models))
    unknown = [n for n in names if n not in MODEL_FACTORIES]
    if unknown:
        source = "--models" if requested else f"[mlflow] models ({cfg.origin_of('mlflow.models')})"
        raise ValueError(f"{source}: unknown model(s) {', '.join(unknown)} (known: {', '.join(MODEL_FACTORIES)})")
    if BASELINE not in names:
        names.insert(0, BASELINE)  # every score is relative to naive
    return names


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Element-wise equality where two missing values are equal."""
    return ((a == b) | (a.isna() & b.isna())).to_numpy(dtype=bool)


def _as_datetime(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    return df.assign(**{c: pd.to_datetime(df[c]).astype("datetime64[ns]") for c in columns})


def write(catalog, rows: pd.DataFrame, models: list[str], run_id: str, snapshot_id: int) -> tuple[int | None, int]:
    """Replace the models' rows in one commit if any forecast or actual changed; (new snapshot or None, changed).

    Unchanged rows keep the run id, features snapshot and creation time they were first written with.
    """
    from pyiceberg.expressions import In

    dates = ("as_of_date", "target_date", "train_end_date", "retrain_date")
    tbl = lake_tables.ensure_current(catalog, TABLE)
    new = _as_datetime(rows, dates)
    if tbl.current_snapshot() is not None:
        old = tbl.scan(row_filter=In("model_name", set(models))).to_pandas()
    else:
        old = pd.DataFrame(columns=list(BACKTEST_PREDICTIONS.column_names))
    old = _as_datetime(old, dates)
    merged = new.merge(old, on=list(KEY), how="left", suffixes=("", "_old"), indicator=True)
    same = merged["_merge"].eq("both").to_numpy().copy()
    for c in VALUE_COLUMNS:
        same = same & _same(merged[c], merged[f"{c}_old"].astype(merged[c].dtype, errors="ignore"))
    changed = int((~same).sum())
    removed = len(old) - int(merged["_merge"].eq("both").sum())
    if changed == 0 and removed == 0:
        return None, 0
    now = datetime.now(UTC)
    merged["run_id"] = np.where(same, merged["run_id"], run_id)
    merged["feature_snapshot_id"] = np.where(same, merged["feature_snapshot_id"], snapshot_id)
    merged["created_at"] = [o if s else now for o, s in zip(merged["created_at"], same, strict=True)]
    out = merged.loc[:, list(BACKTEST_PREDICTIONS.column_names)]
    for c in dates:
        out[c] = out[c].dt.date
    out = out.sort_values(list(KEY), kind="stable")
    records = out.astype(object).where(out.notna(), None).to_dict("records")
    snap = lake_tables.overwrite_rows(catalog, TABLE, records, In("model_name", set(models)))
    return snap, changed


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold blue]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[note]}"), TimeElapsedColumn(), console=console, transient=False)


def backtest(cfg: Config, console: Console | None = None, models: list[str] | None = None,
             fs: FeatureSet | None = None) -> BacktestResult:
    """Run the backtest on the current features snapshot and write ml.backtest_predictions."""
    from lakehouse.lake import open_lake

    console = console or Console()
    t0 = time.perf_counter()
    names = resolve_models(models, cfg)
    fs = fs or load_features(cfg)
    ml = cfg.mlflow
    frame = fs.frame
    exchanges = calendars.ticker_exchanges(cfg, sorted(frame["ticker"].unique()))
    plan = make_plan(frame, exchanges, ml.retrain_every, ml.min_history_days, ml.backtest_start)
    if not plan.retrain_dates:
        raise FeaturesUnavailable(
            f"{fs.table} (snapshot {fs.snapshot_id}) never reaches {ml.min_history_days} training rows with every "
            f"feature and a known 5-day target{' after ' + ml.backtest_start if ml.backtest_start else ''}: "
            "ingest more history or lower [mlflow] min_history_days"
        )
    n = plan.n_fits_per_model * len(names)
    console.print(f"backtest of {', '.join(names)} on {fs.table} snapshot {fs.snapshot_id}: "
                  f"{frame['ticker'].nunique()} tickers, refit every {ml.retrain_every} from "
                  f"{plan.retrain_dates[0].date()} ({plan.n_fits_per_model} refits per model), weekly as-of dates")
    cache = FitCache(cfg)
    with _progress(console) as progress:
        task = progress.add_task("backtest", total=n, note="")
        stats = {"fitted": 0, "cached": 0}

        def advance(desc: str, hit: bool) -> None:
            stats["cached" if hit else "fitted"] += 1
            progress.update(task, advance=1, description=desc,
                            note=f"{stats['fitted']} fitted, {stats['cached']} cached")

        rows, fitted, cached = compute(frame, names, exchanges, ml.retrain_every, ml.min_history_days,
                                       ml.backtest_start, cache, advance)
    keep = set(rows["fit_key"])
    for m in names:
        cache.prune(m, keep)
    run_id = uuid.uuid4().hex[:12]
    with open_lake(cfg) as lake:
        snap, changed = write(lake.catalog, rows, names, run_id, fs.snapshot_id)
    result = BacktestResult(rows, names, plan.n_fits_per_model, fitted, cached, changed, snap, fs.snapshot_id,
                            time.perf_counter() - t0, dict(fs.skipped))
    console.print(result.detail() + f" in {result.seconds:.1f} s")
    return result


def run_stage(ctx: StageContext) -> str:
    """The ``backtest`` stage (``models`` option: the model list)."""
    return backtest(ctx.cfg, ctx.console, models=ctx.option("models")).detail()

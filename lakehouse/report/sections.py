"""The report's sections, shaped from what :mod:`lakehouse.report.read` read: per-ticker prices with the
forecast and its error band, the leaderboard of the newest model selection, live forecasts against
what happened, freshness per ticker, and lineage (with links only to servers that run).

Plain dataclasses and dicts with finite floats or None, so the template needs no pandas and the
builders can be tested on hand-made frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from lakehouse.config import Config
from lakehouse.report.read import TableRead

HORIZON_DAYS = 5
#: The error band: these quantiles of the champion's realized backtest errors (an 80% band).
BAND_QUANTILES = (0.10, 0.90)
#: A ticker with fewer realized backtest forecasts than this borrows the band of all tickers pooled.
MIN_BAND_ROWS = 20
#: Calendar days of prices drawn per ticker.
PRICE_WINDOW_DAYS = 365
#: Price charts drawn at most (tickers in name order); the tables list every ticker. Rendering is most of
#: the report's cost, and a page of hundreds of charts is read by nobody.
MAX_CHARTED_TICKERS = 25


@dataclass
class Band:
    """Quantiles of realized-minus-predicted 5-day returns of the serving model in the backtest."""

    low: float
    high: float
    n: int
    model: str
    pooled: bool  # True: too few rows for the ticker, all tickers' errors were used


@dataclass
class TickerView:
    """Everything drawn for one ticker."""

    ticker: str
    prices: pd.DataFrame  # trade_date, adj_close: the last PRICE_WINDOW_DAYS
    forecast: pd.DataFrame  # target_date, horizon_days, predicted_close, lower, upper (empty: no forecast)
    as_of_date: date | None
    last_close: float | None
    predicted_return: float | None
    band: Band | None
    backtest_points: pd.DataFrame  # target_date, predicted_close, actual_close: serving model, inside the window
    live_points: pd.DataFrame  # target_date, predicted_close, actual_close: scored live forecasts


@dataclass
class Lineage:
    """Where the report's numbers come from."""

    reads: list[TableRead]
    model_registry_name: str
    model_name: str | None = None
    model_version: str | None = None
    run_id: str | None = None
    selection_trained_at: datetime | None = None
    mlflow_ui: str | None = None  # the tracking server's UI when the services run (None: embedded store)
    tracking: str = ""  # where tracking lives, in words
    catalog_ui: str | None = None

    @property
    def run_link(self) -> str | None:
        return f"{self.mlflow_ui}/#/runs/{self.run_id}" if self.mlflow_ui and self.run_id else None

    @property
    def model_link(self) -> str | None:
        if self.mlflow_ui and self.model_version:
            return f"{self.mlflow_ui}/#/models/{self.model_registry_name}/versions/{self.model_version}"
        return None

    def table_link(self, identifier: str) -> str | None:
        if not self.catalog_ui:
            return None
        ns, name = identifier.split(".", 1)
        return f"{self.catalog_ui}/ui/namespaces/{ns}/tables/{name}"


@dataclass
class ReportData:
    """The whole report's content, before any HTML."""

    generated_at: datetime
    mode: str
    newest_trade_date: date
    tickers: list[TickerView]
    freshness: list[dict]
    leaderboard: list[dict]
    decision: str | None
    accuracy: list[dict]
    accuracy_summary: list[dict]
    lineage: Lineage
    backtest_summary: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    charted_limit: int = MAX_CHARTED_TICKERS


def _num(v) -> float | None:  # noqa: ANN001 - pandas/numpy scalars
    """A finite float or None (the template prints None as a dash)."""
    if v is None or v is pd.NA:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _timestamp(v) -> datetime | None:  # noqa: ANN001 - pandas Timestamp, NaT or None
    return None if v is None or pd.isna(v) else pd.Timestamp(v).to_pydatetime()


def error_bands(backtest: pd.DataFrame, model: str | None) -> dict[str, Band]:
    """Per ticker, the quantiles of realized minus predicted 5-day return of ``model`` over the backtest."""
    if model is None or backtest.empty:
        return {}
    rows = backtest[(backtest["model_name"] == model) & backtest["actual_return"].notna()]
    if rows.empty:
        return {}
    err = rows["actual_return"].astype(float) - rows["predicted_return"].astype(float)
    lo_q, hi_q = BAND_QUANTILES
    pooled = Band(float(err.quantile(lo_q)), float(err.quantile(hi_q)), len(err), model, True)
    bands: dict[str, Band] = {}
    for ticker, e in err.groupby(rows["ticker"]):
        bands[str(ticker)] = (Band(float(e.quantile(lo_q)), float(e.quantile(hi_q)), len(e), model, False)
                              if len(e) >= MIN_BAND_ROWS else pooled)
    bands["*"] = pooled
    return bands


def forecast_path(pred: pd.DataFrame, band: Band | None) -> pd.DataFrame:
    """The latest forecast's five days with the band: the 5-day error quantiles on the last close, scaled
    by sqrt(h/5) on the interpolated days (errors of a random walk grow with the square root of time)."""
    cols = ["target_date", "horizon_days", "predicted_close", "lower", "upper"]
    if pred.empty:
        return pd.DataFrame(columns=cols)
    p = pred.sort_values("horizon_days").copy()
    scale = np.sqrt(p["horizon_days"].astype(float) / HORIZON_DAYS)
    last = p["last_close"].astype(float)
    if band is not None:
        p["lower"] = p["predicted_close"].astype(float) + last * band.low * scale
        p["upper"] = p["predicted_close"].astype(float) + last * band.high * scale
    else:
        p["lower"] = p["upper"] = np.nan
    return p[cols].reset_index(drop=True)


def latest_forecasts(predictions: pd.DataFrame) -> pd.DataFrame:
    """Each ticker's newest as-of date's rows of ml.predictions."""
    if predictions.empty:
        return predictions
    newest = predictions.groupby("ticker")["as_of_date"].transform("max")
    return predictions[predictions["as_of_date"] == newest]


def leaderboard(metrics: pd.DataFrame) -> tuple[list[dict], str | None, datetime | None]:
    """The newest selection run's scores: one row per model (holdout scores, cv MASE), its decision."""
    if metrics.empty:
        return [], None, None
    trained = pd.to_datetime(metrics["trained_at"], utc=True)
    newest = trained.max()
    run = metrics[trained == newest]
    rows = []
    for model, g in run.groupby("model_name"):
        by_split = {s: r for s, r in zip(g["split"], g.to_dict("records"), strict=True)}
        h, cv = by_split.get("holdout", {}), by_split.get("cv", {})
        rows.append({
            "model": str(model), "cv_mase": _num(cv.get("mase")),
            **{k: _num(h.get(k)) for k in ("mase", "rel_mae", "mae", "dir_acc", "up_rate", "always_up_acc", "ic",
                                            "dm_stat", "dm_pvalue")},
            "n_obs": int(h["n_obs"]) if _num(h.get("n_obs")) is not None else None,
            "period": (f"{h['period_start']} .. {h['period_end']}" if h.get("period_start") is not None else ""),
            "model_version": (h.get("model_version") or cv.get("model_version") or ""),
            "is_candidate": bool(h.get("is_candidate") or cv.get("is_candidate")),
            "is_champion": bool(h.get("is_champion") or cv.get("is_champion")),
            "run_id": h.get("run_id") or cv.get("run_id") or "",
        })
    rows.sort(key=lambda r: (r["cv_mase"] is None, r["cv_mase"] if r["cv_mase"] is not None else 0.0))
    decision = str(run["decision"].dropna().iloc[0]) if run["decision"].notna().any() else None
    return rows, decision, newest.to_pydatetime()


def freshness(features: pd.DataFrame, quotes: pd.DataFrame, latest: pd.DataFrame, today: date) -> list[dict]:
    """Per ticker: last trade date in raw.quotes and in the features, weekdays behind the lake's newest
    trade date, the latest forecast's as-of date, and the calendar age against today."""
    newest = features["trade_date"].max()
    last_feat = features.groupby("ticker")["trade_date"].max()
    last_raw = quotes.groupby("ticker")["trade_date"].max() if not quotes.empty else pd.Series(dtype="object")
    loaded = (pd.to_datetime(quotes["loaded_at"], utc=True).groupby(quotes["ticker"]).max()
              if not quotes.empty else pd.Series(dtype="object"))
    as_of = latest.groupby("ticker")["as_of_date"].max() if not latest.empty else pd.Series(dtype="object")
    rows = []
    for ticker in sorted(set(last_feat.index) | set(last_raw.index)):
        feat = last_feat.get(ticker)
        raw = last_raw.get(ticker)
        last = max(d for d in (feat, raw) if d is not None and not pd.isna(d))
        behind = int(np.busday_count(last.date(), newest.date())) if last < newest else 0
        fc = as_of.get(ticker)
        rows.append({
            "ticker": ticker, "last_raw": raw.date() if raw is not None and not pd.isna(raw) else None,
            "last_features": feat.date() if feat is not None and not pd.isna(feat) else None,
            "loaded_at": _timestamp(loaded.get(ticker)), "days_behind": behind,
            "forecast_as_of": fc.date() if fc is not None and not pd.isna(fc) else None,
            "age_days": (today - last.date()).days,
            "status": "current" if behind == 0 else f"{behind} weekday{'s' if behind != 1 else ''} behind",
        })
    return rows


def accuracy_rows(accuracy: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """Scored live 5-day forecasts (newest first) and a per-ticker summary (n, MAE, hits vs up rate)."""
    if accuracy.empty:
        return [], []
    acc = accuracy[(accuracy["horizon_days"] == HORIZON_DAYS) & ~accuracy["is_interpolated"].fillna(False).astype(bool)
                   & accuracy["actual_return"].notna()].copy()
    if acc.empty:
        return [], []
    acc = acc.sort_values(["as_of_date", "ticker"], ascending=[False, True])
    rows = [{
        "ticker": r["ticker"], "as_of_date": r["as_of_date"].date(), "target_date": r["target_date"].date(),
        "predicted_return": _num(r["predicted_return"]), "actual_return": _num(r["actual_return"]),
        "return_error": _num(r["return_error"]), "predicted_close": _num(r["predicted_close"]),
        "actual_close": _num(r["actual_close"]),
        "direction_hit": None if pd.isna(r["direction_hit"]) else bool(r["direction_hit"]),
        "model": f"{r['model_name']} v{r['model_version']}",
    } for r in acc.to_dict("records")]
    summary = []
    for ticker, g in acc.groupby("ticker"):
        hits = g["direction_hit"].dropna().astype(bool)
        summary.append({
            "ticker": ticker, "n": len(g), "mae": _num(g["return_error"].astype(float).abs().mean()),
            "hit_rate": _num(hits.mean()) if len(hits) else None,
            "up_rate": _num((g["actual_return"].astype(float) > 0).mean()),
        })
    return rows, summary


def backtest_summary(rows: pd.DataFrame, since: pd.Timestamp) -> list[dict]:
    """Per ticker, the serving model's realized backtest forecasts as of ``since`` or later: n, MAE of the
    5-day return, direction hits (rows where both moves are nonzero) next to the up-move share of those rows."""
    out = []
    recent = rows[rows["as_of_date"] >= since] if len(rows) else rows
    for ticker, g in (recent.groupby("ticker") if len(recent) else ()):
        pred, act = g["predicted_return"].astype(float), g["actual_return"].astype(float)
        moved = (pred != 0) & (act != 0)
        out.append({
            "ticker": str(ticker), "n": len(g), "mae": _num((pred - act).abs().mean()),
            "hit_rate": _num((np.sign(pred[moved]) == np.sign(act[moved])).mean()) if moved.any() else None,
            "up_rate": _num((act[moved] > 0).mean()) if moved.any() else _num((act > 0).mean()),
            "first": g["as_of_date"].min().date(), "last": g["as_of_date"].max().date(),
        })
    return out


def _points(df: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    cols = ["target_date", "predicted_close", "actual_close"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    d = df[df["target_date"] >= start]
    return d[cols].astype({"predicted_close": float, "actual_close": float}).sort_values("target_date")


def build(cfg: Config, lake: dict, now: datetime | None = None) -> ReportData:
    """Shape what :func:`read_lake` read into the report's sections."""
    now = now or datetime.now(UTC)
    feats: pd.DataFrame = lake["features"]
    latest = latest_forecasts(lake["predictions"])
    board, decision, trained_at = leaderboard(lake["metrics"])
    serving = lake["serving"]
    bands = error_bands(lake["backtest"], serving)
    accuracy = lake["accuracy"]
    live = (accuracy[(accuracy["horizon_days"] == HORIZON_DAYS) & accuracy["actual_return"].notna()]
            if not accuracy.empty else accuracy)
    backtest = lake["backtest"]
    bt_serving = (backtest[(backtest["model_name"] == serving) & backtest["actual_close"].notna()]
                  if serving and not backtest.empty else backtest.iloc[0:0])
    views = []
    for ticker, prices in feats.sort_values("trade_date").groupby("ticker"):
        start = prices["trade_date"].max() - timedelta(days=PRICE_WINDOW_DAYS)
        window = prices[prices["trade_date"] >= start][["trade_date", "adj_close"]].astype({"adj_close": float})
        pred = latest[latest["ticker"] == ticker] if not latest.empty else latest
        band = bands.get(str(ticker), bands.get("*")) if not pred.empty else None
        five = pred[pred["horizon_days"] == HORIZON_DAYS] if not pred.empty else pred
        views.append(TickerView(
            ticker=str(ticker), prices=window.reset_index(drop=True), forecast=forecast_path(pred, band),
            as_of_date=five["as_of_date"].iloc[0].date() if len(five) else None,
            last_close=_num(five["last_close"].iloc[0]) if len(five) else None,
            predicted_return=_num(five["predicted_return"].iloc[0]) if len(five) else None,
            band=band,
            backtest_points=_points(bt_serving[bt_serving["ticker"] == ticker] if len(bt_serving) else bt_serving,
                                    start),
            live_points=_points(live[live["ticker"] == ticker] if len(live) else live, start),
        ))
    acc_rows, acc_summary = accuracy_rows(accuracy)
    lineage = _lineage(cfg, lake["reads"], latest, trained_at)
    notes = []
    if latest.empty:
        notes.append("No forecasts yet (ml.predictions is empty): `lakehouse run` trains and predicts.")
    if not board:
        notes.append("No model selection yet (ml.model_metrics is empty): `lakehouse train`.")
    return ReportData(
        generated_at=now, mode=cfg.mode, newest_trade_date=feats["trade_date"].max().date(), tickers=views,
        freshness=freshness(feats, lake["quotes"], latest, now.date()), leaderboard=board, decision=decision,
        accuracy=acc_rows, accuracy_summary=acc_summary, lineage=lineage, notes=notes,
        backtest_summary=backtest_summary(bt_serving, feats["trade_date"].max() - timedelta(days=PRICE_WINDOW_DAYS)),
    )


def _without_credentials(url: str) -> str:
    """``url`` without a ``user:password@`` part: the report is a shareable file, a link must carry no secret."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}" if sep else url


def _lineage(cfg: Config, reads: list[TableRead], latest: pd.DataFrame, trained_at: datetime | None) -> Lineage:
    lin = Lineage(reads=reads, model_registry_name=cfg.mlflow.model_name, selection_trained_at=trained_at)
    if not latest.empty:
        newest = latest.sort_values(["as_of_date", "created_at"]).iloc[-1]
        lin.model_name, lin.model_version, lin.run_id = (str(newest["model_name"]), str(newest["model_version"]),
                                                         str(newest["run_id"]))
    # links only to servers that run: the configured tracking server, or the services mode's MLflow and catalog
    if cfg.mlflow.tracking_uri:
        lin.mlflow_ui = _without_credentials(cfg.mlflow.tracking_uri.rstrip("/"))
        lin.tracking = f"MLflow server {lin.mlflow_ui}"
    elif cfg.mode == "services":
        lin.mlflow_ui = cfg.mlflow.url
        lin.tracking = f"MLflow server {lin.mlflow_ui}"
    else:
        lin.tracking = f"embedded MLflow store {cfg.mlflow_dir / 'mlflow.db'} (no server: no links)"
    if cfg.mode == "services":
        lin.catalog_ui = cfg.catalog_uri
    return lin

"""The run report's builders on hand-made data: error bands and the forecast path, the leaderboard and
freshness shaping, the SVG charts and the HTML page (no lake, no service)."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from lakehouse.report import KEEP_DATED, LATEST, _prune, _write_atomic
from lakehouse.report.charts import error_chart, price_chart, svg_markup
from lakehouse.report.read import TableRead
from lakehouse.report.render import num, render_html
from lakehouse.report.sections import (
    MIN_BAND_ROWS,
    Band,
    Lineage,
    ReportData,
    TickerView,
    error_bands,
    forecast_path,
    freshness,
    leaderboard,
)


def _view(ticker: str = "ACME", with_forecast: bool = True) -> TickerView:
    days = pd.bdate_range("2024-01-01", periods=60)
    prices = pd.DataFrame({"trade_date": days, "adj_close": 100 + np.sin(np.arange(60) / 5) * 5})
    band = Band(-0.04, 0.05, 40, "ridge", False)
    pred = pd.DataFrame({
        "target_date": pd.bdate_range(days[-1] + pd.Timedelta(days=1), periods=5), "horizon_days": [1, 2, 3, 4, 5],
        "predicted_close": [101.0, 101.5, 102.0, 102.5, 103.0], "last_close": [100.0] * 5,
    })
    points = pd.DataFrame({"target_date": days[::5], "predicted_close": 100.0, "actual_close": 101.0})
    return TickerView(
        ticker=ticker, prices=prices, forecast=forecast_path(pred, band) if with_forecast else forecast_path(
            pred.iloc[0:0], None),
        as_of_date=days[-1].date() if with_forecast else None, last_close=100.0 if with_forecast else None,
        predicted_return=0.03 if with_forecast else None, band=band if with_forecast else None,
        backtest_points=points, live_points=points.tail(2),
    )


def test_error_bands_are_quantiles_of_realized_minus_predicted() -> None:
    rng = np.random.default_rng(0)
    n = MIN_BAND_ROWS + 10
    bt = pd.DataFrame({
        "model_name": ["ridge"] * n + ["ridge"] * 3 + ["naive"] * n,
        "ticker": ["A"] * n + ["B"] * 3 + ["A"] * n,
        "predicted_return": rng.normal(0, 0.01, 2 * n + 3), "actual_return": rng.normal(0, 0.03, 2 * n + 3),
    })
    bt.loc[0, "actual_return"] = None  # not known yet: left out
    bands = error_bands(bt, "ridge")
    a = bt[(bt["model_name"] == "ridge") & (bt["ticker"] == "A")].dropna()
    err = a["actual_return"] - a["predicted_return"]
    assert bands["A"].low == pytest.approx(np.quantile(err, 0.10))
    assert bands["A"].high == pytest.approx(np.quantile(err, 0.90))
    assert bands["A"].n == n - 1 and not bands["A"].pooled
    assert bands["B"].pooled and bands["B"].n == n - 1 + 3  # too few rows: all tickers of the model pooled
    assert error_bands(bt, None) == {} and error_bands(bt, "hist_gbr") == {}


def test_forecast_path_band_grows_with_the_square_root_of_the_horizon() -> None:
    pred = pd.DataFrame({"target_date": pd.bdate_range("2024-01-02", periods=5), "horizon_days": [5, 4, 3, 2, 1],
                         "predicted_close": [105.0, 104.0, 103.0, 102.0, 101.0], "last_close": [100.0] * 5})
    path = forecast_path(pred, Band(-0.05, 0.04, 30, "naive", False))
    assert list(path["horizon_days"]) == [1, 2, 3, 4, 5]
    assert path["lower"].iloc[-1] == pytest.approx(105 - 5) and path["upper"].iloc[-1] == pytest.approx(105 + 4)
    assert path["lower"].iloc[0] == pytest.approx(101 - 5 * math.sqrt(1 / 5))
    assert forecast_path(pred, None)["lower"].isna().all()


def test_leaderboard_takes_the_newest_selection_run_in_cv_order() -> None:
    old, new = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-02-01", tz="UTC")
    rows = []
    for trained, models in ((old, {"naive": 1.0, "ridge": 0.5}), (new, {"naive": 0.9, "ridge": 0.95, "drift": 0.8})):
        for m, mase in models.items():
            for split in ("cv", "holdout"):
                rows.append({"model_name": m, "split": split, "mase": mase + (0.1 if split == "holdout" else 0),
                             "rel_mae": 1.0 if m == "naive" else 0.9, "dm_pvalue": None if m == "naive" else 0.2,
                             "trained_at": trained, "n_obs": 10, "is_candidate": m == "drift",
                             "is_champion": m == "naive", "decision": f"decided {trained:%m}", "model_version": "",
                             "period_start": date(2024, 1, 1), "period_end": date(2024, 1, 31), "run_id": m})
    board, decision, trained_at = leaderboard(pd.DataFrame(rows))
    assert [r["model"] for r in board] == ["drift", "naive", "ridge"]
    assert decision == "decided 02" and trained_at == new.to_pydatetime()
    naive = next(r for r in board if r["model"] == "naive")
    assert naive["is_champion"] and naive["dm_pvalue"] is None and naive["mase"] == pytest.approx(1.0)
    assert leaderboard(pd.DataFrame(columns=["trained_at"])) == ([], None, None)


def test_freshness_counts_weekdays_behind_the_newest_ticker() -> None:
    feats = pd.DataFrame({"ticker": ["A", "A", "B"], "trade_date": pd.to_datetime(["2024-03-07", "2024-03-08",
                                                                                   "2024-03-05"])})
    quotes = pd.DataFrame({"ticker": ["A", "B"], "trade_date": pd.to_datetime(["2024-03-08", "2024-03-06"]),
                           "loaded_at": pd.to_datetime(["2024-03-09 01:00", "2024-03-09 01:00"], utc=True)})
    latest = pd.DataFrame({"ticker": ["A"], "as_of_date": pd.to_datetime(["2024-03-08"])})
    rows = {r["ticker"]: r for r in freshness(feats, quotes, latest, date(2024, 3, 11))}
    assert rows["A"]["days_behind"] == 0 and rows["A"]["status"] == "current" and rows["A"]["age_days"] == 3
    # B's newest quote (Wed 6th) is 2 weekdays behind A's Friday 8th; its features lag one more day
    assert rows["B"]["days_behind"] == 2 and rows["B"]["last_features"] == date(2024, 3, 5)
    assert rows["B"]["forecast_as_of"] is None and rows["B"]["status"] == "2 weekdays behind"


def test_svg_markup_is_inline_deterministic_and_ids_are_prefixed() -> None:
    view = _view()
    one, two = price_chart(view), price_chart(view)
    assert one == two  # fixed hash salt, no date: reports differ only where the data does
    assert one.startswith("<svg") and "<?xml" not in one and "<!DOCTYPE" not in one
    assert "<metadata" not in one and not re.findall(r"https?://", re.sub(r'xmlns(:xlink)?="[^"]+"', "", one))
    ids = re.findall(r'\bid="([^"]+)"', one)
    assert ids and all(i.startswith("price-acme-") for i in ids)
    for ref in re.findall(r'(?:url\(#|href="#)([^")]+)', one):
        assert ref in ids, ref  # every reference points at an id of the same chart
    assert "next 5-day forecast" in one and "80% band of backtest errors" in one
    assert one.count("<path") > 20
    bare = price_chart(_view(with_forecast=False))
    assert "next 5-day forecast" not in bare and "band" not in bare


def test_svg_markup_of_two_charts_shares_no_id() -> None:
    from matplotlib.figure import Figure

    def fig() -> Figure:
        f = Figure(figsize=(2, 2))
        f.subplots().plot([1, 2, 3], [3, 1, 2], marker="o")
        return f

    a, b = svg_markup(fig(), "a"), svg_markup(fig(), "b")
    assert not set(re.findall(r'\bid="([^"]+)"', a)) & set(re.findall(r'\bid="([^"]+)"', b))


def _data(decision: str = "naive stays: <b>no</b> model beats it") -> ReportData:
    accuracy = [{"ticker": "ACME", "as_of_date": date(2024, 3, 1), "target_date": date(2024, 3, 8),
                 "predicted_return": 0.01, "actual_return": -0.02, "return_error": 0.03, "predicted_close": 101.0,
                 "actual_close": 98.0, "direction_hit": False, "model": "ridge v3"}]
    board = [{"model": "naive", "cv_mase": 0.8, "mase": 0.9, "rel_mae": 1.0, "mae": 0.02, "dir_acc": None,
              "up_rate": 0.55, "always_up_acc": 0.55, "ic": None, "dm_stat": None, "dm_pvalue": float("nan"),
              "n_obs": 40, "period": "2024-01-05 .. 2024-03-01", "model_version": "3", "is_candidate": False,
              "is_champion": True, "run_id": "r1"},
             {"model": "ridge", "cv_mase": 0.7, "mase": 0.95, "rel_mae": 1.05, "mae": 0.021, "dir_acc": 0.51,
              "up_rate": 0.55, "always_up_acc": 0.55, "ic": 0.02, "dm_stat": 0.4, "dm_pvalue": 0.69, "n_obs": 40,
              "period": "2024-01-05 .. 2024-03-01", "model_version": "", "is_candidate": True,
              "is_champion": False, "run_id": "r2"}]
    lineage = Lineage(reads=[TableRead("features.fct_daily_features", 123456789, datetime(2024, 3, 9, tzinfo=UTC),
                                       60),
                             TableRead("raw.quotes", None, None, 0, exists=False)],
                      model_registry_name="stock_forecaster", model_name="naive", model_version="3", run_id="abc123",
                      selection_trained_at=datetime(2024, 3, 9, tzinfo=UTC), mlflow_ui="http://127.0.0.1:5000",
                      tracking="MLflow server http://127.0.0.1:5000", catalog_ui="http://127.0.0.1:8181")
    return ReportData(
        generated_at=datetime(2024, 3, 11, 8, 10, tzinfo=UTC), mode="services", newest_trade_date=date(2024, 3, 8),
        tickers=[_view("ACME"), _view("ZED", with_forecast=False)],
        freshness=[{"ticker": "ACME", "last_raw": date(2024, 3, 8), "last_features": date(2024, 3, 8),
                    "loaded_at": None, "days_behind": 0, "forecast_as_of": date(2024, 3, 8), "age_days": 3,
                    "status": "current"},
                   {"ticker": "ZED", "last_raw": date(2024, 3, 6), "last_features": date(2024, 3, 6),
                    "loaded_at": None, "days_behind": 2, "forecast_as_of": None, "age_days": 5,
                    "status": "2 weekdays behind"}],
        leaderboard=board, decision=decision, accuracy=accuracy,
        accuracy_summary=[{"ticker": "ACME", "n": 1, "mae": 0.03, "hit_rate": 0.0, "up_rate": 0.0}],
        lineage=lineage, notes=[], charted_limit=1,
        backtest_summary=[{"ticker": "ACME", "n": 52, "first": date(2023, 3, 3), "last": date(2024, 3, 1),
                           "mae": 0.031, "hit_rate": None, "up_rate": 0.54}],
    )


def test_html_page_has_every_section_escaped_text_and_links_only_to_running_servers() -> None:
    html = render_html(_data())
    assert "Content-Security-Policy" in html and "<script" not in html
    for anchor in ('id="forecasts"', 'id="leaderboard"', 'id="accuracy"', 'id="freshness"', 'id="lineage"',
                   'id="t-ACME"', 'id="t-ZED"'):
        assert anchor in html, anchor
    assert html.count("<svg") == 2  # ACME's price chart (charted_limit=1) and the live errors chart
    assert "Chart left out" in html  # ZED: past the limit, said so
    assert "&lt;b&gt;no&lt;/b&gt;" in html and "<b>no</b>" not in html  # text is escaped, charts are not
    assert ">naive (baseline)<" in html and "champion v3" in html and "candidate" in html
    assert 'data-snapshot="123456789"' in html and "no table" in html
    assert 'href="http://127.0.0.1:5000/#/runs/abc123"' in html
    assert 'href="http://127.0.0.1:5000/#/models/stock_forecaster/versions/3"' in html
    assert 'href="http://127.0.0.1:8181/ui/namespaces/features/tables/fct_daily_features"' in html
    assert "2 weekdays behind" in html and "+3.00%" in html
    assert 'id="backtest-summary"' in html and "0.0310" in html and "54%" in html


def test_html_without_servers_has_no_links() -> None:
    data = _data()
    data.lineage.mlflow_ui = data.lineage.catalog_ui = None
    html = render_html(data)
    assert "/#/runs/" not in html and "/ui/namespaces" not in html and 'id="mlflow-run">abc123<' in html


def test_num_prints_a_dash_for_missing_values() -> None:
    assert num(None) == num(float("nan")) == num(float("inf")) == "-"
    assert num(0.12345) == "0.123" and num(0.031, "{:+.1%}") == "+3.1%"


def test_writes_are_atomic_and_old_dated_copies_are_pruned(tmp_path) -> None:
    for i in range(KEEP_DATED + 3):
        (tmp_path / f"2024-01-01T{i:06d}Z.html").write_text("x")
    _write_atomic(tmp_path / LATEST, "<html>new</html>")
    _prune(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert LATEST in names and len(names) == KEEP_DATED + 1
    assert "2024-01-01T000000Z.html" not in names  # the oldest went
    assert not [n for n in names if n.endswith(".tmp")]
    assert (tmp_path / LATEST).read_text() == "<html>new</html>"


def test_error_chart_only_when_forecasts_were_scored() -> None:
    assert error_chart([]) is None
    svg = error_chart([{"ticker": "A", "as_of_date": date(2024, 3, 1), "predicted_return": 0.01,
                        "actual_return": -0.02}])
    assert svg.startswith("<svg") and "predicted" in svg and "realized" in svg


def test_serving_model_is_the_newest_forecasts_else_the_newest_champion() -> None:
    from lakehouse.report.read import serving_model

    preds = pd.DataFrame({"as_of_date": pd.to_datetime(["2024-03-01", "2024-03-08", "2024-03-08"]),
                          "created_at": pd.to_datetime(["2024-03-02", "2024-03-09", "2024-03-10"]),
                          "model_name": ["naive", "naive", "ridge"]})
    metrics = pd.DataFrame({"trained_at": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-02-01"]),
                            "model_name": ["drift", "hist_gbr", "naive"], "is_champion": [True, True, False]})
    assert serving_model(preds, metrics) == "ridge"
    assert serving_model(preds.iloc[0:0], metrics) == "hist_gbr"
    assert serving_model(preds.iloc[0:0], metrics.iloc[0:0]) is None


def test_backtest_summary_scores_the_recent_realized_forecasts() -> None:
    from lakehouse.report.sections import backtest_summary

    rows = pd.DataFrame({
        "ticker": ["A", "A", "A", "A", "B"],
        "as_of_date": pd.to_datetime(["2023-01-06", "2024-01-05", "2024-01-12", "2024-01-19", "2024-01-05"]),
        "predicted_return": [0.5, 0.01, -0.02, 0.0, 0.0], "actual_return": [-0.5, 0.03, 0.01, 0.02, -0.01],
    })
    got = {r["ticker"]: r for r in backtest_summary(rows, pd.Timestamp("2024-01-01"))}
    a = got["A"]  # the 2023 row is outside the window
    assert a["n"] == 3 and a["mae"] == pytest.approx((0.02 + 0.03 + 0.02) / 3)
    assert a["hit_rate"] == pytest.approx(0.5) and a["up_rate"] == pytest.approx(1.0)  # rows with both moves
    assert got["B"]["hit_rate"] is None and got["B"]["up_rate"] == 0.0  # naive-like: no predicted move
    assert backtest_summary(rows.iloc[0:0], pd.Timestamp("2024-01-01")) == []


def test_links_to_a_tracking_server_carry_no_credentials() -> None:
    """The report is a file people share: a `[mlflow] tracking_uri` with `user:password@` must not end up
    in its links or text."""
    from lakehouse.report.sections import _without_credentials

    assert _without_credentials("http://bob:s3cr%40t@mlflow.example:5000/base") == "http://mlflow.example:5000/base"
    assert _without_credentials("https://mlflow.example") == "https://mlflow.example"
    assert _without_credentials("databricks") == "databricks"

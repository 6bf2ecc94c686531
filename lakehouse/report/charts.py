"""The report's charts as inline SVG, drawn by matplotlib's SVG backend.

Inline SVG keeps the report one file that opens offline (no charting library, no CDN, no script),
and matplotlib is already how the ML stage draws its MLflow figures. Text stays text
(``svg.fonttype = none``: smaller files, selectable labels), the output is deterministic (fixed hash
salt, no date metadata), and every id inside one chart gets the chart's own prefix so several charts
in one HTML page never share an id.
"""

from __future__ import annotations

import io
import re

import matplotlib
import pandas as pd
from matplotlib.figure import Figure  # a Figure with no pyplot: no global state, no display needed

from lakehouse.report.sections import BAND_QUANTILES, TickerView

_RC = {"svg.fonttype": "none", "svg.hashsalt": "lakehouse-report", "font.size": 9,
       "axes.spines.top": False, "axes.spines.right": False}

PRICE = "#1f3b5c"
FORECAST = "#d9480f"
BAND = "#f4a261"
BACKTEST = "#2a9d8f"
LIVE = "#7b2cbf"

#: No <metadata> block (creator URL, date): the page names nothing outside itself and is deterministic.
_NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
_ID = re.compile(r'(\bid="|url\(#|href="#)([A-Za-z_][\w.:-]*)')


def svg_markup(fig: Figure, prefix: str) -> str:
    """The figure as an ``<svg>`` element to inline in HTML: no XML prolog, ids prefixed with ``prefix``."""
    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata=_NO_METADATA)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    return _ID.sub(lambda m: f"{m[1]}{prefix}-{m[2]}", text).strip()


def _band_percent() -> int:
    lo, hi = BAND_QUANTILES
    return round(100 * (hi - lo))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def price_chart(view: TickerView) -> str:
    """Last year of adjusted closes, the next 5-day forecast with its error band, and past forecasts
    (the serving model's backtest and live ones) at their target dates against the realized line."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(9, 3.1), dpi=72)
        fig.subplots_adjust(left=0.075, right=0.985, bottom=0.09, top=0.88)  # fixed: one draw, charts align
        ax = fig.subplots()
        ax.plot(view.prices["trade_date"], view.prices["adj_close"], color=PRICE, lw=1.2, label="adjusted close")
        bt = view.backtest_points
        if len(bt):
            ax.scatter(bt["target_date"], bt["predicted_close"], s=10, color=BACKTEST, zorder=3,
                       label="backtest forecast (weekly, point in time)")
        live = view.live_points
        if len(live):
            ax.scatter(live["target_date"], live["predicted_close"], s=26, marker="D", color=LIVE, zorder=4,
                       label="live forecast, scored")
        fc = view.forecast
        if len(fc) and view.last_close is not None:
            anchor = pd.Timestamp(view.as_of_date) if view.as_of_date else view.prices["trade_date"].iloc[-1]
            xs = [anchor, *pd.to_datetime(fc["target_date"])]
            ax.plot(xs, [view.last_close, *fc["predicted_close"]], color=FORECAST, lw=1.6, marker="o", ms=2.5,
                    label="next 5-day forecast")
            if fc["lower"].notna().all() and view.band is not None:
                ax.fill_between(xs, [view.last_close, *fc["lower"]], [view.last_close, *fc["upper"]],
                                color=BAND, alpha=0.35, lw=0,
                                label=f"{_band_percent()}% band of backtest errors")
        ax.set_ylabel(f"{view.ticker} adjusted close")
        ax.grid(alpha=0.25)
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=5, fontsize=7.5, frameon=False,
                  handlelength=1.5, columnspacing=1.2)
        return svg_markup(fig, f"price-{_slug(view.ticker)}")


def error_chart(rows: list[dict]) -> str | None:
    """Scored live forecasts: predicted against realized 5-day return per forecast, newest right."""
    if not rows:
        return None
    df = pd.DataFrame(rows).sort_values(["as_of_date", "ticker"])
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(9, 2.8), dpi=72)
        fig.subplots_adjust(left=0.075, right=0.985, bottom=0.3, top=0.88)
        ax = fig.subplots()
        labels = [f"{r.ticker} {r.as_of_date:%m-%d}" for r in df.itertuples()]
        x = range(len(df))
        ax.bar([i - 0.2 for i in x], df["predicted_return"] * 100, width=0.4, color=FORECAST, label="predicted")
        ax.bar([i + 0.2 for i in x], df["actual_return"] * 100, width=0.4, color=PRICE, label="realized")
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_ylabel("5-day return, %")
        ax.set_xticks(list(x), labels, rotation=60, ha="right", fontsize=7)
        ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, fontsize=7.5, frameon=False)
        ax.grid(axis="y", alpha=0.25)
        return svg_markup(fig, "live-errors")

"""Human-readable outputs of the ML stages: plots and tables."""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure  # Agg canvas, no pyplot state, no display needed
from rich.table import Table


def backtest_plot(rows: pd.DataFrame, tickers: list[str], model: str, holdout_start) -> Figure:  # noqa: ANN001
    """Predicted vs realized 5-day return over the backtest, one panel per ticker, the holdout shaded.

    One figure for all tickers: rendering is most of the cost, and one PNG renders once.
    """
    fig = Figure(figsize=(10, 2.2 * len(tickers) + 0.5), dpi=72)
    axes = fig.subplots(len(tickers), 1, squeeze=False, sharex=True)[:, 0]
    for ax, ticker in zip(axes, tickers, strict=True):
        d = rows[rows["ticker"] == ticker].sort_values("as_of_date")
        ax.plot(d["as_of_date"], d["actual_return"], label="realized", lw=0.6, color="black")
        ax.plot(d["as_of_date"], d["predicted_return"], label=f"{model}", lw=0.9, color="tab:blue")
        ax.axvspan(holdout_start, d["as_of_date"].max(), alpha=0.12, color="tab:orange")
        ax.axhline(0, lw=0.5, color="grey")
        ax.set_ylabel(ticker)
    axes[0].set_title(f"{model}: point-in-time weekly forecasts of the 5-day return (holdout shaded)")
    axes[0].legend(loc="upper left")
    axes[-1].set_xlabel("as-of date")
    return fig


def _fmt(v: float, fmt: str = "{:.3f}") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


#: (column title, score, format) of the holdout table.
_COLUMNS = (
    ("MASE", "mase", "{:.3f}"), ("rel MAE", "rel_mae", "{:.3f}"), ("dir acc", "dir_acc", "{:.3f}"),
    ("up rate", "up_rate", "{:.3f}"), ("IC", "ic", "{:+.3f}"), ("IC t", "ic_tstat", "{:+.2f}"),
    ("rank IC", "rank_ic", "{:+.3f}"), ("DM", "dm_stat", "{:+.2f}"), ("DM p", "dm_pvalue", "{:.3f}"),
    ("n", "n_obs", "{:.0f}"),
)


def holdout_table(scores: dict[str, dict[str, dict]], candidate: str | None, champion: str, title: str) -> Table:
    """Models x holdout scores (cv MASE first: what the selection saw), candidate and champion marked."""
    table = Table(title=title)
    table.add_column("model")
    table.add_column("cv MASE", justify="right")
    for head, _, _ in _COLUMNS:
        table.add_column(head, justify="right")
    table.add_column("")
    order = sorted(scores, key=lambda m: (math.isnan(scores[m]["cv"]["mase"]), scores[m]["cv"]["mase"]))
    for m in order:
        h = scores[m]["holdout"]
        marks = [x for x, on in (("candidate", m == candidate), ("[bold green]champion[/]", m == champion)) if on]
        table.add_row(m, _fmt(scores[m]["cv"]["mase"]), *(_fmt(h[k], f) for _, k, f in _COLUMNS), " ".join(marks))
    table.caption = ("returns per ticker, tickers equally weighted; rel MAE vs naive on the same rows; dir acc vs "
                     "up rate (its base rate); DM: Diebold-Mariano vs naive, Newey-West, two-sided p")
    return table


def forecast_table(rows: pd.DataFrame, title: str, max_tickers: int = 30) -> Table:
    """Next-week forecast: one row per ticker (the first ``max_tickers``), one column per target date
    (days 1-4 are interpolated on the path to the 5-day forecast), and the model that served it."""
    as_of = sorted({str(d) for d in rows["as_of_date"]})
    one_day = len(as_of) == 1
    table = Table(title=f"{title}\nas of {as_of[0]}" if one_day else title)
    table.add_column("ticker")
    if not one_day:
        table.add_column("as of", justify="right")
    table.add_column("last close", justify="right")
    dates = sorted(rows["target_date"].unique())
    for d in dates:
        table.add_column(pd.Timestamp(d).strftime("%a %m-%d"), justify="right")
    table.add_column("5d return", justify="right")
    table.add_column("model")
    groups = list(rows.groupby("ticker", sort=True))
    if len(groups) > max_tickers:
        table.caption = f"{len(groups) - max_tickers} more tickers in ml.predictions"
    for ticker, g in groups[:max_tickers]:
        by_date = dict(zip(g["target_date"], g["predicted_close"], strict=True))
        r5 = g.loc[g["horizon_days"].idxmax(), "predicted_return"]
        table.add_row(
            ticker, *([] if one_day else [str(g["as_of_date"].iloc[0])]), f"{g['last_close'].iloc[0]:.2f}",
            *(f"{by_date[d]:.2f}" if d in by_date else "" for d in dates), f"{r5:+.2%}",
            f"{g['model_name'].iloc[0]} v{g['model_version'].iloc[0]}",
        )
    return table

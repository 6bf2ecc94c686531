"""The "Stock forecasts" dashboard as data: its database, datasets, charts, layout and ticker filter.

Everything Superset shows is declared here and turned into Superset's import format by ``bundle.py``;
nothing is clicked together in the UI. Datasets are the dbt marts (``dbt_dwh/models/marts``) as
tables, plus three virtual datasets (SQL over the marts) where a chart needs rows no mart has in
that shape: the price line with the forecast continuing it, the last two years of weekly returns,
and the realized backtest forecasts. The marts already hold every figure (the backtest's predicted
and realized returns are in ``mart_forecast_vs_actual``), so no mart was added for the dashboard.

Metrics are ``Metric(label, template, column)``: ``template`` is an aggregate SQL expression with
``{c}`` for the one dataset column it reads, so a test can check every column a chart uses against
the dataset (the dbt YAML for tables, ``columns`` for virtual datasets) without parsing SQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

#: Namespace of the uuids of every provisioned object: the same name gives the same uuid on every
#: start, which is what makes re-provisioning an update instead of a second copy.
NAMESPACE = uuid.UUID("6f0c1b3e-5d4a-4e8b-9a57-1c0de7a5e001")
SCHEMA = "marts"


def stable_uuid(kind: str, name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{name}"))


@dataclass(frozen=True)
class Database:
    """The ClickHouse front, reached with the read-only dashboard account."""

    name: str = "Lakehouse marts (ClickHouse)"

    @property
    def uuid(self) -> str:
        return stable_uuid("database", self.name)


@dataclass(frozen=True)
class Dataset:
    """A mart (``table``) or SQL over the marts (``sql``, exposing ``columns``)."""

    name: str
    table: str | None = None
    sql: str | None = None
    columns: tuple[str, ...] = ()
    main_dttm_col: str | None = None
    description: str = ""

    @property
    def uuid(self) -> str:
        return stable_uuid("dataset", self.name)

    @property
    def is_virtual(self) -> bool:
        return self.sql is not None


@dataclass(frozen=True)
class Metric:
    label: str
    template: str  # aggregate SQL with {c} for ``column``
    column: str

    @property
    def sql(self) -> str:
        return self.template.format(c=self.column)


@dataclass(frozen=True)
class Chart:
    """One chart: Superset's ``viz_type``, its dataset, what it reads, and its place (width of 12, height)."""

    name: str
    viz_type: str
    dataset: str
    metrics: tuple[Metric, ...] = ()
    columns: tuple[str, ...] = ()  # raw-mode table columns, or group-by columns of an aggregate
    x_axis: str | None = None
    time_grain: str | None = None
    filters: tuple[tuple[str, str, object], ...] = ()  # (column, operator, value): == IS TRUE IS NOT NULL
    order_by: tuple[tuple[str, bool], ...] = ()  # (column, ascending) for raw tables
    row_limit: int = 10000
    width: int = 6
    height: int = 50
    in_ticker_filter: bool = True
    options: dict = field(default_factory=dict)  # extra form data of the viz type (bubble: entity, series)

    @property
    def uuid(self) -> str:
        return stable_uuid("chart", self.name)

    def used_columns(self) -> set[str]:
        """Every dataset column the chart reads."""
        used = {m.column for m in self.metrics} | set(self.columns) | {f[0] for f in self.filters}
        used |= {c for c, _ in self.order_by}
        if self.x_axis:
            used.add(self.x_axis)
        for key in ("entity", "series"):
            if key in self.options:
                used.add(self.options[key])
        return used


@dataclass(frozen=True)
class Dashboard:
    title: str
    slug: str
    rows: tuple[tuple[str, ...], ...]  # chart names, row by row
    filter_dataset: str
    filter_column: str

    @property
    def uuid(self) -> str:
        return stable_uuid("dashboard", self.slug)


DATABASE = Database()

_LAST_YEAR_OF_PRICES = """
with last_day as (
    select ticker, max(trade_date) as last_date
    from marts.mart_daily_prices
    group by ticker
),
latest as (
    select ticker, as_of_date, base_close
    from marts.mart_latest_forecast
    where as_of_date is not null
)
select p.ticker as ticker, toDate32(p.trade_date) as trade_date, p.adj_close as adj_close,
    p.sma_50 as sma_50, p.sma_200 as sma_200,
    cast(null as Nullable(Float64)) as forecast_close
from marts.mart_daily_prices as p
inner join last_day as d on d.ticker = p.ticker
where p.trade_date >= d.last_date - 365
union all
-- the forecast starts at the close it was made from, so its line continues the price line
select l.ticker, toDate32(l.as_of_date), null, null, null, l.base_close
from latest as l
union all
select f.ticker, toDate32(assumeNotNull(f.target_date)), null, null, null, f.predicted_close
from marts.mart_forecast_vs_actual as f
inner join latest as l on l.ticker = f.ticker and l.as_of_date = f.as_of_date
where f.forecast_source = 'live' and f.target_date is not null
""".strip()

_RECENT_WEEKS = """
select w.ticker as ticker, w.week_start as week_start, w.weekly_return * 100 as weekly_return_pct,
    w.volatility as volatility
from marts.mart_weekly_summary as w
inner join (
    select ticker, max(week_start) as last_week from marts.mart_weekly_summary group by ticker
) as l on l.ticker = w.ticker
where w.week_start > l.last_week - 731 and w.weekly_return is not null
""".strip()

_BACKTEST = """
select ticker, model_name, as_of_date, target_date, predicted_return * 100 as predicted_return_pct,
    actual_return * 100 as realized_return_pct, abs(return_error) * 100 as abs_error_pct,
    direction_hit, actual_return > 0 as went_up
from marts.mart_forecast_vs_actual
where forecast_source = 'backtest' and is_realized and horizon_days = 5
""".strip()

DATASETS: tuple[Dataset, ...] = (
    Dataset("mart_daily_prices", table="mart_daily_prices", main_dttm_col="trade_date"),
    Dataset("mart_latest_forecast", table="mart_latest_forecast"),
    Dataset("mart_weekly_summary", table="mart_weekly_summary", main_dttm_col="week_start"),
    Dataset("mart_forecast_vs_actual", table="mart_forecast_vs_actual", main_dttm_col="as_of_date"),
    Dataset("mart_model_leaderboard", table="mart_model_leaderboard"),
    Dataset("ticker_overview", table="ticker_overview"),
    Dataset(
        "price_last_year_and_forecast", sql=_LAST_YEAR_OF_PRICES, main_dttm_col="trade_date",
        columns=("ticker", "trade_date", "adj_close", "sma_50", "sma_200", "forecast_close"),
        description="The last 365 days of adjusted closes with SMA 50/200, then the latest 5-day forecast "
                    "starting from the close it was made from.",
    ),
    Dataset(
        "weekly_returns_last_2y", sql=_RECENT_WEEKS, main_dttm_col="week_start",
        columns=("ticker", "week_start", "weekly_return_pct", "volatility"),
        description="Week-over-week returns (%) of each ticker's last two years.",
    ),
    Dataset(
        "backtest_realized", sql=_BACKTEST, main_dttm_col="as_of_date",
        columns=("ticker", "model_name", "as_of_date", "target_date", "predicted_return_pct",
                 "realized_return_pct", "abs_error_pct", "direction_hit", "went_up"),
        description="Every backtest 5-day forecast whose outcome is known: predicted and realized return (%).",
    ),
)

CHARTS: tuple[Chart, ...] = (
    Chart(
        "Adjusted close, SMA 50/200 and the 5-day forecast", "echarts_timeseries_line",
        "price_last_year_and_forecast", x_axis="trade_date", time_grain="P1D",
        metrics=(Metric("Adjusted close", "max({c})", "adj_close"), Metric("SMA 50", "max({c})", "sma_50"),
                 Metric("SMA 200", "max({c})", "sma_200"),
                 Metric("Forecast", "max({c})", "forecast_close")),
        columns=("ticker",), width=12, height=60,
        options={"truncateYAxis": True, "y_axis_bounds": [None, None]},
    ),
    Chart(
        "Latest forecast", "table", "mart_latest_forecast",
        columns=("ticker", "last_close", "forecast_close", "expected_change_pct", "model_name", "as_of_date",
                 "target_date"),
        order_by=(("ticker", True),), width=5, height=45,
        options={"column_config": {c: {"d3NumberFormat": ",.2f"}
                                   for c in ("last_close", "forecast_close", "expected_change_pct")}},
    ),
    Chart(
        "Weekly returns, last 2 years (%)", "echarts_timeseries_bar", "weekly_returns_last_2y",
        x_axis="week_start", time_grain="P1W", metrics=(Metric("Weekly return %", "sum({c})", "weekly_return_pct"),),
        columns=("ticker",), width=7, height=45,
    ),
    Chart(
        "Backtest: predicted vs realized 5-day return (%)", "bubble_v2", "backtest_realized",
        metrics=(Metric("Predicted 5-day return %", "avg({c})", "predicted_return_pct"),
                 Metric("Realized 5-day return %", "avg({c})", "realized_return_pct"),
                 Metric("Forecasts", "count({c})", "as_of_date")),
        options={"entity": "as_of_date", "series": "model_name"}, width=6, height=55,
    ),
    Chart(
        "Backtest: absolute 5-day return error by month (%)", "echarts_timeseries_line", "backtest_realized",
        x_axis="as_of_date", time_grain="P1M", metrics=(Metric("Mean absolute error %", "avg({c})", "abs_error_pct"),),
        columns=("model_name",), width=6, height=55,
    ),
    Chart(
        "Backtest: direction hits against the base rate (%)", "echarts_timeseries_bar", "backtest_realized",
        x_axis="model_name",
        metrics=(Metric("Direction hit rate %", "avg(toUInt8({c})) * 100", "direction_hit"),
                 Metric("Base rate: share of up moves %", "avg(toUInt8({c})) * 100", "went_up")),
        filters=(("direction_hit", "IS NOT NULL", None),), width=4, height=50,
    ),
    Chart(
        "Model leaderboard (holdout; naive is the baseline)", "table", "mart_model_leaderboard",
        columns=("rank", "model_name", "is_champion", "holdout_mase", "holdout_rel_mae", "holdout_dir_acc",
                 "holdout_up_rate", "holdout_dm_pvalue", "backtest_mae", "n_backtest_realized"),
        order_by=(("rank", True),), width=8, height=50, in_ticker_filter=False,
        options={"column_config": {c: {"d3NumberFormat": ",.3f"}
                                   for c in ("holdout_mase", "holdout_rel_mae", "holdout_dir_acc", "holdout_up_rate",
                                             "holdout_dm_pvalue", "backtest_mae")}},
    ),
)

DASHBOARD = Dashboard(
    title="Stock forecasts",
    slug="stock-forecasts",
    rows=(
        (CHARTS[0].name,),
        (CHARTS[1].name, CHARTS[2].name),
        (CHARTS[3].name, CHARTS[4].name),
        (CHARTS[5].name, CHARTS[6].name),
    ),
    filter_dataset="mart_daily_prices",
    filter_column="ticker",
)


def dataset(name: str) -> Dataset:
    """The dataset called ``name`` (KeyError naming the known ones otherwise)."""
    for d in DATASETS:
        if d.name == name:
            return d
    raise KeyError(f"no dataset {name!r} (known: {', '.join(d.name for d in DATASETS)})")


def chart(name: str) -> Chart:
    for c in CHARTS:
        if c.name == name:
            return c
    raise KeyError(f"no chart {name!r}")

"""The lake's table contracts, declared once: name, columns, types, keys, partitioning, sort order.

Every other description of a lake table derives from this module or is checked against it:

- the pyiceberg schemas, partition specs and sort orders the writers create tables with
  (ingestion, the ML stages, the pipeline's state table): :meth:`TableContract.iceberg_schema` & co.;
- the Arrow schemas rows are cast to before a write: :meth:`TableContract.arrow_schema`;
- the ClickHouse column types ``dbt_dwh`` uses for a table the lake does not have yet:
  :meth:`TableContract.clickhouse_columns` (passed to dbt by ``lakehouse transform dwh``);
- the dbt ``sources`` and model YAML of both dbt projects and the tables dbt builds (DuckDB CTAS):
  compared with the contract by tests (``tests/unit/test_contracts.py`` and the build tests), which
  fail on any drift.

Types are a small vocabulary mapped to each engine: string, date, double, int, long, bool, timestamptz.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import pyarrow as pa

ColumnType = Literal["string", "date", "double", "int", "long", "bool", "timestamptz"]

_ARROW: dict[str, pa.DataType] = {
    "string": pa.string(), "date": pa.date32(), "double": pa.float64(), "int": pa.int32(), "long": pa.int64(),
    "bool": pa.bool_(), "timestamptz": pa.timestamp("us", tz="UTC"),
}
_CLICKHOUSE: dict[str, str] = {
    "string": "String", "date": "Date32", "double": "Float64", "int": "Int32", "long": "Int64", "bool": "Bool",
    "timestamptz": "DateTime64(6, 'UTC')",
}
#: DuckDB type names (``information_schema`` / ``DESCRIBE``) of each contract type.
DUCKDB: dict[str, str] = {
    "string": "VARCHAR", "date": "DATE", "double": "DOUBLE", "int": "INTEGER", "long": "BIGINT", "bool": "BOOLEAN",
    "timestamptz": "TIMESTAMP WITH TIME ZONE",
}


@dataclass(frozen=True)
class Column:
    """One column: name, contract type, whether it may be null, and what it means."""

    name: str
    type: ColumnType
    required: bool = False
    doc: str = ""


@dataclass(frozen=True)
class TableContract:
    """One lake table: ``namespace.name``, its columns, key, partitioning (``(column, transform)``
    with transform ``identity`` or ``year``) and sort order, and which part of the platform writes it."""

    identifier: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    partition: tuple[tuple[str, str], ...] = ()
    sort: tuple[str, ...] = ()
    writer: str = ""
    doc: str = ""
    #: Identifier fields declared in the Iceberg schema (pyiceberg needs them required and primitive).
    iceberg_identifier: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.identifier.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.identifier.split(".", 1)[1]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.identifier} has no column {name!r}")

    # Arrow ---------------------------------------------------------------------------------------
    @cached_property
    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of the contract (required columns non-nullable)."""
        return pa.schema([pa.field(c.name, _ARROW[c.type], nullable=not c.required) for c in self.columns])

    def to_arrow(self, rows: list[dict]) -> pa.Table:
        """Rows (dicts) as an Arrow table in the contract's schema."""
        return pa.Table.from_pylist(rows, schema=self.arrow_schema)

    # Iceberg -------------------------------------------------------------------------------------
    def iceberg_schema(self):  # noqa: ANN201 - pyiceberg is imported lazily
        """The pyiceberg ``Schema`` (field ids 1..n in column order)."""
        from pyiceberg.schema import Schema
        from pyiceberg.types import NestedField

        fields = [NestedField(i, c.name, _iceberg_type(c.type), required=c.required)
                  for i, c in enumerate(self.columns, start=1)]
        ids = [self.column_names.index(k) + 1 for k in self.key] if self.iceberg_identifier else []
        return Schema(*fields, identifier_field_ids=ids)

    def partition_spec(self):  # noqa: ANN201
        """The pyiceberg ``PartitionSpec`` (unpartitioned when the contract declares none)."""
        from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionField, PartitionSpec
        from pyiceberg.transforms import IdentityTransform, YearTransform

        if not self.partition:
            return UNPARTITIONED_PARTITION_SPEC
        transforms = {"identity": IdentityTransform, "year": YearTransform}
        fields = []
        for i, (col, transform) in enumerate(self.partition):
            name = col if transform == "identity" else f"{col}_{transform}"
            fields.append(PartitionField(source_id=self.column_names.index(col) + 1, field_id=1000 + i,
                                         transform=transforms[transform](), name=name))
        return PartitionSpec(*fields)

    def sort_order(self):  # noqa: ANN201
        """The pyiceberg ``SortOrder`` (unsorted when the contract declares none)."""
        from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortField, SortOrder
        from pyiceberg.transforms import IdentityTransform

        if not self.sort:
            return UNSORTED_SORT_ORDER
        return SortOrder(*(SortField(source_id=self.column_names.index(c) + 1, transform=IdentityTransform())
                           for c in self.sort))

    def create_kwargs(self) -> dict:
        """Keyword arguments for ``catalog.create_table(identifier, **kwargs)``."""
        return {"schema": self.iceberg_schema(), "partition_spec": self.partition_spec(),
                "sort_order": self.sort_order()}

    # ClickHouse ----------------------------------------------------------------------------------
    def clickhouse_columns(self) -> list[tuple[str, str]]:
        """``(name, type)`` as ClickHouse's Iceberg readers type them (``Nullable(...)`` unless required)."""
        return [(c.name, _CLICKHOUSE[c.type] if c.required else f"Nullable({_CLICKHOUSE[c.type]})")
                for c in self.columns]


def _iceberg_type(kind: str):  # noqa: ANN202
    from pyiceberg.types import (
        BooleanType,
        DateType,
        DoubleType,
        IntegerType,
        LongType,
        StringType,
        TimestamptzType,
    )

    return {"string": StringType, "date": DateType, "double": DoubleType, "int": IntegerType, "long": LongType,
            "bool": BooleanType, "timestamptz": TimestamptzType}[kind]()


def _c(name: str, type_: ColumnType, doc: str = "", required: bool = False) -> Column:
    return Column(name, type_, required, doc)


# raw (ingestion) -----------------------------------------------------------------------------------
RAW_QUOTES = TableContract(
    "raw.quotes",
    (
        _c("source", "string", "Quote source (sample, moex, yahoo, synthetic).", required=True),
        _c("ticker", "string", "Instrument symbol.", required=True),
        _c("trade_date", "date", "Trading day.", required=True),
        _c("open", "double", "Opening price as traded."),
        _c("high", "double", "High price as traded."),
        _c("low", "double", "Low price as traded."),
        _c("close", "double", "Closing price as traded."),
        _c("adj_close", "double", "Split/dividend-adjusted close (= close for sources without one)."),
        _c("volume", "double", "Shares traded as reported."),
        _c("currency", "string", "ISO 4217 currency code."),
        _c("loaded_at", "timestamptz", "When the load that wrote the row was written (stamped at its extract, or at "
           "its commit when the table had a newer commit by then: always newer than every earlier row)."),
        _c("load_id", "string", "dlt load id of the load that wrote the row."),
    ),
    key=("source", "ticker", "trade_date"),
    # one partition per source and calendar year: ~250 rows per ticker-year, so a year of 500 tickers is
    # one ~2-3 MB file; ticker/date pruning comes from min/max stats of files sorted by ticker, date
    partition=(("source", "identity"), ("trade_date", "year")),
    sort=("ticker", "trade_date"),
    writer="ingest",
    doc="One row per (source, ticker, trade_date); a re-load of a key replaces it (newest load wins).",
    iceberg_identifier=True,
)

RAW_QUOTES_REJECTED = TableContract(
    "raw.quotes_rejected",
    (
        _c("source", "string", "Quote source.", required=True),
        _c("ticker", "string", "Instrument symbol as requested.", required=True),
        _c("trade_date", "date", "Trading day, when the record had a readable one."),
        _c("reason", "string", "The first validation rule the record failed.", required=True),
        _c("raw_record", "string", "The source's original record as JSON.", required=True),
        _c("loaded_at", "timestamptz", "When the load was committed."),
        _c("load_id", "string", "dlt load id."),
    ),
    partition=(("source", "identity"),),
    writer="ingest",
    doc="Quarantined source records with the reason they were refused; nothing is dropped silently.",
)

RAW_DLT_LOADS = TableContract(
    "raw._dlt_loads",
    (
        _c("load_id", "string", "dlt load id.", required=True),
        _c("schema_name", "string", "dlt schema (the source name)."),
        _c("status", "string", "dlt load status (0 = loaded)."),
        _c("inserted_at", "timestamptz", "Commit time."),
        _c("schema_version_hash", "string", "dlt schema version."),
        _c("rows", "string", "Rows committed per table by the load."),
    ),
    writer="ingest",
    doc="dlt's load bookkeeping: one row per committed load package.",
)

# staging and features (dbt_lake) ------------------------------------------------------------------
STG_QUOTES = TableContract(
    "staging.stg_quotes",
    (
        _c("ticker", "string", "Instrument symbol."),
        _c("trade_date", "date", "Trading day."),
        _c("source", "string", "The source of the winning load."),
        _c("load_id", "string", "dlt load id of the winning row."),
        _c("open", "double", "Opening price as traded."),
        _c("high", "double", "High price as traded."),
        _c("low", "double", "Low price as traded."),
        _c("close", "double", "Closing price as traded."),
        _c("volume", "double", "Shares traded, as reported."),
        _c("currency", "string", "ISO 4217 currency code."),
        _c("adj_factor", "double", "adj_close / close."),
        _c("adj_open", "double", "open x adj_factor."),
        _c("adj_high", "double", "high x adj_factor."),
        _c("adj_low", "double", "low x adj_factor."),
        _c("adj_close", "double", "Split/dividend-adjusted close."),
        _c("adj_volume", "double", "volume / adj_factor."),
        _c("loaded_at", "timestamptz", "When the winning load was committed."),
    ),
    key=("ticker", "trade_date"),
    writer="transform-lake",
    doc="raw.quotes cleaned: one row per (ticker, trade_date), the newest load winning, with adjusted prices.",
)

FEATURE_COLUMNS: tuple[Column, ...] = (
    _c("ticker", "string", "Instrument symbol."),
    _c("trade_date", "date", "Trading day."),
    _c("close", "double", "Close as traded."),
    _c("adj_close", "double", "Adjusted close x_t."),
    _c("adj_factor", "double", "adj_close / close."),
    _c("volume", "double", "Shares traded as reported."),
    *(_c(n, "double") for n in (
        "ret_1d", "ret_5d", "ret_20d", "log_ret_1d", "log_ret_5d", "log_ret_20d", "vol_5d", "vol_20d", "vol_60d",
        "close_sma_5_ratio", "close_sma_20_ratio", "close_sma_50_ratio", "close_sma_200_ratio",
        "ema_12", "ema_26", "macd", "macd_signal", "rsi_14", "bb_pct_b_20", "volume_z_20", "atr_14",
    )),
    _c("day_of_week", "int", "ISO day of week, 1 = Monday."),
    _c("month", "int", "Month 1..12."),
    _c("days_since_listing", "int", "Calendar days since the ticker's first trade_date."),
    _c("target_close_5d", "double", "Adjusted close 5 trading days ahead (look-ahead: the target)."),
    _c("target_return_5d", "double", "target_close_5d / adj_close - 1 (look-ahead: the target)."),
)

FEATURES = TableContract(
    "features.fct_daily_features",
    FEATURE_COLUMNS,
    key=("ticker", "trade_date"),
    writer="transform-lake",
    doc="One row per ticker and trading day: features on adjusted prices (no look-ahead) and 5-day targets.",
)

# ml ------------------------------------------------------------------------------------------------
PREDICTIONS = TableContract(
    "ml.predictions",
    (
        _c("ticker", "string"), _c("as_of_date", "date", "Last trading day of the features the forecast used."),
        _c("target_date", "date", "The horizon_days-th session of the ticker's exchange after the as-of date."),
        _c("horizon_days", "int"),
        _c("is_interpolated", "bool", "Horizons 1-4 lie on the compounding path to the 5-day forecast: not a "
                                      "model output, never scored."),
        _c("predicted_close", "double"), _c("predicted_return", "double"), _c("last_close", "double"),
        _c("model_name", "string", "The model kind that served the forecast."), _c("model_version", "string"),
        _c("run_id", "string"), _c("feature_snapshot_id", "long"), _c("created_at", "timestamptz"),
    ),
    key=("ticker", "as_of_date", "horizon_days"),
    writer="predict",
    doc="Forecasts of the champion: one row per ticker, as-of date and horizon.",
)

PREDICTION_ACCURACY = TableContract(
    "ml.prediction_accuracy",
    (
        _c("ticker", "string"), _c("as_of_date", "date"), _c("target_date", "date"), _c("horizon_days", "int"),
        _c("is_interpolated", "bool", "Not a model output: kept out of the scores."),
        _c("predicted_return", "double"),
        _c("actual_return", "double", "adj_close on the target date / adj_close on the as-of date - 1, both from "
                                      "one snapshot (later re-adjustments cancel out)."),
        _c("return_error", "double", "predicted_return - actual_return."),
        _c("last_close", "double", "The as-of close the forecast started from."),
        _c("predicted_close", "double"),
        _c("actual_close", "double", "last_close x (1 + actual_return): the realized close on the forecast's "
                                     "price basis."),
        _c("error", "double", "predicted_close - actual_close."),
        _c("abs_pct_error", "double", "|error| / actual_close (a fraction)."),
        _c("direction_hit", "bool", "Predicted and realized moves have the same sign (null: no predicted move)."),
        _c("model_name", "string"), _c("model_version", "string"), _c("evaluated_at", "timestamptz"),
    ),
    key=("ticker", "as_of_date", "horizon_days"),
    writer="evaluate",
    doc="Live forecasts next to what happened, in returns on one price basis.",
)

BACKTEST_PREDICTIONS = TableContract(
    "ml.backtest_predictions",
    (
        _c("model_name", "string", "Model kind."), _c("ticker", "string"),
        _c("as_of_date", "date", "Last session of a week: the forecast uses data up to this day only."),
        _c("target_date", "date", "The horizon_days-th session of the ticker's exchange after the as-of date."),
        _c("horizon_days", "int"),
        _c("predicted_return", "double", "Forecast of the 5-day simple return."),
        _c("predicted_close", "double", "last_close x (1 + predicted_return)."),
        _c("last_close", "double", "Adjusted close on the as-of date."),
        _c("actual_return", "double", "adj_close on the target date / adj_close on the as-of date - 1, one "
                                      "snapshot; null until known."),
        _c("actual_close", "double", "Adjusted close on the target date (same snapshot); null until known."),
        _c("naive_scale", "double", "In-sample MAE of the naive 5-day forecast of the ticker over the fit's "
                                    "training window (the MASE scale); null with too little history."),
        _c("train_end_date", "date", "Newest target date among the fit's training rows."),
        _c("retrain_date", "date", "The scheduled refit date: only targets known before it were used."),
        _c("fit_key", "string", "Cache key of the fit: model, retrain date, training rows digest, code."),
        _c("run_id", "string", "The backtest run that first wrote this forecast."),
        _c("feature_snapshot_id", "long", "Features snapshot the forecast was computed from."),
        _c("created_at", "timestamptz"),
    ),
    key=("model_name", "ticker", "as_of_date"),
    sort=("model_name", "ticker", "as_of_date"),
    writer="backtest",
    doc="Point-in-time out-of-sample 5-day forecasts of every model for every ticker and week.",
)

MODEL_METRICS = TableContract(
    "ml.model_metrics",
    (
        _c("run_id", "string", "MLflow run of the model in this selection run."), _c("model_name", "string"),
        _c("model_version", "string", "Registered version (empty when this run registered none for the model)."),
        _c("split", "string", "cv (backtest forecasts before the holdout: model selection) or holdout."),
        _c("mase", "double", "Hyndman MASE in returns, per ticker, averaged over tickers."),
        _c("rel_mae", "double", "MAE / naive MAE on the same rows (naive = 1)."),
        _c("mae", "double", "Mean absolute error of the 5-day return, averaged over tickers."),
        _c("dir_acc", "double", "Share of same-sign moves (rows where both move)."),
        _c("up_rate", "double", "Share of up moves in the dir_acc rows: the base rate."),
        _c("always_up_acc", "double", "Accuracy of always predicting up (rows with a move)."),
        _c("ic", "double", "Pearson of predicted vs realized returns."), _c("ic_tstat", "double", "HAC t."),
        _c("rank_ic", "double", "Spearman of predicted vs realized returns."),
        _c("rank_ic_tstat", "double", "HAC t."),
        _c("dm_stat", "double", "Diebold-Mariano vs naive (negative: better)."),
        _c("dm_pvalue", "double", "Two-sided p-value of the DM statistic."),
        _c("n_obs", "int"), _c("n_tickers", "int"), _c("n_dates", "int"),
        _c("period_start", "date", "First as-of date of the split."), _c("period_end", "date"),
        _c("feature_snapshot_id", "long"), _c("backtest_snapshot_id", "long"),
        _c("trained_at", "timestamptz"),
        _c("is_candidate", "bool", "The model chosen on the cv split."),
        _c("is_champion", "bool", "The model kind holding the champion alias after this run."),
        _c("decision", "string", "The champion rule's decision and why."),
    ),
    writer="train",
    doc="Scores of every model per selection run and split, in return units, with significance.",
)

# pipeline ------------------------------------------------------------------------------------------
STAGE_RUNS = TableContract(
    "pipeline.stage_runs",
    (
        _c("stage", "string", "Stage name in the pipeline graph.", required=True),
        _c("fingerprint", "string", "sha256 of what the stage consumed: inputs, code, config.", required=True),
        _c("inputs", "string", "JSON: asset -> version read (Iceberg snapshot id, model version, ...)."),
        _c("outputs", "string", "JSON: asset -> version after the stage."),
        _c("code", "string", "JSON: file -> sha256 of the stage's code and project files."),
        _c("config", "string", "JSON: the config values the stage depends on (secrets hashed)."),
        _c("detail", "string", "The stage's one-line result."),
        _c("run_id", "string", "Id of the pipeline run (one `lakehouse run`, or one Airflow task)."),
        _c("started_at", "timestamptz"),
        _c("finished_at", "timestamptz"),
        _c("seconds", "double"),
    ),
    writer="pipeline",
    doc="One row per successful stage execution: the fingerprints `lakehouse run` compares, and lineage.",
)

#: Every lake table, by identifier.
CONTRACTS: dict[str, TableContract] = {c.identifier: c for c in (
    RAW_QUOTES, RAW_QUOTES_REJECTED, RAW_DLT_LOADS, STG_QUOTES, FEATURES, PREDICTIONS, PREDICTION_ACCURACY,
    BACKTEST_PREDICTIONS, MODEL_METRICS, STAGE_RUNS,
)}


def contract(identifier: str) -> TableContract:
    """The contract of lake table ``identifier`` (``namespace.table``); KeyError naming the known ones."""
    try:
        return CONTRACTS[identifier]
    except KeyError:
        raise KeyError(f"no contract for lake table {identifier!r} (known: {', '.join(CONTRACTS)})") from None


def ensure_table(catalog, identifier: str):  # noqa: ANN001, ANN201
    """Load lake table ``identifier``, creating its namespace and the table from its contract if needed."""
    from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError

    c = contract(identifier)
    if catalog.table_exists(identifier):
        return catalog.load_table(identifier)
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(c.namespace)
    try:
        return catalog.create_table(identifier, **c.create_kwargs())
    except TableAlreadyExistsError:  # created concurrently
        return catalog.load_table(identifier)

"""What the run report shows, read from the lake in one pass: every table pinned to its snapshot
that was current when it was loaded (one after another), so its numbers and its lineage section agree.

Reads go through pyiceberg (``scan(snapshot_id=...)`` to Arrow, then pandas for the small per-ticker
frames): the report reads a few columns of six tables and needs no SQL engine, and pyiceberg holds no
file lock, so a report can run while another process writes the lake (DuckDB's single-writer rule
does not apply). Only the features table is required; a lake without ML tables yet still gets a
report of prices and freshness, each missing part saying which command fills it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression, EqualTo

from lakehouse import contracts
from lakehouse.config import Config

FEATURES = contracts.FEATURES.identifier
RAW_QUOTES = contracts.RAW_QUOTES.identifier
BACKTEST = contracts.BACKTEST_PREDICTIONS.identifier
METRICS = contracts.MODEL_METRICS.identifier
PREDICTIONS = contracts.PREDICTIONS.identifier
ACCURACY = contracts.PREDICTION_ACCURACY.identifier


class ReportUnavailable(RuntimeError):
    """The lake holds nothing to report on yet; the message says which command fills it."""


@dataclass(frozen=True)
class TableRead:
    """One lake table as the report read it: the snapshot (None: table missing or empty) and rows read."""

    identifier: str
    snapshot_id: int | None
    committed_at: datetime | None
    rows: int
    exists: bool = True


def _read(catalog: Catalog, identifier: str, columns: tuple[str, ...], reads: list[TableRead],
          required: bool = False, row_filter: BooleanExpression | None = None) -> pd.DataFrame:
    """``columns`` of ``identifier`` at its current snapshot (recorded in ``reads``); empty when missing."""
    try:
        tbl = catalog.load_table(identifier)
    except NoSuchTableError:
        if required:
            raise ReportUnavailable(f"the lake has no table {identifier} yet: run `lakehouse run` first") from None
        reads.append(TableRead(identifier, None, None, 0, exists=False))
        return pd.DataFrame(columns=list(columns))
    snap = tbl.current_snapshot()
    if snap is None:
        reads.append(TableRead(identifier, None, None, 0))
        return pd.DataFrame(columns=list(columns))
    have = {f.name for f in tbl.schema().fields}
    scan = tbl.scan(snapshot_id=snap.snapshot_id, selected_fields=tuple(c for c in columns if c in have),
                    row_filter=row_filter if row_filter is not None else AlwaysTrue())
    arrow = scan.to_arrow()
    df = arrow.to_pandas()
    for c in columns:  # a column an older table lacks reads as null
        if c not in df.columns:
            df[c] = None
    reads.append(TableRead(identifier, snap.snapshot_id, datetime.fromtimestamp(snap.timestamp_ms / 1000, UTC),
                           len(df)))
    return df


def _dates(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    for c in cols:
        df[c] = pd.to_datetime(df[c])
    return df


def read_lake(cfg: Config, catalog: Catalog) -> dict[str, pd.DataFrame | list[TableRead]]:
    """The columns the report needs of every table it shows, each at its current snapshot."""
    reads: list[TableRead] = []
    out: dict = {"reads": reads}
    out["features"] = _dates(_read(catalog, FEATURES, ("ticker", "trade_date", "adj_close"), reads, required=True),
                             "trade_date")
    if out["features"].empty:
        raise ReportUnavailable(f"{FEATURES} is empty: the lake has no prices yet; run `lakehouse run` first")
    out["quotes"] = _dates(_read(catalog, RAW_QUOTES, ("ticker", "trade_date", "loaded_at"), reads), "trade_date")
    out["predictions"] = _dates(_read(catalog, PREDICTIONS, (
        "ticker", "as_of_date", "target_date", "horizon_days", "predicted_close", "predicted_return", "last_close",
        "model_name", "model_version", "run_id", "created_at"), reads), "as_of_date", "target_date")
    out["metrics"] = _read(catalog, METRICS, tuple(contracts.MODEL_METRICS.column_names), reads)
    out["serving"] = serving_model(out["predictions"], out["metrics"])
    # only the serving model's backtest rows: the other models' would be most of the table, and unused
    out["backtest"] = _dates(_read(catalog, BACKTEST, (
        "model_name", "ticker", "as_of_date", "target_date", "predicted_return", "predicted_close",
        "actual_return", "actual_close"), reads, row_filter=EqualTo("model_name", out["serving"] or "")),
        "as_of_date", "target_date")
    out["accuracy"] = _dates(_read(catalog, ACCURACY, (
        "ticker", "as_of_date", "target_date", "horizon_days", "is_interpolated", "predicted_return",
        "actual_return", "return_error", "predicted_close", "actual_close", "direction_hit", "model_name",
        "model_version"), reads), "as_of_date", "target_date")
    return out


def serving_model(predictions: pd.DataFrame, metrics: pd.DataFrame) -> str | None:
    """The model kind serving the forecasts: the one named by the newest forecast, else the newest
    selection's champion (a lake trained but not yet predicted), else None."""
    if not predictions.empty:
        return str(predictions.sort_values(["as_of_date", "created_at"])["model_name"].iloc[-1])
    if not metrics.empty:
        champs = metrics[metrics["is_champion"].fillna(False).astype(bool)]
        if not champs.empty:
            return str(champs.sort_values("trained_at")["model_name"].iloc[-1])
    return None

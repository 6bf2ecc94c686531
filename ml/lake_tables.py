"""The ML stage's Iceberg tables (``ml`` namespace) and their atomic writes.

Schemas follow the BRIEF's data contracts. Every write is one Iceberg commit: appends for run
metrics, ``overwrite`` with a row filter (delete + append in one transaction) for predictions so
a rerun for the same as-of date replaces its rows instead of duplicating them.
"""

from __future__ import annotations

import warnings

import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, In, Or

NAMESPACE = "ml"
PREDICTIONS = "ml.predictions"
PREDICTION_ACCURACY = "ml.prediction_accuracy"
MODEL_METRICS = "ml.model_metrics"

_TS = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    PREDICTIONS: pa.schema([
        ("ticker", pa.string()), ("as_of_date", pa.date32()), ("target_date", pa.date32()),
        ("horizon_days", pa.int32()), ("predicted_close", pa.float64()), ("predicted_return", pa.float64()),
        ("last_close", pa.float64()), ("model_name", pa.string()), ("model_version", pa.string()),
        ("run_id", pa.string()), ("feature_snapshot_id", pa.int64()), ("created_at", _TS),
    ]),
    PREDICTION_ACCURACY: pa.schema([
        ("ticker", pa.string()), ("as_of_date", pa.date32()), ("target_date", pa.date32()),
        ("horizon_days", pa.int32()), ("predicted_close", pa.float64()), ("actual_close", pa.float64()),
        ("error", pa.float64()), ("abs_pct_error", pa.float64()), ("direction_hit", pa.bool_()),
        ("model_name", pa.string()), ("model_version", pa.string()), ("evaluated_at", _TS),
    ]),
    MODEL_METRICS: pa.schema([
        ("run_id", pa.string()), ("model_name", pa.string()), ("model_version", pa.string()),
        ("mase", pa.float64()), ("mae", pa.float64()), ("rmse", pa.float64()), ("mape", pa.float64()),
        ("directional_accuracy", pa.float64()), ("ic", pa.float64()), ("rank_ic", pa.float64()),
        ("n_folds", pa.int32()), ("feature_snapshot_id", pa.int64()), ("trained_at", _TS),
        ("is_champion", pa.bool_()),
    ]),
}


def to_arrow(name: str, rows: list[dict]) -> pa.Table:
    """Rows as an Arrow table with the contract schema of table ``name``."""
    return pa.Table.from_pylist(rows, schema=SCHEMAS[name])


def ensure_table(catalog, name: str):
    """Load table ``name``, creating the namespace and the table with its contract schema if needed."""
    catalog.create_namespace_if_not_exists(NAMESPACE)
    return catalog.create_table_if_not_exists(name, schema=SCHEMAS[name])


def append_rows(catalog, name: str, rows: list[dict]) -> int | None:
    """Append ``rows`` to table ``name`` in one commit; return the new snapshot id."""
    tbl = ensure_table(catalog, name)
    tbl.append(to_arrow(name, rows))
    return tbl.current_snapshot().snapshot_id


def replace_rows(catalog, name: str, rows: list[dict], keys: tuple[str, ...] | None) -> int | None:
    """Replace the rows matching ``rows``' values of ``keys`` (all rows when None) in one commit.

    pyiceberg's ``overwrite`` with a filter deletes the matching rows and appends the new ones in a
    single transaction, so readers see either the old or the new rows, never both or neither.
    """
    tbl = ensure_table(catalog, name)
    if keys and not rows:
        return tbl.current_snapshot().snapshot_id if tbl.current_snapshot() else None
    data = to_arrow(name, rows)
    with warnings.catch_warnings():  # "Delete operation did not match any records" on a first write
        warnings.filterwarnings("ignore", message="Delete operation did not match")
        tbl.overwrite(data, overwrite_filter=_key_filter(data, keys))
    return tbl.current_snapshot().snapshot_id


def _key_filter(data: pa.Table, keys: tuple[str, ...] | None) -> BooleanExpression:
    """Rows whose ``keys`` (one or two columns) equal one of ``data``'s key tuples.

    Two keys are grouped by the second one: ``(k2 = v AND k1 IN (...)) OR ...``, which stays small
    for many tickers of one as-of date.
    """
    if not keys:
        return AlwaysTrue()
    if len(keys) > 2:
        raise ValueError(f"replace_rows supports one or two key columns, got {keys}")
    rows = data.select(list(keys)).to_pylist()
    if len(keys) == 1:
        return In(keys[0], {r[keys[0]] for r in rows})
    first, second = keys
    groups: dict = {}
    for r in rows:
        groups.setdefault(r[second], set()).add(r[first])
    terms = [And(EqualTo(second, v), In(first, firsts)) for v, firsts in sorted(groups.items(), key=str)]
    return terms[0] if len(terms) == 1 else Or(*terms)

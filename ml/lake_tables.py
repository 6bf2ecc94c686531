"""The ML stage's Iceberg tables (``ml`` namespace) and their atomic writes.

Schemas come from :mod:`lakehouse.contracts`. Every write is one Iceberg commit: appends for run
metrics, ``overwrite`` with a row filter (delete + append in one transaction) for predictions so
a rerun for the same as-of date replaces its rows instead of duplicating them.

A table created by an older version of the contract gains the new columns (schema evolution by
name) before a write; columns the contract dropped stay, null in new rows, so history is kept.
"""

from __future__ import annotations

import warnings

import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, In, Or

from lakehouse import contracts

PREDICTIONS = contracts.PREDICTIONS.identifier
PREDICTION_ACCURACY = contracts.PREDICTION_ACCURACY.identifier
MODEL_METRICS = contracts.MODEL_METRICS.identifier
BACKTEST_PREDICTIONS = contracts.BACKTEST_PREDICTIONS.identifier


def to_arrow(name: str, rows: list[dict]) -> pa.Table:
    """Rows as an Arrow table with the contract schema of table ``name``."""
    return contracts.contract(name).to_arrow(rows)


def ensure_table(catalog, name: str):
    """Load table ``name``, creating the namespace and the table from its contract if needed."""
    return contracts.ensure_table(catalog, name)


def ensure_current(catalog, name: str):
    """Load or create table ``name``; add the contract's columns an older table lacks."""
    tbl = ensure_table(catalog, name)
    have = {f.name for f in tbl.schema().fields}
    if not set(contracts.contract(name).column_names) <= have:
        with tbl.update_schema() as update:
            update.union_by_name(contracts.contract(name).iceberg_schema())
        tbl = catalog.load_table(name)
    return tbl


def table_arrow(tbl, name: str, rows: list[dict]) -> pa.Table:
    """Rows in the table's own schema (the contract's, plus any column an older contract had)."""
    data = to_arrow(name, rows)
    schema = tbl.schema().as_arrow()
    if schema.names == data.schema.names:
        return data
    return pa.Table.from_pylist(data.to_pylist(), schema=schema)


def append_rows(catalog, name: str, rows: list[dict]) -> int | None:
    """Append ``rows`` to table ``name`` in one commit; return the new snapshot id."""
    tbl = ensure_current(catalog, name)
    tbl.append(table_arrow(tbl, name, rows))
    return tbl.current_snapshot().snapshot_id


def overwrite_rows(catalog, name: str, rows: list[dict], where: BooleanExpression) -> int | None:
    """Delete the rows matching ``where`` and append ``rows``, in one commit; the new snapshot id."""
    tbl = ensure_current(catalog, name)
    with warnings.catch_warnings():  # "Delete operation did not match any records" on a first write
        warnings.filterwarnings("ignore", message="Delete operation did not match")
        tbl.overwrite(table_arrow(tbl, name, rows), overwrite_filter=where)
    return tbl.current_snapshot().snapshot_id


def replace_rows(catalog, name: str, rows: list[dict], keys: tuple[str, ...] | None) -> int | None:
    """Replace the rows matching ``rows``' values of ``keys`` (all rows when None) in one commit.

    pyiceberg's ``overwrite`` with a filter deletes the matching rows and appends the new ones in a
    single transaction, so readers see either the old or the new rows, never both or neither.
    """
    tbl = ensure_current(catalog, name)
    if keys and not rows:
        return tbl.current_snapshot().snapshot_id if tbl.current_snapshot() else None
    data = table_arrow(tbl, name, rows)
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

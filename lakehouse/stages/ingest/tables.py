"""The Iceberg tables ingestion writes (``raw.quotes``, ``raw.quotes_rejected``, dlt bookkeeping) and
the one-commit-per-load writes into them.

Every write is a single Iceberg transaction tagged with the dlt load id in the snapshot summary
(``lakehouse.load_id``): a load already present in a table's history is skipped, so retrying an
interrupted load never duplicates rows. Merges delete the touched key region and append its new
contents in the same transaction (copy-on-write, exact key semantics, newest load wins).

A commit that loses a race with another writer (another source's load, a compaction) is rebuilt on the
table's new state and retried by tenacity, a bounded number of times with jittered exponential waits;
the load-id check runs again on each attempt, so a retry never writes a load twice. pyiceberg (>= 0.12)
first re-applies a losing commit itself: right for appends, but the copy-on-write merge was computed
from the files it read, so pyiceberg's serializable check refuses the re-applied overwrite
(``ValidationException``) and the merge is rebuilt from scratch here. Both ``CommitFailedException``
and ``ValidationException`` guarantee that nothing of the attempt landed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    TableAlreadyExistsError,
    ValidationException,
)
from pyiceberg.expressions import (
    AlwaysFalse,
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    In,
    LessThanOrEqual,
    Or,
)
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    ArrowScan,
    _get_parquet_writer_kwargs,
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.table import FileScanTask, Table, TableProperties, Transaction
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.transforms import IdentityTransform
from pyiceberg.typedef import Record
from pyiceberg.utils.properties import property_as_int
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from lakehouse.contracts import RAW_DLT_LOADS, RAW_QUOTES, RAW_QUOTES_REJECTED

NAMESPACE = "raw"
LOAD_ID_PROPERTY = "lakehouse.load_id"
#: Attempts of one commit that keeps losing races, and the longest wait between two (seconds).
COMMIT_ATTEMPTS = 5
COMMIT_WAIT_MAX = 2.0
WRITE_THREADS = 2
#: Test hook: seconds to sleep after data files are written and before the catalog commit.
PAUSE_ENV = "LAKEHOUSE_INGEST_PAUSE_BEFORE_COMMIT"
#: Test hook: raise right before the catalog commit.
FAIL_ENV = "LAKEHOUSE_INGEST_FAIL_BEFORE_COMMIT"

#: The raw tables ingestion writes, by dlt table name (schemas, partitioning, sort: lakehouse.contracts).
TABLES = {"quotes": RAW_QUOTES, "quotes_rejected": RAW_QUOTES_REJECTED, "_dlt_loads": RAW_DLT_LOADS}


def ensure_namespace(catalog: Catalog, namespace: str = NAMESPACE) -> None:
    """Create the namespace unless it exists."""
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(namespace)


def ensure_table(catalog: Catalog, name: str, arrow_schema: pa.Schema | None = None,
                 namespace: str = NAMESPACE) -> Table:
    """Load ``namespace.name``, creating it with its declared schema/partitioning (or ``arrow_schema``)."""
    ident = f"{namespace}.{name}"
    if catalog.table_exists(ident):
        return catalog.load_table(ident)
    ensure_namespace(catalog, namespace)
    declared = TABLES.get(name)
    if declared is not None:
        kwargs = declared.create_kwargs()
    elif arrow_schema is not None:
        kwargs = {"schema": arrow_schema}
    else:
        raise ValueError(f"no schema known for table {ident}")
    try:
        return catalog.create_table(ident, **kwargs)
    except TableAlreadyExistsError:  # created concurrently
        return catalog.load_table(ident)


def committed_load_ids(table: Table) -> set[str]:
    """Load ids recorded in the snapshot history of ``table``."""
    out = set()
    for snap in table.metadata.snapshots:
        if snap.summary is not None and snap.summary[LOAD_ID_PROPERTY]:
            out.add(snap.summary[LOAD_ID_PROPERTY])
    return out


#: The columns :func:`stamp` sets on every row of a load.
STAMP_COLUMNS = ("loaded_at", "load_id")


def stamp_scalars(load_id: str, loaded_at: dt.datetime) -> dict[str, pa.Scalar]:
    """The value of each of :data:`STAMP_COLUMNS` for one load."""
    return {"loaded_at": pa.scalar(loaded_at, pa.timestamp("us", tz="UTC")), "load_id": pa.scalar(load_id)}


def stamp(data: pa.Table, load_id: str, loaded_at: dt.datetime) -> pa.Table:
    """``data`` with ``loaded_at`` / ``load_id`` set on every row (replacing any values it carried)."""
    n = data.num_rows
    for name, value in stamp_scalars(load_id, loaded_at).items():
        col = pa.repeat(value, n)
        if name in data.column_names:
            data = data.set_column(data.column_names.index(name), name, col)
        else:
            data = data.append_column(name, col)
    return data


def cast_to(target: pa.Schema, data: pa.Table) -> pa.Table:
    """``data`` in the table's Arrow schema ``target`` (field ids included; missing columns null)."""
    cols, fields = [], []
    for f in target:
        if f.name in data.column_names:
            col = data[f.name]
            if pa.types.is_string(col.type) and pa.types.is_large_string(f.type):
                f = f.with_type(col.type)  # pyiceberg writes string as is: skip copying offsets
            elif col.type != f.type:
                col = col.cast(f.type)
        else:
            col = pa.nulls(data.num_rows, f.type)
        cols.append(col)
        fields.append(f)
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def conform(tx: Transaction, data: pa.Table, load_id: str, loaded_at: dt.datetime) -> pa.Table:
    """``data`` stamped with ``load_id``/``loaded_at`` and cast to the table's Arrow schema. Columns the
    table lacks are added to its schema within transaction ``tx`` (schema evolution in the same commit)."""
    data = stamp(data, load_id, loaded_at)
    known = tx.table_metadata.schema().column_names
    extra = [f for f in data.schema if f.name not in known and not f.name.startswith("_dlt")]
    if extra:
        with tx.update_schema() as update:
            update.union_by_name(pa.schema(extra))
    return cast_to(tx.table_metadata.schema().as_arrow(), data)


def partition_columns(tbl: TableMetadata, data: pa.Table) -> list[pa.ChunkedArray | pa.Array]:
    """The partition values of every row (transforms applied), in spec order."""
    schema = tbl.schema()
    out = []
    for pf in tbl.spec().fields:
        field = schema.find_field(pf.source_id)
        column = data[field.name]
        if isinstance(column, pa.ChunkedArray) and column.num_chunks > 1:
            column = column.combine_chunks()  # one transform call, not one per chunk (a batch has ~40)
        out.append(pf.transform.pyarrow_transform(field.field_type)(column))
    return out


def is_sorted(data: pa.Table, keys: Sequence[str]) -> bool:
    """True when rows are already in ascending (lexicographic) order of ``keys`` (vectorized check)."""
    if data.num_rows < 2 or not keys:
        return True
    n = data.num_rows
    ordered = None  # pairs already strictly ordered by an earlier key
    for k in keys:
        a, b = data[k].slice(0, n - 1), data[k].slice(1)
        less, equal = pc.fill_null(pc.less(a, b), False), pc.fill_null(pc.equal(a, b), True)
        if ordered is None:
            bad = pc.invert(pc.or_(less, equal))
            ordered_next = less
        else:
            bad = pc.and_(pc.invert(ordered), pc.invert(pc.or_(less, equal)))
            ordered_next = pc.or_(ordered, less)
        if pc.any(bad).as_py():
            return False
        ordered = ordered_next
    return True


def _run_starts(cols: Sequence[pa.ChunkedArray | pa.Array]) -> list[int]:
    """Offsets where any of ``cols`` changes value from the previous row (always includes 0)."""
    n = len(cols[0])
    changed = None
    for col in cols:
        diff = pc.fill_null(pc.not_equal(col.slice(1), col.slice(0, n - 1)), True)
        changed = diff if changed is None else pc.or_(changed, diff)
    return [0] + [i + 1 for i in pc.indices_nonzero(changed).to_pylist()] if n > 1 else [0]


def sort_for_write(tbl: TableMetadata, data: pa.Table, keys: Sequence[str] = ()) -> tuple[pa.Table, list[int]]:
    """Rows grouped by partition and in ``keys`` order within each, and the start offset of each
    partition run.

    Sources deliver rows in key order (ticker, then date); then a partition is a set of contiguous
    runs, gathered with zero-copy slices and one sequential copy instead of a sort and random take."""
    if data.num_rows == 0:
        return data, []
    parts = partition_columns(tbl, data)
    if not parts and (not keys or is_sorted(data, keys)):
        return data, [0]
    if parts and is_sorted(data, keys):
        starts = _run_starts(parts)
        if len(starts) <= max(64, data.num_rows // 64):  # long runs: gather them per partition
            bounds = [*starts, data.num_rows]
            first_values = [tuple(col[i].as_py() for col in parts) for i in starts]
            groups: dict[tuple, list[tuple[int, int]]] = {}
            for value, a, b in zip(first_values, bounds, bounds[1:], strict=False):
                groups.setdefault(value, []).append((a, b - a))
            pieces, out_starts, offset = [], [], 0
            for value in sorted(groups, key=lambda v: tuple((x is None, x) for x in v)):
                out_starts.append(offset)
                for a, length in groups[value]:
                    pieces.append(data.slice(a, length))
                    offset += length
            return pa.concat_tables(pieces), out_starts  # chunks are combined per partition by the writer
    sort_cols = {f"__p{i}": col for i, col in enumerate(parts)}
    sort_cols.update({k: data[k] for k in keys})
    order = pc.sort_indices(pa.table(sort_cols), [(c, "ascending") for c in sort_cols])
    data = data.take(order)
    if not parts:
        return data, [0]
    return data, _run_starts([col.take(order) for col in parts])


def drop_duplicate_keys(data: pa.Table, keys: Sequence[str]) -> pa.Table:
    """On rows stably sorted so equal keys are adjacent, keep the last of each run (the newest)."""
    if data.num_rows < 2:
        return data
    same = None
    for k in keys:
        col = data[k]
        eq = pc.fill_null(pc.equal(col.slice(0, len(col) - 1), col.slice(1)), False)
        same = eq if same is None else pc.and_(same, eq)
    if not pc.any(same).as_py():
        return data
    keep = pa.concat_arrays([pc.invert(same).combine_chunks(), pa.array([True])])
    return data.filter(keep)


def _encodings(meta: TableMetadata, schema: pa.Schema) -> dict[str, Any]:
    """Column encodings of a data file of table ``meta``: ``ParquetWriter`` keyword arguments.

    Measured on the synthetic 2.6M quotes (one file per partition, zstd; ``benchmarks/README.md``):
    Arrow's default (a dictionary on every column) builds and then abandons a dictionary page after
    page for the nearly unique prices; a dictionary on dates and on text with one or a few values per
    file (identity-partition columns: one; the load stamps: one per load whose rows the file holds)
    costs time and saves nothing over plain values that zstd compresses; BYTE_STREAM_SPLIT for
    floating-point columns is both faster and smaller (the bytes of each position together compress
    well). Together: encoding -24% CPU, files -13%. Every engine here reads them (pyarrow, DuckDB,
    ClickHouse; Parquet readers since 2021)."""
    schema_fields = meta.schema()
    constant = {schema_fields.find_field(f.source_id).name for f in meta.spec().fields
                if isinstance(f.transform, IdentityTransform)} | set(STAMP_COLUMNS)
    text = (pa.types.is_string, pa.types.is_large_string, pa.types.is_boolean)
    dictionary = [f.name for f in schema if any(check(f.type) for check in text) and f.name not in constant]
    split = [f.name for f in schema if pa.types.is_floating(f.type)]
    return {"use_dictionary": dictionary, "use_byte_stream_split": split or False}


def partition_values(meta: TableMetadata, rows: pa.Table) -> list[tuple]:
    """The partition of each row (``()`` for every row of an unpartitioned table)."""
    cols = [col.to_pylist() for col in partition_columns(meta, rows)]
    return list(zip(*cols, strict=True)) if cols else [()] * rows.num_rows


def partition_key(meta: TableMetadata, first_row: pa.Table) -> PartitionKey | None:
    """The partition key of a one-partition slice, from its first row (``None``: unpartitioned)."""
    spec = meta.spec()
    if spec.is_unpartitioned():
        return None
    values = partition_values(meta, first_row.slice(0, 1))[0]
    return PartitionKey(field_values=[PartitionFieldValue(field=f, value=v) for f, v in zip(spec.fields, values,
                                                                                          strict=True)],
                        partition_spec=spec, schema=meta.schema())


def parquet_writer(where, meta: TableMetadata, schema: pa.Schema) -> pq.ParquetWriter:  # noqa: ANN001
    """A Parquet writer for data files of table ``meta`` (``where``: a path or an open stream): the
    table's write properties (compression, page and row-group sizes) through pyiceberg's helper, and
    the column encodings of :func:`_encodings`."""
    return pq.ParquetWriter(where, schema=schema, store_decimal_as_integer=True, **_encodings(meta, schema),
                            **_get_parquet_writer_kwargs(meta.properties))


def row_group_rows(meta: TableMetadata) -> int:
    """The table's Parquet row-group size limit (rows)."""
    return property_as_int(meta.properties, TableProperties.PARQUET_ROW_GROUP_LIMIT,
                           TableProperties.PARQUET_ROW_GROUP_LIMIT_DEFAULT)


def data_file(meta: TableMetadata, path: str, key: PartitionKey | None, footer: pq.FileMetaData,
              size: int) -> DataFile:
    """The manifest entry of Parquet data file ``path`` of ONE partition (``key``), with the column
    statistics Iceberg readers prune on, taken from the file's footer."""
    schema = meta.schema()
    stats = data_file_statistics_from_parquet_metadata(
        parquet_metadata=footer, stats_columns=compute_statistics_plan(schema, meta.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema))
    return DataFile.from_args(
        content=DataFileContent.DATA, file_path=path, file_format=FileFormat.PARQUET,
        partition=key.partition if key else Record(), file_size_in_bytes=size, sort_order_id=None,
        spec_id=meta.default_spec_id, equality_ids=None, key_metadata=None, **stats.to_serialized_dict())


def new_data_path(meta: TableMetadata, file_name: str, key: PartitionKey | None) -> str:
    """Where a new data file of partition ``key`` goes (the table's location provider)."""
    provider = load_location_provider(table_location=meta.location, table_properties=meta.properties)
    return provider.new_data_location(data_file_name=file_name, partition_key=key)


def write_data_file(meta: TableMetadata, io: FileIO, part: pa.Table, file_name: str) -> DataFile:
    """One Parquet data file of rows from ONE partition, already in the table's Arrow schema (field ids
    included, see :func:`conform`), and its DataFile.

    pyiceberg's own writer (``_dataframe_to_data_files``) is not used for ingestion: it re-derives the
    partitions by filtering the whole table once per partition (a copy), and dictionary-encodes every column;
    here partitions are the contiguous runs :func:`sort_for_write` produced (see :func:`parquet_writer`)."""
    key = partition_key(meta, part.slice(0, 1))
    path = new_data_path(meta, file_name, key)
    out = io.new_output(path)
    with out.create(overwrite=True) as fos:  # a fresh uuid name: skip the existence check (a HEAD on S3)
        writer = parquet_writer(fos, meta, part.schema)
        with writer:
            writer.write_table(part, row_group_size=row_group_rows(meta))
    return data_file(meta, path, key, writer.writer.metadata, len(out))


def _file_slices(meta: TableMetadata, data: pa.Table, starts: list[int]) -> list[pa.Table]:
    """One slice per partition run, split further where a run exceeds the table's target file size."""
    target = property_as_int(meta.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
                             TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT)
    sample = data.slice(0, min(data.num_rows, 65_536))  # nbytes walks every chunk: estimate on a prefix
    per_file = max(1, int(target / max(sample.nbytes / max(sample.num_rows, 1), 1)))
    bounds = [*starts, data.num_rows]
    out = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        out += [data.slice(i, min(per_file, b - i)) for i in range(a, b, per_file)]
    return out


def write_data_files(tx: Transaction, data: pa.Table, starts: list[int]) -> list[DataFile]:
    """Parquet data files for sorted ``data`` with partition runs at ``starts`` (rows in the table's
    Arrow schema), written in parallel: one file per partition run (:func:`write_data_file`)."""
    if data.num_rows == 0:
        return []
    meta, io = tx.table_metadata, tx._table.io  # noqa: SLF001 - the transaction's table FileIO
    slices = _file_slices(meta, data, starts)
    write_uuid = uuid.uuid4()

    def write(job: tuple[int, pa.Table]) -> DataFile:
        task_id, part = job
        return write_data_file(meta, io, part.combine_chunks(), f"00000-{task_id}-{write_uuid}.parquet")

    with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(slices))) as pool:
        return list(pool.map(write, enumerate(slices)))


def key_region(data: pa.Table) -> BooleanExpression:
    """A small filter covering every key of ``data``: per source, its tickers and date range."""
    region: BooleanExpression = AlwaysFalse()
    sources = pc.unique(data["source"]).to_pylist()
    for source in sources:
        part = data if len(sources) == 1 else data.filter(pc.equal(data["source"], source))
        tickers = pc.unique(part["ticker"]).to_pylist()
        lo, hi = pc.min(part["trade_date"]).as_py(), pc.max(part["trade_date"]).as_py()
        ticker_expr = EqualTo("ticker", tickers[0]) if len(tickers) == 1 else In("ticker", tickers)
        expr = And(EqualTo("source", source), ticker_expr,
                   And(GreaterThanOrEqual("trade_date", lo.isoformat()), LessThanOrEqual("trade_date", hi.isoformat())))
        region = expr if isinstance(region, AlwaysFalse) else Or(region, expr)
    return region


@dataclass
class CommitResult:
    """What one table write did."""

    table: str
    rows: int = 0
    replaced: int = 0
    duplicates: int = 0  # rows of the load dropped because a later row of the same load had their key
    skipped: bool = False  # the load id was already committed
    snapshot_id: int | None = None


def _pause_for_tests() -> None:
    """Fault injection for tests: pause (to be killed) or fail right before the catalog commit."""
    if os.environ.get(FAIL_ENV):
        raise RuntimeError(f"injected failure before the Iceberg commit ({FAIL_ENV})")
    pause = os.environ.get(PAUSE_ENV)
    if pause:
        marker = os.environ.get(PAUSE_ENV + "_MARKER")
        if marker:
            open(marker, "w").close()  # noqa: SIM115 - tells the test we are about to commit
        time.sleep(float(pause))


def commit_with_retry(table: Table, load_id: str, build) -> CommitResult:  # noqa: ANN001 - see below
    """Run ``build(table) -> (transaction or None, result)`` on the table's current state and commit it;
    when a concurrent commit wins (``CommitFailedException``, or ``ValidationException`` for an overwrite
    whose files changed) reload, rebuild and retry (tenacity: :data:`COMMIT_ATTEMPTS` attempts, jittered
    exponential waits up to :data:`COMMIT_WAIT_MAX` s). A load id already in the table's history is not
    written again."""
    retrying = Retrying(
        retry=retry_if_exception_type((CommitFailedException, ValidationException)),
        stop=stop_after_attempt(COMMIT_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.1, max=COMMIT_WAIT_MAX), reraise=True,
    )
    return retrying(_commit_once, table, load_id, build)


def _commit_once(table: Table, load_id: str, build) -> CommitResult:  # noqa: ANN001
    table.refresh()
    if load_id in committed_load_ids(table):
        return CommitResult(table.name()[-1], skipped=True)
    tx, result = build(table)
    if tx is None:
        return result
    _pause_for_tests()
    committed = tx.commit_transaction()
    snap = committed.current_snapshot()
    result.snapshot_id = snap.snapshot_id if snap else None
    return result


def _key_codes(left: pa.ChunkedArray, right: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, int]:
    """One key column of both sides as non-negative int64 codes (-1: a left value the right side lacks)
    and the number of distinct codes: strings index the right side's distinct values, dates are days."""
    if pa.types.is_string(right.type) or pa.types.is_large_string(right.type):
        values = pc.unique(right)
        lcode = pc.fill_null(pc.index_in(left, value_set=values), -1)
        rcode = pc.index_in(right, value_set=values)
        return (np.asarray(lcode.to_numpy(), dtype=np.int64), np.asarray(rcode.to_numpy(), dtype=np.int64),
                max(len(values), 1))
    if pa.types.is_date32(right.type):
        offset = 1 << 20  # days before the epoch stay non-negative
        lcode = left.cast(pa.int32()).to_numpy().astype(np.int64) + offset
        rcode = right.cast(pa.int32()).to_numpy().astype(np.int64) + offset
        return lcode, rcode, 1 << 22
    raise TypeError(f"key column of type {right.type} is not supported")


def keys_in(left: pa.Table, right: pa.Table, keys: Sequence[str]) -> pa.Array:
    """Boolean mask: does each row of ``left`` have its key in ``right``? (Keys have no nulls.) Every key
    column is coded as an integer (:func:`_key_codes`) and the codes are packed into one int64 per row, so
    membership is one numeric search (an Arrow anti-join on strings is ~10x slower)."""
    left_key = np.zeros(left.num_rows, dtype=np.int64)
    right_key = np.zeros(right.num_rows, dtype=np.int64)
    present = np.ones(left.num_rows, dtype=bool)  # left rows whose string values all occur on the right
    for k in keys:
        lcode, rcode, width = _key_codes(left[k], right[k])
        present &= lcode >= 0
        left_key = left_key * width + np.maximum(lcode, 0)
        right_key = right_key * width + rcode
    return pa.array(present & _int_keys_in(left_key, right_key))


def _int_keys_in(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Boolean mask: is each value of ``left`` in ``right`` (int64)? Sort and binary search: rows arrive
    nearly in key order, where numpy's stable sort is close to linear, while Arrow's hash set (``is_in``
    over ``unique``) costs ~1 s per 2.6M distinct keys."""
    if len(right) == 0:
        return np.zeros(len(left), dtype=bool)
    rk = np.sort(right, kind="stable")
    pos = np.minimum(np.searchsorted(rk, left), len(rk) - 1)
    return rk[pos] == left


def read_files(tbl: Table, tasks: list[FileScanTask], columns: Sequence[str] | None = None) -> pa.Table:
    """Every row of the data files behind ``tasks`` (their delete files applied), in the table schema
    (only ``columns`` when given)."""
    schema = tbl.schema().select(*columns) if columns else tbl.schema()
    scan = ArrowScan(tbl.metadata, tbl.io, schema, AlwaysTrue())
    return scan.to_table(tasks)


def swap_files(tx: Transaction, remove: Sequence[DataFile], add: Sequence[DataFile], load_id: str) -> None:
    """One snapshot of ``tx`` tagged with ``load_id``: ``remove`` swapped for ``add`` (an ``overwrite``),
    or a ``fast_append`` of ``add`` when nothing is removed."""
    props = {LOAD_ID_PROPERTY: load_id}
    if remove:
        with tx.update_snapshot(snapshot_properties=props).overwrite() as overwrite:
            for f in remove:
                overwrite.delete_data_file(f)
            for f in add:
                overwrite.append_data_file(f)
    else:
        with tx.update_snapshot(snapshot_properties=props).fast_append() as append:
            for f in add:
                append.append_data_file(f)


def merge_commit(table: Table, data: pa.Table, keys: Sequence[str], load_id: str,
                 loaded_at: dt.datetime) -> CommitResult:
    """Upsert ``data`` on ``keys`` in ONE snapshot. Duplicate keys in the load keep the last row and are
    counted in the result (ingestion quarantines duplicates before they get here: see
    :mod:`lakehouse.sources.quotes`).

    File-level copy-on-write: the data files that may hold a key of the load (partition and column
    statistics pruning with a small region filter) are read whole; their rows whose key the load does
    not carry are rewritten with the load's rows, and one ``overwrite`` snapshot swaps the files.
    Memory and I/O scale with the files touched (an incremental load touches the current year)."""
    name = table.name()[-1]

    def build(tbl: Table):
        tx = tbl.transaction()
        rows = conform(tx, data, load_id, loaded_at)
        if rows.num_rows == 0:
            return None, CommitResult(name)
        meta = tx.table_metadata
        rows, starts = sort_for_write(meta, rows, keys)
        deduped = drop_duplicate_keys(rows, keys)
        duplicates = rows.num_rows - deduped.num_rows
        if duplicates:
            rows, starts = sort_for_write(meta, deduped, keys)
        tasks = list(tbl.scan(row_filter=key_region(rows)).plan_files()) if tbl.current_snapshot() else []
        replaced = 0
        out, out_starts = rows, starts
        if tasks:
            # keys first: when the load replaces every row of the files it touches (a re-load of a whole
            # window) the other columns are never decoded
            existing = read_files(tbl, tasks, keys)
            n_existing = existing.num_rows
            if pc.all(keys_in(existing, rows, keys)).as_py() is not False:
                keep = existing.slice(0, 0)  # every row replaced: nothing to keep
            else:
                existing = read_files(tbl, tasks)
                keep = existing.filter(pc.invert(keys_in(existing, rows, keys)))
            for f in rows.schema:  # columns added by this load's schema evolution
                if f.name not in keep.column_names:
                    keep = keep.append_column(f.name, pa.nulls(keep.num_rows, f.type))
            keep = keep.select(rows.column_names).cast(rows.schema)
            replaced = n_existing - keep.num_rows
            if keep.num_rows:
                out, out_starts = sort_for_write(meta, pa.concat_tables([keep, rows]), keys)
        swap_files(tx, [task.file for task in tasks], write_data_files(tx, out, out_starts), load_id)
        return tx, CommitResult(name, rows=rows.num_rows, replaced=replaced, duplicates=duplicates)

    return commit_with_retry(table, load_id, build)


def append_commit(table: Table, data: pa.Table, load_id: str, loaded_at: dt.datetime) -> CommitResult:
    """Append ``data`` in one transaction (skipped when this load id is already in the table)."""
    name = table.name()[-1]

    def build(tbl: Table):
        tx = tbl.transaction()
        rows = conform(tx, data, load_id, loaded_at)
        if rows.num_rows == 0:
            return None, CommitResult(name)
        rows, starts = sort_for_write(tx.table_metadata, rows)
        swap_files(tx, [], write_data_files(tx, rows, starts), load_id)
        return tx, CommitResult(name, rows=rows.num_rows)

    return commit_with_retry(table, load_id, build)

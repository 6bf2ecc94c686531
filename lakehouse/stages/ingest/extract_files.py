"""Iceberg data files written while a load is extracted, so that every row is encoded once.

Without this, dlt writes every extracted row into its load package (Parquet, dictionary-encoding every
column) and the commit encodes the same rows again as the Iceberg data files: two Parquet writes of each
row, about half of an ingest's time on the synthetic 2.6M rows. Here the validated rows of a table with a
contract (``raw.quotes``) go, batch by batch, straight into one Parquet file per partition in the table's
final layout: its Arrow schema with field ids, stamped with the load id and time, sorted by key, the
table's write properties. A background thread encodes them, so writing overlaps the source's fetching.
At the end of the extract the resource hands the finished files to dlt as file imports (hard-linked into
the load package; normalize moves them untouched), so the package still carries the load across a crash.

The commit (:func:`lakehouse.stages.ingest.tables.commit_files`) then only places the files in the
warehouse, and only when that is exactly right: the table still has the schema and partition spec the
files were written for, nothing was committed to it after their stamp (``loaded_at`` must stay newer than
every earlier row: the staging model reads raw rows incrementally by it), and the load replaces every row
of the existing files it touches. Otherwise the rows are read back from the files and merged the generic
way, re-stamped at commit. Each file's footer says what it was written for (:data:`FOOTER_KEY`).

Hand-written because neither dlt nor pyiceberg writes partitioned Iceberg data files as a stream:
dlt's Arrow writer writes one unpartitioned file per table without field ids, and pyiceberg's writer
needs the whole table at once (and re-filters it once per partition).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.table.metadata import TableMetadata, new_table_metadata

from lakehouse.sources.quotes import strictly_increasing
from lakehouse.stages.ingest import staging
from lakehouse.stages.ingest.tables import (
    NAMESPACE,
    TABLES,
    WRITE_THREADS,
    cast_to,
    drop_duplicate_keys,
    is_sorted,
    parquet_writer,
    partition_columns,
    row_group_rows,
    stamp,
    stamp_scalars,
)

#: Parquet footer key of a file written here: JSON of :class:`FileMark`.
FOOTER_KEY = "lakehouse.ingest"
#: Rows buffered per partition before they are encoded as one row group: small enough that encoding
#: overlaps fetching, large enough for good compression and few row groups per file.
FLUSH_ROWS = 32_768
#: Batches queued for the writer thread before ``add`` waits (bounds memory when encoding lags).
MAX_QUEUED = 4
#: Row groups handed to the writer threads and not yet written before the encoder waits: without a bound
#: a slow disk (or an encoding slower than the source) let the rows waiting to be written pile up to the
#: whole load in memory; with it, about MAX_PENDING_WRITES x FLUSH_ROWS rows wait.
MAX_PENDING_WRITES = 2 * WRITE_THREADS


def layout(meta: TableMetadata) -> str:
    """What a data file's bytes depend on: the schema's fields (ids, names, types, required) and the
    partition spec's fields. Files written for one layout are valid data files of any table with it."""
    schema = meta.schema()
    fields = [[f.field_id, f.name, str(f.field_type), f.required] for f in schema.fields]
    spec = [[f.source_id, f.field_id, str(f.transform), f.name] for f in meta.spec().fields]
    return json.dumps({"schema": fields, "spec": spec}, separators=(",", ":"))


@dataclass(frozen=True)
class FileMark:
    """What a file was written for (its footer): the table layout, the load id and the ``loaded_at`` stamp
    of its rows (microseconds since the epoch, UTC)."""

    layout: str
    load_id: str
    loaded_at_us: int

    def to_json(self) -> str:
        return json.dumps({"layout": self.layout, "load_id": self.load_id, "loaded_at_us": self.loaded_at_us})

    @classmethod
    def from_footer(cls, footer: pq.FileMetaData) -> FileMark | None:
        raw = (footer.metadata or {}).get(FOOTER_KEY.encode())
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
            return cls(str(doc["layout"]), str(doc["load_id"]), int(doc["loaded_at_us"]))
        except (ValueError, KeyError, TypeError):
            return None  # not ours after all: the file is merged the generic way


def read_mark(path: str) -> FileMark | None:
    """The mark of the Parquet file at ``path`` (``None``: not written here, or unreadable)."""
    try:
        return FileMark.from_footer(pq.read_metadata(path))
    except (OSError, pa.ArrowInvalid):
        return None


def expected_metadata(catalog: Catalog, name: str, namespace: str = NAMESPACE) -> TableMetadata | None:
    """The metadata of ``namespace.name`` as the commit will find it: the table's when it exists, else
    what creating it from its contract gives (the catalog assigns ids the same way; the commit checks
    :func:`layout` anyway). ``None`` for a table without a contract."""
    ident = f"{namespace}.{name}"
    if catalog.table_exists(ident):
        return catalog.load_table(ident).metadata
    declared = TABLES.get(name)
    if declared is None:
        return None
    kw = declared.create_kwargs()
    return new_table_metadata(kw["schema"], kw["partition_spec"], kw["sort_order"], "file:///not-created", {})


def _codes(values: pa.Array) -> tuple[np.ndarray, list]:
    """Dense codes ``0..k-1`` of ``values`` and the value of each code (a null its own code).

    Integer values in a narrow range (years, months, days, buckets: most partition transforms) are coded
    by subtraction, with no hash table; anything else through a dictionary."""
    if pa.types.is_integer(values.type) and values.null_count == 0:
        numbers = values.to_numpy()
        low, high = int(numbers.min()), int(numbers.max())
        if high - low < 1 << 16:
            return (numbers - low).astype(np.int64), list(range(low, high + 1))
    encoded = pc.dictionary_encode(values)
    dictionary = encoded.dictionary
    codes = pc.fill_null(encoded.indices, len(dictionary)).to_numpy().astype(np.int64)  # null: code k
    return codes, [*dictionary.to_pylist(), None]


def split_by_partition(meta: TableMetadata, rows: pa.Table) -> list[tuple[tuple, pa.Table]]:
    """``rows`` split by the partition of table ``meta``: (partition values, rows), each part keeping
    the rows' order. Vectorized on purpose (partition codes, one stable numpy sort, one take): this runs
    on a thread beside the source, and per-run Python loops would hold the GIL the source needs."""
    if rows.num_rows == 0:
        return []
    columns = partition_columns(meta, rows)
    if not columns:
        return [((), rows)]
    codes, size = np.zeros(rows.num_rows, dtype=np.int64), 1
    per_column = []
    for col in columns:
        col_codes, dictionary = _codes(col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col)
        per_column.append((col_codes, dictionary))
        codes, size = codes * len(dictionary) + col_codes, size * len(dictionary)
        if size > 1 << 31:  # many columns: renumber the combinations present (same order) before overflow
            present, codes = np.unique(codes, return_inverse=True)
            size = len(present)
    if size <= 1 << 16:
        codes = codes.astype(np.uint16)  # numpy sorts 16-bit keys stably by radix: linear time
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    starts = np.concatenate([[0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1])
    if len(starts) > 1:
        rows = rows.take(pa.array(order))
    bounds = [*starts.tolist(), rows.num_rows]
    out = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        first = int(order[a])  # a row of the part: its values are the part's partition
        value = tuple(dictionary[int(col_codes[first])] for col_codes, dictionary in per_column)
        out.append((value, rows.slice(a, b - a)))
    return out


class PartitionFileWriter:
    """Writes one load's rows of one table into one Parquet file per partition, in the background.

    ``add`` queues a batch (rows in any order, the table's columns or a subset); an encoder thread
    stamps, casts and sorts it and splits it by partition, and whenever :data:`FLUSH_ROWS` rows of a
    partition are buffered, :data:`WRITE_THREADS` writer threads encode them as the next row group of
    that partition's file (row groups in arrival order: a file stays sorted by key). ``close`` writes
    the rest and returns the files."""

    def __init__(self, meta: TableMetadata, directory: Path, load_id: str, loaded_at_us: int,
                 keys: Sequence[str], keep_keys: bool = True) -> None:
        self.meta, self.directory, self.keys = meta, directory, list(keys)
        self.load_id = load_id
        self.mark = FileMark(layout(meta), load_id, loaded_at_us)
        self._loaded_at = loaded_at = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=loaded_at_us)
        self._target = meta.schema().as_arrow()
        self._known = set(self._target.names)
        # the rows are split before they are stamped (the stamp columns: slices of one array, not copies),
        # unless the partition spec reads a stamp column (then they are stamped first, as a whole batch)
        self._stamps = {name: value for name, value in stamp_scalars(load_id, loaded_at).items()
                        if name in self._known}
        schema = meta.schema()
        self._stamp_first = bool({schema.find_field(f.source_id).name for f in meta.spec().fields} & set(self._stamps))
        if self._stamp_first:
            self._stamps = {}
        self._unstamped = pa.schema([f for f in self._target if f.name not in self._stamps])
        self._stamp_arrays: dict[str, pa.Array] = {}
        self._stamp_fields: dict[str, pa.Field] = {}
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-encode")
        self._pool = ThreadPoolExecutor(max_workers=WRITE_THREADS, thread_name_prefix="ingest-write")
        self._queued: list[Future] = []
        self._writes: list[Future] = []
        self._pending = threading.BoundedSemaphore(MAX_PENDING_WRITES)
        self._last_write: dict[tuple, Future] = {}  # per partition: its row groups go in order
        self._buffers: dict[tuple, list[pa.Table]] = {}
        self._buffered: dict[tuple, int] = {}
        self._writers: dict[tuple, tuple[Path, pq.ParquetWriter]] = {}
        self._row_group = row_group_rows(meta)
        #: the key columns of the rows written, for the commit's merge; ``None`` when not kept (they hold
        #: the key buffers of every batch alive: ~70 MB on the synthetic 2.6M rows)
        self.key_tables: list[pa.Table] | None = [] if keep_keys else None
        self.rows = 0
        self.duplicates = 0
        directory.mkdir(parents=True, exist_ok=True)

    def accepts(self, data: pa.Table) -> bool:
        """True when ``data`` needs no schema change of the table (its columns are the table's)."""
        return all(name in self._known for name in data.column_names if not name.startswith("_dlt"))

    def add(self, data: pa.Table) -> None:
        """Queue ``data`` for encoding (waits while :data:`MAX_QUEUED` batches are ahead of it)."""
        while len(self._queued) >= MAX_QUEUED:
            self._queued.pop(0).result()
        self._queued.append(self._encoder.submit(self._encode, data))

    def close(self) -> list[tuple[Path, int]]:
        """Write what is buffered, close every file; ``(path, rows)`` per file, in partition order."""
        try:
            for fut in self._queued:
                fut.result()
            self._queued.clear()
            for part in list(self._buffers):
                self._flush(part)
            for fut in self._writes:
                fut.result()
            out = []
            for part in sorted(self._writers, key=lambda v: tuple((x is None, x) for x in v)):
                path, writer = self._writers[part]
                writer.close()
                out.append((path, writer.writer.metadata.num_rows))
            self._writers.clear()
            return out
        finally:
            self._encoder.shutdown(wait=True)
            self._pool.shutdown(wait=True)

    def abort(self) -> None:
        """Stop and close everything without returning files (the extract failed)."""
        self._encoder.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for _, writer in self._writers.values():
            with contextlib.suppress(Exception):  # the files are deleted with the directory
                writer.close()
        self._writers.clear()

    # -- encoder thread --------------------------------------------------------------------------
    def _encode(self, data: pa.Table) -> None:
        if self._stamp_first:
            data = stamp(data, self.load_id, self._loaded_at)
        rows = cast_to(self._unstamped, data)
        if strictly_increasing(rows, self.keys):  # the usual batch (validated: in key order, no repeats)
            deduped = rows
        else:
            if not is_sorted(rows, self.keys):
                rows = rows.sort_by([(k, "ascending") for k in self.keys])
            deduped = drop_duplicate_keys(rows, self.keys)
        self.duplicates += rows.num_rows - deduped.num_rows
        if deduped.num_rows == 0:
            return
        self.rows += deduped.num_rows
        if self.key_tables is not None:
            self.key_tables.append(deduped.select(self.keys))
        for value, part in split_by_partition(self.meta, deduped):
            self._buffers.setdefault(value, []).append(self._stamped(part))
            self._buffered[value] = self._buffered.get(value, 0) + part.num_rows
            if self._buffered[value] >= FLUSH_ROWS:
                self._flush(value)

    def _stamped(self, rows: pa.Table) -> pa.Table:
        """``rows`` with the stamp columns, in the table's column order (the stamps: zero-copy slices of
        one constant array per column, grown when a part is longer than any before)."""
        n = rows.num_rows
        if any(len(self._stamp_arrays.get(name, ())) < n for name in self._stamps):
            size = max(n, FLUSH_ROWS)
            constants = pa.table({name: pa.repeat(value, size) for name, value in self._stamps.items()})
            constants = cast_to(pa.schema([self._target.field(name) for name in self._stamps]), constants)
            self._stamp_arrays = {name: constants[name].combine_chunks() for name in self._stamps}
            self._stamp_fields = {name: constants.schema.field(name) for name in self._stamps}
        columns, fields = [], []
        for f in self._target:
            if f.name in self._stamps:
                columns.append(self._stamp_arrays[f.name].slice(0, n))
                fields.append(self._stamp_fields[f.name])
            else:
                columns.append(rows[f.name])
                fields.append(rows.schema.field(f.name))
        return pa.Table.from_arrays(columns, schema=pa.schema(fields))

    def _flush(self, part: tuple) -> None:
        """Hand the buffered rows of partition ``part`` to a writer thread, after its previous write."""
        pieces = self._buffers.pop(part, [])
        self._buffered.pop(part, None)
        if pieces:
            self._pending.acquire()  # released by the write: see MAX_PENDING_WRITES
            fut = self._pool.submit(self._write, part, pieces, self._last_write.get(part))
            self._last_write[part] = fut
            self._writes.append(fut)

    # -- writer threads --------------------------------------------------------------------------
    def _write(self, part: tuple, pieces: list[pa.Table], previous: Future | None) -> None:
        try:
            self._write_pieces(part, pieces, previous)
        finally:
            self._pending.release()

    def _write_pieces(self, part: tuple, pieces: list[pa.Table], previous: Future | None) -> None:
        if previous is not None:
            previous.result()  # submitted earlier (FIFO queue): already running or done
        data = pa.concat_tables(pieces)  # no copy: Parquet encodes a row group chunk by chunk
        if part not in self._writers:
            path = self.directory / f"{uuid.uuid4()}.parquet"
            schema = data.schema.with_metadata({FOOTER_KEY: self.mark.to_json()})
            self._writers[part] = (path, parquet_writer(str(path), self.meta, schema))
        path, writer = self._writers[part]
        if not data.schema.equals(writer.schema, check_metadata=False):
            data = data.cast(writer.schema)
        writer.write_table(data, row_group_size=self._row_group)


@dataclass
class ExtractSink:
    """Where the quote resource hands its validated batches during an extract (``BatchSink``).

    Rows of the tables in ``metas`` (table name -> metadata the commit is expected to find) are written
    as data files by a :class:`PartitionFileWriter` per table; every other batch is kept in memory for
    the commit (:mod:`.staging`) and yielded to dlt as Arrow."""

    directory: Path
    metas: dict[str, TableMetadata]
    keys: dict[str, Sequence[str]]
    loaded_at_us: int
    _writers: dict[tuple[str, str], PartitionFileWriter] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, table_name: str, data: pa.Table) -> bool:
        """Take ``data`` of ``table_name``: True when it goes into data files (the resource must not
        yield it), False when the resource yields it to dlt as usual."""
        load_id = staging.current_load_id()
        if load_id is None:
            return False  # not inside a dlt extract
        meta = self.metas.get(table_name)
        if meta is not None:
            writer = self._writer(load_id, table_name, meta)
            if writer.accepts(data):
                writer.add(data)
                return True
        staging.record(table_name, data)
        return False

    def finish(self) -> list[Any]:
        """The written files as dlt file imports (one item per file), at the end of the extract."""
        import dlt

        items: list[Any] = []
        with self._lock:
            writers, self._writers = dict(self._writers), {}
        for (load_id, table_name), writer in writers.items():
            files = writer.close()
            staging.record_files(load_id, table_name, writer.key_tables, writer.duplicates)
            # dlt takes the table's columns from the first file's hints; the others come without, because
            # dlt recomputes and re-validates the table schema for every item with Arrow hints (~7 ms each).
            # (A file import without hints goes through dlt's object extractor, which only imports the file:
            # tests/integration/test_ingest_files.py checks every file of a load arrives.)
            columns = writer.meta.schema().as_arrow().empty_table()
            for i, (path, rows) in enumerate(files):
                items.append(dlt.mark.with_file_import(str(path), "parquet", rows, hints=None if i else columns))
        return items

    def discard(self) -> None:
        """Abort unfinished writers and delete this sink's files (dlt has linked what it imported)."""
        with self._lock:
            writers, self._writers = dict(self._writers), {}
        for writer in writers.values():
            writer.abort()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _writer(self, load_id: str, table_name: str, meta: TableMetadata) -> PartitionFileWriter:
        with self._lock:
            writer = self._writers.get((load_id, table_name))
            if writer is None:
                # keys only when the table has rows the load may replace (else the commit reads them
                # back from the files in the rare case it needs them: rows committed meanwhile)
                writer = PartitionFileWriter(meta, self.directory / load_id / table_name, load_id,
                                             self.loaded_at_us, self.keys[table_name],
                                             keep_keys=meta.current_snapshot_id is not None)
                self._writers[(load_id, table_name)] = writer
            return writer

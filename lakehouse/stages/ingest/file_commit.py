"""The commit of data files written during the extract (:mod:`.extract_files`): place them, don't rewrite.

When the table still has the layout the files were written for, nothing newer than their stamp was
committed, and every row of the existing files the load touches is replaced by it, the files themselves
become the table's new data files: linked into a local warehouse (a copy across file systems) or uploaded
to S3 as they are, in ONE ``fast_append`` (nothing touched) or ``overwrite`` (the touched files swapped)
snapshot tagged with the load id. Anything else returns ``None`` and the caller merges the rows the
generic way (:func:`.tables.merge_commit`), re-stamped at commit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata

from lakehouse.stages.ingest.extract_files import FileMark, layout
from lakehouse.stages.ingest.tables import (
    WRITE_THREADS,
    CommitResult,
    commit_with_retry,
    data_file,
    key_region,
    keys_in,
    new_data_path,
    partition_key,
    read_files,
    swap_files,
)


class NotPlaceable(Exception):  # noqa: N818 - a decision, not an error: the caller merges the generic way
    """The files cannot become the table's data files as they are (the message says why)."""


def _copy(src: str, dest: str, io: FileIO) -> None:
    """``src`` (a local file) to warehouse location ``dest``: a hard link when the warehouse is local
    (the package keeps its own name for the same bytes until dlt deletes it), else a stream upload."""
    url = urlparse(dest)
    if url.scheme in ("", "file"):
        target = url.path if url.scheme else dest
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.link(src, target)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(src, target)
        return
    with open(src, "rb") as fin, io.new_output(dest).create(overwrite=True) as fout:
        shutil.copyfileobj(fin, fout, length=8 << 20)


def place_files(meta: TableMetadata, io: FileIO, files: Sequence[str]) -> list[DataFile]:
    """Put each local data file at a new location of table ``meta`` and describe it (its footer's
    statistics; its partition from its first row)."""
    spec_sources = [meta.schema().find_field(f.source_id).name for f in meta.spec().fields]

    def place(src: str) -> DataFile:
        pf = pq.ParquetFile(src)
        first = pf.read_row_group(0, columns=spec_sources).slice(0, 1) if spec_sources else pa.table({})
        key = partition_key(meta, first) if spec_sources else None
        dest = new_data_path(meta, f"00000-0-{uuid.uuid4()}.parquet", key)
        _copy(src, dest, io)
        return data_file(meta, dest, key, pf.metadata, os.path.getsize(src))

    with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, max(len(files), 1))) as pool:
        return list(pool.map(place, files))


def commit_files(table: Table, files: Sequence[str], mark: FileMark, keys: Sequence[str],
                 load_keys: pa.Table | None, duplicates: int = 0) -> CommitResult | None:
    """Commit the files of one load (all with ``mark``) as they are; ``None`` when they cannot be (see
    the module docstring). ``load_keys``: the key columns of their rows when known (else read from the
    files, when the table has rows they may replace)."""
    name = table.name()[-1]
    placed: list[DataFile] = []

    def build(tbl: Table):  # noqa: ANN202 - (transaction, result) for commit_with_retry
        meta = tbl.metadata
        if layout(meta) != mark.layout:
            raise NotPlaceable("the table's schema or partition spec changed since the extract")
        newest = max((s.timestamp_ms for s in meta.snapshots), default=None)
        if newest is not None and newest * 1000 >= mark.loaded_at_us:
            raise NotPlaceable("the table has a commit newer than the load's loaded_at stamp")
        tasks: list = []
        replaced = 0
        if tbl.current_snapshot():  # rows the load may replace: which files hold keys of the load
            rows = load_keys if load_keys is not None else pa.concat_tables(
                [pq.read_table(f, columns=list(keys)) for f in files])
            tasks = list(tbl.scan(row_filter=key_region(rows)).plan_files())
            if tasks:
                existing = read_files(tbl, tasks, keys)
                if pc.all(keys_in(existing, rows, keys)).as_py() is False:
                    raise NotPlaceable("the files the load touches keep rows the load does not replace")
                replaced = existing.num_rows
        if not placed:
            placed.extend(place_files(meta, tbl.io, files))
        tx = tbl.transaction()
        swap_files(tx, [task.file for task in tasks], placed, mark.load_id)
        rows_written = sum(f.record_count for f in placed)
        return tx, CommitResult(name, rows=rows_written, replaced=replaced, duplicates=duplicates)

    try:
        return commit_with_retry(table, mark.load_id, build)
    except NotPlaceable:
        for f in placed:  # placed by an attempt that lost a race: nothing references them
            with contextlib.suppress(OSError):
                table.io.delete(f.file_path)
        return None

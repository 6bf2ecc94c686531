"""What a load's extract leaves in memory for its commit (dlt's Arrow path, passed through).

dlt writes every extracted Arrow table into the load package (parquet files): the package is what lets a
load survive a crash, since the next run commits a package left behind. Reading those files back at commit
time decoded every row a second time. When the package was extracted by this process, the commit takes the
tables the resource yielded instead, after checking that the package files hold the same tables (the same
columns and row counts, from the parquet footers); otherwise, and for a package left by an interrupted run,
it reads the files.

Tables written as data files during the extract (:mod:`.extract_files`) leave only their key columns here
(what the commit's merge needs), and the count of duplicate keys collapsed while writing.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

_LOCK = threading.Lock()
#: load id -> dlt table name -> tables in the order the resource yielded them
_STAGED: dict[str, dict[str, list[pa.Table]]] = defaultdict(lambda: defaultdict(list))
#: load id -> dlt table name -> key columns of the rows written as data files
_FILES: dict[str, dict[str, FileRows]] = defaultdict(dict)


@dataclass
class FileRows:
    """The rows a load wrote as data files of one table: their key columns (``None``: not kept, because
    the table was empty when the extract began and the commit is unlikely to need them; it reads them
    from the files if it does) and the duplicates dropped."""

    keys: pa.Table | None
    duplicates: int = 0


def current_load_id() -> str | None:
    """The id of the load package being extracted (``None`` outside a dlt extract)."""
    import dlt
    from dlt.common.storages.exceptions import CurrentLoadPackageStateNotAvailable

    try:
        return dlt.current.load_package_state()["load_id"]
    except CurrentLoadPackageStateNotAvailable:
        return None


def record(table_name: str, table: pa.Table) -> None:
    """Keep ``table`` for the commit of the load package being extracted (a resource's batch)."""
    load_id = current_load_id()
    if load_id is None:
        return  # not inside an extract: the commit reads the package files
    with _LOCK:
        _STAGED[load_id][table_name].append(table)


def record_files(load_id: str, table_name: str, keys: Sequence[pa.Table] | None, duplicates: int = 0) -> None:
    """Keep the key columns of the rows load ``load_id`` wrote as data files of ``table_name`` (``None``:
    not kept, see :class:`FileRows`)."""
    with _LOCK:
        kept = None if keys is None else pa.concat_tables(keys) if keys else pa.table({})
        _FILES[load_id][table_name] = FileRows(kept, duplicates)


def take(load_id: str, table_name: str, files: Sequence[str]) -> pa.Table | None:
    """The staged rows of ``table_name`` in package ``load_id`` when the package ``files`` hold exactly
    those tables (columns and row counts); ``None`` when they must be read from the files."""
    with _LOCK:
        tables = _STAGED.get(load_id, {}).pop(table_name, None)
    if not tables:
        return None
    footers = [pq.read_metadata(f) for f in files]
    columns = {tuple(sorted(m.schema.to_arrow_schema().names)) for m in footers}
    if (sum(m.num_rows for m in footers) != sum(t.num_rows for t in tables)
            or columns != {tuple(sorted(t.column_names)) for t in tables}):
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def take_files(load_id: str, table_name: str) -> FileRows | None:
    """What :func:`record_files` kept for ``table_name`` of ``load_id`` (``None``: another process wrote
    the files, e.g. a package left by an interrupted run)."""
    with _LOCK:
        return _FILES.get(load_id, {}).pop(table_name, None)


def discard(load_ids: Sequence[str] | None = None) -> None:
    """Forget what is staged for ``load_ids`` (all when None)."""
    with _LOCK:
        for load_id in list(_STAGED) + list(_FILES) if load_ids is None else load_ids:
            _STAGED.pop(load_id, None)
            _FILES.pop(load_id, None)

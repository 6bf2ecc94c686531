"""A dlt destination that commits each load package to Iceberg through our catalog, atomically.

dlt extracts and normalizes into parquet load packages (schema inference/evolution, state); this
destination's load jobs only check the files, and ``complete_load`` — called by dlt once every job of
the package is done — commits each table in ONE Iceberg transaction. ``quotes`` arrives as data files
already written in the table's layout during the extract (:mod:`.extract_files`), which the commit
places as they are when it can (:mod:`.file_commit`); otherwise, and for the other tables, it takes the
rows (kept in memory by :mod:`.staging` when this process extracted them, else read from the package
files) and merges ``quotes`` on its primary key and appends the other tables. Each commit carries the load id
in its snapshot summary, so a package whose load was interrupted (exception, kill -9) is finished by
the next run without duplicates: dlt keeps the package until ``complete_load`` succeeds.

Why not dlt's ``filesystem`` destination with ``table_format="iceberg"``: in dlt 1.31 it can use a REST
catalog, but its merge calls pyiceberg ``upsert`` in batches of 1,000 rows — one commit per batch, so
a load is neither atomic nor fast (2.5M rows = 2,500 commits), and ``upsert`` rejects duplicate keys.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections import defaultdict
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq
from dlt.common.configuration import configspec
from dlt.common.configuration.container import Container
from dlt.common.destination import Destination, DestinationCapabilitiesContext
from dlt.common.destination.client import (
    DestinationClientConfiguration,
    JobClientBase,
    LoadJob,
    PreparedTableSchema,
    RunnableLoadJob,
)
from dlt.common.destination.configuration import ParquetFormatConfiguration
from dlt.common.destination.exceptions import DestinationTerminalException
from dlt.common.schema import Schema, TSchemaTables
from dlt.common.schema.utils import get_columns_names_with_prop
from dlt.common.storages.load_package import LoadPackageStateInjectableContext
from dlt.common.storages.load_storage import ParsedLoadJobFileName
from pyiceberg.catalog import Catalog

from lakehouse.stages.ingest import staging
from lakehouse.stages.ingest.extract_files import read_mark
from lakehouse.stages.ingest.file_commit import commit_files
from lakehouse.stages.ingest.tables import (
    NAMESPACE,
    CommitResult,
    append_commit,
    ensure_namespace,
    ensure_table,
    merge_commit,
)

#: Live catalogs handed to the destination by the ingest runner, by key (a pyiceberg Catalog is not
#: something dlt's configuration can carry).
_CATALOGS: dict[str, Catalog] = {}
_LOCK = threading.Lock()
#: Results of the last complete_load per load id (read by the ingest summary).
COMMITS: dict[str, list[CommitResult]] = {}
#: The order tables are committed in: rejected rows first, then quotes, dlt bookkeeping last.
TABLE_ORDER = ("quotes_rejected", "quotes")


def register_catalog(key: str, catalog: Catalog) -> None:
    """Make ``catalog`` available to destinations configured with ``catalog_key=key``."""
    with _LOCK:
        _CATALOGS[key] = catalog


def unregister_catalog(key: str) -> None:
    """Forget the catalog registered under ``key``."""
    with _LOCK:
        _CATALOGS.pop(key, None)


@configspec
class IcebergLakeConfiguration(DestinationClientConfiguration):
    destination_type: Final[str] = dataclasses.field(  # type: ignore[misc]
        default="iceberg_lake", init=False, repr=False, compare=False
    )
    catalog_key: str = "default"
    namespace: str = NAMESPACE


class StagedParquetJob(RunnableLoadJob):
    """Checks that the package file is readable parquet; the commit happens in ``complete_load``."""

    def run(self) -> None:
        try:
            pq.read_metadata(self._file_path)
        except Exception as exc:  # noqa: BLE001 - a broken file can never load
            raise DestinationTerminalException(f"unreadable load file {self._file_path}: {exc}") from exc


class IcebergLakeClient(JobClientBase):
    """dlt job client committing load packages to Iceberg tables in ``config.namespace``."""

    def __init__(self, schema: Schema, config: IcebergLakeConfiguration,
                 capabilities: DestinationCapabilitiesContext) -> None:
        super().__init__(schema, config, capabilities)
        self.config: IcebergLakeConfiguration = config

    @property
    def catalog(self) -> Catalog:
        try:
            return _CATALOGS[self.config.catalog_key]
        except KeyError:
            raise DestinationTerminalException(
                f"no lake catalog registered under {self.config.catalog_key!r}: run ingestion through "
                "lakehouse.stages.ingest.run_ingest (it opens the lake)") from None

    def initialize_storage(self, truncate_tables: Iterable[str] | None = None) -> None:
        ensure_namespace(self.catalog, self.config.namespace)

    def is_storage_initialized(self) -> bool:
        return True

    def drop_storage(self) -> None:
        raise DestinationTerminalException("dropping the raw namespace is not supported by ingestion")

    def update_stored_schema(self, only_tables: Iterable[str] | None = None,
                             expected_update: TSchemaTables | None = None, force: bool = False) -> TSchemaTables | None:
        return super().update_stored_schema(only_tables, expected_update, force)

    def create_load_job(self, table: PreparedTableSchema, file_path: str, load_id: str,
                        restore: bool = False) -> LoadJob:
        if ParsedLoadJobFileName.parse(file_path).file_format != "parquet":
            raise DestinationTerminalException(f"only parquet load files are supported, got {file_path}")
        return StagedParquetJob(file_path)

    def complete_load(self, load_id: str) -> None:
        """Commit every table of package ``load_id``: one Iceberg transaction per table."""
        ctx = Container()[LoadPackageStateInjectableContext]
        storage = ctx.storage
        files: dict[str, list[str]] = defaultdict(list)
        for job in storage.get_load_package_jobs(load_id)["completed_jobs"]:
            rel = storage.get_job_file_path(load_id, "completed_jobs", job.file_name())
            files[job.table_name].append(storage.storage.make_full_path(rel))
        loaded_at = dt.datetime.now(dt.UTC)
        results: list[CommitResult] = []
        order = [t for t in TABLE_ORDER if t in files] + sorted(t for t in files if t not in TABLE_ORDER)
        for name in order:
            result = self._commit_files(name, sorted(files[name]), load_id)
            if result is None:
                data = staging.take(load_id, name, files[name])
                if data is None:
                    data = pa.concat_tables([pq.read_table(f, memory_map=True) for f in sorted(files[name])],
                                            promote_options="permissive")
                result = self._commit_table(name, data, load_id, loaded_at)
            results.append(result)
        loads = ensure_table(self.catalog, "_dlt_loads", namespace=self.config.namespace)
        summary = ", ".join(f"{r.table}={r.rows}" for r in results)
        row = pa.table({"load_id": [load_id], "schema_name": [self.schema.name], "status": ["0"],
                        "inserted_at": pa.array([loaded_at], pa.timestamp("us", tz="UTC")),
                        "schema_version_hash": [self.schema.version_hash], "rows": [summary]})
        append_commit(loads, row, load_id, loaded_at)
        COMMITS[load_id] = results
        staging.discard([load_id])

    def _commit_files(self, name: str, files: list[str], load_id: str) -> CommitResult | None:
        """Commit package files written as data files during the extract as they are (``None``: they are
        not all such files of this load, or the table moved on; see :mod:`.file_commit`)."""
        marks = {read_mark(f) for f in files}
        staged = staging.take_files(load_id, name)
        mark = marks.pop() if len(marks) == 1 else None
        table_schema = self.schema.tables.get(name, {})
        keys = get_columns_names_with_prop(table_schema, "primary_key") if table_schema else []
        if mark is None or mark.load_id != load_id or not keys or table_schema.get("write_disposition") != "merge":
            return None
        table = ensure_table(self.catalog, name, namespace=self.config.namespace)
        return commit_files(table, files, mark, keys, staged.keys if staged else None,
                            staged.duplicates if staged else 0)

    def _commit_table(self, name: str, data: pa.Table, load_id: str, loaded_at: dt.datetime) -> CommitResult:
        table_schema = self.schema.tables.get(name, {})
        table = ensure_table(self.catalog, name, data.schema, namespace=self.config.namespace)
        keys = get_columns_names_with_prop(table_schema, "primary_key") if table_schema else []
        if table_schema.get("write_disposition") == "merge" and keys:
            return merge_commit(table, data, keys, load_id, loaded_at)
        return append_commit(table, data, load_id, loaded_at)

    def __enter__(self) -> IcebergLakeClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> None:
        pass


class iceberg_lake(Destination[IcebergLakeConfiguration, "IcebergLakeClient"]):  # noqa: N801 - dlt naming
    """dlt destination factory: ``iceberg_lake(catalog_key=...)``."""

    spec = IcebergLakeConfiguration

    def _raw_capabilities(self) -> DestinationCapabilitiesContext:
        caps = DestinationCapabilitiesContext()
        caps.preferred_loader_file_format = "parquet"
        caps.supported_loader_file_formats = ["parquet"]
        caps.preferred_staging_file_format = None
        caps.supported_staging_file_formats = []
        caps.has_case_sensitive_identifiers = True
        caps.max_identifier_length = 255
        caps.max_column_identifier_length = 255
        caps.supports_ddl_transactions = False
        caps.supported_merge_strategies = ["upsert"]
        caps.supported_replace_strategies = ["truncate-and-insert"]
        caps.timestamp_precision = 6
        caps.supports_tz_aware_datetime = True
        # load package files are local staging read back once by complete_load: skip compression
        caps.parquet_format = ParquetFormatConfiguration(compression="none")
        return caps

    @property
    def client_class(self) -> type[IcebergLakeClient]:
        return IcebergLakeClient

    def __init__(self, catalog_key: str = "default", namespace: str = NAMESPACE,
                 destination_name: str | None = None, environment: str | None = None, **kwargs: Any) -> None:
        super().__init__(catalog_key=catalog_key, namespace=namespace, destination_name=destination_name,
                         environment=environment, **kwargs)

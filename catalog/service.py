"""The catalog's operations on namespaces, tables and views (HTTP-free; the app maps them to routes)."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pyiceberg.catalog import MetastoreCatalog
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata, new_table_metadata
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortOrder

from catalog.errors import (
    AlreadyExists,
    BadRequest,
    CommitFailed,
    CommitStateUnknown,
    NoSuchNamespace,
    NoSuchTable,
    NotFound,
)
from catalog.locations import Warehouse
from catalog.metadata_io import LoadedMetadata, MetadataFiles
from catalog.names import check_name, check_namespace, ns_name
from catalog.store import TABLE, Store, Swap
from catalog.updates import apply_updates, check_requirements, is_create, parse_requirements, parse_updates

log = logging.getLogger("catalog")
#: Table properties that name where files go: they must lie inside the warehouse like the location.
PATH_PROPERTIES = ("write.metadata.path", "write.data.path", "write.object-storage.path", "write.folder-storage.path")


@dataclass(frozen=True)
class Staged:
    """Metadata of a table being created that is not in the catalog yet (stage-create)."""

    metadata: TableMetadata


@dataclass(frozen=True)
class PreparedCommit:
    """A table commit whose new metadata file is written but whose pointer swap is still pending."""

    namespace: tuple[str, ...]
    name: str
    base_location: str | None
    new: LoadedMetadata | None  # None: nothing changed


class CatalogService:
    """Namespaces, tables and commits of one warehouse."""

    def __init__(self, store: Store, files: MetadataFiles, warehouse_uri: str) -> None:
        self.store = store
        self.files = files
        self.warehouse = Warehouse(warehouse_uri)

    # Locations -----------------------------------------------------------------------------------
    def new_table_location(self, namespace: tuple[str, ...], name: str) -> str:
        """A location no other table has used: ``<namespace location>/<name>-<uuid>`` (plain segments)."""
        props = self.store.namespace_properties(namespace)
        unique = uuid.uuid4().hex
        if props.get("location"):
            base = self.warehouse.location(props["location"], "namespace location", allow_root=True)
            return self.warehouse.default_location(base, None, name, unique)
        return self.warehouse.default_location(self.warehouse.uri, namespace, name, unique)

    def check_location(self, location: object, what: str = "table location") -> str:
        """The checked form of a client-chosen location (see ``catalog.locations``); 400 when it is not
        inside the warehouse."""
        return self.warehouse.location(location, what)

    def check_properties(self, properties: dict[str, str]) -> None:
        """Paths set through table properties lie inside the warehouse too."""
        for key in PATH_PROPERTIES:
            if properties.get(key):
                self.warehouse.location(properties[key], f"property {key}")

    def check_write_path(self, path: str, existing_location: bool = False) -> None:
        """The server writes metadata files only inside the warehouse.

        A new location must pass the strict check; a table's existing location written by an older server
        (raw names in it, e.g. a space) is accepted while no reading of it leaves the warehouse.
        """
        if existing_location and self.warehouse.contains(path):
            return
        self.warehouse.location(path, "metadata file location")

    def prepare_location(self, location: str) -> None:
        """On local disk create the table's ``metadata/`` and ``data/`` folders (DuckDB expects them)."""
        root = self.warehouse.local_path(location)
        if root is not None:
            (root / "metadata").mkdir(parents=True, exist_ok=True)
            (root / "data").mkdir(parents=True, exist_ok=True)

    # Tables --------------------------------------------------------------------------------------
    def create_table(self, namespace: tuple[str, ...], request: dict[str, Any]) -> LoadedMetadata | Staged:
        """Create a table (or only stage it when ``stage-create`` is true)."""
        name = check_name(request.get("name"))
        self.store.require_namespace(namespace)
        if self.store.lookup(namespace, name) is not None:
            raise AlreadyExists(f"Table already exists: {ns_name(namespace)}.{name}")
        try:
            schema = Schema.model_validate(request.get("schema"))
            spec = PartitionSpec.model_validate(_with_field_ids(request["partition-spec"])) \
                if request.get("partition-spec") else UNPARTITIONED_PARTITION_SPEC
            order = SortOrder.model_validate(request["write-order"]) if request.get("write-order") \
                else UNSORTED_SORT_ORDER
        except (ValidationError, ValueError, TypeError) as exc:
            raise BadRequest(f"invalid create-table request: {_first_error(exc)}") from exc
        props = {str(k): str(v) for k, v in (request.get("properties") or {}).items()}
        self.check_properties(props)
        location = self.check_location(request["location"]) if request.get("location") \
            else self.new_table_location(namespace, name)
        try:
            metadata = new_table_metadata(schema, spec, order, location, props)
        except (ValueError, ValidationError) as exc:
            raise BadRequest(f"invalid create-table request: {_first_error(exc)}") from exc
        self.prepare_location(location)
        if request.get("stage-create"):
            return Staged(metadata)
        provider = load_location_provider(location, metadata.properties)
        path = provider.new_table_metadata_file_location(0)
        self.check_write_path(path)
        loaded = self.files.write(path, metadata)
        try:
            self.store.insert(namespace, name, loaded.location, TABLE)
        except CommitStateUnknown:
            raise  # the row may exist: keep the file it points at
        except Exception:
            self.files.delete(loaded.location)
            raise
        log.info("created table %s.%s at %s", ns_name(namespace), name, location)
        return loaded

    def load_table(self, namespace: tuple[str, ...], name: str) -> LoadedMetadata:
        """Current metadata of a table (404 when it does not exist)."""
        loc = self.store.location_of(namespace, name)
        if loc is None:
            self._missing_table(namespace, name)
        return self.files.read(loc)

    def _missing_table(self, namespace: tuple[str, ...], name: str) -> None:
        if not self.store.namespace_exists(namespace):
            raise NoSuchNamespace(f"Namespace does not exist: {ns_name(namespace)}")
        raise NoSuchTable(f"Table does not exist: {ns_name(namespace)}.{name}")

    def table_exists(self, namespace: tuple[str, ...], name: str) -> bool:
        """True when the table exists."""
        return self.store.location_of(namespace, name) is not None

    def prepare_commit(self, namespace: tuple[str, ...], name: str, body: dict[str, Any]) -> PreparedCommit:
        """Check requirements, apply updates and write the new metadata file (no pointer swap yet)."""
        check_name(name)
        requirements = parse_requirements(body.get("requirements"))
        base_loc = self.store.location_of(namespace, name)
        if base_loc is None:
            if not is_create(requirements):
                self._missing_table(namespace, name)
            self.store.require_namespace(namespace)
            if self.store.lookup(namespace, name) is not None:
                raise CommitFailed(f"Requirement failed: {ns_name(namespace)}.{name} already exists as a view")
            base = None
        else:
            base = self.files.read(base_loc)
        base_md = base.metadata if base else None
        check_requirements(requirements, base_md)
        updates = parse_updates(body.get("updates", []), base_md)
        metadata, extras = apply_updates(base_md, base_loc, updates, base.extras if base else {})
        if base is not None and metadata == base.metadata and extras == base.extras:
            return PreparedCommit(namespace, name, base_loc, None)
        if base is None:
            if not metadata.location:
                metadata = metadata.model_copy(update={"location": self.new_table_location(namespace, name)})
            self.check_location(metadata.location)
            self.prepare_location(metadata.location)
        elif metadata.location != base.metadata.location:
            self.check_location(metadata.location)
        if base is None or metadata.properties != base.metadata.properties:
            self.check_properties(metadata.properties)
        version = MetastoreCatalog._parse_metadata_version(base_loc) + 1 if base_loc else 0
        provider = load_location_provider(metadata.location, metadata.properties)
        path = provider.new_table_metadata_file_location(version)
        self.check_write_path(path, existing_location=base is not None and _same_paths(metadata, base.metadata))
        new = self.files.write(path, metadata, extras)
        return PreparedCommit(namespace, name, base_loc, new)

    def finish(self, prepared: list[PreparedCommit]) -> None:
        """Swap every pointer of the prepared commits in one transaction.

        The new metadata files are deleted only when the commit is known to have failed. When the
        database cannot say (the connection was lost during COMMIT: it may have landed), the files stay
        and the client gets ``CommitStateUnknownException``: a table must never point at a deleted file.
        """
        swaps = [Swap(p.namespace, p.name, p.base_location, p.new.location) for p in prepared if p.new is not None]
        if not swaps:
            return
        try:
            self.store.swap(swaps)
        except CommitStateUnknown:
            log.error("commit state unknown for %s; new metadata files kept: %s",
                      [f"{ns_name(s.namespace)}.{s.name}" for s in swaps], [s.new for s in swaps])
            raise
        except Exception:
            self._discard(prepared)
            raise

    def _discard(self, prepared: list[PreparedCommit]) -> None:
        for p in prepared:
            if p.new is not None:
                self.files.delete(p.new.location)

    def commit_table(self, namespace: tuple[str, ...], name: str, body: dict[str, Any]) -> LoadedMetadata:
        """One table's commit: requirements, updates, one compare-and-swap (409 when it lost a race)."""
        prepared = self.prepare_commit(namespace, name, body)
        self.finish([prepared])
        return prepared.new or self.files.read(prepared.base_location)

    def commit_transaction(self, changes: list[dict[str, Any]]) -> None:
        """Commit several tables all-or-nothing: every requirement holds and every swap succeeds, or none."""
        if not isinstance(changes, list) or not changes:
            raise BadRequest("table-changes must be a non-empty list")
        idents: list[tuple[tuple[str, ...], str]] = []
        for ch in changes:
            ident = ch.get("identifier") if isinstance(ch, dict) else None
            if not isinstance(ident, dict):
                raise BadRequest("every table change needs an identifier {namespace, name}")
            idents.append((check_namespace(ident.get("namespace")), check_name(ident.get("name"))))
        if len(set(idents)) != len(idents):
            raise BadRequest("a transaction may change each table only once")
        prepared: list[PreparedCommit] = []
        try:
            for (ns, name), ch in zip(idents, changes, strict=True):
                prepared.append(self.prepare_commit(ns, name, ch))
        except Exception:
            self._discard(prepared)  # nothing was swapped yet
            raise
        self.finish(prepared)

    def drop_table(self, namespace: tuple[str, ...], name: str, purge: bool) -> None:
        """Remove a table from the catalog; with ``purge`` also delete its files."""
        loc = self.store.delete(namespace, name, TABLE)
        if loc is None:
            self._missing_table(namespace, name)
        log.info("dropped table %s.%s (purge=%s)", ns_name(namespace), name, purge)
        if purge and loc:
            self.purge_files(loc)

    def table_files(self, metadata: TableMetadata) -> Iterator[tuple[str, str]]:
        """``(kind, path)`` of every file a table's metadata references that lies inside the warehouse.

        Manifest lists and manifests outside the warehouse are not even read (a client could point them
        at any file on the server); referenced files outside it are skipped and logged.
        """
        io = self.files.io(metadata.location)
        for snap in metadata.snapshots:
            if not self._inside(snap.manifest_list, "manifest list"):
                continue
            for manifest in snap.manifests(io):
                if not self._inside(manifest.manifest_path, "manifest"):
                    continue
                for entry in manifest.fetch_manifest_entry(io, discard_deleted=False):
                    if self._inside(entry.data_file.file_path, "data file"):
                        yield "data", entry.data_file.file_path
                yield "manifest", manifest.manifest_path
            yield "manifest list", snap.manifest_list
        for stat in [*metadata.statistics, *metadata.partition_statistics]:
            if self._inside(stat.statistics_path, "statistics file"):
                yield "statistics", stat.statistics_path
        for entry in metadata.metadata_log:
            if self._inside(entry.metadata_file, "metadata file"):
                yield "previous metadata", entry.metadata_file

    def _inside(self, path: str, kind: str) -> bool:
        if self.warehouse.contains(path):
            return True
        log.warning("skipping %s outside the warehouse: %s", kind, path)
        return False

    def purge_files(self, metadata_location: str) -> None:
        """Delete a dropped table's files inside the warehouse, then its emptied folders (best effort, logged).

        Only files the table references are deleted, never a whole folder: a client-chosen location
        may be shared with other tables.
        """
        try:
            metadata = self.files.read(metadata_location).metadata
            io = self.files.io(metadata_location)
            for _kind, path in dict.fromkeys(self.table_files(metadata)):
                with contextlib.suppress(FileNotFoundError, OSError):
                    io.delete(path)
            if self.warehouse.contains(metadata_location):
                self.files.delete(metadata_location)
            self._remove_empty_dirs(metadata.location)
        except Exception as exc:  # noqa: BLE001 - the drop itself succeeded
            log.warning("purge of %s incomplete: %s", metadata_location, exc)

    def _remove_empty_dirs(self, location: str) -> None:
        """Remove the empty folders left under a local table location (object stores have none)."""
        root = self.warehouse.local_path(location)
        if root is None or not self.warehouse.contains(location) or not root.is_dir():
            return
        for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when empty
        with contextlib.suppress(OSError):
            root.rmdir()

    def rename_table(self, src: tuple[tuple[str, ...], str], dst: tuple[tuple[str, ...], str]) -> None:
        """Rename a table, also into another namespace (404 source/namespace, 409 destination exists)."""
        if self.store.location_of(*src) is None:
            self._missing_table(*src)
        if not self.store.namespace_exists(dst[0]):
            raise NoSuchNamespace(f"Namespace does not exist: {ns_name(dst[0])}")
        if self.store.lookup(*dst) is not None:
            raise AlreadyExists(f"Table already exists: {ns_name(dst[0])}.{dst[1]}")
        if not self.store.rename(src, dst, TABLE):
            self._missing_table(*src)

    def register_table(self, namespace: tuple[str, ...], name: str, metadata_location: str,
                       overwrite: bool = False) -> LoadedMetadata:
        """Register an existing metadata file as a table.

        Only metadata files inside the warehouse are read, and the table they describe must live inside
        it too (later commits write next to it, a purge deletes its files).
        """
        check_name(name)
        self.store.require_namespace(namespace)
        metadata_location = self.warehouse.metadata_file(metadata_location)
        try:
            loaded = self.files.read(metadata_location)
        except NotFound as exc:
            raise BadRequest(exc.message) from exc
        self.check_location(loaded.metadata.location, "location of the registered table")
        self.check_properties(loaded.metadata.properties)
        if overwrite:
            found = self.store.lookup(namespace, name)
            if found is not None and found[0] != TABLE:
                raise AlreadyExists(f"A view named {ns_name(namespace)}.{name} exists")
            self.store.replace(namespace, name, metadata_location, TABLE)
        else:
            self.store.insert(namespace, name, metadata_location, TABLE)
        return loaded


def _same_paths(new: TableMetadata, old: TableMetadata) -> bool:
    """True when a commit keeps the table's location and metadata path."""
    key = "write.metadata.path"
    return new.location == old.location and new.properties.get(key) == old.properties.get(key)


def _first_error(exc: Exception) -> str:
    """A parse error named without the offending input (pydantic's text quotes the whole value)."""
    if isinstance(exc, ValidationError) and exc.errors():
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()))
        return f"{where}: {err.get('msg')}" if where else str(err.get("msg"))
    return str(exc)[:300]


def _with_field_ids(spec: dict[str, Any]) -> dict[str, Any]:
    """Number partition fields that came without ``field-id`` (unbound specs)."""
    if not isinstance(spec, dict):
        return spec
    fields = []
    for i, f in enumerate(spec.get("fields", [])):
        if isinstance(f, dict) and "field-id" not in f:
            f = {**f, "field-id": 1000 + i}
        fields.append(f)
    return {**spec, "fields": fields}

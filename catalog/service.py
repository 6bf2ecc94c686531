"""The catalog's operations on namespaces, tables and views (HTTP-free; the app maps them to routes)."""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pydantic import ValidationError
from pyiceberg.catalog import MetastoreCatalog
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata, new_table_metadata
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortOrder

from catalog.errors import AlreadyExists, BadRequest, CommitFailed, NoSuchNamespace, NoSuchTable, NotFound
from catalog.metadata_io import LoadedMetadata, MetadataFiles
from catalog.names import check_name, check_namespace, ns_key
from catalog.store import TABLE, Store, Swap
from catalog.updates import apply_updates, check_requirements, is_create, parse_requirements, parse_updates

log = logging.getLogger("catalog")


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
        self.warehouse = warehouse_uri.rstrip("/")

    # Locations -----------------------------------------------------------------------------------
    def new_table_location(self, namespace: tuple[str, ...], name: str) -> str:
        """A location no other table has used: ``<namespace location>/<name>-<uuid>``."""
        props = self.store.namespace_properties(namespace)
        base = props.get("location", "").rstrip("/") or f"{self.warehouse}/{'/'.join(namespace)}"
        return f"{base}/{name}-{uuid.uuid4().hex}"

    def check_location(self, location: str) -> str:
        """A client-chosen table location must lie inside the warehouse (no '..')."""
        location = location.rstrip("/")
        if ".." in location.split("/") or not (location + "/").startswith(self.warehouse + "/"):
            raise BadRequest(f"table location {location} is outside the warehouse {self.warehouse}")
        return location

    def check_write_path(self, path: str, table_location: str) -> None:
        """The server writes metadata only inside the warehouse or the table's own location (a registered
        table may live elsewhere); ``write.metadata.path`` cannot point it anywhere else."""
        if ".." in path.split("/"):
            raise BadRequest(f"metadata path {path} contains '..'")
        if not any((path + "/").startswith(root.rstrip("/") + "/") for root in (self.warehouse, table_location)):
            raise BadRequest(f"metadata path {path} is outside the warehouse and the table location")

    @staticmethod
    def prepare_location(location: str) -> None:
        """On local disk create the table's ``metadata/`` and ``data/`` folders (DuckDB expects them)."""
        parsed = urlparse(location)
        if parsed.scheme in ("", "file"):
            root = Path(unquote(parsed.path))
            (root / "metadata").mkdir(parents=True, exist_ok=True)
            (root / "data").mkdir(parents=True, exist_ok=True)

    # Tables --------------------------------------------------------------------------------------
    def create_table(self, namespace: tuple[str, ...], request: dict[str, Any]) -> LoadedMetadata | Staged:
        """Create a table (or only stage it when ``stage-create`` is true)."""
        name = check_name(request.get("name"))
        self.store.require_namespace(namespace)
        if self.store.lookup(namespace, name) is not None:
            raise AlreadyExists(f"Table already exists: {ns_key(namespace)}.{name}")
        try:
            schema = Schema.model_validate(request.get("schema"))
            spec = PartitionSpec.model_validate(_with_field_ids(request["partition-spec"])) \
                if request.get("partition-spec") else UNPARTITIONED_PARTITION_SPEC
            order = SortOrder.model_validate(request["write-order"]) if request.get("write-order") \
                else UNSORTED_SORT_ORDER
        except (ValidationError, ValueError, TypeError) as exc:
            raise BadRequest(f"invalid create-table request: {exc}") from exc
        props = {str(k): str(v) for k, v in (request.get("properties") or {}).items()}
        location = self.check_location(request["location"]) if request.get("location") \
            else self.new_table_location(namespace, name)
        try:
            metadata = new_table_metadata(schema, spec, order, location, props)
        except (ValueError, ValidationError) as exc:
            raise BadRequest(f"invalid create-table request: {exc}") from exc
        self.prepare_location(location)
        if request.get("stage-create"):
            return Staged(metadata)
        provider = load_location_provider(location, metadata.properties)
        path = provider.new_table_metadata_file_location(0)
        self.check_write_path(path, location)
        loaded = self.files.write(path, metadata)
        try:
            self.store.insert(namespace, name, loaded.location, TABLE)
        except AlreadyExists:
            self.files.delete(loaded.location)
            raise
        log.info("created table %s.%s at %s", ns_key(namespace), name, location)
        return loaded

    def load_table(self, namespace: tuple[str, ...], name: str) -> LoadedMetadata:
        """Current metadata of a table (404 when it does not exist)."""
        loc = self.store.location_of(namespace, name)
        if loc is None:
            self._missing_table(namespace, name)
        return self.files.read(loc)

    def _missing_table(self, namespace: tuple[str, ...], name: str) -> None:
        if not self.store.namespace_exists(namespace):
            raise NoSuchNamespace(f"Namespace does not exist: {ns_key(namespace)}")
        raise NoSuchTable(f"Table does not exist: {ns_key(namespace)}.{name}")

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
                raise CommitFailed(f"Requirement failed: {ns_key(namespace)}.{name} already exists as a view")
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
        version = MetastoreCatalog._parse_metadata_version(base_loc) + 1 if base_loc else 0
        provider = load_location_provider(metadata.location, metadata.properties)
        path = provider.new_table_metadata_file_location(version)
        self.check_write_path(path, metadata.location)
        new = self.files.write(path, metadata, extras)
        return PreparedCommit(namespace, name, base_loc, new)

    def finish(self, prepared: list[PreparedCommit]) -> None:
        """Swap every pointer of the prepared commits in one transaction; on failure delete the new files."""
        swaps = [Swap(p.namespace, p.name, p.base_location, p.new.location) for p in prepared if p.new is not None]
        if not swaps:
            return
        try:
            self.store.swap(swaps)
        except Exception:
            for p in prepared:
                if p.new is not None:
                    self.files.delete(p.new.location)
            raise

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
            for p in prepared:
                if p.new is not None:
                    self.files.delete(p.new.location)
            raise
        self.finish(prepared)

    def drop_table(self, namespace: tuple[str, ...], name: str, purge: bool) -> None:
        """Remove a table from the catalog; with ``purge`` also delete its files."""
        loc = self.store.delete(namespace, name, TABLE)
        if loc is None:
            self._missing_table(namespace, name)
        log.info("dropped table %s.%s (purge=%s)", ns_key(namespace), name, purge)
        if purge and loc:
            self.purge_files(loc)

    def purge_files(self, metadata_location: str) -> None:
        """Delete a dropped table's data, manifests and metadata files (best effort, logged)."""
        try:
            metadata = self.files.read(metadata_location).metadata
            io = self.files.io(metadata_location)
            from pyiceberg.catalog import delete_data_files, delete_files

            manifests = []
            lists = set()
            for snap in metadata.snapshots:
                manifests += snap.manifests(io)
                lists.add(snap.manifest_list)
            delete_data_files(io, manifests)
            delete_files(io, {m.manifest_path for m in manifests}, "manifest")
            delete_files(io, lists, "manifest list")
            delete_files(io, {e.metadata_file for e in metadata.metadata_log}, "previous metadata")
            for stat in [*metadata.statistics, *metadata.partition_statistics]:
                delete_files(io, {stat.statistics_path}, "statistics")
            delete_files(io, {metadata_location}, "metadata")
            self._remove_table_dir(metadata.location)
        except Exception as exc:  # noqa: BLE001 - the drop itself succeeded
            log.warning("purge of %s incomplete: %s", metadata_location, exc)

    def _remove_table_dir(self, location: str) -> None:
        """Remove whatever is left under a (unique) table location inside the warehouse."""
        if not (location + "/").startswith(self.warehouse + "/") or location == self.warehouse:
            return
        parsed = urlparse(location)
        if parsed.scheme in ("", "file"):
            import shutil

            shutil.rmtree(unquote(parsed.path), ignore_errors=True)
        else:
            fio = self.files.io(location)
            fs = getattr(fio, "fs_by_scheme", None)
            if fs is not None:
                filesystem = fs(parsed.scheme, parsed.netloc)
                with contextlib.suppress(OSError):
                    filesystem.delete_dir(f"{parsed.netloc}{parsed.path}")

    def rename_table(self, src: tuple[tuple[str, ...], str], dst: tuple[tuple[str, ...], str]) -> None:
        """Rename a table, also into another namespace (404 source/namespace, 409 destination exists)."""
        if self.store.location_of(*src) is None:
            self._missing_table(*src)
        if not self.store.namespace_exists(dst[0]):
            raise NoSuchNamespace(f"Namespace does not exist: {ns_key(dst[0])}")
        if self.store.lookup(*dst) is not None:
            raise AlreadyExists(f"Table already exists: {ns_key(dst[0])}.{dst[1]}")
        if not self.store.rename(src, dst, TABLE):
            self._missing_table(*src)

    def register_table(self, namespace: tuple[str, ...], name: str, metadata_location: str,
                       overwrite: bool = False) -> LoadedMetadata:
        """Register an existing metadata file as a table."""
        check_name(name)
        self.store.require_namespace(namespace)
        if not isinstance(metadata_location, str) or not metadata_location:
            raise BadRequest("metadata-location is required")
        try:
            loaded = self.files.read(metadata_location)
        except NotFound as exc:
            raise BadRequest(str(exc)) from exc
        if overwrite:
            found = self.store.lookup(namespace, name)
            if found is not None and found[0] != TABLE:
                raise AlreadyExists(f"A view named {ns_key(namespace)}.{name} exists")
            self.store.replace(namespace, name, metadata_location, TABLE)
        else:
            self.store.insert(namespace, name, metadata_location, TABLE)
        return loaded


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

"""Iceberg views: create, load, replace (commit), rename, register and drop.

View metadata is validated with pyiceberg's ``ViewMetadata`` model; the spec's view updates
(pyiceberg has no view-update logic) are applied here.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import ValidationError
from pyiceberg.schema import Schema
from pyiceberg.view.metadata import ViewMetadata

from catalog.errors import (
    AlreadyExists,
    BadRequest,
    CommitFailed,
    CommitStateUnknown,
    NoSuchNamespace,
    NoSuchView,
    NotFound,
)
from catalog.locations import Warehouse
from catalog.metadata_io import MetadataFiles
from catalog.names import check_name, ns_name
from catalog.store import VIEW, Store, Swap


def _now_ms() -> int:
    return int(time.time() * 1000)


def _validate(doc: dict[str, Any]) -> dict[str, Any]:
    try:
        ViewMetadata.model_validate(doc)
    except ValidationError as exc:
        raise BadRequest(f"invalid view metadata: {exc.errors()[0].get('msg')} at "
                         f"{'.'.join(str(p) for p in exc.errors()[0].get('loc', ()))}") from exc
    return doc


def _schema_doc(raw: Any, schema_id: int) -> dict[str, Any]:
    try:
        schema = Schema.model_validate(raw)
    except (ValidationError, ValueError, TypeError) as exc:
        raise BadRequest(f"invalid view schema: {exc}") from exc
    doc = schema.model_dump(by_alias=True, mode="json")
    doc["schema-id"] = schema_id
    return doc


def _version_number(location: str) -> int:
    name = location.rsplit("/", 1)[-1]
    head = name.split("-", 1)[0]
    return int(head) if head.isdigit() else -1


class ViewService:
    """Views of one warehouse (rows with ``iceberg_type = 'VIEW'``)."""

    def __init__(self, store: Store, files: MetadataFiles, warehouse: Warehouse, new_location) -> None:  # noqa: ANN001
        self.store = store
        self.files = files
        self.warehouse = warehouse  # a view's location lies inside it, like a table's
        self.new_location = new_location  # (namespace, name) -> unique location

    def _missing(self, namespace: tuple[str, ...], name: str) -> None:
        if not self.store.namespace_exists(namespace):
            raise NoSuchNamespace(f"Namespace does not exist: {ns_name(namespace)}")
        raise NoSuchView(f"View does not exist: {ns_name(namespace)}.{name}")

    def _write(self, location: str, version: int, doc: dict[str, Any], existing_location: bool = False) -> str:
        path = f"{location}/metadata/{version:05d}-{uuid.uuid4()}.metadata.json"
        if not (existing_location and self.warehouse.contains(path)):  # see CatalogService.check_write_path
            self.warehouse.location(path, "view metadata location")
        self.files.write_json(path, doc)
        return path

    def create(self, namespace: tuple[str, ...], req: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Create a view from a CreateViewRequest."""
        name = check_name(req.get("name"))
        self.store.require_namespace(namespace)
        if self.store.lookup(namespace, name) is not None:
            raise AlreadyExists(f"A table or view named {ns_name(namespace)}.{name} already exists")
        version = dict(req.get("view-version") or {})
        if not version:
            raise BadRequest("view-version is required")
        location = self.warehouse.location(req["location"], "view location") if req.get("location") \
            else self.new_location(namespace, name)
        version.update({"version-id": 1, "schema-id": 0})
        version.setdefault("timestamp-ms", _now_ms())
        doc = _validate({
            "view-uuid": str(uuid.uuid4()), "format-version": 1, "location": location,
            "schemas": [_schema_doc(req.get("schema"), 0)], "current-version-id": 1, "versions": [version],
            "version-log": [{"timestamp-ms": version["timestamp-ms"], "version-id": 1}],
            "properties": {str(k): str(v) for k, v in (req.get("properties") or {}).items()},
        })
        path = self._write(location, 0, doc)
        try:
            self.store.insert(namespace, name, path, VIEW)
        except CommitStateUnknown:
            raise
        except Exception:
            self.files.delete(path)
            raise
        return path, doc

    def load(self, namespace: tuple[str, ...], name: str) -> tuple[str, dict[str, Any]]:
        """Current metadata location and document of a view."""
        loc = self.store.location_of(namespace, name, VIEW)
        if loc is None:
            self._missing(namespace, name)
        return loc, self.files.read_json(loc)

    def exists(self, namespace: tuple[str, ...], name: str) -> bool:
        """True when the view exists."""
        return self.store.location_of(namespace, name, VIEW) is not None

    def commit(self, namespace: tuple[str, ...], name: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Replace a view: requirements (``assert-view-uuid``) and view updates, one compare-and-swap."""
        base_loc, base = self.load(namespace, name)
        for req in body.get("requirements") or []:
            if not isinstance(req, dict) or req.get("type") != "assert-view-uuid":
                raise BadRequest(f"unknown view requirement: {req!r}")
            if req.get("uuid") != base["view-uuid"]:
                raise CommitFailed("Requirement failed: view UUID does not match")
        try:
            doc = apply_view_updates(base, body.get("updates") or [])
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise BadRequest(f"invalid view update: {type(exc).__name__}: {exc}") from exc
        if doc == base:
            return base_loc, base
        moved = doc.get("location") != base.get("location")
        if moved:
            doc["location"] = self.warehouse.location(doc.get("location"), "view location")
        path = self._write(doc["location"], _version_number(base_loc) + 1, _validate(doc), existing_location=not moved)
        try:
            self.store.swap([Swap(namespace, name, base_loc, path, VIEW)])
        except CommitStateUnknown:
            raise  # the pointer may have moved: keep the file it names
        except Exception:
            self.files.delete(path)
            raise
        return path, doc

    def drop(self, namespace: tuple[str, ...], name: str) -> None:
        """Remove a view from the catalog (its metadata files stay)."""
        if self.store.delete(namespace, name, VIEW) is None:
            self._missing(namespace, name)

    def rename(self, src: tuple[tuple[str, ...], str], dst: tuple[tuple[str, ...], str]) -> None:
        """Rename a view, also across namespaces."""
        if not self.exists(*src):
            self._missing(*src)
        if not self.store.namespace_exists(dst[0]):
            raise NoSuchNamespace(f"Namespace does not exist: {ns_name(dst[0])}")
        if self.store.lookup(*dst) is not None:
            raise AlreadyExists(f"A table or view named {ns_name(dst[0])}.{dst[1]} already exists")
        if not self.store.rename(src, dst, VIEW):
            self._missing(*src)

    def register(self, namespace: tuple[str, ...], name: str, metadata_location: str) -> tuple[str, dict[str, Any]]:
        """Register an existing view metadata file (only one inside the warehouse, for a view inside it)."""
        check_name(name)
        self.store.require_namespace(namespace)
        metadata_location = self.warehouse.metadata_file(metadata_location)
        try:
            doc = _validate(self.files.read_json(metadata_location))
        except NotFound as exc:
            raise BadRequest(exc.message) from exc
        self.warehouse.location(doc.get("location"), "location of the registered view")
        self.store.insert(namespace, name, metadata_location, VIEW)
        return metadata_location, doc


def apply_view_updates(base: dict[str, Any], updates: list[Any]) -> dict[str, Any]:
    """The spec's view updates applied to a view metadata document (400 on an invalid one)."""
    doc = {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    last_schema: int | None = None
    last_version: int | None = None
    for u in updates:
        if not isinstance(u, dict):
            raise BadRequest("invalid view update: expected an object")
        action = u.get("action")
        if action == "assign-uuid":
            doc["view-uuid"] = str(u["uuid"])
        elif action == "upgrade-format-version":
            if u.get("format-version") != 1:
                raise BadRequest("views support format-version 1 only")
        elif action == "add-schema":
            sid = max((s["schema-id"] for s in doc["schemas"]), default=-1) + 1
            doc["schemas"].append(_schema_doc(u.get("schema"), sid))
            last_schema = sid
        elif action == "set-location":
            doc["location"] = str(u["location"]).rstrip("/")
        elif action == "set-properties":
            doc["properties"] = {**doc.get("properties", {}), **{str(k): str(v) for k, v in u["updates"].items()}}
        elif action == "remove-properties":
            doc["properties"] = {k: v for k, v in doc.get("properties", {}).items() if k not in u["removals"]}
        elif action == "add-view-version":
            version = dict(u.get("view-version") or {})
            if version.get("schema-id") == -1:
                if last_schema is None:
                    raise BadRequest("add-view-version refers to the last added schema, but none was added")
                version["schema-id"] = last_schema
            if version.get("schema-id") not in {s["schema-id"] for s in doc["schemas"]}:
                raise BadRequest(f"add-view-version: unknown schema-id {version.get('schema-id')}")
            vid = max((v["version-id"] for v in doc["versions"]), default=0) + 1
            version["version-id"] = vid
            version.setdefault("timestamp-ms", _now_ms())
            doc["versions"].append(version)
            last_version = vid
        elif action == "set-current-view-version":
            vid = u.get("view-version-id")
            if vid == -1:
                if last_version is None:
                    raise BadRequest("set-current-view-version -1 but no version was added")
                vid = last_version
            if vid not in {v["version-id"] for v in doc["versions"]}:
                raise BadRequest(f"set-current-view-version: unknown version {vid}")
            doc["current-version-id"] = vid
            doc["version-log"].append({"timestamp-ms": _now_ms(), "version-id": vid})
        else:
            raise BadRequest(f"unknown view update action: {action!r}")
    return doc

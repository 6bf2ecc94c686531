"""Tables: list, create / stage-create, register, load (ETag, ``snapshots=refs``), exists, commit, drop,
credentials, metrics reports and rename."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response

from catalog.errors import BadRequest
from catalog.metadata_io import LoadedMetadata
from catalog.models import (
    CommitTableRequest,
    CreateTableRequest,
    RegisterTableRequest,
    RenameTableRequest,
    ReportMetricsRequest,
)
from catalog.names import check_name, check_namespace, ns_name
from catalog.routes.deps import Ctx, NamespacePath, Paging, Storage, StorageAccess, TablePath, json_response, paginate
from catalog.service import Staged

log = logging.getLogger("catalog")
router = APIRouter(tags=["tables"])


def etag(location: str) -> str:
    """The ETag of a table's current metadata: its location names an immutable file."""
    return '"' + hashlib.sha1(location.encode()).hexdigest() + '"'  # noqa: S324 - not security relevant


def table_result(loaded: LoadedMetadata | Staged, storage: StorageAccess, snapshots: str = "all") -> Response:
    """A LoadTableResult: metadata (the file's bytes when possible), its location, config and credentials."""
    if isinstance(loaded, Staged):
        body = {"metadata": json.loads(loaded.metadata.model_dump_json(exclude_none=True)), "config": storage.config}
        if storage.credentials:
            body["storage-credentials"] = storage.credentials
        return json_response(body)
    if snapshots == "refs":
        md = loaded.as_dict()
        keep = {r.get("snapshot-id") for r in (md.get("refs") or {}).values()}
        md["snapshots"] = [s for s in md.get("snapshots", []) if s.get("snapshot-id") in keep]
        meta_bytes = json.dumps(md, separators=(",", ":")).encode()
    else:
        meta_bytes = loaded.raw
    extra = b""
    if storage.credentials:
        extra = b',"storage-credentials":' + json.dumps(storage.credentials).encode()
    payload = (b'{"metadata-location":' + json.dumps(loaded.location).encode() + b',"metadata":' + meta_bytes
               + b',"config":' + json.dumps(storage.config).encode() + extra + b"}")
    return Response(payload, media_type="application/json", headers={"ETag": etag(loaded.location)})


def rename_pair(req: RenameTableRequest) -> tuple[tuple[tuple[str, ...], str], tuple[tuple[str, ...], str]]:
    """The validated (namespace, name) of a rename's source and destination (tables and views)."""
    return ((check_namespace(req.source.namespace), check_name(req.source.name)),
            (check_namespace(req.destination.namespace), check_name(req.destination.name)))


@router.get("/v1/namespaces/{namespace}/tables")
async def list_tables(ctx: Ctx, ns: NamespacePath, page: Paging) -> Response:
    """Tables of a namespace, paginated."""
    items, nxt = paginate(await ctx.read(ctx.store.list_objects, ns), page, key=lambda n: n)
    body: dict[str, Any] = {"identifiers": [{"namespace": list(ns), "name": n} for n in items]}
    if nxt:
        body["next-page-token"] = nxt
    return json_response(body)


@router.post("/v1/namespaces/{namespace}/tables")
def create_table(ctx: Ctx, storage: Storage, ns: NamespacePath, req: CreateTableRequest) -> Response:
    """Create a table, or stage its creation (``stage-create``)."""
    return table_result(ctx.service.create_table(ns, req.model_dump(by_alias=True, exclude_unset=False)), storage)


@router.post("/v1/namespaces/{namespace}/register")
def register_table(ctx: Ctx, storage: Storage, ns: NamespacePath, req: RegisterTableRequest) -> Response:
    """Register an existing metadata file (inside the warehouse) as a table."""
    return table_result(ctx.service.register_table(ns, req.name, req.metadata_location, req.overwrite), storage)


@router.get("/v1/namespaces/{namespace}/tables/{table}")
async def load_table(
    request: Request, ctx: Ctx, storage: Storage, ns: NamespacePath, table: TablePath,
    snapshots: Literal["all", "refs"] = Query(default="all"),
) -> Response:
    """Current metadata of a table with its location and the storage config."""
    loaded = await ctx.read(ctx.service.load_table, ns, table)
    if request.headers.get("if-none-match") == etag(loaded.location):
        return Response(status_code=304, headers={"ETag": etag(loaded.location)})
    return table_result(loaded, storage, snapshots)


@router.head("/v1/namespaces/{namespace}/tables/{table}")
async def table_exists(ctx: Ctx, ns: NamespacePath, table: TablePath) -> Response:
    """204 when the table exists, 404 otherwise."""
    return Response(status_code=204 if await ctx.read(ctx.service.table_exists, ns, table) else 404)


@router.post("/v1/namespaces/{namespace}/tables/{table}")
def commit_table(ctx: Ctx, ns: NamespacePath, table: TablePath, req: CommitTableRequest) -> Response:
    """Commit updates to a table under its requirements (409 CommitFailedException when they fail)."""
    if req.identifier is not None and (tuple(req.identifier.namespace), req.identifier.name) != (ns, table):
        raise BadRequest("identifier in the body does not match the path")
    loaded = ctx.service.commit_table(ns, table, req.model_dump(by_alias=True))
    # the metadata file's own JSON text, spliced in (not parsed and encoded again on every commit)
    payload = b'{"metadata-location":' + json.dumps(loaded.location).encode() + b',"metadata":' + loaded.raw + b"}"
    return Response(payload, media_type="application/json")


@router.delete("/v1/namespaces/{namespace}/tables/{table}", status_code=204)
def drop_table(ctx: Ctx, ns: NamespacePath, table: TablePath,
               purge_requested: bool = Query(default=False, alias="purgeRequested")) -> Response:
    """Drop a table; its files stay unless ``purgeRequested=true``."""
    ctx.service.drop_table(ns, table, purge_requested)
    return Response(status_code=204)


@router.get("/v1/namespaces/{namespace}/tables/{table}/credentials")
def load_credentials(ctx: Ctx, storage: Storage, ns: NamespacePath, table: TablePath) -> Response:
    """Storage credentials for a table's files."""
    ctx.service.load_table(ns, table)
    return json_response({"storage-credentials": storage.credentials})


@router.post("/v1/namespaces/{namespace}/tables/{table}/metrics", status_code=204)
def report_metrics(ctx: Ctx, ns: NamespacePath, table: TablePath, req: ReportMetricsRequest) -> Response:
    """Accept a scan or commit report (logged at debug level, not stored)."""
    if not ctx.service.table_exists(ns, table):
        ctx.service.load_table(ns, table)  # 404 for the missing table or namespace
    log.debug("metrics report for %s.%s: %s", ns_name(ns), table, req.report_type)
    return Response(status_code=204)


@router.post("/v1/tables/rename", status_code=204)
def rename_table(ctx: Ctx, req: RenameTableRequest) -> Response:
    """Rename a table, also into another namespace."""
    ctx.service.rename_table(*rename_pair(req))
    return Response(status_code=204)

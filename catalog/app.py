"""The Iceberg REST catalog as a FastAPI app: ``create_app(db_url, warehouse_uri, ...)``."""

from __future__ import annotations

import json
import logging
import time
import uuid
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, Literal
from urllib.parse import parse_qs, unquote

from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from catalog.auth import Auth
from catalog.errors import BadRequest, CatalogError, ServiceUnavailable, error_body
from catalog.metadata_io import LoadedMetadata, MetadataFiles
from catalog.models import (
    CommitTableRequest,
    CommitTransactionRequest,
    CommitViewRequest,
    CreateNamespaceRequest,
    CreateTableRequest,
    CreateViewRequest,
    RegisterTableRequest,
    RegisterViewRequest,
    RenameTableRequest,
    ReportMetricsRequest,
    UpdateNamespacePropertiesRequest,
)
from catalog.names import check_name, check_namespace, ns_key, parse_namespace_path
from catalog.service import CatalogService, Staged
from catalog.store import Store
from catalog.views import ViewService

log = logging.getLogger("catalog")
access_log = logging.getLogger("catalog.access")
#: The id of the request being served (also in every log line written while serving it).
request_id: ContextVar[str | None] = ContextVar("catalog_request_id", default=None)

ENDPOINTS = [
    "GET /v1/{prefix}/namespaces", "POST /v1/{prefix}/namespaces", "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}", "DELETE /v1/{prefix}/namespaces/{namespace}",
    "POST /v1/{prefix}/namespaces/{namespace}/properties", "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "POST /v1/{prefix}/namespaces/{namespace}/tables", "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}/credentials",
    "POST /v1/{prefix}/namespaces/{namespace}/register", "POST /v1/{prefix}/tables/rename",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics", "POST /v1/{prefix}/transactions/commit",
    "GET /v1/{prefix}/namespaces/{namespace}/views", "POST /v1/{prefix}/namespaces/{namespace}/views",
    "GET /v1/{prefix}/namespaces/{namespace}/views/{view}", "HEAD /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "POST /v1/{prefix}/namespaces/{namespace}/views/{view}", "DELETE /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "POST /v1/{prefix}/views/rename", "POST /v1/{prefix}/namespaces/{namespace}/register-view",
]
_TOP_SEGMENTS = {"config", "oauth", "namespaces", "tables", "transactions", "views"}


class CatalogMiddleware:
    """Pure ASGI middleware: request ids, structured access logs, unsafe-path guard, bearer auth."""

    def __init__(self, app, auth: Auth, warehouse_name: str, log_requests: bool) -> None:  # noqa: ANN001
        self.app = app
        self.auth = auth
        self.prefix = warehouse_name
        self.log_requests = log_requests

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        rid = headers.get("x-request-id") or uuid.uuid4().hex[:16]
        started = time.perf_counter()
        status_holder = [0]

        async def send_wrapper(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        scope.setdefault("state", {})["request_id"] = rid
        token = request_id.set(rid)
        path = scope["path"]
        problem = self._check(scope, headers)
        if problem is not None:
            resp = JSONResponse(problem.body(), status_code=problem.status)
            await resp(scope, receive, send_wrapper)
        else:
            parts = path.split("/")
            if len(parts) > 3 and parts[1] == "v1" and parts[2] == self.prefix and parts[2] not in _TOP_SEGMENTS:
                new_path = "/v1/" + "/".join(parts[3:])
                scope = {**scope, "path": new_path, "raw_path": new_path.encode()}
            try:
                await self.app(scope, receive, send_wrapper)
            except Exception as exc:  # noqa: BLE001 - answer 500 with the spec's ErrorModel
                log.exception("unexpected error on %s %s (request %s)", scope["method"], path, rid)
                if status_holder[0] == 0:
                    resp = JSONResponse(error_body(f"Internal server error: {type(exc).__name__}: {exc}",
                                                   "ServerErrorException", 500), status_code=500)
                    await resp(scope, receive, send_wrapper)
        if self.log_requests:
            access_log.info(json.dumps({
                "event": "request", "method": scope["method"], "path": path,
                "status": status_holder[0], "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            }))
        request_id.reset(token)

    def _check(self, scope, headers: dict[str, str]) -> CatalogError | None:  # noqa: ANN001
        path: str = scope["path"]
        raw = scope.get("raw_path") or path.encode()
        if path.startswith("/v1/"):
            for seg in raw.decode("latin-1").split("?")[0].split("/")[2:]:
                name = unquote(seg)
                if name in (".", "..") or "/" in name or "\\" in name or ".." in name.split("\x1f"):
                    return BadRequest(f"invalid name in path: {name!r}")
        if not self.auth.enabled or path in ("/healthz", "/v1/oauth/tokens") or not (
            path.startswith("/v1/") or path.startswith("/ui")
        ):
            return None
        authz = headers.get("authorization", "")
        if authz.lower().startswith("bearer "):
            try:
                scope["state"]["principal"] = self.auth.verify(authz[7:].strip())
            except CatalogError as exc:
                return exc
            return None
        if path.startswith("/ui") and authz.lower().startswith("basic "):
            import base64

            try:
                cid, _, secret = base64.b64decode(authz[6:].strip()).decode().partition(":")
            except ValueError:
                cid, secret = "", ""
            if cid in self.auth.clients and self.auth.check_client(cid, secret):
                return None
        from catalog.errors import NotAuthorized

        return NotAuthorized("Not authorized: missing or invalid Authorization header")


def _rename_pair(req: RenameTableRequest) -> tuple[tuple[tuple[str, ...], str], tuple[tuple[str, ...], str]]:
    """The validated (namespace, name) of a rename's source and destination."""
    return ((check_namespace(req.source.namespace), check_name(req.source.name)),
            (check_namespace(req.destination.namespace), check_name(req.destination.name)))


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, separators=(",", ":")).encode(), status_code=status,
                    media_type="application/json")


def _page(items: list[Any], page_token: str | None, page_size: int | None, key) -> tuple[list[Any], str | None]:  # noqa: ANN001
    """Keyset pagination: the token is the key of the last item returned."""
    if page_token:
        items = [i for i in items if key(i) > page_token]
    if page_size is None or len(items) <= page_size:
        return items, None
    items = items[:page_size]
    return items, key(items[-1])


def create_app(
    db_url: str,
    warehouse_uri: str,
    *,
    warehouse_name: str = "lakehouse",
    storage_properties: dict[str, str] | None = None,
    auth: Auth | None = None,
    log_requests: bool = True,
    ui: bool = True,
) -> FastAPI:
    """Build the catalog app on a SQL database and a warehouse root (``file://`` or ``s3://``).

    ``storage_properties`` are the FileIO properties (``s3.endpoint``, keys, region, ...) the server
    uses and hands to clients in ``/v1/config`` and every load-table result.
    """
    storage = dict(storage_properties or {})
    auth = auth or Auth()
    store = Store(db_url, warehouse_name)
    files = MetadataFiles(storage)
    svc = CatalogService(store, files, warehouse_uri)
    views = ViewService(store, files, svc.new_table_location)
    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        yield
        store.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Lakehouse Iceberg REST catalog",
        version="1.0.0",
        description="Apache Iceberg REST catalog of the lakehouse platform.",
    )
    app.state.service = svc
    app.state.store = store
    app.state.auth = auth
    app.state.storage = storage
    app.state.warehouse_name = warehouse_name
    app.state.warehouse_uri = warehouse_uri
    app.add_middleware(CatalogMiddleware, auth=auth, warehouse_name=warehouse_name, log_requests=log_requests)

    storage_credentials = _storage_credentials(warehouse_uri, storage)
    # Reads on a local SQLite database and a local warehouse take well under a millisecond: serve them
    # on the event loop instead of handing them to the thread pool (a thread hop costs ~1 ms).
    inline_reads = store.engine.dialect.name == "sqlite" and not warehouse_uri.startswith(("s3://", "s3a://"))

    async def read(fn, *args: Any) -> Any:  # noqa: ANN001
        if inline_reads:
            return fn(*args)
        return await run_in_threadpool(fn, *args)

    # Errors -------------------------------------------------------------------------------------
    @app.exception_handler(CatalogError)
    async def _catalog_error(request: Request, exc: CatalogError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errs = exc.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse(error_body(f"Malformed request: {where}: {first.get('msg', 'invalid')}",
                                       "BadRequestException", 400), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        kinds = {404: "NotFoundException", 405: "MethodNotAllowedException", 406: "UnsupportedOperationException"}
        return JSONResponse(error_body(str(exc.detail), kinds.get(exc.status_code, "RESTException"), exc.status_code),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> Response:
        log.error("database error: %s", exc)
        err = ServiceUnavailable(f"Catalog database unavailable: {exc.orig}")
        return JSONResponse(err.body(), status_code=err.status)

    # Health, config, tokens ---------------------------------------------------------------------
    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness and database check."""
        await read(store.namespace_exists, ("__healthz__",))
        return {"status": "ok"}

    @app.get("/v1/config", tags=["config"])
    async def get_config(warehouse: str | None = Query(default=None)) -> Response:
        """Catalog configuration: storage settings clients need, and the supported endpoints."""
        defaults = {"warehouse": warehouse_uri, **storage}
        return _json({"defaults": defaults, "overrides": {}, "endpoints": ENDPOINTS})

    @app.post(
        "/v1/oauth/tokens", tags=["oauth"],
        openapi_extra={"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
            "schema": {"type": "object", "required": ["grant_type"], "properties": {
                "grant_type": {"type": "string", "enum": ["client_credentials"]},
                "client_id": {"type": "string"}, "client_secret": {"type": "string"},
                "scope": {"type": "string"}}}}}}},
    )
    async def oauth_tokens(request: Request) -> Response:
        """OAuth2 client-credentials token endpoint."""
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        authz = request.headers.get("authorization", "")
        if authz.lower().startswith("basic ") and "client_id" not in form:
            import base64

            try:
                cid, _, sec = base64.b64decode(authz[6:].strip()).decode().partition(":")
                form.setdefault("client_id", unquote(cid))
                form.setdefault("client_secret", unquote(sec))
            except ValueError:
                pass
        if form.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type",
                          "error_description": "only grant_type=client_credentials is supported"}, 400)
        cid, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not cid or not auth.check_client(cid, secret):
            return _json({"error": "invalid_client", "error_description": "unknown client or wrong secret"}, 401)
        return _json({
            "access_token": auth.issue(cid), "token_type": "bearer", "expires_in": auth.ttl_seconds,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        })

    # Namespaces ---------------------------------------------------------------------------------
    @app.get("/v1/namespaces", tags=["namespaces"])
    async def list_namespaces(
        parent: str | None = Query(default=None),
        page_token: str | None = Query(default=None, alias="pageToken"),
        page_size: int | None = Query(default=None, alias="pageSize", ge=1),
    ) -> Response:
        """Namespaces directly under ``parent`` (top level without it), paginated."""
        par = parse_namespace_path(parent) if parent else ()
        items, nxt = _page(await read(store.list_namespaces, par), page_token, page_size, key=ns_key)
        body: dict[str, Any] = {"namespaces": [list(n) for n in items]}
        if nxt:
            body["next-page-token"] = nxt
        return _json(body)

    @app.post("/v1/namespaces", tags=["namespaces"])
    def create_namespace(req: CreateNamespaceRequest) -> Response:
        """Create a namespace with properties."""
        ns = check_namespace(req.namespace)
        if "location" in req.properties:
            svc.check_location(req.properties["location"])
        store.create_namespace(ns, req.properties)
        return _json({"namespace": list(ns), "properties": req.properties})

    @app.get("/v1/namespaces/{namespace}", tags=["namespaces"])
    async def load_namespace(namespace: str) -> Response:
        """A namespace and its properties."""
        ns = parse_namespace_path(namespace)
        return _json({"namespace": list(ns), "properties": await read(store.namespace_properties, ns)})

    @app.head("/v1/namespaces/{namespace}", tags=["namespaces"])
    async def namespace_exists(namespace: str) -> Response:
        """204 when the namespace exists, 404 otherwise."""
        ns = parse_namespace_path(namespace)
        return Response(status_code=204 if await read(store.namespace_exists, ns) else 404)

    @app.delete("/v1/namespaces/{namespace}", tags=["namespaces"], status_code=204)
    def drop_namespace(namespace: str) -> Response:
        """Drop an empty namespace."""
        store.drop_namespace(parse_namespace_path(namespace))
        return Response(status_code=204)

    @app.post("/v1/namespaces/{namespace}/properties", tags=["namespaces"])
    def update_namespace_properties(namespace: str, req: UpdateNamespacePropertiesRequest) -> Response:
        """Remove and set namespace properties; reports removed, updated and missing keys."""
        ns = parse_namespace_path(namespace)
        overlap = set(req.removals) & set(req.updates)
        if overlap:
            raise BadRequest(f"keys both removed and updated: {sorted(overlap)}")
        if "location" in req.updates:
            svc.check_location(req.updates["location"])
        removed, updated, missing = store.update_namespace_properties(ns, req.removals, req.updates)
        return _json({"removed": removed, "updated": updated, "missing": missing})

    # Tables -------------------------------------------------------------------------------------
    def table_result(loaded: LoadedMetadata | Staged, snapshots: str = "all") -> Response:
        if isinstance(loaded, Staged):
            body = {"metadata": json.loads(loaded.metadata.model_dump_json(exclude_none=True)), "config": storage}
            if storage_credentials:
                body["storage-credentials"] = storage_credentials
            return _json(body)
        if snapshots == "refs":
            md = loaded.as_dict()
            keep = {r.get("snapshot-id") for r in (md.get("refs") or {}).values()}
            md["snapshots"] = [s for s in md.get("snapshots", []) if s.get("snapshot-id") in keep]
            meta_bytes = json.dumps(md, separators=(",", ":")).encode()
        else:
            meta_bytes = loaded.raw
        extra = b""
        if storage_credentials:
            extra = b',"storage-credentials":' + json.dumps(storage_credentials).encode()
        payload = (b'{"metadata-location":' + json.dumps(loaded.location).encode() + b',"metadata":' + meta_bytes
                   + b',"config":' + json.dumps(storage).encode() + extra + b"}")
        return Response(payload, media_type="application/json", headers={"ETag": _etag(loaded.location)})

    @app.get("/v1/namespaces/{namespace}/tables", tags=["tables"])
    async def list_tables(
        namespace: str,
        page_token: str | None = Query(default=None, alias="pageToken"),
        page_size: int | None = Query(default=None, alias="pageSize", ge=1),
    ) -> Response:
        """Tables of a namespace, paginated."""
        ns = parse_namespace_path(namespace)
        items, nxt = _page(await read(store.list_objects, ns), page_token, page_size, key=lambda n: n)
        body: dict[str, Any] = {"identifiers": [{"namespace": list(ns), "name": n} for n in items]}
        if nxt:
            body["next-page-token"] = nxt
        return _json(body)

    @app.post("/v1/namespaces/{namespace}/tables", tags=["tables"])
    def create_table(namespace: str, req: CreateTableRequest) -> Response:
        """Create a table, or stage its creation (``stage-create``)."""
        ns = parse_namespace_path(namespace)
        return table_result(svc.create_table(ns, req.model_dump(by_alias=True, exclude_unset=False)))

    @app.post("/v1/namespaces/{namespace}/register", tags=["tables"])
    def register_table(namespace: str, req: RegisterTableRequest) -> Response:
        """Register an existing metadata file as a table."""
        ns = parse_namespace_path(namespace)
        return table_result(svc.register_table(ns, req.name, req.metadata_location, req.overwrite))

    @app.get("/v1/namespaces/{namespace}/tables/{table}", tags=["tables"])
    async def load_table(
        request: Request, namespace: str, table: str,
        snapshots: Literal["all", "refs"] = Query(default="all"),
    ) -> Response:
        """Current metadata of a table with its location and the storage config."""
        ns = parse_namespace_path(namespace)
        loaded = await read(svc.load_table, ns, check_name(table))
        if request.headers.get("if-none-match") == _etag(loaded.location):
            return Response(status_code=304, headers={"ETag": _etag(loaded.location)})
        return table_result(loaded, snapshots)

    @app.head("/v1/namespaces/{namespace}/tables/{table}", tags=["tables"])
    async def table_exists(namespace: str, table: str) -> Response:
        """204 when the table exists, 404 otherwise."""
        ns = parse_namespace_path(namespace)
        return Response(status_code=204 if await read(svc.table_exists, ns, check_name(table)) else 404)

    @app.post("/v1/namespaces/{namespace}/tables/{table}", tags=["tables"])
    def commit_table(namespace: str, table: str, req: CommitTableRequest) -> Response:
        """Commit updates to a table under its requirements (409 CommitFailedException when they fail)."""
        ns = parse_namespace_path(namespace)
        if req.identifier is not None and (tuple(req.identifier.namespace), req.identifier.name) != (ns, table):
            raise BadRequest("identifier in the body does not match the path")
        loaded = svc.commit_table(ns, check_name(table), req.model_dump(by_alias=True))
        return _json({"metadata-location": loaded.location, "metadata": json.loads(loaded.raw)})

    @app.delete("/v1/namespaces/{namespace}/tables/{table}", tags=["tables"], status_code=204)
    def drop_table(namespace: str, table: str, purge_requested: bool = Query(default=False, alias="purgeRequested")
                   ) -> Response:
        """Drop a table; its files stay unless ``purgeRequested=true``."""
        svc.drop_table(parse_namespace_path(namespace), check_name(table), purge_requested)
        return Response(status_code=204)

    @app.get("/v1/namespaces/{namespace}/tables/{table}/credentials", tags=["tables"])
    def load_credentials(namespace: str, table: str) -> Response:
        """Storage credentials for a table's files."""
        svc.load_table(parse_namespace_path(namespace), check_name(table))
        return _json({"storage-credentials": storage_credentials})

    @app.post("/v1/namespaces/{namespace}/tables/{table}/metrics", tags=["tables"], status_code=204)
    def report_metrics(namespace: str, table: str, req: ReportMetricsRequest) -> Response:
        """Accept a scan or commit report (logged at debug level, not stored)."""
        ns = parse_namespace_path(namespace)
        if not svc.table_exists(ns, check_name(table)):
            svc.load_table(ns, table)
        log.debug("metrics report for %s.%s: %s", ns_key(ns), table, req.report_type)
        return Response(status_code=204)

    @app.post("/v1/tables/rename", tags=["tables"], status_code=204)
    def rename_table(req: RenameTableRequest) -> Response:
        """Rename a table, also into another namespace."""
        svc.rename_table(*_rename_pair(req))
        return Response(status_code=204)

    @app.post("/v1/transactions/commit", tags=["transactions"], status_code=204)
    def commit_transaction(req: CommitTransactionRequest) -> Response:
        """Commit changes to several tables atomically: all apply or none."""
        svc.commit_transaction([c.model_dump(by_alias=True) for c in req.table_changes])
        return Response(status_code=204)

    # Views --------------------------------------------------------------------------------------
    def view_result(loc: str, doc: dict[str, Any]) -> Response:
        return _json({"metadata-location": loc, "metadata": doc, "config": storage})

    @app.get("/v1/namespaces/{namespace}/views", tags=["views"])
    def list_views(
        namespace: str,
        page_token: str | None = Query(default=None, alias="pageToken"),
        page_size: int | None = Query(default=None, alias="pageSize", ge=1),
    ) -> Response:
        """Views of a namespace, paginated."""
        ns = parse_namespace_path(namespace)
        items, nxt = _page(store.list_objects(ns, "VIEW"), page_token, page_size, key=lambda n: n)
        body: dict[str, Any] = {"identifiers": [{"namespace": list(ns), "name": n} for n in items]}
        if nxt:
            body["next-page-token"] = nxt
        return _json(body)

    @app.post("/v1/namespaces/{namespace}/views", tags=["views"])
    def create_view(namespace: str, req: CreateViewRequest) -> Response:
        """Create a view."""
        return view_result(*views.create(parse_namespace_path(namespace), req.model_dump(by_alias=True)))

    @app.post("/v1/namespaces/{namespace}/register-view", tags=["views"])
    def register_view(namespace: str, req: RegisterViewRequest) -> Response:
        """Register an existing view metadata file."""
        return view_result(*views.register(parse_namespace_path(namespace), req.name, req.metadata_location))

    @app.get("/v1/namespaces/{namespace}/views/{view}", tags=["views"])
    def load_view(namespace: str, view: str) -> Response:
        """Current metadata of a view."""
        return view_result(*views.load(parse_namespace_path(namespace), check_name(view)))

    @app.head("/v1/namespaces/{namespace}/views/{view}", tags=["views"])
    def view_exists(namespace: str, view: str) -> Response:
        """204 when the view exists, 404 otherwise."""
        exists = views.exists(parse_namespace_path(namespace), check_name(view))
        return Response(status_code=204 if exists else 404)

    @app.post("/v1/namespaces/{namespace}/views/{view}", tags=["views"])
    def replace_view(namespace: str, view: str, req: CommitViewRequest) -> Response:
        """Replace a view (view updates under ``assert-view-uuid``)."""
        return view_result(*views.commit(parse_namespace_path(namespace), check_name(view),
                                         req.model_dump(by_alias=True)))

    @app.delete("/v1/namespaces/{namespace}/views/{view}", tags=["views"], status_code=204)
    def drop_view(namespace: str, view: str) -> Response:
        """Drop a view."""
        views.drop(parse_namespace_path(namespace), check_name(view))
        return Response(status_code=204)

    @app.post("/v1/views/rename", tags=["views"], status_code=204)
    def rename_view(req: RenameTableRequest) -> Response:
        """Rename a view, also into another namespace."""
        views.rename(*_rename_pair(req))
        return Response(status_code=204)

    if ui:
        from catalog.ui import add_ui

        add_ui(app, svc)

    return app


def _etag(location: str) -> str:
    import hashlib

    return '"' + hashlib.sha1(location.encode()).hexdigest() + '"'  # noqa: S324 - not security relevant


def _storage_credentials(warehouse_uri: str, storage: dict[str, str]) -> list[dict[str, Any]]:
    """Vended storage credentials for an s3:// warehouse (the static object-store keys)."""
    if not warehouse_uri.startswith("s3://") or "s3.access-key-id" not in storage:
        return []
    bucket = warehouse_uri.split("/")[2]
    return [{"prefix": f"s3://{bucket}/", "config": dict(storage)}]


"""The Iceberg REST catalog as a FastAPI app: ``create_app(db_url, warehouse_uri, ...)``.

This module only assembles: the catalog's parts (store, metadata files, services) into a
``CatalogContext`` that the routers in ``catalog.routes`` get through dependencies, the middleware
(``catalog.middleware``), the error handlers that map every failure to the spec's ErrorModel, and the
endpoint list of ``/v1/config``, derived from the mounted routes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from catalog.auth import Auth
from catalog.errors import CatalogError, ServiceUnavailable, error_body
from catalog.metadata_io import MetadataFiles
from catalog.middleware import CatalogMiddleware, request_id
from catalog.routes import RESOURCE_ROUTERS, ROUTERS
from catalog.routes.deps import CatalogContext
from catalog.service import CatalogService
from catalog.store import Store
from catalog.views import ViewService

__all__ = ["create_app", "request_id"]
log = logging.getLogger("catalog")
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


def create_app(
    db_url: str,
    warehouse_uri: str,
    *,
    warehouse_name: str = "lakehouse",
    storage_properties: dict[str, str] | None = None,
    auth: Auth | None = None,
    log_requests: bool = True,
    ui: bool = True,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    worker_threads: int | None = None,
) -> FastAPI:
    """Build the catalog app on a SQL database and a warehouse root (``file://`` or ``s3://``).

    ``storage_properties`` are the FileIO properties (``s3.endpoint``, keys, region, ...) the server
    uses and hands to (authenticated, when auth is on) clients in ``/v1/config`` and load-table results.
    ``max_body_bytes`` caps request bodies on the wire and after decompression (413 beyond);
    ``worker_threads`` bounds the thread pool that runs the blocking endpoints (anyio's default: 40).
    """
    storage = dict(storage_properties or {})
    auth = auth or Auth()
    store = Store(db_url, warehouse_name)
    files = MetadataFiles(storage)
    svc = CatalogService(store, files, warehouse_uri)
    ctx = CatalogContext(
        store=store, files=files, service=svc,
        views=ViewService(store, files, svc.warehouse, svc.new_table_location),
        auth=auth, warehouse_uri=warehouse_uri, warehouse_name=warehouse_name, storage=storage,
        storage_credentials=_storage_credentials(warehouse_uri, storage),
        # Reads on a local SQLite database and a local warehouse take well under a millisecond: serve them
        # on the event loop instead of handing them to the thread pool (a thread hop costs ~1 ms).
        inline_reads=store.engine.dialect.name == "sqlite" and not warehouse_uri.startswith(("s3://", "s3a://")),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        if worker_threads:
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = worker_threads
        yield
        store.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Lakehouse Iceberg REST catalog",
        version="1.0.0",
        description="Apache Iceberg REST catalog of the lakehouse platform.",
    )
    app.state.catalog = ctx
    app.state.service = svc  # used by the server's warm-up and the UI
    app.state.store = store
    app.state.auth = auth
    app.state.storage = storage
    app.state.warehouse_name = warehouse_name
    app.state.warehouse_uri = warehouse_uri
    app.add_middleware(CatalogMiddleware, auth=auth, warehouse_name=warehouse_name, log_requests=log_requests,
                       max_body_bytes=max_body_bytes)
    _add_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    ctx.endpoints = endpoint_list(RESOURCE_ROUTERS)
    if ui:
        from catalog.ui import add_ui

        add_ui(app, svc)
    return app


def endpoint_list(routers: Iterable[APIRouter]) -> list[str]:
    """``METHOD /v1/{prefix}/...`` for every route of the resource routers (mounted without a prefix)."""
    return [f"{method} /v1/{{prefix}}{route.path.removeprefix('/v1')}"
            for router in routers for route in router.routes if isinstance(route, APIRoute)
            for method in sorted(route.methods)]


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is the spec's ErrorModel; nothing internal (exception text, paths, SQL) reaches clients."""

    @app.exception_handler(CatalogError)
    async def _catalog_error(request: Request, exc: CatalogError) -> Response:
        body = exc.body()
        if exc.status >= 500:
            body["error"]["message"] += f" (request id {request.scope['state'].get('request_id')})"
        return JSONResponse(body, status_code=exc.status)

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
        rid = request.scope["state"].get("request_id")
        log.error("database error (request %s): %s", rid, exc)
        err = ServiceUnavailable(f"Catalog database unavailable (request id {rid})")
        return JSONResponse(err.body(), status_code=err.status)

    @app.exception_handler(DataError)
    async def _data_error(request: Request, exc: DataError) -> Response:
        log.warning("value refused by the database (request %s): %s", request.scope["state"].get("request_id"), exc)
        return JSONResponse(error_body("A value does not fit the catalog database (too long or invalid)",
                                       "BadRequestException", 400), status_code=400)


def _storage_credentials(warehouse_uri: str, storage: dict[str, str]) -> list[dict[str, Any]]:
    """Vended storage credentials for an s3:// warehouse (the static object-store keys)."""
    if not warehouse_uri.startswith("s3://") or "s3.access-key-id" not in storage:
        return []
    bucket = warehouse_uri.split("/")[2]
    return [{"prefix": f"s3://{bucket}/", "config": dict(storage)}]

"""What every router shares: the catalog's parts as FastAPI dependencies, path parameters, one pagination
helper and the JSON response helper.

The parts are built once by ``create_app`` into a :class:`CatalogContext` on ``app.state``; routes ask
for it (and for the caller's storage credentials, parsed namespace, ...) through ``Depends``, so a
router module holds routes only. Dependencies are ``async`` on purpose: FastAPI runs sync dependencies
in the thread pool, a hop that costs about a millisecond per request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from catalog.auth import Auth
from catalog.metadata_io import MetadataFiles
from catalog.names import check_name, parse_namespace_path
from catalog.service import CatalogService
from catalog.store import Store
from catalog.views import ViewService

T = TypeVar("T")


@dataclass
class CatalogContext:
    """The parts of one catalog app (built by ``create_app``)."""

    store: Store
    files: MetadataFiles
    service: CatalogService
    views: ViewService
    auth: Auth
    warehouse_uri: str
    warehouse_name: str
    storage: dict[str, str]  # FileIO properties (s3 endpoint and keys) handed to authenticated clients
    storage_credentials: list[dict[str, Any]]
    inline_reads: bool  # serve reads on the event loop (local SQLite + local files: sub-millisecond)
    endpoints: list[str] = field(default_factory=list)  # "METHOD /v1/{prefix}/...", derived from the routes

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a read on the event loop when it is cheap, in the thread pool otherwise."""
        if self.inline_reads:
            return fn(*args)
        return await run_in_threadpool(fn, *args)


async def _context(request: Request) -> CatalogContext:
    return request.app.state.catalog


Ctx = Annotated[CatalogContext, Depends(_context)]


@dataclass(frozen=True)
class StorageAccess:
    """The storage settings a caller may see: everything when auth is off or the caller authenticated,
    nothing otherwise (the object store's keys never reach an anonymous caller of an auth-on catalog)."""

    config: dict[str, str]
    credentials: list[dict[str, Any]]


async def _storage(request: Request) -> StorageAccess:
    ctx: CatalogContext = request.app.state.catalog
    if ctx.auth.enabled and not request.scope.get("state", {}).get("principal"):
        return StorageAccess({}, [])
    return StorageAccess(ctx.storage, ctx.storage_credentials)


Storage = Annotated[StorageAccess, Depends(_storage)]


async def _namespace(namespace: str) -> tuple[str, ...]:
    return parse_namespace_path(namespace)


async def _table(table: str) -> str:
    return check_name(table)


async def _view(view: str) -> str:
    return check_name(view, "view name")


NamespacePath = Annotated[tuple[str, ...], Depends(_namespace)]
TablePath = Annotated[str, Depends(_table)]
ViewPath = Annotated[str, Depends(_view)]


@dataclass(frozen=True)
class PageRequest:
    """``pageToken`` / ``pageSize`` of a list call."""

    token: str | None
    size: int | None


async def _page(
    page_token: str | None = Query(default=None, alias="pageToken"),
    page_size: int | None = Query(default=None, alias="pageSize", ge=1),
) -> PageRequest:
    return PageRequest(page_token, page_size)


Paging = Annotated[PageRequest, Depends(_page)]


def paginate(items: list[T], page: PageRequest, key: Callable[[T], str]) -> tuple[list[T], str | None]:
    """Keyset pagination over items sorted by ``key``: the token is the key of the last item returned."""
    items = sorted(items, key=key)
    if page.token:
        items = [i for i in items if key(i) > page.token]
    if page.size is None or len(items) <= page.size:
        return items, None
    items = items[: page.size]
    return items, key(items[-1])


def json_response(data: Any, status: int = 200) -> Response:
    """A compact JSON response (the endpoints build spec bodies by hand, no response models)."""
    return Response(json.dumps(data, separators=(",", ":")).encode(), status_code=status,
                    media_type="application/json")

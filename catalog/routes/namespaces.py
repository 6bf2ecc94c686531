"""Namespaces: list (paginated, by parent), create, load, exists, drop, update properties."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from catalog.errors import BadRequest
from catalog.models import CreateNamespaceRequest, UpdateNamespacePropertiesRequest
from catalog.names import check_namespace, parse_namespace_path
from catalog.routes.deps import Ctx, NamespacePath, Paging, json_response, paginate

router = APIRouter(tags=["namespaces"])


@router.get("/v1/namespaces")
async def list_namespaces(ctx: Ctx, page: Paging, parent: str | None = Query(default=None)) -> Response:
    """Namespaces directly under ``parent`` (top level without it), paginated."""
    par = parse_namespace_path(parent) if parent else ()
    items, nxt = paginate(await ctx.read(ctx.store.list_namespaces, par), page, key=lambda ns: ns[-1])
    body: dict[str, Any] = {"namespaces": [list(n) for n in items]}
    if nxt:
        body["next-page-token"] = nxt
    return json_response(body)


@router.post("/v1/namespaces")
def create_namespace(ctx: Ctx, req: CreateNamespaceRequest) -> Response:
    """Create a namespace with properties."""
    ns = check_namespace(req.namespace)
    props = dict(req.properties)
    if "location" in props:
        props["location"] = ctx.service.warehouse.location(props["location"], "namespace location",
                                                           allow_root=True)
    ctx.store.create_namespace(ns, props)
    return json_response({"namespace": list(ns), "properties": props})


@router.get("/v1/namespaces/{namespace}")
async def load_namespace(ctx: Ctx, ns: NamespacePath) -> Response:
    """A namespace and its properties."""
    return json_response({"namespace": list(ns), "properties": await ctx.read(ctx.store.namespace_properties, ns)})


@router.head("/v1/namespaces/{namespace}")
async def namespace_exists(ctx: Ctx, ns: NamespacePath) -> Response:
    """204 when the namespace exists, 404 otherwise."""
    return Response(status_code=204 if await ctx.read(ctx.store.namespace_exists, ns) else 404)


@router.delete("/v1/namespaces/{namespace}", status_code=204)
def drop_namespace(ctx: Ctx, ns: NamespacePath) -> Response:
    """Drop an empty namespace."""
    ctx.store.drop_namespace(ns)
    return Response(status_code=204)


@router.post("/v1/namespaces/{namespace}/properties")
def update_namespace_properties(ctx: Ctx, ns: NamespacePath, req: UpdateNamespacePropertiesRequest) -> Response:
    """Remove and set namespace properties; reports removed, updated and missing keys."""
    overlap = set(req.removals) & set(req.updates)
    if overlap:
        raise BadRequest(f"keys both removed and updated: {sorted(overlap)}")
    updates = dict(req.updates)
    if "location" in updates:
        updates["location"] = ctx.service.warehouse.location(updates["location"], "namespace location",
                                                             allow_root=True)
    removed, updated, missing = ctx.store.update_namespace_properties(ns, req.removals, updates)
    return json_response({"removed": removed, "updated": updated, "missing": missing})

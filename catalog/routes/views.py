"""Views: list, create, register, load, exists, replace (commit), drop and rename."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from catalog.models import CommitViewRequest, CreateViewRequest, RegisterViewRequest, RenameTableRequest
from catalog.routes.deps import Ctx, NamespacePath, Paging, Storage, StorageAccess, ViewPath, json_response, paginate
from catalog.routes.tables import rename_pair

router = APIRouter(tags=["views"])


def view_result(loc: str, doc: dict[str, Any], storage: StorageAccess) -> Response:
    """A LoadViewResult."""
    return json_response({"metadata-location": loc, "metadata": doc, "config": storage.config})


@router.get("/v1/namespaces/{namespace}/views")
def list_views(ctx: Ctx, ns: NamespacePath, page: Paging) -> Response:
    """Views of a namespace, paginated."""
    items, nxt = paginate(ctx.store.list_objects(ns, "VIEW"), page, key=lambda n: n)
    body: dict[str, Any] = {"identifiers": [{"namespace": list(ns), "name": n} for n in items]}
    if nxt:
        body["next-page-token"] = nxt
    return json_response(body)


@router.post("/v1/namespaces/{namespace}/views")
def create_view(ctx: Ctx, storage: Storage, ns: NamespacePath, req: CreateViewRequest) -> Response:
    """Create a view."""
    return view_result(*ctx.views.create(ns, req.model_dump(by_alias=True)), storage)


@router.post("/v1/namespaces/{namespace}/register-view")
def register_view(ctx: Ctx, storage: Storage, ns: NamespacePath, req: RegisterViewRequest) -> Response:
    """Register an existing view metadata file (inside the warehouse)."""
    return view_result(*ctx.views.register(ns, req.name, req.metadata_location), storage)


@router.get("/v1/namespaces/{namespace}/views/{view}")
def load_view(ctx: Ctx, storage: Storage, ns: NamespacePath, view: ViewPath) -> Response:
    """Current metadata of a view."""
    return view_result(*ctx.views.load(ns, view), storage)


@router.head("/v1/namespaces/{namespace}/views/{view}")
def view_exists(ctx: Ctx, ns: NamespacePath, view: ViewPath) -> Response:
    """204 when the view exists, 404 otherwise."""
    return Response(status_code=204 if ctx.views.exists(ns, view) else 404)


@router.post("/v1/namespaces/{namespace}/views/{view}")
def replace_view(ctx: Ctx, storage: Storage, ns: NamespacePath, view: ViewPath, req: CommitViewRequest) -> Response:
    """Replace a view (view updates under ``assert-view-uuid``)."""
    return view_result(*ctx.views.commit(ns, view, req.model_dump(by_alias=True)), storage)


@router.delete("/v1/namespaces/{namespace}/views/{view}", status_code=204)
def drop_view(ctx: Ctx, ns: NamespacePath, view: ViewPath) -> Response:
    """Drop a view."""
    ctx.views.drop(ns, view)
    return Response(status_code=204)


@router.post("/v1/views/rename", status_code=204)
def rename_view(ctx: Ctx, req: RenameTableRequest) -> Response:
    """Rename a view, also into another namespace."""
    ctx.views.rename(*rename_pair(req))
    return Response(status_code=204)

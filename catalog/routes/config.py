"""Health, client configuration (``/v1/config``) and the OAuth2 token endpoint."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Query, Request, Response

from catalog.routes.deps import Ctx, Storage, json_response

router = APIRouter()


@router.get("/healthz", tags=["health"])
async def healthz(ctx: Ctx) -> dict[str, str]:
    """Liveness and database check."""
    await ctx.read(ctx.store.namespace_exists, ("__healthz__",))
    return {"status": "ok"}


@router.get("/v1/config", tags=["config"])
async def get_config(ctx: Ctx, storage: Storage, warehouse: str | None = Query(default=None)) -> Response:
    """Catalog configuration: storage settings clients need, and the supported endpoints."""
    defaults = {"warehouse": ctx.warehouse_uri, **storage.config}
    return json_response({"defaults": defaults, "overrides": {}, "endpoints": ctx.endpoints})


@router.post(
    "/v1/oauth/tokens", tags=["oauth"],
    openapi_extra={"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
        "schema": {"type": "object", "required": ["grant_type"], "properties": {
            "grant_type": {"type": "string", "enum": ["client_credentials"]},
            "client_id": {"type": "string"}, "client_secret": {"type": "string"},
            "scope": {"type": "string"}}}}}}},
)
async def oauth_tokens(request: Request, ctx: Ctx) -> Response:
    """OAuth2 client-credentials token endpoint."""
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
    authz = request.headers.get("authorization", "")
    if authz.lower().startswith("basic ") and "client_id" not in form:
        try:
            cid, _, sec = base64.b64decode(authz[6:].strip()).decode().partition(":")
            form.setdefault("client_id", unquote(cid))
            form.setdefault("client_secret", unquote(sec))
        except ValueError:
            pass
    if form.get("grant_type") != "client_credentials":
        return json_response({"error": "unsupported_grant_type",
                              "error_description": "only grant_type=client_credentials is supported"}, 400)
    cid, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not cid or not ctx.auth.check_client(cid, secret):
        return json_response({"error": "invalid_client", "error_description": "unknown client or wrong secret"}, 401)
    return json_response({
        "access_token": ctx.auth.issue(cid), "token_type": "bearer", "expires_in": ctx.auth.ttl_seconds,
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
    })

"""The catalog's ASGI middleware: request ids and access logs, unsafe-path guard, bearer auth, body limits,
and the last line of defence that turns any unexpected exception into a bare ErrorModel 500.

Order matters: the path guard and authentication look at the URL and headers only, so an unauthenticated
client never gets its body read. Only then is the body read, at most ``max_body_bytes`` on the wire and
after decompression (``Content-Encoding: gzip`` / ``deflate``), and handed to the app in one piece.
Written by hand because Starlette's ``RequestBodyLimitMiddleware`` neither decompresses nor answers in
the REST spec's ErrorModel; the body limit is a few lines of ``zlib`` with ``max_length``.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
import zlib
from contextvars import ContextVar
from typing import Any
from urllib.parse import unquote

from fastapi.responses import JSONResponse

from catalog.auth import Auth
from catalog.errors import (
    BadRequest,
    CatalogError,
    NotAuthorized,
    PayloadTooLarge,
    UnsupportedMediaType,
    error_body,
)

log = logging.getLogger("catalog")
access_log = logging.getLogger("catalog.access")
#: The id of the request being served (also in every log line written while serving it).
request_id: ContextVar[str | None] = ContextVar("catalog_request_id", default=None)
#: First path segments under /v1 that are routes, not a warehouse prefix.
TOP_SEGMENTS = {"config", "oauth", "namespaces", "tables", "transactions", "views"}
OPEN_PATHS = ("/healthz", "/v1/oauth/tokens")
_DECOMPRESSED = {"gzip", "x-gzip", "deflate"}


def server_error_body(rid: str | None) -> dict[str, Any]:
    """The body of a 500: the request id to quote, nothing about the server's internals."""
    return error_body(f"Internal server error (request id {rid})", "ServerErrorException", 500)


class CatalogMiddleware:
    """Pure ASGI middleware (see the module doc)."""

    def __init__(self, app, auth: Auth, warehouse_name: str, log_requests: bool,  # noqa: ANN001
                 max_body_bytes: int) -> None:
        self.app = app
        self.auth = auth
        self.prefix = warehouse_name
        self.log_requests = log_requests
        self.max_body = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        rid = (headers.get("x-request-id") or "")[:64] or uuid.uuid4().hex[:16]
        started = time.perf_counter()
        status_holder = [0]
        path = scope["path"]

        def log_request() -> None:
            if self.log_requests:
                access_log.info(json.dumps({
                    "event": "request", "method": scope["method"], "path": path,
                    "status": status_holder[0], "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                }))

        async def send_wrapper(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode("latin-1", "replace"))]
                log_request()  # before the client can have the answer: its log line is there when it looks
            await send(message)

        scope.setdefault("state", {})["request_id"] = rid
        token = request_id.set(rid)
        try:
            try:
                self._check(scope, headers)
                body = await self._read_body(scope, headers, receive)
            except CatalogError as problem:
                # a body that was (maybe) not read: close the connection instead of reading on to the next request
                unread = headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers
                await JSONResponse(problem.body(), status_code=problem.status,
                                   headers={"connection": "close"} if unread else None)(scope, receive, send_wrapper)
            else:
                if body is not None:
                    await self._call_app(scope, body, receive, send_wrapper, status_holder)
        finally:
            if status_holder[0] == 0:
                log_request()  # no answer was started (the client left)
            request_id.reset(token)

    async def _call_app(self, scope, body: bytes, receive, send, status_holder: list[int]) -> None:  # noqa: ANN001
        parts = scope["path"].split("/")
        if len(parts) > 3 and parts[1] == "v1" and parts[2] == self.prefix and parts[2] not in TOP_SEGMENTS:
            new_path = "/v1/" + "/".join(parts[3:])
            scope = {**scope, "path": new_path, "raw_path": new_path.encode()}
        delivered = False

        async def replay():  # noqa: ANN202 - the body read above, then the connection's own events
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay, send)
        except Exception:  # noqa: BLE001 - answer 500 with the spec's ErrorModel, details only in the log
            rid = scope["state"]["request_id"]
            log.exception("unexpected error on %s %s (request %s)", scope["method"], scope["path"], rid)
            if status_holder[0] == 0:
                await JSONResponse(server_error_body(rid), status_code=500)(scope, receive, send)

    def _check(self, scope, headers: dict[str, str]) -> None:  # noqa: ANN001
        """Refuse unsafe path segments and unauthenticated calls (URL and headers only, no body)."""
        path: str = scope["path"]
        raw = scope.get("raw_path") or path.encode()
        if path.startswith("/v1/"):
            for seg in raw.decode("latin-1").split("?")[0].split("/")[2:]:
                name = unquote(seg)
                if name in (".", "..") or "/" in name or "\\" in name or ".." in name.split("\x1f"):
                    raise BadRequest(f"invalid name in path: {name!r}")
        if not self.auth.enabled or path in OPEN_PATHS or not (path.startswith("/v1/") or path.startswith("/ui")):
            return
        authz = headers.get("authorization", "")
        if authz.lower().startswith("bearer "):
            scope["state"]["principal"] = self.auth.verify(authz[7:].strip())
            return
        if path.startswith("/ui") and authz.lower().startswith("basic "):
            try:
                cid, _, secret = base64.b64decode(authz[6:].strip()).decode().partition(":")
            except ValueError:
                cid, secret = "", ""
            if cid in self.auth.clients and self.auth.check_client(cid, secret):
                scope["state"]["principal"] = cid
                return
        raise NotAuthorized("Not authorized: missing or invalid Authorization header")

    async def _read_body(self, scope, headers: dict[str, str], receive) -> bytes | None:  # noqa: ANN001
        """The whole request body, decompressed; 413 past ``max_body_bytes``; None if the client left."""
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                raise BadRequest("invalid Content-Length header")
            if int(declared) > self.max_body:
                raise PayloadTooLarge(f"request body larger than {self.max_body} bytes")
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity", *_DECOMPRESSED):
            raise UnsupportedMediaType(f"unsupported Content-Encoding {encoding!r} (gzip and deflate are)")
        inflater = zlib.decompressobj(wbits=47) if encoding in _DECOMPRESSED else None  # 47: zlib or gzip
        chunks: list[bytes] = []
        wire = size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            data = message.get("body", b"")
            wire += len(data)
            if wire > self.max_body:
                raise PayloadTooLarge(f"request body larger than {self.max_body} bytes")
            if inflater is not None and data:
                try:
                    data = inflater.decompress(data, self.max_body - size + 1)
                except zlib.error:
                    raise BadRequest(f"request body is not valid {encoding} data") from None
                if inflater.unconsumed_tail:  # more output pending than the limit allows
                    raise PayloadTooLarge(f"decompressed request body larger than {self.max_body} bytes")
            size += len(data)
            if size > self.max_body:
                raise PayloadTooLarge(f"decompressed request body larger than {self.max_body} bytes")
            chunks.append(data)
            if not message.get("more_body", False):
                break
        if inflater is not None and wire:
            if not inflater.eof:
                raise BadRequest(f"request body is truncated {encoding} data")
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() not in (b"content-encoding",
                                                                                        b"content-length")]
            scope["headers"].append((b"content-length", str(size).encode()))
        return b"".join(chunks)

"""ClickHouse's HTTP interface in front of chdb: the part clickhouse-connect, dbt-clickhouse and
Superset's ``clickhousedb://`` dialect use.

- ``GET /ping`` (and ``GET /`` without a query, ``/replicas_status``) answers ``Ok.``;
- ``GET``/``POST /``: the SQL is the ``query`` parameter followed by the body (plain, chunked,
  ``multipart/form-data`` fields, or compressed per ``Content-Encoding``); ``GET`` is read-only;
- ``database``, ``session_id``/``session_timeout``/``session_check``, ``query_id``,
  ``default_format``, ``param_<name>`` bound parameters; every other parameter is a setting;
- the response is whatever ``FORMAT`` the query names (TabSeparated by default), compressed per
  ``Accept-Encoding`` when ``enable_http_compression=1``, with the ``X-ClickHouse-*`` headers;
- errors: HTTP 500 (401 authentication, 403 access denied, 413 body too large) with
  ``X-ClickHouse-Exception-Code`` and the message;
- authentication: HTTP basic, ``X-ClickHouse-User``/``X-ClickHouse-Key`` or ``user``/``password``
  parameters, checked against the configured accounts (the writer and the read-only dashboard account,
  each with its role for :mod:`lakehouse.clickhouse.guard`).

Hostile clients: a request is authenticated from its headers and URL before a byte of its body is
read (an ``Expect: 100-continue`` client is refused before it sends one); a body larger than
``max_body_bytes`` (declared or, when chunked, as it arrives) and a decoded body larger than
``max_decoded_bytes`` are refused with 413 without being held; a refused body is not read (the
connection is closed) unless it is small. At most ``max_connections`` connections are served at once,
one worker thread each; more wait in the listen backlog, and an idle keep-alive connection is closed
after ``keep_alive_timeout`` seconds, so the thread count stays bounded whatever clients do.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lakehouse.clickhouse import codecs
from lakehouse.clickhouse.engine import DEFAULT_SESSION_TIMEOUT, Engine, QueryError, QueryRequest
from lakehouse.clickhouse.guard import Role

log = logging.getLogger("lakehouse.clickhouse")

#: URL parameters the HTTP layer consumes; everything else (but ``param_*``) is a ClickHouse setting.
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "session_id", "session_timeout", "session_check", "query_id",
    "user", "password", "quota_key", "compress", "decompress", "buffer_size", "wait_end_of_query",
    "client_protocol_version", "role", "enable_http_compression", "http_zlib_compression_level",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms", "http_wait_end_of_query",
    "cancel_http_readonly_queries_on_client_close", "readonly", "http_response_buffer_size",
})

_TRUE = {"1", "true", "yes", "on"}
_TEXT_TYPES = {
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8; header=absent",
    "csvwithnames": "text/csv; charset=UTF-8; header=present",
    "json": "application/json; charset=UTF-8",
    "jsoncompact": "application/json; charset=UTF-8",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8",
    "xml": "application/xml; charset=UTF-8",
}
_BINARY_PREFIXES = ("native", "rowbinary", "arrow", "parquet", "orc", "avro", "capnproto", "protobuf", "msgpack")


def content_type(fmt: str | None) -> str:
    """The Content-Type clickhouse-server sends for output format ``fmt``."""
    if not fmt:
        return "text/plain; charset=UTF-8"
    low = fmt.lower()
    if low in _TEXT_TYPES:
        return _TEXT_TYPES[low]
    if low.startswith("tabseparated") or low.startswith("tsv"):
        return _TEXT_TYPES["tsv"]
    if low.startswith(_BINARY_PREFIXES):
        return "application/octet-stream"
    if low.startswith("json"):
        return _TEXT_TYPES["json"]
    return "text/plain; charset=UTF-8"


@dataclass(frozen=True)
class Account:
    """A user of the front: its password and what it may do (guard.py)."""

    password: str
    role: Role


@dataclass(frozen=True)
class Limits:
    """What one client may cost the server."""

    max_body_bytes: int = 128 << 20
    max_decoded_bytes: int = 512 << 20
    max_connections: int = 32
    keep_alive_timeout: float = 10.0
    io_timeout: float = 120.0  # reading a request's headers and body, writing its response
    discard_limit: int = 64 << 10  # a refused body up to this size is read and dropped (keeps the connection)


#: HTTP status per ClickHouse error code, as clickhouse-server answers (500 otherwise).
_STATUS = {516: 401, 497: 403, 392: 413}


class FrontServer(ThreadingHTTPServer):
    """Threaded HTTP server owning one :class:`Engine`; the configured accounts may query it."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], engine: Engine, accounts: Mapping[str, Account],
                 limits: Limits | None = None, display_name: str | None = None):
        if not accounts:
            raise ValueError("the ClickHouse front needs at least one account")
        self.engine = engine
        self.accounts = dict(accounts)
        self.limits = limits or Limits()
        self.display_name = display_name or f"lakehouse-chdb@{socket.gethostname()}"
        self._slots = threading.BoundedSemaphore(self.limits.max_connections)
        self._closing = threading.Event()
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def process_request(self, request, client_address) -> None:
        """Serve the connection on a worker thread once one of ``max_connections`` slots is free (the
        accept loop waits meanwhile, so further clients queue in the listen backlog)."""
        while not self._slots.acquire(timeout=0.2):
            if self._closing.is_set():
                self.shutdown_request(request)
                return
        try:
            threading.Thread(target=self._serve_connection, args=(request, client_address), daemon=True).start()
        except BaseException:
            self._slots.release()
            self.shutdown_request(request)
            raise

    def _serve_connection(self, request, client_address) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def shutdown(self) -> None:
        self._closing.set()
        super().shutdown()


class _BadRequest(Exception):
    def __init__(self, code: int, message: str, status: int = 400):
        super().__init__(message)
        self.error = QueryError.of(code, message)
        self.status = status


def _too_large(what: str, limit: int) -> _BadRequest:
    return _BadRequest(392, f"{what} exceeds the server's limit of {limit} bytes", status=413)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ClickHouse"
    sys_version = ""
    wbufsize = 1 << 16  # headers and body leave in one write (flushed after each request)
    server: FrontServer
    _account: tuple[str, Account] | None = None  # (user, account) once authenticated
    _body_pending = False  # the request's body has not been read (yet)

    def setup(self) -> None:
        self.timeout = self.server.limits.keep_alive_timeout
        super().setup()
        # no Nagle: a small response must not wait for the client's delayed ACK (~40 ms)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self) -> None:
        """Wait ``keep_alive_timeout`` for the next request line, then allow ``io_timeout`` per read/write."""
        self.connection.settimeout(self.server.limits.keep_alive_timeout)
        self._account = None
        self._body_pending = False
        super().handle_one_request()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:
            self.connection.settimeout(self.server.limits.io_timeout)
            self._body_pending = self._has_body()
        return ok

    def handle_expect_100(self) -> bool:
        """Refuse before the client sends its body (``Expect: 100-continue``): unknown path,
        authentication, declared size."""
        self._body_pending = self._has_body()
        url = urllib.parse.urlsplit(self.path)
        if (url.path.rstrip("/") or "/") == "/":
            try:
                self._account = self._authenticate(dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True)))
                self._check_declared_length()
            except _BadRequest as exc:
                self._body_pending = False  # the client waits for "100 Continue": there is nothing to read
                self.close_connection = True
                self._error(exc.status, exc.error, "")
                return False
        super().handle_expect_100()
        self.wfile.flush()  # the response buffer would hold "100 Continue" while we wait for the body
        return True

    # -- plumbing --------------------------------------------------------------------------------
    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - BaseHTTPRequestHandler's signature
        log.debug("%s %s", self.address_string(), format % args)

    def do_HEAD(self) -> None:  # noqa: N802
        self._simple(200, b"")

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch(read_only=True)

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch(read_only=False)

    def _simple(self, status: int, body: bytes, ctype: str = "text/html; charset=UTF-8") -> None:
        self._settle_body()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # -- request bodies --------------------------------------------------------------------------
    def _chunked(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower()

    def _declared_length(self) -> int:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _BadRequest(27, "invalid Content-Length header") from None
        if length < 0:
            raise _BadRequest(27, "invalid Content-Length header")
        return length

    def _has_body(self) -> bool:
        try:
            return self._chunked() or self._declared_length() > 0
        except _BadRequest:
            return True

    def _check_declared_length(self) -> None:
        limit = self.server.limits.max_body_bytes
        if not self._chunked() and self._declared_length() > limit:
            raise _too_large(f"the request body ({self._declared_length()} bytes)", limit)

    def _settle_body(self) -> None:
        """Before answering a request whose body was not read: drop a small body so the connection can
        serve the next request, else close it (the body is never read into memory)."""
        if not self._body_pending:
            return
        self._body_pending = False
        try:
            length = -1 if self._chunked() else self._declared_length()
        except _BadRequest:
            length = -1
        if 0 <= length <= self.server.limits.discard_limit:
            try:
                if len(self.rfile.read(length)) == length:
                    return
            except OSError:
                pass
        self.close_connection = True

    def _read_body(self) -> bytes:
        self._check_declared_length()
        self._body_pending = False
        limit = self.server.limits.max_body_bytes
        if self._chunked():
            parts, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise _BadRequest(33, "unexpected end of chunked request body")
                try:
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                except ValueError:
                    raise _BadRequest(33, "invalid chunk size in chunked request body") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > limit:
                    self.close_connection = True  # the rest of the body stays unread
                    raise _too_large("the chunked request body", limit)
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise _BadRequest(33, "the client closed the connection inside a request body chunk")
                parts.append(chunk)
                self.rfile.readline(3)
            return b"".join(parts)
        length = self._declared_length()
        body = self.rfile.read(length) if length > 0 else b""
        if len(body) != length:  # never run a truncated query or insert
            raise _BadRequest(33, f"request body ended after {len(body)} of {length} bytes")
        return body

    def _authenticate(self, params: dict[str, str]) -> tuple[str, Account]:
        user = self.headers.get("X-ClickHouse-User")
        key = self.headers.get("X-ClickHouse-Key")
        auth = self.headers.get("Authorization", "")
        if user is None and auth[:6].lower() == "basic ":
            try:
                user, _, key = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, key = "", None
        if user is None:
            user, key = params.get("user", "default"), params.get("password", "")
        account = self.server.accounts.get(user)
        # compare against something even for an unknown user, so timing does not tell which users exist
        expected = account.password if account else secrets_placeholder()
        ok_key = hmac.compare_digest((key or "").encode(), expected.encode())
        if account is None or not ok_key:
            raise _BadRequest(
                516, f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
                status=401,
            )
        return user, account

    # -- requests --------------------------------------------------------------------------------
    def _dispatch(self, read_only: bool) -> None:
        started = time.perf_counter()
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        if path in ("/ping", "/replicas_status") or (path == "/" and read_only and "query" not in params):
            self._simple(200, b"Ok.\n")
            return
        if path != "/":
            self._simple(404, f"There is no handle {url.path}\n".encode(), "text/plain; charset=UTF-8")
            return
        query_id = params.get("query_id") or ""
        try:
            user, account = self._account or self._authenticate(params)  # before reading the body
            try:
                body = self._read_body() if self.command == "POST" else b""
            except (OSError, ValueError):
                self.close_connection = True
                return
            req = self._build_request(params, body, read_only)
            req.role, req.user = account.role, user
            query_id = req.query_id
            result = self.server.engine.execute(req)
        except _BadRequest as exc:
            self._error(exc.status, exc.error, query_id)
            return
        except QueryError as exc:
            self._error(_STATUS.get(exc.code, 500), exc, query_id)
            return
        except Exception as exc:  # noqa: BLE001 - a bug must still answer like ClickHouse
            log.exception("unexpected error serving a query")
            self._error(500, QueryError.of(1001, f"{type(exc).__name__}: {exc}"), query_id)
            return
        self._send_result(result, params)
        log.debug("query %s ok in %.1f ms", result.query_id, (time.perf_counter() - started) * 1000)

    def _build_request(self, params: dict[str, str], body: bytes, read_only: bool) -> QueryRequest:
        limit = self.server.limits.max_decoded_bytes
        try:
            body = codecs.decode(body, self.headers.get("Content-Encoding"), max_size=limit)
        except codecs.BodyTooLarge:
            raise _too_large("the decoded request body", limit) from None
        except codecs.EncodingError as exc:
            raise _BadRequest(1, str(exc)) from exc
        if len(body) > limit:
            raise _too_large("the request body", limit)
        if params.get("decompress", "0") in _TRUE or params.get("compress", "0") in _TRUE:
            raise _BadRequest(48, "ClickHouse's native block compression (compress/decompress=1) is not supported")
        ctype = self.headers.get("Content-Type", "")
        if ctype.lower().startswith("multipart/form-data"):
            form, body = self._form(ctype, body), b""
            params = {**params, **form}
        query = params.get("query", "").encode()
        sql = query + b"\n" + body if query and body else (query or body)
        bound = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        settings = {
            k: v for k, v in params.items()
            if k not in TRANSPORT_PARAMS and not k.startswith("param_")
        }
        try:
            timeout = float(params.get("session_timeout") or DEFAULT_SESSION_TIMEOUT)
        except ValueError as exc:
            raise _BadRequest(27, f"Invalid session timeout: '{params['session_timeout']}'") from exc
        return QueryRequest(
            sql=sql,
            params=bound,
            settings=settings,
            database=params.get("database") or self.headers.get("X-ClickHouse-Database") or None,
            session_id=params.get("session_id") or None,
            session_timeout=timeout,
            session_check=params.get("session_check", "0") in _TRUE,
            query_id=params.get("query_id") or _new_query_id(),
            default_format=params.get("default_format") or "TabSeparated",
            read_only=read_only or params.get("readonly", "0") not in ("0", ""),
        )

    def _form(self, ctype: str, body: bytes) -> dict[str, str]:
        msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
        out: dict[str, str] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename() is not None:
                raise _BadRequest(48, f"external data ('{name}') is not supported by this server")
            if name:
                payload = part.get_payload(decode=True) or b""
                out[str(name)] = payload.decode("utf-8")
        return out

    def _common_headers(self, query_id: str) -> None:
        self.send_header("X-ClickHouse-Server-Display-Name", self.server.display_name)
        self.send_header("X-ClickHouse-Query-Id", query_id)
        self.send_header("X-ClickHouse-Timezone", self.server.engine.timezone)
        if self.close_connection:
            self.send_header("Connection", "close")
        else:
            self.send_header("Keep-Alive", f"timeout={int(self.server.limits.keep_alive_timeout)}")

    def _send_result(self, result, params: dict[str, str]) -> None:
        self._settle_body()  # a GET that came with a body
        body = result.body
        encoding = None
        if params.get("enable_http_compression", "0") in _TRUE and body:
            encoding = codecs.choose(self.headers.get("Accept-Encoding"))
            if encoding:
                body = codecs.encode(body, encoding)
        try:
            self.send_response(200)
            self._common_headers(result.query_id)
            if result.format:
                self.send_header("X-ClickHouse-Format", result.format)
            self.send_header("Content-Type", content_type(result.format))
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.send_header("X-ClickHouse-Summary", json.dumps(result.summary, separators=(",", ":")))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client went away; nothing else is affected
            self.close_connection = True

    def _error(self, status: int, error: QueryError, query_id: str) -> None:
        self._settle_body()
        message = error.message
        if "(version " not in message:
            message += f" (version {self.server.engine.version})"
        body = (message + "\n").encode()
        try:
            self.send_response(status)
            self._common_headers(query_id or _new_query_id())
            self.send_header("X-ClickHouse-Exception-Code", str(error.code))
            self.send_header("Content-Type", "text/plain; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True


def _new_query_id() -> str:
    import uuid

    return str(uuid.uuid4())


_PLACEHOLDER = base64.b64encode(os.urandom(24)).decode()


def secrets_placeholder() -> str:
    """A random password no client knows (compared against when the user is unknown)."""
    return _PLACEHOLDER


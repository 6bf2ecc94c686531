"""Running the catalog: as a service (``lakehouse catalog serve``) or in-process in a background thread.

Without auth the catalog answers anyone who can reach it, including the object store's keys in
``/v1/config``: so it only listens on loopback addresses unless ``[catalog] auth`` is on
(:func:`check_bind`). Connections (``max_connections``) and worker threads are bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING

from catalog.auth import Auth

if TYPE_CHECKING:
    from fastapi import FastAPI

    from lakehouse.config import Config


def storage_properties(cfg: Config, warehouse_uri: str) -> dict[str, str]:
    """FileIO properties for the warehouse: the object store's endpoint and keys for s3:// warehouses."""
    if not warehouse_uri.startswith("s3://"):
        return {}
    o = cfg.objectstore
    return {
        "s3.endpoint": cfg.s3_endpoint,
        "s3.access-key-id": o.access_key,
        "s3.secret-access-key": o.secret_key,
        "s3.region": o.region,
        "s3.path-style-access": "true",
    }


PLATFORM_CLIENT = "lakehouse-platform"


def platform_credential(cfg: Config) -> str:
    """``client_id:secret`` of the built-in client the platform's own commands use when auth is on."""
    return f"{PLATFORM_CLIENT}:{cfg.catalog.platform_secret}"


def auth_from_config(cfg: Config) -> Auth:
    """The auth settings of ``[catalog]``: configured clients plus the platform's built-in client."""
    from catalog.auth import hash_secret

    c = cfg.catalog
    clients = dict(c.clients)
    if c.auth and c.platform_secret:
        clients.setdefault(PLATFORM_CLIENT, hash_secret(c.platform_secret))
    return Auth(enabled=c.auth, clients=clients, token_secret=c.token_secret, ttl_seconds=c.token_ttl_seconds)


def app_from_config(cfg: Config, db_url: str | None = None, warehouse_uri: str | None = None,
                    log_requests: bool = True) -> FastAPI:
    """The catalog app for the platform's configuration (optionally another database or warehouse)."""
    from catalog.app import create_app

    warehouse = (warehouse_uri or cfg.warehouse_uri).rstrip("/")
    app = create_app(
        db_url or cfg.catalog_db_url,
        warehouse,
        warehouse_name=cfg.catalog.warehouse_name,
        storage_properties=storage_properties(cfg, warehouse),
        auth=auth_from_config(cfg),
        log_requests=log_requests,
        max_body_bytes=cfg.catalog.max_body_bytes,
        worker_threads=cfg.catalog.worker_threads,
    )
    app.state.max_connections = cfg.catalog.max_connections  # read by serve() and BackgroundServer
    return app


class UnsafeBind(ValueError):
    """Refusal to serve an auth-off catalog on a non-loopback address."""


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address (127.0.0.0/8, ::1)."""
    if not host:
        return False  # "" binds every interface
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def check_bind(host: str, auth_enabled: bool) -> None:
    """Raise :class:`UnsafeBind` for a non-loopback address while auth is off."""
    if not auth_enabled and not is_loopback(host):
        raise UnsafeBind(
            f"refusing to serve the catalog on {host or 'all interfaces'!r} with authentication off: anyone who "
            "can reach it could change every table and read the object store's keys. Bind a loopback address "
            "(catalog.host = \"127.0.0.1\") or turn auth on (LAKEHOUSE_CATALOG__AUTH=true, see [catalog] in "
            "lakehouse.toml)."
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (the access log lines are JSON already)."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if msg.startswith("{"):
            try:
                body = json.loads(msg)
            except ValueError:
                body = {"message": msg}
        else:
            body = {"message": msg}
        from catalog.middleware import request_id

        out = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name}
        if rid := request_id.get():
            out["request_id"] = rid
        out.update(body)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure_logging(level: str = "INFO") -> None:
    """Structured JSON logs on stderr for the catalog and uvicorn."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("catalog", "uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level)
        lg.propagate = False


def warm_up(app: FastAPI) -> None:
    """Load the warehouse FileIO (pyarrow) before serving, so the first commit is not slowed by imports."""
    import pyiceberg.io.pyarrow  # noqa: F401

    app.state.service.files.io(app.state.warehouse_uri)


def serve(app: FastAPI, host: str, port: int, log_level: str = "INFO", max_connections: int | None = None) -> None:
    """Run the app with uvicorn in the foreground until SIGTERM/SIGINT (refused on a public address
    while auth is off: :func:`check_bind`)."""
    import uvicorn

    check_bind(host, app.state.auth.enabled)
    max_connections = max_connections or getattr(app.state, "max_connections", None)
    configure_logging(log_level)
    warm_up(app)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, log_level=log_level.lower(),
                timeout_graceful_shutdown=5, limit_concurrency=max_connections)


def _prompt_server_class() -> type:
    """uvicorn's ``Server``, stopping in milliseconds when run in-process.

    uvicorn looks at its exit flag every 0.1 s and, on shutdown, sleeps another 0.1 s before it waits
    (in 0.1 s steps) for open connections to close: right for a service with remote clients, but every
    stage that opens the embedded catalog paid 0.13-0.2 s for it when it closed the lake. Here the exit
    wakes the loop at once and the drain polls every 5 ms, bounded by the same graceful-shutdown timeout;
    the lifespan shutdown (the app's own clean-up) runs as in uvicorn."""
    import uvicorn

    class PromptServer(uvicorn.Server):
        _loop: asyncio.AbstractEventLoop | None = None
        _wake: asyncio.Event | None = None

        async def main_loop(self) -> None:
            self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
            counter = 0
            should_exit = await self.on_tick(counter)
            while not should_exit:
                counter = (counter + 1) % 864_000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.1)  # a tick, as uvicorn's loop, or the wake
                should_exit = await self.on_tick(counter)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for server in self.servers:
                server.close()
            for sock in sockets or []:
                sock.close()
            for connection in list(self.server_state.connections):
                connection.shutdown()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + (self.config.timeout_graceful_shutdown or 5)
            while (self.server_state.connections or self.server_state.tasks) and loop.time() < deadline:
                await asyncio.sleep(0.005)
            if self.server_state.tasks:  # as uvicorn: said, then cancelled (a request may be a commit)
                logging.getLogger("catalog").error(
                    "in-process catalog stopping: cancelling %d request(s) still running after %ss",
                    len(self.server_state.tasks), self.config.timeout_graceful_shutdown or 5)
            for task in self.server_state.tasks:
                task.cancel(msg="the in-process catalog stopped")
            for server in self.servers:
                await server.wait_closed()
            await self.lifespan.shutdown()

        def wake(self) -> None:
            """Make the loop see ``should_exit`` now (from another thread)."""
            loop, wake = self._loop, self._wake
            if loop is not None and wake is not None:
                with contextlib.suppress(RuntimeError):  # the loop already closed
                    loop.call_soon_threadsafe(wake.set)

    return PromptServer


class BackgroundServer:
    """The catalog on a free loopback port in a daemon thread (for ``open_lake`` and tests)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, max_connections: int | None = None
                 ) -> None:
        import uvicorn

        check_bind(host, app.state.auth.enabled)
        max_connections = max_connections or getattr(app.state, "max_connections", None)

        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only for sockets whose
        # proto is TCP; with proto 0 every response waits ~40 ms for Nagle + delayed ACK.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(app, log_config=None, access_log=False, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=2, limit_concurrency=max_connections)
        self.server = _prompt_server_class()(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name=f"catalog-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        """Base URI (the REST API is under /v1)."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        """Start serving and wait until the server accepts requests."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the in-process catalog server did not start on {self.url}")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.should_exit = True
        self.server.wake()
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

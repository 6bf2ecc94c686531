"""How every stage reaches the lake: the Iceberg REST catalog.

``open_lake(cfg)`` yields a :class:`LakeHandle`: the REST catalog's base URI and a pyiceberg
``RestCatalog`` connected to it. With ``[catalog] external`` (the compose stack, a shared server) the
catalog at ``host:port`` is used; else when the catalog service is running under the supervisor its
URL is used; otherwise the catalog server is started in-process on a free loopback port for the
duration (same database ``cfg.catalog_db_url``, same warehouse ``cfg.warehouse_uri``: one code path).

Nested ``open_lake`` calls for the same lake reuse the open handle (a ``lakehouse run`` opens the
lake once; the stages it calls open it again without starting a second in-process server).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pyiceberg.catalog import Catalog

from lakehouse.config import Config, get_config


@dataclass
class LakeHandle:
    """A live connection to the lake's catalog."""

    uri: str | None  # REST catalog base URI (the API is under /v1), e.g. http://127.0.0.1:8181
    warehouse: str  # warehouse name clients pass (catalog.warehouse_name)
    warehouse_uri: str  # file:///... or s3://bucket/prefix
    catalog: Catalog
    # pyiceberg load_catalog properties; they may hold the platform's credential, so never in a repr
    properties: dict[str, str] = field(default_factory=dict, repr=False)


def client_properties(cfg: Config, uri: str) -> dict[str, str]:
    """pyiceberg RestCatalog properties: only the URI, plus the platform's client credential when
    ``catalog.auth`` is on (client ``lakehouse-platform``, secret ``catalog.platform_secret``)."""
    props = {"uri": uri}
    if cfg.catalog.auth:
        from catalog.server import platform_credential

        props["credential"] = platform_credential(cfg)
        props["oauth2-server-uri"] = f"{uri}/v1/oauth/tokens"
    return props


#: how long an external catalog may take to answer /healthz (it may be restarting)
EXTERNAL_WAIT_SECONDS = 30.0


class LakeUnavailable(RuntimeError):
    """The lake cannot be opened (e.g. the in-process catalog's database is on a read-only disk); the
    message names the path and the cause, and the CLI prints it without a traceback."""


def _why_no_catalog(cfg: Config, exc: Exception) -> str:
    """Why the in-process catalog did not start, naming its database and, when that is the reason, the
    state dir that cannot be written (SQLite only says "unable to open database file")."""
    import os
    from pathlib import Path

    url = cfg.catalog_db_url
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        if folder.exists() and not os.access(folder, os.W_OK):
            read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
            cause = "[Errno 30] Read-only file system" if read_only else "[Errno 13] Permission denied"
            return (f"the catalog database in {folder} cannot be opened: {cause} (state dir {cfg.home}); "
                    "the lake needs a writable state dir (LAKEHOUSE_HOME)")
    return f"the in-process catalog on {url} did not start: {type(exc).__name__}: {exc}"


_OPEN: dict[tuple, list] = {}  # lake key -> [handle, number of open blocks]
_OPEN_LOCK = threading.Lock()


def _lake_key(cfg: Config) -> tuple:
    return (str(cfg.home), cfg.catalog_db_url, cfg.warehouse_uri, cfg.catalog.warehouse_name, cfg.catalog.auth)


def import_lake_modules(cfg: Config) -> None:
    """Import what :func:`open_lake` will use (pyiceberg's REST client; the catalog server when it will
    run in-process), so a caller can settle the process's heap (:mod:`lakehouse.heap`) before the lake's
    own objects exist."""
    import pyiceberg.catalog.rest  # noqa: F401

    from lakehouse.services.supervisor import is_running

    if not cfg.catalog.external and not is_running(cfg, "catalog"):
        import catalog.app  # noqa: F401
        import catalog.server  # noqa: F401


@contextmanager
def open_lake(cfg: Config | None = None) -> Iterator[LakeHandle]:
    """Yield a handle on the lake's catalog for the duration of the block (reused when nested)."""
    cfg = cfg or get_config()
    key = _lake_key(cfg)
    with _OPEN_LOCK:
        entry = _OPEN.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is not None:
        try:
            yield entry[0]
        finally:
            with _OPEN_LOCK:
                entry[1] -= 1
        return
    from pyiceberg.catalog.rest import RestCatalog

    from lakehouse.net import wait_http
    from lakehouse.services.supervisor import is_running

    server = None
    if cfg.catalog.external:
        uri = cfg.catalog_uri
        if not wait_http(f"{uri}/healthz", EXTERNAL_WAIT_SECONDS):
            raise LakeUnavailable(f"the catalog at {uri} ([catalog] external = true) does not answer {uri}/healthz")
    elif is_running(cfg, "catalog"):
        uri = cfg.catalog_uri
    else:
        from catalog.server import BackgroundServer, app_from_config

        try:
            server = BackgroundServer(app_from_config(cfg, log_requests=False)).start()
        except Exception as exc:
            raise LakeUnavailable(_why_no_catalog(cfg, exc)) from exc
        uri = server.url
    try:
        props = client_properties(cfg, uri)
        cat = RestCatalog(cfg.catalog.warehouse_name, **props)
        handle = LakeHandle(uri, cfg.catalog.warehouse_name, cfg.warehouse_uri, cat, props)
        with _OPEN_LOCK:
            _OPEN[key] = [handle, 1]
        try:
            yield handle
        finally:
            with _OPEN_LOCK:
                _OPEN.pop(key, None)
    finally:
        if server is not None:
            server.stop()

"""How every stage reaches the lake: the Iceberg REST catalog.

``open_lake(cfg)`` yields a :class:`LakeHandle`: the REST catalog's base URI and a pyiceberg
``RestCatalog`` connected to it. When the catalog service is running under the supervisor its URL
is used; otherwise the catalog server is started in-process on a free loopback port for the
duration (same database ``cfg.catalog_db_url``, same warehouse ``cfg.warehouse_uri``: one code path).
"""

from __future__ import annotations

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
    properties: dict[str, str] = field(default_factory=dict)  # pyiceberg load_catalog properties


def client_properties(cfg: Config, uri: str) -> dict[str, str]:
    """pyiceberg RestCatalog properties: only the URI, plus the platform's client credential when
    ``catalog.auth`` is on (client ``lakehouse-platform``, secret ``catalog.platform_secret``)."""
    props = {"uri": uri}
    if cfg.catalog.auth:
        from catalog.server import platform_credential

        props["credential"] = platform_credential(cfg)
        props["oauth2-server-uri"] = f"{uri}/v1/oauth/tokens"
    return props


@contextmanager
def open_lake(cfg: Config | None = None) -> Iterator[LakeHandle]:
    """Yield a handle on the lake's catalog for the duration of the block."""
    cfg = cfg or get_config()
    from pyiceberg.catalog.rest import RestCatalog

    from lakehouse.services.supervisor import is_running

    server = None
    if is_running(cfg, "catalog"):
        uri = cfg.catalog_uri
    else:
        from catalog.server import BackgroundServer, app_from_config

        server = BackgroundServer(app_from_config(cfg, log_requests=False)).start()
        uri = server.url
    try:
        props = client_properties(cfg, uri)
        cat = RestCatalog(cfg.catalog.warehouse_name, **props)
        yield LakeHandle(uri, cfg.catalog.warehouse_name, cfg.warehouse_uri, cat, props)
    finally:
        if server is not None:
            server.stop()

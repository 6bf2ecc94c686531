"""How every stage reaches the lake: the Iceberg REST catalog.

``open_lake(cfg)`` yields a :class:`LakeHandle`: the REST catalog's base URI and a pyiceberg
catalog connected to it. When no catalog service is running, the catalog server is started
in-process on a free loopback port for the duration (same database, same code path).

TEMPORARY: until the REST catalog server lands (catalog/), this falls back to pyiceberg's
SqlCatalog on the same SQLite file; ``uri`` is then None. Keep the interface stable.
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


@contextmanager
def open_lake(cfg: Config | None = None) -> Iterator[LakeHandle]:
    """Yield a handle on the lake's catalog for the duration of the block."""
    cfg = cfg or get_config()
    from pyiceberg.catalog.sql import SqlCatalog

    props = {"uri": cfg.catalog_db_url, "warehouse": cfg.warehouse_uri}
    cat = SqlCatalog(cfg.catalog.warehouse_name, **props)
    yield LakeHandle(None, cfg.catalog.warehouse_name, cfg.warehouse_uri, cat, props)

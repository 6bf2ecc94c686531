"""dbt-duckdb plugin for the dbt_lake project: sets up every dbt-duckdb connection for the lake.

1. loads the avro/httpfs/iceberg extensions from their PyPI packages by path (nothing downloads;
   the profile turns autoinstall/autoload off),
2. creates the DuckDB secrets the lake needs (S3 in services mode, iceberg when catalog auth is on),
3. ATTACHes the REST catalog as ``lake``,
4. ``store``: overwrites an Iceberg table with a staged DuckDB table through pyiceberg (the
   ``lake_table`` materialization's full refresh: one snapshot replacing the data files, which
   DuckDB's iceberg DELETE cannot do; it writes position deletes over them).

The profile's own ``secrets``/``attach`` are not used: dbt-duckdb creates secrets before plugins run
(too early for S3 secrets, which need httpfs), and the catalog endpoint changes with every run in
embedded mode (a free port), which would make dbt re-parse the project each time (the profile is
part of its partial-parse hash). So the endpoint comes from the environment variable named in the
plugin config (``endpoint_env``, set by lakehouse/stages/transform_lake.py), falling back to ``endpoint``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import TargetConfig
from duckdb import DuckDBPyConnection

from lakehouse.transform.duck import attach_catalog, create_secret, load_extensions


class Plugin(BasePlugin):
    """Extensions by path, lake secrets and the lake ATTACH on every dbt-duckdb connection."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._secrets: dict[str, dict] = dict(plugin_config.get("secrets") or {})
        self._attach: dict[str, Any] | None = plugin_config.get("attach")

    def _endpoint(self) -> str:
        a = self._attach or {}
        endpoint = os.environ.get(a.get("endpoint_env") or "", "") or a.get("endpoint")
        if not endpoint:
            raise RuntimeError(
                f"no Iceberg REST catalog endpoint: set {a.get('endpoint_env')} (lakehouse transform lake "
                "does) or put `endpoint` in the plugin config"
            )
        return endpoint

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        load_extensions(conn)
        for name, options in self._secrets.items():
            create_secret(conn, name, options)
        if self._attach:
            a = self._attach
            attach_catalog(conn, a["warehouse"], a["alias"], {**a["options"], "endpoint": self._endpoint()})

    def store(self, target_config: TargetConfig) -> None:
        """Overwrite the Iceberg table ``config['table']`` (``namespace.table``) with the rows of the
        parquet file ``location.path`` (written by the materialization from its staged rows), then
        delete the file. One pyiceberg overwrite: a snapshot that replaces the table's data files."""
        import pyarrow.parquet as pq
        from pyiceberg.catalog.rest import RestCatalog

        from lakehouse.config import get_config
        from lakehouse.lake import client_properties

        location = target_config.location
        if location is None or location.format != "iceberg_overwrite":
            raise RuntimeError(f"lake_setup.store: unsupported target {location}")
        cfg = get_config()
        catalog = RestCatalog(cfg.catalog.warehouse_name, **client_properties(cfg, self._endpoint()))
        table = catalog.load_table(target_config.config["table"])
        path = Path(location.path)
        try:
            data = pq.read_table(path)
            table.overwrite(data.cast(table.schema().as_arrow()))
        finally:
            path.unlink(missing_ok=True)

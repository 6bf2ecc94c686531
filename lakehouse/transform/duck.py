"""DuckDB with the avro, httpfs and iceberg extensions loaded from their PyPI packages (never
downloaded), and the REST catalog attached as ``lake``."""

from __future__ import annotations

import importlib
from pathlib import Path

import duckdb

EXTENSIONS = ("avro", "httpfs", "iceberg")  # avro first: iceberg needs it


def extension_path(name: str) -> Path:
    """The ``.duckdb_extension`` file shipped by the ``duckdb-extension-<name>`` package."""
    pkg = importlib.import_module(f"duckdb_extension_{name}")
    root = Path(pkg.__file__).parent
    found = sorted(root.rglob(f"{name}.duckdb_extension"))
    if not found:
        raise FileNotFoundError(
            f"DuckDB extension '{name}' not found in {root}; "
            f"reinstall duckdb-extension-{name}=={duckdb.__version__}"
        )
    return found[0]


def load_extensions(con: duckdb.DuckDBPyConnection) -> None:
    """Load the three lake extensions by path and forbid any download."""
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    for name in EXTENSIONS:
        con.execute(f"LOAD '{extension_path(name)}'")


def connect(database: str = ":memory:", config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the lake extensions loaded."""
    cfg = {"allow_unsigned_extensions": "true", **(config or {})}
    con = duckdb.connect(database, config=cfg)
    load_extensions(con)
    return con


# --- The lake attached to DuckDB ---------------------------------------------------------------
# One source of truth for "DuckDB with the lake attached": `attach_lake` runs these statements on a
# live connection (`lakehouse sql`, tests, benchmarks) and the dbt profile generator writes the same
# options into profiles.yml (lakehouse/stages/transform_lake.py).

LAKE_ALIAS = "lake"


def _sql_str(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "'" + str(value).replace("'", "''") + "'"


def s3_secret_options(cfg) -> dict[str, str | bool] | None:
    """DuckDB S3 secret options for the object store in services mode (None in embedded mode)."""
    from urllib.parse import urlparse

    if not cfg.warehouse_uri.startswith("s3://"):
        return None
    endpoint = urlparse(cfg.s3_endpoint)
    return {
        "type": "s3",
        "key_id": cfg.objectstore.access_key,
        "secret": cfg.objectstore.secret_key,
        "region": cfg.objectstore.region,
        "endpoint": endpoint.netloc,
        "url_style": "path",
        "use_ssl": endpoint.scheme == "https",
    }


def iceberg_attach_options(lake, secret_name: str | None = None) -> dict[str, str]:
    """ATTACH options for the lake's REST catalog (DuckDB appends ``/v1`` to ENDPOINT itself)."""
    if not lake.uri:
        raise RuntimeError(
            "the lake has no REST catalog URI (open_lake yielded uri=None): DuckDB can only attach "
            "the lake through the Iceberg REST catalog"
        )
    opts = {"type": "iceberg", "endpoint": lake.uri.rstrip("/")}
    if secret_name:
        opts["secret"] = secret_name
    else:
        opts["authorization_type"] = "none"
    return opts


def iceberg_secret_options(lake) -> dict[str, str] | None:
    """An iceberg secret for a catalog with auth on (token or client credentials), else None."""
    props = lake.properties or {}
    if props.get("token"):
        return {"type": "iceberg", "token": props["token"]}
    if props.get("credential"):
        client_id, _, client_secret = props["credential"].partition(":")
        return {
            "type": "iceberg",
            "client_id": client_id,
            "client_secret": client_secret,
            "oauth2_server_uri": f"{lake.uri.rstrip('/')}/v1/oauth/tokens",
        }
    return None


def create_secret(con: duckdb.DuckDBPyConnection, name: str, options: dict) -> None:
    """``CREATE OR REPLACE SECRET name (TYPE ..., KEY value, ...)`` from an options dict."""
    body = ", ".join(
        f"{k.upper()} {v if k == 'type' else _sql_str(v)}" for k, v in options.items() if v is not None
    )
    con.execute(f"CREATE OR REPLACE SECRET {name} ({body})")


def lake_secrets(lake, cfg) -> dict[str, dict]:
    """The DuckDB secrets the lake needs, by name: S3 in services mode, iceberg when auth is on."""
    out: dict[str, dict] = {}
    s3 = s3_secret_options(cfg)
    if s3:
        out["lake_s3"] = s3
    ice = iceberg_secret_options(lake)
    if ice:
        out["lake_iceberg"] = ice
    return out


def attach_lake(con: duckdb.DuckDBPyConnection, lake, cfg, alias: str = LAKE_ALIAS) -> None:
    """Attach the lake's REST catalog to ``con`` as ``alias`` (default ``lake``), with S3 credentials
    in services mode, so ``SELECT * FROM lake.features.fct_daily_features`` works.

    ``con`` must already have the extensions loaded (:func:`connect`); ``lake`` is the
    :class:`lakehouse.lake.LakeHandle` from ``open_lake``.
    """
    secrets = lake_secrets(lake, cfg)
    for name, options in secrets.items():
        create_secret(con, name, options)
    opts = iceberg_attach_options(lake, "lake_iceberg" if "lake_iceberg" in secrets else None)
    attach_catalog(con, lake.warehouse, alias, opts)


def attach_catalog(con: duckdb.DuckDBPyConnection, warehouse: str, alias: str, options: dict) -> None:
    """``ATTACH IF NOT EXISTS 'warehouse' AS alias (TYPE iceberg, ENDPOINT ..., ...)``."""
    body = ", ".join(
        f"{k.upper()} {v if k in ('type', 'secret') else _sql_str(v)}" for k, v in options.items()
    )
    con.execute(f"ATTACH IF NOT EXISTS {_sql_str(warehouse)} AS {alias} ({body})")


def connect_lake(lake, cfg, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the extensions loaded and the lake attached as ``lake``."""
    con = connect(database)
    attach_lake(con, lake, cfg)
    return con

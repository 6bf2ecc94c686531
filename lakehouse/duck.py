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

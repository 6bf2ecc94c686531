"""The current version of each data asset, read cheaply (a no-change rerun must stay fast).

- Iceberg table: its current snapshot id, from the catalog (``None`` when the table or its first
  snapshot does not exist yet).
- ``mlflow:<model>@<alias>``: the registered version holding the alias, read without importing MLflow
  (which takes seconds): the server's REST API in services mode, else the embedded SQLite store's
  alias table, falling back to the MLflow client if that table's layout ever changes.
- ``clickhouse:<database>.*``: a digest of the database's tables and their UUIDs (a rebuilt table gets
  a new UUID), from ``system.tables`` when a front answers, else from chdb's metadata files.
- ``source:<name>``: the offline sample's file digest; a live source (MOEX, Yahoo) has no version
  (:data:`VOLATILE`): only fetching tells whether it has new quotes, so ingest always runs for it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.pipeline.graph import asset_kind

if TYPE_CHECKING:
    from lakehouse.config import Config
    from lakehouse.lake import LakeHandle

#: Version of an asset that changes without telling (a live quote API).
VOLATILE = "volatile"


class AssetProbe:
    """Reads asset versions for one run, caching them until a stage that writes an asset finishes."""

    def __init__(self, cfg: Config, lake: LakeHandle) -> None:
        self.cfg = cfg
        self.lake = lake
        self._cache: dict[str, str | None] = {}

    def version(self, asset: str) -> str | None:
        """The asset's current version as text (None: it does not exist yet)."""
        if asset not in self._cache:
            self._cache[asset] = self._read(asset)
        return self._cache[asset]

    def versions(self, assets: tuple[str, ...]) -> dict[str, str | None]:
        return {a: self.version(a) for a in assets}

    def forget(self, assets: tuple[str, ...]) -> None:
        """Drop cached versions (after a stage wrote these assets)."""
        for a in assets:
            self._cache.pop(a, None)

    def _read(self, asset: str) -> str | None:
        kind = asset_kind(asset)
        name = asset.split(":", 1)[1] if kind != "iceberg" else asset
        if kind == "iceberg":
            return iceberg_version(self.lake, name)
        if kind == "mlflow":
            return mlflow_alias_version(self.cfg, name)
        if kind == "clickhouse":
            return clickhouse_version(self.cfg, name)
        return source_version(self.cfg, name)


def iceberg_version(lake: LakeHandle, identifier: str) -> str | None:
    """The current snapshot id of ``identifier`` (None when the table or its first snapshot is missing)."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    try:
        table = lake.catalog.load_table(identifier)
    except (NoSuchTableError, NoSuchNamespaceError):
        return None
    snap = table.current_snapshot()
    return str(snap.snapshot_id) if snap is not None else None


def mlflow_alias_version(cfg: Config, name: str) -> str | None:
    """The version of registered model ``model@alias`` (None when there is none)."""
    model, _, alias = name.partition("@")
    from ml.tracking import tracking_target

    target = tracking_target(cfg)
    if target.kind == "server":
        url = (f"{target.tracking_uri}/api/2.0/mlflow/registered-models/alias?"
               + urllib.parse.urlencode({"name": model, "alias": alias}))
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - URL from config
                return str(json.load(resp)["model_version"]["version"])
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 404):  # RESOURCE_DOES_NOT_EXIST / INVALID_PARAMETER_VALUE: no such alias
                return None
            raise
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeError(f"the MLflow server at {target.tracking_uri} is not reachable ({exc}); start it "
                               "with `lakehouse up mlflow` (services mode) or check [mlflow] tracking_uri") from exc
    db = Path(target.tracking_uri.removeprefix("sqlite:///"))
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
            row = con.execute("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = ?",
                              (model, alias)).fetchone()
        return str(row[0]) if row else None
    except sqlite3.OperationalError:  # the store has no registry tables yet, or MLflow changed them
        return _mlflow_client_alias(cfg, model, alias)


def _mlflow_client_alias(cfg: Config, model: str, alias: str) -> str | None:
    from ml import registry, tracking

    tracking.configure(cfg)
    import mlflow

    version = registry.alias_version(mlflow.MlflowClient(), model, alias)
    return str(version.version) if version is not None else None


def clickhouse_version(cfg: Config, name: str) -> str | None:
    """Digest of the tables of database ``name`` (``marts.*``) and their UUIDs; None when it has none."""
    database = name.split(".", 1)[0]
    rows = _tables_over_http(cfg, database)
    if rows is None:
        rows = _tables_on_disk(cfg.chdb_path, database)
    if not rows:
        return None
    return hashlib.sha256(json.dumps(sorted(rows)).encode()).hexdigest()[:16]


def _tables_over_http(cfg: Config, database: str) -> list[tuple[str, str]] | None:
    """``(name, uuid)`` of the database's tables from a front that answers at the configured address."""
    from lakehouse.net import port_in_use

    ch = cfg.clickhouse
    if not port_in_use(ch.host, ch.port):
        return None
    query = urllib.parse.urlencode({
        "query": "SELECT name, toString(uuid) FROM system.tables WHERE database = {db:String} FORMAT JSONCompact",
        "param_db": database,
    })
    request = urllib.request.Request(f"{ch.url}/?{query}",
                                     headers={"X-ClickHouse-User": ch.user, "X-ClickHouse-Key": ch.password})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - URL from config
            return [tuple(r) for r in json.load(resp)["data"]]
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return None


def _tables_on_disk(chdb_path: Path, database: str) -> list[tuple[str, str]]:
    """``(name, uuid)`` from chdb's ``metadata/<database>/<table>.sql`` files (first line: ATTACH ... UUID)."""
    folder = chdb_path / "metadata" / database
    if not folder.is_dir():
        return []
    out = []
    for f in sorted(folder.glob("*.sql")):
        head = f.read_text(errors="replace").split("\n", 1)[0]
        uuid = head.split("UUID '", 1)[1].split("'", 1)[0] if "UUID '" in head else head
        out.append((urllib.parse.unquote(f.stem), uuid))
    return out


def source_version(cfg: Config, name: str) -> str | None:
    """The sample's file digest; :data:`VOLATILE` for live sources."""
    if name == "sample":
        from lakehouse.sources.sample import SAMPLE_FILE

        return file_digest(SAMPLE_FILE)
    return VOLATILE


def file_digest(path: Path) -> str:
    """sha256 (first 16 hex digits) of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]

"""`lakehouse transform dwh`: build the ClickHouse marts of ``dbt_dwh/`` (dbt-clickhouse) from the lake.

1. Open the lake (REST catalog) and resolve each lake table the marts read to its *current*
   metadata file (the catalog is the source of truth; ClickHouse's catalog-less readers would list
   the folder instead, see pitfalls.md) and to the reader for the warehouse: ``icebergLocal`` for a
   file warehouse, ``icebergS3`` for S3 (credentials in a ClickHouse named collection, never in SQL).
   Tables the lake does not have yet are passed as ``missing`` (empty typed relations).
2. Reach ClickHouse: the running ``clickhouse`` service, else a temporary front on a free port
   (a child process owning the chdb data path for the duration).
3. Run ``dbt build`` with a profile generated from the configuration into
   ``$LAKEHOUSE_HOME/dbt_dwh/profiles.yml`` (endpoint and password come from the environment,
   so the file holds no secret), the resolutions passed as the ``lake`` var.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lakehouse.config import PACKAGE_ROOT, Config
from lakehouse.dbt_runner import NodeResult, run_dbt_process, write_profile_file

PROJECT_DIR = PACKAGE_ROOT / "dbt_dwh"
PROFILE_NAME = "lakehouse_dwh"
#: Lake tables the marts read (namespace.table), as named in the BRIEF's data contracts.
LAKE_TABLES = (
    "raw.quotes", "features.fct_daily_features", "ml.predictions", "ml.prediction_accuracy", "ml.model_metrics",
)
MARTS = (
    "mart_daily_prices", "mart_weekly_summary", "mart_latest_forecast", "mart_forecast_vs_actual",
    "mart_model_leaderboard",
)
S3_COLLECTION = "lake_s3"
PASSWORD_ENV = "DBT_ENV_SECRET_LAKEHOUSE_DWH_PASSWORD"  # DBT_ENV_SECRET_* values are scrubbed from dbt logs


class DwhError(RuntimeError):
    """The marts could not be built; the message says what and where."""


@dataclass(frozen=True)
class LakeTableRef:
    """One lake table as the marts will read it."""

    identifier: str
    storage: str  # local | s3 | missing
    location: str = ""
    metadata_location: str = ""
    snapshot_id: int | None = None
    reader: dict[str, str] = field(default_factory=dict)

    def as_var(self) -> dict[str, str]:
        return {"storage": self.storage, **self.reader}


def state_dir(cfg: Config) -> Path:
    """Where the generated profile, dbt's target/ and logs live."""
    return cfg.path("dbt_dwh", create=True)


def _local_path(uri: str) -> str:
    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri


def _relative_metadata(location: str, metadata_location: str) -> str:
    root = location.rstrip("/") + "/"
    return metadata_location[len(root):] if metadata_location.startswith(root) else ""


def reader_spec(cfg: Config, location: str, metadata_location: str) -> tuple[str, dict[str, str]]:
    """(storage, reader arguments) for a table at ``location`` whose current metadata is ``metadata_location``."""
    rel = _relative_metadata(location, metadata_location)
    if location.startswith(("s3://", "s3a://")):
        if not rel:
            raise DwhError(f"metadata file {metadata_location} is not under the table location {location}")
        bucket_key = location.split("://", 1)[1].rstrip("/")
        return "s3", {"url": f"{cfg.s3_endpoint.rstrip('/')}/{bucket_key}/", "metadata": rel}
    if location.startswith("file:") or location.startswith("/"):
        path = _local_path(location).rstrip("/")
        return "local", {"path": path, "metadata": rel or _local_path(metadata_location)}
    raise DwhError(f"unsupported table location {location} (expected file:// or s3://)")


def resolve_lake_tables(cfg: Config, lake) -> dict[str, LakeTableRef]:
    """Each lake table the marts read, resolved in the catalog to its current metadata file."""
    out: dict[str, LakeTableRef] = {}
    for ident in LAKE_TABLES:
        if not lake.catalog.table_exists(ident):
            out[ident] = LakeTableRef(ident, "missing")
            continue
        tbl = lake.catalog.load_table(ident)
        snap = tbl.current_snapshot()
        storage, reader = reader_spec(cfg, tbl.location(), tbl.metadata_location)
        out[ident] = LakeTableRef(ident, storage, tbl.location(), tbl.metadata_location,
                                  snap.snapshot_id if snap else None, reader)
    return out


def profile(cfg: Config) -> dict[str, Any]:
    """The dbt profile (endpoint and credentials read from the environment at run time)."""
    output = {
        "type": "clickhouse",
        "driver": "http",
        "host": "{{ env_var('LAKEHOUSE_DWH_HOST') }}",
        "port": "{{ env_var('LAKEHOUSE_DWH_PORT') | as_number }}",
        "user": "{{ env_var('LAKEHOUSE_DWH_USER') }}",
        "password": f"{{{{ env_var('{PASSWORD_ENV}') }}}}",
        "schema": cfg.clickhouse.database,
        "threads": 1,  # the chdb front runs one query at a time anyway
        "secure": False,
        "connect_timeout": 10,
        "send_receive_timeout": 1800,
        "custom_settings": {"join_use_nulls": 1},
    }
    return {PROFILE_NAME: {"target": cfg.mode, "outputs": {cfg.mode: output}}}


def write_profile(cfg: Config) -> Path:
    """Write profiles.yml into the state dir; return its directory."""
    return write_profile_file(state_dir(cfg), profile(cfg), "lakehouse.dwh")


def prepare_clickhouse(cfg: Config, ep, refs: dict[str, LakeTableRef]) -> None:
    """Create the marts database and, for an S3 lake, the named collection holding the S3 credentials."""
    from lakehouse.clickhouse.front import http_client

    client = http_client(ep, database=None)
    try:
        client.command(f"CREATE DATABASE IF NOT EXISTS `{cfg.clickhouse.database}`")
        if any(r.storage == "s3" for r in refs.values()):
            o = cfg.objectstore
            client.command(f"DROP NAMED COLLECTION IF EXISTS {S3_COLLECTION}")
            client.command(
                f"CREATE NAMED COLLECTION {S3_COLLECTION} AS access_key_id = {_sql_str(o.access_key)}, "
                f"secret_access_key = {_sql_str(o.secret_key)}"
            )
    finally:
        client.close()


def _sql_str(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class DwhResult:
    """Outcome of one ``lakehouse transform dwh``."""

    returncode: int
    seconds: float
    endpoint_url: str
    database: str
    temporary_front: bool
    lake: dict[str, LakeTableRef]
    nodes: list[NodeResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    log_path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def one_line(self) -> str:
        """A short summary for `lakehouse run`."""
        models = [n for n in self.nodes if n.kind == "model"]
        tests = [n for n in self.nodes if n.kind == "test"]
        bad = [n.name for n in self.nodes if n.status in ("error", "fail")]
        rows = ", ".join(f"{m.removeprefix('mart_')} {self.row_counts[m]}" for m in MARTS if m in self.row_counts)
        text = (f"{len(models)} models, {len(tests)} tests; marts in ClickHouse database "
                f"`{self.database}` ({rows})")
        if bad:
            text += f"; FAILED: {', '.join(bad[:5])}"
        return text


def build(
    cfg: Config,
    *,
    full_refresh: bool = False,
    select: Sequence[str] = (),
    console: Console | None = None,
    ep=None,
) -> DwhResult:
    """Resolve the lake tables, reach ClickHouse (``ep``, else the running service or a temporary
    front), and ``dbt build`` the marts project."""
    from lakehouse.clickhouse.front import endpoint
    from lakehouse.lake import open_lake

    console = console or Console(stderr=True)
    with open_lake(cfg) as lake:
        refs = resolve_lake_tables(cfg, lake)
    if refs["raw.quotes"].storage == "missing":
        raise DwhError("the lake has no table raw.quotes yet: run `lakehouse ingest` first")
    args = ["build", "--vars", json.dumps({"lake": {k: r.as_var() for k, r in refs.items()}})]
    if full_refresh:
        args.append("--full-refresh")
    for s in select:
        args += ["--select", s]
    with contextlib.ExitStack() as stack:
        if ep is None:
            ep = stack.enter_context(endpoint(cfg))
        prepare_clickhouse(cfg, ep, refs)
        result = run_dbt(cfg, ep, args, console=console)
        result.lake = refs
        result.row_counts = mart_row_counts(ep)
    return result


def run_dbt(cfg: Config, ep, args: Sequence[str], console: Console | None = None) -> DwhResult:
    """Run ``dbt <args>`` on dbt_dwh/ against the front at ``ep`` with the generated profile."""
    console = console or Console(stderr=True)
    run = run_dbt_process(
        args, project_dir=PROJECT_DIR, profiles_dir=write_profile(cfg), target=state_dir(cfg) / "target",
        logs=state_dir(cfg) / "logs", console=console, label="dbt_dwh", error=DwhError,
        env={"LAKEHOUSE_DWH_HOST": ep.host, "LAKEHOUSE_DWH_PORT": str(ep.port), "LAKEHOUSE_DWH_USER": ep.user,
             PASSWORD_ENV: ep.password},
    )
    return DwhResult(run.returncode, run.seconds, ep.url, ep.database, ep.temporary, {}, run.nodes, run.errors,
                     log_path=run.log_path)


def mart_row_counts(ep) -> dict[str, int]:
    """Rows per table of the marts database (views count as 0)."""
    from lakehouse.clickhouse.front import http_client

    client = http_client(ep)
    try:
        rows = client.query(
            "SELECT name, total_rows FROM system.tables WHERE database = {db:String}", parameters={"db": ep.database}
        ).result_rows
    finally:
        client.close()
    return {name: int(n or 0) for name, n in rows}


def summary_table(result: DwhResult) -> Table:
    """One row per model (with its row count) and per failing test, plus the test totals."""
    colors = {"success": "green", "pass": "green", "error": "red", "fail": "red", "warn": "yellow", "skipped": "dim"}
    table = Table(title=f"dbt build: dbt_dwh -> ClickHouse `{result.database}` ({result.seconds:.1f}s)")
    for col in ("node", "kind", "status", "rows", "seconds", "detail"):
        table.add_column(col, justify="right" if col in ("rows", "seconds") else "left")
    for n in result.nodes:
        if n.kind == "model" or n.status not in ("pass", "success"):
            detail = n.message if n.kind == "model" else (f"{n.failures} failing rows" if n.failures else n.message)
            rows = str(result.row_counts.get(n.name, "")) if n.kind == "model" else ""
            table.add_row(n.name, n.kind, f"[{colors.get(n.status, 'white')}]{n.status}[/]", rows,
                          f"{n.seconds:.2f}", escape(detail[:120]))
    tests = [n for n in result.nodes if n.kind == "test"]
    passed = sum(1 for n in tests if n.status == "pass")
    table.add_row(f"{len(tests)} tests", "test", f"[{'green' if passed == len(tests) else 'red'}]{passed} passed[/]",
                  "", f"{sum(n.seconds for n in tests):.2f}", "")
    return table


def print_summary(result: DwhResult, console: Console) -> None:
    """The summary table, where the marts are, and dbt's errors when it failed."""
    console.print(summary_table(result))
    lake = ", ".join(f"{k}@{r.snapshot_id}" if r.storage != "missing" else f"{k} (missing)"
                     for k, r in result.lake.items())
    console.print(f"lake snapshots read: {lake}")
    where = ("a temporary front (serve them with `lakehouse clickhouse serve` or `lakehouse up clickhouse`)"
             if result.temporary_front else result.endpoint_url)
    console.print(f"marts: ClickHouse database [bold]{result.database}[/] via {where}")
    if not result.ok:
        for line in result.errors[-20:]:
            console.print(f"[red]{escape(line)}[/]")
        console.print(f"dbt exited with {result.returncode}; full log: {result.log_path}")

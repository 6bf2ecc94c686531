"""Stage ``transform-dwh``: build the ClickHouse marts of ``dbt_dwh/`` (dbt-clickhouse) from the lake
(``lakehouse transform dwh``).

1. Resolve each lake table the stage reads (its ``reads`` in the pipeline graph) to its *current*
   metadata file in the REST catalog (the catalog is the source of truth; ClickHouse's catalog-less
   readers would list the folder instead, see pitfalls.md) and to the reader for the warehouse:
   ``icebergLocal`` for a file warehouse, ``icebergS3`` for S3 (credentials in a ClickHouse named
   collection, never in SQL). A table the lake does not have yet is passed as ``missing`` with its
   contract's ClickHouse column types (an empty typed relation).
2. Reach ClickHouse: the running ``clickhouse`` service, else a temporary front on a free port
   (a child process owning the chdb data path for the duration).
3. Run ``dbt build`` with a profile generated from the configuration into
   ``$LAKEHOUSE_HOME/dbt_dwh/profiles.yml`` (endpoint and password come from the environment,
   so the file holds no secret), the resolutions passed as the ``lake`` var. A rebuild (changed
   definition) is a ``--full-refresh``.
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

from lakehouse.clickhouse.guard import LAKE_S3_COLLECTION
from lakehouse.config import PACKAGE_ROOT, Config
from lakehouse.contracts import contract
from lakehouse.pipeline import graph
from lakehouse.pipeline.stage import StageContext, StageFailed
from lakehouse.transform.dbt import DbtRun, print_summary, run_dbt_process, write_profile_file

STAGE = "transform-dwh"
PROJECT_DIR = PACKAGE_ROOT / "dbt_dwh"
PROFILE_NAME = "lakehouse_dwh"
#: The lake tables the marts read: this stage's Iceberg reads in the pipeline graph.
LAKE_TABLES = tuple(a for a in graph.get(graph.STAGES, STAGE).reads if graph.asset_kind(a) == "iceberg")
MARTS = (
    "mart_daily_prices", "mart_weekly_summary", "mart_latest_forecast", "mart_forecast_vs_actual",
    "mart_model_leaderboard",
)
S3_COLLECTION = LAKE_S3_COLLECTION  # the only named collection the front lets the writer create
PASSWORD_ENV = "DBT_ENV_SECRET_LAKEHOUSE_DWH_PASSWORD"  # DBT_ENV_SECRET_* values are scrubbed from dbt logs


@dataclass(frozen=True)
class LakeTableRef:
    """One lake table as the marts will read it."""

    identifier: str
    storage: str  # local | s3 | missing
    location: str = ""
    metadata_location: str = ""
    snapshot_id: int | None = None
    reader: dict[str, str] = field(default_factory=dict)

    def as_var(self) -> dict:
        if self.storage == "missing":
            return {"storage": "missing", "columns": contract(self.identifier).clickhouse_columns()}
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
            raise StageFailed(STAGE, f"metadata file {metadata_location} is not under the table location {location}")
        bucket_key = location.split("://", 1)[1].rstrip("/")
        return "s3", {"url": f"{cfg.s3_endpoint.rstrip('/')}/{bucket_key}/", "metadata": rel}
    if location.startswith("file:") or location.startswith("/"):
        path = _local_path(location).rstrip("/")
        return "local", {"path": path, "metadata": rel or _local_path(metadata_location)}
    raise StageFailed(STAGE, f"unsupported table location {location} (expected file:// or s3://)")


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
    return write_profile_file(state_dir(cfg), profile(cfg), "lakehouse.stages.transform_dwh")


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
class DwhResult(DbtRun):
    """Outcome of one dbt build of the marts: the dbt run, where the marts are, what was read."""

    endpoint_url: str = ""
    database: str = ""
    temporary_front: bool = False
    lake: dict[str, LakeTableRef] = field(default_factory=dict)

    def one_line(self) -> str:
        """A short summary for `lakehouse run`: models, tests, rows per mart."""
        rows = ", ".join(f"{m.removeprefix('mart_')} {self.row_counts[m]}" for m in MARTS if m in self.row_counts)
        return f"{super().one_line()}; marts in ClickHouse database `{self.database}` ({rows})"


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
    if refs["staging.stg_quotes"].storage == "missing":
        raise StageFailed(STAGE, "the lake has no table staging.stg_quotes yet: run `lakehouse ingest` and "
                                 "`lakehouse transform lake` first")
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
        logs=state_dir(cfg) / "logs", console=console, label="dbt_dwh", stage=STAGE,
        env={"LAKEHOUSE_DWH_HOST": ep.host, "LAKEHOUSE_DWH_PORT": str(ep.port), "LAKEHOUSE_DWH_USER": ep.user,
             PASSWORD_ENV: ep.password},
    )
    return DwhResult(**vars(run), endpoint_url=ep.url, database=ep.database, temporary_front=ep.temporary)


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


def report(result: DwhResult, console: Console) -> None:
    """The summary table, which lake snapshots were read, and where the marts are."""
    print_summary(result, console, f"dbt build: dbt_dwh -> ClickHouse `{result.database}`")
    lake = ", ".join(f"{k}@{r.snapshot_id}" if r.storage != "missing" else f"{k} (missing)"
                     for k, r in result.lake.items())
    console.print(f"lake snapshots read: {lake}")
    where = ("a temporary front (serve them with `lakehouse clickhouse serve` or `lakehouse up clickhouse`)"
             if result.temporary_front else result.endpoint_url)
    console.print(f"marts: ClickHouse database [bold]{result.database}[/] via {where}")


def run_stage(ctx: StageContext) -> str:
    """The stage function: ``dbt build`` of the marts (``--full-refresh`` on a rebuild; ``select``)."""
    result = build(ctx.cfg, full_refresh=bool(ctx.rebuild or ctx.option("full_refresh", False)),
                   select=ctx.option("select", ()), console=ctx.console)
    report(result, ctx.console)
    if not result.ok:
        raise StageFailed(STAGE, f"dbt build failed: {result.one_line()}", result.log_path)
    from lakehouse.dashboards.provision import provision_if_running

    dashboards = provision_if_running(ctx.cfg)  # new marts or columns reach a running Superset
    return result.one_line() + (f"; {dashboards}" if dashboards else "")

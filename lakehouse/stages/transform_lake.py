"""Stage ``transform-lake``: the dbt-duckdb project ``dbt_lake/`` builds ``staging.stg_quotes`` and
``features.fct_daily_features`` as Iceberg tables in the lake (``lakehouse transform lake``).

The stage builds incrementally when only new quotes arrived, and from scratch (``--full-refresh``)
when its definition changed (a dbt model, macro or package version: see the pipeline fingerprint),
because an incremental build only re-derives the rows whose inputs changed.

The dbt profile is generated here from the configuration into ``$LAKEHOUSE_HOME/dbt_lake/profiles.yml``
(mode 0600; never edited by hand) for the lake handle of this run: DuckDB 1.5.5 with the
avro/httpfs/iceberg extensions loaded by path (``lakehouse.transform.duckdb_plugin``, autoinstall/autoload off),
the REST catalog ATTACHed as ``lake``, and the S3 secret in services mode. dbt runs as a subprocess of
the venv's ``dbt`` with telemetry off; its JSON log drives a progress bar and ``run_results.json``
the summary table.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from lakehouse.config import PACKAGE_ROOT, Config
from lakehouse.contracts import RAW_QUOTES
from lakehouse.lake import LakeHandle, open_lake
from lakehouse.pipeline.stage import StageContext, StageFailed
from lakehouse.transform.dbt import DbtRun, print_summary, run_dbt_process, write_profile_file
from lakehouse.transform.duck import LAKE_ALIAS, iceberg_attach_options, lake_secrets

STAGE = "transform-lake"
PROJECT_DIR = PACKAGE_ROOT / "dbt_lake"
PROFILE_NAME = "lakehouse_lake"
TITLE = "dbt build: dbt_lake"


def state_dir(cfg: Config) -> Path:
    """Where the generated profile, the DuckDB work file, dbt's target/ and logs live."""
    return cfg.path("dbt_lake", create=True)


ENDPOINT_ENV = "LAKEHOUSE_DBT_CATALOG_URI"


def profile(cfg: Config, lake: LakeHandle, threads: int | None = None) -> dict[str, Any]:
    """The dbt profile for ``lake`` (a dict ready for profiles.yml).

    The catalog endpoint is passed through the environment (``LAKEHOUSE_DBT_CATALOG_URI``), not
    written here, so the profile stays the same between runs and dbt keeps its partial parse.
    """
    secrets = lake_secrets(lake, cfg)
    attach = iceberg_attach_options(lake, "lake_iceberg" if "lake_iceberg" in secrets else None)
    attach.pop("endpoint")
    output = {
        "type": "duckdb",
        "path": str(state_dir(cfg) / "work.duckdb"),
        "threads": threads or max(1, min(4, os.cpu_count() or 1)),
        "config_options": {
            "allow_unsigned_extensions": True,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        },
        "plugins": [
            {
                "module": "lakehouse.transform.duckdb_plugin",
                "alias": "lake_setup",
                "config": {
                    "secrets": secrets,
                    "attach": {
                        "warehouse": lake.warehouse,
                        "alias": LAKE_ALIAS,
                        "endpoint_env": ENDPOINT_ENV,
                        "options": attach,
                    },
                },
            },
        ],
    }
    return {PROFILE_NAME: {"target": cfg.mode, "outputs": {cfg.mode: output}}}


def write_profile(cfg: Config, lake: LakeHandle, threads: int | None = None) -> Path:
    """Write profiles.yml for ``lake`` into the state dir (0600: it may hold S3 keys); return its dir."""
    return write_profile_file(state_dir(cfg), profile(cfg, lake, threads), "lakehouse.stages.transform_lake")


def run_dbt(
    cfg: Config,
    args: Sequence[str],
    *,
    lake: LakeHandle | None = None,
    project_dir: Path = PROJECT_DIR,
    console: Console | None = None,
    extra_env: dict[str, str] | None = None,
) -> DbtRun:
    """Run ``dbt <args>`` on ``project_dir`` with the generated profile; return the parsed results.

    Opens the lake (starting the catalog in-process when no service runs) unless ``lake`` is given.
    """
    if lake is None:
        with open_lake(cfg) as handle:
            return run_dbt(cfg, args, lake=handle, project_dir=project_dir, console=console,
                           extra_env=extra_env)
    console = console or Console(stderr=True)
    if not lake.uri:
        raise StageFailed(STAGE, "the lake's REST catalog is not available (open_lake yielded no uri)")
    target = state_dir(cfg) / ("target" if project_dir == PROJECT_DIR else f"target-{project_dir.name}")
    run = run_dbt_process(
        args, project_dir=project_dir, profiles_dir=write_profile(cfg, lake), target=target,
        logs=state_dir(cfg) / "logs", env={ENDPOINT_ENV: lake.uri, **(extra_env or {})}, console=console,
        stage=STAGE,
    )
    return run


def build(
    cfg: Config,
    *,
    full_refresh: bool = False,
    select: Sequence[str] = (),
    console: Console | None = None,
    lake: LakeHandle | None = None,
    project_dir: Path = PROJECT_DIR,
) -> DbtRun:
    """``dbt build`` of the lake project: staging + features (as Iceberg) + all their tests."""
    if lake is None:
        with open_lake(cfg) as handle:
            return build(cfg, full_refresh=full_refresh, select=select, console=console, lake=handle,
                         project_dir=project_dir)
    if not lake.catalog.table_exists(RAW_QUOTES.identifier):
        raise StageFailed(STAGE, "the lake has no table raw.quotes yet: run `lakehouse ingest` first "
                                 f"(catalog {lake.uri or lake.warehouse_uri})")
    args = ["build"]
    if full_refresh:
        args.append("--full-refresh")
    for s in select:
        args += ["--select", s]
    return run_dbt(cfg, args, lake=lake, project_dir=project_dir, console=console)


def run_stage(ctx: StageContext) -> str:
    """The stage function: ``dbt build`` (full refresh on a rebuild or ``full_refresh``; ``select``)."""
    result = build(ctx.cfg, full_refresh=bool(ctx.rebuild or ctx.option("full_refresh", False)),
                   select=ctx.option("select", ()), console=ctx.console, lake=ctx.lake)
    print_summary(result, ctx.console, TITLE)
    if not result.ok:
        raise StageFailed(STAGE, f"dbt build failed: {result.one_line()}", result.log_path)
    return result.one_line()

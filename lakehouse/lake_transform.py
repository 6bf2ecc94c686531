"""`lakehouse transform lake`: run the dbt-duckdb project ``dbt_lake/`` against the lake.

The dbt profile is generated here from the configuration into ``$LAKEHOUSE_HOME/dbt_lake/profiles.yml``
(mode 0600; never edited by hand) for the lake handle of this run: DuckDB 1.5.5 with the
avro/httpfs/iceberg extensions loaded by path (``lakehouse.dbt_plugin``, autoinstall/autoload off),
the REST catalog ATTACHed as ``lake``, and the S3 secret in services mode. dbt runs as a subprocess of
the venv's ``dbt`` with telemetry off; its JSON log drives a progress bar and ``run_results.json``
the summary table.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lakehouse.config import PACKAGE_ROOT, Config
from lakehouse.dbt_runner import DbtRun, run_dbt_process, write_profile_file
from lakehouse.duck import LAKE_ALIAS, iceberg_attach_options, lake_secrets
from lakehouse.lake import LakeHandle, open_lake

PROJECT_DIR = PACKAGE_ROOT / "dbt_lake"
PROFILE_NAME = "lakehouse_lake"
FEATURES_TABLE = ("features", "fct_daily_features")
RAW_QUOTES = ("raw", "quotes")


class TransformError(RuntimeError):
    """The lake transformation could not run or failed; the message says what and where."""


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
                "module": "lakehouse.dbt_plugin",
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
    return write_profile_file(state_dir(cfg), profile(cfg, lake, threads), "lakehouse.lake_transform")


@dataclass
class TransformResult(DbtRun):
    """Outcome of one ``dbt`` invocation on the lake project."""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def count(self, kind: str, *statuses: str) -> int:
        return sum(1 for n in self.nodes if n.kind == kind and (not statuses or n.status in statuses))

    def one_line(self) -> str:
        """A short summary for `lakehouse run`."""
        models = self.count("model")
        tests = self.count("test") + self.count("unit_test")
        bad = [n for n in self.nodes if n.status in ("error", "fail")]
        text = f"{models} models, {tests} tests"
        if bad:
            text += f"; FAILED: {', '.join(n.name for n in bad[:5])}"
        return text


def run_dbt(
    cfg: Config,
    args: Sequence[str],
    *,
    lake: LakeHandle | None = None,
    project_dir: Path = PROJECT_DIR,
    console: Console | None = None,
    extra_env: dict[str, str] | None = None,
) -> TransformResult:
    """Run ``dbt <args>`` on ``project_dir`` with the generated profile; return the parsed results.

    Opens the lake (starting the catalog in-process when no service runs) unless ``lake`` is given.
    """
    if lake is None:
        with open_lake(cfg) as handle:
            return run_dbt(cfg, args, lake=handle, project_dir=project_dir, console=console,
                           extra_env=extra_env)
    console = console or Console(stderr=True)
    if not lake.uri:
        raise TransformError("the lake's REST catalog is not available (open_lake yielded no uri)")
    target = state_dir(cfg) / ("target" if project_dir == PROJECT_DIR else f"target-{project_dir.name}")
    run = run_dbt_process(
        args, project_dir=project_dir, profiles_dir=write_profile(cfg, lake), target=target,
        logs=state_dir(cfg) / "logs", env={ENDPOINT_ENV: lake.uri, **(extra_env or {})}, console=console,
        error=TransformError,
    )
    return TransformResult(**vars(run))


def build(
    cfg: Config,
    *,
    full_refresh: bool = False,
    select: Sequence[str] = (),
    console: Console | None = None,
    lake: LakeHandle | None = None,
    project_dir: Path = PROJECT_DIR,
) -> TransformResult:
    """``dbt build`` of the lake project: staging + features (as Iceberg) + all their tests."""
    if lake is None:
        with open_lake(cfg) as handle:
            return build(cfg, full_refresh=full_refresh, select=select, console=console, lake=handle,
                         project_dir=project_dir)
    if not lake.catalog.table_exists(RAW_QUOTES):
        raise TransformError(
            "the lake has no table raw.quotes yet: run `lakehouse ingest` first "
            f"(catalog {lake.uri or lake.warehouse_uri})"
        )
    args = ["build"]
    if full_refresh:
        args.append("--full-refresh")
    for s in select:
        args += ["--select", s]
    return run_dbt(cfg, args, lake=lake, project_dir=project_dir, console=console)


def summary_table(result: TransformResult) -> Table:
    """A rich table of the run: one row per model and per failing test, plus test totals."""
    colors = {"success": "green", "pass": "green", "error": "red", "fail": "red", "warn": "yellow",
              "skipped": "dim"}
    table = Table(title=f"dbt build: dbt_lake ({result.seconds:.1f}s)")
    for col in ("node", "kind", "status", "seconds", "detail"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for n in result.nodes:
        if n.kind == "model" or n.status not in ("pass", "success"):
            color = colors.get(n.status, "white")
            detail = result.notes.get(n.name, n.message) if n.kind == "model" else (
                f"{n.failures} failing rows" if n.failures else n.message)
            table.add_row(n.name, n.kind, f"[{color}]{n.status}[/]", f"{n.seconds:.2f}",
                          escape(detail[:160]))
    tests = [n for n in result.nodes if n.kind in ("test", "unit_test")]
    passed = sum(1 for n in tests if n.status == "pass")
    table.add_row(f"{len(tests)} tests", "test", f"[{'green' if passed == len(tests) else 'red'}]"
                  f"{passed} passed[/]", f"{sum(n.seconds for n in tests):.2f}", "")
    return table


def print_summary(result: TransformResult, console: Console) -> None:
    """Print the summary table, and dbt's error lines when it failed."""
    if result.ok and not result.nodes:
        console.print("[yellow]dbt selected nothing to run[/] (check --select)")
        return
    console.print(summary_table(result))
    if not result.ok:
        for line in result.errors[-20:]:
            console.print(f"[red]{escape(line)}[/]")
        console.print(f"dbt exited with {result.returncode}; full log: {result.log_path}")

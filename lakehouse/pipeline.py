"""The main job (`lakehouse run`): every stage of the platform in order.

Each stage is a function taking the config and a console; a stage that is not built yet is listed
with ``run=None`` so `lakehouse run` can say so. Later stages register themselves here.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from lakehouse.config import Config
from lakehouse.health import check_health


@dataclass
class Stage:
    name: str
    description: str
    run: Callable[[Config, Console], str | None] | None


#: (stage name, module in lakehouse.stages, description), in run order.
STAGES = (
    ("ingest", "ingest", "quotes from the configured source into Iceberg raw.quotes (dlt)"),
    ("transform-lake", "transform_lake", "dbt-duckdb: staging and features as Iceberg tables"),
    ("train", "train", "scikit-learn models, walk-forward evaluation, MLflow registry"),
    ("predict", "predict", "one-week-ahead forecasts into Iceberg ml.predictions"),
    ("evaluate", "evaluate", "past predictions joined with realized quotes"),
    ("transform-dwh", "transform_dwh", "dbt-clickhouse: serving marts in ClickHouse"),
)


def _load_stage(module: str) -> Callable[[Config, Console], str | None] | None:
    try:
        mod = importlib.import_module(f"lakehouse.stages.{module}")
    except ModuleNotFoundError as exc:
        if exc.name == f"lakehouse.stages.{module}":
            return None
        raise
    return mod.run_stage


def stages() -> list[Stage]:
    """The pipeline's stages in order; ``run`` is None for stages not built yet."""
    out = [Stage("health", "check the configuration and the storage", check_health)]
    out += [Stage(name, desc, _load_stage(module)) for name, module, desc in STAGES]
    return out


class StageFailed(RuntimeError):
    """A stage of the main job failed."""


def run_all(cfg: Config, console: Console) -> int:
    """Run every built stage in order; print a summary; return the process exit code."""
    summary = Table(title="lakehouse run", show_lines=False)
    summary.add_column("stage")
    summary.add_column("result")
    summary.add_column("seconds", justify="right")
    summary.add_column("detail")
    code = 0
    for stage in stages():
        if stage.run is None:
            summary.add_row(stage.name, "[yellow]not built yet[/]", "", stage.description)
            continue
        if code:
            summary.add_row(stage.name, "[dim]skipped[/]", "", "an earlier stage failed")
            continue
        console.rule(f"[bold]{stage.name}[/]: {stage.description}")
        t0 = time.perf_counter()
        try:
            detail = stage.run(cfg, console) or ""
            summary.add_row(stage.name, "[green]ok[/]", f"{time.perf_counter() - t0:.1f}", detail)
        except Exception as exc:  # noqa: BLE001 - report every failure in the summary
            code = 1
            summary.add_row(stage.name, "[red]failed[/]", f"{time.perf_counter() - t0:.1f}", str(exc))
    console.print(summary)
    return code

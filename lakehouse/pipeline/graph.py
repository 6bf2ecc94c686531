"""The pipeline, declared once: every stage, the data assets it reads and writes, its code and config.

``lakehouse run`` executes this graph in dependency order, ``lakehouse plan`` shows it with each
stage's state, and the Airflow DAGs in ``dags/`` are generated from it: nothing else lists the
stages or their order.

Assets are named by what they are: Iceberg tables by their identifier (``raw.quotes``), other
stores by a prefix (``mlflow:<model>@champion``, ``clickhouse:<database>.*``, ``source:<name>``).
Names may contain ``{section.key}`` placeholders filled from the configuration (``source:{sources.default}``).

What makes a stage's fingerprint (see :mod:`lakehouse.pipeline.fingerprint`): the versions of the
assets it reads, the content of its ``code`` files (paths and globs relative to the repository), the
versions of its ``packages``, and the values of its ``config`` keys (a section name takes all of its
keys). A stage whose fingerprint and outputs are unchanged since its last successful run is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lakehouse.config import Config


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline."""

    name: str
    description: str
    run: str  # "module:function", imported only when the stage runs
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    code: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    #: no fingerprint: the stage runs every time (a health check writes nothing)
    always: bool = False
    #: "module:function(cfg, lake, versions, records) -> versions": what of its inputs' versions the
    #: stage's fingerprint keeps (training follows a retrain policy, not every new snapshot)
    inputs_view: str = ""
    #: minutes the stage may take before a scheduler gives up on it (Airflow's execution_timeout)
    timeout_minutes: int = 30


ASSET_KINDS = ("iceberg", "mlflow", "clickhouse", "source")

#: The stages, in a valid run order.
STAGES: tuple[Stage, ...] = (
    Stage(
        "health", "check the configuration, the state dir and that the warehouse is writable",
        run="lakehouse.stages.health:run_stage", always=True, timeout_minutes=5,
    ),
    Stage(
        "ingest", "quotes from the configured source into Iceberg raw.quotes (dlt)",
        run="lakehouse.stages.ingest:run_stage",
        reads=("source:{sources.default}",),
        writes=("raw.quotes", "raw.quotes_rejected"),
        code=("lakehouse/stages/ingest/**", "lakehouse/sources/**", "lakehouse/contracts.py"),
        config=("sources.default", "sources.{sources.default}"),
        packages=("dlt", "pyiceberg", "pyarrow"),
        timeout_minutes=60,
    ),
    Stage(
        "transform-lake", "dbt-duckdb: staging and features as Iceberg tables",
        run="lakehouse.stages.transform_lake:run_stage",
        reads=("raw.quotes",),
        writes=("staging.stg_quotes", "features.fct_daily_features"),
        code=("dbt_lake/dbt_project.yml", "dbt_lake/models/**", "dbt_lake/macros/**", "dbt_lake/tests/**",
              "lakehouse/stages/transform_lake.py", "lakehouse/transform/**"),
        packages=("dbt-core", "dbt-duckdb", "duckdb", "duckdb-extension-iceberg"),
        timeout_minutes=60,
    ),
    Stage(
        "backtest", "every model refit on a calendar schedule, point-in-time weekly 5-day forecasts over the "
                    "whole history into Iceberg ml.backtest_predictions",
        run="ml.backtest:run_stage",
        reads=("features.fct_daily_features", "staging.stg_quotes"),
        writes=("ml.backtest_predictions",),
        code=("ml/backtest.py", "ml/calendars.py", "ml/fitcache.py", "ml/models.py", "ml/features.py",
              "ml/metrics.py", "ml/lake_tables.py", "ml/errors.py", "lakehouse/contracts.py"),
        config=("mlflow.models", "mlflow.retrain_every", "mlflow.backtest_start", "mlflow.min_history_days"),
        packages=("scikit-learn", "numpy", "pandas", "scipy", "exchange-calendars"),
        timeout_minutes=240,
    ),
    Stage(
        "train", "model selection on the backtest (cv) and champion rule on the holdout: MLflow registry, "
                 "scores into Iceberg ml.model_metrics",
        run="ml.train:run_stage",
        inputs_view="ml.retrain:fingerprint_inputs",
        reads=("ml.backtest_predictions",),
        writes=("mlflow:{mlflow.model_name}@champion", "ml.model_metrics"),
        code=("ml/train.py", "ml/registry.py", "ml/metrics.py", "ml/reports.py", "ml/tracking.py", "ml/models.py",
              "ml/features.py", "ml/backtest.py", "ml/fitcache.py", "ml/calendars.py", "ml/lake_tables.py",
              "ml/retrain.py", "ml/errors.py", "lakehouse/contracts.py"),
        config=("mlflow.models", "mlflow.holdout_weeks", "mlflow.dm_pvalue_max", "mlflow.model_name",
                "mlflow.experiment", "mlflow.retrain", "mlflow.plot_tickers"),
        packages=("scikit-learn", "mlflow", "numpy", "pandas", "statsmodels"),
        timeout_minutes=60,
    ),
    Stage(
        "predict", "the champion's 5-day forecast for every ticker into Iceberg ml.predictions",
        run="ml.predict:run_stage",
        reads=("features.fct_daily_features", "staging.stg_quotes", "mlflow:{mlflow.model_name}@champion"),
        writes=("ml.predictions",),
        code=("ml/predict.py", "ml/calendars.py", "ml/models.py", "ml/features.py", "ml/registry.py",
              "ml/reports.py", "ml/lake_tables.py", "lakehouse/contracts.py"),
        config=("mlflow.model_name",),
        packages=("scikit-learn", "mlflow", "exchange-calendars"),
    ),
    Stage(
        "evaluate", "live forecasts against realized returns (one price basis) into Iceberg ml.prediction_accuracy",
        run="ml.evaluate:run_stage",
        reads=("ml.predictions", "features.fct_daily_features"),
        writes=("ml.prediction_accuracy",),
        code=("ml/evaluate.py", "ml/metrics.py", "ml/features.py", "ml/lake_tables.py", "lakehouse/contracts.py"),
        packages=("statsmodels",),
    ),
    Stage(
        "transform-dwh", "dbt-clickhouse: serving marts in ClickHouse over the lake's Iceberg tables",
        run="lakehouse.stages.transform_dwh:run_stage",
        reads=("staging.stg_quotes", "features.fct_daily_features", "ml.predictions", "ml.prediction_accuracy",
               "ml.model_metrics", "ml.backtest_predictions"),
        writes=("clickhouse:{clickhouse.database}.*",),
        code=("dbt_dwh/dbt_project.yml", "dbt_dwh/models/**", "dbt_dwh/macros/**", "dbt_dwh/tests/**",
              "lakehouse/stages/transform_dwh.py", "lakehouse/transform/dbt.py", "lakehouse/contracts.py"),
        config=("clickhouse.database",),
        packages=("dbt-core", "dbt-clickhouse", "chdb-core"),
        timeout_minutes=60,
    ),
)

_PLACEHOLDER = re.compile(r"\{([a-z_]+(?:\.[a-z_]+)+)\}")


def asset_kind(asset: str) -> str:
    """``iceberg`` for ``namespace.table``, else the asset's prefix (``mlflow``, ``clickhouse``, ``source``)."""
    prefix, sep, _ = asset.partition(":")
    if not sep:
        return "iceberg"
    if prefix not in ASSET_KINDS:
        raise ValueError(f"asset {asset!r}: unknown kind {prefix!r} (known: {', '.join(ASSET_KINDS)})")
    return prefix


def is_external(asset: str) -> bool:
    """True for assets that come from outside the platform (quote sources)."""
    return asset_kind(asset) == "source"


def _fill(text: str, values: dict[str, object]) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise KeyError(f"placeholder {{{key}}} names no configuration key")
        return str(values[key])

    return _PLACEHOLDER.sub(sub, text)


def resolve(cfg: Config, stages: Iterable[Stage] = STAGES) -> tuple[Stage, ...]:
    """The stages with every ``{section.key}`` placeholder filled from ``cfg``."""
    values = cfg.flat()
    out = []
    for s in stages:
        out.append(replace(
            s,
            reads=tuple(_fill(a, values) for a in s.reads),
            writes=tuple(_fill(a, values) for a in s.writes),
            config=tuple(_fill(k, values) for k in s.config),
        ))
    return tuple(out)


class GraphError(ValueError):
    """The declaration is inconsistent (cycle, unknown stage, asset without a writer)."""


def check(stages: tuple[Stage, ...]) -> None:
    """Raise GraphError unless: names are unique, every asset has one writer, every asset read is
    written by an earlier stage or is external, and the order has no cycle."""
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise GraphError(f"duplicate stage names in {names}")
    writer: dict[str, str] = {}
    for s in stages:
        for a in s.writes:
            asset_kind(a)
            if a in writer:
                raise GraphError(f"asset {a} is written by both {writer[a]} and {s.name}")
            writer[a] = s.name
    seen: set[str] = set()
    for s in stages:
        for a in s.reads:
            asset_kind(a)
            if is_external(a):
                continue
            if a not in writer:
                raise GraphError(f"stage {s.name} reads {a}, which no stage writes")
            if writer[a] not in seen:
                raise GraphError(f"stage {s.name} reads {a} before its writer {writer[a]} runs (cycle or bad order)")
        seen.add(s.name)


def upstream(stages: tuple[Stage, ...], name: str) -> set[str]:
    """Names of the stages whose outputs ``name`` reads (directly)."""
    writer = {a: s.name for s in stages for a in s.writes}
    stage = get(stages, name)
    return {writer[a] for a in stage.reads if a in writer}


def downstream(stages: tuple[Stage, ...], name: str) -> list[str]:
    """``name`` and every stage that depends on it, directly or not, in run order."""
    keep = {name}
    for s in stages:
        if upstream(stages, s.name) & keep:
            keep.add(s.name)
    return [s.name for s in stages if s.name in keep]


def get(stages: tuple[Stage, ...], name: str) -> Stage:
    """The stage called ``name``; GraphError listing the stages otherwise."""
    for s in stages:
        if s.name == name:
            return s
    raise GraphError(f"unknown stage {name!r} (stages: {', '.join(s.name for s in stages)})")


def pipeline(cfg: Config) -> tuple[Stage, ...]:
    """The checked graph for this configuration, in run order."""
    stages = resolve(cfg)
    check(stages)
    return stages

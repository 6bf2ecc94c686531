"""The resolved pipeline graph as a JSON document, for schedulers that cannot import the project.

``lakehouse plan --format json`` prints it; the Airflow service writes it into its home when it
starts, and the DAG files in ``dags/`` build their DAGs from it. Airflow runs in its own virtualenv
whose pins conflict with the core environment's, so it can import neither the configuration
(pydantic settings, secrets) nor the graph's placeholder resolution; this document carries the
graph with every ``{section.key}`` filled, the stage dependencies, each asset's kind and writer,
the schedule settings of ``[airflow]`` (never a secret), and a digest of the files it was derived
from so a reader can tell when it is stale and ask for a fresh one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from lakehouse.config import Config
from lakehouse.pipeline import graph

#: Version of the document's layout; a reader refuses a layout it does not know.
FORMAT = 1

#: The ``[airflow]`` keys a scheduler needs to build its schedules (no host, port or secret).
SCHEDULE_KEYS = ("ingest_schedule", "train_schedule", "timezone", "ingest_retries", "ingest_retry_delay_seconds",
                 "ingest_max_retry_delay_seconds")


def file_digest(path: Path | None) -> str | None:
    """sha256 of a file's bytes (None when there is no file)."""
    if path is None or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def source_files(cfg: Config) -> dict[str, dict[str, str | None]]:
    """The files the resolved graph depends on, with their digests: the declaration and the config file."""
    graph_file = Path(graph.__file__).resolve()
    cfg_file = cfg.config_file.resolve() if cfg.config_file else None
    return {
        "graph": {"path": str(graph_file), "sha256": file_digest(graph_file)},
        "config": {"path": str(cfg_file) if cfg_file else None, "sha256": file_digest(cfg_file)},
    }


def document(cfg: Config, stages: tuple[graph.Stage, ...] | None = None) -> dict[str, Any]:
    """The checked, resolved graph for ``cfg`` (or the given stages) as plain JSON-able data."""
    from lakehouse.pipeline.runner import GATE

    if stages is None:
        stages = graph.pipeline(cfg)
    else:
        stages = graph.resolve(cfg, stages)
        graph.check(stages)
    order = {s.name: i for i, s in enumerate(stages)}
    writer = {a: s.name for s in stages for a in s.writes}
    assets: dict[str, dict[str, str | None]] = {}
    for s in stages:
        for a in (*s.reads, *s.writes):
            assets.setdefault(a, {"kind": graph.asset_kind(a), "writer": writer.get(a)})
    return {
        "format": FORMAT,
        "sources": source_files(cfg),
        "gate": GATE,
        "stages": [
            {
                "name": s.name,
                "description": s.description,
                "reads": list(s.reads),
                "writes": list(s.writes),
                "upstream": sorted(graph.upstream(stages, s.name), key=order.__getitem__),
                "timeout_minutes": s.timeout_minutes,
                "always": s.always,
            }
            for s in stages
        ],
        "assets": assets,
        "airflow": cfg.airflow.model_dump(include=set(SCHEDULE_KEYS)),
    }

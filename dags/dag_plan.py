"""Which stage runs in which Airflow DAG, and everything else about the DAGs derived from the graph.

Standard library only: imported by the DAG file in the Airflow virtualenv and by the tests in the
core environment. Its input is the resolved graph of ``lakehouse plan --format json``
(:mod:`lakehouse.pipeline.export`); the one thing written here is :data:`DAGS`, which stages each
DAG runs and which DAGs it follows. The rest follows from the assets the stages read and write:

- tasks: one per stage, running ``lakehouse run --only <stage>`` in the core environment, so a fresh
  stage is skipped exactly as in ``lakehouse run``; its inlets and outlets are the stage's reads and
  writes (Assets named by the graph's identifiers);
- dependencies inside a DAG: the graph's stage dependencies, plus the ``health`` gate before every
  other stage of its DAG (as ``lakehouse run`` blocks every stage on it);
- schedules: a DAG that follows other DAGs is scheduled on the assets it reads from them, all of one
  upstream DAG's assets together (AND: that DAG's run has finished writing them) and any upstream DAG
  (OR: a new day of features or a new champion each trigger ``predict``); plus a cron for the DAGs
  that have one;
- waiting: a DAG scheduled on assets skips its tasks until every one of those assets exists (``predict``
  triggered by features before the first champion exists skips cleanly and runs when the champion's
  event arrives), and a task also skips until what it reads from the tasks before it in its DAG exists
  (``evaluate`` before the first forecast: had it run, its success would have announced
  ``ml.prediction_accuracy`` before the table existed, and ``dwh_marts`` would have started too early);
- a stage missing from :data:`DAGS` (a stage added to the graph later) joins the DAG of the first
  stage that reads what it writes (it is a step before that stage, like a backtest before training),
  or else the DAG of the last stage it reads from; the plan refuses an assignment whose data would
  flow against the order of the DAGs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Layout version of ``lakehouse plan --format json`` this module reads.
FORMAT = 1

#: Exit code of ``lakehouse run --skipped-exit-code``: Airflow's BashOperator marks the task skipped.
SKIPPED_EXIT_CODE = 99

#: Environment variables the Airflow processes get from the Airflow service (lakehouse/services/airflow.py).
ENV_SPEC = "LAKEHOUSE_DAGS_SPEC"  # path of the resolved graph JSON
ENV_CLI = "LAKEHOUSE_CLI"  # the core environment's ``lakehouse`` executable


@dataclass(frozen=True)
class DagSpec:
    """One DAG: its stages, the DAGs whose assets trigger it, its cron (an ``[airflow]`` key), its story."""

    dag_id: str
    stages: tuple[str, ...]
    after: tuple[str, ...] = ()
    cron: str = ""  # name of the [airflow] key holding the cron expression
    retried: tuple[str, ...] = ()  # stages whose task retries with exponential backoff ([airflow] ingest_*)
    doc: str = ""


#: The DAGs, in the order data flows through them. Written once; the rest is derived from the graph.
DAGS: tuple[DagSpec, ...] = (
    DagSpec(
        "quotes_ingest", ("health", "ingest"), cron="ingest_schedule", retried=("ingest",),
        doc="Quotes of the configured source and tickers into the lake, on weekdays after the market "
            "closes and on demand. Its `raw.quotes` event starts the rest of the chain.",
    ),
    DagSpec(
        "lake_features", ("transform-lake",), after=("quotes_ingest",),
        doc="dbt_lake (dbt-duckdb): staging and daily features as Iceberg tables, whenever new quotes land.",
    ),
    DagSpec(
        "train_models", ("backtest", "train"), after=("lake_features",), cron="train_schedule",
        doc="The point-in-time backtest (new weeks forecast by cached fits; a new year adds one fit per "
            "model), then model selection and the champion rule on the untouched holdout. Runs weekly and "
            "whenever the features change; the stages' fingerprints and `[mlflow] retrain` decide whether "
            "work is due (always when no champion exists), exactly as in `lakehouse run`.",
    ),
    DagSpec(
        "predict", ("predict", "evaluate"), after=("lake_features", "train_models"),
        doc="The champion's forecast of the next 5 trading days, then past forecasts against realized "
            "prices. Triggered by new features OR a new champion; skips while either does not exist yet.",
    ),
    DagSpec(
        "dwh_marts", ("transform-dwh",), after=("predict",),
        doc="dbt_dwh: the serving marts in ClickHouse over the lake's tables, after each new forecast.",
    ),
)


class PlanError(ValueError):
    """The DAG layout does not fit the graph (unknown stage, data flowing against the DAG order)."""


@dataclass
class TaskPlan:
    """One Airflow task: a stage run through the core ``lakehouse`` CLI."""

    task_id: str
    description: str
    reads: list[str]
    writes: list[str]
    upstream: list[str]  # task ids in the same DAG
    timeout_minutes: int
    wait_for: list[str]
    retries: int = 0
    retry_delay_seconds: float = 0
    max_retry_delay_seconds: float = 0
    always: bool = False
    report: bool = False  # the graph's last stage writes the run report, as `lakehouse run` does at its end

    def command(self, cli: str) -> list[str]:
        """The argv of this task: one stage with its fingerprint check, skipped exit code 99; only the
        graph's last stage writes the run report (once per chain, not once per task)."""
        argv = [cli, "run", "--only", self.task_id, "--skipped-exit-code", str(SKIPPED_EXIT_CODE)]
        for asset in self.wait_for:
            argv += ["--wait-for", asset]
        if not self.report:
            argv.append("--no-report")
        return argv

    def bash_command(self, cli: str) -> str:
        return shlex.join(self.command(cli))


@dataclass
class DagPlan:
    """One Airflow DAG derived from the graph."""

    dag_id: str
    doc: str
    tasks: list[TaskPlan]
    cron: str | None
    timezone: str
    trigger_assets: list[list[str]]  # OR over upstream DAGs of (AND over that DAG's assets)
    after: list[str]
    placed_by_rule: list[str] = field(default_factory=list)

    def task(self, task_id: str) -> TaskPlan:
        return next(t for t in self.tasks if t.task_id == task_id)

    @property
    def outlets(self) -> list[str]:
        return [a for t in self.tasks for a in t.writes]


def _assign(stages: Sequence[Mapping[str, Any]], dags: Sequence[DagSpec]) -> tuple[dict[str, str], list[str]]:
    """stage name -> dag id, and the stages placed by the rule (not listed in ``dags``)."""
    names = [s["name"] for s in stages]
    where: dict[str, str] = {}
    for d in dags:
        for n in d.stages:
            if n not in names:
                raise PlanError(f"DAG {d.dag_id} lists stage {n!r}, which the graph does not have "
                                f"(stages: {', '.join(names)})")
            if n in where:
                raise PlanError(f"stage {n} is listed in both DAG {where[n]} and DAG {d.dag_id}")
            where[n] = d.dag_id
    by_rule = [n for n in names if n not in where]
    readers = {n: [r["name"] for r in stages if set(r["reads"]) & set(s["writes"])]
               for n, s in zip(names, stages, strict=True)}
    for n in reversed(names):  # before the first stage that reads its output
        if n not in where and (placed := [r for r in readers[n] if r in where]):
            where[n] = where[placed[0]]
    for s in stages:  # else after the last stage it reads from
        if s["name"] not in where and (placed := [u for u in s["upstream"] if u in where]):
            where[s["name"]] = where[placed[-1]]
    if lost := [n for n in names if n not in where]:
        raise PlanError(f"stage(s) {', '.join(lost)} connect to no DAG: add them to DAGS in {__file__}")
    return where, by_rule


def _ancestors(dag_id: str, dags: Mapping[str, DagSpec]) -> set[str]:
    out: set[str] = set()
    todo = list(dags[dag_id].after)
    while todo:
        d = todo.pop()
        if d not in out:
            out.add(d)
            todo.extend(dags[d].after)
    return out


def plan(doc: Mapping[str, Any], dags: Sequence[DagSpec] = DAGS) -> list[DagPlan]:
    """The DAGs for the resolved graph ``doc`` (``lakehouse plan --format json``)."""
    if doc.get("format") != FORMAT:
        raise PlanError(f"pipeline document format {doc.get('format')!r}, expected {FORMAT}: "
                        "the core environment and dags/ are from different versions")
    stages = doc["stages"]
    by_id = {d.dag_id: d for d in dags}
    for d in dags:
        if unknown := [a for a in d.after if a not in by_id]:
            raise PlanError(f"DAG {d.dag_id} follows unknown DAG(s) {', '.join(unknown)}")
        if d.dag_id in _ancestors(d.dag_id, by_id):
            raise PlanError(f"DAG {d.dag_id} follows itself")
    where, by_rule = _assign(stages, dags)
    writer = {a: s["name"] for s in stages for a in s["writes"]}
    for s in stages:  # data may only flow from a DAG to a DAG that follows it
        for a in s["reads"]:
            src = writer.get(a)
            if src and where[src] != where[s["name"]] and where[src] not in _ancestors(where[s["name"]], by_id):
                raise PlanError(f"stage {s['name']} (DAG {where[s['name']]}) reads {a} from stage {src} "
                                f"(DAG {where[src]}), which its DAG does not follow: fix DAGS in {__file__}")
    settings = doc["airflow"]
    gate = doc.get("gate")
    out = []
    for d in dags:
        mine = [s for s in stages if where[s["name"]] == d.dag_id]
        if not mine:
            raise PlanError(f"DAG {d.dag_id} has no stage")
        names = {s["name"] for s in mine}
        reads = [a for s in mine for a in s["reads"]]
        trigger: list[list[str]] = []
        for up in d.after:
            theirs = {a for s in stages if where[s["name"]] == up for a in s["writes"]}
            group = list(dict.fromkeys(a for a in reads if a in theirs))
            if not group:
                raise PlanError(f"DAG {d.dag_id} follows {up} but reads nothing it writes")
            trigger.append(group)
        wait_for = list(dict.fromkeys(a for g in trigger for a in g))
        written_here = {a: s["name"] for s in mine for a in s["writes"]}
        tasks = []
        for s in mine:
            # and what it reads from a stage before it in this DAG: a task that ran with nothing to read
            # would succeed and emit its outlets' events for tables it never wrote (evaluate before the
            # first forecast), and a DAG scheduled on them would start before they exist
            own = [a for a in s["reads"] if a in written_here and written_here[a] != s["name"]]
            upstream = [u for u in s["upstream"] if u in names]
            if gate in names and s["name"] != gate and gate not in upstream:
                upstream.insert(0, gate)
            retried = s["name"] in d.retried
            tasks.append(TaskPlan(
                task_id=s["name"], description=s["description"], reads=list(s["reads"]), writes=list(s["writes"]),
                upstream=upstream, timeout_minutes=int(s["timeout_minutes"]),
                wait_for=list(dict.fromkeys([*wait_for, *own])),
                retries=int(settings["ingest_retries"]) if retried else 0,
                retry_delay_seconds=float(settings["ingest_retry_delay_seconds"]) if retried else 0,
                max_retry_delay_seconds=float(settings["ingest_max_retry_delay_seconds"]) if retried else 0,
                always=bool(s.get("always")), report=s["name"] == stages[-1]["name"],
            ))
        out.append(DagPlan(d.dag_id, d.doc, tasks, settings[d.cron] if d.cron else None, settings["timezone"],
                           trigger, list(d.after), [n for n in by_rule if n in names]))
    return out


# Reading the document ------------------------------------------------------------------------------------


def _sha256(path: str | None) -> str | None:
    if not path or not os.path.isfile(path):
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def is_stale(doc: Mapping[str, Any]) -> bool:
    """True when the graph declaration or the config file changed since ``doc`` was written."""
    return any(_sha256(src.get("path")) != src.get("sha256") for src in doc.get("sources", {}).values())


def load(spec_path: str | os.PathLike[str], cli: str | None = None, timeout: float = 120) -> dict[str, Any]:
    """The resolved graph from ``spec_path``, refreshed first through ``cli plan --format json`` when the
    file is missing or older than the declaration or config it came from (``cli`` given)."""
    path = Path(spec_path)
    doc = json.loads(path.read_text()) if path.is_file() else None
    if (doc is None or is_stale(doc)) and cli:
        doc = refresh(path, cli, timeout)
    if doc is None:
        raise PlanError(f"{path} does not exist: start Airflow with `lakehouse up airflow`, or write it with "
                        "`lakehouse plan --format json`")
    return doc


def refresh(path: Path, cli: str, timeout: float = 120) -> dict[str, Any]:
    """Write the core environment's ``plan --format json`` to ``path`` atomically and return it."""
    proc = subprocess.run([cli, "plan", "--format", "json"], capture_output=True, text=True, timeout=timeout,
                          check=False, cwd=path.parent if path.parent.is_dir() else None)
    if proc.returncode != 0:
        raise PlanError(f"`{cli} plan --format json` failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    doc = json.loads(proc.stdout)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".pipeline-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(tmp, path)
    return doc

"""The pipeline's Airflow DAGs, built from the pipeline declaration (lakehouse/pipeline/graph.py).

Thin on purpose: ``dag_plan`` derives from the resolved graph which stage runs in which DAG, the
task dependencies, the schedules and the Assets; this file only turns that plan into Airflow
objects. Every task runs the core environment's ``lakehouse run --only <stage>``, which checks the
stage's fingerprint and skips a fresh stage exactly as ``lakehouse run`` does (exit code 99: the
task is marked skipped and emits no Asset event, so a rerun without new data does not cascade).
Nothing of the pipeline's logic lives here. See dags/README.md for the design.

The Airflow service (``lakehouse up airflow``) sets ``LAKEHOUSE_DAGS_SPEC`` (the resolved graph,
refreshed from the core environment when graph.py or the config file changes) and ``LAKEHOUSE_CLI``.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Asset, AssetAll, AssetAny, AssetOrTimeSchedule, CronTriggerTimetable

sys.path.insert(0, str(Path(__file__).resolve().parent))  # dag_plan lives beside this file
import dag_plan  # noqa: E402

TAGS = ["lakehouse"]


def _asset(name: str, kind: str) -> Asset:
    """The Asset of a graph asset: named by its identifier, grouped by its kind (iceberg, mlflow, ...)."""
    path = name.split(":", 1)[1] if ":" in name else name  # "mlflow:m@champion" -> "m@champion"
    return Asset(name=name, uri=f"x-lakehouse://{kind}/{path}", group=kind)


def _schedule(plan: dag_plan.DagPlan, assets: dict[str, Asset]):  # noqa: ANN202 - an Airflow schedule
    """Cron, assets (OR over upstream DAGs of AND over each one's assets), both, or None (manual only)."""
    groups = [assets[g[0]] if len(g) == 1 else AssetAll(*(assets[a] for a in g)) for g in plan.trigger_assets]
    condition = None if not groups else groups[0] if len(groups) == 1 else AssetAny(*groups)
    cron = CronTriggerTimetable(plan.cron, timezone=plan.timezone, run_immediately=False) if plan.cron else None
    if cron is not None and condition is not None:
        return AssetOrTimeSchedule(timetable=cron, assets=condition)
    return cron if cron is not None else condition


def _dag_doc(plan: dag_plan.DagPlan) -> str:
    when = []
    if plan.cron:
        when.append(f"cron `{plan.cron}` ({plan.timezone})")
    if plan.trigger_assets:
        when.append(" **or** ".join("(" + " **and** ".join(f"`{a}`" for a in g) + ")" for g in plan.trigger_assets)
                    + " updated by " + ", ".join(f"`{d}`" for d in plan.after))
    when.append("on demand")
    rows = "\n".join(f"| `{t.task_id}` | {t.description} | {', '.join(t.reads) or '-'} | {', '.join(t.writes) or '-'} |"
                     for t in plan.tasks)
    waits = (f"\n\nIts tasks skip while {', '.join(f'`{a}`' for a in plan.tasks[0].wait_for)} does not exist yet "
             "(a run triggered by one asset before the other was ever produced)." if plan.tasks[0].wait_for else "")
    placed = ("\n\nPlaced here by the rule for stages not listed in `dags/dag_plan.py`: "
              f"{', '.join(plan.placed_by_rule)}." if plan.placed_by_rule else "")
    return (f"### {plan.dag_id}\n\n{plan.doc}\n\n**Runs:** {'; '.join(when)}. One run at a time, no catchup."
            f"{waits}{placed}\n\n| task (stage) | what | reads | writes |\n|---|---|---|---|\n{rows}\n\n"
            "Each task runs `lakehouse run --only <stage>` in the core environment: a stage whose inputs, code "
            "and config are unchanged finishes quickly as *skipped* and emits no Asset event. Generated from "
            "the pipeline declaration (`lakehouse/pipeline/graph.py`); see `dags/README.md`.")


def _task_doc(task: dag_plan.TaskPlan, cli: str) -> str:
    retry = (f"\n\nRetries {task.retries} times with exponential backoff (first wait {task.retry_delay_seconds:g} s, "
             f"at most {task.max_retry_delay_seconds:g} s)." if task.retries else "")
    return (f"**{task.task_id}**: {task.description}.\n\n"
            f"- reads: {', '.join(f'`{a}`' for a in task.reads) or '-'}\n"
            f"- writes: {', '.join(f'`{a}`' for a in task.writes) or '-'}\n"
            f"- timeout: {task.timeout_minutes} min (the stage's `timeout_minutes`)\n\n"
            f"Command: `{task.bash_command(cli)}`. Exit code {dag_plan.SKIPPED_EXIT_CODE} = skipped "
            f"(fresh, or waiting for an asset that does not exist yet).{retry}")


def build(plans: list[dag_plan.DagPlan], doc: dict, cli: str) -> dict[str, DAG]:
    """The Airflow DAGs of ``plans``."""
    assets = {name: _asset(name, meta["kind"]) for name, meta in doc["assets"].items()}
    dags: dict[str, DAG] = {}
    for plan in plans:
        with DAG(
            dag_id=plan.dag_id,
            schedule=_schedule(plan, assets),
            catchup=False,
            max_active_runs=1,
            doc_md=_dag_doc(plan),
            description=plan.doc.split(". ")[0][:200],
            tags=TAGS,
        ) as dag:
            tasks = {}
            for t in plan.tasks:
                tasks[t.task_id] = BashOperator(
                    task_id=t.task_id,
                    bash_command=t.bash_command(cli),
                    skip_on_exit_code=dag_plan.SKIPPED_EXIT_CODE,
                    execution_timeout=timedelta(minutes=t.timeout_minutes),
                    retries=t.retries,
                    retry_delay=timedelta(seconds=t.retry_delay_seconds or 300),
                    retry_exponential_backoff=2.0 if t.retries else 0,
                    max_retry_delay=timedelta(seconds=t.max_retry_delay_seconds) if t.retries else None,
                    # a skipped (fresh) upstream stage does not stop this one, a failed one does:
                    # the same rule as `lakehouse run`
                    trigger_rule="none_failed" if t.upstream else "all_success",
                    inlets=[assets[a] for a in t.reads],
                    outlets=[assets[a] for a in t.writes],
                    doc_md=_task_doc(t, cli),
                )
            for t in plan.tasks:
                for u in t.upstream:
                    tasks[u] >> tasks[t.task_id]
        dags[plan.dag_id] = dag
    return dags


def _load() -> dict[str, DAG]:
    spec, cli = os.environ.get(dag_plan.ENV_SPEC), os.environ.get(dag_plan.ENV_CLI)
    if not spec or not cli:
        raise dag_plan.PlanError(f"{dag_plan.ENV_SPEC} and {dag_plan.ENV_CLI} are not set: start Airflow with "
                                 "`lakehouse up airflow`, which sets them")
    doc = dag_plan.load(spec, cli)
    return build(dag_plan.plan(doc), doc, cli)


globals().update(_load())

"""Load dags/ into a DagBag and print what Airflow sees as JSON (run by the tests with .venvs/airflow/bin/python).

Airflow lives in its own virtualenv, so the tests in the core environment cannot import it: they run
this script there and compare its output with the pipeline declaration. Printed: the import errors,
and for each DAG its schedule (cron and Asset condition), catchup, max_active_runs, docs, and each
task's dependencies, trigger rule, inlets, outlets, timeout, retries and command.
"""

from __future__ import annotations

import json
import sys


def condition(cond) -> dict | None:  # noqa: ANN001 - an Airflow asset condition
    from airflow.sdk import Asset, AssetAll, AssetAny

    if cond is None:
        return None
    if isinstance(cond, Asset):
        return {"asset": cond.name, "uri": cond.uri, "group": cond.group}
    if isinstance(cond, AssetAll):
        return {"all": [condition(c) for c in cond.objects]}
    if isinstance(cond, AssetAny):
        return {"any": [condition(c) for c in cond.objects]}
    return {"other": repr(cond)}


def schedule(dag) -> dict:  # noqa: ANN001 - an Airflow DAG
    tt = dag.timetable
    out: dict = {"type": type(tt).__name__, "cron": None, "timezone": None, "assets": None}
    cron = getattr(tt, "timetable", tt)  # AssetOrTimeSchedule wraps its time part
    if hasattr(cron, "expression"):
        out["cron"] = cron.expression
        out["timezone"] = str(getattr(cron.timezone, "name", cron.timezone))
    out["assets"] = condition(getattr(tt, "asset_condition", None))
    return out


def task(t) -> dict:  # noqa: ANN001 - an Airflow operator
    return {
        "upstream": sorted(t.upstream_task_ids),
        "trigger_rule": str(t.trigger_rule),
        "inlets": [a.name for a in t.inlets],
        "outlets": [a.name for a in t.outlets],
        "execution_timeout_seconds": t.execution_timeout.total_seconds() if t.execution_timeout else None,
        "retries": t.retries,
        "retry_exponential_backoff": t.retry_exponential_backoff,
        "bash_command": getattr(t, "bash_command", None),
        "skip_on_exit_code": sorted(getattr(t, "skip_on_exit_code", []) or []),
        "operator": type(t).__name__,
        "doc_md": t.doc_md,
    }


def main(folder: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(folder)
    out = {
        "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
        "files": sorted({d.fileloc for d in bag.dags.values()}),
        "dags": {
            d.dag_id: {
                "schedule": schedule(d),
                "catchup": d.catchup,
                "max_active_runs": d.max_active_runs,
                "doc_md": d.doc_md,
                "tasks": {t.task_id: task(t) for t in d.tasks},
            }
            for d in bag.dags.values()
        },
    }
    sys.stdout.write("\n@@DAGBAG@@" + json.dumps(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])

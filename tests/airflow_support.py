"""Helpers of the Airflow tests and benchmark: the DAGs as Airflow sees them, their drift from the
pipeline declaration, and a small client of Airflow's REST API.

Airflow lives in ``.venvs/airflow``; the core environment cannot import it, so :func:`dagbag` runs
``tests/airflow_dagbag.py`` there and reads its JSON. :func:`drift` compares that view with the
graph (``lakehouse.pipeline.graph``) and the configuration *directly*, not through ``dags/dag_plan``,
so a bug in the plan or in the DAG file shows as drift.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from lakehouse.config import Config
from lakehouse.pipeline import graph
from lakehouse.pipeline.runner import GATE

ROOT = Path(__file__).resolve().parent.parent
DAGS = ROOT / "dags"
AIRFLOW_PYTHON = ROOT / ".venvs" / "airflow" / "bin" / "python"
SKIPPED_EXIT_CODE = 99

#: Where the issue puts each stage (a DAG may hold more, e.g. a backtest stage added to the graph later).
REQUIRED_PLACEMENT = {
    "quotes_ingest": {"health", "ingest"},
    "lake_features": {"transform-lake"},
    "train_models": {"train"},
    "predict": {"predict", "evaluate"},
    "dwh_marts": {"transform-dwh"},
}


def load_dag_plan() -> ModuleType:
    """``dags/dag_plan.py`` (standard library only) imported into the core environment."""
    if "dag_plan" in sys.modules:
        return sys.modules["dag_plan"]
    spec = importlib.util.spec_from_file_location("dag_plan", DAGS / "dag_plan.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["dag_plan"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def dagbag(env: dict[str, str], airflow_home: Path, folder: Path = DAGS, timeout: float = 600) -> dict[str, Any]:
    """Load ``folder`` into a DagBag in the Airflow virtualenv; return what it saw (see airflow_dagbag.py)."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    full = {**os.environ, **env, "AIRFLOW_HOME": str(airflow_home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(folder)}
    proc = subprocess.run([str(AIRFLOW_PYTHON), str(ROOT / "tests" / "airflow_dagbag.py"), str(folder)],
                          capture_output=True, text=True, timeout=timeout, env=full, cwd=airflow_home, check=False)
    assert proc.returncode == 0, f"DagBag exit {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    marker = "\n@@DAGBAG@@"
    assert marker in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout.rsplit(marker, 1)[1])


def _assets_of(cond: dict | None) -> list[str]:
    if not cond:
        return []
    if "asset" in cond:
        return [cond["asset"]]
    return [a for c in cond.get("all", cond.get("any", [])) for a in _assets_of(c)]


def drift(dump: dict[str, Any], cfg: Config, cli: str) -> list[str]:
    """Every way the DAGs Airflow loaded differ from the pipeline declaration and the configuration."""
    problems: list[str] = []
    stages = graph.pipeline(cfg)
    dags = dump["dags"]
    where = {tid: dag_id for dag_id, d in dags.items() for tid in d["tasks"]}
    names = [s.name for s in stages]
    if missing := [n for n in names if n not in where]:
        problems.append(f"stages without a task: {missing}")
    if extra := sorted(set(where) - set(names)):
        problems.append(f"tasks that are no stage: {extra}")
    if counted := [n for n in names if sum(n in d["tasks"] for d in dags.values()) > 1]:
        problems.append(f"stages in more than one DAG: {counted}")
    for dag_id, required in REQUIRED_PLACEMENT.items():
        if dag_id not in dags:
            problems.append(f"DAG {dag_id} is missing")
        elif lacking := required - set(dags[dag_id]["tasks"]):
            problems.append(f"DAG {dag_id} lacks {sorted(lacking)}")
    writer = {a: s.name for s in stages for a in s.writes}

    # schedules: which DAG's assets trigger which DAG
    feeds: dict[str, set[str]] = {d: set() for d in dags}  # dag -> DAGs whose assets schedule it
    for dag_id, d in dags.items():
        for a in _assets_of(d["schedule"]["assets"]):
            if a not in writer or writer[a] not in where:
                problems.append(f"DAG {dag_id} is scheduled on {a}, which no task writes")
                continue
            if where[writer[a]] == dag_id:
                problems.append(f"DAG {dag_id} is scheduled on its own asset {a}")
            feeds[dag_id].add(where[writer[a]])
            if not any(a in cfg_stage.reads for cfg_stage in stages if where.get(cfg_stage.name) == dag_id):
                problems.append(f"DAG {dag_id} is scheduled on {a}, which none of its stages reads")

    def reaches(src: str, dst: str) -> bool:
        todo, seen = [dst], set()
        while todo:
            d = todo.pop()
            if d == src:
                return True
            if d not in seen:
                seen.add(d)
                todo.extend(feeds.get(d, ()))
        return False

    for s in stages:
        if s.name not in where:
            continue
        dag_id = where[s.name]
        task = dags[dag_id]["tasks"][s.name]
        if task["inlets"] != list(s.reads):
            problems.append(f"{s.name}: inlets {task['inlets']} != reads {list(s.reads)}")
        if task["outlets"] != list(s.writes):
            problems.append(f"{s.name}: outlets {task['outlets']} != writes {list(s.writes)}")
        if task["execution_timeout_seconds"] != s.timeout_minutes * 60:
            problems.append(f"{s.name}: timeout {task['execution_timeout_seconds']} s != {s.timeout_minutes} min")
        argv = shlex.split(task["bash_command"] or "")
        expected = [cli, "run", "--only", s.name, "--skipped-exit-code", str(SKIPPED_EXIT_CODE)]
        if argv[:len(expected)] != expected or task["skip_on_exit_code"] != [SKIPPED_EXIT_CODE]:
            problems.append(f"{s.name}: command {task['bash_command']!r} / skip codes {task['skip_on_exit_code']}")
        if not task["doc_md"]:
            problems.append(f"{s.name}: no doc_md")
        same_dag = {t for t in dags[dag_id]["tasks"]}
        want = {u for u in graph.upstream(stages, s.name) if u in same_dag}
        if GATE in same_dag and s.name != GATE:
            want.add(GATE)
        if set(task["upstream"]) != want:
            problems.append(f"{s.name}: upstream {sorted(task['upstream'])} != {sorted(want)} (graph)")
        if task["upstream"] and task["trigger_rule"] not in ("none_failed", "TriggerRule.NONE_FAILED"):
            problems.append(f"{s.name}: trigger rule {task['trigger_rule']} (a fresh upstream must not block it)")
        for a in s.reads:
            src = writer.get(a)
            if src and src in where and where[src] != dag_id and not reaches(where[src], dag_id):
                problems.append(f"{s.name} reads {a} from DAG {where[src]}, whose events never lead to {dag_id}")

    a = cfg.airflow
    crons = {"quotes_ingest": a.ingest_schedule, "train_models": a.train_schedule}
    for dag_id, d in dags.items():
        sch = d["schedule"]
        if sch["cron"] != crons.get(dag_id):
            problems.append(f"DAG {dag_id}: cron {sch['cron']!r} != {crons.get(dag_id)!r} ([airflow])")
        if sch["cron"] and sch["timezone"] != a.timezone:
            problems.append(f"DAG {dag_id}: timezone {sch['timezone']} != {a.timezone}")
        if d["catchup"] is not False or d["max_active_runs"] != 1:
            problems.append(f"DAG {dag_id}: catchup {d['catchup']}, max_active_runs {d['max_active_runs']}")
        if not d["doc_md"]:
            problems.append(f"DAG {dag_id}: no doc_md")
    champion = [x for s in stages if s.name == "train" for x in s.writes if x.startswith("mlflow:")]
    sched = {k: d["schedule"]["assets"] for k, d in dags.items()}
    if _assets_of(sched.get("lake_features")) != ["raw.quotes"]:
        problems.append(f"lake_features not scheduled on raw.quotes: {sched.get('lake_features')}")
    if "features.fct_daily_features" not in _assets_of(sched.get("train_models")):
        problems.append(f"train_models not scheduled on the features: {sched.get('train_models')}")
    branches = [_assets_of(b) for b in (sched.get("predict") or {}).get("any", [])]
    if not (any("features.fct_daily_features" in b for b in branches) and champion
            and any(champion[0] in b for b in branches)):
        problems.append(f"predict not scheduled on features OR champion: {sched.get('predict')}")
    if "ml.predictions" not in _assets_of(sched.get("dwh_marts")):
        problems.append(f"dwh_marts not scheduled on ml.predictions: {sched.get('dwh_marts')}")
    ingest = dags.get(where.get("ingest", ""), {}).get("tasks", {}).get("ingest")
    if ingest and (ingest["retries"] != a.ingest_retries or not ingest["retry_exponential_backoff"]):
        problems.append(f"ingest: retries {ingest['retries']}, backoff {ingest['retry_exponential_backoff']}")
    return problems


class AirflowClient:
    """Airflow's REST API (/api/v2) with a JWT from SimpleAuthManager's ``POST /auth/token``."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base = base_url.rstrip("/")
        resp = httpx.post(f"{self.base}/auth/token", json={"username": username, "password": password}, timeout=60)
        resp.raise_for_status()
        self.http = httpx.Client(base_url=f"{self.base}/api/v2", timeout=60,
                                 headers={"Authorization": f"Bearer {resp.json()['access_token']}"})

    def get(self, path: str, **params: Any) -> Any:
        resp = self.http.get(path, params=params)
        resp.raise_for_status()
        return resp.json()

    def dags(self) -> dict[str, dict]:
        return {d["dag_id"]: d for d in self.get("/dags", limit=100)["dags"]}

    def trigger(self, dag_id: str) -> str:
        resp = self.http.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
        resp.raise_for_status()
        return resp.json()["dag_run_id"]

    def runs(self, dag_id: str) -> list[dict]:
        """The DAG's runs, oldest first."""
        return self.get(f"/dags/{dag_id}/dagRuns", limit=100, order_by="run_after")["dag_runs"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        tis = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {t["task_id"]: t["state"] for t in tis}

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        doc = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                       full_content="true")
        return "\n".join(str(e.get("event", e)) if isinstance(e, dict) else str(e) for e in doc.get("content", []))

    def wait_run(self, dag_id: str, run_id: str, timeout: float, interval: float = 3.0) -> dict:
        """Poll until the run finishes (success or failed); return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(interval)
        raise TimeoutError(f"{dag_id} run {run_id} not finished after {timeout:.0f} s")

    def failures(self, log_chars: int = 3000) -> list[str]:
        """``dag/run: task states`` and the end of each failed task's log, for every failed run (for an
        early, readable test failure)."""
        out = []
        for dag_id in self.dags():
            for run in self.runs(dag_id):
                if run["state"] != "failed":
                    continue
                states = self.task_states(dag_id, run["dag_run_id"])
                logs = [f"--- {task} log:\n{self.task_log(dag_id, run['dag_run_id'], task)[-log_chars:]}"
                        for task, state in states.items() if state == "failed"]
                out.append("\n".join([f"{dag_id}/{run['dag_run_id']}: {states}", *logs]))
        return out

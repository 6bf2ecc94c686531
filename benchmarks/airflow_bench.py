"""Airflow on the sample: time from triggering quotes_ingest to dwh_marts' success, and Airflow's memory.

Starts a private stack (`lakehouse up airflow` in services mode, a temporary state dir and free
ports unless --home is given), waits for the DAGs to be parsed, triggers ``quotes_ingest`` and polls
the REST API until ``dwh_marts`` succeeds. Prints:

- ``lakehouse up airflow`` to healthy (object store, catalog, ClickHouse front, MLflow, 4 Airflow
  processes; the first start includes ``airflow db migrate``), and until the DAGs are parsed;
- trigger -> dwh_marts success, with each DAG run's duration and, along the chain's path, the
  stages' own work (their ``lakehouse run`` summaries), the task overhead (Airflow's task start-up,
  the CLI's start-up, fingerprint checks) and the hand-offs between DAG runs (scheduling, Asset
  events); a restart of the four Airflow processes;
- a second trigger without new data (health runs, ingest skipped, nothing downstream);
- RSS of Airflow's four processes and their Airflow children (LocalExecutor workers, task
  supervisors, the triggerer's runner; not the stages' own ``lakehouse run`` processes), idle after
  the chain and the peak sampled every 2 s during it;
- for reference, ``lakehouse run --force`` of the same stages on the same stack (no Airflow).

Anchors (issue 16): the whole stack including Airflow and Superset healthy in < 60 s and < 3 GiB RSS;
``lakehouse run`` cold < 60 s on the sample.

    .venvs/core/bin/python benchmarks/airflow_bench.py [--home DIR] [--no-run]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console(width=150)
ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "lakehouse")
DAG_IDS = ("quotes_ingest", "lake_features", "train_models", "predict", "dwh_marts")
SERVICES = ("airflow", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")


def _cli(*args: str, env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess:
    proc = subprocess.run([CLI, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=timeout,
                          cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"`lakehouse {' '.join(args)}` failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def airflow_rss(cfg) -> dict[str, int]:  # noqa: ANN001 - Config
    """RSS (bytes) per Airflow service: its process and its descendants that run Airflow's own code."""
    out: dict[str, int] = {}
    for name in SERVICES:
        state = json.loads((cfg.run_dir / f"{name}.json").read_text())
        total = 0
        try:
            leader = psutil.Process(state["pid"])
            for p in [leader, *leader.children(recursive=True)]:
                try:  # the stages' own processes (bash -> the core `lakehouse run`) are not Airflow's
                    if p.name() not in ("bash", "sh") and ".venvs/core" not in " ".join(p.cmdline()):
                        total += p.memory_info().rss
                except psutil.Error:
                    continue
        except psutil.Error:
            pass
        out[name] = total
    return out


def stage_seconds(log: str, stage: str) -> float:
    """The seconds the stage itself took, from the `lakehouse run` summary in its task log (0: skipped)."""
    m = re.search(rf"[│|]\s*{re.escape(stage)}\s*[│|]\s*ok\s*[│|]\s*([0-9.]+)", log)
    return float(m.group(1)) if m else 0.0


def _wait_dwh(client, deadline: float, before: int = 0) -> None:  # noqa: ANN001
    while sum(r["state"] == "success" for r in client.runs("dwh_marts")) <= before:
        if failed := client.failures():
            raise SystemExit(f"failed DAG runs: {failed}")
        if time.monotonic() > deadline:
            raise SystemExit("dwh_marts did not succeed in time")
        time.sleep(2)


def _seconds(a: str | None, b: str | None) -> float:
    import datetime as dt

    if not a or not b:
        return 0.0
    return (dt.datetime.fromisoformat(b.replace("Z", "+00:00")) - dt.datetime.fromisoformat(a.replace("Z", "+00:00"))
            ).total_seconds()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", type=Path, help="state dir (default: a temporary one, removed)")
    ap.add_argument("--no-run", action="store_true", help="skip the `lakehouse run --force` reference")
    args = ap.parse_args()

    from lakehouse.config import get_config
    from tests.airflow_support import AirflowClient
    from tests.conftest import applied_env, isolated_env

    tmp = None if args.home else tempfile.TemporaryDirectory(prefix="airflow-bench-")
    home = args.home or Path(tmp.name) / "home"
    env = {**isolated_env(home), "LAKEHOUSE_GENERAL__MODE": "services"}
    with applied_env(env):
        cfg = get_config(reload=True)
        try:
            t0 = time.monotonic()
            _cli("up", "airflow", env=env)
            up_s = time.monotonic() - t0
            client = AirflowClient(cfg.airflow.url, cfg.airflow.admin_user, cfg.airflow.admin_password)
            while set(client.dags()) != set(DAG_IDS):
                time.sleep(1)
            parsed_s = time.monotonic() - t0

            peak = {"total": 0}
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    with_rss = airflow_rss(cfg)
                    peak["total"] = max(peak["total"], sum(with_rss.values()))
                    stop.wait(2)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t1 = time.monotonic()
            client.trigger("quotes_ingest")
            _wait_dwh(client, t1 + 3600)
            chain_s = time.monotonic() - t1
            stop.set()
            sampler.join()

            runs = {d: client.runs(d) for d in DAG_IDS}
            rows, path = [], []
            for d in DAG_IDS:
                for r in runs[d]:
                    tis = client.get(f"/dags/{d}/dagRuns/{r['dag_run_id']}/taskInstances")["task_instances"]
                    work = {t["task_id"]: stage_seconds(client.task_log(d, r["dag_run_id"], t["task_id"]), t["task_id"])
                            for t in tis}
                    rows.append((d, r["run_type"], f"{_seconds(r['start_date'], r['end_date']):.1f}",
                                 ", ".join(f"{t['task_id']} {t['state']} {t['duration'] or 0:.1f} s"
                                           + (f" (stage {work[t['task_id']]:.1f} s)" if work[t["task_id"]] else "")
                                           for t in tis)))
                    if r is runs[d][-1]:  # the chain's path: the last run of each DAG (predict: after the champion)
                        path.append((sum(t["duration"] or 0 for t in tis), sum(work.values())))
            path_task_s = sum(p[0] for p in path)
            path_stage_s = sum(p[1] for p in path)
            time.sleep(10)
            idle = airflow_rss(cfg)

            t2 = time.monotonic()
            rid = client.trigger("quotes_ingest")
            client.wait_run("quotes_ingest", rid, 600)
            noop_s = time.monotonic() - t2

            t4 = time.monotonic()
            _cli("down", "airflow", env=env)
            t5 = time.monotonic()
            _cli("up", "airflow", env=env)
            down_s, restart_s = t5 - t4, time.monotonic() - t5

            run_s = None
            if not args.no_run:
                t3 = time.monotonic()
                _cli("run", "--force", env=env, timeout=3600)
                run_s = time.monotonic() - t3
        finally:
            subprocess.run([CLI, "down"], env={**os.environ, **env}, capture_output=True, timeout=600, check=False)
            if tmp is not None:
                tmp.cleanup()

    runs_table = Table(title="DAG runs of the chain")
    for col in ("DAG", "run type", "seconds", "tasks"):
        runs_table.add_column(col)
    for row in rows:
        runs_table.add_row(*row)
    console.print(runs_table)

    mib = 1024 * 1024
    table = Table(title=f"Airflow on the sample ({psutil.cpu_count()} cores)")
    for col in ("measure", "value", "anchor"):
        table.add_column(col)
    table.add_row("`lakehouse up airflow`, first start (8 services, airflow db migrate)", f"{up_s:.1f} s",
                  "whole stack incl. Airflow and Superset < 60 s")
    table.add_row("... until the 5 DAGs are parsed", f"{parsed_s:.1f} s", "")
    table.add_row("`lakehouse down airflow` (4 Airflow processes)", f"{down_s:.1f} s", "")
    table.add_row("`lakehouse up airflow` again (4 Airflow processes, no migration)", f"{restart_s:.1f} s",
                  "whole stack incl. Airflow and Superset < 60 s")
    table.add_row("trigger quotes_ingest -> dwh_marts success", f"{chain_s:.1f} s",
                  f"`lakehouse run --force`, same stages and stack: {run_s:.1f} s" if run_s else "")
    table.add_row("  stages' own work on the chain's path (their run summaries)", f"{path_stage_s:.1f} s", "")
    table.add_row("  task overhead on the path (task start, CLI start-up, fingerprints)",
                  f"{path_task_s - path_stage_s:.1f} s", "")
    table.add_row("  hand-offs between DAG runs (scheduling, Asset events)", f"{chain_s - path_task_s:.1f} s", "")
    table.add_row("second trigger, no new data (ingest skipped, no cascade)", f"{noop_s:.1f} s", "")
    for name, rss in idle.items():
        table.add_row(f"RSS {name} (idle, with its Airflow children)", f"{rss / mib:.0f} MiB", "")
    table.add_row("RSS Airflow total, idle after the chain", f"{sum(idle.values()) / mib:.0f} MiB",
                  "whole stack incl. Superset < 3 GiB")
    table.add_row("RSS Airflow total, peak during the chain", f"{peak['total'] / mib:.0f} MiB", "")
    console.print(table)


if __name__ == "__main__":
    main()

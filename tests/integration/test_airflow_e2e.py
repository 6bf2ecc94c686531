"""End to end on a real `lakehouse up airflow` stack (services mode, isolated state dir, free ports):
log in through POST /auth/token, list the DAGs, trigger quotes_ingest alone and follow the Asset
events to a successful dwh_marts run; predictions and marts exist; a second trigger without new data
completes with the stages skipped and starts nothing downstream; `lakehouse down` stops every
Airflow process.

Sized for a loaded 2-core machine: two tickers and two models; every wait is generous but finite.
"""

from __future__ import annotations

import os
import stat
import time

import httpx
import psutil
import pytest

from lakehouse.services import airflow as airflow_service
from tests.airflow_support import AIRFLOW_PYTHON, AirflowClient
from tests.conftest import applied_env, cli_ok, isolated_env, run_cli

pytestmark = [pytest.mark.skipif(not AIRFLOW_PYTHON.exists(), reason="no .venvs/airflow (run make setup)"),
              pytest.mark.timeout(3600)]

DAG_IDS = {"quotes_ingest", "lake_features", "train_models", "predict", "dwh_marts"}
TICKERS = ["AAPL", "IBM"]
CHAIN_TIMEOUT = 1800  # seconds from the trigger to dwh_marts' success (about 5 minutes unloaded)


def _airflow_processes(home) -> list[psutil.Process]:
    """Every live process whose environment says it belongs to this Airflow home."""
    target = str(home)
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get("AIRFLOW_HOME") == target:
                out.append(p)
        except psutil.Error:
            continue
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for attempt in (1, 2):  # a free port taken by another suite between choosing and binding: retry once
        home = tmp_path_factory.mktemp("airflow-e2e") / "home"
        env = {**isolated_env(home), "LAKEHOUSE_GENERAL__MODE": "services",
               "LAKEHOUSE_SOURCES__SAMPLE__TICKERS": ",".join(TICKERS), "LAKEHOUSE_MLFLOW__MODELS": "naive,ridge"}
        with applied_env(env) as cfg:
            t0 = time.monotonic()
            proc = run_cli("up", "airflow", env=env, timeout=1200)
            up_seconds = time.monotonic() - t0
            try:
                if proc.returncode != 0 and "already in use" in proc.stderr and attempt == 1:
                    continue
                cli_ok(proc)
                yield cfg, env, up_seconds
                return
            finally:
                run_cli("down", env=env, timeout=600)


@pytest.fixture(scope="module")
def client(stack) -> AirflowClient:
    cfg, _, _ = stack
    return AirflowClient(cfg.airflow.url, cfg.airflow.admin_user, cfg.airflow.admin_password)


@pytest.fixture(scope="module")
def chain(stack, client):
    """Trigger quotes_ingest once on the fresh stack and wait for dwh_marts to succeed."""
    deadline = time.monotonic() + 600
    while set(client.dags()) != DAG_IDS:  # the dag-processor parses dags/ after start
        assert time.monotonic() < deadline, f"DAGs not parsed: {sorted(client.dags())}"
        time.sleep(3)
    t0 = time.monotonic()
    run_id = client.trigger("quotes_ingest")
    deadline = t0 + CHAIN_TIMEOUT

    def built() -> bool:  # a dwh_marts run that built the marts (an early one may skip, waiting for inputs)
        return any(client.task_states("dwh_marts", r["dag_run_id"]) == {"transform-dwh": "success"}
                   for r in client.runs("dwh_marts") if r["state"] == "success")

    while not built():
        failed = client.failures()
        assert not failed, "failed DAG runs:\n" + "\n".join(failed)
        assert time.monotonic() < deadline, {d: [r["state"] for r in client.runs(d)] for d in DAG_IDS}
        time.sleep(5)
    elapsed = time.monotonic() - t0
    # the chain's later asset events (dwh_marts again after evaluate) create runs a scheduler loop later:
    # the tests look once no run is queued or running on two polls 10 s apart
    quiet = 0
    while quiet < 2:
        busy = any(r["state"] in ("queued", "running") for d in DAG_IDS for r in client.runs(d))
        quiet = 0 if busy else quiet + 1
        assert time.monotonic() < deadline, {d: [r["state"] for r in client.runs(d)] for d in DAG_IDS}
        time.sleep(10)
    return run_id, elapsed


def test_login_lists_the_dags_unpaused(stack, client) -> None:
    cfg, _, _ = stack
    bad = httpx.post(f"{cfg.airflow.url}/auth/token", json={"username": "admin", "password": "wrong"}, timeout=30)
    assert bad.status_code == 401
    assert httpx.get(f"{cfg.airflow.url}/api/v2/dags", timeout=30).status_code == 401
    deadline = time.monotonic() + 600
    while set(dags := client.dags()) != DAG_IDS:
        assert time.monotonic() < deadline, sorted(dags)
        time.sleep(3)
    assert not any(d["is_paused"] for d in dags.values())
    assert client.get("/importErrors")["total_entries"] == 0
    health = client.get("/monitor/health")
    assert {health[c]["status"] for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")} == {"healthy"}


def test_status_names_every_process_and_where_the_password_is(stack) -> None:
    cfg, env, _ = stack
    out = cli_ok(run_cli("status", env={**env, "COLUMNS": "250"}))
    for name in ("airflow", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        assert any(line.split("│")[1].strip() == name and "running" in line for line in out.splitlines()
                   if line.count("│") > 2), out
    assert "secrets.json" in out and "airflow.admin_password" in out and cfg.airflow.admin_password not in out


def test_no_secret_on_a_command_line_and_private_files(stack) -> None:
    cfg, _, _ = stack
    home = airflow_service.home(cfg)
    procs = _airflow_processes(home)
    assert len(procs) >= 4
    secrets = [cfg.airflow.admin_password, cfg.objectstore.secret_key, cfg.clickhouse.password]
    cfg_text = airflow_service.config_file(cfg).read_text()
    secrets += [line.split("=", 1)[1].strip() for line in cfg_text.splitlines()
                if line.split("=")[0].strip() in ("fernet_key", "secret_key", "jwt_secret")]
    for p in procs:
        cmdline = " ".join(p.cmdline())
        assert not any(s and s in cmdline for s in secrets), cmdline
    for f in (airflow_service.config_file(cfg), airflow_service.passwords_file(cfg)):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f


def test_quotes_ingest_alone_runs_the_chain_to_the_marts(stack, client, chain) -> None:
    cfg, _, _ = stack
    for dag_id in DAG_IDS:
        runs = client.runs(dag_id)
        assert runs and all(r["state"] == "success" for r in runs), (dag_id, runs)
    assert [r["run_type"] for r in client.runs("quotes_ingest")] == ["manual"]
    assert all(r["run_type"] == "asset_triggered" for d in DAG_IDS - {"quotes_ingest"} for r in client.runs(d))
    states = {d: [client.task_states(d, r["dag_run_id"]) for r in client.runs(d)] for d in DAG_IDS}
    assert states["quotes_ingest"] == [{"health": "success", "ingest": "success"}]
    assert states["lake_features"] == [{"transform-lake": "success"}]
    # the marts are built; a dwh_marts run triggered before the ML tables exist skips, waiting for them, and
    # one queued behind a build finds nothing new and skips: any other skip would be a bug
    dwh_runs = list(zip(client.runs("dwh_marts"), states["dwh_marts"], strict=True))
    assert all(st in ({"transform-dwh": "success"}, {"transform-dwh": "skipped"}) for _, st in dwh_runs), dwh_runs
    built = [run for run, st in dwh_runs if st == {"transform-dwh": "success"}]
    assert built, dwh_runs
    for run, st in dwh_runs:
        if st == {"transform-dwh": "skipped"}:
            log = client.task_log("dwh_marts", run["dag_run_id"], "transform-dwh")
            assert "waiting for" in log or "skipped, fresh" in log, log[-2000:]
    # predict runs on features OR champion: a run before the first champion skips and waits cleanly
    for run, st in zip(client.runs("predict"), states["predict"], strict=True):
        if st["predict"] == "skipped":
            log = client.task_log("predict", run["dag_run_id"], "predict")
            assert "waiting for" in log and "@champion" in log, log[-2000:]
    assert states["predict"][-1] == {"predict": "success", "evaluate": "success"}

    # the dbt build's summary is in the task logs
    lake = client.runs("lake_features")[0]["dag_run_id"]
    assert "dbt build: dbt_lake" in client.task_log("lake_features", lake, "transform-lake")
    dwh = built[-1]["dag_run_id"]
    log = client.task_log("dwh_marts", dwh, "transform-dwh")
    assert "dbt build: dbt_dwh" in log and "passed" in log, log[-3000:]

    # what the chain produced
    from lakehouse.lake import open_lake

    with open_lake(cfg) as lake_handle:
        preds = lake_handle.catalog.load_table("ml.predictions").scan().to_arrow()
    assert preds.num_rows > 0 and set(preds.column("ticker").to_pylist()) == set(TICKERS)
    ch = cfg.clickhouse
    headers = {"X-ClickHouse-User": ch.user, "X-ClickHouse-Key": ch.password}
    resp = httpx.get(ch.url, params={"query": f"SELECT count() FROM `{ch.database}`.mart_latest_forecast"},
                     headers=headers, timeout=60)
    assert resp.status_code == 200 and int(resp.text.strip()) > 0, resp.text
    resp = httpx.get(ch.url, params={"query": f"SELECT count() FROM `{ch.database}`.mart_daily_prices"},
                     headers=headers, timeout=60)
    assert resp.status_code == 200 and int(resp.text.strip()) > 0, resp.text


def test_second_trigger_without_new_data_skips_and_cascades_nothing(stack, client, chain) -> None:
    before = {d: len(client.runs(d)) for d in DAG_IDS}
    ingest_events = [e for e in client.get("/assets/events", limit=100)["asset_events"]
                     if e["source_task_id"] == "ingest"]
    t0 = time.monotonic()
    run_id = client.trigger("quotes_ingest")
    run = client.wait_run("quotes_ingest", run_id, timeout=600)
    assert run["state"] == "success"
    assert client.task_states("quotes_ingest", run_id) == {"health": "success", "ingest": "skipped"}
    log = client.task_log("quotes_ingest", run_id, "ingest")
    assert "skipped, fresh" in log, log[-2000:]
    assert time.monotonic() - t0 < 600
    time.sleep(30)  # several scheduler loops: an Asset event would have created runs by now
    after = {d: len(client.runs(d)) for d in DAG_IDS}
    assert after == {**before, "quotes_ingest": before["quotes_ingest"] + 1}
    again = [e for e in client.get("/assets/events", limit=100)["asset_events"] if e["source_task_id"] == "ingest"]
    assert len(again) == len(ingest_events)


def test_down_stops_every_airflow_process(stack, chain) -> None:
    cfg, env, _ = stack
    home = airflow_service.home(cfg)
    assert _airflow_processes(home)
    cli_ok(run_cli("down", "airflow", env=env, timeout=600))
    deadline = time.monotonic() + 30
    while (left := _airflow_processes(home)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not left, [" ".join(p.cmdline()) for p in left]
    out = cli_ok(run_cli("status", env={**env, "COLUMNS": "250"}))
    assert "airflow-scheduler" in out and "stopped" in out

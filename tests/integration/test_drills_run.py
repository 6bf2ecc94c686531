"""Reliability drills on ``lakehouse run`` in services mode (SeaweedFS, the catalog and MLflow started by the
supervisor, one stack for the module):

- kill -9 of ``lakehouse run`` (its whole process group: dbt, the temporary ClickHouse front) during the
  dbt_lake build, during the backtest and during predict: after each kill every Iceberg table's current
  metadata and data files are there and readable, the interrupted stage has no record in
  ``pipeline.stage_runs`` (so the next run executes it), and the last rerun completes;
- SeaweedFS stopped in the middle of a stage and started again after it failed: the stage fails with a
  message naming the object store and its URL (no traceback), and the rerun succeeds.
"""

from __future__ import annotations

import pytest

from lakehouse.lake import open_lake
from lakehouse.pipeline.runner import PAUSE_BEFORE_RECORD_ENV
from lakehouse.pipeline.state import StageRuns
from tests.drills_support import (
    assert_no_traceback,
    check_engines,
    cli,
    lake_tables,
    results,
    services_env,
    spawn,
    stack,
    up,
)

DAY_1 = "2013-02-26"
pytestmark = pytest.mark.timeout(1500)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    base = tmp_path_factory.mktemp("drills_run")
    env = services_env(base / "home", LAKEHOUSE_SOURCES__SAMPLE__END=DAY_1)
    with stack(env, ("objectstore", "catalog", "mlflow")) as cfg:
        yield {"env": env, "cfg": cfg, "base": base}


def recorded(cfg) -> set[str]:  # noqa: ANN001 - Config
    """Stages with a record in pipeline.stage_runs (read fresh)."""
    with open_lake(cfg) as handle:
        return set(StageRuns(handle).latest())


def has_snapshot(cfg, table: str):  # noqa: ANN001, ANN201
    """A poll: ``table`` exists in the catalog with a snapshot (a dbt model of the build has committed)."""
    def poll() -> bool:
        with open_lake(cfg) as handle:
            if not handle.catalog.table_exists(table):
                return False
            return handle.catalog.load_table(table).current_snapshot() is not None
    return poll


# (stage, what to wait for in the run's output, the stage that follows it in the graph: it must not have
# started when the kill lands, and extra environment for the run)
KILLS = [
    # the dbt_lake build with staging.stg_quotes committed and the features not yet
    ("transform-lake", r"─ transform-lake: ", "backtest", {}),
    # the backtest computing its forecasts (features read, models fitting)
    ("backtest", r"backtest of .* on features", "train", {}),
    # predict with ml.predictions written and its record not yet (the drills' pause hook)
    ("predict", r"predict: pausing", "evaluate", {PAUSE_BEFORE_RECORD_ENV: "predict:60"}),
]


def test_kill_9_during_dbt_lake_backtest_and_predict(lake) -> None:
    env, cfg, base = lake["env"], lake["cfg"], lake["base"]
    for i, (stage, point, following, extra) in enumerate(KILLS):
        child = spawn(env, "run", out=base / f"kill-{i}.out", extra=extra)
        poll = has_snapshot(cfg, "staging.stg_quotes") if stage == "transform-lake" else None
        child.wait_for(point, poll=poll)
        child.kill9()
        out = child.text()
        assert f"─ {following}: " not in out, f"{stage} had already finished:\n{out[-3000:]}"
        if i:  # the stage interrupted by the previous kill ran again (not skipped as fresh)
            previous = KILLS[i - 1][0]
            assert f"─ {previous}: " in out and f"{previous}: skipped" not in out, out[-3000:]
        # no table half-written: each one's metadata, data files and row counts agree
        tables = lake_tables(cfg)
        assert "raw.quotes" in tables
        # the interrupted stage is not marked done; the ones before it are
        done = recorded(cfg)
        assert stage not in done, f"{stage} recorded as done after a kill -9"
        assert "ingest" in done

    final = cli(env, "run", timeout=900)
    assert final.returncode == 0, final.stdout[-4000:] + final.stderr[-2000:]
    got = results(final.stdout)
    assert got["predict"] == "ok" and got["evaluate"] == "ok" and got["transform-dwh"] == "ok", got
    assert set(got.values()) <= {"ok", "skipped"}, got
    assert {k[0] for k in KILLS} <= recorded(cfg)

    tables = lake_tables(cfg)
    for table in ("raw.quotes", "features.fct_daily_features", "ml.backtest_predictions", "ml.predictions"):
        assert tables[table].rows > 0, table
    check_engines(env, cfg, tables)  # DuckDB and ClickHouse agree with pyiceberg; no duplicate keys


@pytest.mark.parametrize(("stage", "table"), [("predict", "ml.predictions"),
                                           ("transform-lake", "features.fct_daily_features")])
def test_objectstore_restart_mid_stage_fails_clearly_and_rerun_succeeds(lake, stage: str, table: str) -> None:
    env, cfg, base = lake["env"], lake["cfg"], lake["base"]
    before = lake_tables(cfg)[table]
    # one retry per MLflow request (default 3): the drill checks the message, not how long retries last
    child = spawn(env, "run", "--force", "--only", stage, out=base / f"objectstore-{stage}.out",
                  extra={"LAKEHOUSE_MLFLOW__REQUEST_RETRIES": "1"})
    child.wait_for(rf"─ {stage}: ")
    with child.frozen():  # the stage cannot finish while the object store is being stopped
        stopped = cli(env, "down", "objectstore", timeout=120)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    code, out = child.finish(timeout=600)
    assert code == 1, out[-4000:]
    assert_no_traceback(out)
    assert results(out).get(stage) == "failed", out[-3000:]
    flat = " ".join(out.split())
    assert f"the object store (S3) at {cfg.s3_endpoint} is not reachable" in flat, out[-4000:]

    up(env, "objectstore")  # the restart
    after_restart = lake_tables(cfg)[table]
    assert after_restart.rows == before.rows  # the failed stage wrote nothing half-way
    rerun = cli(env, "run", "--force", "--only", stage, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-4000:] + rerun.stderr[-2000:]
    assert results(rerun.stdout)[stage] == "ok"
    assert lake_tables(cfg)[table].rows == before.rows

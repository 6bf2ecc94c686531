"""`lakehouse run` over the declared graph, through the real CLI on the shipped sample: a cold run, a
rerun with nothing new (skips everything, writes no snapshot anywhere), one new trading day (reruns
ingest and what depends on it), a changed dbt model (reruns its stage from scratch and what follows),
and --force. The sample is replayed day by day with `[sources.sample] end`."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from lakehouse.config import load_config
from lakehouse.lake import open_lake
from tests.conftest import ROOT, cli_ok, isolated_env, run_cli

DAY_1 = "2013-02-26"  # a Tuesday
DAY_2 = "2013-02-27"  # the next trading day, same ISO week: the weekly retrain policy does not retrain


def results(stdout: str) -> dict[str, str]:
    """stage -> result from the run summary table."""
    return dict(re.findall(r"│ ([a-z-]+)\s+│ (ok|skipped|failed|blocked|not selected)\s", stdout))


def snapshots(env: dict[str, str]) -> dict[str, int | None]:
    """The current snapshot id of every table in the lake."""
    cfg = load_config(env=env)
    out = {}
    with open_lake(cfg) as lake:
        for ns in lake.catalog.list_namespaces():
            for ident in lake.catalog.list_tables(ns):
                snap = lake.catalog.load_table(ident).current_snapshot()
                out[".".join(ident)] = snap.snapshot_id if snap else None
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    env = {**isolated_env(tmp_path_factory.mktemp("pipeline") / "home"), "COLUMNS": "200",
           "LAKEHOUSE_SOURCES__SAMPLE__END": DAY_1}
    cold = run_cli("run", env=env, timeout=900)
    cli_ok(cold)
    return {"env": env, "cold": cold.stdout}


def test_cold_run_runs_every_stage(env) -> None:
    got = results(env["cold"])
    assert got and set(got.values()) == {"ok"}, got
    assert {"health", "ingest", "transform-lake", "train", "predict", "evaluate", "transform-dwh"} <= set(got)
    # the run report follows the summary: its path printed, the page written with every ticker's section
    cfg = load_config(env=env["env"])
    latest = cfg.reports_dir / "latest.html"
    assert f"report: {latest}" in env["cold"] and latest.is_file()
    html = latest.read_text()
    assert all(f'id="t-{t}"' in html for t in ("AAPL", "GOOG", "IBM", "MSFT", "FB")) and ">naive (baseline)<" in html


def test_rerun_with_nothing_new_skips_everything_and_writes_no_snapshot(env) -> None:
    before = snapshots(env["env"])
    rerun = cli_ok(run_cli("run", env=env["env"], timeout=300))
    got = results(rerun)
    assert got.pop("health") == "ok"
    assert set(got.values()) == {"skipped"}, got
    assert "fresh: inputs, code and config unchanged" in rerun
    assert snapshots(env["env"]) == before
    plan = cli_ok(run_cli("plan", env=env["env"]))
    assert "stale" not in plan and plan.count("fresh") >= 6


def test_one_new_trading_day_reruns_ingest_and_everything_downstream(env) -> None:
    env["env"]["LAKEHOUSE_SOURCES__SAMPLE__END"] = DAY_2
    before = snapshots(env["env"])
    out = cli_ok(run_cli("run", env=env["env"], timeout=600))
    got = results(out)
    assert got["ingest"] == got["transform-lake"] == got["predict"] == got["evaluate"] == "ok", got
    assert got["transform-dwh"] == "ok", got
    assert got["train"] == "skipped", got  # same ISO week: the weekly retrain policy keeps the champion
    after = snapshots(env["env"])
    for table in ("raw.quotes", "staging.stg_quotes", "features.fct_daily_features", "ml.predictions"):
        assert after[table] != before[table], table
    cfg = load_config(env=env["env"])
    with open_lake(cfg) as lake:
        dates = lake.catalog.load_table("raw.quotes").scan(selected_fields=("trade_date",)).to_arrow()
    assert str(max(dates["trade_date"].to_pylist())) == DAY_2


def test_a_changed_dbt_model_reruns_its_stage_from_scratch(env, tmp_path) -> None:
    """The same lake, driven by a copy of the code whose staging model differs by a comment."""
    copy = tmp_path / "repo"
    for part in ("lakehouse", "catalog", "ml", "dbt_lake", "dbt_dwh"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__", "target", "logs"))
    shutil.copy(ROOT / "lakehouse.toml", copy / "lakehouse.toml")
    code_env = {**env["env"], "PYTHONPATH": str(copy), "LAKEHOUSE_CONFIG": str(copy / "lakehouse.toml")}
    same = results(cli_ok(run_cli("run", env=code_env, timeout=300)))
    assert set(v for k, v in same.items() if k != "health") == {"skipped"}, same  # identical code: fresh

    model = copy / "dbt_lake" / "models" / "staging" / "stg_quotes.sql"
    model.write_text(model.read_text() + "\n-- a reviewed change\n")
    plan = cli_ok(run_cli("plan", env=code_env))
    assert "code changed: dbt_lake/models/staging/stg_quotes.sql" in plan
    before = snapshots(env["env"])
    out = cli_ok(run_cli("run", env=code_env, timeout=600))
    got = results(out)
    assert got["ingest"] == "skipped" and got["transform-lake"] == "ok", got
    assert "full refresh" in out  # a new definition is rebuilt, not applied to new rows only
    assert got["predict"] == got["transform-dwh"] == "ok", got
    after = snapshots(env["env"])
    assert after["staging.stg_quotes"] != before["staging.stg_quotes"]
    assert after["raw.quotes"] == before["raw.quotes"]


def test_force_reruns_fresh_stages(env) -> None:
    got = results(cli_ok(run_cli("run", "--force", "--from", "evaluate", env=env["env"], timeout=600)))
    assert got["evaluate"] == got["transform-dwh"] == "ok", got
    assert got["ingest"] == got["predict"] == "not selected", got
    only = results(cli_ok(run_cli("run", "--only", "predict", env=env["env"], timeout=300)))
    assert only["predict"] == "skipped" and only["evaluate"] == "not selected", only


def test_a_report_failure_does_not_fail_the_run(env) -> None:
    cfg = load_config(env=env["env"])
    reports = cfg.reports_dir
    moved = reports.with_name("reports.kept")
    reports.rename(moved)
    reports.write_text("not a folder")  # the report cannot be written
    try:
        proc = run_cli("run", "--only", "health", env=env["env"], timeout=300)
        out = " ".join(proc.stdout.split())
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "warning: run report not written" in out and "lakehouse report" in out
        assert results(proc.stdout)["health"] == "ok"
        assert "report: " not in out
    finally:
        reports.unlink()
        moved.rename(reports)


def test_mermaid_format_needs_no_lake(tmp_path: Path) -> None:
    out = cli_ok(run_cli("plan", "--format", "mermaid", env={"LAKEHOUSE_HOME": str(tmp_path / "h")}))
    assert out.startswith("flowchart LR") and "raw.quotes" in out
    assert not (tmp_path / "h" / "warehouse").exists()

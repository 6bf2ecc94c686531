"""`lakehouse run` as a scheduler's task runs it (embedded mode, private state dir): `--skipped-exit-code`
tells a fresh stage from one that ran, `--wait-for` skips while an asset does not exist yet."""

from __future__ import annotations

from tests.conftest import run_cli


def test_skipped_exit_code_only_when_no_stage_ran(lh_env) -> None:
    env = {**lh_env, "LAKEHOUSE_SOURCES__SAMPLE__TICKERS": "IBM"}
    first = run_cli("run", "--only", "ingest", "--skipped-exit-code", "99", env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = run_cli("run", "--only", "ingest", "--skipped-exit-code", "99", env=env)
    assert second.returncode == 99, second.stdout[-3000:] + second.stderr[-3000:]
    assert "ingest: skipped, fresh" in second.stdout
    # without the option a fresh run is a success, as before
    assert run_cli("run", "--only", "ingest", env=env).returncode == 0
    # a stage that always runs never counts as skipped
    assert run_cli("run", "--only", "health", "--skipped-exit-code", "99", env=env).returncode == 0


def test_wait_for_a_missing_asset(lh_env, cfg) -> None:
    champion = f"mlflow:{cfg.mlflow.model_name}@champion"
    proc = run_cli("run", "--only", "predict", "--wait-for", champion, "--skipped-exit-code", "99", env=lh_env)
    assert proc.returncode == 99, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"waiting for {champion}" in proc.stdout and "predict not run" in proc.stdout
    proc = run_cli("run", "--only", "predict", "--wait-for", champion, env=lh_env)
    assert proc.returncode == 0 and "waiting for" in proc.stdout
    proc = run_cli("run", "--only", "predict", "--wait-for", "no.such_table", env=lh_env)
    assert proc.returncode == 2 and "not an asset of the graph" in proc.stderr

"""The Airflow service's files and wiring, without starting it: airflow.cfg and the password file
(private, secrets kept across starts, never on a command line), the environment the tasks inherit,
the service group, and the `lakehouse status` hint."""

from __future__ import annotations

import configparser
import json
import stat

import pytest

from lakehouse.services import airflow
from lakehouse.services.registry import expand, get_service
from lakehouse.services.supervisor import resolve
from tests.conftest import applied_env, cli_ok, isolated_env, run_cli

FOUR = ["airflow", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_file_is_private_and_keeps_its_signing_keys(cfg) -> None:
    path = airflow.write_config(cfg)
    assert _mode(path) == 0o600 and _mode(airflow.home(cfg)) == 0o700
    first = configparser.RawConfigParser()
    first.read(path)
    assert first.get("core", "dags_folder") == str(airflow.DAGS_FOLDER)
    assert first.get("core", "executor") == "LocalExecutor"
    assert first.get("core", "load_examples") == "False"
    assert first.get("core", "dags_are_paused_at_creation") == "False"
    assert first.get("core", "execution_api_server_url") == f"{cfg.airflow.url}/execution/"
    assert first.get("database", "sql_alchemy_conn") == f"sqlite:///{airflow.database_file(cfg)}"
    assert first.get("api", "port") == str(cfg.airflow.port)
    keys = {k: first.get(*k) for k in (("core", "fernet_key"), ("api", "secret_key"), ("api_auth", "jwt_secret"))}
    assert all(len(v) >= 32 for v in keys.values())
    airflow.write_config(cfg)  # a restart keeps them: sessions and encrypted values stay valid
    again = configparser.RawConfigParser()
    again.read(path)
    assert {k: again.get(*k) for k in keys} == keys
    assert cfg.airflow.admin_password not in path.read_text()


def test_percent_in_a_path_is_escaped_for_airflow(tmp_path) -> None:
    env = isolated_env(tmp_path / "100%home")
    with applied_env(env) as cfg:
        text = airflow.write_config(cfg).read_text()
    assert "100%%home" in text and "100%home" not in text.replace("100%%home", "")


def test_password_file_holds_the_configured_admin(tmp_path) -> None:
    env = {**isolated_env(tmp_path / "home"), "LAKEHOUSE_AIRFLOW__ADMIN_PASSWORD": "s3cret-from-env",
           "LAKEHOUSE_AIRFLOW__ADMIN_USER": "ops"}
    with applied_env(env) as cfg:
        path = airflow.write_passwords(cfg)
        assert _mode(path) == 0o600 and json.loads(path.read_text()) == {"ops": "s3cret-from-env"}
        assert "ops:admin" in airflow.write_config(cfg).read_text()
        hint = airflow.login_hint(cfg)
    assert "LAKEHOUSE_AIRFLOW__ADMIN_PASSWORD" in hint and "s3cret-from-env" not in hint


@pytest.mark.parametrize("user", ["a:b", "a,b", "a b", ""])
def test_admin_user_that_would_break_the_user_list_is_refused(tmp_path, user) -> None:
    env = {**isolated_env(tmp_path / "home"), "LAKEHOUSE_AIRFLOW__ADMIN_USER": user}
    with applied_env(env) as cfg, pytest.raises(airflow.AirflowSetupError, match="admin_user"):
        airflow.write_passwords(cfg)


def test_tasks_inherit_services_mode_and_no_secret(cfg) -> None:
    env = airflow.env(cfg)
    assert env["LAKEHOUSE_GENERAL__MODE"] == "services"
    assert env["LAKEHOUSE_HOME"] == str(cfg.home) and env["AIRFLOW_HOME"] == str(airflow.home(cfg))
    assert env[airflow.ENV_CLI].endswith("/lakehouse") and env[airflow.ENV_SPEC] == str(airflow.spec_file(cfg))
    secrets = [cfg.airflow.admin_password, cfg.objectstore.secret_key, cfg.clickhouse.password,
               cfg.catalog.platform_secret]
    assert not any(s in v for s in secrets for v in env.values())
    for name in FOUR:
        argv = get_service(name).command(cfg)
        assert argv[0] == airflow.airflow_binary(cfg) and not any(s in " ".join(argv) for s in secrets)


def test_the_spec_file_is_the_resolved_graph(cfg) -> None:
    from lakehouse.pipeline.export import document

    path = airflow.write_spec(cfg)
    assert json.loads(path.read_text()) == document(cfg) and _mode(path) == 0o600


def test_airflow_group_starts_all_four_after_what_they_need(cfg) -> None:
    assert expand(["airflow"]) == FOUR
    assert expand(["airflow-scheduler"]) == ["airflow-scheduler"]
    order = [s.name for s in resolve(["airflow"])]
    assert order[-4:] == FOUR
    assert {"objectstore", "catalog", "clickhouse", "mlflow"} <= set(order[:-4])
    assert [get_service(n).listens for n in FOUR] == [True, False, False, False]


def test_status_says_where_the_password_is(lh_env, cfg) -> None:
    out = cli_ok(run_cli("status", env={**lh_env, "COLUMNS": "250"}))
    for name in FOUR:
        assert name in out
    assert f"log in as '{cfg.airflow.admin_user}'" in out
    assert str(cfg.home / "secrets.json") in out and "airflow.admin_password" in out
    assert cfg.airflow.admin_password not in out

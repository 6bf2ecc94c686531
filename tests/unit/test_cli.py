"""The CLI: every command answers --help; run/config show work; bad config exits 2 naming the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from lakehouse.cli import app
from tests.conftest import run_cli


def _all_command_paths() -> list[list[str]]:
    root = get_command(app)
    paths: list[list[str]] = []

    def walk(cmd, prefix):
        paths.append(prefix)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*prefix, name])

    walk(root, [])
    return paths


@pytest.mark.parametrize("path", _all_command_paths(), ids=lambda p: " ".join(p) or "lakehouse")
def test_every_command_has_help(path: list[str]) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_help_lists_foundation_commands() -> None:
    out = run_cli("--help").stdout
    for name in ("run", "up", "down", "status", "logs", "config"):
        assert name in out


def test_config_show_masks_secrets(lh_env) -> None:
    env = {**lh_env, "LAKEHOUSE_CLICKHOUSE__PASSWORD": "topsecret-value", "COLUMNS": "200"}
    res = run_cli("config", "show", env=env)
    assert res.returncode == 0, res.stderr
    assert "topsecret-value" not in res.stdout
    assert "LAKEHOUSE_CLICKHOUSE__PASSWORD" in res.stdout


def test_bad_config_exits_2_with_key(lh_env) -> None:
    res = run_cli("status", env={**lh_env, "LAKEHOUSE_CATALOG__PORT": "eighty", "COLUMNS": "200"})
    assert res.returncode == 2
    assert "catalog.port" in res.stderr and "LAKEHOUSE_CATALOG__PORT" in res.stderr


def test_logs_unknown_service(lh_env) -> None:
    res = run_cli("logs", "nosuch", env=lh_env)
    assert res.returncode == 1
    assert "unknown service" in res.stderr


def test_config_show_masks_passwords_in_urls_and_generated_secrets(lh_env) -> None:
    """Issue 11: `config show` printed catalog.db (a PostgreSQL URL) with its password."""
    env = {
        **lh_env, "COLUMNS": "400",
        "LAKEHOUSE_CATALOG__DB": "postgresql+psycopg://lake:pg-pass-4711@db.example:5432/catalog",
        "LAKEHOUSE_MLFLOW__TRACKING_URI": "https://ml:mlflow-pass-4712@mlflow.example",
    }
    res = run_cli("config", "show", env=env)
    assert res.returncode == 0, res.stderr
    assert "pg-pass-4711" not in res.stdout and "mlflow-pass-4712" not in res.stdout
    # the rest of the URL stays readable
    assert "postgresql+psycopg://lake:****@db.example:5432/catalog" in res.stdout
    assert "https://ml:****@mlflow.example" in res.stdout
    generated = json.loads((Path(lh_env["LAKEHOUSE_HOME"]) / "secrets.json").read_text())
    assert generated
    for key, value in generated.items():
        assert value not in res.stdout, f"{key} shown"


def test_config_error_never_prints_a_secret(lh_env, tmp_path) -> None:
    """Issue 11: a bad secret's value was printed in the configuration error."""
    cfg_file = tmp_path / "bad.toml"
    cfg_file.write_text("[clickhouse]\npassword = 860427119\n[catalog]\ndb = ['postgresql://u:pg-pass-4713@h/db']\n")
    env = {**lh_env, "LAKEHOUSE_CONFIG": str(cfg_file), "COLUMNS": "400",
           "LAKEHOUSE_CATALOG__CLIENTS": "etl:client-secret-4714"}
    res = run_cli("status", env=env)
    assert res.returncode == 2
    for part in ("clickhouse.password", "catalog.clients", "catalog.db", "LAKEHOUSE_CATALOG__CLIENTS", str(cfg_file)):
        assert part in res.stderr
    for secret in ("860427119", "client-secret-4714", "pg-pass-4713"):
        assert secret not in res.stderr + res.stdout


def test_hash_secret_reads_stdin_never_argv(lh_env) -> None:
    """Issue 11: `catalog hash-secret` took the secret as an argument (visible in ps)."""
    from catalog.auth import verify_secret

    lakehouse = str(Path(sys.executable).parent / "lakehouse")
    env = {**os.environ, **lh_env}
    res = subprocess.run([lakehouse, "catalog", "hash-secret"], input="s3cret-4715\n", capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    hashed = res.stdout.strip()
    assert verify_secret("s3cret-4715", hashed) and "s3cret-4715" not in hashed

    res = subprocess.run([lakehouse, "catalog", "hash-secret", "s3cret-4716"], input="", capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode != 0
    assert "stdin" in res.stderr
    assert "s3cret-4716" not in res.stdout + res.stderr

    res = subprocess.run([lakehouse, "catalog", "hash-secret"], input="", capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode != 0 and "empty" in res.stderr

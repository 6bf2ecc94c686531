"""The CLI: every command answers --help; run/config show work; bad config exits 2 naming the key."""

from __future__ import annotations

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

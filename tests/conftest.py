"""Shared fixtures: an isolated state dir and free loopback ports for every service."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse.config import Config, get_config, telemetry_off_env
from lakehouse.net import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

for _k, _v in telemetry_off_env().items():
    os.environ.setdefault(_k, _v)


def isolated_env(home: Path) -> dict[str, str]:
    """LAKEHOUSE_* variables giving a private state dir and free ports for every service."""
    env = {"LAKEHOUSE_HOME": str(home)}
    for key in (
        "OBJECTSTORE__PORT", "OBJECTSTORE__MASTER_PORT", "OBJECTSTORE__VOLUME_PORT",
        "OBJECTSTORE__FILER_PORT", "OBJECTSTORE__ADMIN_PORT", "CATALOG__PORT", "CLICKHOUSE__PORT",
        "MLFLOW__PORT", "AIRFLOW__PORT", "SUPERSET__PORT",
    ):
        env[f"LAKEHOUSE_{key}"] = str(_free_port_with_grpc())
    return env


def _free_port_with_grpc() -> int:
    """A free port p whose SeaweedFS gRPC companion p+10000 is free too."""
    from lakehouse.net import port_in_use

    for _ in range(200):
        p = free_port()
        if p + 10000 <= 65535 and not port_in_use("127.0.0.1", p + 10000):
            return p
    return free_port()


@pytest.fixture
def lh_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Isolated LAKEHOUSE_* environment, applied to os.environ for the test."""
    for k in list(os.environ):
        if k.startswith("LAKEHOUSE_"):
            monkeypatch.delenv(k)
    env = isolated_env(tmp_path / "home")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_config(reload=True)
    yield env
    get_config(reload=True)


@pytest.fixture
def cfg(lh_env: dict[str, str]) -> Config:
    """The configuration for the isolated environment."""
    return get_config(reload=True)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd: Path | None = None):
    """Run the real `lakehouse` console script; return the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [str(BIN / "lakehouse"), *args], capture_output=True, text=True, env=full_env, timeout=timeout,
        cwd=cwd or ROOT,
    )

"""Shared fixtures: an isolated state dir and free loopback ports for every service."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from lakehouse.config import Config, clear_config_cache, get_config, telemetry_off_env
from lakehouse.net import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

for _k, _v in telemetry_off_env().items():
    os.environ.setdefault(_k, _v)


def isolated_env(home: Path) -> dict[str, str]:
    """LAKEHOUSE_* variables giving a private state dir and free ports for every service."""
    env = {"LAKEHOUSE_HOME": str(home)}
    taken: set[int] = set()  # the chosen ports and their gRPC companions
    for key in (
        "OBJECTSTORE__PORT", "OBJECTSTORE__MASTER_PORT", "OBJECTSTORE__VOLUME_PORT",
        "OBJECTSTORE__FILER_PORT", "OBJECTSTORE__ADMIN_PORT", "CATALOG__PORT", "CLICKHOUSE__PORT",
        "MLFLOW__PORT", "AIRFLOW__PORT", "SUPERSET__PORT",
    ):
        port = _free_port_with_grpc(taken)
        taken.update((port, port + 10000))
        env[f"LAKEHOUSE_{key}"] = str(port)
    return env


def _free_port_with_grpc(taken: set[int]) -> int:
    """A free port p whose SeaweedFS gRPC companion p+10000 is free too, neither of them already ``taken``
    by another service's port or companion (SeaweedFS refuses a port that is another's gRPC port)."""
    from lakehouse.net import port_in_use

    for _ in range(200):
        p = free_port()
        if (p + 10000 <= 65535 and not {p, p + 10000} & taken
                and not port_in_use("127.0.0.1", p + 10000)):
            return p
    raise RuntimeError("no free port pair (p, p+10000) found on 127.0.0.1")


@contextlib.contextmanager
def applied_env(env: dict[str, str]) -> Iterator[Config]:
    """Replace every LAKEHOUSE_* variable of os.environ by ``env`` and yield the reloaded config; on exit
    restore os.environ and drop the cached config (reloading it here would create the default state dir
    of the repository; the next get_config() reads the restored environment)."""
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k in list(os.environ):
                if k.startswith("LAKEHOUSE_"):
                    mp.delenv(k)
            for k, v in env.items():
                mp.setenv(k, v)
            yield get_config(reload=True)
    finally:
        clear_config_cache()


@pytest.fixture
def lh_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Isolated LAKEHOUSE_* environment, applied to os.environ for the test."""
    env = isolated_env(tmp_path / "home")
    with applied_env(env):
        yield env


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


def cli_ok(proc: subprocess.CompletedProcess) -> str:
    """Assert a `run_cli` result exited 0 (showing the output tails when not); return its stdout."""
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def chdb_iceberg_query(tbl, select: str, where: str = "", timeout: float = 180) -> str:
    """``SELECT <select> FROM icebergLocal(...) [WHERE <where>]`` over the local pyiceberg table ``tbl`` at
    its current metadata file, run by chdb in a child process; return the CSV output (stripped)."""
    location = Path(unquote(urlparse(tbl.location()).path))
    metadata_file = Path(unquote(urlparse(tbl.metadata_location).path)).name
    query = (f"SELECT {select} FROM icebergLocal('{location}', "
             f"SETTINGS iceberg_metadata_file_path = 'metadata/{metadata_file}')")
    if where:
        query += f" WHERE {where}"
    code = "import sys, chdb; print(chdb.query(sys.argv[1], 'CSV'), end='')"
    out = subprocess.run([sys.executable, "-c", code, query], capture_output=True, text=True, timeout=timeout,
                         cwd=location.parent)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()

"""Helpers of the compose tests (unit/test_compose.py, integration/test_compose_snippets.py): the compose
file, .env.example, compose's variable interpolation, and the configuration the platform containers load."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import yaml

from lakehouse.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose"
COMPOSE_FILE = COMPOSE / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE / ".env.example"
PREFLIGHT = COMPOSE / "preflight.sh"
SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
PLACEHOLDER = "change-me"
#: ${NAME}, ${NAME:-default}, ${NAME:?message} in the compose file
VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?([-?])([^}]*))?\}")
#: the compose service that serves each section of the profile
SERVICE_OF_SECTION = {"objectstore": "minio", "catalog": "catalog", "clickhouse": "clickhouse", "mlflow": "mlflow",
                      "airflow": "airflow-api-server", "superset": "superset"}


def load_yaml() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip()
    return out


def real_env() -> dict[str, str]:
    """.env.example with every placeholder replaced as its comments say (hex secrets, a Fernet key)."""
    import base64

    out = {}
    for name, value in env_example().items():
        if value == PLACEHOLDER:
            value = (base64.urlsafe_b64encode(os.urandom(32)).decode() if name == "AIRFLOW_FERNET_KEY"
                     else secrets.token_hex(20))
        out[name] = value
    return out


def interpolate(value, env: dict[str, str]):
    """Compose's variable interpolation (${X}, ${X:-default}, ${X:?error}) over a parsed document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            name, op, arg = m.group(1), m.group(2), m.group(3)
            if env.get(name):
                return env[name]
            if op == "?":
                raise KeyError(f"{name}: {arg}")
            return arg if op == "-" else ""
        return VAR.sub(sub, value.replace("$$", "\0")).replace("\0", "$")
    return value


def compose_cfg(tmp_path: Path, env: dict[str, str] | None = None) -> Config:
    """The configuration the platform containers load: lakehouse.toml with the x-lakehouse-env variables."""
    lake_env = interpolate(load_yaml()["x-lakehouse-env"], env or real_env())
    lake_env["LAKEHOUSE_HOME"] = str(tmp_path / "state")  # /state in the containers
    return load_config(env=lake_env, config_file=ROOT / "lakehouse.toml")

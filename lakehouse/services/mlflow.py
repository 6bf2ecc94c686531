"""The MLflow tracking server (services mode): SQLite store in the state dir, artifacts in the object store.

``mlflow server`` with one worker, a SQLite backend store ``$LAKEHOUSE_HOME/mlflow/server.db`` and
proxied artifacts (``--artifacts-destination s3://<objectstore.bucket>/mlflow``): clients talk only
HTTP to the server, which writes to SeaweedFS with the platform's S3 credentials. Which store a
client uses is decided in one place, ``ml.tracking``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from lakehouse.config import Config
from lakehouse.services.registry import Service, register


def mlflow_binary() -> str:
    """Path of the ``mlflow`` console script of this environment."""
    beside = Path(sys.executable).parent / "mlflow"
    if beside.exists():
        return str(beside)
    found = shutil.which("mlflow")
    if not found:
        raise FileNotFoundError("the 'mlflow' command is not installed; run make setup")
    return found


def server_db(cfg: Config) -> Path:
    """The tracking server's SQLite database (separate from the embedded-mode store)."""
    return cfg.path("mlflow", create=True) / "server.db"


def artifacts_destination(cfg: Config) -> str:
    """Where the server keeps artifacts: the ``mlflow/`` prefix of the platform bucket."""
    return f"s3://{cfg.objectstore.bucket}/mlflow"


def _command(cfg: Config) -> list[str]:
    m = cfg.mlflow
    return [
        mlflow_binary(), "server",
        "--host", m.host, "--port", str(m.port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{server_db(cfg)}",
        "--serve-artifacts", "--artifacts-destination", artifacts_destination(cfg),
    ]


def _env(cfg: Config) -> dict[str, str]:
    o = cfg.objectstore
    return {
        **cfg.telemetry_env,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_S3_ENDPOINT_URL": cfg.s3_endpoint,
        "AWS_ACCESS_KEY_ID": o.access_key,
        "AWS_SECRET_ACCESS_KEY": o.secret_key,
        "AWS_DEFAULT_REGION": o.region,
    }


MLFLOW = register(
    Service(
        name="mlflow",
        section="mlflow",
        command=_command,
        env=_env,
        health_path="/health",
        depends_on=("objectstore",),
        start_timeout=120.0,
        description="MLflow tracking server and model registry (artifacts proxied to the object store)",
        order=40,
    )
)

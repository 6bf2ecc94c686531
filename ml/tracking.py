"""Where MLflow tracking and the model registry live, decided from the configuration only.

- ``[mlflow] tracking_uri`` set: that server (e.g. compose's MLflow), artifacts as it serves them;
- ``services`` mode: the supervisor's MLflow server at ``[mlflow] host:port`` (artifacts proxied by
  the server to ``s3://<objectstore.bucket>/mlflow``);
- ``embedded`` mode (default): a SQLite store ``$LAKEHOUSE_HOME/mlflow/mlflow.db`` with artifacts in
  ``$LAKEHOUSE_HOME/mlflow/artifacts`` -- no server needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lakehouse.config import Config, telemetry_off_env
from ml.errors import MLError


@dataclass(frozen=True)
class TrackingTarget:
    """The tracking/registry URI and, for the local store, the artifact root of new experiments."""

    tracking_uri: str
    artifact_root: str | None  # None: the server decides (proxied artifacts)
    kind: str  # "local" | "server"


def sqlite_db(cfg: Config) -> Path:
    """The local (embedded-mode) MLflow SQLite database file."""
    return cfg.path("mlflow", create=True) / "mlflow.db"


def tracking_target(cfg: Config) -> TrackingTarget:
    """The MLflow tracking target for this configuration (see module docstring)."""
    if cfg.mlflow.tracking_uri:
        return TrackingTarget(cfg.mlflow.tracking_uri.rstrip("/"), None, "server")
    if cfg.mode == "services":
        return TrackingTarget(cfg.mlflow.url, None, "server")
    artifacts = cfg.path("mlflow", "artifacts", create=True)
    return TrackingTarget(f"sqlite:///{sqlite_db(cfg)}", artifacts.as_uri(), "local")


def configure(cfg: Config) -> TrackingTarget:
    """Point the MLflow client (tracking and registry) at the configured store; telemetry off."""
    import mlflow

    for k, v in telemetry_off_env().items():
        os.environ.setdefault(k, v)
    target = tracking_target(cfg)
    if target.kind == "server":
        from lakehouse.net import http_ok

        # read by MLflow's REST and artifact clients on every request: the configured value, always
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(cfg.mlflow.request_retries)

        if not http_ok(f"{target.tracking_uri}/health"):
            raise MLError(
                f"the MLflow server at {target.tracking_uri} is not reachable; start it with "
                "`lakehouse up mlflow` (services mode) or check [mlflow] tracking_uri"
            )
    mlflow.set_tracking_uri(target.tracking_uri)
    mlflow.set_registry_uri(target.tracking_uri)
    return target


def ensure_experiment(cfg: Config, target: TrackingTarget) -> str:
    """The id of experiment ``[mlflow] experiment``, created (with the local artifact root) if missing."""
    import mlflow

    exp = mlflow.get_experiment_by_name(cfg.mlflow.experiment)
    if exp is not None:
        return exp.experiment_id
    return mlflow.create_experiment(cfg.mlflow.experiment, artifact_location=target.artifact_root)

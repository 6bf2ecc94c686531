"""Which of the services the lake depends on do not answer, to explain a failed stage.

A stage that loses the object store, the catalog or the MLflow server in the middle of its work fails
deep inside a client library (pyarrow's S3 filesystem, DuckDB's httpfs, pyiceberg, urllib) with a
message that names neither the service nor its URL, or with a bare connection error. The runner asks
here after a failure only (a healthy run pays nothing) and puts the unreachable services, their URLs and
the command that starts them in front of the stage's own error (``StageFailed.context``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse.net import http_ok

if TYPE_CHECKING:
    from lakehouse.config import Config


def unreachable(cfg: Config, catalog_uri: str | None = None, mlflow: bool = True) -> list[str]:
    """One line per service the lake needs that does not answer its health check: the object store when
    the warehouse is on S3, the catalog at ``catalog_uri``, and (``mlflow``: for a stage that uses it) the
    MLflow server when tracking goes to one."""
    down: list[str] = []
    if cfg.warehouse_uri.startswith("s3://") and not http_ok(f"{cfg.s3_endpoint.rstrip('/')}/healthz"):
        down.append(f"the object store (S3) at {cfg.s3_endpoint} is not reachable (warehouse {cfg.warehouse_uri}; "
                    "`lakehouse up objectstore` starts it)")
    if catalog_uri and not http_ok(f"{catalog_uri.rstrip('/')}/healthz"):
        down.append(f"the Iceberg catalog at {catalog_uri} is not reachable (`lakehouse up catalog` starts it)")
    server = cfg.mlflow.tracking_uri or (cfg.mlflow.url if cfg.mode == "services" else "")  # as ml.tracking
    if mlflow and server and not http_ok(f"{server.rstrip('/')}/health"):
        down.append(f"the MLflow server at {server.rstrip('/')} is not reachable (`lakehouse up mlflow` starts it)")
    return down

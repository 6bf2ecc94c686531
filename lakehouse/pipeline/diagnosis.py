"""What most likely made a stage fail, said in words: a service the lake needs that no longer answers, or
a state dir that is full or read-only.

A stage that loses the object store, the catalog or the MLflow server in the middle of its work fails
deep inside a client library (pyarrow's S3 filesystem, DuckDB's httpfs, pyiceberg, urllib) with a
message that names neither the service nor its URL, or with a bare connection error. The runner asks
here after a failure only (a healthy run pays nothing) and puts the unreachable services, their URLs and
the command that starts them in front of the stage's own error (``StageFailed.context``). Likewise a
full or read-only disk reaches the stage as an ``OSError`` deep in the chain of exceptions, often without
the path (pyarrow: "Error writing bytes to file"): the path and the cause are named here.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
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


#: errno values that mean "the disk", not the data: the message names the path and the free space.
DISK_ERRORS = {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system"}


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception behind it (``__cause__``, ``__context__``, and the wrapped exception of
    dlt's ``PipelineStepFailed`` and of our ``StageFailed``), each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for nxt in (e.__cause__, e.__context__, getattr(e, "exception", None), getattr(e, "cause", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def disk_problem(cfg: Config, exc: BaseException) -> str:
    """For a failure caused by a full or read-only file system: which path, the cause and the free space
    ("" otherwise)."""
    for e in causes(exc):
        if isinstance(e, OSError) and e.errno in DISK_ERRORS:
            path = e.filename or str(cfg.home)
            where = _existing_parent(str(path))
            free = ""
            with contextlib.suppress(OSError):
                free = f", {shutil.disk_usage(where).free / 2**20:.1f} MiB free there"
            return (f"{DISK_ERRORS[e.errno]} on the file system of {path} (state dir {cfg.home}{free}): "
                    f"[Errno {e.errno}] {os.strerror(e.errno)}")
    return ""


#: Free bytes below which a failing stage's state dir counts as full.
NEARLY_FULL = 1 << 20


def state_dir_problem(cfg: Config) -> str:
    """For a failure whose chain holds no ``OSError`` (a service that writes to the state dir answered
    with an error, e.g. the embedded catalog's database could not grow): a state dir that is read-only
    or has less than :data:`NEARLY_FULL` bytes free, said like :func:`disk_problem` ("" otherwise)."""
    where = _existing_parent(str(cfg.home))
    try:
        st = os.statvfs(where)
    except OSError:
        return ""
    if st.f_flag & os.ST_RDONLY:
        code = errno.EROFS
    elif st.f_bavail * st.f_frsize < NEARLY_FULL:
        code = errno.ENOSPC
    else:
        return ""
    free = st.f_bavail * st.f_frsize / 2**20
    return (f"{DISK_ERRORS[code]} on the file system of {cfg.home} (state dir, {free:.1f} MiB free): "
            f"[Errno {code}] {os.strerror(code)}")


def _existing_parent(path: str) -> str:
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path or "."

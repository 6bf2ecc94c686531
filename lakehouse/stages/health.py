"""Stage ``health``: the configuration loads and the state dir and the warehouse are writable.

It runs first on every run (it writes nothing, so it has no fingerprint), and every other stage
waits for it: nothing runs against a broken configuration or storage.
"""

from __future__ import annotations

import os
import tempfile
import uuid

from rich.console import Console

from lakehouse.config import Config
from lakehouse.pipeline.stage import StageContext


def run_stage(ctx: StageContext) -> str:
    """The stage function: :func:`check_health` on the run's configuration."""
    return check_health(ctx.cfg, ctx.console)


def check_health(cfg: Config, console: Console) -> str:
    """Check that the state dir and the warehouse are writable; return a one-line description."""
    cfg.home.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cfg.home, prefix=".probe-"):
        pass
    warehouse = cfg.warehouse_uri
    if warehouse.startswith("file://"):
        from urllib.parse import urlparse

        root = urlparse(warehouse).path
        os.makedirs(root, exist_ok=True)
        probe = os.path.join(root, f".probe-{uuid.uuid4().hex}")
        with open(probe, "wb") as f:
            f.write(b"ok")
        os.remove(probe)
    elif warehouse.startswith("s3://"):
        from lakehouse.services.objectstore import s3_client

        bucket, _, prefix = warehouse[5:].partition("/")
        key = f"{prefix.rstrip('/')}/.probe-{uuid.uuid4().hex}".lstrip("/")
        client = s3_client(cfg)
        try:
            client.put_object(Bucket=bucket, Key=key, Body=b"ok")
            client.delete_object(Bucket=bucket, Key=key)
        except Exception as exc:
            raise RuntimeError(
                f"warehouse {warehouse} is not writable at {cfg.s3_endpoint}: {exc} "
                "(is the object store running? `lakehouse up objectstore`)"
            ) from exc
    else:
        raise RuntimeError(f"catalog.warehouse = {warehouse!r}: expected a file:// or s3:// URI")
    console.print(f"mode [bold]{cfg.mode}[/], state dir {cfg.home}, warehouse {warehouse}: writable")
    return f"{cfg.mode} mode, warehouse {warehouse}"

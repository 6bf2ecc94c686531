"""The supervisor against the real SeaweedFS object store."""

from __future__ import annotations

import socket

import psutil
import pytest

from lakehouse.config import get_config
from lakehouse.services.objectstore import s3_client
from lakehouse.services.registry import get_service
from lakehouse.services.supervisor import ServiceError, down, status, up
from tests.conftest import run_cli


def _weed_pids(home) -> list[int]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "weed" in cmd and str(home) in cmd:
            out.append(p.pid)
    return out


def test_objectstore_up_status_persist_down(lh_env, cfg) -> None:
    svc = get_service("objectstore")
    try:
        res = run_cli("up", "objectstore", env=lh_env)
        assert res.returncode == 0, res.stdout + res.stderr
        st = status(cfg, svc)
        assert st.state == "running" and st.healthy and st.pid
        res = run_cli("status", env={**lh_env, "COLUMNS": "250"})
        assert "objectstore" in res.stdout and "running" in res.stdout

        client = s3_client(cfg)
        client.put_object(Bucket=cfg.objectstore.bucket, Key="probe/hello.txt", Body=b"survives restarts")

        # idempotent: a second up leaves the healthy service alone
        res = run_cli("up", "objectstore", env=lh_env)
        assert "already running" in res.stdout
        assert status(cfg, svc).pid == st.pid

        res = run_cli("down", env=lh_env)
        assert res.returncode == 0
        assert status(cfg, svc).state == "stopped"
        assert _weed_pids(cfg.home) == []

        res = run_cli("up", env=lh_env)
        assert res.returncode == 0, res.stderr
        body = s3_client(cfg).get_object(Bucket=cfg.objectstore.bucket, Key="probe/hello.txt")["Body"].read()
        assert body == b"survives restarts"

        # wrong credentials are refused: the server really checks them
        bad = s3_client(cfg)
        bad._request_signer._credentials.secret_key = "wrong"  # noqa: SLF001
        with pytest.raises(Exception, match="Signature|Denied|403"):
            bad.list_objects_v2(Bucket=cfg.objectstore.bucket)
    finally:
        down(get_config(reload=True))
    assert _weed_pids(cfg.home) == []


def test_stale_pid_file_is_cleaned(lh_env, cfg) -> None:
    import json

    (cfg.run_dir / "objectstore.json").write_text(json.dumps({"pid": 999999, "port": 1}))
    assert status(cfg, get_service("objectstore")).state == "stale"
    try:
        msgs: list[str] = []
        up(cfg, ["objectstore"], echo=msgs.append)
        assert any("stale" in m for m in msgs)
        assert status(cfg, get_service("objectstore")).state == "running"
    finally:
        down(cfg)


def test_port_taken_gives_clear_error(lh_env, cfg) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", cfg.objectstore.port))
    blocker.listen(1)
    try:
        with pytest.raises(ServiceError, match=rf"port {cfg.objectstore.port} .* already in use"):
            up(cfg, ["objectstore"], echo=lambda m: None)
        res = run_cli("up", "objectstore", env=lh_env)
        assert res.returncode == 1
        assert "already in use" in res.stderr
    finally:
        blocker.close()
    assert status(cfg, get_service("objectstore")).state == "stopped"


def test_unknown_service(lh_env) -> None:
    res = run_cli("up", "nosuch", env=lh_env)
    assert res.returncode == 1 and "unknown service" in res.stderr

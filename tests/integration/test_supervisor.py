"""The supervisor against the real SeaweedFS object store."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import textwrap
import time
from dataclasses import dataclass

import psutil
import pytest

from lakehouse.config import get_config
from lakehouse.net import port_in_use
from lakehouse.services.objectstore import s3_client
from lakehouse.services.registry import Service, get_service
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


# A real tiny service whose leader exits while its children live on: the leader starts an HTTP server
# (the service's port), waits for the test's go-ahead (after `up` has returned), starts a second child
# in a session of its own (it leaves the process group), and exits.
LEADER = textwrap.dedent("""
    import subprocess, sys, time
    from pathlib import Path
    port, run = sys.argv[1], Path(sys.argv[2])
    server = subprocess.Popen([sys.executable, "-m", "http.server", port, "--bind", "127.0.0.1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (run / "server.pid").write_text(str(server.pid))
    while not (run / "go").exists():
        time.sleep(0.05)
    late = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    (run / "late.pid").write_text(str(late.pid))
""")


@dataclass(frozen=True)
class _LoopbackService(Service):
    """A service on a fixed loopback port (the built-in ones take theirs from a config section)."""

    fixed_port: int = 0

    def host(self, cfg) -> str:
        return "127.0.0.1"

    def port(self, cfg) -> int:
        return self.fixed_port


def _gone(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_file(path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.05)
    return path.read_text()


@pytest.fixture
def leaky_service(lh_env, cfg, tmp_path):
    from lakehouse.net import free_port
    from lakehouse.services.registry import _REGISTRY, register

    run = tmp_path / "leaky"
    run.mkdir()
    port = free_port()
    svc = register(_LoopbackService(
        name="leaky-test", section="general", health_path="/", start_timeout=60, stop_grace=5, fixed_port=port,
        command=lambda c: [sys.executable, "-c", LEADER, str(port), str(run)],
    ))
    spawned: list[psutil.Process] = []
    try:
        yield svc, run, spawned
    finally:
        for p in spawned:
            with contextlib.suppress(psutil.Error):
                p.kill()
        _REGISTRY.pop(svc.name, None)
        (cfg.run_dir / f"{svc.name}.json").unlink(missing_ok=True)


def test_down_stops_the_children_of_an_exited_leader(cfg, leaky_service) -> None:
    """Issue 11: with the group leader gone, `down` called the service stale and left its children
    running (MLflow's uvicorn kept port 5000)."""
    svc, run, spawned = leaky_service
    [st] = up(cfg, [svc.name], echo=lambda m: None)
    assert st.state == "running"
    leader = psutil.Process(st.pid)
    server = psutil.Process(int(_wait_file(run / "server.pid")))
    spawned.append(server)
    (run / "go").touch()
    late = psutil.Process(int(_wait_file(run / "late.pid")))
    spawned.append(late)
    leader.wait(timeout=60)
    assert status(cfg, svc).state == "stale"
    assert port_in_use("127.0.0.1", svc.fixed_port) and not _gone(server) and not _gone(late)

    msgs: list[str] = []
    down(cfg, [svc.name], echo=msgs.append)
    assert _gone(server) and _gone(late), msgs
    assert not port_in_use("127.0.0.1", svc.fixed_port)
    assert any("leftover" in m and str(server.pid) in m and str(late.pid) in m for m in msgs), msgs
    assert status(cfg, svc).state == "stopped"


def test_down_names_the_pid_still_holding_the_port(cfg, leaky_service) -> None:
    """After `down`, the service's port is free, or `down` says which process holds it."""
    svc, _, _ = leaky_service
    (cfg.run_dir / f"{svc.name}.json").write_text(json.dumps({"pid": 999999, "port": svc.fixed_port}))
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", svc.fixed_port))
    blocker.listen(1)
    try:
        msgs: list[str] = []
        down(cfg, [svc.name], echo=msgs.append)
    finally:
        blocker.close()
    assert any(f"port {svc.fixed_port}" in m and f"pid {os.getpid()}" in m for m in msgs), msgs

"""The local service supervisor: start, check and stop background services (no Docker here).

Each running service has ``$LAKEHOUSE_HOME/run/<name>.json`` (pid, port, url, command, start
time) and logs to ``$LAKEHOUSE_HOME/logs/<name>.log``. Services are stopped only by their
recorded pids: SIGTERM to the process group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from lakehouse.config import Config
from lakehouse.net import port_in_use
from lakehouse.services.registry import Service, all_services, expand, get_service


class ServiceError(RuntimeError):
    """A service could not be started or stopped; the message names it and its log file."""


@dataclass
class ServiceStatus:
    name: str
    state: str  # running | unhealthy | stopped | stale
    pid: int | None
    port: int
    url: str
    healthy: bool
    log: Path


def _state_file(cfg: Config, name: str) -> Path:
    return cfg.run_dir / f"{name}.json"


def log_file(cfg: Config, name: str) -> Path:
    """The log file of service ``name``."""
    return cfg.logs_dir / f"{name}.log"


def _read_state(cfg: Config, name: str) -> dict | None:
    p = _state_file(cfg, name)
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _process_matches(state: dict) -> bool:
    """True when the recorded pid is alive and is the process we started (not a reused pid)."""
    pid = state.get("pid")
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = state.get("create_time")
        return created is None or abs(proc.create_time() - created) < 1.0
    except psutil.Error:
        return False


def resolve(names: list[str] | None) -> list[Service]:
    """The named services plus their dependencies, in start order."""
    if not names:
        return all_services()
    wanted: dict[str, Service] = {}

    def add(n: str) -> None:
        svc = get_service(n)
        for dep in svc.depends_on:
            add(dep)
        wanted[svc.name] = svc

    for n in expand(names):
        add(n)
    return sorted(wanted.values(), key=lambda s: (s.order, s.name))


def status(cfg: Config, svc: Service) -> ServiceStatus:
    """Current state of one service (checks the pid and the health URL)."""
    state = _read_state(cfg, svc.name)
    port = svc.port(cfg)
    url = svc.url(cfg)
    if state is None:
        return ServiceStatus(svc.name, "stopped", None, port, url, False, log_file(cfg, svc.name))
    if not _process_matches(state):
        return ServiceStatus(svc.name, "stale", state.get("pid"), port, url, False, log_file(cfg, svc.name))
    healthy = svc.healthy(cfg)
    return ServiceStatus(
        svc.name, "running" if healthy else "unhealthy", state["pid"], state.get("port", port), url,
        healthy, log_file(cfg, svc.name),
    )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def start(cfg: Config, svc: Service, echo=print) -> ServiceStatus:
    """Start one service unless it is already healthy; wait for its health check."""
    current = status(cfg, svc)
    if current.state == "running":
        echo(f"{svc.name}: already running (pid {current.pid}, {current.url})")
        return current
    if current.state == "unhealthy":
        raise ServiceError(
            f"{svc.name}: process {current.pid} is running but not healthy at {svc.health_url(cfg)}; "
            f"see {current.log} or run `lakehouse down {svc.name}`"
        )
    if current.state == "stale":
        echo(f"{svc.name}: removing stale pid file (pid {current.pid} is gone)")
        _state_file(cfg, svc.name).unlink(missing_ok=True)

    host = svc.host(cfg)
    for port in [*([svc.port(cfg)] if svc.listens else []), *svc.extra_ports(cfg)]:
        if port_in_use(host, port):
            raise ServiceError(
                f"{svc.name}: port {port} on {host} is already in use by another process; "
                f"stop it or choose another port in [{svc.section}] (e.g. LAKEHOUSE_{svc.section.upper()}__PORT)"
            )
    if svc.prepare:
        svc.prepare(cfg)
    cmd = svc.command(cfg)
    env = {**os.environ, **cfg.telemetry_env, **svc.env(cfg)}
    log = log_file(cfg, svc.name)
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=cfg.home, env=env, start_new_session=True,
        )
    state = {
        "name": svc.name, "pid": proc.pid, "port": svc.port(cfg), "url": svc.url(cfg),
        "command": cmd, "started_at": time.time(), "create_time": psutil.Process(proc.pid).create_time(),
    }
    _state_file(cfg, svc.name).write_text(json.dumps(state, indent=2))
    ok = svc.wait_healthy(cfg, svc.start_timeout, alive=lambda: proc.poll() is None)
    if not ok:
        exited = proc.poll()
        _kill_group(proc.pid, svc.stop_grace)
        _state_file(cfg, svc.name).unlink(missing_ok=True)
        why = f"exited with code {exited}" if exited is not None else f"not healthy after {svc.start_timeout:.0f}s"
        raise ServiceError(
            f"{svc.name}: failed to start ({why}) at {svc.health_url(cfg)}; log: {log}\n{_tail(log)}"
        )
    if svc.after_start:
        try:
            svc.after_start(cfg)
        except Exception as exc:
            raise ServiceError(f"{svc.name}: started but its setup step failed: {exc}; log: {log}") from exc
    echo(f"{svc.name}: started (pid {proc.pid}, {svc.url(cfg) + ', ' if svc.listens else ''}log {log})")
    return status(cfg, svc)


def _kill_group(pid: int, grace: float) -> None:
    """SIGTERM the process group of ``pid``, then SIGKILL whatever is left after ``grace`` seconds."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    try:
        members = [p for p in psutil.process_iter() if _pgid(p) == pgid]
    except psutil.Error:
        members = []
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    _, alive = psutil.wait_procs(members or [psutil.Process(pid)], timeout=grace)
    if alive:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)


def _pgid(p: psutil.Process) -> int | None:
    try:
        return os.getpgid(p.pid)
    except (ProcessLookupError, PermissionError):
        return None


def stop(cfg: Config, svc: Service, echo=print) -> None:
    """Stop one service by its recorded pid (graceful, then forced)."""
    state = _read_state(cfg, svc.name)
    if state is None:
        echo(f"{svc.name}: not running")
        return
    if _process_matches(state):
        _kill_group(state["pid"], svc.stop_grace)
        echo(f"{svc.name}: stopped (pid {state['pid']})")
    else:
        echo(f"{svc.name}: removed stale pid file")
    _state_file(cfg, svc.name).unlink(missing_ok=True)


def up(cfg: Config, names: list[str] | None = None, echo=print) -> list[ServiceStatus]:
    """Start the named services (all by default) and their dependencies."""
    return [start(cfg, svc, echo) for svc in resolve(names)]


def down(cfg: Config, names: list[str] | None = None, echo=print) -> None:
    """Stop the named services (all by default) in reverse start order."""
    targets = [get_service(n) for n in expand(names)] if names else all_services()
    for svc in reversed(targets):
        stop(cfg, svc, echo)


def is_running(cfg: Config, name: str) -> bool:
    """True when service ``name`` was started by the supervisor and is healthy."""
    return status(cfg, get_service(name)).state == "running"

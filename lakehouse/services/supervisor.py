"""The local service supervisor: start, check and stop background services (no Docker here).

Each running service has ``$LAKEHOUSE_HOME/run/<name>.json`` (pid, port, url, command, start
time, process group, run id, descendants) and logs to ``$LAKEHOUSE_HOME/logs/<name>.log``.

Stopping must reach every process the service started, also after its leader exited (MLflow's
``mlflow server`` leader may die while its uvicorn child keeps the port). A service's processes are
found in three ways, each safe against pid reuse: the leader and the descendants recorded once it
was healthy (pid and creation time); every process whose environment carries the service's run id
(``LAKEHOUSE_SERVICE_RUN``, set at start and inherited by every descendant, also one that left the
process group or was re-parented); and, while the leader still lives, the members of its process
group and its children. They get SIGTERM, then SIGKILL after a grace period. Afterwards ``down``
checks the service's ports and names the pid still holding one.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil

from lakehouse.config import Config
from lakehouse.net import port_in_use
from lakehouse.services.registry import Service, all_services, expand, get_service

#: Environment variable marking every process of one service start (value: the run id).
RUN_ENV = "LAKEHOUSE_SERVICE_RUN"


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


def _write_state(cfg: Config, name: str, state: dict) -> None:
    _state_file(cfg, name).write_text(json.dumps(state, indent=2))


def _read_state(cfg: Config, name: str) -> dict | None:
    p = _state_file(cfg, name)
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _same_process(pid: int | None, create_time: float | None) -> psutil.Process | None:
    """The live process ``pid`` if it is the one created at ``create_time`` (not a reused pid)."""
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if create_time is not None and abs(proc.create_time() - create_time) >= 1.0:
            return None
        return proc
    except psutil.Error:
        return None


def _process_matches(state: dict) -> bool:
    """True when the recorded pid is alive and is the process we started (not a reused pid)."""
    return _same_process(state.get("pid"), state.get("create_time")) is not None


def _record(proc: psutil.Process) -> dict:
    return {"pid": proc.pid, "create_time": proc.create_time()}


def service_processes(state: dict) -> list[psutil.Process]:
    """Every live process of the service start recorded in ``state`` (see the module docstring)."""
    found: dict[int, psutil.Process] = {}
    leader = _same_process(state.get("pid"), state.get("create_time"))
    if leader is not None:
        found[leader.pid] = leader
    for rec in state.get("descendants", []):
        p = _same_process(rec.get("pid"), rec.get("create_time"))
        if p is not None:
            found[p.pid] = p
    run_id = state.get("run_id")
    pgid = state.get("pgid", state.get("pid"))
    if run_id or leader is not None:
        for p in psutil.process_iter(["environ"]):
            marked = bool(run_id) and (p.info.get("environ") or {}).get(RUN_ENV) == run_id
            in_group = leader is not None and _pgid(p) == pgid  # the group id is ours while the leader lives
            if marked or in_group:
                found.setdefault(p.pid, p)
    for p in list(found.values()):
        with contextlib.suppress(psutil.Error):
            for child in p.children(recursive=True):
                found.setdefault(child.pid, child)
    found.pop(os.getpid(), None)  # never this process (a command run from inside a service)
    return list(found.values())


def _terminate(procs: list[psutil.Process], grace: float) -> None:
    """SIGTERM ``procs``, then SIGKILL whatever is left after ``grace`` seconds."""
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    alive = _wait_gone(procs, grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    _wait_gone(alive, 5)


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until ``procs`` have exited (a zombie counts as exited: a re-parented process is reaped by
    whatever init the machine has, maybe late); return those still running."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for p in procs:
            with contextlib.suppress(psutil.Error):
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
                    continue
                p.wait(timeout=0)  # reaps it when it is a child of this process
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _port_holder(host: str, port: int) -> str:
    """``pid N (name)`` of the process listening on ``port``, or why it is unknown."""
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.Error:
        conns = []
    for c in conns:
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid:
            with contextlib.suppress(psutil.Error):
                return f"pid {c.pid} ({psutil.Process(c.pid).name()})"
            return f"pid {c.pid}"
    return "a process this user cannot see"


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
        leftovers = service_processes(_read_state(cfg, svc.name) or {})
        if leftovers:
            echo(f"{svc.name}: leader pid {current.pid} is gone; stopping its leftover processes "
                 f"{sorted(p.pid for p in leftovers)}")
            _terminate(leftovers, svc.stop_grace)
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
    run_id = f"{svc.name}-{uuid.uuid4().hex}"
    env = {**os.environ, **cfg.telemetry_env, **svc.env(cfg), RUN_ENV: run_id}
    log = log_file(cfg, svc.name)
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=cfg.home, env=env, start_new_session=True,
        )
    state = {
        "name": svc.name, "pid": proc.pid, "pgid": proc.pid, "run_id": run_id, "port": svc.port(cfg),
        "url": svc.url(cfg), "command": cmd, "started_at": time.time(),
        "create_time": psutil.Process(proc.pid).create_time(), "descendants": [],
    }
    _write_state(cfg, svc.name, state)
    ok = svc.wait_healthy(cfg, svc.start_timeout, alive=lambda: proc.poll() is None)
    if not ok:
        exited = proc.poll()
        _terminate(service_processes(state), svc.stop_grace)
        _state_file(cfg, svc.name).unlink(missing_ok=True)
        why = f"exited with code {exited}" if exited is not None else f"not healthy after {svc.start_timeout:.0f}s"
        raise ServiceError(
            f"{svc.name}: failed to start ({why}) at {svc.health_url(cfg)}; log: {log}\n{_tail(log)}"
        )
    state["descendants"] = [_record(p) for p in service_processes(state) if p.pid != proc.pid]
    _write_state(cfg, svc.name, state)
    if svc.after_start:
        try:
            svc.after_start(cfg)
        except Exception as exc:
            raise ServiceError(f"{svc.name}: started but its setup step failed: {exc}; log: {log}") from exc
    echo(f"{svc.name}: started (pid {proc.pid}, {svc.url(cfg) + ', ' if svc.listens else ''}log {log})")
    return status(cfg, svc)


def _pgid(p: psutil.Process) -> int | None:
    try:
        return os.getpgid(p.pid)
    except (ProcessLookupError, PermissionError):
        return None


def stop(cfg: Config, svc: Service, echo=print) -> None:
    """Stop every process of one service (graceful, then forced), also when its leader has exited;
    then say which pid holds a port of the service, if one is still held."""
    state = _read_state(cfg, svc.name)
    if state is None:
        echo(f"{svc.name}: not running")
        return
    procs = service_processes(state)
    leader_alive = _process_matches(state)
    if procs:
        _terminate(procs, svc.stop_grace)
        pids = sorted(p.pid for p in procs)
        if leader_alive:
            others = [p for p in pids if p != state["pid"]]
            echo(f"{svc.name}: stopped (pid {state['pid']}" + (f" and its processes {others}" if others else "") + ")")
        else:
            echo(f"{svc.name}: leader pid {state.get('pid')} had exited; stopped its leftover processes {pids}")
    else:
        echo(f"{svc.name}: removed stale pid file")
    _state_file(cfg, svc.name).unlink(missing_ok=True)
    host = svc.host(cfg)
    for port in [svc.port(cfg), *svc.extra_ports(cfg)]:
        if port_in_use(host, port):
            echo(f"{svc.name}: port {port} on {host} is still in use by {_port_holder(host, port)}")


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

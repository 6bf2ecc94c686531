"""Running the ClickHouse front and reaching ClickHouse from the rest of the platform.

- :func:`serve` — the long-running front (``lakehouse clickhouse serve``, the ``clickhouse`` service);
- :func:`endpoint` — a context manager yielding the URL of a front to talk to: the running service
  when there is one, otherwise a temporary front on a free loopback port (a subprocess by default,
  so the chdb data path is not left open in the caller's process);
- :func:`http_client` / :func:`embedded_client` — clickhouse-connect clients over HTTP or on chdb
  in-process (``chdb:///<path>``; only when no other process holds the data path).

Only one process may open ``cfg.chdb_path``: the service, or one temporary front, or an embedded client.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from lakehouse.config import Config
from lakehouse.net import free_port, http_ok, wait_http
from lakehouse.services.registry import lakehouse_cli

log = logging.getLogger("lakehouse.clickhouse")
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Endpoint:
    """Where a ClickHouse HTTP front answers and how to log in."""

    host: str
    port: int
    user: str
    password: str
    database: str
    temporary: bool = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def files_root(cfg: Config) -> Path:
    """The directory chdb may read files from (icebergLocal): the local warehouse, else the state dir.

    chdb's ``user_files_path`` is the process working directory, so the front runs there.
    """
    uri = cfg.warehouse_uri
    if uri.startswith("file://"):
        root = Path(unquote(urlparse(uri).path))
        root.mkdir(parents=True, exist_ok=True)
        return root
    return cfg.home


def build_server(cfg: Config, host: str | None = None, port: int | None = None):
    """A :class:`FrontServer` on ``cfg.chdb_path`` (opens the engine; raises if the path is locked)."""
    from lakehouse.clickhouse.engine import Engine
    from lakehouse.clickhouse.server import FrontServer

    ch = cfg.clickhouse
    engine = Engine(cfg.chdb_path, databases=(ch.database,))
    try:
        return FrontServer((host or ch.host, ch.port if port is None else port), engine, ch.user, ch.password)
    except Exception:
        engine.close()
        raise


def serve(cfg: Config, host: str | None = None, port: int | None = None, echo=print) -> None:
    """Serve the front until SIGTERM/SIGINT (runs in the files root, see :func:`files_root`)."""
    os.chdir(files_root(cfg))
    server = build_server(cfg, host, port)
    stop = threading.Event()

    def _stop(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    echo(
        f"ClickHouse front (chdb {server.engine.version}) on {server.url}, data {server.engine.path}, "
        f"files root {os.getcwd()}, database {cfg.clickhouse.database}"
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        server.engine.close()
        echo("ClickHouse front stopped")


def watch_parent(pid: int) -> None:
    """SIGTERM this process once ``pid`` (the parent that started it) exits and we get re-parented, so an
    orphaned temporary front never keeps the chdb data path locked."""

    def watch() -> None:
        while os.getppid() == pid:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def service_running(cfg: Config) -> bool:
    """True when the supervisor's ``clickhouse`` service is up and healthy."""
    from lakehouse.services.supervisor import is_running

    try:
        return is_running(cfg, "clickhouse")
    except ValueError:
        return False


def front_env(cfg: Config) -> dict[str, str]:
    """Environment giving a child front the same state dir, credentials, database and warehouse as ``cfg``."""
    ch = cfg.clickhouse
    env = {
        "LAKEHOUSE_HOME": str(cfg.home),
        "LAKEHOUSE_GENERAL__MODE": cfg.mode,
        "LAKEHOUSE_CLICKHOUSE__USER": ch.user,
        "LAKEHOUSE_CLICKHOUSE__PASSWORD": ch.password,
        "LAKEHOUSE_CLICKHOUSE__DATABASE": ch.database,
        "LAKEHOUSE_CATALOG__WAREHOUSE": cfg.warehouse_uri,
    }
    if cfg.config_file:
        env["LAKEHOUSE_CONFIG"] = str(cfg.config_file)
    return env


@contextlib.contextmanager
def temporary_front(cfg: Config, in_process: bool = False) -> Iterator[Endpoint]:
    """A front on a free loopback port for the duration of the block.

    ``in_process=True`` serves from a thread of this process (chdb stays loaded here afterwards, and
    icebergLocal reads need the warehouse inside the current directory); the default runs
    ``lakehouse clickhouse serve`` as a child process in the files root.
    """
    ch = cfg.clickhouse
    host = "127.0.0.1"
    if in_process:
        from lakehouse.clickhouse.server import start_in_thread

        server = build_server(cfg, host, 0)
        start_in_thread(server)
        try:
            yield Endpoint(host, server.server_address[1], ch.user, ch.password, ch.database, temporary=True)
        finally:
            server.shutdown()
            server.server_close()
            server.engine.close()
        return
    port = free_port(host)
    logfile = cfg.logs_dir / "clickhouse-temporary.log"
    env = {**os.environ, **cfg.telemetry_env, **front_env(cfg)}
    cmd = [*lakehouse_cli(), "clickhouse", "serve", "--host", host, "--port", str(port),
           "--exit-with-parent", str(os.getpid())]
    with logfile.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    try:
        if not wait_http(f"http://{host}:{port}/ping", START_TIMEOUT, alive=lambda: proc.poll() is None):
            tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-12:])
            raise RuntimeError(f"the temporary ClickHouse front did not start (log {logfile}):\n{tail}")
        yield Endpoint(host, port, ch.user, ch.password, ch.database, temporary=True)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def configured_front_answers(cfg: Config) -> bool:
    """True when a front (the service, or a foreground ``lakehouse clickhouse serve``) answers on the
    configured host/port and accepts the configured credentials."""
    import base64
    import urllib.error
    import urllib.request

    ch = cfg.clickhouse
    if not http_ok(f"{ch.url}/ping", timeout=1.0):
        return False
    token = base64.b64encode(f"{ch.user}:{ch.password}".encode()).decode()
    req = urllib.request.Request(f"{ch.url}/?query=SELECT%201", headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - URL from config
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def endpoint(cfg: Config, in_process: bool = False) -> Iterator[Endpoint]:
    """The running front on the configured port (the ``clickhouse`` service or a foreground
    ``lakehouse clickhouse serve``), else a temporary front for the block."""
    ch = cfg.clickhouse
    if service_running(cfg) or configured_front_answers(cfg):
        yield Endpoint(ch.host, ch.port, ch.user, ch.password, ch.database)
        return
    with temporary_front(cfg, in_process=in_process) as ep:
        yield ep


def http_client(ep: Endpoint, **kwargs):
    """A clickhouse-connect client for ``ep`` (database: the marts database unless given)."""
    import clickhouse_connect

    kwargs.setdefault("database", ep.database)
    return clickhouse_connect.get_client(
        host=ep.host, port=ep.port, username=ep.user, password=ep.password, **kwargs
    )


def embedded_client(cfg: Config, **kwargs):
    """A clickhouse-connect client on chdb in this process (``chdb:///<chdb_path>``).

    Fails when another process (the service, a temporary front) holds the data path.
    """
    import clickhouse_connect

    cfg.chdb_path.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("database", None)
    client = clickhouse_connect.get_client(dsn=f"chdb://{cfg.chdb_path.resolve()}", **kwargs)
    client.command(f"CREATE DATABASE IF NOT EXISTS `{cfg.clickhouse.database}`")
    client.database = cfg.clickhouse.database
    return client

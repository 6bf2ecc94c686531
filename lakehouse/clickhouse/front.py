"""Running the ClickHouse front and reaching ClickHouse from the rest of the platform.

- :func:`serve` — the long-running front (``lakehouse clickhouse serve``, the ``clickhouse`` service);
- :func:`endpoint` — a context manager yielding the URL of a front to talk to: the running service
  when there is one, otherwise a temporary front on a free loopback port (a subprocess, so the chdb
  data path is not left open in the caller's process, and chdb's files root is its working directory);
- :func:`http_client` / :func:`embedded_client` — clickhouse-connect clients over HTTP or on chdb
  in-process (``chdb:///<path>``; only when no other process holds the data path).

Only one process may open ``cfg.chdb_path``: the service, or one temporary front, or an embedded client.

The front serves two accounts from ``[clickhouse]``: the writer (``user``; dbt, the platform) and the
read-only ``dashboard_user`` (Superset); what each may run is decided in guard.py.
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
from dataclasses import dataclass, replace
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


def dashboard_endpoint(ep: Endpoint, cfg: Config) -> Endpoint:
    """``ep`` with the read-only dashboard account's credentials."""
    return replace(ep, user=cfg.clickhouse.dashboard_user, password=cfg.clickhouse.dashboard_password)


def local_warehouse(cfg: Config) -> Path | None:
    """The local warehouse directory (file:// warehouse), else None."""
    uri = cfg.warehouse_uri
    return Path(unquote(urlparse(uri).path)) if uri.startswith("file://") else None


def files_root(cfg: Config) -> Path:
    """The directory chdb may read files from (icebergLocal): the local warehouse, else an empty folder.

    chdb's ``user_files_path`` is the process working directory, so the front runs there. It never holds
    the state dir or secrets.json: a warehouse that contains the state dir is refused.
    """
    root = local_warehouse(cfg)
    if root is None:
        root = cfg.path("clickhouse", "files")
    root.mkdir(parents=True, exist_ok=True)
    real, home = root.resolve(), cfg.home.resolve()
    if real == home or real in home.parents:
        raise RuntimeError(
            f"the warehouse {real} contains the state dir {home} (secrets.json): chdb may read every file under "
            "its files root, so set [catalog] warehouse or LAKEHOUSE_HOME so that they do not overlap"
        )
    return root


def guard_policy(cfg: Config):
    """What the platform's own lake readers may reach (see guard.py)."""
    from lakehouse.clickhouse.guard import Policy

    uri = cfg.warehouse_uri
    s3_prefix = None
    if uri.startswith(("s3://", "s3a://")):
        s3_prefix = f"{cfg.s3_endpoint.rstrip('/')}/{uri.split('://', 1)[1].strip('/')}/"
    return Policy(cfg.clickhouse.database, local_warehouse=local_warehouse(cfg), s3_url_prefix=s3_prefix)


def build_server(cfg: Config, host: str | None = None, port: int | None = None):
    """A :class:`FrontServer` on ``cfg.chdb_path`` (opens the engine; raises if the path is locked)."""
    from lakehouse.clickhouse.engine import Engine
    from lakehouse.clickhouse.server import Account, FrontServer, Limits

    ch = cfg.clickhouse
    accounts = {ch.user: Account(ch.password, "writer"), ch.dashboard_user: Account(ch.dashboard_password, "reader")}
    limits = Limits(max_body_bytes=ch.max_body_mb << 20, max_decoded_bytes=ch.max_decompressed_body_mb << 20,
                    max_connections=ch.max_connections, keep_alive_timeout=ch.keep_alive_timeout_seconds)
    engine = Engine(cfg.chdb_path, databases=(ch.database,), policy=guard_policy(cfg))
    try:
        return FrontServer((host or ch.host, ch.port if port is None else port), engine, accounts, limits)
    except Exception:
        engine.close()
        raise


def serve(cfg: Config, host: str | None = None, port: int | None = None, echo=print) -> None:
    """Serve the front until SIGTERM/SIGINT (runs in the files root, see :func:`files_root`)."""
    os.chdir(files_root(cfg))  # before chdb starts: its files root is the working directory
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
    """Environment giving a child front the same state dir, [clickhouse] section (accounts, database,
    limits), warehouse and object store address as ``cfg``."""
    env = {
        "LAKEHOUSE_HOME": str(cfg.home),
        "LAKEHOUSE_GENERAL__MODE": cfg.mode,
        "LAKEHOUSE_CATALOG__WAREHOUSE": cfg.warehouse_uri,
        "LAKEHOUSE_OBJECTSTORE__HOST": cfg.objectstore.host,
        "LAKEHOUSE_OBJECTSTORE__PORT": str(cfg.objectstore.port),
    }
    for key, value in cfg.clickhouse.model_dump().items():
        env[f"LAKEHOUSE_CLICKHOUSE__{key.upper()}"] = str(value)
    if cfg.config_file:
        env["LAKEHOUSE_CONFIG"] = str(cfg.config_file)
    return env


@contextlib.contextmanager
def temporary_front(cfg: Config) -> Iterator[Endpoint]:
    """A front on a free loopback port for the duration of the block: ``lakehouse clickhouse serve`` as a
    child process, in the files root (a front in this process would have the caller's working directory,
    whatever it holds, as chdb's files root)."""
    ch = cfg.clickhouse
    host = "127.0.0.1"
    files_root(cfg)  # refuse an unsafe warehouse here, with the reason, rather than in the child's log
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
def endpoint(cfg: Config) -> Iterator[Endpoint]:
    """The running front on the configured port (the ``clickhouse`` service or a foreground
    ``lakehouse clickhouse serve``), else a temporary front for the block (writer credentials)."""
    ch = cfg.clickhouse
    if service_running(cfg) or configured_front_answers(cfg):
        yield Endpoint(ch.host, ch.port, ch.user, ch.password, ch.database)
        return
    with temporary_front(cfg) as ep:
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

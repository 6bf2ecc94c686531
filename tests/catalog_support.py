"""Helpers for the catalog tests: a real catalog server on a free loopback port, clients, PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from catalog.app import create_app
from catalog.auth import Auth
from catalog.server import BackgroundServer
from lakehouse.net import free_port


@contextlib.contextmanager
def catalog_server(
    db_url: str, warehouse: str, *, auth: Auth | None = None, storage: dict[str, str] | None = None,
    name: str = "lakehouse",
) -> Iterator[BackgroundServer]:
    """A real uvicorn catalog server in a background thread on a free port."""
    app = create_app(db_url, warehouse, warehouse_name=name, storage_properties=storage, auth=auth,
                     log_requests=False)
    server = BackgroundServer(app).start()
    try:
        yield server
    finally:
        server.stop()


def rest_catalog(uri: str, **props: str):
    """A pyiceberg RestCatalog given only the URI (plus extra properties such as a credential)."""
    from pyiceberg.catalog.rest import RestCatalog

    return RestCatalog("lakehouse", uri=uri, **props)


def api(server_url: str, **kw) -> httpx.Client:
    """An httpx client on the catalog's base URL."""
    return httpx.Client(base_url=server_url, timeout=30, **kw)


def metadata_files(table_location: str) -> list[str]:
    """Names of the metadata JSON files of a table on local disk."""
    root = Path(table_location.removeprefix("file://")) / "metadata"
    return sorted(p.name for p in root.glob("*.metadata.json"))


# PostgreSQL ------------------------------------------------------------------------------------------
def postgres_bin() -> Path | None:
    """Directory of Debian's PostgreSQL server binaries, if installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    return found[-1].parent if found else None


@contextlib.contextmanager
def postgres_server(base: Path) -> Iterator[str]:
    """A private PostgreSQL server on a free port; yields a SQLAlchemy URL.

    Its data dir is under ``base``, except when running as root: postgres refuses root, so the server
    runs as the ``postgres`` user in a private temp dir it can reach (pytest's temp root is mode 0700).
    """
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install -y postgresql)")
    as_root = os.geteuid() == 0
    if as_root:
        base = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))
        shutil.chown(base, "postgres", "postgres")
    data = base / "pgdata"
    sock = base / "pgsock"
    base.mkdir(parents=True, exist_ok=True)
    sock.mkdir(exist_ok=True)
    port = free_port()
    if as_root:
        shutil.chown(sock, "postgres", "postgres")

    def run(cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if as_root else cmd

    subprocess.run(run([str(bindir / "initdb"), "-D", str(data), "-U", "lake", "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True, timeout=120)
    log = base / "postgres.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            run([str(bindir / "postgres"), "-D", str(data), "-k", str(sock), "-p", str(port),
                 "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=100", "-c", "fsync=off"]),
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"postgresql+psycopg://lake@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(f"host=127.0.0.1 port={port} user=lake dbname=postgres", connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        subprocess.run(run([str(bindir / "pg_ctl"), "-D", str(data), "stop", "-m", "fast", "-w"]),
                       capture_output=True, timeout=60)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if as_root:
            shutil.rmtree(base, ignore_errors=True)


def run_writers(writer: Callable[[int], None], n: int = 8) -> list[BaseException]:
    """Run ``writer(0)`` .. ``writer(n - 1)`` in ``n`` threads at once; return what they raised."""
    errors: list[BaseException] = []

    def guarded(w: int) -> None:
        try:
            writer(w)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(w,)) for w in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


class CommitCuttingProxy:
    """A TCP proxy to PostgreSQL that, once armed, passes the next ``COMMIT`` on to the server, lets the server
    commit, and then cuts the client's connection without passing the answer back: a COMMIT that landed while
    its client lost the connection (what a network failure or a server restart at the wrong moment does)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.fired = threading.Event()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        """Cut the connection that sends the next COMMIT."""
        self.fired.clear()
        self.armed.set()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            cut = threading.Event()
            threading.Thread(target=self._to_server, args=(client, upstream, cut), daemon=True).start()
            threading.Thread(target=self._to_client, args=(upstream, client, cut), daemon=True).start()

    def _to_server(self, client: socket.socket, upstream: socket.socket, cut: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                if self.armed.is_set() and b"COMMIT" in data:
                    self.armed.clear()
                    cut.set()  # from now on nothing goes back to the client
                    upstream.sendall(data)
                    time.sleep(0.5)  # the server commits and answers into the void
                    break
                upstream.sendall(data)
        except OSError:
            pass
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        if cut.is_set():
            self.fired.set()

    @staticmethod
    def _to_client(upstream: socket.socket, client: socket.socket, cut: threading.Event) -> None:
        try:
            while (data := upstream.recv(65536)) and not cut.is_set():
                client.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        """Stop accepting connections."""
        self._stop = True
        self.listener.close()

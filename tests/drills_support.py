"""Helpers for the reliability drills (``integration/test_drills_*.py``): a service stack per module, the
real CLI as a child process in a process group of its own (so a drill can SIGKILL it and everything it
started), waiting for a point in its output, and the consistency check every drill ends with: each table
of the lake loads through the catalog, its current metadata and every data file it lists exist, and
pyiceberg, DuckDB and ClickHouse (chdb) count the same rows."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.config import Config, load_config
from tests.conftest import BIN, ROOT, isolated_env

#: Seconds the longest drill step may take before the drill fails (a hung rerun must not hang CI).
STEP_TIMEOUT = 600


def results(stdout: str) -> dict[str, str]:
    """stage -> result from the ``lakehouse run`` summary table."""
    return dict(re.findall(r"│ ([a-z-]+)\s+│ (ok|skipped|failed|blocked|not selected)\s", stdout))


def services_env(home: Path, **extra: str) -> dict[str, str]:
    """An isolated environment in services mode (warehouse on the object store), wide output for parsing."""
    return {**isolated_env(home), "LAKEHOUSE_GENERAL__MODE": "services", "COLUMNS": "200", **extra}


@contextlib.contextmanager
def stack(env: dict[str, str], services: tuple[str, ...] = ("objectstore", "catalog")) -> Iterator[Config]:
    """``lakehouse up SERVICES`` for the block, ``lakehouse down`` after (whatever the drill did to them)."""
    try:
        up(env, *services)
        yield load_config(env=env)
    finally:
        subprocess.run([str(BIN / "lakehouse"), "down"], env={**os.environ, **env}, capture_output=True,
                       timeout=120, cwd=ROOT)


def up(env: dict[str, str], *services: str) -> None:
    """``lakehouse up SERVICES`` (asserting it worked)."""
    proc = subprocess.run([str(BIN / "lakehouse"), "up", *services], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, f"lakehouse up {services}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"


def service_pid(cfg: Config, name: str) -> int:
    """The pid (process group leader) of a running supervised service."""
    return int(json.loads((cfg.run_dir / f"{name}.json").read_text())["pid"])


def kill9_service(cfg: Config, name: str) -> None:
    """kill -9 every process of a supervised service (its process group), as a crash would."""
    pid = service_pid(cfg, name)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return False
    return True


@dataclass
class Child:
    """A ``lakehouse`` command running in its own process group, its output going to a file."""

    proc: subprocess.Popen
    out: Path
    started: float = field(default_factory=time.monotonic)

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = STEP_TIMEOUT, poll: Callable[[], bool] | None = None) -> None:
        """Wait until ``pattern`` (a regex) appears in the output (and ``poll()`` holds, when given); fail
        when the command exits first or the time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            if re.search(pattern, self.text()) and (poll is None or poll()):
                return
            assert self.proc.poll() is None, f"exited {self.proc.returncode} before {pattern!r}:\n{self.text()[-4000:]}"
            assert time.monotonic() < deadline, f"no {pattern!r} within {timeout}s:\n{self.text()[-4000:]}"
            time.sleep(0.1)

    def kill9(self) -> None:
        """SIGKILL the whole process group (the command, its dbt and ClickHouse children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def finish(self, timeout: float = STEP_TIMEOUT) -> tuple[int, str]:
        """Wait for the command to exit; (exit code, output)."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"still running after {timeout}s:\n{self.text()[-4000:]}") from None
        return code, self.text()


def spawn(env: dict[str, str], *args: str, out: Path, extra: dict[str, str] | None = None) -> Child:
    """Start ``lakehouse ARGS`` in a new session (process group), stdout+stderr appended to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("")
    with open(out, "ab") as fh:
        proc = subprocess.Popen([str(BIN / "lakehouse"), *args], env={**os.environ, **env, **(extra or {})},
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                                start_new_session=True)
    return Child(proc, out)


def cli(env: dict[str, str], *args: str, timeout: float = STEP_TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``lakehouse ARGS`` to completion."""
    return subprocess.run([str(BIN / "lakehouse"), *args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


# Consistency -----------------------------------------------------------------------------------------
@dataclass
class TableCheck:
    """What the consistency check found for one table."""

    identifier: str
    rows: int
    metadata_location: str
    data_files: int


def lake_tables(cfg: Config) -> dict[str, TableCheck]:
    """Every table of the lake, checked through pyiceberg: the current metadata file and every data and
    delete file of the current snapshot exist, and a full scan returns the snapshot's ``total-records``."""
    from lakehouse.lake import open_lake

    out: dict[str, TableCheck] = {}
    with open_lake(cfg) as lake:
        for ns in lake.catalog.list_namespaces():
            for ident in lake.catalog.list_tables(ns):
                name = ".".join(ident)
                tbl = lake.catalog.load_table(ident)
                io = tbl.io
                assert io.new_input(tbl.metadata_location).exists(), f"{name}: metadata file missing"
                snap = tbl.current_snapshot()
                files = 0
                if snap is not None:
                    for task in tbl.scan().plan_files():
                        files += 1
                        path = task.file.file_path
                        assert io.new_input(path).exists(), f"{name}: data file {path} missing"
                        for d in task.delete_files:
                            assert io.new_input(d.file_path).exists(), f"{name}: delete file {d.file_path} missing"
                rows = tbl.scan().to_arrow().num_rows if snap is not None else 0
                if snap is not None and snap.summary and snap.summary.get("total-records") is not None:
                    total = int(snap.summary["total-records"])
                    deletes = int(snap.summary.get("total-position-deletes") or 0) + int(
                        snap.summary.get("total-equality-deletes") or 0)
                    if not deletes:
                        assert rows == total, f"{name}: scan returned {rows} rows, snapshot says {total}"
                out[name] = TableCheck(name, rows, tbl.metadata_location, files)
    return out


def duckdb_count(env: dict[str, str], table: str, expr: str = "count(*)") -> str:
    """``SELECT expr FROM lake.<table>`` through ``lakehouse sql`` (DuckDB attached to the catalog)."""
    proc = cli(env, "sql", f"SELECT {expr} FROM lake.{table}", "--format", "csv", timeout=300)
    assert proc.returncode == 0, f"duckdb on {table}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc.stdout.strip().splitlines()[-1]


def duplicate_keys(env: dict[str, str], table: str) -> int:
    """Rows beyond one per key of ``table`` (its contract's key), counted by DuckDB; 0 for a table without one."""
    from lakehouse.contracts import CONTRACTS

    declared = CONTRACTS.get(table)
    if declared is None or not declared.key:
        return 0
    return int(duckdb_count(env, table, f"count(*) - count(DISTINCT ({', '.join(declared.key)}))"))


CHDB_S3 = """
import os, sys, chdb
url, meta, select = sys.argv[1:4]
key, secret = os.environ["DRILL_S3_KEY"], os.environ["DRILL_S3_SECRET"]
q = (f"SELECT {select} FROM icebergS3('{url}', '{key}', '{secret}', "
     f"SETTINGS iceberg_metadata_file_path = '{meta}')")
print(chdb.query(q, "CSV"), end="")
"""

CHDB_LOCAL = """
import sys, chdb
path, meta, select = sys.argv[1:4]
q = f"SELECT {select} FROM icebergLocal('{path}', SETTINGS iceberg_metadata_file_path = '{meta}')"
print(chdb.query(q, "CSV"), end="")
"""


def chdb_count(cfg: Config, table: str, select: str = "count()") -> str:
    """``SELECT select`` over the table with ClickHouse (chdb, in a child process), pinned to the metadata file
    the catalog names as current (ClickHouse's own readers would guess it from a listing)."""
    from lakehouse.lake import open_lake
    from lakehouse.stages.transform_dwh import reader_spec

    with open_lake(cfg) as lake:
        tbl = lake.catalog.load_table(table)
        storage, reader = reader_spec(cfg, tbl.location(), tbl.metadata_location)
    env = {**os.environ}
    if storage == "s3":
        code, args, cwd = CHDB_S3, [reader["url"], reader["metadata"], select], ROOT
        env.update(DRILL_S3_KEY=cfg.objectstore.access_key, DRILL_S3_SECRET=cfg.objectstore.secret_key)
    else:
        code, args, cwd = CHDB_LOCAL, [reader["path"], reader["metadata"], select], Path(reader["path"]).parent
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=env)
    assert proc.returncode == 0, f"chdb on {table}: {proc.stderr[-2000:]}"
    return proc.stdout.strip()


def assert_no_traceback(text: str) -> None:
    """A drill's failure must be a message, not a Python traceback."""
    assert "Traceback (most recent call last)" not in text, text[-4000:]

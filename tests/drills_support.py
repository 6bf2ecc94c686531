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
        for child in _CHILDREN:  # a drill that failed half-way may leave its command running
            if child.proc.poll() is None:
                child.kill9()
        _CHILDREN.clear()
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

    def frozen(self) -> contextlib.AbstractContextManager[None]:
        """SIGSTOP the whole process group for the block, SIGCONT after it: a fault injected meanwhile lands
        while the command is where ``wait_for`` saw it, however loaded the machine is."""

        @contextlib.contextmanager
        def _frozen() -> Iterator[None]:
            os.killpg(self.proc.pid, signal.SIGSTOP)
            try:
                yield
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGCONT)

        return _frozen()

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
    child = Child(proc, out)
    _CHILDREN.append(child)
    return child


_CHILDREN: list[Child] = []  # every command spawn() started (stack() kills those still running)


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


def duckdb_values(env: dict[str, str], queries: dict[str, tuple[str, str]]) -> dict[str, int]:
    """``label -> SELECT expr FROM lake.<table>`` for ``queries`` (label -> (table, expr)), all in one
    ``lakehouse sql`` process (DuckDB attached to the catalog, as a user would query the lake)."""
    parts = [f"SELECT '{label}' AS label, (SELECT {expr} FROM lake.{table})::BIGINT AS value"
             for label, (table, expr) in queries.items()]
    proc = cli(env, "sql", " UNION ALL ".join(parts), "--format", "csv", timeout=300)
    assert proc.returncode == 0, f"duckdb: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    rows = [line.split(",") for line in proc.stdout.strip().splitlines()[1:]]
    return {label: int(value) for label, value in rows}


def duckdb_count(env: dict[str, str], table: str, expr: str = "count(*)") -> int:
    """``SELECT expr FROM lake.<table>`` through DuckDB."""
    return duckdb_values(env, {"v": (table, expr)})["v"]


def key_expr(table: str) -> str | None:
    """DuckDB expression counting rows beyond one per key of ``table`` (its contract's key), or None."""
    from lakehouse.contracts import CONTRACTS

    declared = CONTRACTS.get(table)
    if declared is None or not declared.key:
        return None
    return f"count(*) - count(DISTINCT ({', '.join(declared.key)}))"


def duplicate_keys(env: dict[str, str], table: str) -> int:
    """Rows beyond one per key of ``table`` (its contract's key), counted by DuckDB; 0 for a table without one."""
    expr = key_expr(table)
    return duckdb_count(env, table, expr) if expr else 0


def check_engines(env: dict[str, str], cfg: Config, tables: dict[str, TableCheck]) -> None:
    """DuckDB and ClickHouse (chdb) count the rows pyiceberg counted in each of ``tables`` (those with rows),
    and DuckDB finds no duplicate key in any table that declares one."""
    tables = {name: check for name, check in tables.items() if check.rows}
    queries = {f"rows:{name}": (name, "count(*)") for name in tables}
    queries.update({f"dups:{name}": (name, expr) for name in tables if (expr := key_expr(name))})
    duck = duckdb_values(env, queries)
    click = chdb_counts(cfg, list(tables))
    for name, check in tables.items():
        got = duck[f"rows:{name}"]
        assert got == check.rows, f"DuckDB counts {got} rows in {name}, pyiceberg {check.rows}"
        assert click[name] == check.rows, f"ClickHouse counts {click[name]} rows in {name}, pyiceberg {check.rows}"
        assert duck.get(f"dups:{name}", 0) == 0, f"duplicate keys in {name}"


CHDB = """
import json, os, sys, chdb
out = {}
for name, storage, where, meta, select in json.loads(sys.argv[1]):
    if storage == "s3":
        key, secret = os.environ["DRILL_S3_KEY"], os.environ["DRILL_S3_SECRET"]
        src = f"icebergS3('{where}', '{key}', '{secret}', SETTINGS iceberg_metadata_file_path = '{meta}')"
    else:
        src = f"icebergLocal('{where}', SETTINGS iceberg_metadata_file_path = '{meta}')"
    out[name] = str(chdb.query(f"SELECT {select} FROM {src}", "CSV")).strip()
print(json.dumps(out))
"""


def chdb_counts(cfg: Config, tables: list[str], select: str = "count()") -> dict[str, int]:
    """``SELECT select`` over each table with ClickHouse (chdb, one child process), pinned to the metadata
    file the catalog names as current (ClickHouse's own readers would guess it from a listing)."""
    import json

    from lakehouse.lake import open_lake
    from lakehouse.stages.transform_dwh import reader_spec

    specs = []
    with open_lake(cfg) as lake:
        for name in tables:
            tbl = lake.catalog.load_table(name)
            storage, reader = reader_spec(cfg, tbl.location(), tbl.metadata_location)
            where = reader["url"] if storage == "s3" else reader["path"]
            specs.append((name, storage, where, reader["metadata"], select))
    env = {**os.environ, "DRILL_S3_KEY": cfg.objectstore.access_key, "DRILL_S3_SECRET": cfg.objectstore.secret_key}
    # icebergLocal paths must lie under chdb's files root, the working directory: the warehouse
    cwd = ROOT if cfg.warehouse_uri.startswith("s3://") else Path(cfg.warehouse_uri.removeprefix("file://"))
    proc = subprocess.run([sys.executable, "-c", CHDB, json.dumps(specs)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)
    assert proc.returncode == 0, f"chdb: {proc.stderr[-2000:]}"
    return {k: int(v) for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


def chdb_count(cfg: Config, table: str, select: str = "count()") -> int:
    """``SELECT select`` over one table with ClickHouse (chdb)."""
    return chdb_counts(cfg, [table], select)[table]


def assert_no_traceback(text: str) -> None:
    """A drill's failure must be a message, not a Python traceback."""
    assert "Traceback (most recent call last)" not in text, text[-4000:]

"""The chdb engine behind the HTTP front: one data path, per-session handles, one engine lock.

chdb hosts one engine per process, but any number of connection handles on it, and session state
(``SET``, ``USE``, temporary tables) belongs to a handle. So:

- a request with ``session_id`` runs on that session's own handle (created on first use, closed
  after ``session_timeout`` seconds idle); ``SET``/``USE`` statements persist there; sessions belong
  to their user (the same id sent by another account is another session);
- a request without a session runs on a fresh handle that is closed afterwards (opening one costs
  ~0.1 ms), so nothing it sets can leak to anyone;
- settings and ``database`` given as URL parameters apply to that one request only: on a session
  handle they are applied with ``SET`` and the session's own values restored on the next request
  that does not want them (tracked per session, so a client sending the same settings every time
  pays for the ``SET`` once);
- every engine call happens under one process-wide lock (the engine is shared state), held only
  while chdb works: request bodies are read before and responses written after, so a slow or
  vanished client never blocks others;
- every statement is judged by :mod:`lakehouse.clickhouse.guard` on the handle that runs it, after
  the request's database and settings are in effect and before it runs; client handles are opened
  with :data:`~lakehouse.clickhouse.guard.HANDLE_SETTINGS`. An INSERT's inline data (``FORMAT <fmt>``
  or ``VALUES``) is never part of the statement chdb parses: the statement goes to
  ``send_insert`` and the data is streamed as data, so it can hold neither a second statement nor
  an expression.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from lakehouse.clickhouse.guard import HANDLE_SETTINGS, Policy, Refused, Role, SqlGuard, Verdict
from lakehouse.clickhouse.statements import Statement, analyze

DEFAULT_SESSION_TIMEOUT = 60.0
MAX_SESSION_TIMEOUT = 3600.0
SESSION_LOCK_WAIT = 2.0  # seconds a request waits for its session to be free before SESSION_IS_LOCKED

_CODE_RE = re.compile(r"Code: (\d+)\. ")
_NESTED_RE = re.compile(r"^Code: (\d+)\. DB::Exception: (?=Code: \1\. )")
_SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ERROR_NAMES = {
    1: "UNSUPPORTED_METHOD", 27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED", 33: "CANNOT_READ_ALL_DATA",
    36: "BAD_ARGUMENTS", 48: "NOT_IMPLEMENTED", 62: "SYNTAX_ERROR", 516: "AUTHENTICATION_FAILED",
    115: "UNKNOWN_SETTING", 164: "READONLY", 372: "SESSION_NOT_FOUND", 373: "SESSION_IS_LOCKED",
    392: "QUERY_IS_TOO_LARGE", 497: "ACCESS_DENIED", 1001: "STD_EXCEPTION",
}


class QueryError(Exception):
    """A ClickHouse-style error: numeric code and the server's message text."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def of(cls, code: int, text: str) -> QueryError:
        name = _ERROR_NAMES.get(code, "UNKNOWN")
        return cls(code, f"Code: {code}. DB::Exception: {text}. ({name})")

    @classmethod
    def from_engine(cls, exc: BaseException) -> QueryError:
        """Turn a chdb exception into the code and message clickhouse-server would send."""
        text = str(exc).strip()
        m = _CODE_RE.search(text)
        if not m:
            return cls.of(1001, text or type(exc).__name__)
        text = text[m.start():]
        while True:
            stripped = _NESTED_RE.sub("", text, count=1)
            if stripped == text:
                break
            text = stripped
        return cls(int(m.group(1)), text)


@dataclass
class QueryRequest:
    """One query as the HTTP layer hands it to the engine."""

    sql: bytes
    params: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    database: str | None = None
    session_id: str | None = None
    session_timeout: float = DEFAULT_SESSION_TIMEOUT
    session_check: bool = False
    query_id: str = ""
    default_format: str = "TabSeparated"
    read_only: bool = False
    role: Role = "reader"  # the authenticated account's role (see guard.py)
    user: str = ""  # the authenticated account (sessions belong to it)

    @property
    def session_key(self) -> str:
        return f"{self.user}\x00{self.session_id}"


@dataclass
class QueryResult:
    body: bytes
    format: str | None  # None: the statement returns no result set
    summary: dict[str, str]
    query_id: str


@dataclass
class _Session:
    handle: Any
    timeout: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    expires: float = 0.0
    own_db: str | None = None  # set by USE inside the session
    current_db: str | None = None  # what the handle has in effect now
    url_settings: dict[str, str] = field(default_factory=dict)  # per-request settings now applied
    saved: dict[str, tuple[str, bool]] = field(default_factory=dict)  # session values they shadow

    def touch(self) -> None:
        self.expires = time.monotonic() + self.timeout


def _quote(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _check_setting_name(name: str) -> str:
    if not _SETTING_NAME_RE.match(name):
        raise QueryError.of(115, f"Invalid setting name '{name}'")
    return name


def _ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


class Engine:
    """chdb on one data path, shared by every client of the front (see module docstring)."""

    def __init__(self, path: Path | str, databases: tuple[str, ...] = (), policy: Policy | None = None):
        import chdb

        self._chdb = chdb
        Path(path).mkdir(parents=True, exist_ok=True)
        self.path = os.path.realpath(path)
        if "?" in self.path:
            raise RuntimeError(f"the chdb data path {self.path} may not contain '?'")
        self._dsn = f"file:{self.path}?{urlencode(HANDLE_SETTINGS)}"  # client handles: hardened settings
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._sessions_lock = threading.Lock()
        self._closed = False
        try:
            self._root = chdb.connect(self.path)
        except Exception as exc:  # chdb raises RuntimeError on a locked path
            raise RuntimeError(
                f"cannot open the chdb data path {self.path}: {exc} "
                "(only one process may open it: is `lakehouse clickhouse serve` or another job running?)"
            ) from exc
        row = self._root.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().strip()
        self.version, self.timezone = row.split("\t")
        for db in databases:
            self._root.query(f"CREATE DATABASE IF NOT EXISTS {_ident(db)}", "TabSeparated")
        table_functions = self._root.query("SELECT name FROM system.table_functions", "TSVRaw").bytes().decode()
        settings = self._root.query("SELECT name, type FROM system.settings", "TSVRaw").bytes().decode()
        self.guard = SqlGuard(policy or Policy(databases[0] if databases else "default"), table_functions.split(),
                              dict(line.split("\t", 1) for line in settings.splitlines() if "\t" in line))

    # -- public ---------------------------------------------------------------------------------
    def execute(self, req: QueryRequest) -> QueryResult:
        """Run one request; raise QueryError with ClickHouse's code and message on failure."""
        stmt = analyze(req.sql)
        if stmt.is_empty:
            raise QueryError.of(62, "Empty query")
        try:
            self.guard.check_settings(req.settings)
        except Refused as exc:
            raise QueryError.of(exc.code, exc.message) from None
        query_id = req.query_id or str(uuid.uuid4())
        self._expire_sessions()
        if not req.session_id:
            with self._lock:
                self._check_open()
                handle = self._chdb.connect(self._dsn)
                try:
                    return self._run_fresh(handle, req, stmt, query_id)
                finally:
                    handle.close()
        while True:
            session = self._session(req)
            if not session.lock.acquire(timeout=SESSION_LOCK_WAIT):
                raise QueryError.of(373, f"Session {req.session_id} is locked by a concurrent client")
            if self._sessions.get(req.session_key) is session:
                break
            session.lock.release()  # it expired while we waited: start a new one
        try:
            with self._lock:
                self._check_open()
                return self._run_in_session(session, req, stmt, query_id)
        finally:
            session.touch()
            session.lock.release()

    def query(self, sql: str, fmt: str = "TabSeparated") -> bytes:
        """Run one statement on a fresh handle as the writer (administrative helper)."""
        return self.execute(QueryRequest(sql.encode(), default_format=fmt, role="writer")).body

    def close(self) -> None:
        """Close every handle; the engine is released when the last one closes."""
        with self._sessions_lock, self._lock:  # lock order everywhere: sessions, then engine
            if self._closed:
                return
            self._closed = True
            sessions, self._sessions = list(self._sessions.values()), {}
            for s in sessions:
                _close_quietly(s.handle)
            _close_quietly(self._root)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    # -- sessions -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise QueryError.of(1001, "the server is shutting down")

    def _session(self, req: QueryRequest) -> _Session:
        timeout = min(max(req.session_timeout, 1.0), MAX_SESSION_TIMEOUT)
        with self._sessions_lock:
            s = self._sessions.get(req.session_key)
            if s is None:
                if req.session_check:
                    raise QueryError.of(372, f"Session {req.session_id} not found")
                s = self._sessions[req.session_key] = _Session(None, timeout)  # handle opened on first query
            s.timeout = timeout
            s.touch()
            return s

    def _expire_sessions(self) -> None:
        now = time.monotonic()
        expired: list[_Session] = []
        with self._sessions_lock:
            for sid, s in list(self._sessions.items()):
                if s.expires < now and s.lock.acquire(blocking=False):
                    del self._sessions[sid]
                    expired.append(s)
        if any(s.handle is not None for s in expired):
            with self._lock:
                for s in expired:
                    _close_quietly(s.handle)

    # -- execution (engine lock held) -----------------------------------------------------------
    def _engine(self, handle: Any, sql: str | bytes, fmt: str = "TabSeparated",
                params: Mapping[str, str] | None = None) -> Any:
        try:
            return handle.query(sql, fmt, params=dict(params or {}))
        except Exception as exc:
            raise QueryError.from_engine(exc) from None

    def _set(self, handle: Any, settings: Mapping[str, str]) -> None:
        if settings:
            clause = ", ".join(f"{_check_setting_name(k)} = {_quote(v)}" for k, v in settings.items())
            self._engine(handle, f"SET {clause}")

    def _judge(self, handle: Any, req: QueryRequest, stmt: Statement, current_db: str) -> Verdict:
        """The guard's verdict on the statement, parsed on ``handle`` (QueryError when refused)."""
        def run(sql: str, params) -> str:
            return self._engine(handle, sql, "TSVRaw", params).bytes().decode("utf-8", "replace")

        try:
            verdict = self.guard.judge(run, _statement_text(req.sql, stmt), role=req.role, read_only=req.read_only,
                                       current_db=current_db, params=req.params)
        except Refused as exc:
            raise QueryError.of(exc.code, exc.message) from None
        if stmt.has_inline_data and verdict.kind != "InsertQuery":  # send_insert must get an INSERT
            raise QueryError.of(62, "inline data follows a statement that is not an INSERT")
        return verdict

    def _run_fresh(self, handle: Any, req: QueryRequest, stmt: Statement, query_id: str) -> QueryResult:
        if req.database:
            self._engine(handle, f"USE {_ident(req.database)}")
        self._set(handle, req.settings)
        self._judge(handle, req, stmt, req.database or "default")
        return self._run(handle, req, stmt, query_id)

    def _run_in_session(self, s: _Session, req: QueryRequest, stmt: Statement, query_id: str) -> QueryResult:
        if s.handle is None:
            s.handle = self._chdb.connect(self._dsn)
        wanted_db = req.database or s.own_db
        if wanted_db and wanted_db != s.current_db:
            self._engine(s.handle, f"USE {_ident(wanted_db)}")
            s.current_db = wanted_db
        elif not wanted_db and s.current_db not in (None, "default"):
            self._engine(s.handle, "USE default")
            s.current_db = "default"
        if stmt.kind == "SET":
            # The statement changes the session itself: take away the per-request overrides first.
            self._reconcile(s, {})
        else:
            self._reconcile(s, req.settings)
        verdict = self._judge(s.handle, req, stmt, s.current_db or "default")
        result = self._run(s.handle, req, stmt, query_id)
        if verdict.kind == "UseQuery":
            current = self._engine(s.handle, "SELECT currentDatabase()").bytes().decode().strip()
            s.own_db = s.current_db = current or s.current_db
        return result

    def _reconcile(self, s: _Session, wanted: Mapping[str, str]) -> None:
        """Make the session handle's settings = the session's own values overridden by ``wanted``."""
        h = s.handle
        for name in [k for k in s.url_settings if k not in wanted]:
            self._restore(h, name, s.saved.pop(name, ("", False)))
            del s.url_settings[name]
        todo = {k: str(v) for k, v in wanted.items() if s.url_settings.get(k) != str(v)}
        if not todo:
            return
        fresh = [k for k in todo if k not in s.saved]
        if fresh:
            s.saved.update(self._snapshot(h, fresh))
        try:
            self._set(h, todo)
        except QueryError:
            for name in todo:
                self._restore(h, name, s.saved.pop(name, ("", False)))
                s.url_settings.pop(name, None)
            raise
        s.url_settings.update(todo)

    def _snapshot(self, handle: Any, names: list[str]) -> dict[str, tuple[str, bool]]:
        listed = ", ".join(_quote(_check_setting_name(n)) for n in names)
        out = self._engine(
            handle, f"SELECT name, value, changed FROM system.settings WHERE name IN ({listed})", "JSONEachRow"
        ).bytes()
        saved = {n: ("", False) for n in names}
        for line in out.splitlines():
            row = json.loads(line)
            saved[row["name"]] = (row["value"], bool(row["changed"]))
        return saved

    def _restore(self, handle: Any, name: str, saved: tuple[str, bool]) -> None:
        value, changed = saved
        with contextlib.suppress(QueryError):  # an unknown setting was never applied
            self._engine(handle, f"SET {name} = {_quote(value) if changed else 'DEFAULT'}")

    def _run(self, handle: Any, req: QueryRequest, stmt: Statement, query_id: str) -> QueryResult:
        t0 = time.perf_counter_ns()
        if stmt.has_inline_data:
            prefix = _decode_sql(req.sql[: stmt.insert_prefix_end])
            data = req.sql[stmt.data_start:]
            try:
                inserter = handle.send_insert(prefix, stmt.insert_format)
            except Exception as exc:
                raise QueryError.from_engine(exc) from None
            try:
                if data:
                    inserter.append(data)
                res = inserter.finish()
            except Exception as exc:
                with contextlib.suppress(Exception):  # already failed; report the first error
                    inserter.cancel()
                raise QueryError.from_engine(exc) from None
            summary = _summary(written=(res.rows_written, res.bytes_written), elapsed_ns=time.perf_counter_ns() - t0)
            return QueryResult(b"", None, summary, query_id)
        fmt = stmt.output_format or req.default_format or "TabSeparated"
        res = self._engine(handle, _decode_sql(req.sql), fmt, req.params)
        body = res.bytes() or b""
        summary = _summary(
            read=(res.storage_rows_read(), res.storage_bytes_read()),
            written=(res.rows_written(), res.bytes_written()),
            result=(res.rows_read(), len(body)),
            elapsed_ns=time.perf_counter_ns() - t0,
        )
        returns = stmt.returns_rows or bool(body)
        return QueryResult(body, fmt if returns else None, summary, query_id)


def _decode_sql(sql: bytes) -> str:
    """The statement text: UTF-8 only, so the text the guard judges is exactly the text chdb runs."""
    try:
        return sql.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QueryError.of(36, f"the query text is not valid UTF-8 (byte {exc.start})") from None


def _statement_text(sql: bytes, stmt: Statement) -> str:
    """What chdb will parse: the whole SQL, or for an INSERT with inline data the statement that
    ``send_insert`` runs (the data itself is never parsed as SQL)."""
    if stmt.has_inline_data:
        return f"{_decode_sql(sql[: stmt.insert_prefix_end]).rstrip()} FORMAT {stmt.insert_format}"
    return _decode_sql(sql)


def _summary(read=(0, 0), written=(0, 0), result=(0, 0), elapsed_ns: int = 0) -> dict[str, str]:
    return {
        "read_rows": str(read[0]), "read_bytes": str(read[1]),
        "written_rows": str(written[0]), "written_bytes": str(written[1]),
        "total_rows_to_read": str(read[0]), "result_rows": str(result[0]), "result_bytes": str(result[1]),
        "elapsed_ns": str(elapsed_ns),
    }


def _close_quietly(handle: Any) -> None:
    if handle is None:
        return
    with contextlib.suppress(Exception):  # closing on shutdown/expiry must not fail
        handle.close()

"""The ClickHouse front against hostile clients (issue 11): files, network, multi-statements, accounts,
request bodies and connections, each attack reproduced against a real front process."""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import os
import socket
import threading
import time
import urllib.parse
import zlib
from dataclasses import dataclass
from pathlib import Path

import clickhouse_connect
import psutil
import pytest

from lakehouse.clickhouse.front import Endpoint, dashboard_endpoint, files_root, http_client, temporary_front
from lakehouse.config import Config, load_config
from tests.conftest import isolated_env

MAX_BODY_MB = 8
MAX_DECODED_MB = 32
MAX_CONNECTIONS = 8


@dataclass
class Front:
    cfg: Config
    ep: Endpoint  # the writer
    dash: Endpoint  # the read-only dashboard account
    proc: psutil.Process  # the front's process

    @property
    def secrets_file(self) -> Path:
        return self.cfg.home / "secrets.json"

    def secret_values(self) -> list[str]:
        ch = self.cfg.clickhouse
        return [ch.password, ch.dashboard_password, self.cfg.catalog.token_secret, self.cfg.objectstore.secret_key]


def _front_process(port: int) -> psutil.Process:
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = p.cmdline()
        except psutil.Error:
            continue
        if "serve" in cmd and "--port" in cmd and str(port) in cmd:
            return p
    raise AssertionError(f"no front process on port {port}")


def _start(tmp_path_factory, name: str, **extra: str):
    base = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env = {**base, **isolated_env(tmp_path_factory.mktemp(name) / "home"),
           "LAKEHOUSE_CLICKHOUSE__MAX_BODY_MB": str(MAX_BODY_MB),
           "LAKEHOUSE_CLICKHOUSE__MAX_DECOMPRESSED_BODY_MB": str(MAX_DECODED_MB),
           "LAKEHOUSE_CLICKHOUSE__MAX_CONNECTIONS": str(MAX_CONNECTIONS), **extra}
    cfg = load_config(env=env)
    return cfg, temporary_front(cfg)


@pytest.fixture(scope="module")
def front(tmp_path_factory) -> Front:
    """One front (embedded mode: local file warehouse) with small limits, and a marts table."""
    cfg, ctx = _start(tmp_path_factory, "chhard")
    with ctx as ep:
        c = http_client(ep)
        c.command("CREATE TABLE prices (ticker String, close Float64, d Date) ENGINE = MergeTree ORDER BY (ticker, d)")
        c.insert("prices", [["AAA", 1.5, dt.date(2024, 1, 2)], ["BBB", 2.5, dt.date(2024, 1, 2)]],
                 column_names=["ticker", "close", "d"])
        c.command("CREATE TABLE notes (s String) ENGINE = MergeTree ORDER BY s")
        c.close()
        yield Front(cfg, ep, dashboard_endpoint(ep, cfg), _front_process(ep.port))


@pytest.fixture(scope="module")
def canary():
    """A local TCP service that counts connections: the front must never reach it."""
    srv = socket.create_server(("127.0.0.1", 0))
    hits: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(1)
                try:
                    hits.append(conn.recv(200))
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nCANARY")
                except OSError:
                    hits.append(b"")

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1], hits
    srv.close()


def _raw(ep: Endpoint, method: str, sql: str | None = None, params: dict | None = None, body: bytes | None = None,
         headers: dict | None = None, auth: bool = True, timeout: float = 60):
    """One request; returns (status, exception code or None, body text)."""
    params = dict(params or {})
    if method == "GET" and sql is not None:
        params["query"] = sql
    elif sql is not None:
        body = sql.encode()
    hdrs = dict(headers or {})
    if auth:
        hdrs["Authorization"] = "Basic " + base64.b64encode(f"{ep.user}:{ep.password}".encode()).decode()
    conn = http.client.HTTPConnection(ep.host, ep.port, timeout=timeout)
    try:
        conn.request(method, "/?" + urllib.parse.urlencode(params), body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read().decode("utf-8", "replace")
        return resp.status, resp.getheader("X-ClickHouse-Exception-Code"), data
    finally:
        conn.close()


def _allowed(results: list[tuple[str, tuple]]) -> list[str]:
    """The attempts the front did not refuse with ACCESS_DENIED (or the multi-statement syntax error)."""
    return [f"{what}: {r[0]} {r[1]} {r[2][:160]!r}" for what, r in results if r[1] not in ("497", "62", "164")]


# -- files and the network ---------------------------------------------------------------------------
def test_file_and_network_reads_are_refused_for_both_accounts_over_get_and_post(front, canary) -> None:
    port, hits = canary
    secrets = front.secrets_file
    assert secrets.exists()
    attacks = [
        f"SELECT * FROM file('{secrets}', 'RawBLOB')",
        f"SELECT file('{secrets}')",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        f"SELECT * FROM (SELECT * FROM (SELECT * FROM file('{secrets}', 'RawBLOB')))",
        f"WITH s AS (SELECT * FROM file('{secrets}', 'RawBLOB')) SELECT * FROM s",
        f"SELECT 1 WHERE 1 IN (SELECT length(raw_blob) FROM file('{secrets}', 'RawBLOB'))",
        f"SELECT * FROM /* hidden */ `file`('{secrets}', 'RawBLOB') -- comment",
        f"sElEcT * FrOm file('{secrets}', 'RawBLOB')",
        f"SELECT * FROM view(SELECT * FROM file('{secrets}', 'RawBLOB'))",
        f"DESCRIBE TABLE file('{secrets}', 'RawBLOB')",
        f"SELECT * FROM url('http://127.0.0.1:{port}/x', 'RawBLOB')",
        f"SELECT * FROM remote('127.0.0.1:{port}', system.one)",
        f"SELECT * FROM s3('http://127.0.0.1:{port}/bucket/key', 'RawBLOB')",
        f"SELECT * FROM postgresql('127.0.0.1:{port}', 'db', 't', 'u', 'p')",
        "SELECT * FROM executable('cat /etc/passwd', 'RawBLOB', 'x String')",
        f"EXPLAIN SELECT * FROM file('{secrets}', 'RawBLOB')",
    ]
    results = []
    for ep in (front.ep, front.dash):
        for method in ("GET", "POST"):
            for sql in attacks:
                results.append((f"{ep.user} {method} {sql}", _raw(ep, method, sql, {"database": "marts"})))
    assert not _allowed(results), "\n".join(_allowed(results))
    leaked = [w for w, r in results for s in front.secret_values() if s and s in r[2]]
    assert not leaked and "root:" not in "".join(r[2] for _, r in results)
    assert not hits, f"the front reached a local service: {hits}"


def test_writing_files_and_hiding_reads_in_ddl_are_refused(front, tmp_path) -> None:
    secrets = front.secrets_file
    out = tmp_path / "out"
    out.mkdir()
    attacks = [
        f"INSERT INTO FUNCTION file('{out}/w1.csv', 'CSV', 'a String') SELECT 'x'",
        f"SELECT 'x' INTO OUTFILE '{out}/w2.txt'",
        f"CREATE TABLE marts.f1 (a String) ENGINE = File(CSV, '{out}/w3.csv')",
        "CREATE TABLE marts.f2 (a String) ENGINE = File(CSV)",
        f"CREATE TABLE marts.f3 (a String) ENGINE = MergeTree ORDER BY a "
        f"SETTINGS disk = disk(type = local, path = '{out}/w4/')",
        f"CREATE DATABASE fsdb ENGINE = Filesystem('{out}')",
        f"BACKUP TABLE marts.prices TO File('{out}/w5')",
        f"CREATE VIEW marts.v1 AS SELECT * FROM file('{secrets}', 'RawBLOB')",
        f"CREATE TABLE marts.t1 AS file('{secrets}', 'RawBLOB')",
        f"CREATE TABLE marts.t2 (s String DEFAULT file('{secrets}')) ENGINE = MergeTree ORDER BY s",
        f"CREATE DICTIONARY marts.d1 (s String) PRIMARY KEY s SOURCE(FILE(path '{secrets}' format 'RawBLOB')) "
        "LAYOUT(FLAT()) LIFETIME(0)",
        f"CREATE FUNCTION leak AS () -> file('{secrets}')",
        f"INSERT INTO marts.notes FROM INFILE '{secrets}' FORMAT RawBLOB",
        f"INSERT INTO marts.notes SELECT * FROM file('{secrets}', 'RawBLOB')",
        f"ATTACH TABLE marts.a1 FROM '{out}' (a UInt8) ENGINE = MergeTree ORDER BY a",
    ]
    results = [(f"{ep.user} {sql}", _raw(ep, "POST", sql)) for ep in (front.ep, front.dash) for sql in attacks]
    assert not _allowed(results), "\n".join(_allowed(results))
    # VALUES data is data: an expression in it (file(), a subquery) is never evaluated, even when asked to
    for sql in (f"INSERT INTO marts.notes VALUES ((SELECT * FROM file('{secrets}', 'RawBLOB')))",
                f"INSERT INTO marts.notes VALUES (file('{secrets}'))",
                f"INSERT INTO marts.notes SETTINGS input_format_values_interpret_expressions = 1 "
                f"VALUES (file('{secrets}'))"):
        status, code, _ = _raw(front.ep, "POST", sql)
        assert status != 200, sql
    assert not list(out.rglob("*")), list(out.rglob("*"))
    c = http_client(front.ep)
    try:
        stored = "".join(r[0] for r in c.query("SELECT s FROM marts.notes").result_rows)
        assert not any(s and s in stored for s in front.secret_values())
        assert c.command("SELECT count() FROM system.tables WHERE database = 'marts' AND name IN "
                         "('f1', 'f2', 'f3', 'v1', 't1', 't2', 'd1', 'a1')") == 0
        assert c.command("SELECT count() FROM system.databases WHERE name = 'fsdb'") == 0
    finally:
        c.close()


def test_multi_statements_are_refused_and_get_stays_read_only(front, tmp_path) -> None:
    def marts_intact() -> bool:
        return _raw(front.ep, "GET", "EXISTS TABLE marts.prices")[2] == "1\n"

    for method, sql in [
        ("GET", "SELECT 1; DROP DATABASE marts"),
        ("GET", "SELECT 1 -- x\n; DROP TABLE marts.prices"),
        ("GET", "/* ; */ SELECT ';'; DROP TABLE marts.prices;"),
        ("GET", "SELECT $$;$$; DROP TABLE marts.prices"),
        ("POST", "SELECT 1; DROP TABLE marts.prices"),
        ("POST", "INSERT INTO marts.notes VALUES ('a'); DROP TABLE marts.prices"),
        ("POST", "INSERT INTO marts.notes FORMAT TSV\nb\n; DROP TABLE marts.prices"),
    ]:
        status, code, body = _raw(front.ep, method, sql)
        assert marts_intact(), f"{method} {sql!r} dropped a table ({status} {body[:200]})"
    # every statement of a GET is read-only, whatever its first keyword
    for sql in [
        f"WITH 1 AS x INSERT INTO FUNCTION file('{tmp_path}/g1.csv', 'CSV', 'a UInt8') SELECT x",
        "WITH 1 AS x INSERT INTO marts.notes SELECT toString(x)",
        "INSERT INTO marts.notes SELECT 'g'",
        "CREATE TABLE marts.g (a UInt8) ENGINE = Memory",
        "(SELECT 1) ; DROP TABLE marts.prices",
    ]:
        status, code, body = _raw(front.ep, "GET", sql)
        assert code in ("164", "497", "62"), f"GET {sql!r}: {status} {code} {body[:200]}"
    assert not list(tmp_path.rglob("*.csv"))
    assert _raw(front.ep, "GET", "SELECT count() FROM marts.notes WHERE s IN ('g', '1')")[2] == "0\n"
    assert marts_intact()


def test_system_kill_dangerous_settings_and_named_collections(front) -> None:
    refused = []
    for ep in (front.ep, front.dash):
        for sql, params in [
            ("SYSTEM DROP DNS CACHE", {}),
            ("SYSTEM FLUSH LOGS", {}),
            ("KILL QUERY WHERE 1", {}),
            ("SET dialect = 'prql'", {"session_id": f"s-{ep.user}"}),
            ("SELECT 1", {"dialect": "kusto"}),
            ("SELECT 1 SETTINGS allow_introspection_functions = 1", {}),
            ("SET input_format_values_interpret_expressions = 1", {"session_id": f"s-{ep.user}"}),
            ("SELECT 1", {"input_format_values_interpret_expressions": "1"}),
            ("SELECT * FROM marts.prices SETTINGS additional_table_filters = {'prices': 'file(\\'x\\') != \\'\\''}",
             {}),
            ("SET default_table_engine = 'File'", {"session_id": f"s-{ep.user}"}),
            ("SELECT 1 SETTINGS format_schema = '/etc/passwd:Message'", {}),
            ("SELECT 1", {"input_format_record_errors_file_path": "/tmp/x"}),
            ("SELECT 1", {"select": f"file('{front.secrets_file}')"}),  # settings that wrap the query in SQL
            ("SELECT 1", {"filter": "length(file('/etc/passwd')) > 0"}),
            ("SELECT * FROM named_collections SETTINGS database = 'system'", {}),
            ("SET param_t = 'system.named_collections'", {"session_id": f"s-{ep.user}"}),
            ("CREATE NAMED COLLECTION other AS url = 'http://127.0.0.1:1/'", {}),
            ("CREATE USER intruder IDENTIFIED BY 'x'", {}),
            ("GRANT ALL ON *.* TO dashboard", {}),
        ]:
            refused.append((f"{ep.user} {sql} {params}", _raw(ep, "POST", sql, params)))
    assert not _allowed(refused), "\n".join(_allowed(refused))

    # the platform's collection (object store keys, for icebergS3) may be made by the writer, never read back
    assert _raw(front.ep, "POST", "DROP NAMED COLLECTION IF EXISTS lake_s3")[0] == 200
    create = "CREATE NAMED COLLECTION lake_s3 AS access_key_id = 'AKIAEXAMPLE', secret_access_key = 'topsecret-42'"
    assert _raw(front.dash, "POST", create)[1] == "497"
    assert _raw(front.ep, "POST", create)[0] == 200
    for ep in (front.ep, front.dash):
        for sql in ("SELECT * FROM system.named_collections", "SELECT collection FROM `system`.`named_collections`",
                    "SELECT 1 WHERE ('lake_s3', map()) IN system.named_collections"):
            status, code, body = _raw(ep, "POST", sql)
            assert code == "497" and "topsecret" not in body, (ep.user, sql, body[:200])
        for sql, params in [("SELECT * FROM named_collections", {"database": "system"}),
                            ("SELECT * FROM {t:Identifier}", {"param_t": "system.named_collections"}),
                            ("SELECT * FROM system.{t:Identifier}", {"param_t": "named_collections"}),
                            ("SELECT * FROM {d:Identifier}.{t:Identifier}",
                             {"param_d": "system", "param_t": "named_collections"})]:
            status, code, body = _raw(ep, "POST", sql, params)
            assert code == "497" and "topsecret" not in body, (ep.user, sql, params, body[:200])
    # ... nor pointed somewhere else
    assert _raw(front.ep, "POST", "DROP NAMED COLLECTION lake_s3")[0] == 200
    evil = "CREATE NAMED COLLECTION lake_s3 AS access_key_id = 'k', secret_access_key = 's', url = 'http://x/'"
    assert _raw(front.ep, "POST", evil)[1] == "497"


def test_lake_readers_only_inside_the_warehouse(front, tmp_path) -> None:
    wh = files_root(front.cfg)
    assert wh == Path(front.cfg.warehouse_dir)
    if not (wh / "escape").is_symlink():
        (wh / "escape").symlink_to("/etc", target_is_directory=True)
    path_setting = "iceberg_metadata_file_path"
    meta = f"SETTINGS {path_setting} = 'metadata/v1.metadata.json'"
    refused = [
        (front.ep, "SELECT * FROM icebergLocal('/etc')"),
        (front.ep, f"SELECT * FROM icebergLocal('{wh}/../')"),
        (front.ep, f"SELECT * FROM icebergLocal('{wh}/escape')"),
        (front.ep, f"SELECT * FROM icebergLocal('{wh}/t', SETTINGS {path_setting} = '../../../etc/passwd')"),
        (front.ep, f"SELECT * FROM icebergLocal('{wh}/t', SETTINGS {path_setting} = '/etc/passwd')"),
        (front.ep, f"SELECT * FROM icebergLocal('{wh}/*', {meta})"),
        (front.ep, f"INSERT INTO FUNCTION icebergLocal('{wh}/t') SELECT 1"),
        (front.ep, f"CREATE TABLE marts.il AS icebergLocal('{wh}/t')"),
        (front.ep, "SELECT * FROM icebergS3(lake_s3, url = 'http://127.0.0.1:1/b/')"),  # no S3 warehouse here
        (front.ep, f"SELECT * FROM iceberg('{wh}/t')"),
        (front.dash, f"SELECT * FROM icebergLocal('{wh}/t', {meta})"),
    ]
    results = [(f"{ep.user} {sql}", _raw(ep, "POST", sql)) for ep, sql in refused]
    assert not _allowed(results), "\n".join(_allowed(results))
    # inside the warehouse the writer's reader is judged fine (chdb then says the table is not there)
    status, code, body = _raw(front.ep, "POST", f"SELECT * FROM icebergLocal('{wh}/no_such_table', {meta})")
    assert status != 200 and code not in ("497", None), body


def test_the_dashboard_account_reads_marts_like_superset_and_writes_nothing(front) -> None:
    import sqlalchemy as sa

    dash = front.dash
    c = http_client(dash)
    try:
        assert c.command("SELECT version()")
        assert c.query("SELECT ticker, close FROM prices ORDER BY ticker").result_rows == [("AAA", 1.5), ("BBB", 2.5)]
        assert ("prices",) in c.query("SHOW TABLES").result_rows
        assert [r[0] for r in c.query("DESCRIBE TABLE prices").result_rows] == ["ticker", "close", "d"]
        assert c.command("EXISTS TABLE marts.prices") == 1
        assert c.query("SELECT name, type FROM system.columns WHERE database = 'marts' AND table = 'prices'").row_count
        assert c.query("SELECT name, engine FROM system.tables WHERE database = 'marts'").row_count >= 2
        assert c.query("SELECT name FROM system.functions UNION ALL SELECT name FROM system.table_functions "
                       "LIMIT 10000").row_count > 100
        assert c.query("SELECT name, value, readonly FROM system.settings LIMIT 10000").row_count
        assert c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'").row_count
        assert c.query("SELECT count() FROM numbers(10)").result_rows == [(10,)]
        assert c.command("SELECT 1", settings={"max_threads": 1}) == 1
    finally:
        c.close()
    engine = sa.create_engine(f"clickhousedb://{dash.user}:{dash.password}@{dash.host}:{dash.port}/{dash.database}")
    try:
        insp = sa.inspect(engine)
        assert "marts" in insp.get_schema_names()
        assert "prices" in insp.get_table_names()
        assert insp.has_table("prices")
        assert insp.get_view_names() == []
        assert {col["name"] for col in insp.get_columns("prices")} == {"ticker", "close", "d"}
        with engine.connect() as conn:
            got = conn.execute(sa.text("SELECT ticker FROM prices WHERE close > :c"), {"c": 2}).fetchall()
            assert got == [("BBB",)]
    finally:
        engine.dispose()

    denied = [
        "CREATE TABLE marts.x (a UInt8) ENGINE = MergeTree ORDER BY a",
        "CREATE TEMPORARY TABLE tmp (a UInt8)",
        "INSERT INTO marts.notes VALUES ('dash')",
        "INSERT INTO marts.notes SELECT 'dash'",
        "INSERT INTO marts.notes FORMAT TSV\ndash\n",
        "ALTER TABLE marts.prices DELETE WHERE 1",
        "DELETE FROM marts.prices WHERE 1",
        "TRUNCATE TABLE marts.prices",
        "DROP TABLE marts.prices",
        "RENAME TABLE marts.prices TO marts.p2",
        "OPTIMIZE TABLE marts.prices FINAL",
        "CREATE DATABASE dashdb",
        "SELECT * FROM default.secret_stuff",
        "SELECT query FROM system.processes",
        "SELECT * FROM system.query_log",
        "SELECT * FROM merge('system', '^named')",
    ]
    results = [(sql, _raw(dash, "POST", sql, {"database": "marts"})) for sql in denied]
    assert not _allowed(results), "\n".join(_allowed(results))
    assert _raw(front.ep, "GET", "SELECT count() FROM marts.prices")[2] == "2\n"
    assert _raw(front.ep, "GET", "SELECT count() FROM marts.notes WHERE s = 'dash'")[2] == "0\n"
    # a session belongs to its account: the writer's session id gives the dashboard nothing of it
    shared = {"session_id": "shared-session"}
    assert _raw(front.ep, "POST", "CREATE TEMPORARY TABLE writer_tmp (a UInt8)", shared)[0] == 200
    assert _raw(front.ep, "POST", "EXISTS TEMPORARY TABLE writer_tmp", shared)[2] == "1\n"
    assert _raw(dash, "POST", "EXISTS TEMPORARY TABLE writer_tmp", shared)[2] == "0\n"


# -- bodies and connections --------------------------------------------------------------------------
def test_an_unauthenticated_body_is_refused_before_it_is_read(front) -> None:
    rss_before = front.proc.memory_info().rss
    size = 300 << 20
    s = socket.create_connection((front.ep.host, front.ep.port), timeout=30)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
    chunk, sent = b"x" * (1 << 20), 0
    try:
        while sent < size:
            s.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass  # the front closed the connection
    s.close()
    grown = front.proc.memory_info().rss - rss_before
    assert sent < size, "the front read a 300 MB body from an unauthenticated client"
    assert grown < 48 << 20, f"the front's memory grew by {grown >> 20} MB"
    # Expect: 100-continue: refused before the client sends anything
    s = socket.create_connection((front.ep.host, front.ep.port), timeout=30)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n")
    reply = s.recv(4096)
    s.close()
    assert reply.startswith(b"HTTP/1.1 401") and b"516" in reply, reply[:200]
    # ... while an authenticated one is invited to send its body
    auth = base64.b64encode(f"{front.ep.user}:{front.ep.password}".encode())
    s = socket.create_connection((front.ep.host, front.ep.port), timeout=30)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + auth
              + b"\r\nContent-Length: 13\r\nExpect: 100-continue\r\n\r\n")
    assert s.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(b"SELECT 40 + 2")
    reply = s.recv(4096)
    s.close()
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"\r\n\r\n42\n"), reply
    # a small unauthenticated body still gets a clean answer
    assert _raw(front.ep, "POST", "SELECT 1", auth=False)[:2] == (401, "516")


def test_oversized_bodies_are_refused_with_413(front) -> None:
    cap = MAX_BODY_MB << 20
    auth = base64.b64encode(f"{front.ep.user}:{front.ep.password}".encode())
    s = socket.create_connection((front.ep.host, front.ep.port), timeout=30)
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + auth
              + b"\r\nContent-Length: %d\r\n\r\nSELECT 1 -- " % (cap + 1))
    reply = s.recv(4096)  # answered at once, from the declared length: the body is never read
    s.close()
    assert reply.startswith(b"HTTP/1.1 413") and b"X-ClickHouse-Exception-Code: 392" in reply, reply[:300]
    assert b"QUERY_IS_TOO_LARGE" in reply
    # chunked: counted as it arrives
    conn = http.client.HTTPConnection(front.ep.host, front.ep.port, timeout=60)

    def pieces():
        yield b"SELECT 1 -- "
        for _ in range(MAX_BODY_MB + 2):
            yield b"x" * (1 << 20)

    try:
        conn.request("POST", "/", body=pieces(), headers={"Authorization": b"Basic " + auth}, encode_chunked=True)
        resp = conn.getresponse()
        assert (resp.status, resp.getheader("X-ClickHouse-Exception-Code")) == (413, "392")
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused and closed while the client was still sending: also not read
    finally:
        conn.close()
    # under the cap is fine
    rows = b"".join(b"pad%07d\n" % i for i in range(200_000))  # 2.2 MB
    assert _raw(front.ep, "POST", None, body=b"INSERT INTO marts.notes FORMAT TSV\n" + rows)[0] == 200
    assert _raw(front.ep, "GET", "SELECT count() FROM marts.notes WHERE s LIKE 'pad%'")[2] == "200000\n"


def test_a_zip_bomb_is_refused_at_the_decompressed_cap(front) -> None:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip
    parts = [comp.compress(b"SELECT 1 /* ")]
    parts += [comp.compress(bytes(1 << 20)) for _ in range(8 * MAX_DECODED_MB)]  # 256 MB of zeros
    bomb = b"".join(parts) + comp.compress(b" */") + comp.flush()
    assert len(bomb) < 1 << 20
    rss_before = front.proc.memory_info().rss
    status, code, body = _raw(front.ep, "POST", None, body=bomb, headers={"Content-Encoding": "gzip"})
    grown = front.proc.memory_info().rss - rss_before
    assert (status, code) == (413, "392"), (status, code, body[:200])
    assert grown < 4 * MAX_DECODED_MB << 20, f"the front's memory grew by {grown >> 20} MB"


def test_many_connections_do_not_create_unbounded_threads(front) -> None:
    time.sleep(0.5)
    threads_before = front.proc.num_threads()
    socks = []
    try:
        for _ in range(8 * MAX_CONNECTIONS):
            socks.append(socket.create_connection((front.ep.host, front.ep.port), timeout=10))
        for s in socks[::2]:
            s.sendall(b"GET /?query=SELECT")  # a request line that never ends
        time.sleep(1.0)
        grown = front.proc.num_threads() - threads_before
        assert grown <= MAX_CONNECTIONS + 2, f"{grown} new threads for {len(socks)} connections"
    finally:
        for s in socks:
            s.close()
    # the slots come back: the front answers again
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if _raw(front.ep, "GET", "SELECT 7", timeout=10)[2] == "7\n":
                break
        except OSError:
            time.sleep(0.2)
    else:
        raise AssertionError("the front did not answer after the connections closed")


def test_chdbs_files_root_never_holds_the_state_dir(tmp_path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    home = tmp_path / "home"
    services = load_config(env={**base, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_GENERAL__MODE": "services"})
    root = files_root(services).resolve()
    assert root != home.resolve() and root not in home.resolve().parents  # the state dir is not under it
    assert not list(root.rglob("secrets.json"))
    embedded = load_config(env={**base, "LAKEHOUSE_HOME": str(home)})
    assert files_root(embedded) == embedded.warehouse_dir
    around = load_config(env={**base, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_CATALOG__WAREHOUSE": tmp_path.as_uri()})
    with pytest.raises(RuntimeError, match="contains the state dir"):
        files_root(around)


def test_clients_report_refusals_with_clickhouse_codes(front) -> None:
    c = clickhouse_connect.get_client(host=front.dash.host, port=front.dash.port, username=front.dash.user,
                                      password=front.dash.password, database="marts")
    try:
        with pytest.raises(Exception) as err:
            c.command("DROP TABLE prices")
        assert "497" in str(err.value) and "read-only" in str(err.value)
    finally:
        c.close()

"""The ClickHouse HTTP front over chdb, driven by the real clients (clickhouse-connect, SQLAlchemy
``clickhousedb://``) and by raw HTTP, against a real front process on a free loopback port."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import http.client
import json
import os
import socket
import threading
import urllib.parse

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from lakehouse.clickhouse.front import Endpoint, http_client, temporary_front
from lakehouse.config import load_config
from tests.conftest import isolated_env


@pytest.fixture(scope="module")
def ep(tmp_path_factory) -> Endpoint:
    """One real front (child process) on an isolated state dir for the whole module."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env = {**base, **isolated_env(tmp_path_factory.mktemp("chfront") / "home")}
    cfg = load_config(env=env)
    with temporary_front(cfg) as endpoint:
        yield endpoint


@pytest.fixture
def client(ep):
    c = http_client(ep)
    yield c
    c.close()


def _raw(ep: Endpoint, method: str, params: dict, body: bytes | None = None, headers: dict | None = None,
         auth: bool = True):
    """One raw HTTP request; returns (status, headers dict, body bytes)."""
    conn = http.client.HTTPConnection(ep.host, ep.port, timeout=30)
    hdrs = dict(headers or {})
    if auth:
        hdrs["Authorization"] = "Basic " + base64.b64encode(f"{ep.user}:{ep.password}".encode()).decode()
    conn.request(method, "/?" + urllib.parse.urlencode(params), body=body, headers=hdrs)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def test_ping_and_authentication(ep) -> None:
    status, _, body = _raw(ep, "GET", {}, auth=False)
    assert (status, body) == (200, b"Ok.\n")
    conn = http.client.HTTPConnection(ep.host, ep.port, timeout=10)
    conn.request("GET", "/ping")
    assert conn.getresponse().read() == b"Ok.\n"

    status, headers, body = _raw(ep, "POST", {}, b"SELECT 1", auth=False)
    assert status == 401 and headers["x-clickhouse-exception-code"] == "516"
    assert b"Authentication failed" in body
    status, headers, _ = _raw(ep, "POST", {}, b"SELECT 1", auth=False,
                              headers={"X-ClickHouse-User": ep.user, "X-ClickHouse-Key": "wrong"})
    assert status == 401 and headers["x-clickhouse-exception-code"] == "516"
    status, _, body = _raw(ep, "POST", {}, b"SELECT 41+1", auth=False,
                           headers={"X-ClickHouse-User": ep.user, "X-ClickHouse-Key": ep.password})
    assert (status, body) == (200, b"42\n")
    with pytest.raises(DatabaseError) as err:
        clickhouse_connect.get_client(host=ep.host, port=ep.port, username=ep.user, password="nope")
    assert "516" in str(err.value)


def test_query_arrow_dataframe_and_headers(ep, client) -> None:
    assert client.server_version.count(".") >= 2
    assert client.database == ep.database
    rows = client.query("SELECT number AS n, toString(number) AS s FROM numbers(5) ORDER BY n").result_rows
    assert rows == [(i, str(i)) for i in range(5)]
    table = client.query_arrow("SELECT number AS n, toDate('2024-01-01') + number AS d FROM numbers(3)")
    assert table.num_rows == 3 and table.column_names == ["n", "d"]
    assert table.column("d").to_pylist()[-1] == dt.date(2024, 1, 3)
    df = client.query_df("SELECT number AS n, number * 1.5 AS x FROM numbers(4)")
    assert list(df["x"]) == [0.0, 1.5, 3.0, 4.5]

    status, headers, body = _raw(ep, "POST", {"query_id": "q-123", "database": ep.database},
                                 b"SELECT currentDatabase() AS db, 2 AS two FORMAT JSONEachRow")
    assert status == 200 and json.loads(body) == {"db": ep.database, "two": 2}
    assert headers["x-clickhouse-format"] == "JSONEachRow"
    assert headers["x-clickhouse-query-id"] == "q-123"
    assert headers["x-clickhouse-timezone"]
    assert headers["x-clickhouse-server-display-name"]
    assert json.loads(headers["x-clickhouse-summary"])["result_rows"] == "1"
    status, headers, body = _raw(ep, "GET", {"query": "SELECT 'a\tb' AS x"})
    assert (status, body) == (200, b"a\\tb\n") and headers["x-clickhouse-format"] == "TabSeparated"


def test_insert_compression_and_bound_parameters(ep, client) -> None:
    client.command("CREATE TABLE IF NOT EXISTS ins (id UInt32, s String, d Date, f Nullable(Float64)) "
                   "ENGINE = MergeTree ORDER BY id")
    client.command("TRUNCATE TABLE ins")
    rows = [[1, "one", dt.date(2024, 1, 1), 1.5], [2, "two", dt.date(2024, 1, 2), None]]
    client.insert("ins", rows, column_names=["id", "s", "d", "f"])
    for i, comp in enumerate(("lz4", "zstd", "gzip"), start=10):
        c = http_client(ep, compress=comp)
        c.insert("ins", [[i, comp, dt.date(2024, 2, 1), float(i)]], column_names=["id", "s", "d", "f"])
        assert c.query("SELECT s FROM ins WHERE id = {i:UInt32}", parameters={"i": i}).result_rows == [(comp,)]
        c.close()
    got = client.query("SELECT id, s, d, f FROM ins ORDER BY id").result_rows
    assert got[:2] == [(1, "one", dt.date(2024, 1, 1), 1.5), (2, "two", dt.date(2024, 1, 2), None)]
    assert [r[0] for r in got] == [1, 2, 10, 11, 12]

    assert client.query("SELECT {x:UInt32} + 1, {s:String}", parameters={"x": 41, "s": "it's"}).result_rows == [
        (42, "it's")
    ]
    assert client.query("SELECT %(x)s * 2", parameters={"x": 21}).result_rows == [(42,)]

    # gzip request body + gzip response, query text in the URL and TSV data in the body
    status, _, _ = _raw(ep, "POST", {"query": "INSERT INTO ins (id, s, d) FORMAT TabSeparated",
                                     "database": ep.database},
                        gzip.compress(b"20\tgz\t2024-03-01\n21\tgz\t2024-03-02\n"), {"Content-Encoding": "gzip"})
    assert status == 200
    status, headers, body = _raw(ep, "POST", {"database": ep.database, "enable_http_compression": "1"},
                                 b"SELECT count() FROM ins WHERE s = 'gz'", {"Accept-Encoding": "gzip"})
    assert headers.get("content-encoding") == "gzip" and gzip.decompress(body) == b"2\n"


def test_chunked_request_body(ep) -> None:
    conn = http.client.HTTPConnection(ep.host, ep.port, timeout=30)
    auth = "Basic " + base64.b64encode(f"{ep.user}:{ep.password}".encode()).decode()
    conn.putrequest("POST", "/?" + urllib.parse.urlencode({"database": ep.database}))
    conn.putheader("Authorization", auth)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for piece in (b"SELECT sum(number) ", b"FROM numbers(", b"101)"):
        conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, b"5050\n")
    conn.close()


def test_errors_carry_clickhouse_codes(ep, client) -> None:
    with pytest.raises(DatabaseError) as err:
        client.query("SELECT * FROM no_such_table")
    assert err.value.code == 60 and "UNKNOWN_TABLE" in str(err.value)
    with pytest.raises(DatabaseError) as err:
        client.command("SELEC 1")
    assert err.value.code == 62
    status, headers, body = _raw(ep, "POST", {"database": "no_such_db"}, b"SELECT 1")
    assert status == 500 and headers["x-clickhouse-exception-code"] == "81"
    assert body.startswith(b"Code: 81. DB::Exception:") and b"(version " in body
    status, headers, _ = _raw(ep, "GET", {"query": "CREATE TABLE x (a UInt8) ENGINE = Memory"})
    assert status == 500 and headers["x-clickhouse-exception-code"] == "164"  # GET is read-only
    status, headers, _ = _raw(ep, "POST", {}, b"")
    assert headers["x-clickhouse-exception-code"] == "62"
    for session in ({}, {"session_id": "bad-setting"}):
        status, headers, _ = _raw(ep, "POST", {**session, "no_such_setting_xyz": "1"}, b"SELECT 1")
        assert status == 500 and headers["x-clickhouse-exception-code"] == "115"
    assert _raw(ep, "POST", {"session_id": "bad-setting"}, b"SELECT 1")[:3:2] == (200, b"1\n")
    # the server is still fine after errors
    assert client.command("SELECT 1") == 1


def test_sessions_do_not_leak_settings_or_database(ep) -> None:
    a = http_client(ep)
    b = http_client(ep)
    try:
        a.command("SET max_threads = 1")
        b.command("SET max_threads = 3")
        a.command("CREATE TEMPORARY TABLE tmp_a (x UInt8)")
        barrier = threading.Barrier(2)
        seen: dict[str, list] = {"a": [], "b": []}

        def probe(name, c) -> None:
            barrier.wait()
            for _ in range(20):
                seen[name].append(c.command("SELECT getSetting('max_threads')"))

        threads = [threading.Thread(target=probe, args=("a", a)), threading.Thread(target=probe, args=("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert set(seen["a"]) == {1} and set(seen["b"]) == {3}
        # a per-request setting applies to that request only
        assert a.command("SELECT getSetting('max_threads')", settings={"max_threads": 2}) == 2
        assert a.command("SELECT getSetting('max_threads')") == 1
        # temporary tables belong to their session
        assert a.command("EXISTS TEMPORARY TABLE tmp_a") == 1
        assert b.command("EXISTS TEMPORARY TABLE tmp_a") == 0
        # USE inside a session; database parameter per request; sessionless requests are clean
        status, _, body = _raw(ep, "POST", {"session_id": "s-use"}, b"USE system")
        assert status == 200
        assert _raw(ep, "POST", {"session_id": "s-use"}, b"SELECT currentDatabase()")[2] == b"system\n"
        assert _raw(ep, "POST", {"session_id": "s-use", "database": ep.database},
                    b"SELECT currentDatabase()")[2] == f"{ep.database}\n".encode()
        assert _raw(ep, "POST", {"session_id": "s-use"}, b"SELECT currentDatabase()")[2] == b"system\n"
        assert _raw(ep, "POST", {}, b"SELECT currentDatabase()")[2] == b"default\n"
        status, headers, _ = _raw(ep, "POST", {"session_id": "never-made", "session_check": "1"}, b"SELECT 1")
        assert status == 500 and headers["x-clickhouse-exception-code"] == "372"
    finally:
        a.close()
        b.close()


def test_concurrent_clients(ep) -> None:
    setup = http_client(ep)
    setup.command("CREATE TABLE IF NOT EXISTS conc (w UInt8, i UInt32) ENGINE = MergeTree ORDER BY (w, i)")
    setup.command("TRUNCATE TABLE conc")
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        try:
            c = http_client(ep)
            for i in range(15):
                c.insert("conc", [[w, i]], column_names=["w", "i"])
                total = c.query("SELECT sum(number) FROM numbers({n:UInt32})", parameters={"n": i + 1})
                assert total.result_rows == [(i * (i + 1) // 2,)]
            c.close()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert setup.query("SELECT w, count() FROM conc GROUP BY w ORDER BY w").result_rows == [(w, 15) for w in range(6)]
    setup.close()


def test_client_disconnect_cancels_nothing_else(ep, client) -> None:
    auth = base64.b64encode(f"{ep.user}:{ep.password}".encode()).decode()
    sql = b"SELECT sum(cityHash64(number)) FROM numbers(200000000)"
    for _ in range(3):
        s = socket.create_connection((ep.host, ep.port))
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + auth.encode()
                  + b"\r\nContent-Length: %d\r\n\r\n" % len(sql) + sql)
        s.close()  # gone before the answer
    assert client.query("SELECT 7").result_rows == [(7,)]
    # a body cut short by the client is never executed (no partial insert)
    client.command("CREATE TABLE IF NOT EXISTS cut (a UInt32) ENGINE = MergeTree ORDER BY a")
    data = b"INSERT INTO cut FORMAT TSV\n1\n2\n3\n"
    s = socket.create_connection((ep.host, ep.port))
    s.sendall(b"POST /?database=" + ep.database.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
              + auth.encode() + b"\r\nContent-Length: %d\r\n\r\n" % (len(data) + 100) + data)
    s.shutdown(socket.SHUT_WR)
    s.recv(100)
    s.close()
    assert client.command("SELECT count() FROM cut") == 0


def test_sqlalchemy_clickhousedb_dialect(ep, client) -> None:
    import sqlalchemy as sa

    client.command("CREATE TABLE IF NOT EXISTS sa_t (ticker String, close Float64, d Date) "
                   "ENGINE = MergeTree ORDER BY (ticker, d)")
    client.command("TRUNCATE TABLE sa_t")
    client.insert("sa_t", [["AAA", 1.0, dt.date(2024, 1, 1)], ["BBB", 2.0, dt.date(2024, 1, 1)]],
                  column_names=["ticker", "close", "d"])
    engine = sa.create_engine(f"clickhousedb://{ep.user}:{ep.password}@{ep.host}:{ep.port}/{ep.database}")
    insp = sa.inspect(engine)
    assert "sa_t" in insp.get_table_names()
    assert ep.database in insp.get_schema_names()
    cols = {c["name"]: str(c["type"]) for c in insp.get_columns("sa_t")}
    assert cols == {"ticker": "String", "close": "Float64", "d": "Date"}
    with engine.connect() as conn:
        got = conn.execute(sa.text("SELECT ticker, close FROM sa_t WHERE close > :c ORDER BY ticker"), {"c": 1.5})
        assert got.fetchall() == [("BBB", 2.0)]
    engine.dispose()

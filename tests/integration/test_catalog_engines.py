"""DuckDB and ClickHouse (chdb) through the REST catalog, on a local-file warehouse and on S3 (SeaweedFS)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable

import duckdb
import pyarrow as pa
import pytest

from catalog.server import PLATFORM_CLIENT
from lakehouse.transform.duck import connect
from tests.catalog_support import catalog_server, rest_catalog
from tests.conftest import applied_env, isolated_env


@pytest.fixture(autouse=True)
def _cwd_in_tmp(tmp_path, monkeypatch):
    """DuckDB's iceberg extension creates an empty ``data/`` folder in the working directory when it
    plans a CTAS into an Iceberg table; keep that out of the repository."""
    monkeypatch.chdir(tmp_path)


def _duck(uri: str):
    con = connect()
    con.execute(f"ATTACH 'lakehouse' AS lake (TYPE iceberg, ENDPOINT '{uri}', AUTHORIZATION_TYPE 'none')")
    return con


def _exercise_duckdb(cat, connect_lake: Callable[[], duckdb.DuckDBPyConnection], ns: str) -> None:
    """SELECT / CREATE TABLE / CTAS / INSERT / UPDATE / DELETE through DuckDB, cross-checked with pyiceberg
    (``cat``); ``connect_lake()`` gives a DuckDB connection with the same catalog attached as ``lake``."""
    cat.create_namespace(ns)
    src = cat.create_table(f"{ns}.from_pyiceberg", schema=pa.schema([("ticker", pa.string()), ("close", pa.float64())]))
    src.append(pa.table({"ticker": ["AAPL", "MSFT", "IBM"], "close": [1.0, 2.0, 3.0]}))

    con = connect_lake()
    try:
        assert con.execute(f"SELECT sum(close) FROM lake.{ns}.from_pyiceberg").fetchone()[0] == 6.0
        con.execute(f"CREATE TABLE lake.{ns}.made_by_duck (id INTEGER, name VARCHAR)")
        con.execute(f"INSERT INTO lake.{ns}.made_by_duck VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        con.execute(f"CREATE TABLE lake.{ns}.ctas AS SELECT ticker, close * 2 AS doubled FROM lake.{ns}.from_pyiceberg")
        con.execute(f"UPDATE lake.{ns}.made_by_duck SET name = 'z' WHERE id = 1")
        con.execute(f"DELETE FROM lake.{ns}.made_by_duck WHERE id = 2")
        rows = con.execute(f"SELECT id, name FROM lake.{ns}.made_by_duck ORDER BY id").fetchall()
        assert rows == [(1, "z"), (3, "c")]
        assert con.execute(f"SELECT sum(doubled) FROM lake.{ns}.ctas").fetchone()[0] == 12.0
        # DELETE + INSERT in one DuckDB transaction is one catalog transaction
        con.execute("BEGIN")
        con.execute(f"DELETE FROM lake.{ns}.ctas WHERE ticker = 'IBM'")
        con.execute(f"INSERT INTO lake.{ns}.ctas VALUES ('IBM', 100.0)")
        con.execute("COMMIT")
        assert con.execute(f"SELECT doubled FROM lake.{ns}.ctas WHERE ticker = 'IBM'").fetchall() == [(100.0,)]
    finally:
        con.close()

    # pyiceberg sees what DuckDB wrote
    got = cat.load_table(f"{ns}.made_by_duck").scan().to_arrow().sort_by("id").to_pylist()
    assert got == [{"id": 1, "name": "z"}, {"id": 3, "name": "c"}]
    assert cat.load_table(f"{ns}.ctas").scan().to_arrow().num_rows == 3


def test_duckdb_on_local_file_warehouse(tmp_path) -> None:
    with catalog_server(f"sqlite:///{tmp_path}/catalog.db", (tmp_path / "warehouse").as_uri()) as srv:
        _exercise_duckdb(rest_catalog(srv.url), lambda: _duck(srv.url), "duck_local")


@pytest.fixture(scope="module")
def s3_stack(tmp_path_factory):
    """SeaweedFS + the catalog service in services mode (s3:// warehouse), started once for the module."""
    from lakehouse.services.supervisor import down, up

    home = tmp_path_factory.mktemp("s3stack")
    env = {**isolated_env(home / "home"), "LAKEHOUSE_GENERAL__MODE": "services"}
    with applied_env(env) as cfg:
        assert cfg.warehouse_uri.startswith("s3://")
        try:
            started = up(cfg, ["catalog"], echo=lambda *_: None)
            assert [s.name for s in started] == ["objectstore", "catalog"]  # the dependency came first
            yield cfg
        finally:
            down(cfg, ["catalog", "objectstore"], echo=lambda *_: None)


def _platform_token(cfg) -> str:
    import httpx

    r = httpx.post(f"{cfg.catalog_uri}/v1/oauth/tokens", data={
        "grant_type": "client_credentials", "client_id": PLATFORM_CLIENT, "client_secret": cfg.catalog.platform_secret,
    })
    r.raise_for_status()
    return r.json()["access_token"]


def test_config_hands_clients_the_s3_settings(s3_stack) -> None:
    """Auth is on by default in services mode: the catalog answers (and hands out the S3 settings) only
    to an authenticated client, such as the platform's built-in one."""
    import httpx

    cfg = s3_stack
    assert cfg.catalog.auth
    assert httpx.get(f"{cfg.catalog_uri}/v1/config").status_code == 401
    body = httpx.get(f"{cfg.catalog_uri}/v1/config", headers={"Authorization": f"Bearer {_platform_token(cfg)}"}).json()
    d = body["defaults"]
    assert d["s3.endpoint"] == cfg.s3_endpoint and d["s3.path-style-access"] == "true"
    assert d["s3.access-key-id"] == cfg.objectstore.access_key and d["s3.region"] == cfg.objectstore.region
    assert d["s3.secret-access-key"] == cfg.objectstore.secret_key


def test_duckdb_and_pyiceberg_on_s3(s3_stack) -> None:
    """The platform's clients (pyiceberg through open_lake, DuckDB through connect_lake) authenticate."""
    from lakehouse.lake import open_lake
    from lakehouse.transform.duck import connect_lake

    cfg = s3_stack
    with open_lake(cfg) as lake:
        assert lake.uri == cfg.catalog_uri and "credential" in lake.properties
        _exercise_duckdb(lake.catalog, lambda: connect_lake(lake, cfg), "duck_s3")
        loc = lake.catalog.load_table("duck_s3.made_by_duck").location()
    assert loc.startswith(f"s3://{s3_stack.objectstore.bucket}/warehouse/duck_s3/made_by_duck-")


CHDB_SCRIPT = textwrap.dedent("""
    import json, sys
    from chdb import session
    a = json.loads(sys.stdin.read())
    s = session.Session(a["path"])
    s.query("SET allow_database_iceberg = 1")
    s.query(f\"\"\"CREATE DATABASE lake ENGINE = DataLakeCatalog('{a["uri"]}/v1')
        SETTINGS catalog_type = 'rest', warehouse = 'lakehouse', storage_endpoint = '{a["endpoint"]}',
        catalog_credential = '{a["credential"]}', oauth_server_uri = '{a["uri"]}/v1/oauth/tokens',
        aws_access_key_id = '{a["key"]}', aws_secret_access_key = '{a["secret"]}', vended_credentials = false\"\"\")
    out = {"tables": [d["name"] for d in json.loads(s.query("SHOW TABLES FROM lake", "JSON").data())["data"]]}
    for q in a["queries"]:
        out[q] = json.loads(s.query(q, "JSONCompact").data())["data"]
    s.close()
    print(json.dumps(out))
""")


def test_chdb_reads_the_same_tables_on_s3(s3_stack, tmp_path) -> None:
    from lakehouse.lake import open_lake
    from lakehouse.transform.duck import connect_lake

    cfg = s3_stack
    with open_lake(cfg) as lake:
        cat = lake.catalog
        cat.create_namespace("ch")
        t = cat.create_table("ch.quotes", schema=pa.schema([("ticker", pa.string()), ("close", pa.float64())]))
        t.append(pa.table({"ticker": ["AAPL", "MSFT"], "close": [1.5, 2.5]}))
        t.append(pa.table({"ticker": ["IBM"], "close": [3.0]}))
        con = connect_lake(lake, cfg)
        con.execute("CREATE TABLE lake.ch.from_duck AS SELECT range AS n FROM range(5)")
        con.close()
    # args travel on the child's stdin, not its command line (they hold credentials)
    args = {
        "path": str(tmp_path / "chdb"), "uri": cfg.catalog_uri, "credential": lake.properties["credential"],
        "endpoint": f"{cfg.s3_endpoint}/{cfg.objectstore.bucket}",
        "key": cfg.objectstore.access_key, "secret": cfg.objectstore.secret_key,
        "queries": ["SELECT ticker, close FROM lake.`ch.quotes` ORDER BY ticker",
                    "SELECT sum(n) FROM lake.`ch.from_duck`"],
    }
    res = subprocess.run([sys.executable, "-c", CHDB_SCRIPT], input=json.dumps(args), capture_output=True, text=True,
                         timeout=180, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert {"ch.quotes", "ch.from_duck"} <= set(out["tables"])
    assert out[args["queries"][0]] == [["AAPL", 1.5], ["IBM", 3], ["MSFT", 2.5]]
    assert int(out[args["queries"][1]][0][0]) == 10


def test_metadata_put_lands_and_a_refused_put_is_an_error(s3_stack) -> None:
    """The catalog's metadata write (one signed PUT on a kept-alive connection, catalog.s3put) lands the exact
    bytes, reuses its connection, and a PUT the object store refuses is an error naming the status, never
    the secret."""
    from pyarrow.fs import S3FileSystem

    from catalog.s3put import S3PutError, S3Putter

    cfg, o = s3_stack, s3_stack.objectstore
    putter = S3Putter(cfg.s3_endpoint, o.access_key, o.secret_key, o.region)
    payloads = {f"putter-test/{i}-a b.json": json.dumps({"n": i, "pad": "x" * 5000 * i}).encode() for i in range(3)}
    for key, data in payloads.items():
        putter.put(o.bucket, key, data)
    conn = putter._local.conn  # noqa: SLF001 - the kept-alive connection is the point of the module
    putter.put(o.bucket, "putter-test/again.json", b"{}")
    assert putter._local.conn is conn  # noqa: SLF001
    fs = S3FileSystem(endpoint_override=cfg.s3_endpoint, access_key=o.access_key, secret_key=o.secret_key,
                      region=o.region)
    for key, data in payloads.items():
        with fs.open_input_stream(f"{o.bucket}/{key}") as f:
            assert f.read() == data
    bad = S3Putter(cfg.s3_endpoint, o.access_key, "not-the-secret", o.region)
    with pytest.raises(S3PutError, match=r"HTTP 403") as err:
        bad.put(o.bucket, "putter-test/refused.json", b"{}")
    assert "not-the-secret" not in str(err.value)
    assert not fs.get_file_info(f"{o.bucket}/putter-test/refused.json").is_file

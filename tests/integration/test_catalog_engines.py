"""DuckDB and ClickHouse (chdb) through the REST catalog, on a local-file warehouse and on S3 (SeaweedFS)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

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


def _exercise_duckdb(uri: str, ns: str) -> None:
    """SELECT / CREATE TABLE / CTAS / INSERT / UPDATE / DELETE through DuckDB, cross-checked with pyiceberg."""
    cat = rest_catalog(uri)
    cat.create_namespace(ns)
    src = cat.create_table(f"{ns}.from_pyiceberg", schema=pa.schema([("ticker", pa.string()), ("close", pa.float64())]))
    src.append(pa.table({"ticker": ["AAPL", "MSFT", "IBM"], "close": [1.0, 2.0, 3.0]}))

    con = _duck(uri)
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
        _exercise_duckdb(srv.url, "duck_local")


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


def test_config_hands_clients_the_s3_settings(s3_stack) -> None:
    import httpx

    cfg = s3_stack
    body = httpx.get(f"{cfg.catalog_uri}/v1/config").json()
    d = body["defaults"]
    assert d["s3.endpoint"] == cfg.s3_endpoint and d["s3.path-style-access"] == "true"
    assert d["s3.access-key-id"] == cfg.objectstore.access_key and d["s3.region"] == cfg.objectstore.region
    assert d["s3.secret-access-key"] == cfg.objectstore.secret_key


def test_duckdb_and_pyiceberg_on_s3(s3_stack) -> None:
    _exercise_duckdb(s3_stack.catalog_uri, "duck_s3")
    loc = rest_catalog(s3_stack.catalog_uri).load_table("duck_s3.made_by_duck").location()
    assert loc.startswith(f"s3://{s3_stack.objectstore.bucket}/warehouse/duck_s3/made_by_duck-")


CHDB_SCRIPT = textwrap.dedent("""
    import json, sys
    from chdb import session
    a = json.loads(sys.argv[1])
    s = session.Session(a["path"])
    s.query("SET allow_database_iceberg = 1")
    s.query(f\"\"\"CREATE DATABASE lake ENGINE = DataLakeCatalog('{a["uri"]}/v1')
        SETTINGS catalog_type = 'rest', warehouse = 'lakehouse', storage_endpoint = '{a["endpoint"]}',
        aws_access_key_id = '{a["key"]}', aws_secret_access_key = '{a["secret"]}', vended_credentials = false\"\"\")
    out = {"tables": [d["name"] for d in json.loads(s.query("SHOW TABLES FROM lake", "JSON").data())["data"]]}
    for q in a["queries"]:
        out[q] = json.loads(s.query(q, "JSONCompact").data())["data"]
    s.close()
    print(json.dumps(out))
""")


def test_chdb_reads_the_same_tables_on_s3(s3_stack, tmp_path) -> None:
    cfg = s3_stack
    cat = rest_catalog(cfg.catalog_uri)
    cat.create_namespace("ch")
    t = cat.create_table("ch.quotes", schema=pa.schema([("ticker", pa.string()), ("close", pa.float64())]))
    t.append(pa.table({"ticker": ["AAPL", "MSFT"], "close": [1.5, 2.5]}))
    t.append(pa.table({"ticker": ["IBM"], "close": [3.0]}))
    con = _duck(cfg.catalog_uri)
    con.execute("CREATE TABLE lake.ch.from_duck AS SELECT range AS n FROM range(5)")
    con.close()
    args = {
        "path": str(tmp_path / "chdb"), "uri": cfg.catalog_uri,
        "endpoint": f"{cfg.s3_endpoint}/{cfg.objectstore.bucket}",
        "key": cfg.objectstore.access_key, "secret": cfg.objectstore.secret_key,
        "queries": ["SELECT ticker, close FROM lake.`ch.quotes` ORDER BY ticker",
                    "SELECT sum(n) FROM lake.`ch.from_duck`"],
    }
    res = subprocess.run([sys.executable, "-c", CHDB_SCRIPT, json.dumps(args)], capture_output=True, text=True,
                         timeout=180, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert {"ch.quotes", "ch.from_duck"} <= set(out["tables"])
    assert out[args["queries"][0]] == [["AAPL", 1.5], ["IBM", 3], ["MSFT", 2.5]]
    assert int(out[args["queries"][1]][0][0]) == 10

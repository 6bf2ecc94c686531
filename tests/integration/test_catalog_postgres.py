"""The catalog on PostgreSQL (Debian's server binaries, a private instance under the test's temp dir)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from pyiceberg.exceptions import CommitFailedException

from tests.catalog_support import catalog_server, postgres_bin, postgres_server, rest_catalog, run_writers

pytestmark = pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL server binaries not installed "
                                "(.ci/run installs them: apt-get install -y postgresql)")


@pytest.fixture(scope="module")
def pg_catalog(tmp_path_factory):
    base = tmp_path_factory.mktemp("pg")
    with postgres_server(base / "pg") as url, catalog_server(url, (base / "warehouse").as_uri()) as srv:
        srv.db_url = url
        srv.warehouse = (base / "warehouse").as_uri()
        yield srv


def test_postgres_backend_end_to_end(pg_catalog) -> None:
    cat = rest_catalog(pg_catalog.url)
    cat.create_namespace("pg")
    cat.create_namespace(("pg", "nested"), {"k": "v"})
    assert cat.list_namespaces("pg") == [("pg", "nested")]
    t = cat.create_table("pg.t", schema=pa.schema([("id", pa.int64())]),
                         properties={"commit.retry.num-retries": "0"})
    t.append(pa.table({"id": pa.array([1, 2], pa.int64())}))
    stale = cat.load_table("pg.t")
    cat.load_table("pg.t").append(pa.table({"id": pa.array([3], pa.int64())}))
    with pytest.raises(CommitFailedException):
        stale.append(pa.table({"id": pa.array([4], pa.int64())}))
    assert sorted(cat.load_table("pg.t").scan().to_arrow()["id"].to_pylist()) == [1, 2, 3]
    cat.rename_table("pg.t", ("pg", "nested", "t"))
    assert cat.load_table(("pg", "nested", "t")).scan().to_arrow().num_rows == 3


def test_postgres_concurrent_appends(pg_catalog) -> None:
    admin = rest_catalog(pg_catalog.url)
    admin.create_namespace("pgc")
    admin.create_table("pgc.t", schema=pa.schema([("w", pa.int64()), ("s", pa.int64())]),
                       properties={"commit.retry.num-retries": "0"})

    def writer(w: int) -> None:
        c = rest_catalog(pg_catalog.url)
        for s in range(5):
            while True:
                try:
                    c.load_table("pgc.t").append(pa.table({"w": pa.array([w], pa.int64()),
                                                           "s": pa.array([s], pa.int64())}))
                    break
                except CommitFailedException:
                    continue

    assert not run_writers(writer)
    tbl = admin.load_table("pgc.t")
    assert len(tbl.snapshots()) == 40 and tbl.scan().to_arrow().num_rows == 40


def test_postgres_transaction_all_or_nothing_and_sqlcatalog_interop(pg_catalog) -> None:
    cat = rest_catalog(pg_catalog.url)
    cat.create_namespace("pgtx")
    a = cat.create_table("pgtx.a", schema=pa.schema([("id", pa.int64())]))
    cat.create_table("pgtx.b", schema=pa.schema([("id", pa.int64())]))
    body = {"table-changes": [
        {"identifier": {"namespace": ["pgtx"], "name": "a"},
         "requirements": [{"type": "assert-table-uuid", "uuid": str(a.metadata.table_uuid)}],
         "updates": [{"action": "set-properties", "updates": {"x": "1"}}]},
        {"identifier": {"namespace": ["pgtx"], "name": "b"},
         "requirements": [{"type": "assert-current-schema-id", "current-schema-id": 5}],
         "updates": [{"action": "set-properties", "updates": {"y": "1"}}]},
    ]}
    r = httpx.post(f"{pg_catalog.url}/v1/transactions/commit", json=body)
    assert r.status_code == 409 and r.json()["error"]["type"] == "CommitFailedException"
    assert "x" not in cat.load_table("pgtx.a").properties

    # pyiceberg's SqlCatalog on the same database sees the same tables (shared schema)
    from pyiceberg.catalog.sql import SqlCatalog

    direct = SqlCatalog("lakehouse", uri=pg_catalog.db_url, warehouse=pg_catalog.warehouse)
    assert ("pgtx", "a") in direct.list_tables("pgtx")
    assert direct.load_table("pgtx.a").metadata_location == cat.load_table("pgtx.a").metadata_location


def test_commit_with_unknown_outcome_keeps_the_new_metadata_file(pg_catalog, tmp_path) -> None:
    """The connection to PostgreSQL is lost during COMMIT, after the server committed: the catalog must not
    delete the new metadata file the table now points at; it answers CommitStateUnknownException."""
    from sqlalchemy.engine import make_url

    from tests.catalog_support import CommitCuttingProxy

    url = make_url(pg_catalog.db_url)
    proxy = CommitCuttingProxy(url.port)
    via_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    try:
        with catalog_server(via_proxy, pg_catalog.warehouse) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
            assert http.post("/v1/namespaces", json={"namespace": ["cut"]}).status_code == 200
            schema = {"type": "struct", "schema-id": 0, "fields": [
                {"id": 1, "name": "id", "type": "long", "required": False}]}
            created = http.post("/v1/namespaces/cut/tables", json={"name": "t", "schema": schema}).json()
            proxy.arm()
            r = http.post("/v1/namespaces/cut/tables/t", json={
                "requirements": [{"type": "assert-table-uuid", "uuid": created["metadata"]["table-uuid"]}],
                "updates": [{"action": "set-properties", "updates": {"k": "landed"}}]})
            assert proxy.fired.is_set()
            assert r.status_code == 500, r.text
            assert r.json()["error"]["type"] == "CommitStateUnknownException"
            # the commit did land: the table points at the new file, which still exists and loads
            loaded = http.get("/v1/namespaces/cut/tables/t")
            assert loaded.status_code == 200, loaded.text
            assert loaded.json()["metadata"]["properties"]["k"] == "landed"
            assert Path(loaded.json()["metadata-location"].removeprefix("file://")).exists()
            assert rest_catalog(srv.url).load_table("cut.t").properties["k"] == "landed"
    finally:
        proxy.close()

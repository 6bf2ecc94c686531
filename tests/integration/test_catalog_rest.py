"""The catalog's REST API spoken directly over HTTP: spec bodies, status codes, commits, auth, UI."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from catalog.auth import Auth, hash_secret
from tests.catalog_support import api, catalog_server, metadata_files, rest_catalog

SCHEMA = {"type": "struct", "schema-id": 0, "fields": [
    {"id": 1, "name": "id", "type": "long", "required": False},
    {"id": 2, "name": "name", "type": "string", "required": False},
]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("catalog_rest")
    with catalog_server(f"sqlite:///{base}/catalog.db", (base / "warehouse").as_uri()) as srv:
        srv.base = base
        yield srv


@pytest.fixture(scope="module")
def http(server):
    with api(server.url) as client:
        yield client


def _ns(http, *levels: str, **props: str) -> None:
    r = http.post("/v1/namespaces", json={"namespace": list(levels), "properties": props})
    assert r.status_code == 200, r.text


def _table(http, ns: str, name: str, **extra) -> dict:
    r = http.post(f"/v1/namespaces/{ns}/tables", json={"name": name, "schema": SCHEMA, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def _error(r, status: int, type_: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == status and body["error"]["type"] == type_ and body["error"]["message"]
    return body["error"]


def test_config_health_and_request_ids(http) -> None:
    r = http.get("/v1/config", params={"warehouse": "anything"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"defaults", "overrides"}
    assert "POST /v1/{prefix}/transactions/commit" in body["endpoints"]
    assert http.get("/healthz").json() == {"status": "ok"}
    r = http.get("/v1/config", headers={"X-Request-ID": "abc123"})
    assert r.headers["x-request-id"] == "abc123"
    assert len(http.get("/v1/config").headers["x-request-id"]) >= 8


def test_namespace_crud_nested_pagination_and_properties(http) -> None:
    _ns(http, "shop", owner="alice", tier="gold")
    _ns(http, "shop", "eu")
    _ns(http, "shop", "us")
    _ns(http, "shop", "eu", "fr")
    _error(http.post("/v1/namespaces", json={"namespace": ["shop"]}), 409, "AlreadyExistsException")
    _error(http.post("/v1/namespaces", json={"namespace": ["nope", "child"]}), 404, "NoSuchNamespaceException")

    top = http.get("/v1/namespaces").json()["namespaces"]
    assert ["shop"] in top and ["shop", "eu"] not in top
    children = http.get("/v1/namespaces", params={"parent": "shop"}).json()["namespaces"]
    assert children == [["shop", "eu"], ["shop", "us"]]
    assert http.get("/v1/namespaces", params={"parent": "shop\x1feu"}).json()["namespaces"] == [["shop", "eu", "fr"]]
    _error(http.get("/v1/namespaces", params={"parent": "missing"}), 404, "NoSuchNamespaceException")

    page1 = http.get("/v1/namespaces", params={"parent": "shop", "pageSize": 1}).json()
    assert page1["namespaces"] == [["shop", "eu"]] and page1["next-page-token"]
    page2 = http.get("/v1/namespaces", params={"parent": "shop", "pageSize": 1,
                                                "pageToken": page1["next-page-token"]}).json()
    assert page2["namespaces"] == [["shop", "us"]] and not page2.get("next-page-token")

    r = http.get("/v1/namespaces/shop")
    assert r.json() == {"namespace": ["shop"], "properties": {"owner": "alice", "tier": "gold"}}
    assert http.head("/v1/namespaces/shop%1Feu").status_code == 204
    assert http.head("/v1/namespaces/absent").status_code == 404

    r = http.post("/v1/namespaces/shop/properties",
                  json={"removals": ["tier", "ghost"], "updates": {"owner": "bob", "region": "eu"}})
    body = r.json()
    assert sorted(body["removed"]) == ["tier"] and sorted(body["updated"]) == ["owner", "region"]
    assert body["missing"] == ["ghost"]
    assert http.get("/v1/namespaces/shop").json()["properties"] == {"owner": "bob", "region": "eu"}
    _error(http.post("/v1/namespaces/shop/properties", json={"removals": ["a"], "updates": {"a": "1"}}),
           400, "BadRequestException")

    _error(http.delete("/v1/namespaces/shop"), 409, "NamespaceNotEmptyException")
    assert http.delete("/v1/namespaces/shop%1Feu%1Ffr").status_code == 204
    _error(http.delete("/v1/namespaces/shop%1Feu%1Ffr"), 404, "NoSuchNamespaceException")


@pytest.fixture(scope="module")
def names_ok(http) -> str:
    _ns(http, "names_ok")
    return "names_ok"


@pytest.mark.parametrize("bad", ["", " ", "a/b", "..", "x..y", "tab\tname", "nul\x00", "a\\b", "x" * 300])
def test_invalid_names_are_400(http, names_ok: str, bad: str) -> None:
    _error(http.post("/v1/namespaces", json={"namespace": [bad]}), 400, "BadRequestException")
    _error(http.post("/v1/namespaces/names_ok/tables", json={"name": bad, "schema": SCHEMA}), 400,
           "BadRequestException")


def test_path_traversal_rejected(server, http) -> None:
    _ns(http, "trav")
    for path in ["/v1/namespaces/trav/tables/..%2F..%2Fescape", "/v1/namespaces/..%2F..%2Fetc/tables/t",
                 "/v1/namespaces/trav/tables/%2E%2E"]:
        r = http.get(path)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["type"] == "BadRequestException"
    outside = Path(server.base).parent / "escape"
    r = http.post("/v1/namespaces/trav/tables", json={"name": "t", "schema": SCHEMA, "location": outside.as_uri()})
    _error(r, 400, "BadRequestException")
    assert not outside.exists()
    # nothing was created outside the warehouse
    allowed = {"catalog.db", "catalog.db-shm", "catalog.db-wal", "warehouse"}
    assert {p.name for p in Path(server.base).iterdir()} <= allowed


def test_table_lifecycle_errors_and_unique_locations(server, http) -> None:
    _ns(http, "life")
    _ns(http, "life2")
    first = _table(http, "life", "t")
    loc1 = first["metadata"]["location"]
    assert first["metadata-location"].startswith(loc1 + "/metadata/00000-")
    assert Path(loc1.removeprefix("file://"), "data").is_dir()
    _error(http.post("/v1/namespaces/life/tables", json={"name": "t", "schema": SCHEMA}), 409,
           "AlreadyExistsException")
    _error(http.post("/v1/namespaces/ghost/tables", json={"name": "t", "schema": SCHEMA}), 404,
           "NoSuchNamespaceException")
    _error(http.get("/v1/namespaces/life/tables/missing"), 404, "NoSuchTableException")
    _error(http.get("/v1/namespaces/ghost/tables/missing"), 404, "NoSuchNamespaceException")
    _error(http.post("/v1/namespaces/life/tables", json={"name": "x"}), 400, "BadRequestException")
    _error(http.post("/v1/namespaces/life/tables", content=b"{not json", headers={"content-type": "application/json"}),
           400, "BadRequestException")
    assert http.head("/v1/namespaces/life/tables/t").status_code == 204
    assert http.get("/v1/namespaces/life/tables").json()["identifiers"] == [{"namespace": ["life"], "name": "t"}]

    # ETag / If-None-Match
    r = http.get("/v1/namespaces/life/tables/t")
    assert http.get("/v1/namespaces/life/tables/t", headers={"If-None-Match": r.headers["etag"]}).status_code == 304

    # rename across namespaces keeps the metadata; the old name is free again
    r = http.post("/v1/tables/rename", json={"source": {"namespace": ["life"], "name": "t"},
                                             "destination": {"namespace": ["life2"], "name": "moved"}})
    assert r.status_code == 204, r.text
    assert http.get("/v1/namespaces/life2/tables/moved").json()["metadata-location"] == first["metadata-location"]
    _error(http.get("/v1/namespaces/life/tables/t"), 404, "NoSuchTableException")
    _error(http.post("/v1/tables/rename", json={"source": {"namespace": ["life"], "name": "t"},
                                                "destination": {"namespace": ["life2"], "name": "x"}}),
           404, "NoSuchTableException")
    _error(http.post("/v1/tables/rename", json={"source": {"namespace": ["life2"], "name": "moved"},
                                                "destination": {"namespace": ["ghost"], "name": "x"}}),
           404, "NoSuchNamespaceException")

    # a new table with the dropped table's name never reuses its location
    second = _table(http, "life", "t")
    assert second["metadata"]["location"] != loc1
    assert http.delete("/v1/namespaces/life/tables/t").status_code == 204
    third = _table(http, "life", "t")
    assert third["metadata"]["location"] not in (loc1, second["metadata"]["location"])

    # metrics reports are accepted; credentials endpoint answers
    assert http.post("/v1/namespaces/life/tables/t/metrics", json={"report-type": "scan-report"}).status_code == 204
    _error(http.post("/v1/namespaces/life/tables/none/metrics", json={"report-type": "scan-report"}), 404,
           "NoSuchTableException")
    assert http.get("/v1/namespaces/life/tables/t/credentials").json() == {"storage-credentials": []}
    _error(http.get("/v1/no/such/route"), 404, "NotFoundException")


def test_stage_create_then_commit_creates_table(http) -> None:
    _ns(http, "staged")
    r = http.post("/v1/namespaces/staged/tables", json={"name": "s", "schema": SCHEMA, "stage-create": True})
    assert r.status_code == 200, r.text
    staged = r.json()
    assert staged.get("metadata-location") is None
    loc = staged["metadata"]["location"]
    assert Path(loc.removeprefix("file://"), "metadata").is_dir()
    assert http.head("/v1/namespaces/staged/tables/s").status_code == 404
    md = staged["metadata"]
    commit = {
        "requirements": [{"type": "assert-create"}],
        "updates": [
            {"action": "assign-uuid", "uuid": md["table-uuid"]},
            {"action": "upgrade-format-version", "format-version": 2},
            {"action": "add-schema", "schema": SCHEMA},
            {"action": "set-current-schema", "schema-id": -1},
            {"action": "add-spec", "spec": {"fields": []}},
            {"action": "set-default-spec", "spec-id": -1},
            {"action": "add-sort-order", "sort-order": {"order-id": 0, "fields": []}},
            {"action": "set-default-sort-order", "sort-order-id": -1},
            {"action": "set-location", "location": loc},
            {"action": "set-properties", "updates": {"created-by": "test"}},
        ],
    }
    r = http.post("/v1/namespaces/staged/tables/s", json=commit)
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["properties"]["created-by"] == "test"
    assert r.json()["metadata-location"].startswith(loc + "/metadata/")
    # the same create again fails the assert-create requirement
    _error(http.post("/v1/namespaces/staged/tables/s", json=commit), 409, "CommitFailedException")


def _load(http, ns: str, name: str) -> dict:
    r = http.get(f"/v1/namespaces/{ns}/tables/{name}")
    assert r.status_code == 200, r.text
    return r.json()


def test_every_requirement_type(http) -> None:
    _ns(http, "req")
    md = _table(http, "req", "t")["metadata"]
    good = [
        {"type": "assert-table-uuid", "uuid": md["table-uuid"]},
        {"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": None},
        {"type": "assert-last-assigned-field-id", "last-assigned-field-id": md["last-column-id"]},
        {"type": "assert-current-schema-id", "current-schema-id": md["current-schema-id"]},
        {"type": "assert-last-assigned-partition-id", "last-assigned-partition-id": md["last-partition-id"]},
        {"type": "assert-default-spec-id", "default-spec-id": md["default-spec-id"]},
        {"type": "assert-default-sort-order-id", "default-sort-order-id": md["default-sort-order-id"]},
    ]
    bad = [
        {"type": "assert-create"},
        {"type": "assert-table-uuid", "uuid": str(uuid.uuid4())},
        {"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": 42},
        {"type": "assert-last-assigned-field-id", "last-assigned-field-id": 99},
        {"type": "assert-current-schema-id", "current-schema-id": 7},
        {"type": "assert-last-assigned-partition-id", "last-assigned-partition-id": 5000},
        {"type": "assert-default-spec-id", "default-spec-id": 3},
        {"type": "assert-default-sort-order-id", "default-sort-order-id": 9},
    ]
    before = _load(http, "req", "t")["metadata-location"]
    for req in bad:
        r = http.post("/v1/namespaces/req/tables/t", json={"requirements": [req], "updates": [
            {"action": "set-properties", "updates": {"k": "v"}}]})
        _error(r, 409, "CommitFailedException")
    assert _load(http, "req", "t")["metadata-location"] == before
    r = http.post("/v1/namespaces/req/tables/t", json={"requirements": good, "updates": [
        {"action": "set-properties", "updates": {"k": "v"}}]})
    assert r.status_code == 200, r.text
    assert _load(http, "req", "t")["metadata"]["properties"]["k"] == "v"
    _error(http.post("/v1/namespaces/req/tables/t", json={"requirements": [{"type": "assert-nothing"}],
                                                          "updates": []}), 400, "BadRequestException")


def test_every_update_type(http) -> None:
    """Apply each spec update type through the REST commit endpoint and check its effect."""
    _ns(http, "upd")
    md = _table(http, "upd", "t", properties={"format-version": "1"})["metadata"]
    assert md["format-version"] == 1

    def commit(*updates, requirements=()) -> dict:
        r = http.post("/v1/namespaces/upd/tables/t", json={"requirements": list(requirements),
                                                           "updates": list(updates)})
        assert r.status_code == 200, r.text
        return r.json()["metadata"]

    m = commit({"action": "upgrade-format-version", "format-version": 2})
    assert m["format-version"] == 2
    new_uuid = str(uuid.uuid4())
    assert commit({"action": "assign-uuid", "uuid": new_uuid})["table-uuid"] == new_uuid
    schema2 = {"type": "struct", "schema-id": 1, "fields": [*SCHEMA["fields"],
               {"id": 3, "name": "price", "type": "double", "required": False}]}
    m = commit({"action": "add-schema", "schema": schema2}, {"action": "set-current-schema", "schema-id": -1})
    assert m["current-schema-id"] == 1 and m["last-column-id"] == 3
    m = commit({"action": "add-spec", "spec": {"spec-id": 1, "fields": [
        {"source-id": 1, "field-id": 1000, "name": "id_bucket", "transform": "bucket[4]"}]}},
        {"action": "set-default-spec", "spec-id": -1})
    assert m["default-spec-id"] == 1
    m = commit({"action": "add-sort-order", "sort-order": {"order-id": 1, "fields": [
        {"source-id": 1, "transform": "identity", "direction": "asc", "null-order": "nulls-first"}]}},
        {"action": "set-default-sort-order", "sort-order-id": -1})
    assert m["default-sort-order-id"] == 1
    m = commit({"action": "set-properties", "updates": {"a": "1", "b": "2"}},
               {"action": "remove-properties", "removals": ["a", "never-set"]})
    assert m["properties"].get("b") == "2" and "a" not in m["properties"]
    m = commit({"action": "set-location", "location": md["location"]})
    assert m["location"] == md["location"]
    m = commit({"action": "set-default-spec", "spec-id": 0}, {"action": "remove-partition-specs", "spec-ids": [1]})
    assert [s["spec-id"] for s in m["partition-specs"]] == [0]
    m = commit({"action": "set-current-schema", "schema-id": 0}, {"action": "remove-schemas", "schema-ids": [1]})
    assert [s["schema-id"] for s in m["schemas"]] == [0]
    m = commit({"action": "add-encryption-key", "encryption-key": {"key-id": "k1", "encrypted-key-metadata": "AAAA"}})
    loaded = _load(http, "upd", "t")["metadata"]
    assert loaded["encryption-keys"] == [{"key-id": "k1", "encrypted-key-metadata": "AAAA"}]
    commit({"action": "remove-encryption-key", "key-id": "k1"})
    assert not _load(http, "upd", "t")["metadata"].get("encryption-keys")

    # snapshot updates: a snapshot with an empty manifest list file written by pyiceberg
    cat = rest_catalog(str(http.base_url).rstrip("/"))
    tbl = cat.load_table("upd.t")
    tbl.append(pa.table({"id": pa.array([1], pa.int64()), "name": ["x"]}))
    tbl = cat.load_table("upd.t")
    snap = tbl.metadata.current_snapshot()
    m = commit({"action": "set-snapshot-ref", "ref-name": "tag1", "type": "tag", "snapshot-id": snap.snapshot_id})
    assert m["refs"]["tag1"]["snapshot-id"] == snap.snapshot_id
    m = commit({"action": "remove-snapshot-ref", "ref-name": "tag1"})
    assert "tag1" not in m["refs"]
    stats = {"snapshot-id": snap.snapshot_id, "statistics-path": md["location"] + "/metadata/stats.puffin",
             "file-size-in-bytes": 10, "file-footer-size-in-bytes": 5, "blob-metadata": []}
    m = commit({"action": "set-statistics", "statistics": stats})
    assert m["statistics"][0]["snapshot-id"] == snap.snapshot_id
    m = commit({"action": "remove-statistics", "snapshot-id": snap.snapshot_id})
    assert not m.get("statistics")
    pstats = {"snapshot-id": snap.snapshot_id, "statistics-path": md["location"] + "/metadata/p.parquet",
              "file-size-in-bytes": 10}
    m = commit({"action": "set-partition-statistics", "partition-statistics": pstats})
    assert m["partition-statistics"][0]["snapshot-id"] == snap.snapshot_id
    m = commit({"action": "remove-partition-statistics", "snapshot-id": snap.snapshot_id})
    assert not m.get("partition-statistics")
    tbl.append(pa.table({"id": pa.array([2], pa.int64()), "name": ["y"]}))
    m = commit({"action": "remove-snapshots", "snapshot-ids": [snap.snapshot_id]})
    assert snap.snapshot_id not in [s["snapshot-id"] for s in m["snapshots"]]
    # an invalid update is a 400 and changes nothing
    before = _load(http, "upd", "t")["metadata-location"]
    _error(http.post("/v1/namespaces/upd/tables/t", json={"updates": [{"action": "set-current-schema",
                                                                       "schema-id": 77}]}), 400, "BadRequestException")
    _error(http.post("/v1/namespaces/upd/tables/t", json={"updates": [{"action": "fly-to-moon"}]}), 400,
           "BadRequestException")
    assert _load(http, "upd", "t")["metadata-location"] == before


def test_stale_commit_is_409_and_changes_nothing(server, http) -> None:
    cat = rest_catalog(server.url)
    cat.create_namespace("stale")
    # no client-side retry (pyiceberg >= 0.10 retries appends on 409 by itself)
    tbl = cat.create_table("stale.t", schema=pa.schema([("id", pa.int64())]),
                           properties={"commit.retry.num-retries": "0"})
    a = cat.load_table("stale.t")
    b = cat.load_table("stale.t")
    a.append(pa.table({"id": pa.array([1, 2], pa.int64())}))
    after_a = cat.load_table("stale.t")
    files_before = metadata_files(tbl.location())
    from pyiceberg.exceptions import CommitFailedException

    with pytest.raises(CommitFailedException):
        b.append(pa.table({"id": pa.array([3], pa.int64())}))
    now = cat.load_table("stale.t")
    assert now.metadata_location == after_a.metadata_location
    assert now.scan().to_arrow().num_rows == 2
    assert metadata_files(tbl.location()) == files_before  # no stray metadata file from the lost commit


def test_multi_table_transaction_all_or_nothing(http) -> None:
    _ns(http, "tx")
    a = _table(http, "tx", "a")["metadata"]
    b = _table(http, "tx", "b")["metadata"]
    loc_a, loc_b = _load(http, "tx", "a")["metadata-location"], _load(http, "tx", "b")["metadata-location"]

    def change(name, uuid_, key):
        return {"identifier": {"namespace": ["tx"], "name": name},
                "requirements": [{"type": "assert-table-uuid", "uuid": uuid_}],
                "updates": [{"action": "set-properties", "updates": {key: "1"}}]}

    bad = change("b", str(uuid.uuid4()), "fail")
    _error(http.post("/v1/transactions/commit", json={"table-changes": [change("a", a["table-uuid"], "x"), bad]}),
           409, "CommitFailedException")
    assert _load(http, "tx", "a")["metadata-location"] == loc_a
    assert _load(http, "tx", "b")["metadata-location"] == loc_b
    assert len(metadata_files(a["location"])) == 1  # the prepared file for "a" was removed again

    r = http.post("/v1/transactions/commit", json={"table-changes": [change("a", a["table-uuid"], "x"),
                                                                     change("b", b["table-uuid"], "y")]})
    assert r.status_code == 204, r.text
    assert _load(http, "tx", "a")["metadata"]["properties"]["x"] == "1"
    assert _load(http, "tx", "b")["metadata"]["properties"]["y"] == "1"
    _error(http.post("/v1/transactions/commit", json={"table-changes": [
        {**change("a", a["table-uuid"], "z"), "identifier": {"namespace": ["tx"], "name": "ghost"}}]}),
        404, "NoSuchTableException")


def test_register_and_drop_without_purge_keeps_files(server, http) -> None:
    cat = rest_catalog(server.url)
    cat.create_namespace("reg")
    tbl = cat.create_table("reg.src", schema=pa.schema([("id", pa.int64())]))
    tbl.append(pa.table({"id": pa.array([1, 2, 3], pa.int64())}))
    tbl = cat.load_table("reg.src")
    loc = tbl.metadata_location
    data_dir = Path(tbl.location().removeprefix("file://")) / "data"
    files = sorted(data_dir.rglob("*.parquet"))
    assert files
    cat.drop_table("reg.src")
    assert all(f.exists() for f in files) and Path(loc.removeprefix("file://")).exists()
    assert not cat.table_exists("reg.src")

    registered = cat.register_table("reg.back", loc)
    assert registered.scan().to_arrow().num_rows == 3
    _error(http.post("/v1/namespaces/reg/register", json={"name": "back", "metadata-location": loc}), 409,
           "AlreadyExistsException")
    r = http.post("/v1/namespaces/reg/register", json={"name": "back", "metadata-location": loc, "overwrite": True})
    assert r.status_code == 200
    _error(http.post("/v1/namespaces/reg/register", json={"name": "nofile",
                                                          "metadata-location": loc + ".missing"}),
           400, "BadRequestException")

    # purge removes data and metadata
    cat.purge_table("reg.back")
    assert not any(f.exists() for f in files)
    assert not Path(tbl.location().removeprefix("file://")).exists()


def test_prefix_routes_and_ui(server, http) -> None:
    _ns(http, "uins")
    cat = rest_catalog(server.url)
    t = cat.create_table("uins.prices", schema=pa.schema([("ticker", pa.string()), ("close", pa.float64())]))
    t.append(pa.table({"ticker": ["AAPL", "<script>"], "close": [1.5, 2.5]}))
    assert http.get("/v1/lakehouse/namespaces/uins").status_code == 200
    assert http.get("/v1/lakehouse/namespaces/uins/tables/prices").status_code == 200
    idx = http.get("/ui")
    assert idx.status_code == 200 and "uins" in idx.text
    page = http.get("/ui/namespaces/uins/tables/prices")
    assert page.status_code == 200
    for needle in ("ticker", "close", "append", "AAPL", "metadata/", "Partition spec", "Sort order",
                   "&lt;script&gt;"):
        assert needle in page.text, needle
    assert "<script>" not in page.text.split("</style>")[1]
    assert http.get("/ui/namespaces/uins").status_code == 200
    assert http.get("/ui/namespaces/nope").status_code == 404


def test_auth_tokens_401_419_and_clients(tmp_path) -> None:
    auth = Auth(enabled=True, clients={"etl": hash_secret("s3cret")}, token_secret="k" * 32, ttl_seconds=60)
    with catalog_server(f"sqlite:///{tmp_path}/c.db", (tmp_path / "wh").as_uri(), auth=auth) as srv, \
            api(srv.url) as http:
        _error(http.get("/v1/config"), 401, "NotAuthorizedException")
        _error(http.get("/v1/namespaces", headers={"Authorization": "Bearer forged.token"}), 401,
               "NotAuthorizedException")
        assert http.get("/healthz").status_code == 200
        r = http.post("/v1/oauth/tokens", data={"grant_type": "client_credentials", "client_id": "etl",
                                                "client_secret": "wrong"})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        r = http.post("/v1/oauth/tokens", data={"grant_type": "password"})
        assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
        r = http.post("/v1/oauth/tokens", data={"grant_type": "client_credentials", "client_id": "etl",
                                                "client_secret": "s3cret", "scope": "catalog"})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        assert r.json()["token_type"].lower() == "bearer"
        assert http.get("/v1/namespaces", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        expired = auth.issue("etl", now=0)
        _error(http.get("/v1/namespaces", headers={"Authorization": f"Bearer {expired}"}), 419,
               "AuthenticationTimeoutException")
        other = Auth(enabled=True, clients={"etl": "x"}, token_secret="other" * 8).issue("etl")
        _error(http.get("/v1/namespaces", headers={"Authorization": f"Bearer {other}"}), 401,
               "NotAuthorizedException")
        assert http.get("/ui").status_code == 401
        assert http.get("/ui", auth=("etl", "s3cret")).status_code == 200

        # pyiceberg with credential=
        cat = rest_catalog(srv.url, credential="etl:s3cret", **{"oauth2-server-uri": f"{srv.url}/v1/oauth/tokens"})
        cat.create_namespace("secure")
        t = cat.create_table("secure.t", schema=pa.schema([("id", pa.int64())]))
        t.append(pa.table({"id": pa.array([1], pa.int64())}))
        assert cat.load_table("secure.t").scan().to_arrow().num_rows == 1
        from pyiceberg.exceptions import OAuthError, UnauthorizedError

        with pytest.raises((OAuthError, UnauthorizedError)):
            rest_catalog(srv.url, credential="etl:bad", **{"oauth2-server-uri": f"{srv.url}/v1/oauth/tokens"})

        # DuckDB with an iceberg secret
        from lakehouse.transform.duck import connect

        con = connect()
        con.execute(f"""CREATE SECRET lake_secret (TYPE iceberg, CLIENT_ID 'etl', CLIENT_SECRET 's3cret',
                        OAUTH2_SERVER_URI '{srv.url}/v1/oauth/tokens')""")
        con.execute(f"ATTACH 'lakehouse' AS lake (TYPE iceberg, ENDPOINT '{srv.url}', SECRET lake_secret)")
        assert con.execute("SELECT count(*) FROM lake.secure.t").fetchone()[0] == 1
        con.close()


def test_views_create_load_replace_rename_drop(server, http) -> None:
    from pyiceberg.view.metadata import SQLViewRepresentation, ViewVersion

    cat = rest_catalog(server.url)
    cat.create_namespace("vw")
    cat.create_namespace("vw2")
    version = ViewVersion(schema_id=0, representations=[SQLViewRepresentation(type="sql", sql="SELECT 1 AS id",
                                                                              dialect="duckdb")],
                          default_namespace=["vw"])
    view = cat.create_view("vw.v", schema=pa.schema([("id", pa.int64())]), view_version=version)
    assert view.metadata.current_version_id == 1
    assert cat.view_exists("vw.v") and not cat.table_exists("vw.v")
    assert cat.list_views("vw") == [("vw", "v")]
    assert ("vw", "v") not in cat.list_tables("vw")
    _error(http.post("/v1/namespaces/vw/tables", json={"name": "v", "schema": SCHEMA}), 409, "AlreadyExistsException")
    loaded = cat.load_view("vw.v")
    assert loaded.metadata.versions[0].representations[0].root.sql == "SELECT 1 AS id"

    body = http.get("/v1/namespaces/vw/views/v").json()
    replace = {"requirements": [{"type": "assert-view-uuid", "uuid": body["metadata"]["view-uuid"]}], "updates": [
        {"action": "add-schema", "schema": {"type": "struct", "schema-id": 1, "fields": [
            {"id": 1, "name": "id", "type": "long", "required": False},
            {"id": 2, "name": "n", "type": "string", "required": False}]}},
        {"action": "add-view-version", "view-version": {
            "version-id": 2, "schema-id": -1, "timestamp-ms": 1, "summary": {},
            "representations": [{"type": "sql", "sql": "SELECT 1 AS id, 'a' AS n", "dialect": "duckdb"}],
            "default-namespace": ["vw"]}},
        {"action": "set-current-view-version", "view-version-id": -1},
        {"action": "set-properties", "updates": {"comment": "v2"}},
    ]}
    r = http.post("/v1/namespaces/vw/views/v", json=replace)
    assert r.status_code == 200, r.text
    m = r.json()["metadata"]
    assert m["current-version-id"] == 2 and len(m["schemas"]) == 2 and m["properties"]["comment"] == "v2"
    assert cat.load_view("vw.v").metadata.current_version_id == 2
    stale = {**replace, "requirements": [{"type": "assert-view-uuid", "uuid": str(uuid.uuid4())}]}
    _error(http.post("/v1/namespaces/vw/views/v", json=stale), 409, "CommitFailedException")
    _error(http.post("/v1/namespaces/vw/views/v", json={"updates": [{"action": "set-current-view-version",
                                                                     "view-version-id": 99}]}),
           400, "BadRequestException")

    r = http.post("/v1/views/rename", json={"source": {"namespace": ["vw"], "name": "v"},
                                            "destination": {"namespace": ["vw2"], "name": "w"}})
    assert r.status_code == 204
    loc = http.get("/v1/namespaces/vw2/views/w").json()["metadata-location"]
    cat.drop_view("vw2.w")
    assert not cat.view_exists("vw2.w")
    _error(http.get("/v1/namespaces/vw2/views/w"), 404, "NoSuchViewException")
    again = cat.register_view("vw.again", loc)
    assert again.metadata.current_version_id == 2


def test_expired_token_is_refreshed_by_pyiceberg(tmp_path) -> None:
    import time

    auth = Auth(enabled=True, clients={"etl": hash_secret("pw")}, token_secret="t" * 32, ttl_seconds=1)
    with catalog_server(f"sqlite:///{tmp_path}/c.db", (tmp_path / "wh").as_uri(), auth=auth) as srv:
        cat = rest_catalog(srv.url, credential="etl:pw", **{"oauth2-server-uri": f"{srv.url}/v1/oauth/tokens"})
        cat.create_namespace("ttl")
        time.sleep(1.2)  # the token expires: the next call gets 419 and pyiceberg fetches a new token
        assert ("ttl",) in cat.list_namespaces()


def test_server_never_writes_outside_the_warehouse(server, http, tmp_path) -> None:
    outside = tmp_path / "elsewhere"
    _error(http.post("/v1/namespaces", json={"namespace": ["evil"], "properties": {"location": outside.as_uri()}}),
           400, "BadRequestException")
    _ns(http, "guard")
    _error(http.post("/v1/namespaces/guard/properties", json={"updates": {"location": outside.as_uri()}}), 400,
           "BadRequestException")
    _table(http, "guard", "t")
    for update in ({"action": "set-location", "location": outside.as_uri()},
                   {"action": "set-properties", "updates": {"write.metadata.path": outside.as_uri()}}):
        _error(http.post("/v1/namespaces/guard/tables/t", json={"updates": [update]}), 400, "BadRequestException")
    _error(http.post("/v1/namespaces/guard/tables", json={"name": ".", "schema": SCHEMA}), 400,
           "BadRequestException")
    assert not outside.exists()


def test_in_process_server_stops_closing_connections_and_its_store(tmp_path) -> None:
    """``stop`` of the in-process catalog (every stage closes one) ends the serving thread, closes kept-alive
    client connections, frees the port and runs the app's shutdown (the store releases its connections)."""
    import http.client
    import socket

    with catalog_server(f"sqlite:///{tmp_path}/c.db", (tmp_path / "wh").as_uri()) as srv:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
        conn.request("GET", "/v1/config")
        assert conn.getresponse().read() and conn.sock is not None  # kept alive
        store = srv.server.config.app.state.store
        assert store.engine.pool.checkedin() >= 1  # the request used the store
        idle = conn.sock
    assert not srv.thread.is_alive()
    idle.settimeout(5)
    assert idle.recv(1) == b""  # the server closed the idle connection
    assert store.engine.pool.checkedin() == 0  # lifespan shutdown: engine disposed
    with pytest.raises(OSError), socket.create_connection((srv.host, srv.port), timeout=2):
        pass

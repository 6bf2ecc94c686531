"""The catalog against hostile input (issue 11): every test first makes the attack that worked on the old
server (a file beside the warehouse written or deleted, a secret echoed, a 500 with internals), then checks
that it is refused with a clear error and nothing happened outside the warehouse."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import threading
import time
import zlib
from pathlib import Path
from urllib.parse import quote

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.auth import Auth, hash_secret
from lakehouse.net import free_port, port_in_use
from tests.catalog_support import api, catalog_server, rest_catalog
from tests.conftest import BIN

SCHEMA = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "type": "long", "required": False}]}
VIEW_VERSION = {"version-id": 1, "schema-id": 0, "timestamp-ms": 1, "summary": {}, "default-namespace": [],
                "representations": [{"type": "sql", "sql": "SELECT 1 AS id", "dialect": "duckdb"}]}
SECRET = "TOP-SECRET-7f3a9c"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """A catalog whose warehouse is ``<base>/warehouse``; ``<base>/victim/keep.txt`` lies beside it."""
    base = tmp_path_factory.mktemp("hardening")
    (base / "victim").mkdir()
    (base / "victim" / "keep.txt").write_text("precious")
    with catalog_server(f"sqlite:///{base}/catalog.db", (base / "warehouse").as_uri()) as server:
        server.base = base
        server.warehouse = (base / "warehouse").as_uri()
        yield server


@pytest.fixture(scope="module")
def http(srv):
    with api(srv.url) as client:
        yield client


def _outside(srv) -> set[str]:
    """Everything under the test's base folder that is neither the warehouse, the database nor the victim."""
    allowed = {"victim", "victim/keep.txt", "secrets.json", "outside.parquet"}
    out = set()
    for p in srv.base.rglob("*"):
        rel = p.relative_to(srv.base).as_posix()
        if rel.startswith("warehouse") or rel.startswith("catalog.db") or rel in allowed:
            continue
        out.add(rel)
    return out


def _victim_intact(srv) -> bool:
    keep = srv.base / "victim" / "keep.txt"
    return keep.exists() and keep.read_text() == "precious"


def _ns(http, *levels: str, **props: str) -> None:
    r = http.post("/v1/namespaces", json={"namespace": list(levels), "properties": props})
    assert r.status_code in (200, 409), r.text


def _error(r, status: int, type_: str = "BadRequestException") -> str:
    assert r.status_code == status, r.text
    assert r.json()["error"]["type"] == type_ and r.json()["error"]["code"] == status, r.text
    return r.json()["error"]["message"]


def _path(*levels: str) -> str:
    return "%1F".join(quote(level, safe="") for level in levels)


# Path escape ---------------------------------------------------------------------------------------------
def test_encoded_dotdot_table_location_cannot_reach_beside_the_warehouse(srv, http) -> None:
    _ns(http, "esc")
    evil = f"{srv.warehouse}/%2e%2e/victim"
    r = http.post("/v1/namespaces/esc/tables", json={"name": "t", "schema": SCHEMA, "location": evil})
    if r.status_code == 200:  # the old server took it: dropping with purge deleted the folder beside the warehouse
        http.delete("/v1/namespaces/esc/tables/t", params={"purgeRequested": "true"})
    assert _victim_intact(srv)
    _error(r, 400)

    staged = http.post("/v1/namespaces/esc/tables", json={"name": "s", "schema": SCHEMA, "location": evil,
                                                          "stage-create": True})
    _error(staged, 400)
    for bad in (f"{srv.warehouse}/%2E%2E/victim", f"{srv.warehouse}/a/../../victim", f"{srv.warehouse}//victim",
                f"{srv.warehouse}/x?y", f"{srv.warehouse}/x#y", f"{srv.warehouse}/x;y", "file:///etc",
                f"{srv.warehouse}-other/t"):
        _error(http.post("/v1/namespaces/esc/tables", json={"name": "u", "schema": SCHEMA, "location": bad}), 400)
    assert _outside(srv) == set()


def test_set_location_and_namespace_location_cannot_escape(srv, http) -> None:
    _ns(http, "esc2")
    r = http.post("/v1/namespaces/esc2/tables", json={"name": "t", "schema": SCHEMA})
    assert r.status_code == 200, r.text
    evil = f"{srv.warehouse}/%2e%2e/victim"
    moved = http.post("/v1/namespaces/esc2/tables/t", json={"updates": [{"action": "set-location", "location": evil}]})
    if moved.status_code == 200:
        http.delete("/v1/namespaces/esc2/tables/t", params={"purgeRequested": "true"})
    assert _victim_intact(srv)
    _error(moved, 400)
    for key in ("write.metadata.path", "write.data.path"):
        _error(http.post("/v1/namespaces/esc2/tables/t", json={"updates": [
            {"action": "set-properties", "updates": {key: evil}}]}), 400)

    r = http.post("/v1/namespaces", json={"namespace": ["esc3"], "properties": {"location": evil}})
    if r.status_code == 200:  # then a new table's folders were made beside the warehouse
        http.post("/v1/namespaces/esc3/tables", json={"name": "t", "schema": SCHEMA})
    assert _outside(srv) == set()
    _error(r, 400)


def test_namespace_named_like_an_escape_stays_inside(srv, http) -> None:
    for level in ("%2e%2e", "%252e%252e", "%2e%2e%2fx"):
        r = http.post("/v1/namespaces", json={"namespace": [level]})
        assert r.status_code == 200, r.text
        t = http.post(f"/v1/namespaces/{_path(level)}/tables", json={"name": "%2e%2e", "schema": SCHEMA})
        assert t.status_code == 200, t.text
        location = t.json()["metadata"]["location"]
        assert location.startswith(srv.warehouse + "/") and "%" not in location[len(srv.warehouse):]
        assert http.get(f"/v1/namespaces/{_path(level)}/tables/{quote('%2e%2e', safe='')}").status_code == 200
        assert http.delete(f"/v1/namespaces/{_path(level)}/tables/{quote('%2e%2e', safe='')}",
                           params={"purgeRequested": "true"}).status_code == 204
    assert _outside(srv) == set()
    assert _victim_intact(srv)


def test_purge_deletes_only_files_inside_the_warehouse(srv) -> None:
    """A client can reference any file in a manifest (``add_files``); purge must not delete it."""
    outside = srv.base / "outside.parquet"
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int64())}), outside)
    cat = rest_catalog(srv.url)
    cat.create_namespace("purge")
    tbl = cat.create_table("purge.t", schema=pa.schema([("id", pa.int64())]))
    tbl.append(pa.table({"id": pa.array([3], pa.int64())}))
    tbl = cat.load_table("purge.t")
    tbl.add_files([str(outside)])
    inside = sorted(Path(tbl.location().removeprefix("file://")).rglob("*.parquet"))
    assert inside and cat.load_table("purge.t").scan().to_arrow().num_rows == 3
    cat.purge_table("purge.t")
    assert outside.exists(), "purge deleted a file outside the warehouse"
    assert not any(p.exists() for p in inside)
    assert not Path(tbl.location().removeprefix("file://")).exists()


def test_tables_written_with_raw_names_in_their_location_still_take_commits(srv) -> None:
    """pyiceberg's SqlCatalog (and older versions of this server) put raw names into locations; such a table
    keeps working through the REST catalog, it only cannot move to such a location."""
    from pyiceberg.catalog.sql import SqlCatalog

    direct = SqlCatalog("lakehouse", uri=f"sqlite:///{srv.base}/catalog.db", warehouse=srv.warehouse)
    direct.create_namespace("legacy")
    direct.create_table(("legacy", "sp ace"), schema=pa.schema([("id", pa.int64())]))
    cat = rest_catalog(srv.url)
    tbl = cat.load_table(("legacy", "sp ace"))
    assert tbl.location().endswith("/sp ace")
    tbl.append(pa.table({"id": pa.array([1], pa.int64())}))
    assert cat.load_table(("legacy", "sp ace")).scan().to_arrow().num_rows == 1
    cat.purge_table(("legacy", "sp ace"))
    assert not Path(tbl.location().removeprefix("file://")).exists()


# File read through register -------------------------------------------------------------------------------
def _metadata_of(http, ns: str, name: str) -> tuple[str, dict]:
    r = http.get(f"/v1/namespaces/{ns}/tables/{name}")
    assert r.status_code == 200, r.text
    return r.json()["metadata-location"], r.json()["metadata"]


def test_register_reads_only_metadata_files_inside_the_warehouse(srv, http) -> None:
    _ns(http, "reg")
    secrets_file = srv.base / "secrets.json"
    secrets_file.write_text(json.dumps({"catalog": {"token_secret": SECRET}, "objectstore": {"secret_key": SECRET}}))
    wh = Path(srv.warehouse.removeprefix("file://"))
    (wh / "reg").mkdir(parents=True, exist_ok=True)
    (wh / "reg" / "stolen.metadata.json").write_text(secrets_file.read_text())
    (wh / "reg" / "secrets.json").write_text(secrets_file.read_text())
    for loc in (secrets_file.as_uri(), f"{srv.warehouse}/reg/stolen.metadata.json", f"{srv.warehouse}/reg/secrets.json",
                f"{srv.warehouse}/reg/%2e%2e/%2e%2e/secrets.json"):
        for route, body in (("register", {"name": "stolen", "metadata-location": loc}),
                            ("register-view", {"name": "stolen_view", "metadata-location": loc})):
            r = http.post(f"/v1/namespaces/reg/{route}", json=body)
            assert SECRET not in r.text, f"{route} echoed the file's content"
            _error(r, 400)

    # a real metadata file whose table claims a location outside the warehouse is refused too
    assert http.post("/v1/namespaces/reg/tables", json={"name": "src", "schema": SCHEMA}).status_code == 200
    loc, md = _metadata_of(http, "reg", "src")
    forged = wh / "reg" / "forged.metadata.json"
    forged.write_text(json.dumps({**md, "location": (srv.base / "victim").as_uri()}))
    _error(http.post("/v1/namespaces/reg/register", json={"name": "forged", "metadata-location": forged.as_uri()}),
           400)
    r = http.post("/v1/namespaces/reg/register", json={"name": "copy", "metadata-location": loc})
    assert r.status_code == 200, r.text


# Views ---------------------------------------------------------------------------------------------------
def test_view_location_must_lie_inside_the_warehouse(srv, http) -> None:
    _ns(http, "vw")
    outside = srv.base / "viewout"
    r = http.post("/v1/namespaces/vw/views", json={"name": "v", "schema": SCHEMA, "view-version": VIEW_VERSION,
                                                   "location": outside.as_uri()})
    assert not outside.exists(), "view metadata was written outside the warehouse"
    _error(r, 400)
    _error(http.post("/v1/namespaces/vw/views", json={"name": "v", "schema": SCHEMA, "view-version": VIEW_VERSION,
                                                      "location": f"{srv.warehouse}/%2e%2e/viewout"}), 400)
    ok = http.post("/v1/namespaces/vw/views", json={"name": "v", "schema": SCHEMA, "view-version": VIEW_VERSION})
    assert ok.status_code == 200, ok.text
    assert ok.json()["metadata"]["location"].startswith(srv.warehouse + "/vw/v-")
    moved = http.post("/v1/namespaces/vw/views/v", json={"updates": [
        {"action": "set-location", "location": outside.as_uri()}, {"action": "set-properties", "updates": {"a": "1"}}]})
    assert not outside.exists()
    _error(moved, 400)
    assert _outside(srv) == set()


# Names ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a#b", "q?x", "pct%2e%2e", "sp ace", "ünïcødé", "semi;colon", "dot.ted",
                                  "<script>", "x" * 255])
def test_any_valid_name_works_and_gets_a_plain_location(srv, http, name: str) -> None:
    _ns(http, "names")
    r = http.post("/v1/namespaces/names/tables", json={"name": name, "schema": SCHEMA})
    assert r.status_code == 200, r.text[:300]
    location = r.json()["metadata"]["location"]
    segment = location.rsplit("/", 1)[-1]
    assert location.startswith(srv.warehouse + "/names/") and all(c.isalnum() or c in "._-" for c in segment)
    path = f"/v1/namespaces/names/tables/{quote(name, safe='')}"
    assert http.get(path).json()["metadata"]["location"] == location
    assert {"namespace": ["names"], "name": name} in http.get("/v1/namespaces/names/tables").json()["identifiers"]
    assert http.delete(path, params={"purgeRequested": "true"}).status_code == 204
    assert not Path(location.removeprefix("file://")).exists()
    assert _outside(srv) == set()


@pytest.mark.parametrize("name", ["x" * 256, "x" * 300, "a/b", "..", "tab\tname", "\ud800"])
def test_names_that_cannot_be_held_are_a_clear_400(srv, http, name: str) -> None:
    _ns(http, "names2")
    body = json.dumps({"name": name, "schema": SCHEMA}).encode()  # ASCII-escaped: lone surrogates travel too
    r = http.post("/v1/namespaces/names2/tables", content=body, headers={"content-type": "application/json"})
    message = _error(r, 400)
    assert str(srv.base) not in message  # names the problem, not the server's paths
    r = http.post("/v1/namespaces", content=json.dumps({"namespace": ["names2", name]}).encode(),
                  headers={"content-type": "application/json"})
    _error(r, 400)


def test_unexpected_errors_carry_a_request_id_and_nothing_internal(srv, http) -> None:
    _ns(http, "broken")
    assert http.post("/v1/namespaces/broken/tables", json={"name": "t", "schema": SCHEMA}).status_code == 200
    with sqlite3.connect(srv.base / "catalog.db") as db:  # corrupt a row behind the server's back: a bytes name
        db.execute("UPDATE iceberg_tables SET table_name = CAST(table_name AS BLOB) WHERE table_namespace = 'broken'")
    r = http.get("/v1/namespaces/broken/tables", headers={"X-Request-ID": "req-4711"})
    assert r.status_code == 500
    assert r.json() == {"error": {"message": "Internal server error (request id req-4711)",
                                  "type": "ServerErrorException", "code": 500}}
    assert r.headers["x-request-id"] == "req-4711"


# Hypothesis: generated names -----------------------------------------------------------------------------
NAMES = st.one_of(
    st.text(min_size=1, max_size=30),
    st.text(alphabet=st.sampled_from("./\\%2eE#?;: \x00\x1f\x7f\u202e\ud800"), min_size=1, max_size=8),
    st.sampled_from(["..", ".", "%2e%2e", "%252e%252e", "x" * 255, "x" * 256, "a.b", "con", "nul", " "]),
)


def test_generated_names_never_give_5xx_or_files_outside(srv, http) -> None:
    seen: dict[int, int] = {}

    @given(levels=st.lists(NAMES, min_size=1, max_size=2), table=NAMES)
    @settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(levels: list[str], table: str) -> None:
        def post(url: str, body: dict) -> httpx.Response:
            r = http.post(url, content=json.dumps(body).encode(), headers={"content-type": "application/json"})
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
            assert r.status_code < 500, (url, body, r.text)
            return r

        for depth in range(1, len(levels) + 1):
            created = post("/v1/namespaces", {"namespace": levels[:depth]})
        if created.status_code not in (200, 409):
            return
        ns = _path(*levels)
        assert http.get(f"/v1/namespaces/{ns}").status_code == 200, levels
        t = post(f"/v1/namespaces/{ns}/tables", {"name": table, "schema": SCHEMA})
        if t.status_code == 200:
            path = f"/v1/namespaces/{ns}/tables/{quote(table, safe='')}"
            assert http.get(path).status_code == 200, (levels, table)
            assert http.delete(path, params={"purgeRequested": "true"}).status_code == 204

    run()
    assert _outside(srv) == set() and _victim_intact(srv)
    assert seen.get(200, 0) > 20 and seen.get(400, 0) > 5, seen  # both valid and invalid names were tried


# Namespace levels with dots ------------------------------------------------------------------------------
def test_namespace_levels_may_contain_dots(srv, http) -> None:
    cat = rest_catalog(srv.url)
    cat.create_namespace(("new.db",))
    assert cat.namespace_exists(("new.db",)) and not cat.namespace_exists(("new",))
    assert ("new.db",) in cat.list_namespaces() and ("new",) not in cat.list_namespaces()
    cat.create_namespace("new")
    cat.create_namespace(("new", "db"))  # a different namespace than ("new.db",)
    cat.create_namespace(("new.db", "c.d"))
    assert cat.list_namespaces(("new.db",)) == [("new.db", "c.d")]
    assert cat.list_namespaces(("new",)) == [("new", "db")]
    t = cat.create_table(("new.db", "c.d", "ta.ble"), schema=pa.schema([("id", pa.int64())]))
    t.append(pa.table({"id": pa.array([1], pa.int64())}))
    assert "/new.db/c.d/ta.ble-" in t.location()
    assert cat.list_tables(("new.db", "c.d")) == [("new.db", "c.d", "ta.ble")]
    assert cat.list_tables(("new", "db")) == []
    assert cat.load_table(("new.db", "c.d", "ta.ble")).scan().to_arrow().num_rows == 1
    cat.rename_table(("new.db", "c.d", "ta.ble"), ("new", "db", "moved"))
    assert cat.load_table(("new", "db", "moved")).scan().to_arrow().num_rows == 1
    cat.drop_namespace(("new.db", "c.d"))
    cat.drop_namespace(("new.db",))
    assert not cat.namespace_exists(("new.db",)) and cat.namespace_exists(("new", "db"))

    # namespaces without a dotted level keep SqlCatalog's layout: SqlCatalog on the same database sees them
    from pyiceberg.catalog.sql import SqlCatalog

    direct = SqlCatalog("lakehouse", uri=f"sqlite:///{srv.base}/catalog.db", warehouse=srv.warehouse)
    assert ("new", "db") in direct.list_namespaces("new")
    assert ("new", "db", "moved") in direct.list_tables(("new", "db"))


# Storage keys and the bind refusal -----------------------------------------------------------------------
def test_storage_credentials_only_for_authenticated_callers(tmp_path) -> None:
    auth = Auth(enabled=True, clients={"etl": hash_secret("pw")}, token_secret="k" * 32)
    storage = {"s3.endpoint": "http://127.0.0.1:1", "s3.access-key-id": "AK", "s3.secret-access-key": SECRET,
               "s3.region": "us-east-1"}
    with catalog_server(f"sqlite:///{tmp_path}/c.db", "s3://bucket/warehouse", auth=auth, storage=storage) as s, \
            api(s.url) as http:
        for path in ("/v1/config", "/v1/namespaces/a/tables/b", "/v1/namespaces/a/tables/b/credentials",
                     "/v1/lakehouse/namespaces/a/tables/b/credentials"):
            r = http.get(path)
            assert r.status_code == 401 and SECRET not in r.text, (path, r.text)
        token = http.post("/v1/oauth/tokens", data={"grant_type": "client_credentials", "client_id": "etl",
                                                    "client_secret": "pw"}).json()["access_token"]
        r = http.get("/v1/config", headers={"Authorization": f"Bearer {token}"})
        assert r.json()["defaults"]["s3.secret-access-key"] == SECRET


def test_catalog_serve_refuses_a_public_address_without_auth(lh_env, tmp_path) -> None:
    port = free_port()
    cmd = [str(BIN / "lakehouse"), "catalog", "serve", "--host", "0.0.0.0", "--port", str(port),  # noqa: S104
           "--db", f"sqlite:///{tmp_path}/c.db", "--warehouse", "s3://lakehouse/warehouse"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        leaked = httpx.get(f"http://127.0.0.1:{port}/v1/config", timeout=5).text
        proc.kill()
        proc.communicate()
        pytest.fail(f"served on 0.0.0.0 with auth off; /v1/config hands out the keys: {leaked[:200]}")
    assert proc.returncode == 2, out
    assert "refusing to serve the catalog on '0.0.0.0' with authentication off" in " ".join(out.split())
    assert not port_in_use("127.0.0.1", port)


# Bodies and threads --------------------------------------------------------------------------------------
def _raw_request(port: int, head: str, timeout: float = 10) -> str:
    """Send only a request's head (its body never comes) and read what the server answers until it closes.

    A server that reads the body first never answers. (Sending part of the body would race the server's
    close: unread data makes the kernel reset the connection and drop the answer.)
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n")
        answer = b""
        try:
            while chunk := sock.recv(65536):  # until the server closes the connection
                answer += chunk
        except TimeoutError:
            pass
        return answer.decode("latin-1") or "<no answer: the server waits for the whole body>"


LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    base = tmp_path_factory.mktemp("limits")
    app_kw = {"max_body_bytes": LIMIT, "worker_threads": 2}
    from catalog.app import create_app
    from catalog.server import BackgroundServer

    app = create_app(f"sqlite:///{base}/c.db", (base / "wh").as_uri(), log_requests=False, **app_kw)
    server = BackgroundServer(app).start()
    yield server
    server.stop()


def test_body_larger_than_the_limit_is_413_before_it_is_read(limited) -> None:
    head = (f"POST /v1/namespaces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {300 * 1024 * 1024}")
    started = time.monotonic()
    answer = _raw_request(limited.port, head)
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "PayloadTooLargeException" in answer and time.monotonic() - started < 5

    def chunks():
        yield b'{"namespace": ["big"], "properties": {"p": "'
        for _ in range(40):
            yield b"x" * 4096
        yield b'"}}'

    r = httpx.post(f"{limited.url}/v1/namespaces", content=chunks(), headers={"content-type": "application/json"})
    _error(r, 413, "PayloadTooLargeException")


def test_compressed_bodies_are_capped_after_decompression(limited) -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip
    data = bomb.compress(b'{"namespace": ["bomb"], "properties": {"p": "')
    zeros = b"0" * (1024 * 1024)
    data += b"".join(bomb.compress(zeros) for _ in range(32)) + bomb.compress(b'"}}') + bomb.flush()
    assert len(data) < LIMIT  # small on the wire, 32 MB once inflated
    r = httpx.post(f"{limited.url}/v1/namespaces", content=data,
                   headers={"content-type": "application/json", "content-encoding": "gzip"})
    _error(r, 413, "PayloadTooLargeException")
    small = zlib.compressobj(9, zlib.DEFLATED, 31)
    ok = small.compress(json.dumps({"namespace": ["zipped"]}).encode()) + small.flush()
    r = httpx.post(f"{limited.url}/v1/namespaces", content=ok,
                   headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 200, r.text
    r = httpx.post(f"{limited.url}/v1/namespaces", content=b"{}", headers={"content-encoding": "br"})
    _error(r, 415, "UnsupportedMediaTypeException")


def test_unauthenticated_body_is_never_read(tmp_path) -> None:
    auth = Auth(enabled=True, clients={"etl": hash_secret("pw")}, token_secret="k" * 32)
    with catalog_server(f"sqlite:///{tmp_path}/c.db", (tmp_path / "wh").as_uri(), auth=auth) as s:
        head = (f"POST /v1/namespaces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {300 * 1024 * 1024}")
        answer = _raw_request(s.port, head)
        assert answer.startswith("HTTP/1.1 401"), answer[:200]


def test_worker_threads_are_bounded(limited) -> None:
    def workers() -> set[int]:
        return {t.ident for t in threading.enumerate() if t.name.startswith("AnyIO worker thread")}

    before = workers()
    barrier = threading.Barrier(40)
    statuses: list[int] = []

    def client(i: int) -> None:
        with httpx.Client(base_url=limited.url, timeout=60) as c:
            barrier.wait()
            for j in range(3):
                statuses.append(c.post("/v1/namespaces", json={"namespace": [f"thr{i}_{j}"]}).status_code)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(40)]
    peak = 0
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, len(workers() - before))
        time.sleep(0.001)
    for t in threads:
        t.join()
    assert statuses.count(200) == 120
    assert peak <= 2, f"{peak} worker threads for a limit of 2"

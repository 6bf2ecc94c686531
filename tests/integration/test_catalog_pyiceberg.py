"""pyiceberg clients (library and CLI) against the real catalog server given only its URI."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.expressions import EqualTo, GreaterThanOrEqual
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform, MonthTransform
from pyiceberg.types import DateType, DoubleType, LongType, NestedField, StringType

from tests.catalog_support import catalog_server, rest_catalog, run_writers
from tests.conftest import run_cli

QUOTES = Schema(
    NestedField(1, "ticker", StringType(), required=False),
    NestedField(2, "trade_date", DateType(), required=False),
    NestedField(3, "close", DoubleType(), required=False),
)
QUOTES_SPEC = PartitionSpec(
    PartitionField(source_id=1, field_id=1000, transform=IdentityTransform(), name="ticker"),
    PartitionField(source_id=2, field_id=1001, transform=MonthTransform(), name="trade_month"),
)


def _quotes(tickers: list[str], day: int, close: float) -> pa.Table:
    return pa.table({
        "ticker": pa.array(tickers, pa.string()),
        "trade_date": pa.array([dt.date(2024, 1, day)] * len(tickers), pa.date32()),
        "close": pa.array([close] * len(tickers), pa.float64()),
    })


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("catalog_py")
    with catalog_server(f"sqlite:///{base}/catalog.db", (base / "warehouse").as_uri()) as srv:
        yield srv


@pytest.fixture(scope="module")
def cat(server):
    return rest_catalog(server.url)


def test_partitioned_table_write_paths_and_time_travel(cat) -> None:
    cat.create_namespace("market")
    tbl = cat.create_table("market.quotes", schema=QUOTES, partition_spec=QUOTES_SPEC)
    assert [f.name for f in cat.load_table("market.quotes").spec().fields] == ["ticker", "trade_month"]

    tbl.append(_quotes(["AAPL", "MSFT"], 2, 10.0))
    first = cat.load_table("market.quotes").current_snapshot().snapshot_id
    tbl.append(_quotes(["IBM"], 3, 20.0))
    tbl = cat.load_table("market.quotes")
    assert tbl.scan().to_arrow().num_rows == 3

    tbl.overwrite(_quotes(["GOOG"], 4, 30.0), overwrite_filter=EqualTo("ticker", "IBM"))
    tbl = cat.load_table("market.quotes")
    assert sorted(tbl.scan().to_arrow()["ticker"].to_pylist()) == ["AAPL", "GOOG", "MSFT"]

    tbl.delete(delete_filter=GreaterThanOrEqual("close", 30.0))
    tbl = cat.load_table("market.quotes")
    assert sorted(tbl.scan().to_arrow()["ticker"].to_pylist()) == ["AAPL", "MSFT"]

    # time travel to the first snapshot
    assert tbl.scan(snapshot_id=first).to_arrow().num_rows == 2
    ops = [s.summary.operation.value for s in tbl.snapshots()]
    assert ops[0] == "append" and "delete" in ops and len(ops) >= 4

    # schema evolution: add a column and rename one, old rows read as null
    with tbl.update_schema() as upd:
        upd.add_column("volume", LongType())
        upd.rename_column("close", "close_price")
    tbl = cat.load_table("market.quotes")
    assert [f.name for f in tbl.schema().fields] == ["ticker", "trade_date", "close_price", "volume"]
    tbl.append(pa.table({"ticker": ["TSLA"], "trade_date": [dt.date(2024, 2, 1)], "close_price": [5.0],
                         "volume": pa.array([100], pa.int64())}))
    rows = cat.load_table("market.quotes").scan().to_arrow().sort_by("ticker").to_pylist()
    assert rows[0]["volume"] is None and rows[-1] == {"ticker": "TSLA", "trade_date": dt.date(2024, 2, 1),
                                                      "close_price": 5.0, "volume": 100}
    # sort order and properties round-trip
    with cat.load_table("market.quotes").transaction() as tx:
        tx.set_properties({"owner": "ingest"})
    assert cat.load_table("market.quotes").properties["owner"] == "ingest"


def test_namespaces_rename_register_drop_purge(cat) -> None:
    cat.create_namespace(("lab",), {"team": "quant"})
    cat.create_namespace(("lab", "scratch"))
    assert ("lab", "scratch") in cat.list_namespaces(("lab",))
    assert cat.load_namespace_properties("lab") == {"team": "quant"}
    summary = cat.update_namespace_properties("lab", removals={"team", "nope"}, updates={"k": "v"})
    assert summary.removed == ["team"] and summary.missing == ["nope"] and summary.updated == ["k"]

    t = cat.create_table(("lab", "scratch", "t"), schema=QUOTES)
    t.append(_quotes(["A"], 5, 1.0))
    cat.rename_table(("lab", "scratch", "t"), ("lab", "t2"))
    assert cat.list_tables(("lab", "scratch")) == []
    moved = cat.load_table(("lab", "t2"))
    assert moved.scan().to_arrow().num_rows == 1

    cat.drop_table(("lab", "t2"))  # files stay
    assert Path(moved.metadata_location.removeprefix("file://")).exists()
    again = cat.register_table(("lab", "t3"), moved.metadata_location)
    assert again.scan().to_arrow().num_rows == 1
    cat.purge_table(("lab", "t3"))
    assert not Path(moved.location().removeprefix("file://")).exists()
    with pytest.raises(NoSuchTableError):
        cat.load_table(("lab", "t3"))
    cat.drop_namespace(("lab", "scratch"))
    cat.drop_namespace("lab")
    assert ("lab",) not in cat.list_namespaces()


def test_concurrent_appends_never_lose_a_commit(server) -> None:
    """8 writers x 5 appends on one table, retrying on 409: 40 snapshots and every row."""
    admin = rest_catalog(server.url)
    admin.create_namespace("conc")
    admin.create_table("conc.t", schema=pa.schema([("writer", pa.int64()), ("seq", pa.int64())]),
                       properties={"commit.retry.num-retries": "0"})
    conflicts = [0]

    def writer(w: int) -> None:
        cat = rest_catalog(server.url)
        for seq in range(5):
            for _ in range(200):
                tbl = cat.load_table("conc.t")
                try:
                    tbl.append(pa.table({"writer": pa.array([w], pa.int64()), "seq": pa.array([seq], pa.int64())}))
                    break
                except CommitFailedException:
                    conflicts[0] += 1
            else:
                raise AssertionError("gave up after 200 conflicts")

    errors = run_writers(writer)
    assert not errors, errors
    tbl = admin.load_table("conc.t")
    assert len(tbl.snapshots()) == 40
    rows = sorted((r["writer"], r["seq"]) for r in tbl.scan().to_arrow().to_pylist())
    assert rows == [(w, s) for w in range(8) for s in range(5)]
    assert conflicts[0] > 0  # the writers really raced


def test_pyiceberg_cli_list_and_describe(server, cat) -> None:
    cat.create_namespace("cli")
    cat.create_table("cli.prices", schema=QUOTES, partition_spec=QUOTES_SPEC)
    exe = str(Path(sys.executable).parent / "pyiceberg")
    env = {**os.environ, "COLUMNS": "250"}
    out = subprocess.run([exe, "--uri", server.url, "list"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert "cli" in out.stdout.split()
    out = subprocess.run([exe, "--uri", server.url, "list", "cli"], capture_output=True, text=True, timeout=60,
                         env=env)
    assert "cli.prices" in out.stdout
    out = subprocess.run([exe, "--uri", server.url, "describe", "cli.prices"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    for needle in ("ticker", "trade_date", "trade_month: month(2)", "Metadata location", "/cli/prices-"):
        assert needle in out.stdout, needle


def test_open_lake_uses_in_process_server_on_the_same_database(cfg) -> None:
    from lakehouse.lake import open_lake

    with open_lake(cfg) as lake:
        assert lake.uri and lake.uri.startswith("http://127.0.0.1:")
        assert lake.properties == {"uri": lake.uri}
        lake.catalog.create_namespace("raw")
        lake.catalog.create_table("raw.quotes", schema=QUOTES)
        first_uri = lake.uri
    # the next command sees the same catalog database through a fresh in-process server
    with open_lake(cfg) as lake:
        assert lake.catalog.list_tables("raw") == [("raw", "quotes")]
        assert lake.catalog.load_table("raw.quotes").location().startswith(cfg.warehouse_uri + "/raw/quotes-")
    import httpx

    with pytest.raises(httpx.TransportError):
        httpx.get(first_uri + "/healthz", timeout=2)  # stopped after the block


def test_catalog_service_under_supervisor(lh_env, cfg) -> None:
    """`lakehouse up catalog` in embedded mode (no object store needed), then open_lake uses it."""
    from lakehouse.lake import open_lake
    from lakehouse.services.supervisor import down, is_running

    try:
        res = run_cli("up", "catalog", env=lh_env)
        assert res.returncode == 0, res.stdout + res.stderr
        assert is_running(cfg, "catalog")
        assert "objectstore" not in res.stdout
        with open_lake(cfg) as lake:
            assert lake.uri == cfg.catalog_uri
            lake.catalog.create_namespace("svc")
        log = (cfg.logs_dir / "catalog.log").read_text()
        assert '"request_id"' in log and '"path": "/v1/namespaces"' in log
        res = run_cli("catalog", "list", env=lh_env)
        assert res.returncode == 0 and "svc" in res.stdout, res.stdout + res.stderr
    finally:
        down(cfg, ["catalog"])
    assert not is_running(cfg, "catalog")


def test_open_lake_with_auth_on(lh_env, monkeypatch) -> None:
    """With catalog.auth on, the platform's own commands authenticate with the built-in client."""
    import httpx

    from lakehouse.config import get_config
    from lakehouse.lake import open_lake

    monkeypatch.setenv("LAKEHOUSE_CATALOG__AUTH", "true")
    cfg = get_config(reload=True)
    with open_lake(cfg) as lake:
        assert set(lake.properties) == {"uri", "credential", "oauth2-server-uri"}
        lake.catalog.create_namespace("authed")
        assert ("authed",) in lake.catalog.list_namespaces()
        assert httpx.get(f"{lake.uri}/v1/namespaces").status_code == 401  # anonymous is refused
        assert cfg.catalog.platform_secret not in repr(lake)  # tracebacks and test reports print handles

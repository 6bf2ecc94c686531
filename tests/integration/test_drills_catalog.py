"""Reliability drills on the catalog service (SeaweedFS and the catalog started by the supervisor, services
mode, one stack for the module):

- kill -9 of the catalog while ``lakehouse ingest`` is about to commit its load: the ingest fails with a
  message naming the catalog, the catalog restarts, the rerun finishes the interrupted load, and every
  table is consistent: pyiceberg, DuckDB and ClickHouse (chdb) count the same rows, no duplicate keys,
  nothing lost (the whole sample is there), and one more run adds nothing;
- eight writers appending to one table through the catalog at once for ``LAKEHOUSE_DRILL_SECONDS``
  seconds (default 20; the issue's figure is 60): zero lost commits, i.e. the table holds exactly the
  rows of the acknowledged appends; the commits/s reached is printed.
"""

from __future__ import annotations

import os
import threading
import time

import pyarrow as pa
import pytest
from pyiceberg.exceptions import CommitFailedException

from lakehouse.lake import open_lake
from lakehouse.stages.ingest.tables import PAUSE_ENV
from tests.drills_support import (
    assert_no_traceback,
    chdb_count,
    check_engines,
    cli,
    kill9_service,
    lake_tables,
    services_env,
    spawn,
    stack,
    up,
)

#: Rows of the shipped sample (every ticker, every day): what a complete ingest holds.
SAMPLE_ROWS = 12_154
#: How long the concurrent writers drill appends (seconds).
DRILL_SECONDS = float(os.environ.get("LAKEHOUSE_DRILL_SECONDS", "20"))
WRITERS = 8
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    base = tmp_path_factory.mktemp("drills_catalog")
    env = services_env(base / "home")
    with stack(env, ("objectstore", "catalog")) as cfg:
        yield {"env": env, "cfg": cfg, "base": base}


def test_kill_9_catalog_during_ingest(lake) -> None:
    env, cfg, base = lake["env"], lake["cfg"], lake["base"]
    marker = base / "committing"
    child = spawn(env, "ingest", out=base / "ingest-killed.out",
                  extra={PAUSE_ENV: "2", f"{PAUSE_ENV}_MARKER": str(marker)})
    child.wait_for("", poll=marker.exists)  # data files written, the catalog commit comes next
    kill9_service(cfg, "catalog")
    code, out = child.finish(timeout=300)
    assert code == 1, out[-4000:]
    assert_no_traceback(out)
    flat = " ".join(out.split())
    assert f"the Iceberg catalog at {cfg.catalog_uri} is not reachable" in flat, out[-4000:]

    up(env, "catalog")  # the restart
    rerun = cli(env, "ingest")
    assert rerun.returncode == 0, rerun.stdout[-4000:] + rerun.stderr[-2000:]
    assert "finishing an interrupted load" in rerun.stdout

    tables = lake_tables(cfg)
    quotes = tables["raw.quotes"]
    assert quotes.rows == SAMPLE_ROWS, "rows lost or duplicated"
    check_engines(env, cfg, tables)  # DuckDB and ClickHouse agree with pyiceberg; no duplicate keys
    assert chdb_count(cfg, "raw.quotes", "count() - uniqExact(source, ticker, trade_date)") == 0
    loads = tables["raw._dlt_loads"].rows

    again = cli(env, "ingest")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    after = lake_tables(cfg)
    assert after["raw.quotes"].rows == SAMPLE_ROWS
    assert after["raw._dlt_loads"].rows <= loads + 1


def test_eight_writers_lose_no_commit(lake, capsys) -> None:
    cfg = lake["cfg"]
    with open_lake(cfg) as handle:
        cat = handle.catalog
        cat.create_namespace_if_not_exists("drill")
        tbl = cat.create_table("drill.appends", schema=pa.schema([("writer", pa.int64()), ("seq", pa.int64())]),
                               properties={"commit.retry.num-retries": "50", "commit.retry.min-wait-ms": "20",
                                           "commit.retry.max-wait-ms": "500"})
        assert tbl.current_snapshot() is None
        props = dict(handle.properties)

    from pyiceberg.catalog.rest import RestCatalog

    acknowledged: list[set[tuple[int, int]]] = [set() for _ in range(WRITERS)]
    refused: list[int] = [0] * WRITERS  # commits the catalog refused after pyiceberg's retries: nothing landed
    unknown: list[tuple[int, int, str]] = []  # any other error: the commit may or may not have landed
    deadline = time.monotonic() + DRILL_SECONDS

    def writer(w: int) -> None:
        client = RestCatalog(f"writer-{w}", **props)
        table = client.load_table("drill.appends")
        seq = 0
        while time.monotonic() < deadline:
            row = pa.table({"writer": pa.array([w], pa.int64()), "seq": pa.array([seq], pa.int64())})
            try:
                table.append(row)
                acknowledged[w].add((w, seq))
            except CommitFailedException:
                refused[w] += 1
                table = client.load_table("drill.appends")
            except Exception as exc:  # noqa: BLE001 - reported below
                unknown.append((w, seq, f"{type(exc).__name__}: {exc}"))
                table = client.load_table("drill.appends")
            seq += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=DRILL_SECONDS + 300)
    elapsed = time.monotonic() - t0
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert not unknown, unknown[:5]

    acked = set().union(*acknowledged)
    with open_lake(cfg) as handle:
        table = handle.catalog.load_table("drill.appends")
        rows = table.scan().to_arrow()
        snapshots = len(table.metadata.snapshots)
    got = set(zip(rows["writer"].to_pylist(), rows["seq"].to_pylist(), strict=True))
    assert rows.num_rows == len(got), "a commit landed twice"
    assert got == acked, f"lost: {len(acked - got)}, unacknowledged but present: {len(got - acked)}"
    assert snapshots == len(acked)
    assert all(acknowledged), "a writer never committed"
    rate = len(acked) / elapsed
    with capsys.disabled():
        print(f"\ndrill: {WRITERS} writers on one table for {DRILL_SECONDS:.0f} s (services mode, S3): "
              f"{len(acked)} commits acknowledged, {sum(refused)} refused after retries, 0 lost; "
              f"{rate:.1f} commits/s")
    assert lake_tables(cfg)["drill.appends"].rows == len(acked)

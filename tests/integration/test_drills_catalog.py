"""Reliability drills on the catalog service (SeaweedFS and the catalog started by the supervisor, services
mode, one stack for the module):

- kill -9 of the catalog while ``lakehouse ingest`` is about to commit its load (before the merge into
  raw.quotes, and between that merge and the load's bookkeeping commit): the ingest fails with a message
  naming the catalog, the catalog restarts, the rerun finishes the interrupted load, and every table is
  consistent: pyiceberg, DuckDB and ClickHouse (chdb) count the same rows, no duplicate keys, nothing
  lost (every sample row up to the load's last day is there), and one more run adds nothing;
- eight writers appending to one table through the catalog at once for ``LAKEHOUSE_DRILL_SECONDS``
  seconds (default 20; the issue's figure is 60): zero lost commits, i.e. the table holds exactly the
  rows of the acknowledged appends; the commits/s reached is printed.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

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

#: How long the concurrent writers drill appends (seconds).
DRILL_SECONDS = float(os.environ.get("LAKEHOUSE_DRILL_SECONDS", "20"))
WRITERS = 8
#: How long one writer appends alone first (the anchor of the commits/s figure).
SOLO_SECONDS = 5.0
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    base = tmp_path_factory.mktemp("drills_catalog")
    env = services_env(base / "home")
    with stack(env, ("objectstore", "catalog")) as cfg:
        yield {"env": env, "cfg": cfg, "base": base}


def sample_rows(end: str) -> int:
    """Rows of the shipped sample up to ``end`` (ISO date), read from its file: what a complete load holds."""
    import csv
    import gzip

    from lakehouse.sources import sample

    with gzip.open(Path(sample.__file__).parent / "data" / "stocks.csv.gz", "rt") as fh:
        return sum(1 for row in csv.DictReader(fh) if row["Date"] <= end)


# (which commit of the load the kill lands before, the sample's last day for this load): the first is the
# merge into raw.quotes (nothing of the load committed yet), the second the bookkeeping row in
# raw._dlt_loads (raw.quotes committed, the load not finished: the rerun must not merge it again)
KILL_POINTS = [(1, "2008-12-31"), (2, "2099-12-31")]


@pytest.mark.parametrize(("commit", "end"), KILL_POINTS, ids=["before-quotes-commit", "before-bookkeeping-commit"])
def test_kill_9_catalog_during_ingest(lake, commit: int, end: str) -> None:
    env, cfg, base = lake["env"], lake["cfg"], lake["base"]
    env = {**env, "LAKEHOUSE_SOURCES__SAMPLE__END": end}
    marker = base / f"committing-{commit}"
    child = spawn(env, "ingest", out=base / f"ingest-killed-{commit}.out",
                  extra={PAUSE_ENV: "6", f"{PAUSE_ENV}_MARKER": str(marker)})
    for _ in range(commit):  # the hook touches the marker before each commit of the load
        marker.unlink(missing_ok=True)
        child.wait_for("", poll=marker.exists)
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

    expected = sample_rows(end)
    tables = lake_tables(cfg)
    assert tables["raw.quotes"].rows == expected, "rows lost or duplicated"
    check_engines(env, cfg, tables)  # DuckDB and ClickHouse agree with pyiceberg; no duplicate keys
    assert chdb_count(cfg, "raw.quotes", "count() - uniqExact(source, ticker, trade_date)") == 0
    loads = tables["raw._dlt_loads"].rows

    again = cli(env, "ingest")  # nothing new: changes nothing
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    after = lake_tables(cfg)
    assert after["raw.quotes"].rows == expected
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

    # the anchor: one writer alone on a table of its own, in the same run
    solo = RestCatalog("solo", **props).create_table(
        "drill.solo", schema=pa.schema([("writer", pa.int64()), ("seq", pa.int64())]))
    solo_end, solo_commits, solo_t0 = time.monotonic() + SOLO_SECONDS, 0, time.monotonic()
    while time.monotonic() < solo_end:
        solo.append(pa.table({"writer": pa.array([0], pa.int64()), "seq": pa.array([solo_commits], pa.int64())}))
        solo_commits += 1
    solo_rate = solo_commits / (time.monotonic() - solo_t0)

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
              f"{rate:.1f} commits/s (one writer alone, same run: {solo_rate:.1f} commits/s; "
              f"ratio {rate / solo_rate:.2f})")
    assert lake_tables(cfg)["drill.appends"].rows == len(acked)

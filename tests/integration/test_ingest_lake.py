"""Ingestion end to end into Iceberg through the REST catalog: exact row counts, one commit per load,
idempotence, incremental resume, quarantine, failure isolation and exit codes, a load killed with
SIGKILL mid-commit, and DuckDB + ClickHouse (chdb) reading what was loaded."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import BIN, ROOT, applied_env, chdb_iceberg_query, isolated_env
from rich.console import Console

from lakehouse.config import get_config
from lakehouse.lake import open_lake
from lakehouse.stages.ingest.run import run_ingest
from tests.quote_server import SBER_BAD_DAY, SBER_NULL_DAY, QuoteServer, business_days

QUIET = Console(quiet=True)
MOEX_DAYS = len(business_days(dt.date(2024, 1, 1), dt.date(2024, 12, 31)))  # 262


@pytest.fixture(scope="module")
def server():
    with QuoteServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def env(tmp_path_factory, server):
    """A private state dir for the module, with the sources pointed at the replay server."""
    values = isolated_env(tmp_path_factory.mktemp("ingest") / "home")
    values.update({
        "LAKEHOUSE_SOURCES__MOEX__BASE_URL": server.url,
        "LAKEHOUSE_SOURCES__MOEX__START": "2024-01-01",
        "LAKEHOUSE_SOURCES__YAHOO__BASE_URL": server.url,
        "LAKEHOUSE_SOURCES__YAHOO__START": "2024-01-01",
        "LAKEHOUSE_SOURCES__BACKOFF_BASE_SECONDS": "0.01",
        "LAKEHOUSE_SOURCES__BACKOFF_MAX_SECONDS": "2",
        "LAKEHOUSE_SOURCES__MAX_RETRIES": "2",
        "LAKEHOUSE_SOURCES__SYNTHETIC__START": "2020-01-01",
    })
    with applied_env(values):
        yield values


def scan(table: str = "raw.quotes", row_filter: str | None = None) -> tuple[pa.Table, object]:
    """All rows of ``table`` and its pyiceberg Table (fresh from the catalog)."""
    with open_lake(get_config()) as lake:
        tbl = lake.catalog.load_table(table)
        data = tbl.scan(row_filter=row_filter).to_arrow() if row_filter else tbl.scan().to_arrow()
        return data, tbl


def n_keys(data: pa.Table) -> int:
    return data.group_by(["source", "ticker", "trade_date"]).aggregate([]).num_rows


def test_sample_exact_rows_incremental_and_idempotent(env):
    cfg = get_config()
    first = run_ingest(cfg, "sample", console=QUIET)
    assert first.ok and first.rows_loaded == 12_154 and first.rows_rejected == 0
    data, tbl = scan("raw.quotes", "source == 'sample'")
    assert data.num_rows == 12_154 == n_keys(data)
    counts = dict(zip(*data.group_by("ticker").aggregate([("trade_date", "count")]).to_pydict().values(),
                      strict=True))
    assert counts == {"AAPL": 3270, "IBM": 3270, "MSFT": 3270, "GOOG": 2148, "FB": 196}
    assert set(data["load_id"].to_pylist()) == set(first.load_ids)
    commits_before = len(tbl.metadata.metadata_log)
    assert [f.name for f in tbl.spec().fields] == ["source", "trade_date_year"]

    # incremental: nothing new after the last trade date of each ticker
    again = run_ingest(cfg, "sample", console=QUIET)
    assert again.rows_loaded == 0 and all("up to date" in t.note or "no new" in t.note
                                          for t in again.report.tickers.values())
    assert scan("raw.quotes", "source == 'sample'")[0].num_rows == 12_154

    # backfill the same window twice: same rows, newest load wins, one commit per load
    snapshots = []
    for _ in range(2):
        back = run_ingest(cfg, "sample", start="2000-01-01", end="2013-12-31", console=QUIET)
        assert back.rows_loaded == 12_154
        assert sum(c.replaced for c in back.commits if c.table == "quotes") == 12_154  # every row re-keyed
        data, tbl = scan("raw.quotes", "source == 'sample'")
        assert data.num_rows == 12_154 == n_keys(data)
        assert set(data["load_id"].to_pylist()) == set(back.load_ids)
        snapshots.append(tbl.current_snapshot().snapshot_id)
    assert len(tbl.metadata.metadata_log) == commits_before + 2  # one metadata commit per load
    assert snapshots[0] != snapshots[1]

    # an overlapping window of one ticker replaces only that window
    part = run_ingest(cfg, "sample", tickers=["AAPL"], start="2010-01-01", end="2010-12-31", console=QUIET)
    assert part.rows_loaded == 252
    data, _ = scan("raw.quotes", "source == 'sample'")
    assert data.num_rows == 12_154 == n_keys(data)
    newest = data.filter(pc.equal(data["load_id"], part.load_ids[0]))
    assert newest.num_rows == 252 and set(newest["ticker"].to_pylist()) == {"AAPL"}

    # a committed load keeps no copy of its rows in dlt's working dir (it grew by each load's size)
    loaded = cfg.path("dlt") / "lakehouse_sample" / "load" / "loaded"
    assert set(part.load_ids) <= {p.name for p in loaded.iterdir()}
    kept = [p for p in loaded.rglob("*") if p.is_file() and ".parquet" in p.name]
    assert not kept, kept[:3]


def test_moex_incremental_resume_and_quarantine(env, server):
    cfg = get_config()
    first = run_ingest(cfg, "moex", tickers=["SBER"], end="2024-06-30", console=QUIET)
    assert first.ok
    h1 = [d for d in business_days(dt.date(2024, 1, 1), dt.date(2024, 6, 30))]
    assert first.rows_loaded == len(h1) - 2 and first.rows_rejected == 2
    sber = first.report.tickers["SBER"]
    assert (sber.rows, sber.rejected, sber.pages, sber.error) == (len(h1) - 2, 2, 2, None)

    second = run_ingest(cfg, "moex", tickers=["SBER"], end="2024-12-31", console=QUIET)
    # resumed the day after the last loaded trade date (Friday 2024-06-28)
    assert server.moex_requests("SBER")[-1]["from"] == "2024-06-29"
    assert second.rows_loaded == MOEX_DAYS - len(h1) and second.rows_rejected == 0
    data, _ = scan("raw.quotes", "source == 'moex'")
    assert data.num_rows == MOEX_DAYS - 2 == n_keys(data)
    assert data.schema.field("trade_date").type == pa.date32()
    sber = data.filter(pc.equal(data["trade_date"], pa.scalar(dt.date(2024, 7, 1), pa.date32())))
    assert sber["currency"][0].as_py() == "RUB" and sber["close"][0].as_py() == sber["adj_close"][0].as_py()

    rejected, _ = scan("raw.quotes_rejected", "source == 'moex'")
    rows = sorted(rejected.to_pylist(), key=lambda r: r["trade_date"])
    assert [(r["ticker"], r["trade_date"], r["reason"]) for r in rows] == [
        ("SBER", SBER_NULL_DAY, "missing open"), ("SBER", SBER_BAD_DAY, "high < low")]
    raw = json.loads(rows[1]["raw_record"])
    assert raw["TRADEDATE"] == SBER_BAD_DAY.isoformat() and raw["HIGH"] < raw["LOW"]
    assert rows[0]["load_id"] == first.load_ids[0]

    # backfilling the whole year again: same rows, quarantine grows only by this load's rejects
    again = run_ingest(cfg, "moex", tickers=["SBER"], start="2024-01-01", end="2024-12-31", console=QUIET)
    assert again.rows_loaded == MOEX_DAYS - 2 and again.rows_rejected == 2
    assert scan("raw.quotes", "source == 'moex'")[0].num_rows == MOEX_DAYS - 2


def test_failing_tickers_keep_the_others_and_exit_partial(env, server):
    proc = subprocess.run(
        [str(BIN / "lakehouse"), "ingest", "--source", "moex", "--tickers", "GAZP,HTML,NOPE,TRUNC,LKOH",
         "--end", "2024-12-31"],
        capture_output=True, text=True, env={**os.environ, **env, "COLUMNS": "200"}, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr  # partial: documented in `lakehouse ingest --help`
    err = " ".join(proc.stderr.split())
    assert "3 of 5 tickers failed" in err
    assert "moex HTML: got an HTML page instead of JSON" in err
    assert "moex NOPE: no history on board TQBR" in err
    assert "moex TRUNC: truncated or invalid JSON" in err
    assert f"{server.url}/iss/history/engines/stock/markets/shares/boards/TQBR/securities/TRUNC.json" in err
    assert "GAZP" in proc.stdout and "LKOH" in proc.stdout and "loaded" in proc.stdout
    data, _ = scan("raw.quotes", "source == 'moex'")
    by_ticker = dict(zip(*data.group_by("ticker").aggregate([("close", "count")]).to_pydict().values(),
                         strict=True))
    assert by_ticker["GAZP"] == by_ticker["LKOH"] == MOEX_DAYS  # retried 429/503 and loaded
    assert not {"HTML", "NOPE", "TRUNC"} & set(by_ticker)


def test_yahoo_load(env, server):
    summary = run_ingest(get_config(), "yahoo", tickers=["AAPL", "MSFT", "NOPE"], end="2024-03-31", console=QUIET)
    assert not summary.ok and len(summary.failed) == 1 and "yahoo NOPE: HTTP 404" in summary.failed[0]
    days = len(business_days(dt.date(2024, 1, 2), dt.date(2024, 3, 28)))
    assert summary.rows_loaded == 2 * (days - 1) and summary.rows_rejected == 2
    data, _ = scan("raw.quotes", "source == 'yahoo'")
    assert data.num_rows == 2 * (days - 1) == n_keys(data)


def _cli(env: dict[str, str], *args: str, **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "lakehouse"), "ingest", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **env, **extra_env}, cwd=ROOT)


def test_killed_load_leaves_table_unchanged_and_next_run_completes(env, tmp_path):
    cfg = get_config()
    base = run_ingest(cfg, "synthetic", tickers=[f"SYN{i:04d}" for i in range(5)], end="2020-06-30", console=QUIET)
    assert base.rows_loaded == 5 * len(business_days(dt.date(2020, 1, 1), dt.date(2020, 6, 30)))
    before, tbl = scan("raw.quotes", "source == 'synthetic'")
    location = tbl.metadata_location

    marker = tmp_path / "committing"
    tickers = ",".join(f"SYN{i:04d}" for i in range(40))
    proc = _cli(env, "--source", "synthetic", "--tickers", tickers, "--start", "2020-01-01", "--end", "2020-12-31",
                LAKEHOUSE_INGEST_PAUSE_BEFORE_COMMIT="120", LAKEHOUSE_INGEST_PAUSE_BEFORE_COMMIT_MARKER=str(marker))
    deadline = time.monotonic() + 180
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), proc.stdout.read() if proc.poll() is not None else "no commit reached"
    os.kill(proc.pid, signal.SIGKILL)  # data files written, catalog commit not done
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    after, tbl = scan("raw.quotes", "source == 'synthetic'")
    assert tbl.metadata_location == location
    assert after.num_rows == before.num_rows and after.equals(before)

    done = _cli(env, "--source", "synthetic", "--tickers", tickers, "--end", "2020-12-31")
    out, _ = done.communicate(timeout=300)
    assert done.returncode == 0, out
    assert "finishing an interrupted load" in out
    final, _ = scan("raw.quotes", "source == 'synthetic'")
    assert final.num_rows == 40 * len(business_days(dt.date(2020, 1, 1), dt.date(2020, 12, 31))) == n_keys(final)


def test_duckdb_and_clickhouse_read_what_was_loaded(env):
    cfg = get_config()
    run_ingest(cfg, "sample", start="2000-01-01", end="2013-12-31", console=QUIET)
    from lakehouse.transform.duck import connect

    with open_lake(cfg) as lake:
        tbl = lake.catalog.load_table("raw.quotes")
        expected = tbl.scan(row_filter="source == 'sample'").to_arrow().num_rows
        con = connect()
        if lake.uri:
            con.execute(f"ATTACH '{lake.warehouse}' AS lake (TYPE iceberg, ENDPOINT '{lake.uri}', "
                        "AUTHORIZATION_TYPE 'none')")
            source = "lake.raw.quotes"
        else:
            source = f"iceberg_scan('{tbl.metadata_location}')"
        got = con.execute(f"SELECT count(*), count(DISTINCT ticker), max(trade_date) FROM {source} "
                          "WHERE source = 'sample'").fetchone()
        assert got == (expected, 5, dt.date(2013, 3, 1))
        out = chdb_iceberg_query(tbl, "count(), uniqExact(ticker), max(trade_date)", "source = 'sample'",
                                 timeout=120)
    assert out == f'{expected},5,"2013-03-01"'


def test_stage_ingests_the_configured_default_source(env):
    from lakehouse.pipeline.runner import run_one

    detail = run_one(get_config(), "ingest", QUIET)
    assert detail.startswith("sample: ")
    data, _ = scan("raw.quotes", "source == 'sample'")
    assert data.num_rows == 12_154


def test_merge_commit_dedupes_keeps_untouched_rows_and_is_one_snapshot(env):
    """The commit primitive directly: duplicate keys in a batch (pyiceberg upsert would refuse them),
    rows out of key order across years, untouched rows in rewritten files kept, one snapshot per load."""
    from lakehouse.stages.ingest.tables import ensure_table, merge_commit

    def batch(rows):
        return pa.table({
            "source": ["unit"] * len(rows), "ticker": [r[0] for r in rows],
            "trade_date": pa.array([r[1] for r in rows], pa.date32()),
            "close": [float(r[2]) for r in rows], "currency": ["USD"] * len(rows),
        })

    d = dt.date
    now = dt.datetime.now(dt.UTC)
    keys = ["source", "ticker", "trade_date"]
    with open_lake(get_config()) as lake:
        tbl = ensure_table(lake.catalog, "quotes")
        first = batch([("B", d(2020, 1, 2), 1), ("A", d(2021, 1, 4), 1), ("A", d(2020, 1, 2), 1),
                       ("B", d(2021, 1, 4), 1)])
        assert merge_commit(tbl, first, keys, "unit-1", now).rows == 4
        snaps = len(lake.catalog.load_table("raw.quotes").metadata.snapshots)
        second = batch([("A", d(2020, 1, 2), 2), ("A", d(2020, 1, 2), 3), ("C", d(2020, 1, 3), 3)])
        res = merge_commit(lake.catalog.load_table("raw.quotes"), second, keys, "unit-2", now)
        assert (res.rows, res.replaced) == (2, 1)
        # the same load id again is a no-op (exactly-once)
        assert merge_commit(lake.catalog.load_table("raw.quotes"), second, keys, "unit-2", now).skipped
        tbl = lake.catalog.load_table("raw.quotes")
        assert len(tbl.metadata.snapshots) == snaps + 1
        assert tbl.current_snapshot().summary["lakehouse.load_id"] == "unit-2"
        got = tbl.scan(row_filter="source == 'unit'").to_arrow().sort_by([("ticker", "ascending"),
                                                                             ("trade_date", "ascending")])
    assert [(r["ticker"], r["trade_date"], r["close"], r["load_id"]) for r in got.to_pylist()] == [
        ("A", d(2020, 1, 2), 3.0, "unit-2"), ("A", d(2021, 1, 4), 1.0, "unit-1"),
        ("B", d(2020, 1, 2), 1.0, "unit-1"), ("B", d(2021, 1, 4), 1.0, "unit-1"),
        ("C", d(2020, 1, 3), 3.0, "unit-2")]


def test_failed_commit_leaves_table_unchanged_and_next_run_completes(env):
    cfg = get_config()
    run_ingest(cfg, "sample", tickers=["IBM"], start="2000-01-01", end="2005-12-31", console=QUIET)
    before, tbl = scan("raw.quotes", "source == 'sample'")
    location = tbl.metadata_location

    failed = _cli(env, "--source", "sample", "--tickers", "IBM,MSFT", "--start", "2000-01-01", "--end", "2013-12-31",
                  LAKEHOUSE_INGEST_FAIL_BEFORE_COMMIT="1")
    out, _ = failed.communicate(timeout=300)
    assert failed.returncode == 1, out
    flat = " ".join(out.split())
    assert "ingest failed at the load step" in flat and "injected failure before the Iceberg commit" in flat
    assert "raw.quotes is unchanged" in flat and "Traceback" not in out
    after, tbl = scan("raw.quotes", "source == 'sample'")
    assert tbl.metadata_location == location and after.equals(before)

    done = _cli(env, "--source", "sample", "--tickers", "IBM,MSFT")
    out, _ = done.communicate(timeout=300)
    assert done.returncode == 0, out
    data, _ = scan("raw.quotes", "source == 'sample'")
    ibm_msft = data.filter(pc.is_in(data["ticker"], pa.array(["IBM", "MSFT"])))
    assert ibm_msft.num_rows == 2 * 3270 == n_keys(ibm_msft)


def test_new_source_column_evolves_the_table_schema(env):
    """A column the source starts sending is added to the Iceberg schema in the same load (older rows null)."""
    from lakehouse.stages.ingest.tables import ensure_table, merge_commit

    now = dt.datetime.now(dt.UTC)
    keys = ["source", "ticker", "trade_date"]
    with open_lake(get_config()) as lake:
        tbl = ensure_table(lake.catalog, "quotes", namespace="unit_evolve")
        base = pa.table({"source": ["u"], "ticker": ["A"], "trade_date": pa.array([dt.date(2024, 1, 2)], pa.date32()),
                         "close": [1.0]})
        merge_commit(tbl, base, keys, "e-1", now)
        newer = base.append_column("num_trades", pa.array([7], pa.int64()))
        newer = pa.concat_tables([newer, newer.set_column(2, "trade_date", pa.array([dt.date(2024, 1, 3)],
                                                                                       pa.date32()))])
        newer = newer.slice(1)  # only 2024-01-03: the 2024-01-02 row in the same file is kept
        log = len(lake.catalog.load_table("unit_evolve.quotes").metadata.metadata_log)
        merge_commit(lake.catalog.load_table("unit_evolve.quotes"), newer, keys, "e-2", now)
        tbl = lake.catalog.load_table("unit_evolve.quotes")
        assert "num_trades" in tbl.schema().column_names
        assert len(tbl.metadata.metadata_log) == log + 1  # schema change and data in one commit
        rows = sorted(tbl.scan().to_arrow().select(["trade_date", "num_trades"]).to_pylist(),
                      key=lambda r: r["trade_date"])
    assert rows == [{"trade_date": dt.date(2024, 1, 2), "num_trades": None},
                    {"trade_date": dt.date(2024, 1, 3), "num_trades": 7}]


def test_commit_that_loses_a_race_is_rebuilt_and_retried(env):
    """Another writer (e.g. another source's ingest) commits between our read and our copy-on-write commit:
    pyiceberg refuses the stale overwrite, and the commit is rebuilt on the new table state and retried
    (tenacity), keeping both writes; a writer that loses every race gives up after a bound."""
    from pyiceberg.exceptions import CommitFailedException, ValidationException

    from lakehouse.stages.ingest.tables import (
        COMMIT_ATTEMPTS,
        CommitResult,
        commit_with_retry,
        conform,
        ensure_table,
        merge_commit,
        sort_for_write,
        write_data_files,
    )

    now = dt.datetime.now(dt.UTC)
    keys = ["source", "ticker", "trade_date"]

    def row(source: str, ticker: str, close: float) -> pa.Table:
        return pa.table({"source": [source], "ticker": [ticker], "close": [close],
                         "trade_date": pa.array([dt.date(2024, 1, 2)], pa.date32())})

    with open_lake(get_config()) as lake:
        ensure_table(lake.catalog, "quotes", namespace="unit_race")
        merge_commit(lake.catalog.load_table("unit_race.quotes"), row("mine", "MINE", 0.0), keys, "mine-0", now)

        def racing(load_id: str, races: int, seen: list[int]):
            def build(tbl):  # a copy-on-write rewrite of MINE's file, as merge_commit does
                seen.append(tbl.current_snapshot().snapshot_id)
                old = list(tbl.scan(row_filter="ticker == 'MINE'").plan_files())
                if len(seen) <= races:  # another source's load lands after we read the table
                    merge_commit(lake.catalog.load_table("unit_race.quotes"), row("other", f"O{len(seen)}", 1.0),
                                 keys, f"other-{load_id}-{len(seen)}", now)
                tx = tbl.transaction()
                files = write_data_files(tx, *sort_for_write(tx.table_metadata, conform(
                    tx, row("mine", "MINE", float(len(seen))), load_id, now), keys))
                with tx.update_snapshot(snapshot_properties={"lakehouse.load_id": load_id}).overwrite() as ow:
                    for task in old:
                        ow.delete_data_file(task.file)
                    for f in files:
                        ow.append_data_file(f)
                return tx, CommitResult("quotes", rows=1)
            return build

        seen: list[int] = []
        result = commit_with_retry(lake.catalog.load_table("unit_race.quotes"), "mine-1", racing("mine-1", 1, seen))
        assert len(seen) == 2 and seen[0] != seen[1]  # rebuilt on the other writer's snapshot
        tbl = lake.catalog.load_table("unit_race.quotes")
        got = sorted((r["ticker"], r["close"]) for r in tbl.scan().to_arrow().to_pylist())
        assert got == [("MINE", 2.0), ("O1", 1.0)]
        assert tbl.current_snapshot().snapshot_id == result.snapshot_id

        seen = []
        with pytest.raises((CommitFailedException, ValidationException)):
            commit_with_retry(tbl, "mine-2", racing("mine-2", COMMIT_ATTEMPTS, seen))
        assert len(seen) == COMMIT_ATTEMPTS
        tbl = lake.catalog.load_table("unit_race.quotes")
        assert "mine-2" not in {s.summary["lakehouse.load_id"] for s in tbl.metadata.snapshots if s.summary}
        assert sorted(r["ticker"] for r in tbl.scan().to_arrow().to_pylist()).count("MINE") == 1

"""Data files written during the extract become the table's files at commit, and only when that is right:
one file per partition carrying its load's mark, a reload swapping them, a partial overlap, a newer
commit or a changed schema falling back to the merge (re-stamped), and a load that failed before its
commit finished by the next run from its package's files."""

from __future__ import annotations

import datetime as dt
import os
import time
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import applied_env, isolated_env
from rich.console import Console

from lakehouse.config import get_config
from lakehouse.lake import open_lake
from lakehouse.stages.ingest.extract_files import FileMark, PartitionFileWriter, layout
from lakehouse.stages.ingest.file_commit import commit_files
from lakehouse.stages.ingest.run import run_ingest
from lakehouse.stages.ingest.tables import FAIL_ENV, ensure_table, merge_commit
from tests.quote_server import business_days

QUIET = Console(quiet=True)
KEYS = ["source", "ticker", "trade_date"]
TICKERS = [f"SYN{i:04d}" for i in range(6)]


@pytest.fixture
def env(tmp_path):
    values = isolated_env(tmp_path / "home")
    values["LAKEHOUSE_SOURCES__SYNTHETIC__START"] = "2019-01-01"
    with applied_env(values):
        yield values


def _local(path: str) -> str:
    url = urlparse(path)
    return url.path if url.scheme == "file" else path


def data_files(table: str = "raw.quotes") -> tuple[list[str], object]:
    with open_lake(get_config()) as lake:
        tbl = lake.catalog.load_table(table)
        return [_local(t.file.file_path) for t in tbl.scan().plan_files()], tbl


def marks(files: list[str]) -> list[FileMark | None]:
    return [FileMark.from_footer(pq.read_metadata(f)) for f in files]


def ingest(start: str, end: str):
    summary = run_ingest(get_config(), "synthetic", tickers=TICKERS, start=start, end=end, console=QUIET)
    assert summary.ok, summary.failed
    return summary


def test_files_written_at_extract_are_the_committed_files(env):
    first = ingest("2019-01-01", "2020-12-31")
    n = len(TICKERS) * len(business_days(dt.date(2019, 1, 1), dt.date(2020, 12, 31)))
    assert first.rows_loaded == n
    files, tbl = data_files()
    assert len(files) == 2  # one per partition (source, year)
    got = marks(files)
    assert all(m is not None and m.load_id == first.load_ids[0] and m.layout == layout(tbl.metadata) for m in got)
    rows = tbl.scan().to_arrow()
    assert rows.num_rows == n == rows.group_by(KEYS).aggregate([]).num_rows
    stamp_us = got[0].loaded_at_us
    assert pc.unique(rows["loaded_at"]).to_pylist() == [
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=stamp_us)]
    assert stamp_us < tbl.current_snapshot().timestamp_ms * 1000  # stamped before its commit
    for f in files:  # each file sorted by (ticker, trade_date)
        t = pq.read_table(f, columns=["ticker", "trade_date"])
        assert t.equals(t.sort_by([("ticker", "ascending"), ("trade_date", "ascending")]))
    # the extract's own copies are gone (the load package linked them; dlt deleted the package files)
    assert not (get_config().path("dlt") / "lakehouse_synthetic.files").exists()

    # the same window again: every row replaced, the new files swapped in as they are
    again = ingest("2019-01-01", "2020-12-31")
    commit = next(c for c in again.commits if c.table == "quotes")
    assert commit.rows == n and commit.replaced == n
    files2, tbl = data_files()
    assert set(files2).isdisjoint(files) and len(files2) == 2
    assert {m.load_id for m in marks(files2)} == {again.load_ids[0]}
    assert tbl.current_snapshot().summary.operation.value == "overwrite"
    assert tbl.scan().to_arrow().num_rows == n

    # a window inside one partition keeps other rows of that file: the merge rewrites it, re-stamped
    before = tbl.scan().to_arrow()
    part = ingest("2020-06-01", "2020-06-30")
    files3, tbl = data_files()
    after = tbl.scan().to_arrow()
    assert after.num_rows == n and sorted(after["trade_date"].to_pylist()) == sorted(before["trade_date"].to_pylist())
    june = after.filter(pc.equal(after["load_id"], part.load_ids[0]))
    assert june.num_rows == len(TICKERS) * len(business_days(dt.date(2020, 6, 1), dt.date(2020, 6, 30)))
    assert pc.min(june["loaded_at"]).as_py() > pc.max(before["loaded_at"]).as_py()
    rewritten = [f for f in files3 if f not in files2]
    assert len(rewritten) == 1 and marks(rewritten) == [None]  # written by the merge, not the extract


def test_load_failing_before_its_commit_is_finished_from_its_files(env):
    base = ingest("2019-01-01", "2019-12-31")
    before_files, tbl = data_files()
    location = tbl.metadata_location
    os.environ[FAIL_ENV] = "1"
    try:
        with pytest.raises(Exception, match="injected failure"):
            run_ingest(get_config(), "synthetic", tickers=TICKERS, start="2020-01-01", end="2020-12-31",
                       console=QUIET)
    finally:
        del os.environ[FAIL_ENV]
    files, tbl = data_files()
    assert tbl.metadata_location == location and files == before_files  # the table as it was

    done = run_ingest(get_config(), "synthetic", tickers=TICKERS, end="2020-12-31", console=QUIET)
    assert done.ok and done.resumed_load_ids
    files, tbl = data_files()
    new = [f for f in files if f not in before_files]
    assert len(new) == 1 and [m.load_id for m in marks(new)] == done.resumed_load_ids
    rows = tbl.scan().to_arrow()
    n = len(TICKERS) * len(business_days(dt.date(2019, 1, 1), dt.date(2020, 12, 31)))
    assert rows.num_rows == n == rows.group_by(KEYS).aggregate([]).num_rows
    assert base.load_ids[0] in set(rows["load_id"].to_pylist())


def _rows(ticker: str, days: list[dt.date], close: float = 1.0) -> pa.Table:
    return pa.table({"source": ["unit"] * len(days), "ticker": [ticker] * len(days),
                     "trade_date": pa.array(days, pa.date32()), "close": [close] * len(days)})


def _write(tbl, tmp_path, load_id: str, data: pa.Table, stamp_us: int) -> tuple[list[str], FileMark]:
    writer = PartitionFileWriter(tbl.metadata, tmp_path / load_id, load_id, stamp_us, KEYS)
    writer.add(data)
    files = [str(p) for p, _ in writer.close()]
    return files, writer.mark


def test_files_are_merged_instead_when_the_table_moved_on(env, tmp_path):
    """A commit newer than the files' stamp, or a schema change, since they were written: commit_files
    declines (None) and places nothing, so the caller merges the rows the generic way."""
    days = [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    with open_lake(get_config()) as lake:
        tbl = ensure_table(lake.catalog, "quotes", namespace="unit_files")
        stamp = time.time_ns() // 1000
        files, mark = _write(tbl, tmp_path, "f-1", _rows("A", days), stamp)
        time.sleep(0.01)
        merge_commit(tbl, _rows("B", days), KEYS, "other-1", dt.datetime.now(dt.UTC))  # lands after the stamp
        tbl = lake.catalog.load_table("unit_files.quotes")
        snapshots = len(tbl.metadata.snapshots)
        assert commit_files(tbl, files, mark, KEYS, None) is None
        tbl = lake.catalog.load_table("unit_files.quotes")
        assert len(tbl.metadata.snapshots) == snapshots
        assert set(tbl.scan().to_arrow()["ticker"].to_pylist()) == {"B"}

        # written after that commit, and the load replaces every row of the file it touches: placed
        files, mark = _write(tbl, tmp_path, "f-2", _rows("B", days, 2.0), time.time_ns() // 1000)
        result = commit_files(tbl, files, mark, KEYS, None)
        assert result is not None and result.rows == 2 and result.replaced == 2
        tbl = lake.catalog.load_table("unit_files.quotes")
        assert sorted(tbl.scan().to_arrow()["close"].to_pylist()) == [2.0, 2.0]
        assert [m.load_id for m in marks(data_files("unit_files.quotes")[0])] == ["f-2"]

        # one file with A and B, then a load of A only: B's rows in the touched file must stay
        merge_commit(tbl, pa.concat_tables([_rows("A", days), _rows("B", days)]), KEYS, "other-2",
                     dt.datetime.now(dt.UTC))
        tbl = lake.catalog.load_table("unit_files.quotes")
        files, mark = _write(tbl, tmp_path, "f-3", _rows("A", days, 5.0), time.time_ns() // 1000)
        assert commit_files(tbl, files, mark, KEYS, None) is None

        # a schema change since the files were written
        files, mark = _write(tbl, tmp_path, "f-4", _rows("B", days, 3.0), time.time_ns() // 1000)
        with tbl.update_schema() as update:
            update.union_by_name(pa.schema([pa.field("num_trades", pa.int64())]))
        tbl = lake.catalog.load_table("unit_files.quotes")
        assert commit_files(tbl, files, mark, KEYS, None) is None


def test_a_footer_that_is_not_ours_is_ignored():
    schema = pa.schema([pa.field("x", pa.int64())])
    for meta in ({}, {"lakehouse.ingest": "not json"}, {"lakehouse.ingest": '{"layout": 1}'}):
        table = pa.table({"x": [1]}, schema=schema.with_metadata(meta))
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        footer = pq.read_metadata(pa.BufferReader(sink.getvalue()))
        assert FileMark.from_footer(footer) is None

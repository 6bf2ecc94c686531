"""The in-memory hand-over of extracted tables to the commit: used only when the package files hold
exactly the same tables."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.stages.ingest import staging


def _stage(load_id: str, name: str, *tables: pa.Table) -> None:
    with staging._LOCK:  # noqa: SLF001 - record() needs a running dlt extract for the load id
        staging._STAGED[load_id][name].extend(tables)  # noqa: SLF001


def test_take_returns_the_staged_rows_when_the_files_match(tmp_path: Path) -> None:
    a, b = pa.table({"x": [1, 2], "y": ["a", "b"]}), pa.table({"x": [3], "y": ["c"]})
    pq.write_table(pa.concat_tables([a, b]), tmp_path / "f.parquet")
    _stage("L1", "quotes", a, b)
    got = staging.take("L1", "quotes", [str(tmp_path / "f.parquet")])
    assert got is not None and got.to_pylist() == pa.concat_tables([a, b]).to_pylist()
    assert staging.take("L1", "quotes", [str(tmp_path / "f.parquet")]) is None  # taken once


def test_take_falls_back_to_the_files_on_any_difference(tmp_path: Path) -> None:
    a = pa.table({"x": [1, 2], "y": ["a", "b"]})
    pq.write_table(a.slice(0, 1), tmp_path / "short.parquet")
    pq.write_table(a.append_column("z", pa.array([0, 0])), tmp_path / "wide.parquet")
    _stage("L2", "quotes", a)
    assert staging.take("L2", "quotes", [str(tmp_path / "short.parquet")]) is None  # row count differs
    _stage("L3", "quotes", a)
    assert staging.take("L3", "quotes", [str(tmp_path / "wide.parquet")]) is None  # columns differ
    assert staging.take("L4", "quotes", [str(tmp_path / "short.parquet")]) is None  # nothing staged
    _stage("L5", "quotes", a)
    staging.discard()
    assert staging.take("L5", "quotes", [str(tmp_path / "short.parquet")]) is None


def test_record_outside_an_extract_keeps_nothing() -> None:
    staging.record("quotes", pa.table({"x": [1]}))
    assert not staging._STAGED  # noqa: SLF001

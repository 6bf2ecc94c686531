"""split_by_partition: the extract's writer splits each batch by the table's partition (source, year)
keeping the rows' order within each part, with null partition values a part of their own."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from pyiceberg.table.metadata import new_table_metadata

from lakehouse.stages.ingest.extract_files import split_by_partition
from lakehouse.stages.ingest.tables import TABLES


def _meta():
    kw = TABLES["quotes"].create_kwargs()
    return new_table_metadata(kw["schema"], kw["partition_spec"], kw["sort_order"], "file:///x", {})


def test_parts_keep_row_order_and_name_their_partition():
    days = [dt.date(2020, 12, 30), dt.date(2021, 1, 4), dt.date(2020, 12, 31), dt.date(2021, 1, 5),
            dt.date(2019, 6, 1)]
    rows = pa.table({"source": ["a", "a", "b", "a", "a"], "ticker": ["X", "X", "Y", "Y", "Z"],
                     "trade_date": pa.array(days, pa.date32()), "n": [0, 1, 2, 3, 4]})
    parts = split_by_partition(_meta(), rows)
    got = {value: part["n"].to_pylist() for value, part in parts}
    # year transform values are years since 1970
    assert got == {("a", 50): [0], ("a", 51): [1, 3], ("b", 50): [2], ("a", 49): [4]}
    assert sum(p.num_rows for _, p in parts) == rows.num_rows


def test_one_partition_is_not_copied_and_nulls_are_their_own_part():
    rows = pa.table({"source": ["a", "a"], "ticker": ["X", "Y"],
                     "trade_date": pa.array([dt.date(2020, 1, 2), dt.date(2020, 1, 3)], pa.date32())})
    [(value, part)] = split_by_partition(_meta(), rows)
    assert value == ("a", 50) and part.equals(rows)
    with_null = pa.table({"source": ["a", None, "a"], "ticker": ["X", "Y", "Z"],
                          "trade_date": pa.array([dt.date(2020, 1, 2)] * 3, pa.date32())})
    got = {value: part["ticker"].to_pylist() for value, part in split_by_partition(_meta(), with_null)}
    assert got == {("a", 50): ["X", "Z"], (None, 50): ["Y"]}
    assert split_by_partition(_meta(), with_null.slice(0, 0)) == []


def _quotes(rows: list[tuple[str, str, dt.date, float]]) -> pa.Table:
    return pa.table({"source": [r[0] for r in rows], "ticker": [r[1] for r in rows],
                     "trade_date": pa.array([r[2] for r in rows], pa.date32()),
                     "close": [r[3] for r in rows], "currency": ["USD"] * len(rows)})


def test_writer_sorts_dedupes_stamps_and_writes_one_file_per_partition(tmp_path):
    """Batches in key order go through as they are; others are sorted and a repeated key keeps its last
    row. Every row carries the load's stamps; each file holds one partition, in key order, with the
    encodings chosen for data files (prices BYTE_STREAM_SPLIT, no dictionary for per-file constants)."""
    import pyarrow.parquet as pq

    from lakehouse.stages.ingest.extract_files import PartitionFileWriter

    d = dt.date
    clean = _quotes([("s", "A", d(2020, 12, 30), 1.0), ("s", "A", d(2021, 1, 4), 2.0), ("s", "B", d(2020, 6, 1), 3.0)])
    messy = _quotes([("s", "D", d(2021, 3, 1), 4.0), ("s", "C", d(2021, 2, 1), 5.0), ("s", "C", d(2021, 2, 1), 6.0)])
    stamp_us = 1_700_000_000_000_000
    writer = PartitionFileWriter(_meta(), tmp_path, "load-1", stamp_us, ["source", "ticker", "trade_date"])
    writer.add(clean)
    writer.add(messy)
    files = writer.close()
    assert writer.rows == 5 and writer.duplicates == 1
    got = {}
    for path, rows in files:
        table = pq.read_table(path)
        assert table.num_rows == rows
        years = {v.year for v in table["trade_date"].to_pylist()}
        assert len(years) == 1  # one partition per file
        got[years.pop()] = [(t, c) for t, c in zip(table["ticker"].to_pylist(), table["close"].to_pylist(),
                                                    strict=True)]
        assert set(table["load_id"].to_pylist()) == {"load-1"}
        assert {v.timestamp() for v in table["loaded_at"].to_pylist()} == {stamp_us / 1e6}
        column = {pq.ParquetFile(path).metadata.row_group(0).column(i).path_in_schema:
                  pq.ParquetFile(path).metadata.row_group(0).column(i) for i in range(table.num_columns)}
        assert "BYTE_STREAM_SPLIT" in column["close"].encodings
        assert "RLE_DICTIONARY" in column["ticker"].encodings
        assert "RLE_DICTIONARY" not in column["source"].encodings  # identity partition: constant per file
        assert "RLE_DICTIONARY" not in column["load_id"].encodings
    # keys sorted within each file; the repeated key (C, 2021-02-01) kept its last row (6.0)
    assert got == {2020: [("A", 1.0), ("B", 3.0)], 2021: [("A", 2.0), ("C", 6.0), ("D", 4.0)]}


def _custom_meta(fields, spec_fields):
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table.sorting import UNSORTED_SORT_ORDER

    schema = Schema(*fields)
    spec = PartitionSpec(*[PartitionField(source_id=sid, field_id=1000 + i, transform=t, name=f"p{i}")
                           for i, (sid, t) in enumerate(spec_fields)])
    return new_table_metadata(schema, spec, UNSORTED_SORT_ORDER, "file:///x", {})


def test_many_wide_partition_columns_split_like_a_plain_grouping():
    """Four integer partition columns with wide ranges (their code space overflows 64 bits unless the
    combinations are renumbered) and nulls: every part holds exactly the rows of one value tuple."""
    import numpy as np
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import LongType, NestedField

    names = ["a", "b", "c", "d"]
    meta = _custom_meta([NestedField(i + 1, n, LongType(), required=False) for i, n in enumerate(names)],
                        [(i + 1, IdentityTransform()) for i in range(4)])
    rng = np.random.default_rng(7)
    cols = {n: rng.choice([0, 5, 65_000], size=400).tolist() for n in names}  # range-coded: 65,001 codes each
    cols["d"][3] = None
    rows = pa.table({n: pa.array(v, pa.int64()) for n, v in cols.items()}).append_column("i", pa.array(range(400)))
    expected: dict[tuple, list[int]] = {}
    for i in range(400):
        expected.setdefault(tuple(cols[n][i] for n in names), []).append(i)
    got = {value: part["i"].to_pylist() for value, part in split_by_partition(meta, rows)}
    assert got == expected


def test_a_spec_on_a_stamp_column_is_stamped_before_the_split(tmp_path):
    import pyarrow.parquet as pq
    from pyiceberg.transforms import DayTransform
    from pyiceberg.types import NestedField, StringType, TimestamptzType

    from lakehouse.stages.ingest.extract_files import PartitionFileWriter

    meta = _custom_meta([NestedField(1, "k", StringType(), required=False),
                         NestedField(2, "loaded_at", TimestamptzType(), required=False),
                         NestedField(3, "load_id", StringType(), required=False)], [(2, DayTransform())])
    stamp_us = 1_700_000_000_000_000
    writer = PartitionFileWriter(meta, tmp_path, "load-9", stamp_us, ["k"])
    writer.add(pa.table({"k": ["x", "y"]}))
    [(path, rows)] = writer.close()
    table = pq.read_table(path)
    assert rows == 2 and table["load_id"].to_pylist() == ["load-9", "load-9"]
    assert {v.timestamp() for v in table["loaded_at"].to_pylist()} == {stamp_us / 1e6}

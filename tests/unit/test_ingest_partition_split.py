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

"""keys_in: the membership test behind every merge (which existing rows a load replaces)."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa

from lakehouse.stages.ingest.tables import keys_in

KEYS = ("source", "ticker", "trade_date")


def _rows(keys: list[tuple[str, str | None, dt.date]]) -> pa.Table:
    src, tick, day = zip(*keys, strict=True) if keys else ((), (), ())
    return pa.table({"source": pa.array(src, pa.string()), "ticker": pa.array(tick, pa.string()),
                     "trade_date": pa.array(day, pa.date32()), "close": pa.array([1.0] * len(keys))})


def test_keys_in_matches_a_set_lookup_on_shuffled_chunked_keys() -> None:
    rnd = random.Random(7)
    day0 = dt.date(2020, 1, 1)
    universe = [(s, t, day0 + dt.timedelta(days=d)) for s in ("moex", "yahoo") for t in ("A", "B", "C", "DD")
                for d in range(0, 400, 3)]
    left_keys = rnd.sample(universe, 500) + [("yahoo", "ZZZ", day0), ("other", "A", day0)]
    right_keys = rnd.sample(universe, 300)
    right = _rows(right_keys)
    chunked = pa.concat_tables([right.slice(i, 7) for i in range(0, right.num_rows, 7)])  # like a merge's slices
    mask = keys_in(_rows(left_keys), chunked, KEYS).to_pylist()
    expected = [k in set(right_keys) for k in left_keys]
    assert mask == expected
    assert 0 < sum(mask) < len(mask)


def test_keys_in_with_an_empty_side_and_nulls() -> None:
    day = dt.date(2021, 5, 4)
    left = _rows([("moex", None, day), ("moex", "A", day)])
    assert keys_in(left, _rows([]), KEYS).to_pylist() == [False, False]
    assert keys_in(left, _rows([("moex", "A", day)]), KEYS).to_pylist() == [False, True]
    assert keys_in(_rows([]), _rows([("moex", "A", day)]), KEYS).to_pylist() == []

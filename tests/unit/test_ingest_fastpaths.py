"""The fast paths of the synthetic source and of validation agree with the plain computations they stand
in for: the generator's values bit for bit, and every validation outcome (valid rows, reasons and their
order, raw records) with the fast paths on and off, on clean tables and on tables with bad rows."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakehouse.sources import quotes
from lakehouse.sources.quotes import (
    PROBLEM,
    Progress,
    Window,
    flag_foreign_rows,
    quotes_table,
    split_valid,
)
from lakehouse.sources.synthetic import (
    SyntheticFetcher,
    _repeat_string,
    business_days,
    generate,
    ticker_bars,
)

NAN, INF = float("nan"), float("inf")


# -- the synthetic generator -------------------------------------------------------------------------------
def _plain_bars(ticker: str, start: dt.date, end: dt.date, first_day: dt.date) -> dict[str, np.ndarray]:
    """The generator written out draw by draw (one ``rng.normal`` call per series, a boolean window)."""
    all_days = business_days(first_day, end)
    n = len(all_days)
    rng = np.random.default_rng(zlib.crc32(ticker.encode()))
    start_price = 20 + rng.random() * 180
    drift, vol = rng.normal(0.0003, 0.0002), 0.01 + rng.random() * 0.02
    close = start_price * np.exp(np.cumsum(rng.normal(drift, vol, n)))
    open_ = close * np.exp(rng.normal(0, vol / 3, n))
    spread = np.abs(rng.normal(0, vol / 2, n))
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    volume = np.floor(rng.lognormal(13, 1, n))
    keep = all_days >= np.datetime64(start, "D")
    return {"trade_date": all_days[keep], "open": open_[keep], "high": high[keep], "low": low[keep],
            "close": close[keep], "volume": volume[keep]}


@pytest.mark.parametrize(("ticker", "start", "end", "first_day"), [
    ("SYN0000", dt.date(2005, 1, 3), dt.date(2024, 12, 31), dt.date(2005, 1, 3)),
    ("SYN0007", dt.date(2010, 3, 5), dt.date(2011, 1, 1), dt.date(2005, 1, 3)),  # a window inside the walk
    ("SYN0042", dt.date(2024, 12, 31), dt.date(2024, 12, 31), dt.date(2001, 6, 1)),  # one day
    ("SYN0499", dt.date(2024, 12, 28), dt.date(2024, 12, 29), dt.date(2024, 1, 1)),  # a weekend: no day
    ("SYNX", dt.date(1999, 1, 1), dt.date(2000, 1, 1), dt.date(1999, 1, 1)),
])
def test_ticker_bars_are_bit_identical_to_the_plain_generator(ticker, start, end, first_day):
    fast, plain = ticker_bars(ticker, start, end, first_day), _plain_bars(ticker, start, end, first_day)
    assert fast.keys() == plain.keys()
    for name in plain:  # byte equality: the same bits, NaN-free or not
        assert fast[name].dtype == plain[name].dtype and fast[name].tobytes() == plain[name].tobytes(), name


def test_synthetic_table_columns_are_well_formed():
    window = Window(dt.date(2020, 1, 1), dt.date(2020, 12, 31))
    table, _ = SyntheticFetcher(dt.date(2019, 1, 1)).fetch("SYN0003", window, Progress())
    table.validate(full=True)
    n = table.num_rows
    assert n == len(business_days(window.start, window.end))
    assert table["ticker"].to_pylist() == ["SYN0003"] * n
    assert table["source"].to_pylist() == ["synthetic"] * n and table["currency"].to_pylist() == ["USD"] * n
    days = business_days(window.start, window.end).astype(dt.date).tolist()
    assert table["trade_date"].to_pylist() == days
    assert table[PROBLEM].null_count == n
    assert table.schema.equals(quotes.SOURCE_SCHEMA)


@pytest.mark.parametrize(("value", "n"), [("SYN0001", 5), ("", 3), ("ÄÖ", 4), ("x", 0)])
def test_repeat_string_equals_arrow_repeat(value, n):
    fast = _repeat_string(value, n)
    fast.validate(full=True)
    assert fast.equals(pa.repeat(pa.scalar(value, pa.string()), n))


# -- validation: fast paths on and off -----------------------------------------------------------------------
@pytest.fixture
def slow_paths(monkeypatch):
    """Turn the validation fast paths off: every rule runs as Arrow masks and every key pair is compared."""
    def off() -> None:
        monkeypatch.setattr(quotes, "_values_pass", lambda t: False)
        monkeypatch.setattr(quotes, "_increasing_by_runs", lambda t, keys: None)
    return off


def _outcome(table: pa.Table, raws) -> tuple[pa.Table, pa.Table] | str:
    try:
        return split_valid(table, raws)
    except ValueError as exc:  # a null key column is refused
        return f"ValueError: {exc}"


def _both_ways(table: pa.Table, slow_paths, raws=None) -> tuple[pa.Table, pa.Table] | str:
    """split_valid with the fast paths, checked equal to split_valid without them (or the same error)."""
    fast = _outcome(table, raws)
    slow_paths()
    slow = _outcome(table, raws)
    if isinstance(fast, str) or isinstance(slow, str):
        assert fast == slow
        return fast
    for a, b in zip(fast, slow, strict=True):
        assert a.schema.equals(b.schema) and a.equals(b)
    return fast


def _rows(n: int, ticker: str = "X", first: dt.date = dt.date(2024, 1, 1)) -> dict[str, list]:
    return {"source": ["t"] * n, "ticker": [ticker] * n,
            "trade_date": [first + dt.timedelta(days=i) for i in range(n)],
            "open": [10.0] * n, "high": [11.0] * n, "low": [9.0] * n, "close": [10.0] * n,
            "adj_close": [10.0] * n, "volume": [1.0] * n}


def test_clean_multi_ticker_batch_is_the_same_with_and_without_fast_paths(slow_paths):
    table = generate(4, 1, end=dt.date(2024, 12, 31))  # four chunks, one per ticker
    good, rejected = _both_ways(table, slow_paths)
    assert good.num_rows == table.num_rows and rejected.num_rows == 0


@pytest.mark.parametrize(("column", "value"), list(itertools.product(
    ("open", "high", "low", "close", "adj_close", "volume"), (NAN, INF, -INF, 0.0, -0.0, -1.0, None, 1e300))))
def test_one_bad_value_in_a_clean_batch_gets_the_same_reason(slow_paths, column, value):
    parts = [quotes_table(_rows(6, t)) for t in ("A", "B", "C")]
    rows = _rows(6, "B")
    rows[column][3] = value
    parts[1] = quotes_table(rows)
    good, rejected = _both_ways(pa.concat_tables(parts), slow_paths)
    assert good.num_rows + rejected.num_rows == 18


def test_values_pass_holds_exactly_when_no_rule_fails():
    specials = (NAN, INF, -INF, -1.0, -0.0, 0.0, 9.0, 10.0, 11.0, None)
    rng = random.Random(7)
    n = 3000
    rows = _rows(n)
    for i in range(n):  # a valid row with up to two values replaced
        for _ in range(rng.choice((0, 1, 1, 2))):
            col = rng.choice(("trade_date", *quotes.NUMERIC_COLUMNS))
            rows[col][i] = None if col == "trade_date" else rng.choice(specials)
    t = quotes_table(rows)
    any_rule_fails = pc.is_valid(quotes._reasons(t)).to_pylist()  # every rule as an Arrow mask
    assert 300 < sum(not bad for bad in any_rule_fails) < n - 300  # both answers are exercised
    for i, bad in enumerate(any_rule_fails):
        assert quotes._values_pass(t.slice(i, 1)) is not bad, t.slice(i, 1).to_pylist()


def test_source_problems_and_null_optional_values_agree(slow_paths):
    rows = _rows(5)
    rows["adj_close"][1] = None  # allowed: not a rule
    rows["volume"][2] = None  # allowed: not a rule
    problems = [None, None, None, "malformed row", None]
    good, rejected = _both_ways(quotes_table(rows, problems), slow_paths)
    assert good.num_rows == 4 and rejected["reason"].to_pylist() == ["malformed row"]


@pytest.mark.parametrize("case", ["copy", "conflict", "unsorted", "across_chunks", "null_ticker", "null_source",
                                  "same_day_two_tickers", "descending_tickers"])
def test_key_order_and_duplicates_agree(slow_paths, case):
    a, b = _rows(4, "A"), _rows(4, "B")
    if case == "copy":  # an identical copy of a row inside one ticker
        for col in a:
            a[col][2] = a[col][1]
    elif case == "conflict":
        a["trade_date"][2] = a["trade_date"][1]
        a["close"][2] = 10.5
    elif case == "unsorted":
        a["trade_date"][1], a["trade_date"][2] = a["trade_date"][2], a["trade_date"][1]
    elif case == "across_chunks":  # ticker B's table also carries a row of A's last day
        b["ticker"][0], b["trade_date"][0] = "A", a["trade_date"][3]
    elif case == "null_ticker":
        b["ticker"][1] = None
    elif case == "null_source":
        a["source"][0] = None
    elif case == "descending_tickers":
        a, b = b, a
    table = pa.concat_tables([quotes_table(a), quotes_table(b)])
    outcome = _both_ways(table, slow_paths)
    if case in ("null_ticker", "null_source"):
        assert outcome == f"ValueError: Casting field '{case[5:]}' with null values to non-nullable"
        return
    good, rejected = outcome
    assert good.num_rows + rejected.num_rows == 8
    assert rejected.num_rows == {"copy": 1, "conflict": 2, "across_chunks": 1}.get(case, 0)


def test_strictly_increasing_by_runs_agrees_with_every_pair():
    rng = random.Random(3)
    keys = list(quotes.PRIMARY_KEY)
    for _ in range(400):
        chunks = []
        for _ in range(rng.randint(1, 4)):
            n = rng.randint(0, 5)
            chunks.append(pa.table({
                "source": pa.array([rng.choice(["s", "t"]) for _ in range(n)], pa.string()),
                "ticker": pa.array([rng.choice(["A", "B", "AB", None]) for _ in range(n)], pa.string()),
                "trade_date": pa.array([rng.choice([dt.date(2024, 1, d) for d in (1, 2, 3)] + [None])
                                        for _ in range(n)], pa.date32()),
            }))
        t = pa.concat_tables(chunks)
        if rng.random() < 0.5:  # mostly sorted tables, so the True answer is exercised too
            t = t.sort_by([(k, "ascending") for k in keys])
        if t.num_rows < 2:
            continue
        plain = quotes._pairs_increasing(t.slice(0, t.num_rows - 1), t.slice(1), keys)
        by_runs = quotes._increasing_by_runs(t, keys)
        assert by_runs is None or by_runs == plain, t.to_pylist()


def test_hostile_rows_with_raw_records_agree(slow_paths):
    rows = _rows(8)
    rows["open"][1] = NAN
    rows["trade_date"][2] = None
    rows["high"][3], rows["low"][3] = 8.0, 9.0
    rows["trade_date"][5], rows["close"][5] = rows["trade_date"][4], 10.5
    raws = [{"i": i, "nan": NAN} for i in range(8)]
    good, rejected = _both_ways(quotes_table(rows), slow_paths, raws)
    conflict = "duplicate key with different values (2 rows in this load)"
    assert rejected["reason"].to_pylist() == [
        "non-finite open", "missing trade_date", "high < low", conflict, conflict]
    assert good.num_rows == 3


# -- flag_foreign_rows ------------------------------------------------------------------------------------
def _plain_flag(table: pa.Table, ticker: str, window: Window) -> pa.Table:
    """flag_foreign_rows written as masks over every row, without the cheap pre-checks."""
    if PROBLEM not in table.column_names:
        table = table.append_column(PROBLEM, pa.nulls(table.num_rows, pa.string()))
    table = table.select(quotes.SOURCE_SCHEMA.names).cast(quotes.SOURCE_SCHEMA)
    if table.num_rows == 0:
        return table
    other = pc.fill_null(pc.not_equal(table["ticker"], pa.scalar(ticker)), True)
    if pc.any(other).as_py():
        table = quotes._add_problem(table, other, "row of another ticker")
        i = table.column_names.index("ticker")
        table = table.set_column(i, table.schema.field(i), pa.repeat(pa.scalar(ticker), table.num_rows))
    td = table["trade_date"]
    outside = pc.fill_null(pc.or_(pc.less(td, pa.scalar(window.start, pa.date32())),
                                  pc.greater(td, pa.scalar(window.end, pa.date32()))), False)
    if pc.any(outside).as_py():
        table = quotes._add_problem(
            table, outside, f"trade_date outside the requested window {window.start}..{window.end}")
    return table


@pytest.mark.parametrize("case", ["clean", "other_ticker", "null_ticker", "before", "after", "null_date",
                                  "all_dates_null", "empty", "no_problem_column"])
def test_flag_foreign_rows_agrees_with_plain_masks(case):
    window = Window(dt.date(2024, 1, 2), dt.date(2024, 1, 5))
    rows = _rows(4, "X", dt.date(2024, 1, 2))
    if case == "other_ticker":
        rows["ticker"][1] = "Y"
    elif case == "null_ticker":
        rows["ticker"][2] = None
    elif case == "before":
        rows["trade_date"][0] = dt.date(2023, 12, 31)
    elif case == "after":
        rows["trade_date"][3] = dt.date(2099, 1, 1)
    elif case == "null_date":
        rows["trade_date"][1] = None
    elif case == "all_dates_null":
        rows["trade_date"] = [None] * 4
    elif case == "empty":
        rows = {k: [] for k in rows}
    table = quotes_table(rows)
    if case == "no_problem_column":
        table = table.drop_columns([PROBLEM])
    if case == "null_ticker":  # refused either way: the ticker column may not be null
        for flag in (flag_foreign_rows, _plain_flag):
            with pytest.raises(ValueError, match="Casting field 'ticker' with null values"):
                flag(table, "X", window)
        return
    flagged = flag_foreign_rows(table, "X", window)
    assert flagged.schema.equals(quotes.SOURCE_SCHEMA) and flagged.equals(_plain_flag(table, "X", window))


@pytest.mark.parametrize(("values", "constant"), [
    (["AA", "AA"], True), (["A", "AAA"], False), (["AAA", "A"], False), (["", ""], True), (["x"], True),
    (["SYN0001"] * 3 + ["SYN0002"], False), (["AB", "BA"], False), (["ÄÖ"] * 3, True), (["A", None], False),
])
def test_constant_text_reads_buffers_exactly(values, constant):
    assert quotes._constant_text(pa.array(values, pa.string())) is constant
    sliced = pa.array(["Z", *values], pa.string()).slice(1)  # an offset: not judged from the buffers
    assert quotes._constant_text(sliced) is False


def test_run_starts_are_every_change_and_every_chunk_start():
    rng = random.Random(5)
    for _ in range(200):
        chunks = [pa.array([rng.choice(["A", "B", "AB"]) for _ in range(rng.randint(0, 6))], pa.string())
                  for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.3:
            chunks.append(pa.array(["C"] * 5, pa.string()))  # a constant chunk
        col = pa.chunked_array(chunks, pa.string())
        values = col.to_pylist()
        chunk_starts = set(itertools.accumulate([0] + [len(c) for c in chunks]))
        changes = {i for i in range(1, len(values)) if values[i] != values[i - 1]}
        expected = {i for i in {0} | chunk_starts | changes if i < len(values)} or {0}
        assert {int(i) for i in quotes._run_starts(col) if i < max(len(values), 1)} == expected

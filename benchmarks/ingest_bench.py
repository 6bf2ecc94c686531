"""Ingestion throughput: rows/s through the real pipeline (source -> dlt extract/normalize -> one
Iceberg commit through the REST catalog) next to pyarrow writing the same rows to one parquet file.

    .venvs/core/bin/python benchmarks/ingest_bench.py [--tickers 500] [--years 20] [--skip-merge]

Cases: (a) the shipped sample (12,154 rows); (b) the deterministic synthetic source, 500 tickers x 20
years (~2.6M rows) into an empty table; (c) the same synthetic window again (a full merge: every key
replaced, newest wins). Each case runs in a fresh state dir (embedded mode, local file warehouse).
Targets (issue 4): >= 200k rows/s and within 3x of the raw parquet write. Wall-clock figures depend on
what else runs on the machine; CPU seconds (this process, all threads, including the in-process REST
catalog) are the steadier measure on a shared box.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from lakehouse.config import load_config, telemetry_off_env  # noqa: E402


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update(telemetry_off_env())
    env["LAKEHOUSE_HOME"] = str(home)
    env.update(extra)
    return env


def _parquet_floor(table: pa.Table, path: Path) -> tuple[float, float]:
    """(wall, CPU) seconds pyarrow needs to write ``table`` to one parquet file (best of 3)."""
    best = (float("inf"), float("inf"))
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        pq.write_table(table, path)
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best


def _ingest(home: Path, source: str, start: str, end: str, **env: str):
    from lakehouse.stages.ingest.run import run_ingest

    cfg = load_config(env=_env(home, **env))
    t0, c0 = time.perf_counter(), time.process_time()
    summary = run_ingest(cfg, source, start=start, end=end, console=Console(quiet=True))
    elapsed = (time.perf_counter() - t0, time.process_time() - c0)
    if not summary.ok:
        raise SystemExit(f"ingest failed: {summary.failed}")
    return summary, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--skip-merge", action="store_true", help="skip case (c), the full re-merge")
    args = parser.parse_args()
    logging.getLogger("dlt").setLevel(logging.ERROR)

    # warm up imports so the figures measure loading, not Python start-up
    import dlt  # noqa: F401

    import catalog.app  # noqa: F401
    import catalog.server  # noqa: F401
    from lakehouse.sources.quotes import Progress, Window
    from lakehouse.sources.sample import SampleFetcher
    from lakehouse.sources.synthetic import generate

    console = Console(width=190)
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        tmpdir = Path(tmp)

        # (a) the sample
        summary, secs = _ingest(tmpdir / "a", "sample", "1990-01-01", "2013-12-31")
        fetcher = SampleFetcher()
        sample = pa.concat_tables([fetcher.fetch(t, Window(dt.date(1990, 1, 1), dt.date(2013, 12, 31)), Progress())[0]
                                   for t in ("AAPL", "FB", "GOOG", "IBM", "MSFT")])
        floor = _parquet_floor(sample, tmpdir / "sample.parquet")
        rows_out.append(("(a) sample", summary.rows_loaded, secs, floor, summary.phases))

        # (b) synthetic into an empty table
        end = dt.date(2024, 12, 31)
        first = dt.date(end.year - args.years + 1, 1, 1)
        synth_env = {"LAKEHOUSE_SOURCES__SYNTHETIC__N_TICKERS": str(args.tickers),
                     "LAKEHOUSE_SOURCES__SYNTHETIC__START": first.isoformat()}
        t0 = time.perf_counter()
        data = generate(args.tickers, args.years, end=end)
        gen_secs = time.perf_counter() - t0
        floor = _parquet_floor(data, tmpdir / "synthetic.parquet")
        n = data.num_rows
        del data
        summary, secs = _ingest(tmpdir / "b", "synthetic", first.isoformat(), end.isoformat(), **synth_env)
        assert summary.rows_loaded == n, (summary.rows_loaded, n)
        rows_out.append((f"(b) synthetic {args.tickers}x{args.years}y", n, secs, floor,
                         summary.phases))

        # (c) the same window again: every key replaced in one commit
        if not args.skip_merge:
            summary, secs = _ingest(tmpdir / "b", "synthetic", first.isoformat(), end.isoformat(), **synth_env)
            rows_out.append(("(c) same window re-merged", summary.rows_loaded, secs, floor,
                             summary.phases))

    table = Table(title="ingest benchmark (embedded: local file warehouse, in-process REST catalog)")
    for col in ("case", "rows", "pipeline s", "cpu s", "rows/s", "rows/cpu-s", "parquet s", "cpu s ",
                "parquet rows/s", "ratio", "cpu ratio", "extract / normalize / load s"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for name, n, (secs, cpu), (floor, floor_cpu), phases in rows_out:
        table.add_row(name, f"{n:,}", f"{secs:.2f}", f"{cpu:.2f}", f"{n / secs:,.0f}", f"{n / cpu:,.0f}",
                      f"{floor:.2f}", f"{floor_cpu:.2f}", f"{n / floor:,.0f}", f"{secs / floor:.1f}x",
                      f"{cpu / floor_cpu:.1f}x",
                      " / ".join(f"{phases.get(k, 0):.2f}" for k in ("extract", "normalize", "load")))
    console.print(table)
    console.print(f"synthetic generation alone: {gen_secs:.2f}s ({n / gen_secs:,.0f} rows/s; included in the "
                  "pipeline figures, not in the parquet floor). Cores: "
                  f"{os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

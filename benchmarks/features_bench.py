"""Feature build (dbt_lake) timings: full and incremental builds on the sample and on the synthetic
~2.6M-row set (500 tickers x 20 years of business days), through the REST catalog (embedded mode).

For each data set: ingest all but the last week, full build; ingest the last week, incremental build.
Printed per build: wall time of `dbt build` (process start, parse, models, 32 tests), and the model
times from dbt's run_results (stg_quotes = read raw.quotes from Iceberg into DuckDB; fct_daily_features
= compute + one Iceberg commit). Target: full build of the features on 2.5M rows < 30 s on 2 cores.

Run: .venvs/core/bin/python benchmarks/features_bench.py [--skip-sample] [--skip-synthetic] [--tickers 500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

QUIET = Console(quiet=True)


def _env(home: Path, extra: dict[str, str]) -> None:
    for k in list(os.environ):
        if k.startswith("LAKEHOUSE_"):
            del os.environ[k]
    from lakehouse.net import free_port

    os.environ.update({"LAKEHOUSE_HOME": str(home), "LAKEHOUSE_CATALOG__PORT": str(free_port()), **extra})


def _statement_times(log: Path, offset: int) -> dict[str, float]:
    """Seconds per kind of SQL statement of the fct_daily_features node, from dbt's JSON log."""
    out: dict[str, float] = {}
    last_sql = ""
    with log.open() as f:
        f.seek(offset)
        for line in f:
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            data = e.get("data", {})
            if (data.get("node_info") or {}).get("node_name") != "fct_daily_features":
                continue
            name = e.get("info", {}).get("name")
            if name == "SQLQuery":
                last_sql = re.sub(r"/\*.*?\*/", "", data.get("sql", ""), flags=re.S).strip().lower()
            elif name == "SQLQueryStatus":
                kind = next((k for k, prefix in STATEMENT_KINDS if last_sql.startswith(prefix)), "other")
                out[kind] = out.get(kind, 0.0) + float(data.get("elapsed") or 0)
            elif name == "SQLCommit":
                pass
    return out


STATEMENT_KINDS = (("compute+stage", "create or replace temp table"), ("iceberg delete", "delete from"),
                   ("stage parquet", "copy "),
                   ("iceberg write", "insert into"), ("iceberg write", "create table"), ("commit", "commit"))


def _build(cfg, lake, full_refresh: bool, label: str) -> dict:
    from lakehouse.stages.transform_lake import build, state_dir

    log = state_dir(cfg) / "logs" / "dbt.log"
    offset = log.stat().st_size if log.exists() else 0
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = build(cfg, full_refresh=full_refresh, console=QUIET, lake=lake)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    statements = _statement_times(log, offset)
    if not result.ok:
        raise SystemExit(f"{label}: dbt build failed: {result.one_line()}\n" + "\n".join(result.errors[-10:]))
    times = {n.name: n.seconds for n in result.nodes if n.kind == "model"}
    tests = sum(n.seconds for n in result.nodes if n.kind in ("test", "unit_test"))
    return {"build": label, "wall": wall, "cpu": cpu, "statements": statements,
            "stg": times.get("stg_quotes", 0.0),
            "fct": times.get("fct_daily_features", 0.0), "tests": tests,
            "note": result.notes.get("fct_daily_features", "")}


def bench(name: str, source: str, first_end: str, extra_env: dict[str, str], last_end: str | None = None
          ) -> list[dict]:
    """Full build after ingesting up to first_end, then an incremental build after the rest."""
    from lakehouse.config import get_config
    from lakehouse.lake import open_lake
    from lakehouse.stages.ingest.run import run_ingest

    with tempfile.TemporaryDirectory(prefix=f"features-bench-{name.split()[0]}-") as tmp:
        _env(Path(tmp) / "home", extra_env)
        cfg = get_config(reload=True)
        t0 = time.perf_counter()
        first = run_ingest(cfg, source, end=first_end, console=QUIET)
        print(f"[{name}] ingested {first.rows_loaded:,} rows up to {first_end} in {time.perf_counter() - t0:.1f}s",
              flush=True)
        rows = []
        with open_lake(cfg) as lake:
            rows.append({"data": name, "rows": first.rows_loaded, **_build(cfg, lake, True, "full")})
            print(f"[{name}] full build {rows[-1]['wall']:.1f}s", flush=True)
            rest = run_ingest(cfg, source, end=last_end, console=QUIET)
            total = first.rows_loaded + rest.rows_loaded
            rows.append({"data": name, "rows": total, **_build(cfg, lake, False,
                                                                f"incremental (+{rest.rows_loaded:,} rows)")})
            print(f"[{name}] incremental build {rows[-1]['wall']:.1f}s", flush=True)
            rows.append({"data": name, "rows": total, **_build(cfg, lake, True, "full refresh")})
            print(f"[{name}] full refresh {rows[-1]['wall']:.1f}s", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-synthetic", action="store_true")
    p.add_argument("--skip-sample", action="store_true")
    p.add_argument("--tickers", type=int, default=500, help="synthetic tickers (20 years each)")
    args = p.parse_args()
    rows = [] if args.skip_sample else bench("sample", "sample", "2013-02-22", {})
    if not args.skip_synthetic:
        end = dt.date(2024, 12, 31)
        rows += bench(f"synthetic {args.tickers}x20y", "synthetic", "2024-12-20", {
            "LAKEHOUSE_SOURCES__SYNTHETIC__N_TICKERS": str(args.tickers),
            "LAKEHOUSE_SOURCES__SYNTHETIC__START": f"{end.year - 19}-01-01",
        }, last_end=end.isoformat())
    load = os.getloadavg()[0]
    table = Table(title=f"features_bench (dbt_lake, embedded mode, {os.cpu_count()} cores, load {load:.1f})")
    for col in ("data", "rows", "build", "dbt build wall s", "dbt CPU s", "stg_quotes s", "fct_daily_features s",
                "of which", "tests s (sum)", "lake_table"):
        table.add_column(col, justify="left" if col in ("data", "build", "lake_table", "of which") else "right")
    for r in rows:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in r["statements"].items() if v >= 0.05)
        table.add_row(r["data"], f"{r['rows']:,}", r["build"], f"{r['wall']:.1f}", f"{r['cpu']:.1f}",
                      f"{r['stg']:.2f}", f"{r['fct']:.2f}", parts, f"{r['tests']:.2f}", r["note"])
    Console(width=200).print(table)
    synth_full = [r for r in rows if r["data"].startswith("synthetic") and r["build"] == "full refresh"]
    if synth_full:
        r = synth_full[0]
        model = r["stg"] + r["fct"]
        print(f"target: full feature build on {r['rows']:,} rows < 30 s: models {model:.1f}s "
              f"({'met' if model < 30 else 'MISSED'}); whole dbt build incl. tests {r['wall']:.1f}s")


if __name__ == "__main__":
    main()

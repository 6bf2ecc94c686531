"""Every performance figure of issue 16 beside its anchor, as a ratio, in one run.

    .venvs/core/bin/python benchmarks/compare.py [--only catalog,ingest,run,up] [--quick] [--repeat N]
    make compare            # the same (ARGS="--quick --only catalog" passes options)

Parts (each reuses the functions of the single-purpose benchmark scripts beside this one):

- ``catalog`` (catalog_bench.s3_comparison): this catalog, SeaweedFS's own Iceberg REST catalog and
  pyiceberg's SqlCatalog writing directly, all on one SeaweedFS S3, measured interleaved: load-table and
  append-commit p50 (target ratio <= 1.0 against both), commits/s with 8 writers on ONE table;
- ``ingest`` (ingest_bench._ingest / _parquet_floor): the synthetic 500 tickers x 20 years into an empty
  table, marginal rows/s (rows over the time beyond a tiny ingest's fixed cost; target >= 2M rows/s and
  <= 2x the pyarrow parquet floor of the same rows, measured in the same round) and a full re-merge of
  the same window (target >= 1M rows/s);
- ``run`` (e2e_bench._run): ``lakehouse run`` on the sample, cold (target < 60 s) and with nothing new
  (target < 10 s);
- ``up``: ``lakehouse up`` of every registered service on a fresh state dir: seconds until every
  service is healthy (target < 60 s) and the RSS of all their processes (target < 3 GiB).

The machine these run on may be shared: every ratio is taken between figures of the same round, and
with ``--repeat N`` each figure is printed as the range over the rounds (min-max).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

PARTS = ("catalog", "ingest", "run", "up")
GIB = 1024**3


@dataclass
class Figure:
    """One measured figure (a value per round) beside its anchor."""

    part: str
    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    anchor: str = ""  # what it is compared with
    anchor_values: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)  # value / anchor per round
    target: str = ""
    met: Callable[[float], bool] | None = None  # on the worst round's ratio or value
    on_ratio: bool = True


def _span(values: list[float], fmt: str = "{:,.1f}") -> str:
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return fmt.format(lo) if lo == hi or len(values) == 1 else f"{fmt.format(lo)}–{fmt.format(hi)}"


def _verdict(f: Figure) -> str:
    if f.met is None:
        return ""
    vals = f.ratios if f.on_ratio else f.values
    if not vals:
        return ""
    ok = [f.met(v) for v in vals]
    return "[green]yes[/]" if all(ok) else ("[yellow]some rounds[/]" if any(ok) else "[red]no[/]")


# --- catalog -----------------------------------------------------------------------------------
def catalog_part(rounds: int, quick: bool, console: Console) -> list[Figure]:
    import catalog_bench

    loads, commits, seconds = (30, 10, 5.0) if quick else (100, 30, 15.0)
    figs = {k: Figure("catalog", *k) for k in (
        ("append-commit p50 vs SeaweedFS catalog", "ms"), ("append-commit p50 vs SqlCatalog direct", "ms"),
        ("load-table p50 vs SeaweedFS catalog", "ms"), ("load-table p50 vs SqlCatalog direct", "ms"),
        ("commits/s, 8 writers, one table, vs SeaweedFS", "1/s"),
        ("commits/s, 8 writers, one table, vs SqlCatalog", "1/s"),
    )}
    for i in range(rounds):
        console.print(f"[dim]catalog round {i + 1}/{rounds}: SeaweedFS + this catalog on S3 ...[/]")
        res = catalog_bench.s3_comparison(loads=loads, commits=commits, writers=8, seconds=seconds)
        p50 = {c: {k: catalog_bench.pct(res[c][k], 0.5) for k in ("load", "commit")} for c in res}
        for (name, _), f in figs.items():
            other = "seaweedfs" if "SeaweedFS" in name else "sql"
            f.anchor = "SeaweedFS Iceberg catalog" if other == "seaweedfs" else "pyiceberg SqlCatalog (S3)"
            if name.startswith("commits/s"):
                mine, theirs = res["this"]["commits/s"], res[other]["commits/s"]
                f.met = None
                f.target = (f"reported; gave up after retries: this {res['this']['failed']}, "
                            f"anchor {res[other]['failed']} (last round)")
            else:
                key = "commit" if name.startswith("append") else "load"
                mine, theirs = p50["this"][key], p50[other][key]
                f.target, f.met = "<= 1.0x", lambda r: r <= 1.0
            f.values.append(mine)
            f.anchor_values.append(theirs)
            f.ratios.append(mine / theirs)
    return list(figs.values())


# --- ingest ------------------------------------------------------------------------------------
def ingest_part(rounds: int, quick: bool, console: Console) -> list[Figure]:
    import ingest_bench
    import pyarrow as pa

    from lakehouse.sources.synthetic import generate

    logging.getLogger("dlt").setLevel(logging.ERROR)
    tickers, years = (100, 10) if quick else (500, 20)
    end = dt.date(2024, 12, 31)
    first = dt.date(end.year - years + 1, 1, 1)
    marginal = Figure("ingest", f"synthetic {tickers}x{years}y into an empty table, marginal", "rows/s",
                      anchor="target", target=">= 2,000,000", met=lambda v: v >= 2e6, on_ratio=False)
    floor = Figure("ingest", "  same, time vs the pyarrow parquet floor", "s", anchor="pq.write_table, same rows",
                   target="<= 2.0x", met=lambda r: r <= 2.0)
    merge = Figure("ingest", "full re-merge of the same window", "rows/s", anchor="target",
                   target=">= 1,000,000", met=lambda v: v >= 1e6, on_ratio=False)
    with tempfile.TemporaryDirectory(prefix="compare-ingest-") as tmp:
        tmpdir = Path(tmp)
        ingest_bench._ingest(tmpdir / "warm", "sample", "2013-01-01", "2013-12-31")  # imports, first-use costs
        for i in range(rounds):
            console.print(f"[dim]ingest round {i + 1}/{rounds} ...[/]")
            env = {"LAKEHOUSE_SOURCES__SYNTHETIC__N_TICKERS": str(tickers),
                   "LAKEHOUSE_SOURCES__SYNTHETIC__START": first.isoformat()}
            small_env = {**env, "LAKEHOUSE_SOURCES__SYNTHETIC__N_TICKERS": "5"}
            small, (small_s, _) = ingest_bench._ingest(tmpdir / f"small{i}", "synthetic", f"{end.year}-01-01",
                                                       end.isoformat(), **small_env)
            data: pa.Table = generate(tickers, years, end=end)
            floor_s, _ = ingest_bench._parquet_floor(data, tmpdir / "floor.parquet")
            del data
            big, (big_s, _) = ingest_bench._ingest(tmpdir / f"big{i}", "synthetic", first.isoformat(),
                                                   end.isoformat(), **env)
            again, (merge_s, _) = ingest_bench._ingest(tmpdir / f"big{i}", "synthetic", first.isoformat(),
                                                       end.isoformat(), **env)
            extra_rows, extra_s = big.rows_loaded - small.rows_loaded, max(big_s - small_s, 1e-9)
            marginal.values.append(extra_rows / extra_s)
            marginal.anchor_values.append(2e6)
            marginal.ratios.append(extra_rows / extra_s / 2e6)
            floor.values.append(extra_s)
            floor.anchor_values.append(floor_s)
            floor.ratios.append(extra_s / floor_s)
            merge.values.append(again.rows_loaded / merge_s)
            merge.anchor_values.append(1e6)
            merge.ratios.append(again.rows_loaded / merge_s / 1e6)
            phases = " / ".join(f"{big.phases.get(k, 0):.2f}" for k in ("extract", "normalize", "load"))
            console.print(f"[dim]  tiny {small.rows_loaded:,} rows {small_s:.2f}s; "
                          f"{big.rows_loaded:,} rows {big_s:.2f}s "
                          f"(extract / normalize / load {phases}); floor {floor_s:.2f}s; re-merge {merge_s:.2f}s[/]")
    return [marginal, floor, merge]


# --- lakehouse run -----------------------------------------------------------------------------
def run_part(rounds: int, quick: bool, console: Console) -> list[Figure]:
    import e2e_bench

    cold = Figure("run", "lakehouse run on the sample, cold", "s", anchor="target", target="< 60 s",
                  met=lambda r: r < 1.0)
    nochange = Figure("run", "lakehouse run, nothing new", "s", anchor="target", target="< 10 s",
                      met=lambda r: r < 1.0)
    for i in range(rounds):
        console.print(f"[dim]lakehouse run round {i + 1}/{rounds}: cold, then nothing new ...[/]")
        with tempfile.TemporaryDirectory(prefix="compare-run-") as tmp:
            base = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
            env = {**base, "LAKEHOUSE_HOME": str(Path(tmp) / "home"), "COLUMNS": "200",
                   "LAKEHOUSE_SOURCES__SAMPLE__END": e2e_bench.DAY_1}
            for fig, anchor in ((cold, 60.0), (nochange, 10.0)):
                wall, _ = e2e_bench._run(env)
                fig.values.append(wall)
                fig.anchor_values.append(anchor)
                fig.ratios.append(wall / anchor)
    return [cold, nochange]


# --- lakehouse up ------------------------------------------------------------------------------
def up_part(rounds: int, quick: bool, console: Console) -> list[Figure]:
    from lakehouse.config import load_config
    from lakehouse.services.registry import all_services
    from lakehouse.services.supervisor import _read_state, service_processes
    from tests.conftest import isolated_env

    names = [s.name for s in all_services()]
    absent = "" if any(n.startswith("superset") for n in names) else "; superset absent (not registered)"
    healthy = Figure("up", f"lakehouse up ({len(names)} processes: {', '.join(names)}{absent}), time to healthy",
                     "s", anchor="target", target="< 60 s", met=lambda r: r < 1.0)
    rss = Figure("up", "  same, total RSS of every service process", "GiB", anchor="target", target="< 3 GiB",
                 met=lambda r: r < 1.0)
    cli = str(Path(sys.executable).parent / "lakehouse")
    for i in range(rounds):
        console.print(f"[dim]lakehouse up round {i + 1}/{rounds} ...[/]")
        with tempfile.TemporaryDirectory(prefix="compare-up-") as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
            env.update(isolated_env(Path(tmp) / "home"))
            env["LAKEHOUSE_GENERAL__MODE"] = "services"
            cfg = load_config(env=env)
            try:
                t0 = time.perf_counter()
                proc = subprocess.run([cli, "up"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
                secs = time.perf_counter() - t0
                if proc.returncode != 0:
                    raise SystemExit(f"lakehouse up failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
                time.sleep(2)  # let workers that fork after the health check appear
                total = 0
                for svc in all_services():
                    for p in service_processes(_read_state(cfg, svc.name) or {}):
                        with contextlib.suppress(Exception):  # a process that just exited
                            total += p.memory_info().rss
            finally:
                subprocess.run([cli, "down"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
            healthy.values.append(secs)
            healthy.anchor_values.append(60.0)
            healthy.ratios.append(secs / 60.0)
            rss.values.append(total / GIB)
            rss.anchor_values.append(3.0)
            rss.ratios.append(total / GIB / 3.0)
    return [healthy, rss]


RUNNERS = {"catalog": catalog_part, "ingest": ingest_part, "run": run_part, "up": up_part}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="fewer samples and a smaller synthetic set (a smoke run)")
    parser.add_argument("--repeat", type=int, default=0,
                        help="rounds per part (default: 3 for catalog and ingest, 1 for run and up; 1 with --quick)")
    args = parser.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in RUNNERS]
    if unknown:
        raise SystemExit(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    console = Console(width=200)
    figures: list[Figure] = []
    started = time.perf_counter()
    for part in parts:
        rounds = args.repeat or (1 if args.quick or part in ("run", "up") else 3)
        figures += RUNNERS[part](rounds, args.quick, console)

    table = Table(title=f"issue 16 figures beside their anchors ({os.cpu_count()} cores, load average "
                        f"{os.getloadavg()[0]:.1f}; ranges over rounds, ratios within a round)")
    for col in ("part", "figure", "measured", "anchor", "anchor value", "ratio", "target", "met"):
        table.add_column(col, justify="left" if col in ("part", "figure", "anchor", "target", "met") else "right")
    for f in figures:
        fmt = "{:,.0f}" if f.unit in ("rows/s",) else "{:,.2f}"
        table.add_row(f.part, f.name, f"{_span(f.values, fmt)} {f.unit}", f.anchor,
                      _span(f.anchor_values, fmt), _span(f.ratios, "{:.2f}x"), f.target, _verdict(f))
    console.print(table)
    console.print(f"[dim]total {time.perf_counter() - started:.0f} s[/]")


if __name__ == "__main__":
    main()

"""Catalog latency and throughput: the REST catalog server vs pyiceberg's SqlCatalog on the same database.

    .venvs/core/bin/python benchmarks/catalog_bench.py [--loads 300] [--commits 40] [--per-writer 10]

The server runs as its own process (uvicorn, SQLite database, local file warehouse), the way
`lakehouse catalog serve` runs it. Figures:
- load-table latency p50/p95: raw HTTP GET of the REST endpoint, pyiceberg RestCatalog.load_table,
  and pyiceberg SqlCatalog.load_table directly on the same database (table with 20 snapshots);
- append-commit latency p50/p95 (a one-row pyiceberg append, i.e. data + manifests + commit): REST vs SqlCatalog;
- commits/s with 1, 4 and 8 concurrent writer processes (each appending to its own table through REST).
Targets (issue 3): load-table p50 <= 5 ms on loopback; commit within 1.5x of SqlCatalog-direct.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import pyarrow as pa  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from lakehouse.net import free_port, wait_http  # noqa: E402

SERVER = """
import sys
from catalog.app import create_app
from catalog.server import serve
serve(create_app(sys.argv[1], sys.argv[2]), "127.0.0.1", int(sys.argv[3]), "WARNING")
"""
ROW = pa.table({"id": pa.array([1], pa.int64()), "v": pa.array(["x"], pa.string())})


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, in milliseconds."""
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] * 1000


def timed(fn, n: int) -> list[float]:  # noqa: ANN001
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _writer(args: tuple[str, str, int, object]) -> int:
    uri, table, n, barrier = args
    from pyiceberg.catalog.rest import RestCatalog

    cat = RestCatalog("lakehouse", uri=uri)
    tbl = cat.load_table(table)
    barrier.wait()
    for _ in range(n):
        tbl.append(ROW)
    return n


def throughput(uri: str, writers: int, per_writer: int) -> float:
    """Commits per second with ``writers`` processes appending to their own tables."""
    from pyiceberg.catalog.rest import RestCatalog

    cat = RestCatalog("lakehouse", uri=uri)
    tables = []
    for w in range(writers):
        name = f"bench.tp_{writers}_{w}"
        cat.create_table(name, schema=ROW.schema)
        tables.append(name)
    ctx = mp.get_context("fork")
    barrier = ctx.Manager().Barrier(writers + 1)
    with ctx.Pool(writers) as pool:
        res = pool.map_async(_writer, [(uri, t, per_writer, barrier) for t in tables])
        barrier.wait()
        t0 = time.perf_counter()
        total = sum(res.get(timeout=600))
        elapsed = time.perf_counter() - t0
    return total / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loads", type=int, default=300)
    ap.add_argument("--commits", type=int, default=40)
    ap.add_argument("--per-writer", type=int, default=10)
    args = ap.parse_args()
    logging.getLogger("pyiceberg").setLevel(logging.ERROR)
    console = Console()
    tmp = Path(tempfile.mkdtemp(prefix="catalog-bench-"))
    db = f"sqlite:///{tmp}/catalog.db"
    warehouse = (tmp / "warehouse").as_uri()
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-c", SERVER, db, warehouse, str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"))  # noqa: SIM115
    try:
        if not wait_http(f"{uri}/healthz", 60, alive=lambda: proc.poll() is None):
            raise SystemExit(f"catalog server did not start; see {tmp / 'server.log'}")
        from pyiceberg.catalog.rest import RestCatalog
        from pyiceberg.catalog.sql import SqlCatalog

        rest = RestCatalog("lakehouse", uri=uri)
        sql = SqlCatalog("lakehouse", uri=db, warehouse=warehouse)
        rest.create_namespace("bench")
        t = rest.create_table("bench.load", schema=ROW.schema)
        for _ in range(20):
            t.append(ROW)
        ident = "bench.load"
        with httpx.Client(base_url=uri) as http:
            http.get("/v1/namespaces/bench/tables/load")
            raw = timed(lambda: http.get("/v1/namespaces/bench/tables/load").raise_for_status(), args.loads)
        rest.load_table(ident)
        sql.load_table(ident)
        via_rest = timed(lambda: rest.load_table(ident), args.loads)
        via_sql = timed(lambda: sql.load_table(ident), args.loads)

        rest.create_table("bench.commit_rest", schema=ROW.schema)
        sql.create_table("bench.commit_sql", schema=ROW.schema)
        tr, ts = rest.load_table("bench.commit_rest"), sql.load_table("bench.commit_sql")
        tr.append(ROW)
        ts.append(ROW)
        commit_rest, commit_sql = [], []
        for _ in range(args.commits):  # interleaved so both see the same machine load
            commit_rest += timed(lambda: tr.append(ROW), 1)
            commit_sql += timed(lambda: ts.append(ROW), 1)

        lat = Table(title="Catalog latency (ms)")
        for col in ("operation", "p50", "p95", "mean"):
            lat.add_column(col, justify="right" if col != "operation" else "left")

        def row(name: str, vals: list[float]) -> None:
            lat.add_row(name, f"{pct(vals, .5):.2f}", f"{pct(vals, .95):.2f}", f"{statistics.mean(vals) * 1000:.2f}")

        row("load-table REST, raw HTTP GET", raw)
        row("load-table REST, pyiceberg RestCatalog", via_rest)
        row("load-table SqlCatalog direct", via_sql)
        row("append commit REST", commit_rest)
        row("append commit SqlCatalog direct", commit_sql)
        console.print(lat)
        console.print(f"load-table ratio REST/SqlCatalog p50: {pct(via_rest, .5) / pct(via_sql, .5):.2f}x; "
                      f"raw HTTP p50 {pct(raw, .5):.2f} ms (target <= 5 ms)")
        console.print(f"append commit ratio REST/SqlCatalog p50: {pct(commit_rest, .5) / pct(commit_sql, .5):.2f}x "
                      f"(target <= 1.5x)")

        tp = Table(title="Commit throughput (REST, own table per writer process)")
        tp.add_column("writers")
        tp.add_column("commits/s", justify="right")
        for w in (1, 4, 8):
            tp.add_row(str(w), f"{throughput(uri, w, args.per_writer):.1f}")
        console.print(tp)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()

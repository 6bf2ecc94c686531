"""Catalog latency and throughput: the REST catalog server vs pyiceberg's SqlCatalog on the same database.

    .venvs/core/bin/python benchmarks/catalog_bench.py [--loads 300] [--commits 40] [--per-writer 10]

The server runs as its own process (uvicorn, SQLite database, local file warehouse), the way
`lakehouse catalog serve` runs it. Figures:
- load-table latency p50/p95: raw HTTP GET of the REST endpoint, pyiceberg RestCatalog.load_table,
  and pyiceberg SqlCatalog.load_table directly on the same database (table with 20 snapshots);
- append-commit latency p50/p95 (a one-row pyiceberg append, i.e. data + manifests + commit): REST vs SqlCatalog;
- commits/s with 1, 4 and 8 concurrent writer processes (each appending to its own table through REST).
Targets (issue 3): load-table p50 <= 5 ms on loopback; commit within 1.5x of SqlCatalog-direct.

:func:`s3_comparison` (used by ``benchmarks/compare.py --only catalog``) measures the same figures on S3:
this catalog (its own process, warehouse on SeaweedFS), SeaweedFS's own Iceberg REST catalog (``weed
mini -s3.port.iceberg``, a table bucket on the same S3 server) and pyiceberg's SqlCatalog writing
directly to the same S3, plus commits/s with concurrent writers appending to ONE table (issue 16).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing as mp
import os
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

#: this catalog as its own process, configured from LAKEHOUSE_* (services mode: S3 warehouse)
CONFIG_SERVER = """
import sys
from lakehouse.config import get_config
from catalog.server import app_from_config, serve
serve(app_from_config(get_config()), "127.0.0.1", int(sys.argv[1]), "WARNING")
"""
#: the S3 Tables bucket SeaweedFS's own catalog keeps its tables in (plain S3 writes there are refused)
SEAWEED_TABLE_BUCKET = "icebench"

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


def _shared_writer(args: tuple[str, dict[str, str], str, float, object]) -> tuple[int, int]:
    """Append one-row commits to ``table`` until ``seconds`` pass: (acknowledged commits, failed ones)."""
    kind, props, table, seconds, barrier = args
    logging.getLogger("pyiceberg").setLevel(logging.ERROR)
    cat = _catalog(kind, props)
    tbl = cat.load_table(table)
    barrier.wait()
    ok = failed = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        try:
            tbl.append(ROW)
            ok += 1
        except Exception:  # noqa: BLE001 - a commit that lost its retries counts as failed
            failed += 1
            tbl = cat.load_table(table)
    return ok, failed


def shared_table_throughput(kind: str, props: dict[str, str], table: str, writers: int,
                            seconds: float) -> tuple[float, int, int]:
    """(commits/s, acknowledged commits, failed commits) with ``writers`` processes appending to one
    table for ``seconds``; the table's row count is checked against the acknowledged appends."""
    cat = _catalog(kind, props)
    before = len(cat.load_table(table).scan().to_arrow())
    ctx = mp.get_context("fork")
    barrier = ctx.Manager().Barrier(writers + 1)
    with ctx.Pool(writers) as pool:
        res = pool.map_async(_shared_writer, [(kind, props, table, seconds, barrier)] * writers)
        barrier.wait()
        t0 = time.perf_counter()
        outcomes = res.get(timeout=seconds * 20 + 120)
        elapsed = time.perf_counter() - t0
    ok, failed = sum(o for o, _ in outcomes), sum(f for _, f in outcomes)
    after = len(cat.load_table(table).scan().to_arrow())
    if after - before != ok:
        raise SystemExit(f"{kind}: {ok} acknowledged appends but {after - before} new rows in {table}")
    return ok / elapsed, ok, failed


def _catalog(kind: str, props: dict[str, str]):  # noqa: ANN202
    """A pyiceberg catalog of ``kind`` (rest | sql) from ``props``."""
    from pyiceberg.catalog.rest import RestCatalog
    from pyiceberg.catalog.sql import SqlCatalog

    return (RestCatalog if kind == "rest" else SqlCatalog)(props.get("name", "bench"), **props)


@contextlib.contextmanager
def s3_catalogs(tmp: Path):  # noqa: ANN201
    """Start SeaweedFS (with its Iceberg REST catalog) and this catalog on it; yield the pyiceberg
    properties of the three catalogs: ``{"this": ..., "seaweedfs": ..., "sql": ...}`` as (kind, props)."""
    from lakehouse.config import load_config
    from lakehouse.services import objectstore
    from tests.conftest import isolated_env

    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update(isolated_env(tmp / "home"))
    env.update({"LAKEHOUSE_GENERAL__MODE": "services", "LAKEHOUSE_CATALOG__AUTH": "false"})
    cfg = load_config(env=env)
    objectstore._write_identities(cfg)  # noqa: SLF001 - the service's own preparation, reused
    ice_port = free_port()
    cmd = [f"-s3.port.iceberg={ice_port}" if c == "-s3.port.iceberg=0" else c for c in objectstore._command(cfg)]  # noqa: SLF001
    cmd.append(f"-tableBucket={SEAWEED_TABLE_BUCKET}")
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen(cmd, stdout=open(tmp / "weed.log", "wb"), stderr=subprocess.STDOUT))  # noqa: SIM115
        if not wait_http(f"{cfg.s3_endpoint}/healthz", 90, alive=lambda: procs[0].poll() is None):
            raise SystemExit(f"SeaweedFS did not start; see {tmp / 'weed.log'}")
        objectstore.ensure_bucket(cfg)
        o = cfg.objectstore
        s3 = {"s3.endpoint": cfg.s3_endpoint, "s3.access-key-id": o.access_key, "s3.secret-access-key": o.secret_key,
              "s3.region": o.region, "s3.path-style-access": "true"}
        port = cfg.catalog.port
        procs.append(subprocess.Popen([sys.executable, "-c", CONFIG_SERVER, str(port)], cwd=ROOT, env=env,
                                      stdout=subprocess.DEVNULL, stderr=open(tmp / "catalog.log", "wb")))  # noqa: SIM115
        if not wait_http(f"http://127.0.0.1:{port}/healthz", 60, alive=lambda: procs[1].poll() is None):
            raise SystemExit(f"catalog server did not start; see {tmp / 'catalog.log'}")
        sigv4 = {"rest.sigv4-enabled": "true", "rest.signing-region": o.region, "rest.signing-name": "s3tables",
                 "client.access-key-id": o.access_key, "client.secret-access-key": o.secret_key,
                 "client.region": o.region}
        catalogs = {
            "this": ("rest", {"uri": f"http://127.0.0.1:{port}", **s3}),
            "seaweedfs": ("rest", {"uri": f"http://127.0.0.1:{ice_port}", "warehouse": f"s3://{SEAWEED_TABLE_BUCKET}",
                                   **sigv4, **s3}),
            "sql": ("sql", {"uri": f"sqlite:///{tmp}/sqlcatalog.db", "warehouse": f"s3://{o.bucket}/sqlcatalog", **s3}),
        }
        deadline = time.monotonic() + 60
        while True:  # SeaweedFS's catalog answers a little after its S3 port
            try:
                _catalog(*catalogs["seaweedfs"]).list_namespaces()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield catalogs
    finally:
        for p in reversed(procs):
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)
            if p.poll() is None:
                p.kill()


def s3_comparison(loads: int = 100, commits: int = 30, writers: int = 8, seconds: float = 15.0,
                  tmp: Path | None = None) -> dict[str, dict[str, float]]:
    """Load-table and append-commit latencies (seconds, lists) and shared-table commits/s of the three
    catalogs on one SeaweedFS S3, measured interleaved in one run: ``{catalog: {figure: value}}``."""
    logging.getLogger("pyiceberg").setLevel(logging.ERROR)
    out: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        if tmp is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="catalog-s3-")))
        catalogs = stack.enter_context(s3_catalogs(tmp))
        cats = {name: _catalog(kind, props) for name, (kind, props) in catalogs.items()}
        tables = {}
        for name, cat in cats.items():
            cat.create_namespace("bench")
            t = cat.create_table("bench.load", schema=ROW.schema)
            for _ in range(20):
                t.append(ROW)
            tables[name] = cat.create_table("bench.commit", schema=ROW.schema)
            tables[name].append(ROW)
            cat.create_table("bench.shared", schema=ROW.schema)
            out[name] = {"load": [], "commit": []}
        for _ in range(loads):  # interleaved: every catalog sees the same machine load
            for name, cat in cats.items():
                out[name]["load"] += timed(lambda cat=cat: cat.load_table("bench.load"), 1)
        for _ in range(commits):
            for name, t in tables.items():
                out[name]["commit"] += timed(lambda t=t: t.append(ROW), 1)
        for name, (kind, props) in catalogs.items():
            rate, ok, failed = shared_table_throughput(kind, props, "bench.shared", writers, seconds)
            out[name].update({"commits/s": rate, "acknowledged": ok, "failed": failed})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loads", type=int, default=300)
    ap.add_argument("--commits", type=int, default=40)
    ap.add_argument("--per-writer", type=int, default=10)
    ap.add_argument("--s3", action="store_true", help="compare on SeaweedFS S3 with SeaweedFS's own catalog and "
                                                      "SqlCatalog (see s3_comparison; also compare.py)")
    args = ap.parse_args()
    logging.getLogger("pyiceberg").setLevel(logging.ERROR)
    console = Console()
    if args.s3:
        res = s3_comparison(loads=args.loads, commits=args.commits)
        out = Table(title="Catalogs on one SeaweedFS S3 (ms; commits/s with 8 writers on one table)")
        for col in ("catalog", "load-table p50", "append-commit p50", "commits/s", "gave up"):
            out.add_column(col, justify="left" if col == "catalog" else "right")
        for name, r in res.items():
            out.add_row(name, f"{pct(r['load'], .5):.2f}", f"{pct(r['commit'], .5):.2f}", f"{r['commits/s']:.1f}",
                        str(r["failed"]))
        console.print(out)
        return
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

"""kill -9 of the catalog server in the middle of a commit storm: after a restart every table loads and scans,
and every acknowledged commit is there."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pyarrow as pa
from pyiceberg.exceptions import CommitFailedException

from lakehouse.net import free_port, wait_http
from tests.catalog_support import rest_catalog
from tests.conftest import BIN


def _start(lh_env: dict[str, str], db: str, warehouse: str, port: int, log) -> subprocess.Popen:
    proc = subprocess.Popen(
        [str(BIN / "lakehouse"), "catalog", "serve", "--port", str(port), "--db", db, "--warehouse", warehouse],
        env={**os.environ, **lh_env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    assert wait_http(f"http://127.0.0.1:{port}/healthz", 60, alive=lambda: proc.poll() is None), "server did not start"
    return proc


def test_kill_9_during_commit_storm(lh_env, tmp_path) -> None:
    db = f"sqlite:///{tmp_path}/catalog.db"
    warehouse = (tmp_path / "warehouse").as_uri()
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "server.log", "ab")  # noqa: SIM115 - closed at the end
    proc = _start(lh_env, db, warehouse, port, log)
    tables = ["storm.t0", "storm.t1", "storm.t2"]
    cat = rest_catalog(uri)
    cat.create_namespace("storm")
    for name in tables:
        cat.create_table(name, schema=pa.schema([("writer", pa.int64()), ("seq", pa.int64())]),
                         properties={"commit.retry.num-retries": "0"})

    acknowledged: dict[str, set] = {t: set() for t in tables}
    attempted: dict[str, set] = {t: set() for t in tables}
    stop = threading.Event()

    def writer(w: int) -> None:
        name = tables[w % len(tables)]
        try:
            c = rest_catalog(uri)
        except Exception:  # noqa: BLE001 - the server may already be gone
            return
        seq = 0
        while not stop.is_set():
            try:
                tbl = c.load_table(name)
                attempted[name].add((w, seq))
                tbl.append(pa.table({"writer": pa.array([w], pa.int64()), "seq": pa.array([seq], pa.int64())}))
                acknowledged[name].add((w, seq))
                seq += 1
            except CommitFailedException:
                seq += 1
            except Exception:  # noqa: BLE001 - connection refused after the kill
                return

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while sum(len(v) for v in acknowledged.values()) < 25 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 mid-storm
    proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert sum(len(v) for v in acknowledged.values()) >= 25

    proc = _start(lh_env, db, warehouse, port, log)
    try:
        cat = rest_catalog(uri)
        for name in tables:
            tbl = cat.load_table(name)
            rows = {(r["writer"], r["seq"]) for r in tbl.scan().to_arrow().to_pylist()}
            assert acknowledged[name] <= rows, f"{name}: acknowledged commits lost"
            assert rows <= attempted[name]
            snap = tbl.current_snapshot()
            assert snap is not None and int(snap.summary["total-records"]) == len(rows)
            # the table still takes commits
            tbl.append(pa.table({"writer": pa.array([99], pa.int64()), "seq": pa.array([0], pa.int64())}))
            assert cat.load_table(name).scan().to_arrow().num_rows == len(rows) + 1
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()

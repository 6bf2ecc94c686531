"""The ClickHouse front as a supervised service and through the CLI; the SQL lexer it relies on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil

from lakehouse.clickhouse.front import embedded_client, endpoint, http_client
from lakehouse.clickhouse.statements import analyze
from lakehouse.services.registry import get_service
from lakehouse.services.supervisor import down, status, up
from tests.conftest import run_cli


def test_service_up_query_down(lh_env, cfg) -> None:
    svc = get_service("clickhouse")
    try:
        up(cfg, ["clickhouse"])
        st = status(cfg, svc)
        assert st.state == "running" and st.healthy
        with endpoint(cfg) as ep:  # the running service, not a temporary front
            assert not ep.temporary and ep.port == cfg.clickhouse.port
            c = http_client(ep)
            c.command("CREATE TABLE IF NOT EXISTS kept (a UInt8) ENGINE = MergeTree ORDER BY a")
            c.insert("kept", [[7]], column_names=["a"])
            c.close()
        res = run_cli("clickhouse", "query", "SELECT sum(a) FROM marts.kept", "--format", "TSV", env=lh_env)
        assert res.returncode == 0 and res.stdout.strip() == "7", res.stderr
        down(cfg, ["clickhouse"])
        assert status(cfg, svc).state == "stopped"
        # the data survives: in-process chdb (embedded mode) reads it, and releases the path on close
        local = embedded_client(cfg)
        assert local.command("SELECT sum(a) FROM kept") == 7
        local.close()
        # with the service down a temporary front serves the same path
        with endpoint(cfg) as ep:
            assert ep.temporary
            c = http_client(ep)
            assert c.command("SELECT sum(a) FROM marts.kept") == 7
            c.close()
        res = run_cli("clickhouse", "query", "SELECT * FROM marts.nope", env=lh_env)
        assert res.returncode == 1 and "UNKNOWN_TABLE" in res.stderr
    finally:
        down(cfg, ["clickhouse"])


def test_statement_analysis() -> None:
    s = analyze(b"SELECT 1 AS format FROM t FORMAT JSONEachRow")
    assert s.kind == "SELECT" and s.output_format == "JSONEachRow" and s.returns_rows
    assert analyze("select format('{}', 'x') -- FORMAT CSV\n").output_format is None
    assert analyze("SELECT 'FORMAT CSV' FORMAT `CSV` SETTINGS max_threads=1;").output_format == "CSV"
    assert analyze("/* c */ (SELECT 1)").kind == "("
    assert analyze("  ").is_empty and not analyze("CREATE TABLE x (a UInt8) ENGINE=Memory").returns_rows

    body = b"INSERT INTO t (a, `format`) SETTINGS async_insert=0 FORMAT Native\n\t\x00\x01binary"
    s = analyze(body)
    assert s.has_inline_data and s.insert_format == "Native"
    assert body[: s.insert_prefix_end].rstrip() == b"INSERT INTO t (a, `format`) SETTINGS async_insert=0"
    assert body[s.data_start:] == b"\t\x00\x01binary"
    s = analyze(b"INSERT INTO t FORMAT TSV 1\t2")
    assert b"INSERT INTO t FORMAT TSV 1\t2"[s.data_start:] == b"1\t2"
    assert not analyze("INSERT INTO t SELECT * FROM format(CSV, 'a')").has_inline_data
    # VALUES rows are inline data too: chdb gets them as data, never as SQL
    sql = b"INSERT INTO t (a) VALUES (1), ('x; DROP TABLE t')"
    s = analyze(sql)
    assert s.has_inline_data and s.insert_format == "Values"
    assert sql[: s.insert_prefix_end].rstrip() == b"INSERT INTO t (a)"
    assert sql[s.data_start:] == b" (1), ('x; DROP TABLE t')"
    assert analyze("INSERT INTO t FORMAT Values (1)").insert_format == "Values"
    assert not analyze("INSERT INTO `values` SELECT 1").has_inline_data


def test_orphaned_temporary_front_exits_and_frees_the_data_path(lh_env, cfg) -> None:
    """A job killed while its temporary front runs must not leave the chdb path locked."""
    script = (
        "from lakehouse.config import get_config\n"
        "from lakehouse.clickhouse.front import temporary_front\n"
        "import time\n"
        "with temporary_front(get_config()) as ep:\n"
        "    print(ep.port, flush=True)\n"
        "    time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, **lh_env})
    try:
        port = int(parent.stdout.readline())
        fronts = [p for p in psutil.Process(parent.pid).children() if "clickhouse serve" in " ".join(p.cmdline())]
        assert len(fronts) == 1
        os.kill(parent.pid, signal.SIGKILL)  # no cleanup runs in the parent
        parent.wait(timeout=10)
        gone, alive = psutil.wait_procs(fronts, timeout=20)
        assert not alive, f"temporary front on port {port} outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
    with endpoint(cfg) as ep:  # the path is free again
        assert ep.temporary
        c = http_client(ep)
        assert c.command("SELECT 1") == 1
        c.close()

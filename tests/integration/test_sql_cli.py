"""`lakehouse sql`: DuckDB with the REST catalog attached as `lake`, through the real CLI, in embedded
mode (file warehouse, in-process catalog) and services mode (S3 warehouse on SeaweedFS, catalog service),
after a real ingest and `lakehouse transform lake`."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess

import pyarrow.parquet as pq
import pytest
from conftest import BIN, ROOT, applied_env, cli_ok, isolated_env, run_cli

IBM_ROWS = 3270
WIDE = {"COLUMNS": "200"}


@pytest.fixture(scope="module")
def lake_with_features(tmp_path_factory):
    """Embedded mode: IBM from the sample ingested and its features built."""
    with applied_env(isolated_env(tmp_path_factory.mktemp("sqlcli") / "home")):
        cli_ok(run_cli("ingest", "--source", "sample", "--tickers", "IBM"))
        cli_ok(run_cli("transform", "lake", env=WIDE))
        yield


def test_query_prints_a_table(lake_with_features):
    out = cli_ok(run_cli("sql", "SELECT ticker, count(*) AS n, max(trade_date) AS last_day "
                      "FROM lake.features.fct_daily_features GROUP BY ticker", env=WIDE))
    assert "ticker" in out and "IBM" in out and str(IBM_ROWS) in out and "2013-03-01" in out
    assert "1 row" in out


def test_csv_to_stdout_json_and_parquet_to_files(lake_with_features, tmp_path):
    out = cli_ok(run_cli("sql", "SELECT trade_date, adj_close, rsi_14 FROM lake.features.fct_daily_features "
                      "ORDER BY trade_date LIMIT 3", "--format", "csv"))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["trade_date"] for r in rows] == ["2000-03-01", "2000-03-02", "2000-03-03"]
    assert rows[0]["rsi_14"] == ""  # NULL until 14 changes are known

    js = tmp_path / "q.json"
    cli_ok(run_cli("sql", "SELECT ticker, trade_date, close FROM lake.raw.quotes ORDER BY trade_date DESC LIMIT 2",
                "--format", "json", "--output", str(js)))
    lines = [json.loads(line) for line in js.read_text().splitlines()]
    assert [d["trade_date"] for d in lines] == ["2013-03-01", "2013-02-28"] and lines[0]["ticker"] == "IBM"

    pqf = tmp_path / "features.parquet"
    cli_ok(run_cli("sql", "SELECT * FROM lake.features.fct_daily_features", "-f", "parquet", "-o", str(pqf)))
    table = pq.read_table(pqf)
    assert table.num_rows == IBM_ROWS and "target_return_5d" in table.column_names


def test_shell_runs_a_piped_script_with_dot_commands(lake_with_features):
    script = (".tables\nSELECT count(*) AS n\n  FROM lake.raw.quotes;\n"
              "SELECT 'a;b' AS text; -- a ';' in a string or comment ends nothing\n.quit\nSELECT 'never';\n")
    proc = subprocess.run([str(BIN / "lakehouse"), "sql"], input=script, capture_output=True, text=True,
                          env={**os.environ, **WIDE}, cwd=ROOT, timeout=300)
    out = cli_ok(proc)
    assert "fct_daily_features" in out and "quotes" in out  # .tables
    assert str(IBM_ROWS) in out and "a;b" in out and "never" not in out


def test_errors_are_clear_and_exit_non_zero(lake_with_features):
    bad = run_cli("sql", "SELECT * FROM lake.features.no_such_table")
    assert bad.returncode == 1 and "no_such_table" in bad.stderr
    fmt = run_cli("sql", "SELECT 1", "--format", "xml")
    assert fmt.returncode == 2 and "unknown --format 'xml'" in fmt.stderr
    parquet = run_cli("sql", "SELECT 1", "--format", "parquet")
    assert parquet.returncode == 1 and "needs --output" in parquet.stderr


def test_services_mode_s3_warehouse(tmp_path_factory):
    """Objectstore + catalog services; the dbt profile and `lakehouse sql` carry the S3 secret."""
    from lakehouse.services.supervisor import down, up

    env = {**isolated_env(tmp_path_factory.mktemp("sqls3") / "home"), "LAKEHOUSE_GENERAL__MODE": "services"}
    with applied_env(env) as cfg:
        assert cfg.warehouse_uri.startswith("s3://")
        try:
            up(cfg, ["catalog"], echo=lambda *_: None)
            cli_ok(run_cli("ingest", "--source", "sample", "--tickers", "IBM"))
            cli_ok(run_cli("transform", "lake", env=WIDE))
            out = cli_ok(run_cli("sql", "SELECT count(*) AS n, min(trade_date) AS first_day "
                              "FROM lake.features.fct_daily_features", "--format", "csv"))
            assert out.splitlines()[1] == f"{IBM_ROWS},2000-03-01"
            from lakehouse.lake import open_lake

            with open_lake(cfg) as lake:
                tbl = lake.catalog.load_table("features.fct_daily_features")
                assert tbl.location().startswith(f"s3://{cfg.objectstore.bucket}/")
                assert tbl.scan().to_arrow().num_rows == IBM_ROWS
        finally:
            down(cfg, echo=lambda *_: None)

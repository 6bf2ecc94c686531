"""Ingestion in services mode: the warehouse on S3 (SeaweedFS started by the supervisor)."""

from __future__ import annotations

import pyarrow.compute as pc
from rich.console import Console

from lakehouse.config import get_config
from lakehouse.lake import open_lake
from lakehouse.services.objectstore import s3_client
from lakehouse.services.supervisor import down, up
from lakehouse.stages.ingest.run import run_ingest


def test_sample_loads_into_s3_warehouse_idempotently(lh_env, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_GENERAL__MODE", "services")
    cfg = get_config(reload=True)
    assert cfg.warehouse_uri.startswith("s3://")
    try:
        up(cfg, ["objectstore"], echo=lambda *a: None)
        quiet = Console(quiet=True)
        first = run_ingest(cfg, "sample", console=quiet)
        assert first.ok and first.rows_loaded == 12_154
        again = run_ingest(cfg, "sample", tickers=["IBM"], start="2013-01-01", end="2013-12-31", console=quiet)
        assert again.rows_loaded == 41
        with open_lake(cfg) as lake:
            tbl = lake.catalog.load_table("raw.quotes")
            assert tbl.location().startswith(cfg.warehouse_uri)
            data = tbl.scan().to_arrow()
        assert data.num_rows == 12_154
        assert pc.sum(pc.equal(data["load_id"], again.load_ids[0])).as_py() == 41
        keys = s3_client(cfg).list_objects_v2(Bucket=cfg.objectstore.bucket, Prefix="warehouse/")
        assert any(o["Key"].endswith(".parquet") for o in keys.get("Contents", []))
    finally:
        down(cfg, echo=lambda *a: None)

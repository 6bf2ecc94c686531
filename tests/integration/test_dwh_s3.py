"""Services mode: the marts read the lake from the S3 object store (SeaweedFS, which checks
credentials) through icebergS3 and a named collection; no secret reaches compiled SQL or dbt logs."""

from __future__ import annotations

from pathlib import Path

from lakehouse.config import get_config
from lakehouse.lake import open_lake
from lakehouse.services.supervisor import down, up
from lakehouse.stages.transform_dwh import build, state_dir
from tests.dwh_support import N_DAYS, build_small_lake, stage_quotes


def test_marts_from_an_s3_lake(lh_env, monkeypatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_GENERAL__MODE", "services")
    cfg = get_config(reload=True)
    try:
        up(cfg, ["objectstore"])
        with open_lake(cfg) as lake:
            build_small_lake(lake.catalog)
            stage_quotes(cfg)
            assert lake.catalog.load_table("staging.stg_quotes").location().startswith("s3://")
        res = build(cfg)
        assert res.ok, res.errors[-10:]
        assert res.lake["staging.stg_quotes"].storage == "s3"
        assert res.row_counts["mart_daily_prices"] == 3 * N_DAYS
        assert res.row_counts["mart_latest_forecast"] == 3
        secret = cfg.objectstore.secret_key
        leaked = [p for p in Path(state_dir(cfg)).rglob("*") if p.is_file() and secret in p.read_text(errors="ignore")]
        assert leaked == []
    finally:
        down(cfg)
        get_config(reload=True)

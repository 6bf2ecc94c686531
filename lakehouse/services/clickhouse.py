"""The ClickHouse front service: chdb behind ClickHouse's HTTP interface (``python -m lakehouse.clickhouse``)."""

from __future__ import annotations

import sys

from lakehouse.config import Config
from lakehouse.services.registry import Service, register


def _command(cfg: Config) -> list[str]:
    ch = cfg.clickhouse
    return [sys.executable, "-m", "lakehouse.clickhouse", "--host", ch.host, "--port", str(ch.port)]


CLICKHOUSE = register(
    Service(
        name="clickhouse",
        section="clickhouse",
        command=_command,
        health_path="/ping",
        description="ClickHouse HTTP front over chdb (marts database)",
        start_timeout=60.0,
        stop_grace=15.0,
        order=30,
    )
)

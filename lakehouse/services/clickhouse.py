"""The ClickHouse front service: chdb behind ClickHouse's HTTP interface (``lakehouse clickhouse serve``)."""

from __future__ import annotations

from lakehouse.config import Config
from lakehouse.services.registry import Service, lakehouse_cli, register


def _command(cfg: Config) -> list[str]:
    ch = cfg.clickhouse
    return [*lakehouse_cli(), "clickhouse", "serve", "--host", ch.host, "--port", str(ch.port)]


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

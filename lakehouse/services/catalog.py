"""The catalog service: the Iceberg REST catalog server (``lakehouse catalog serve``)."""

from __future__ import annotations

from lakehouse.config import Config
from lakehouse.services.registry import Service, lakehouse_cli, register


def _command(cfg: Config) -> list[str]:
    c = cfg.catalog
    return [*lakehouse_cli(), "catalog", "serve", "--host", c.host, "--port", str(c.port)]


class _ObjectStoreWhenS3(tuple):
    """``depends_on`` that follows the configuration: the object store only for an s3:// warehouse."""

    def _deps(self) -> tuple[str, ...]:
        from lakehouse.config import get_config

        return ("objectstore",) if get_config().warehouse_uri.startswith("s3://") else ()

    def __iter__(self):  # noqa: ANN204
        return iter(self._deps())

    def __len__(self) -> int:
        return len(self._deps())

    def __contains__(self, item: object) -> bool:
        return item in self._deps()


CATALOG = register(
    Service(
        name="catalog",
        section="catalog",
        command=_command,
        health_path="/healthz",
        depends_on=_ObjectStoreWhenS3(),
        start_timeout=60.0,
        description="Iceberg REST catalog (FastAPI + uvicorn)",
        order=20,
    )
)

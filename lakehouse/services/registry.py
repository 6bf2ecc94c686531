"""Service declarations: adding a local service is one ``register(Service(...))`` call."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.config import Config
from lakehouse.net import http_ok


def lakehouse_cli() -> list[str]:
    """argv prefix running this environment's ``lakehouse`` CLI (services and child processes run it)."""
    exe = Path(sys.executable).parent / "lakehouse"
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from lakehouse.cli import app; app()"]


def _no_env(cfg: Config) -> dict[str, str]:
    return {}


def _no_ports(cfg: Config) -> list[int]:
    return []


@dataclass(frozen=True)
class Service:
    """One background service the supervisor can start, check and stop.

    ``section`` is the config section holding ``host`` and ``port``; ``command`` builds the argv;
    ``health_path`` is fetched over HTTP on that port, unless ``health`` says otherwise (a process
    without a port of its own, e.g. Airflow's scheduler, is healthy when its heartbeat is);
    ``listens`` is false for such a process (its section's port belongs to another one); ``extra_ports``
    lists other ports the process binds (checked for conflicts before start); ``prepare`` runs before
    start (write config files), ``after_start`` once healthy (create buckets, users). Services with the
    same ``group`` start and stop together under the group's name (``lakehouse up airflow``); ``hint``
    is a line ``lakehouse status`` prints (where to log in).
    """

    name: str
    section: str
    command: Callable[[Config], list[str]]
    health_path: str = "/"
    env: Callable[[Config], dict[str, str]] = _no_env
    extra_ports: Callable[[Config], list[int]] = _no_ports
    prepare: Callable[[Config], None] | None = None
    after_start: Callable[[Config], None] | None = None
    depends_on: tuple[str, ...] = ()
    start_timeout: float = 90.0
    stop_grace: float = 10.0
    description: str = ""
    order: int = field(default=100)
    health: Callable[[Config], bool] | None = None
    listens: bool = True
    group: str = ""
    hint: Callable[[Config], str] | None = None

    def host(self, cfg: Config) -> str:
        return getattr(cfg.settings, self.section).host

    def port(self, cfg: Config) -> int:
        return getattr(cfg.settings, self.section).port

    def url(self, cfg: Config) -> str:
        return f"http://{self.host(cfg)}:{self.port(cfg)}"

    def health_url(self, cfg: Config) -> str:
        return self.url(cfg) + self.health_path

    def healthy(self, cfg: Config) -> bool:
        """True when the service answers its health check."""
        return self.health(cfg) if self.health is not None else http_ok(self.health_url(cfg))

    def wait_healthy(self, cfg: Config, timeout: float, alive: Callable[[], bool] | None = None,
                     interval: float = 0.2) -> bool:
        """Poll the health check until it passes or ``timeout``; stop early when ``alive()`` turns False."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy(cfg):
                return True
            if alive is not None and not alive():
                return False
            time.sleep(interval)
        return False


_REGISTRY: dict[str, Service] = {}


def register(service: Service) -> Service:
    """Add a service to the registry (idempotent by name)."""
    _REGISTRY[service.name] = service
    return service


def all_services() -> list[Service]:
    """Registered services in start order."""
    _load_builtin()
    return sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name))


def expand(names: list[str]) -> list[str]:
    """Service names with each group name (``airflow``) replaced by its members, in start order."""
    out: list[str] = []
    for n in names:
        members = [s.name for s in all_services() if s.group == n]
        for m in members or [n]:
            if m not in out:
                out.append(m)
    return out


def get_service(name: str) -> Service:
    """The service called ``name``; ValueError listing the known ones otherwise."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown service '{name}' (known: {', '.join(s.name for s in all_services())})")
    return _REGISTRY[name]


def _load_builtin() -> None:
    # Importing a service module registers its service.
    from lakehouse.services import airflow, catalog, clickhouse, mlflow, objectstore, superset  # noqa: F401

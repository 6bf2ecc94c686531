"""Provision Superset from the spec over its REST API (the core environment talks HTTP to it).

Steps, each idempotent: ask the ClickHouse front, as the read-only dashboard account, for the
columns of every dataset (a missing mart stops here with its name, before Superset is touched);
log in to Superset (``POST /api/v1/security/login`` gives a JWT), fetch a CSRF token with it
(``GET /api/v1/security/csrf_token/``; Superset checks it on every POST together with the session
cookie, which the client keeps); then import the bundle (``bundle.py``) through
``POST /api/v1/assets/import/``. The bundle is built in memory only: it holds the dashboard account's
password (see ``bundle.database_yaml`` for why there). Superset upserts each object by uuid, so a
second run changes nothing but timestamps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from lakehouse.config import Config
from lakehouse.dashboards import bundle, spec

log = logging.getLogger("lakehouse.dashboards")
TIMEOUT = httpx.Timeout(120.0, connect=10.0)


class ProvisionError(RuntimeError):
    """The dashboards could not be provisioned; the message says which step and why."""


class MartsMissing(ProvisionError):
    """The marts are not built yet (a fresh state dir): nothing to show until `lakehouse run`."""


@dataclass
class Provisioned:
    dashboard_id: int
    url: str


class SupersetClient:
    """A logged-in session on Superset's REST API (JWT plus CSRF token and session cookie)."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=TIMEOUT, headers={"Referer": self.base_url})
        res = self.http.post("/api/v1/security/login",
                             json={"username": user, "password": password, "provider": "db", "refresh": False})
        if res.status_code != 200:
            raise ProvisionError(f"Superset login as {user!r} failed: HTTP {res.status_code} {res.text[:200]}")
        self.http.headers["Authorization"] = f"Bearer {res.json()['access_token']}"
        res = self.http.get("/api/v1/security/csrf_token/")
        if res.status_code != 200:
            raise ProvisionError(f"Superset CSRF token: HTTP {res.status_code} {res.text[:200]}")
        self.http.headers["X-CSRFToken"] = res.json()["result"]

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> SupersetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        """GET a JSON document (``q`` given as a dict is encoded as Superset's rison-compatible JSON)."""
        if isinstance(params.get("q"), dict):
            params["q"] = _rison(params["q"])
        res = self.http.get(path, params=params)
        if res.status_code != 200:
            raise ProvisionError(f"GET {path}: HTTP {res.status_code} {res.text[:300]}")
        return res.json()

    def list_all(self, resource: str, **filters: str) -> list[dict[str, Any]]:
        """Every object of ``resource`` (``chart``, ``dataset``, ...) whose columns equal ``filters``."""
        q: dict[str, Any] = {"page_size": 100, "page": 0}
        if filters:
            q["filters"] = [{"col": k, "opr": "eq", "value": v} for k, v in filters.items()]
        out: list[dict[str, Any]] = []
        while True:
            doc = self.get(f"/api/v1/{resource}/", q=q)
            out += doc["result"]
            if len(out) >= doc["count"] or not doc["result"]:
                return out
            q["page"] += 1

    def import_assets(self, zip_data: bytes) -> None:
        res = self.http.post("/api/v1/assets/import/",
                             files={"bundle": ("lakehouse_dashboards.zip", zip_data, "application/zip")})
        if res.status_code != 200:
            raise ProvisionError(f"Superset assets import: HTTP {res.status_code} {res.text[:1500]}")


def _rison(value: Any) -> str:
    """Rison for the small documents Superset's list API takes (dicts, lists, strings, numbers)."""
    if isinstance(value, dict):
        return "(" + ",".join(f"{k}:{_rison(v)}" for k, v in value.items()) + ")"
    if isinstance(value, list):
        return "!(" + ",".join(_rison(v) for v in value) + ")"
    if isinstance(value, bool):
        return "!t" if value else "!f"
    if isinstance(value, int | float):
        return str(value)
    text = str(value).replace("!", "!!").replace("'", "!'")
    return f"'{text}'"


@dataclass
class Marts:
    """What the provisioner learns from the front: each dataset's (name, ClickHouse type) columns, and
    the first ticker (the filter's preset; None when the marts hold no prices yet)."""

    columns: dict[str, list[tuple[str, str]]]
    first_ticker: str | None


def inspect_marts(cfg: Config) -> Marts:
    """Read every dataset's columns from the ClickHouse front, as the dashboard account."""
    from lakehouse.clickhouse.front import dashboard_endpoint, endpoint, http_client

    out: dict[str, list[tuple[str, str]]] = {}
    with endpoint(cfg) as ep:
        if ep.temporary:  # Superset's connection points at the configured port: the service must answer there
            raise ProvisionError(f"the ClickHouse front does not answer on {cfg.clickhouse.url}: start it first "
                                 "(`lakehouse up clickhouse`)")
        client = http_client(dashboard_endpoint(ep, cfg))
        try:
            existing = {str(row[0]) for row in client.query(
                "SELECT name FROM system.tables WHERE database = {db:String}", parameters={"db": spec.SCHEMA},
            ).result_rows}
            missing = sorted(d.table for d in spec.DATASETS if d.table and d.table not in existing)
            if missing:
                raise MartsMissing(f"the marts {', '.join(missing)} do not exist yet: build them with `lakehouse run`")
            for ds in spec.DATASETS:
                source = f"({ds.sql})" if ds.is_virtual else f"{spec.SCHEMA}.{ds.table}"
                try:
                    res = client.query(f"SELECT * FROM {source} AS t LIMIT 0")
                except Exception as exc:  # noqa: BLE001 - clickhouse-connect raises several kinds
                    why = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
                    raise ProvisionError(
                        f"dataset {ds.name}: the ClickHouse front cannot read it as '{cfg.clickhouse.dashboard_user}'"
                        f" ({why}); build the marts first (`lakehouse run`)") from exc
                cols = [(n, t.name) for n, t in zip(res.column_names, res.column_types, strict=True)]
                if ds.is_virtual and tuple(n for n, _ in cols) != ds.columns:
                    raise ProvisionError(f"dataset {ds.name}: its SQL returns {[n for n, _ in cols]}, the spec "
                                         f"declares {list(ds.columns)}")
                out[ds.name] = cols
            d = spec.DASHBOARD
            table = spec.dataset(d.filter_dataset).table
            first = client.command(f"SELECT min({d.filter_column}) FROM {spec.SCHEMA}.{table}")
        finally:
            client.close()
    return Marts(out, str(first) if first else None)


def documents(cfg: Config, marts: Marts) -> dict[str, dict[str, Any]]:
    """The bundle's files for this configuration: the database points at the configured front."""
    ch = cfg.clickhouse
    db = bundle.database_yaml(ch.host, ch.port, ch.dashboard_user, ch.dashboard_password, ch.database)
    return bundle.files(db, marts.columns, marts.first_ticker)


def provision_if_running(cfg: Config) -> str:
    """After the marts were rebuilt: provision again when Superset runs (new marts, changed columns).

    Returns a note for the stage's summary; a failure here is reported, not raised: the marts are built.
    """
    from lakehouse.services.supervisor import is_running

    if not is_running(cfg, "superset"):
        return ""
    try:
        provision(cfg)
    except Exception as exc:  # noqa: BLE001 - any Superset/ClickHouse problem is a note, never a failed marts build
        return f"Superset dashboard not provisioned ({type(exc).__name__}): {exc}"
    return "Superset dashboard provisioned"


def provision(cfg: Config) -> Provisioned:
    """Import the spec into the running Superset; return the dashboard's id and URL."""
    marts = inspect_marts(cfg)
    s = cfg.superset
    with SupersetClient(s.url, s.admin_user, s.admin_password) as client:
        client.import_assets(bundle.zip_bytes(documents(cfg, marts)))
        found = client.list_all("dashboard", slug=spec.DASHBOARD.slug)
    if len(found) != 1:
        raise ProvisionError(f"after the import Superset lists {len(found)} dashboards '{spec.DASHBOARD.slug}'")
    url = f"{s.url}/superset/dashboard/{spec.DASHBOARD.slug}/"
    log.info("dashboard %r provisioned: %s", spec.DASHBOARD.title, url)
    return Provisioned(found[0]["id"], url)

"""The platform's one configuration: ``lakehouse.toml`` plus ``LAKEHOUSE_*`` environment variables.

Everything else in the project asks this module for ports, paths, credentials and URLs.

Precedence, lowest to highest: built-in defaults, ``lakehouse.toml``, environment variables
``LAKEHOUSE_<SECTION>__<KEY>`` (nested: ``LAKEHOUSE_SOURCES__MOEX__BASE_URL``). Secrets left
empty are generated once into ``$LAKEHOUSE_HOME/secrets.json`` and reused. Every value keeps
the source it came from, so errors and ``lakehouse config show`` can name it.
"""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "LAKEHOUSE_"
CONFIG_FILE_NAME = "lakehouse.toml"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key and its source."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class GeneralConfig(_Section):
    mode: Literal["embedded", "services"] = "embedded"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class _Service(_Section):
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)

    @property
    def url(self) -> str:
        """Base HTTP URL of the service."""
        return f"http://{self.host}:{self.port}"


class ObjectStoreConfig(_Service):
    port: int = Field(8333, ge=1, le=65535)
    master_port: int = Field(9333, ge=1, le=65535)
    volume_port: int = Field(9340, ge=1, le=65535)
    filer_port: int = Field(8888, ge=1, le=65535)
    admin_port: int = Field(23646, ge=1, le=65535)
    bucket: str = Field("lakehouse", min_length=3, pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$")
    region: str = "us-east-1"
    access_key: str = ""
    secret_key: str = ""


class CatalogConfig(_Service):
    port: int = Field(8181, ge=1, le=65535)
    db: str = ""
    warehouse: str = ""
    warehouse_name: str = Field("lakehouse", min_length=1)
    auth: bool = False
    token_ttl_seconds: int = Field(3600, ge=1)
    token_secret: str = ""
    clients: dict[str, str] = Field(default_factory=dict)
    platform_secret: str = ""


class ClickHouseConfig(_Service):
    port: int = Field(8123, ge=1, le=65535)
    user: str = Field("lakehouse", min_length=1)
    password: str = ""
    database: str = Field("marts", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class MlflowConfig(_Service):
    port: int = Field(5000, ge=1, le=65535)
    experiment: str = "stock_forecast"
    model_name: str = "stock_forecaster"
    tracking_uri: str = ""
    retrain: Literal["never", "weekly", "always"] = "weekly"
    models: list[str] = Field(default_factory=lambda: ["naive", "drift", "ridge", "hist_gbr"])
    cv_folds: int = Field(5, ge=1)
    cv_test_days: int = Field(63, ge=5)
    min_history_days: int = Field(250, ge=20)
    plot_tickers: int = Field(10, ge=0)

    _models = field_validator("models", mode="before")(lambda v: _split_models(v))
    _retrain = field_validator("retrain", mode="before")(lambda v: _retrain_policy(v))


class AirflowConfig(_Service):
    port: int = Field(8080, ge=1, le=65535)
    admin_user: str = "admin"
    admin_password: str = ""
    #: the Airflow virtualenv (empty: .venvs/airflow in the project)
    venv: str = ""
    #: cron of the quotes_ingest DAG (weekdays after the market closes) and of the weekly train_models run
    ingest_schedule: str = "0 22 * * 1-5"
    train_schedule: str = "0 6 * * 6"
    timezone: str = Field("UTC", min_length=1)
    #: retries of the ingest task, the first wait and the cap of its exponential backoff
    ingest_retries: int = Field(3, ge=0, le=20)
    ingest_retry_delay_seconds: float = Field(60, ge=1)
    ingest_max_retry_delay_seconds: float = Field(1800, ge=1)
    #: task slots of the LocalExecutor, each a worker process (~110 MB); runs of different DAGs may overlap
    #: (train_models and predict start together), one run per DAG at a time
    parallelism: int = Field(2, ge=1, le=64)

    _crons = field_validator("ingest_schedule", "train_schedule")(lambda v: _cron(v))
    _timezone = field_validator("timezone")(lambda v: _timezone_name(v))


class SupersetConfig(_Service):
    port: int = Field(8088, ge=1, le=65535)
    admin_user: str = "admin"
    admin_password: str = ""
    secret_key: str = ""


def _retrain_policy(value: Any) -> Any:
    """Accept the old boolean form: true -> "always", false -> "never"."""
    if isinstance(value, bool):
        return "always" if value else "never"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return "always" if value.strip().lower() == "true" else "never"
    return value


def _cron(value: str) -> str:
    """A five-field cron expression (minute hour day-of-month month day-of-week); Airflow checks the fields."""
    if len(value.split()) != 5:
        raise ValueError(f"{value!r} is not a cron expression with 5 fields (minute hour day month weekday)")
    return " ".join(value.split())


def _timezone_name(value: str) -> str:
    """An IANA time zone name (``UTC``, ``America/New_York``)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an IANA time zone name (e.g. UTC, America/New_York)") from exc
    return value


def _split_models(value: Any) -> Any:
    if isinstance(value, str):
        return [m.strip() for m in value.split(",") if m.strip()]
    return value


def _split_tickers(value: Any) -> Any:
    if isinstance(value, str):
        return [t.strip().upper() for t in value.split(",") if t.strip()]
    return value


class SampleSourceConfig(_Section):
    tickers: list[str] = Field(default_factory=lambda: ["AAPL", "GOOG", "IBM", "MSFT", "FB"])
    end: str = ""

    _tickers = field_validator("tickers", mode="before")(_split_tickers)


class MoexSourceConfig(_Section):
    base_url: str = "https://iss.moex.com"
    board: str = "TQBR"
    tickers: list[str] = Field(default_factory=lambda: ["SBER", "GAZP", "LKOH"])
    start: str = "2015-01-01"
    timeout_seconds: float = Field(30, gt=0)

    _tickers = field_validator("tickers", mode="before")(_split_tickers)


class YahooSourceConfig(_Section):
    base_url: str = "https://query1.finance.yahoo.com"
    tickers: list[str] = Field(default_factory=lambda: ["AAPL", "MSFT"])
    start: str = "2015-01-01"
    timeout_seconds: float = Field(30, gt=0)

    _tickers = field_validator("tickers", mode="before")(_split_tickers)


class SyntheticSourceConfig(_Section):
    n_tickers: int = Field(50, ge=1, le=10000)
    start: str = "2005-01-03"


class SourcesConfig(_Section):
    default: Literal["sample", "moex", "yahoo"] = "sample"
    max_retries: int = Field(5, ge=0, le=20)
    backoff_base_seconds: float = Field(0.5, ge=0)
    backoff_max_seconds: float = Field(30, ge=0)
    sample: SampleSourceConfig = Field(default_factory=SampleSourceConfig)
    moex: MoexSourceConfig = Field(default_factory=MoexSourceConfig)
    yahoo: YahooSourceConfig = Field(default_factory=YahooSourceConfig)
    synthetic: SyntheticSourceConfig = Field(default_factory=SyntheticSourceConfig)


class Settings(_Section):
    """All sections of the configuration, validated."""

    general: GeneralConfig = Field(default_factory=GeneralConfig)
    objectstore: ObjectStoreConfig = Field(default_factory=ObjectStoreConfig)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    clickhouse: ClickHouseConfig = Field(default_factory=ClickHouseConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    airflow: AirflowConfig = Field(default_factory=AirflowConfig)
    superset: SupersetConfig = Field(default_factory=SupersetConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)


#: Secrets generated into the state dir when left empty: (section, key) -> generator.
GENERATED_SECRETS: dict[tuple[str, str], Any] = {
    ("objectstore", "access_key"): lambda: "LH" + secrets.token_hex(9).upper(),
    ("objectstore", "secret_key"): lambda: secrets.token_urlsafe(30),
    ("catalog", "token_secret"): lambda: secrets.token_urlsafe(32),
    ("catalog", "platform_secret"): lambda: secrets.token_urlsafe(24),
    ("clickhouse", "password"): lambda: secrets.token_urlsafe(18),
    ("airflow", "admin_password"): lambda: secrets.token_urlsafe(12),
    ("superset", "admin_password"): lambda: secrets.token_urlsafe(12),
    ("superset", "secret_key"): lambda: secrets.token_urlsafe(42),
}
SECRET_KEYS = {f"{s}.{k}" for s, k in GENERATED_SECRETS} | {"catalog.clients"}


@dataclass
class Config:
    """Effective configuration: validated settings, the state dir, and where each value came from."""

    settings: Settings
    home: Path
    config_file: Path | None
    sources: dict[str, str] = field(default_factory=dict)

    # Section shortcuts -------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.settings.general.mode

    @property
    def general(self) -> GeneralConfig:
        return self.settings.general

    @property
    def objectstore(self) -> ObjectStoreConfig:
        return self.settings.objectstore

    @property
    def catalog(self) -> CatalogConfig:
        return self.settings.catalog

    @property
    def clickhouse(self) -> ClickHouseConfig:
        return self.settings.clickhouse

    @property
    def mlflow(self) -> MlflowConfig:
        return self.settings.mlflow

    @property
    def airflow(self) -> AirflowConfig:
        return self.settings.airflow

    @property
    def superset(self) -> SupersetConfig:
        return self.settings.superset

    @property
    def sources_config(self) -> SourcesConfig:
        return self.settings.sources

    # Paths in the state dir --------------------------------------------------------
    def path(self, *parts: str, create: bool = False) -> Path:
        """A path inside the state dir; ``create=True`` makes it a directory."""
        p = self.home.joinpath(*parts)
        if create:
            p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def logs_dir(self) -> Path:
        return self.path("logs", create=True)

    @property
    def run_dir(self) -> Path:
        return self.path("run", create=True)

    @property
    def warehouse_dir(self) -> Path:
        return self.path("warehouse")

    @property
    def chdb_path(self) -> Path:
        return self.path("chdb")

    @property
    def mlflow_dir(self) -> Path:
        return self.path("mlflow")

    # Derived values -----------------------------------------------------------------
    @property
    def s3_endpoint(self) -> str:
        """URL of the S3 API of the object store."""
        return self.objectstore.url

    @property
    def catalog_db_url(self) -> str:
        """SQLAlchemy URL of the catalog database."""
        if self.catalog.db:
            return self.catalog.db
        return f"sqlite:///{self.path('catalog', create=True) / 'catalog.db'}"

    @property
    def warehouse_uri(self) -> str:
        """Root URI for new tables: a file URI in embedded mode, s3:// in services mode."""
        if self.catalog.warehouse:
            return self.catalog.warehouse.rstrip("/")
        if self.mode == "services":
            return f"s3://{self.objectstore.bucket}/warehouse"
        return self.warehouse_dir.as_uri()

    @property
    def catalog_uri(self) -> str:
        """Base URI of the catalog service (the REST API lives under ``/v1``)."""
        return self.catalog.url

    def source_of(self, dotted_key: str) -> str:
        """Where the value of ``section.key`` came from."""
        return self.sources.get(dotted_key, "built-in default")

    def flat(self) -> dict[str, Any]:
        """Effective values as ``{"section.key": value}``."""
        return _flatten(self.settings.model_dump())

    @cached_property
    def telemetry_env(self) -> dict[str, str]:
        """Environment variables that turn telemetry off in every tool the platform runs."""
        return telemetry_off_env()


def telemetry_off_env() -> dict[str, str]:
    """Environment that disables dlt, dbt, MLflow and other telemetry."""
    return {
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "SCARF_ANALYTICS": "false",
        "SUPERSET_TELEMETRY": "false",
    }


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and not key.endswith("clients"):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def find_config_file(env: dict[str, str]) -> Path | None:
    """``LAKEHOUSE_CONFIG``, else ``lakehouse.toml`` in the cwd or a parent, else the project's own."""
    explicit = env.get("LAKEHOUSE_CONFIG")
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise ConfigError(f"config file {p} (from env LAKEHOUSE_CONFIG) does not exist")
        return p.resolve()
    cwd = Path.cwd()
    for d in (cwd, *cwd.parents):
        if (d / CONFIG_FILE_NAME).is_file():
            return (d / CONFIG_FILE_NAME).resolve()
    packaged = PACKAGE_ROOT / CONFIG_FILE_NAME
    return packaged if packaged.is_file() else None


def _section_model(path: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = Settings
    for part in path:
        f = model.model_fields.get(part)
        if f is None:
            return None
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return None
    return model


def _env_overrides(env: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse ``LAKEHOUSE_<SECTION>__<KEY>`` variables into a nested dict, checking the names."""
    data: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        if any(not p for p in parts) or len(parts) < 2:
            raise ConfigError(f"environment variable {name}: expected LAKEHOUSE_<SECTION>__<KEY>")
        section_model = _section_model(parts[:-1])
        if section_model is None:
            raise ConfigError(
                f"environment variable {name}: unknown config section '{'.'.join(parts[:-1])}'"
            )
        if parts[-1] not in section_model.model_fields:
            raise ConfigError(
                f"environment variable {name}: unknown key '{parts[-1]}' in section "
                f"[{'.'.join(parts[:-1])}] (known: {', '.join(sorted(section_model.model_fields))})"
            )
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = _parse_env_value(value)
        origin[".".join(parts)] = f"env {name}"
    return data, origin


def _parse_env_value(value: str) -> Any:
    """Accept TOML literals (arrays, inline tables, booleans); everything else stays a string."""
    stripped = value.strip()
    if stripped[:1] in "[{" and stripped:
        try:
            return tomllib.loads(f"v = {stripped}")["v"]
        except tomllib.TOMLDecodeError:
            return value
    return value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "clients":
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _file_origins(data: dict[str, Any], label: str, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not key.endswith("clients"):
            out.update(_file_origins(v, label, key + "."))
        else:
            out[key] = label
    return out


def _check_file_keys(data: dict[str, Any], label: str, path: list[str] | None = None) -> None:
    path = path or []
    model = _section_model(path)
    if model is None:
        return
    for k, v in data.items():
        if k not in model.model_fields:
            where = f"[{'.'.join(path)}]" if path else "top level"
            raise ConfigError(f"{label}: unknown key '{k}' in {where}")
        if isinstance(v, dict) and _section_model([*path, k]) is not None:
            _check_file_keys(v, label, [*path, k])


def _load_secrets(home: Path) -> dict[str, str]:
    p = home / "secrets.json"
    if not p.exists():
        return {}
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"generated secrets file {p} is unreadable: {exc}") from exc


def _store_secrets(home: Path, values: dict[str, str]) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    p = home / "secrets.json"
    tmp = p.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f, indent=2, sort_keys=True)
    os.replace(tmp, p)
    return p


def load_config(env: dict[str, str] | None = None, config_file: Path | None = None) -> Config:
    """Read the configuration from the file and the environment; raise ConfigError naming bad keys."""
    env = dict(os.environ if env is None else env)
    cfg_path = config_file.resolve() if config_file else find_config_file(env)
    file_data: dict[str, Any] = {}
    label = "built-in default"
    if cfg_path is not None:
        label = str(cfg_path)
        try:
            file_data = tomllib.loads(cfg_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{cfg_path} is not valid TOML: {exc}") from exc
        _check_file_keys(file_data, label)
    env_data, env_origin = _env_overrides(env)
    origins = _file_origins(file_data, label)
    origins.update(env_origin)
    merged = _merge(file_data, env_data)

    home_env = env.get("LAKEHOUSE_HOME")
    base_dir = cfg_path.parent if cfg_path else Path.cwd()
    home = Path(home_env).expanduser() if home_env else base_dir / ".lakehouse"
    home = (home if home.is_absolute() else Path.cwd() / home).resolve()

    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, merged, origins)) from exc

    _fill_generated_secrets(settings, home, origins)
    return Config(settings=settings, home=home, config_file=cfg_path, sources=origins)


def _fill_generated_secrets(settings: Settings, home: Path, origins: dict[str, str]) -> None:
    missing = [(s, k) for (s, k) in GENERATED_SECRETS if not getattr(getattr(settings, s), k)]
    if not missing:
        return
    stored = _load_secrets(home)
    changed = False
    for s, k in missing:
        key = f"{s}.{k}"
        if key not in stored:
            stored[key] = GENERATED_SECRETS[(s, k)]()
            changed = True
        setattr(getattr(settings, s), k, stored[key])
        origins[key] = f"generated ({home / 'secrets.json'})"
    if changed:
        _store_secrets(home, stored)


def _explain(exc: ValidationError, merged: dict[str, Any], origins: dict[str, str]) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
        key = ".".join(loc)
        node: Any = merged
        for p in loc:
            node = node.get(p) if isinstance(node, dict) else None
        src = origins.get(key, "built-in default")
        if err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key (from {src})")
        else:
            lines.append(f"  {key} = {node!r} (from {src}): {err['msg']}")
    return "\n".join(lines)


_CACHED: Config | None = None


def get_config(reload: bool = False) -> Config:
    """The process-wide configuration, loaded once from the file and ``os.environ``."""
    global _CACHED
    if _CACHED is None or reload:
        _CACHED = load_config()
    return _CACHED


def clear_config_cache() -> None:
    """Forget the process-wide configuration; the next ``get_config()`` reads it again."""
    global _CACHED
    _CACHED = None


def mask(key: str, value: Any) -> Any:
    """Hide secret values for display."""
    if key in SECRET_KEYS and value:
        if isinstance(value, dict):
            return {k: "****" for k in value}
        return "****"
    return value

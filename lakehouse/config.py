"""The platform's one configuration: ``lakehouse.toml`` plus ``LAKEHOUSE_*`` environment variables.

Everything else in the project asks this module for ports, paths, credentials and URLs.

Loading is pydantic-settings: :class:`Settings` is one ``BaseSettings`` tree whose sources are declared
in :meth:`Settings.settings_customise_sources`, highest priority first: init arguments, environment
variables ``LAKEHOUSE_<SECTION>__<KEY>`` (nested: ``LAKEHOUSE_SOURCES__MOEX__BASE_URL``; values may be
TOML literals such as ``["AAPL", "IBM"]``), the TOML file (with the ``[profiles.<name>]`` that
``LAKEHOUSE_PROFILE`` selects laid over it, e.g. ``compose``), then the fields' defaults. Written here by
hand is only what the library does not do: every value keeps its origin (:attr:`Config.origins`, so
errors and ``lakehouse config show`` can name the file or variable), an unknown key or section exits
with a message naming it, and secrets left empty are generated once into
``$LAKEHOUSE_HOME/secrets.json`` (0600) and reused. Secrets are plain ``str`` fields, not ``SecretStr``:
the services, the catalog and the ClickHouse front hand them to other programs as strings in many
places; instead no message of this module prints a secret (:func:`mask` hides secret keys and the
password inside any URL, in ``config show`` and in errors).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "LAKEHOUSE_"
ENV_NESTED_DELIMITER = "__"
CONFIG_FILE_NAME = "lakehouse.toml"
#: Selects a ``[profiles.<name>]`` of the config file, laid over its sections (see LakehouseTomlSource).
PROFILE_ENV = "LAKEHOUSE_PROFILE"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key and its source."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def __repr_args__(self):  # noqa: ANN204 - pydantic's own signature
        """Secrets masked in ``repr`` too (tracebacks, test failures and debug logs print configs)."""
        for name, value in super().__repr_args__():
            yield name, (MASK if value and _is_secret_name(name or "") else _mask_url_passwords(value))


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
    #: the catalog runs elsewhere (compose's `catalog` service, a shared server): the platform's commands use
    #: it at host:port instead of the supervisor's service or an in-process one (lakehouse/lake.py)
    external: bool = False
    auth: bool = False
    token_ttl_seconds: int = Field(3600, ge=1)
    token_secret: str = ""
    clients: dict[str, str] = Field(default_factory=dict)
    platform_secret: str = ""
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    worker_threads: int = Field(16, ge=1)
    max_connections: int = Field(200, ge=1)


class ClickHouseConfig(_Service):
    port: int = Field(8123, ge=1, le=65535)
    user: str = Field("lakehouse", min_length=1)
    password: str = ""
    database: str = Field("marts", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    dashboard_user: str = Field("dashboard", min_length=1)
    dashboard_password: str = ""
    max_body_mb: int = Field(128, ge=1)
    max_decompressed_body_mb: int = Field(512, ge=1)
    max_connections: int = Field(32, ge=1, le=4096)
    keep_alive_timeout_seconds: float = Field(10, gt=0)

    @model_validator(mode="after")
    def _distinct_accounts(self) -> ClickHouseConfig:
        if self.dashboard_user == self.user:
            raise ValueError(f"dashboard_user must differ from user ('{self.user}'): they are two accounts")
        return self


class MlflowConfig(_Service):
    port: int = Field(5000, ge=1, le=65535)
    experiment: str = "stock_forecast"
    model_name: str = "stock_forecaster"
    tracking_uri: str = ""
    retrain: Literal["never", "weekly", "always"] = "weekly"
    models: list[str] = Field(default_factory=lambda: ["naive", "drift", "ridge", "hist_gbr"])
    retrain_every: Literal["month", "quarter", "year"] = "year"
    backtest_start: str = ""
    holdout_weeks: int = Field(52, ge=4)
    dm_pvalue_max: float = Field(0.10, gt=0, lt=1)
    min_history_days: int = Field(250, ge=20)
    plot_tickers: int = Field(10, ge=0)
    #: retries of one MLflow client request to the server (MLflow's own default of 7 with backoff waits
    #: about 5 minutes before a stage learns that the server, or the object store behind it, is gone)
    request_retries: int = Field(3, ge=0, le=10)

    _models = field_validator("models", mode="before")(lambda v: _split_models(v))
    _retrain = field_validator("retrain", mode="before")(lambda v: _retrain_policy(v))
    _backtest_start = field_validator("backtest_start")(lambda v: _iso_date_or_empty(v))


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
    admin_user: str = Field("admin", pattern=r"^[A-Za-z0-9._-]+$")
    admin_password: str = ""
    secret_key: str = ""
    #: the Superset virtualenv (empty: .venvs/superset in the project)
    venv: str = ""


def _retrain_policy(value: Any) -> Any:
    """Accept the old boolean form: true -> "always", false -> "never"."""
    if isinstance(value, bool):
        return "always" if value else "never"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return "always" if value.strip().lower() == "true" else "never"
    return value


def _iso_date_or_empty(value: str) -> str:
    """A YYYY-MM-DD date (kept as text) or empty."""
    value = value.strip()
    if value:
        import datetime as _dt

        try:
            _dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected a date YYYY-MM-DD or empty, got {value!r}") from None
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


class Settings(BaseSettings):
    """All sections of the configuration, validated; loaded from the sources declared below."""

    model_config = SettingsConfigDict(
        extra="forbid", validate_assignment=True, env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER, case_sensitive=False,
    )

    general: GeneralConfig = Field(default_factory=GeneralConfig)
    objectstore: ObjectStoreConfig = Field(default_factory=ObjectStoreConfig)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    clickhouse: ClickHouseConfig = Field(default_factory=ClickHouseConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    airflow: AirflowConfig = Field(default_factory=AirflowConfig)
    superset: SupersetConfig = Field(default_factory=SupersetConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest priority first: init arguments, ``LAKEHOUSE_*`` variables, the TOML file (then the
        fields' defaults). No ``.env`` file and no secrets dir: the one configuration is these two.

        The environment and the file are those of the :func:`load_config` call in progress (else
        ``os.environ`` and :func:`find_config_file`); each source's origins are handed back to it.
        """
        load = _LOADING.get() or _Load.from_environment()
        env = LakehouseEnvSource(settings_cls, load.env)
        file = LakehouseTomlSource(settings_cls, load.config_file, load.env.get(PROFILE_ENV, "").strip())
        load.origins = {**file.origins, **env.origins}
        return init_settings, env, file

    @model_validator(mode="after")
    def _defaults_by_mode(self) -> Settings:
        """``catalog.auth`` left unset follows the mode: on in services mode, where the catalog listens
        on a port for every client, off in embedded mode, where it runs in-process on loopback for
        one command."""
        if "auth" not in self.catalog.model_fields_set:
            self.catalog.auth = self.general.mode == "services"
        return self


#: Secrets generated into the state dir when left empty: (section, key) -> generator.
GENERATED_SECRETS: dict[tuple[str, str], Any] = {
    ("objectstore", "access_key"): lambda: "LH" + secrets.token_hex(9).upper(),
    ("objectstore", "secret_key"): lambda: secrets.token_urlsafe(30),
    ("catalog", "token_secret"): lambda: secrets.token_urlsafe(32),
    ("catalog", "platform_secret"): lambda: secrets.token_urlsafe(24),
    ("clickhouse", "password"): lambda: secrets.token_urlsafe(18),
    ("clickhouse", "dashboard_password"): lambda: secrets.token_urlsafe(18),
    ("airflow", "admin_password"): lambda: secrets.token_urlsafe(12),
    ("superset", "admin_password"): lambda: secrets.token_urlsafe(12),
    ("superset", "secret_key"): lambda: secrets.token_urlsafe(42),
}


def _section_model(path: list[str]) -> type[BaseModel] | None:
    """The section model at ``path`` (``["sources", "moex"]``), or None when ``path`` names no section."""
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


def _flatten(data: Mapping[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{"section.key": value}`` for a nested dict of settings: descends only into sections (so a
    dict-valued key such as ``catalog.clients`` stays one key, and an unknown table is one key)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        here = (*path, k)
        if isinstance(v, Mapping) and _section_model(list(here)) is not None:
            out.update(_flatten(v, here))
        else:
            out[".".join(here)] = v
    return out


def _keys_of(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every ``section.key`` the model declares."""
    out = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _keys_of(ann, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


_SECRET_NAME = re.compile(r"(password|secret|secret_key|access_key|token)$")


def _is_secret_name(name: str) -> bool:
    """A key named like a secret (``*password``, ``*secret``, ``*_key`` credentials, ``*token``, clients)."""
    return name == "clients" or bool(_SECRET_NAME.search(name))


#: Keys whose values are secrets: the generated ones, the client hashes, and every key named like a
#: secret (``*password``, ``*secret``, ``*_key`` credentials, ``*token``), also when added later.
SECRET_KEYS = frozenset(
    {f"{s}.{k}" for s, k in GENERATED_SECRETS} | {"catalog.clients"}
    | {k for k in _keys_of(Settings) if _is_secret_name(k.rsplit(".", 1)[-1])}
)


# --- The sources ------------------------------------------------------------------------------------
@dataclass
class _Load:
    """One load in progress: what it reads, and where each value came from (set by the sources)."""

    env: Mapping[str, str]
    config_file: Path | None
    origins: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls) -> _Load:
        env = dict(os.environ)
        return cls(env, find_config_file(env))


_LOADING: ContextVar[_Load | None] = ContextVar("lakehouse_config_load", default=None)


class LakehouseEnvSource(EnvSettingsSource):
    """``LAKEHOUSE_<SECTION>__<KEY>`` variables of a given environment.

    Differs from the library's source in three ways: a variable naming no known section or key is an
    error (a typo must not be ignored silently); a list or table value is read as a TOML literal, and
    any other text is passed on as is (the validators split ``"SBER, GAZP"``); variables without
    ``__`` (``LAKEHOUSE_HOME``, ``LAKEHOUSE_CONFIG``, ...) are not settings.
    """

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self.origins: dict[str, str] = {}
        self._settings_env = {n: v for n, v in env.items() if n.startswith(ENV_PREFIX) and ENV_NESTED_DELIMITER in n}
        for name in self._settings_env:
            self.origins[".".join(_env_key(name))] = f"env {name}"
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {n.lower(): v for n, v in self._settings_env.items()}

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        return parse_env_value(value)


def _env_key(name: str) -> list[str]:
    """The key path a ``LAKEHOUSE_*__*`` variable names; ConfigError when it names no known key."""
    parts = [p.lower() for p in name[len(ENV_PREFIX):].split(ENV_NESTED_DELIMITER)]
    if any(not p for p in parts) or len(parts) < 2:
        raise ConfigError(f"environment variable {name}: expected LAKEHOUSE_<SECTION>__<KEY>")
    section_model = _section_model(parts[:-1])
    if section_model is None:
        raise ConfigError(f"environment variable {name}: unknown config section '{'.'.join(parts[:-1])}'")
    if parts[-1] not in section_model.model_fields:
        raise ConfigError(
            f"environment variable {name}: unknown key '{parts[-1]}' in section "
            f"[{'.'.join(parts[:-1])}] (known: {', '.join(sorted(section_model.model_fields))})"
        )
    return parts


def parse_env_value(value: str) -> Any:
    """A TOML literal (array, inline table) as its value; any other text unchanged."""
    stripped = value.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return tomllib.loads(f"v = {stripped}")["v"]
        except tomllib.TOMLDecodeError:
            return value
    return value


class LakehouseTomlSource(TomlConfigSettingsSource):
    """The TOML file (none: no values); a syntax error names the file, each value records the file.

    The file may hold named profiles, ``[profiles.<name>.<section>]`` tables, and ``LAKEHOUSE_PROFILE=<name>``
    lays the chosen one over the file's sections (the environment still overrides both). A profile is a
    deployment of the same code elsewhere, e.g. ``compose``: the service hosts of the Docker network.
    Keeping profiles in the one file keeps one configuration: every value a deployment changes is next
    to its default, and ``lakehouse config show`` names the profile as each such value's origin.
    """

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None, profile: str = "") -> None:
        self.profile = profile
        self._profile_keys: set[str] = set()
        super().__init__(settings_cls, toml_file=path)
        if profile and path is None:
            raise ConfigError(f"{PROFILE_ENV}={profile}: there is no config file to hold [profiles.{profile}]")
        where = f"{path} [profiles.{profile}]"
        self.origins = {key: where if key in self._profile_keys else str(path) for key in _flatten(self.toml_data)}

    def _read_file(self, file_path: Path) -> dict[str, Any]:
        try:
            data = tomllib.loads(Path(file_path).read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file_path} is not valid TOML: {exc}") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {file_path} is unreadable: {exc}") from exc
        return self._with_profile(data, file_path)

    def _with_profile(self, data: dict[str, Any], file_path: Path) -> dict[str, Any]:
        """``data`` without its ``[profiles]`` table, the selected profile laid over its sections."""
        profiles = data.pop("profiles", {})
        if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
            raise ConfigError(f"{file_path}: [profiles] must hold one table per profile ([profiles.<name>])")
        if not self.profile:
            return data
        if self.profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigError(f"{PROFILE_ENV}={self.profile}: {file_path} has no [profiles.{self.profile}] "
                              f"(profiles there: {known})")
        overlay = profiles[self.profile]
        self._profile_keys = set(_flatten(overlay))
        return _overlay(data, overlay)


def _overlay(base: Mapping[str, Any], top: Mapping[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """``base`` with ``top``'s values laid over it, section by section (a dict-valued key such as
    ``catalog.clients`` is replaced whole, as a value, not merged)."""
    out = dict(base)
    for k, v in top.items():
        here = (*path, k)
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and _section_model(list(here)) is not None:
            out[k] = _overlay(out[k], v, here)
        else:
            out[k] = v
    return out


# --- The effective configuration ------------------------------------------------------------------
@dataclass
class Config:
    """Effective configuration: validated settings, the state dir, and where each value came from."""

    settings: Settings
    home: Path
    config_file: Path | None
    #: ``{"section.key": origin}``: the file path, ``env LAKEHOUSE_...`` or ``generated (...)``; a key
    #: not in it has its built-in default. (Not to be confused with the ``[sources]`` section.)
    origins: dict[str, str] = field(default_factory=dict)

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
        """The ``[sources]`` section (quote sources)."""
        return self.settings.sources

    # Paths in the state dir --------------------------------------------------------
    def path(self, *parts: str, create: bool = False, private: bool = False) -> Path:
        """A path inside the state dir; ``create=True`` makes it a directory, ``private=True`` one only its
        owner can enter (mode 0700: it holds a service's config and metadata, which name its secrets)."""
        p = self.home.joinpath(*parts)
        if create or private:
            p.mkdir(parents=True, exist_ok=True)
        if private and p.stat().st_mode & 0o077:
            p.chmod(0o700)
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

    @property
    def reports_dir(self) -> Path:
        """Where ``lakehouse run`` / ``lakehouse report`` write the HTML run report (``latest.html`` + dated)."""
        return self.path("reports")

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

    def origin_of(self, dotted_key: str) -> str:
        """Where the value of ``section.key`` came from."""
        return self.origins.get(dotted_key, "built-in default")

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


def find_config_file(env: Mapping[str, str]) -> Path | None:
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


def load_config(env: Mapping[str, str] | None = None, config_file: Path | None = None) -> Config:
    """Read the configuration from the file and the environment; raise ConfigError naming bad keys."""
    env = dict(os.environ if env is None else env)
    cfg_path = config_file.resolve() if config_file else find_config_file(env)
    load = _Load(env, cfg_path)
    token = _LOADING.set(load)
    try:
        settings = Settings()
    except ValidationError as exc:
        # from None: pydantic's own message would carry the (maybe secret) input values
        raise ConfigError(_explain(exc, load.origins)) from None
    finally:
        _LOADING.reset(token)
    origins = load.origins
    if "catalog.auth" not in origins:
        origins["catalog.auth"] = f"built-in default for {settings.general.mode} mode"

    home_env = env.get("LAKEHOUSE_HOME")
    base_dir = cfg_path.parent if cfg_path else Path.cwd()
    home = Path(home_env).expanduser() if home_env else base_dir / ".lakehouse"
    home = (home if home.is_absolute() else Path.cwd() / home).resolve()

    _fill_generated_secrets(settings, home, origins)
    return Config(settings=settings, home=home, config_file=cfg_path, origins=origins)


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


def _origin(key: str, origins: Mapping[str, str]) -> str:
    """The origin of ``key``, or of the first value given under it (an error on a whole section)."""
    if key in origins:
        return origins[key]
    under = [o for k, o in origins.items() if k.startswith(key + ".")]
    return under[0] if under else "built-in default"


def _explain(exc: ValidationError, origins: Mapping[str, str]) -> str:
    """One line per error: the key, its value (never a secret's), where it came from, and why."""
    lines = ["invalid configuration:"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
        key = ".".join(loc)
        src = _origin(key, origins)
        if err["type"] == "extra_forbidden":
            parent = _section_model(loc[:-1])
            what = f"unknown key '{loc[-1]}' in [{'.'.join(loc[:-1])}]" if loc[:-1] else f"unknown section [{key}]"
            known = f"; known: {', '.join(sorted(parent.model_fields))}" if parent else ""
            lines.append(f"  {key}: {what} (from {src}{known})")
        elif key in SECRET_KEYS:
            lines.append(f"  {key} (from {src}): {err['msg']} (the value is a secret and not shown)")
        else:
            lines.append(f"  {key} = {mask(key, err['input'])!r} (from {src}): {err['msg']}")
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


MASK = "****"


def mask(key: str, value: Any) -> Any:
    """``value`` fit to show: a secret key's value hidden, the password of any URL in it replaced."""
    if key in SECRET_KEYS and value:
        if isinstance(value, dict):
            return {k: MASK for k in value}
        return MASK
    return _mask_url_passwords(value)


def _mask_url_passwords(value: Any) -> Any:
    if isinstance(value, str):
        return mask_url_password(value)
    if isinstance(value, list | tuple):
        return type(value)(_mask_url_passwords(v) for v in value)
    if isinstance(value, dict):
        return {k: _mask_url_passwords(v) for k, v in value.items()}
    return value


def mask_url_password(text: str) -> str:
    """``scheme://user:****@host/...`` for a URL with a password; any other text unchanged.

    Errs on the side of hiding: everything between the first ``:`` of the user part and the last
    ``@`` is masked, so a password with unencoded ``/``, ``?`` or ``#`` is hidden whole."""
    scheme, sep, rest = text.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return text
    return f"{scheme}://{userinfo.split(':', 1)[0]}:{MASK}@{host}"

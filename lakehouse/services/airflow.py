"""Airflow 3 as four supervised processes: api-server, scheduler, dag-processor, triggerer.

Airflow runs from its own virtualenv (``.venvs/airflow``, or ``[airflow] venv``): its pins conflict
with the core environment's, and the DAGs (``dags/``) need nothing of the project but the
resolved pipeline graph, which this module writes for them as JSON (``lakehouse plan --format
json``). Their tasks run the core environment's ``lakehouse`` CLI, so the pipeline code and its
configuration (endpoints, credentials, catalog auth) stay on the core side.

Each Airflow process is its own supervised service rather than ``airflow standalone``: the
supervisor records, checks and stops every pid, and a crashed scheduler shows in ``lakehouse
status``. ``lakehouse up airflow`` and ``lakehouse down airflow`` act on all four (the service
group ``airflow``). State lives in ``$LAKEHOUSE_HOME/airflow`` (``AIRFLOW_HOME``): SQLite metadata,
task logs, ``airflow.cfg``. Only the api-server listens; the others are healthy when the
api-server's ``/api/v2/monitor/health`` reports their heartbeat (they serve no logs of their own:
the api-server reads the task logs from the shared log folder).

No secret goes on a command line: ``airflow.cfg`` (mode 0600) holds the keys Airflow signs with
(generated once, kept across restarts), and SimpleAuthManager reads the admin password from a 0600
JSON file written from ``[airflow] admin_password`` (generated into ``secrets.json`` when empty).
The tasks inherit the environment of the processes: ``LAKEHOUSE_HOME``, ``LAKEHOUSE_CONFIG`` and
``LAKEHOUSE_GENERAL__MODE=services``, so every stage reads the same configuration as ``lakehouse up``
and talks to the services (catalog, object store, ClickHouse front, MLflow server).
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import secrets
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from lakehouse.config import PACKAGE_ROOT, Config
from lakehouse.services import venvs
from lakehouse.services.registry import Service, lakehouse_cli, register

GROUP = "airflow"
DAGS_FOLDER = PACKAGE_ROOT / "dags"
#: The environment variables the DAG file reads (dags/dag_plan.py: ENV_SPEC, ENV_CLI).
ENV_SPEC = "LAKEHOUSE_DAGS_SPEC"
ENV_CLI = "LAKEHOUSE_CLI"
#: airflow.cfg keys holding secrets Airflow generates for itself; kept across restarts.
_OWN_SECRETS = {
    ("core", "fernet_key"): lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
    ("api", "secret_key"): lambda: secrets.token_urlsafe(32),
    ("api_auth", "jwt_secret"): lambda: secrets.token_urlsafe(64),  # >= 64 bytes for HS512
}


class AirflowSetupError(RuntimeError):
    """Airflow could not be prepared (virtualenv missing, database migration failed)."""


def venv(cfg: Config) -> Path:
    """The Airflow virtualenv: ``[airflow] venv`` or ``.venvs/airflow`` in the project."""
    return venvs.venv_dir(cfg.airflow.venv, "airflow")


def airflow_binary(cfg: Config) -> str:
    """The ``airflow`` command of the Airflow virtualenv."""
    return venvs.command(venv(cfg), "airflow", "airflow", AirflowSetupError)


def home(cfg: Config) -> Path:
    """``AIRFLOW_HOME``: metadata database, task logs and airflow.cfg, in the state dir (mode 0700)."""
    return cfg.path("airflow", private=True)


def config_file(cfg: Config) -> Path:
    return home(cfg) / "airflow.cfg"


def passwords_file(cfg: Config) -> Path:
    return home(cfg) / "simple_auth_manager_passwords.json"


def spec_file(cfg: Config) -> Path:
    """The resolved pipeline graph the DAG file reads (``lakehouse plan --format json``)."""
    return home(cfg) / "pipeline.json"


def database_file(cfg: Config) -> Path:
    return home(cfg) / "airflow.db"


def core_cli() -> str:
    """The core environment's ``lakehouse`` executable, which the tasks run."""
    argv = lakehouse_cli()
    if len(argv) != 1:
        raise AirflowSetupError("the core environment has no `lakehouse` command: run `make setup`")
    return argv[0]


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _escape(value: object) -> str:
    return str(value).replace("%", "%%")  # airflow.cfg is read with %-interpolation


def airflow_settings(cfg: Config) -> dict[str, dict[str, str]]:
    """The airflow.cfg sections (without the signing secrets)."""
    a = cfg.airflow
    h = home(cfg)
    return {
        "core": {
            "dags_folder": str(DAGS_FOLDER),
            "executor": "LocalExecutor",
            "parallelism": str(a.parallelism),
            "load_examples": "False",
            "dags_are_paused_at_creation": "False",
            "max_active_runs_per_dag": "1",
            "default_timezone": a.timezone,
            "execution_api_server_url": f"{a.url}/execution/",
            "auth_manager": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "simple_auth_manager_users": f"{a.admin_user}:admin",
            "simple_auth_manager_passwords_file": str(passwords_file(cfg)),
            # the DAG file may refresh the pipeline graph through the core CLI (seconds on a busy laptop)
            "dagbag_import_timeout": "120",
        },
        "database": {"sql_alchemy_conn": f"sqlite:///{database_file(cfg)}"},
        "logging": {"base_log_folder": str(h / "logs"), "logging_level": "INFO"},
        "api": {"host": a.host, "port": str(a.port), "base_url": a.url, "workers": "1", "expose_config": "False"},
        "scheduler": {"enable_health_check": "False"},
        "dag_processor": {"refresh_interval": "60", "dag_file_processor_timeout": "180"},
        # tasks report to the api-server; on a loaded 2-core laptop an answer can take more than the
        # default 5 s, and a task whose reports time out fails although its stage succeeded
        "workers": {"execution_api_timeout": "30", "execution_api_retries": "10"},
    }


def write_config(cfg: Config) -> Path:
    """Write airflow.cfg (0600), keeping the signing secrets of an earlier start."""
    path = config_file(cfg)
    old = configparser.RawConfigParser()
    if path.exists():
        old.read(path)
    parser = configparser.RawConfigParser()
    for section, values in airflow_settings(cfg).items():
        parser[section] = {k: _escape(v) for k, v in values.items()}
    for (section, key), make in _OWN_SECRETS.items():
        value = old.get(section, key, fallback="") or make()
        if not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, key, value)
    lines = ["# Written by `lakehouse up` from lakehouse.toml ([airflow]); edits are overwritten on the next start.\n"]
    for section in parser.sections():
        lines.append(f"\n[{section}]\n")
        lines += [f"{k} = {v}\n" for k, v in parser.items(section)]
    _write_private(path, "".join(lines))
    return path


def write_passwords(cfg: Config) -> Path:
    """SimpleAuthManager's password file (0600): the admin user and its configured password."""
    user = cfg.airflow.admin_user
    if not user or any(c in user for c in ":, \t"):
        raise AirflowSetupError(f"[airflow] admin_user {user!r}: use letters, digits, '.', '_' or '-'")
    path = passwords_file(cfg)
    _write_private(path, json.dumps({user: cfg.airflow.admin_password}))
    return path


def write_spec(cfg: Config) -> Path:
    """The resolved pipeline graph for the DAG file."""
    from lakehouse.pipeline.export import document

    path = spec_file(cfg)
    _write_private(path, json.dumps(document(cfg), indent=2))
    return path


def env(cfg: Config) -> dict[str, str]:
    """Environment of every Airflow process, inherited by the tasks (no secret in it)."""
    out = {
        "AIRFLOW_HOME": str(home(cfg)),
        "AIRFLOW_CONFIG": str(config_file(cfg)),
        "LAKEHOUSE_HOME": str(cfg.home),
        "LAKEHOUSE_GENERAL__MODE": "services",
        ENV_SPEC: str(spec_file(cfg)),
        ENV_CLI: core_cli(),
        "NO_COLOR": "1",  # task logs are files: plain text, tables wide enough to read
        "COLUMNS": "160",
    }
    if cfg.config_file is not None:
        out["LAKEHOUSE_CONFIG"] = str(cfg.config_file)
    return out


def _installed_version(cfg: Config) -> str:
    return venvs.installed_version(venv(cfg), "apache_airflow_core")


def migrate(cfg: Config) -> None:
    """``airflow db migrate`` when the database is new or Airflow was upgraded (else nothing: seconds saved)."""
    from lakehouse.services.supervisor import log_file

    marker = home(cfg) / ".migrated"
    version = _installed_version(cfg)
    if database_file(cfg).exists() and marker.exists() and marker.read_text() == version:
        return
    log = log_file(cfg, "airflow")
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} airflow db migrate\n".encode())
        out.flush()
        proc = subprocess.run([airflow_binary(cfg), "db", "migrate"], stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, cwd=home(cfg), env={**os.environ, **env(cfg)},
                              timeout=600, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise AirflowSetupError(f"`airflow db migrate` failed (exit {proc.returncode}); log: {log}\n{tail}")
    marker.write_text(version)


def prepare(cfg: Config) -> None:
    """Before the api-server starts: config, password file, pipeline graph, database."""
    from lakehouse.services.supervisor import ServiceError

    try:
        airflow_binary(cfg)
        write_config(cfg)
        write_passwords(cfg)
        write_spec(cfg)
        migrate(cfg)
    except (AirflowSetupError, OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"airflow: {exc}") from exc


def health(cfg: Config) -> dict:
    """The api-server's ``/api/v2/monitor/health`` document ({} when it does not answer)."""
    try:
        with urllib.request.urlopen(f"{cfg.airflow.url}/api/v2/monitor/health", timeout=5) as resp:  # noqa: S310
            return json.load(resp)
    except (OSError, ValueError):
        return {}


def component_healthy(component: str) -> Callable[[Config], bool]:
    """Health check of a process without a port: its heartbeat, as the api-server reports it."""

    def check(cfg: Config) -> bool:
        return (health(cfg).get(component) or {}).get("status") == "healthy"

    return check


def login_hint(cfg: Config) -> str:
    """Where the admin password is (never the password itself)."""
    source = cfg.origin_of("airflow.admin_password")
    if source.startswith("generated"):
        where = f"generated into {cfg.home / 'secrets.json'} (key \"airflow.admin_password\")"
    else:
        where = f"[airflow] admin_password, from {source}"
    return f"Airflow UI {cfg.airflow.url}: log in as '{cfg.airflow.admin_user}'; password {where}"


def _command(*args: str) -> Callable[[Config], list[str]]:
    return lambda cfg: [airflow_binary(cfg), *args]


def _api_command(cfg: Config) -> list[str]:
    a = cfg.airflow
    return [airflow_binary(cfg), "api-server", "--host", a.host, "--port", str(a.port), "--workers", "1"]


API_SERVER = register(Service(
    name="airflow",
    section="airflow",
    command=_api_command,
    health_path="/api/v2/monitor/health",
    env=env,
    prepare=prepare,
    depends_on=("objectstore", "catalog", "clickhouse", "mlflow"),
    start_timeout=240.0,
    stop_grace=20.0,
    description="Airflow api-server: UI, REST API (/api/v2) and the execution API the tasks report to",
    order=60,
    group=GROUP,
    hint=login_hint,
))

for _order, (_name, _args, _what) in enumerate((
    ("scheduler", ("scheduler", "--skip-serve-logs"), "schedules DAG runs and runs tasks (LocalExecutor)"),
    ("dag-processor", ("dag-processor",), "parses dags/ into serialized DAGs"),
    ("triggerer", ("triggerer", "--skip-serve-logs"), "runs deferred triggers"),
), start=61):
    register(Service(
        name=f"airflow-{_name}",
        section="airflow",
        command=_command(*_args),
        env=env,
        health=component_healthy(_name.replace("-", "_")),
        listens=False,
        depends_on=("airflow",),
        start_timeout=180.0,
        stop_grace=20.0,
        description=f"Airflow {_name}: {_what}",
        order=_order,
        group=GROUP,
    ))

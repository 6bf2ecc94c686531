"""Superset 6 as a supervised service: gunicorn on ``[superset] port``, metadata in the state dir.

Superset runs from its own virtualenv (``.venvs/superset``, or ``[superset] venv``): its pins conflict
with the core environment's, and it needs nothing of the project. What it needs is written here into
``$LAKEHOUSE_HOME/superset`` (mode 0700): ``superset_config.py`` (SQLite metadata database beside it,
no example data, telemetry and outbound features off) and, on the first start only, the metadata
schema (``superset db upgrade``), the admin user and the default roles (``superset init``). A marker
file records what was done, so a restart costs only gunicorn's start-up; an upgrade of Superset runs
the migrations again, and a changed admin password is applied to the existing admin.

No secret is on a command line or in a file in the repository: ``SECRET_KEY`` (Superset signs
sessions and encrypts stored database passwords with it) comes from ``[superset] secret_key``,
generated into ``secrets.json`` when empty, and reaches Superset through the environment
(``SUPERSET_SECRET_KEY``), which the generated config reads. The admin is created by a small script
run by Superset's own Python (``superset_admin.py``) that reads the password from its environment,
instead of ``superset fab create-admin --password ...``.

Gunicorn runs one worker with a few threads: the machine this targets has two cores shared with the
ClickHouse front, MLflow and Airflow, and one Superset worker (~400 MB) serves a dashboard's dozen
chart queries concurrently through its threads.

Once healthy, the dashboards are provisioned from the spec in ``lakehouse.dashboards`` (see there).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from lakehouse.config import Config
from lakehouse.services import venvs
from lakehouse.services.registry import Service, register

#: The admin-creation script, run by the Superset virtualenv's Python (it cannot import the project).
ADMIN_SCRIPT = Path(__file__).with_name("superset_admin.py")
#: Gunicorn worker processes and threads per worker (two cores shared with the rest of the stack).
WORKERS = 1
THREADS = 4


class SupersetSetupError(RuntimeError):
    """Superset could not be prepared (virtualenv missing, migration or admin creation failed)."""


def venv(cfg: Config) -> Path:
    """The Superset virtualenv: ``[superset] venv`` or ``.venvs/superset`` in the project."""
    return venvs.venv_dir(cfg.superset.venv, "superset")


def binary(cfg: Config, name: str) -> str:
    """A console script (``superset``, ``gunicorn``, ``python``) of the Superset virtualenv."""
    return venvs.command(venv(cfg), name, "superset", SupersetSetupError)


def home(cfg: Config) -> Path:
    """Superset's state: config, SQLite metadata database, markers (mode 0700: the config names the key's source)."""
    return cfg.path("superset", private=True)


def config_file(cfg: Config) -> Path:
    return home(cfg) / "superset_config.py"


def database_file(cfg: Config) -> Path:
    return home(cfg) / "superset.db"


def _marker(cfg: Config) -> Path:
    return home(cfg) / ".initialized"


def superset_settings(cfg: Config) -> str:
    """The text of ``superset_config.py``: Python that Superset imports (``SUPERSET_CONFIG_PATH``)."""
    data_dir = home(cfg) / "data"
    return f'''"""Written by `lakehouse up` from lakehouse.toml ([superset]); edits are overwritten on each start."""
import os

# Superset signs sessions and encrypts stored database passwords with this key; it comes from the
# environment of the process (lakehouse's [superset] secret_key), never from this file.
SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = {f"sqlite:///{database_file(cfg)}"!r}
DATA_DIR = {str(data_dir)!r}
SUPERSET_WEBSERVER_TIMEOUT = 120
ROW_LIMIT = 50000
# nothing leaves the machine: no example data, no thumbnails or reports, no outbound telemetry
SUPERSET_LOAD_EXAMPLES = False
FEATURE_FLAGS = {{"THUMBNAILS": False, "ALERT_REPORTS": False, "DASHBOARD_RBAC": False}}
SCARF_ANALYTICS = False
THEME_FONT_URL_ALLOWED_DOMAINS = []
# Superset's content security policy without the outside hosts of its default (telemetry pixel, map
# tiles, web fonts): the browser loads nothing but this server; plain HTTP on loopback (no HTTPS redirect)
TALISMAN_ENABLED = True
TALISMAN_CONFIG = {{
    "content_security_policy": {{
        "base-uri": ["'self'"],
        "default-src": ["'self'"],
        "img-src": ["'self'", "blob:", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": "'none'",
        "style-src": ["'self'", "'unsafe-inline'"],
        "font-src": ["'self'", "data:"],
        "script-src": ["'self'", "'strict-dynamic'"],
    }},
    "content_security_policy_nonce_in": ["script-src"],
    "force_https": False,
    "session_cookie_secure": False,
}}
# Superset refuses SQLite (its own metadata file) as a data source
PREVENT_UNSAFE_DB_CONNECTIONS = True
'''


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_config(cfg: Config) -> Path:
    path = config_file(cfg)
    _write_private(path, superset_settings(cfg))
    return path


def env(cfg: Config) -> dict[str, str]:
    """Environment of Superset's processes: where its config is, and the secret key it reads."""
    return {
        **cfg.telemetry_env,
        "SUPERSET_CONFIG_PATH": str(config_file(cfg)),
        "SUPERSET_SECRET_KEY": cfg.superset.secret_key,
        "SUPERSET_HOME": str(home(cfg)),
        "FLASK_APP": "superset.app:create_app()",
        "PYTHONDONTWRITEBYTECODE": "1",
        "NO_COLOR": "1",
    }


def _installed_version(cfg: Config) -> str:
    return venvs.installed_version(venv(cfg), "apache_superset")


def _admin_fingerprint(cfg: Config) -> str:
    """Changes when the admin user or password changes (keyed with the secret key: the marker shows no password)."""
    s = cfg.superset
    return hashlib.sha256(f"{s.secret_key}\0{s.admin_user}\0{s.admin_password}".encode()).hexdigest()


def _run(cfg: Config, what: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
    """Run one set-up step with its output in Superset's log; a failure names the step and shows the log's tail."""
    from lakehouse.services.supervisor import log_file

    log = log_file(cfg, "superset")
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {what}\n".encode())
        out.flush()
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=home(cfg),
                              env={**os.environ, **env(cfg), **(extra_env or {})}, timeout=900, check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise SupersetSetupError(f"`{what}` failed (exit {proc.returncode}); log: {log}\n{tail}")


def initialize(cfg: Config) -> None:
    """Migrations, admin and roles on the first start (and after an upgrade); the admin again when its
    password changed."""
    marker = _marker(cfg)
    version, admin = _installed_version(cfg), _admin_fingerprint(cfg)
    done: dict[str, str] = {}
    if marker.exists() and database_file(cfg).exists():
        done = dict(line.split("=", 1) for line in marker.read_text().splitlines() if "=" in line)
    superset = binary(cfg, "superset")
    if done.get("version") != version:
        _run(cfg, "superset db upgrade", [superset, "db", "upgrade"])
    if done.get("admin") != admin:
        s = cfg.superset
        _run(cfg, "create or update the admin user", [binary(cfg, "python"), "-P", str(ADMIN_SCRIPT)],
             {"LAKEHOUSE_SUPERSET_ADMIN_USER": s.admin_user, "LAKEHOUSE_SUPERSET_ADMIN_PASSWORD": s.admin_password})
    if done.get("version") != version:
        _run(cfg, "superset init", [superset, "init"])
    _write_private(marker, f"version={version}\nadmin={admin}\n")


def prepare(cfg: Config) -> None:
    """Before gunicorn starts: config file, then the one-time initialization."""
    from lakehouse.services.supervisor import ServiceError

    try:
        binary(cfg, "gunicorn")
        write_config(cfg)
        initialize(cfg)
    except (SupersetSetupError, OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"superset: {exc}") from exc


def provision(cfg: Config) -> None:
    """Once healthy: the database connection, datasets, charts and dashboard from the spec (idempotent).

    Before the first ``lakehouse run`` there are no marts to describe: Superset starts anyway (``lakehouse
    up && lakehouse run`` is the usual order) and the marts stage provisions once it has built them.
    """
    from lakehouse.dashboards.provision import MartsMissing
    from lakehouse.dashboards.provision import provision as provision_dashboards

    try:
        provision_dashboards(cfg)
    except MartsMissing as exc:
        print(f"superset: dashboard not provisioned yet: {exc} (the marts stage provisions it when Superset runs)",
              file=sys.stderr)


def _command(cfg: Config) -> list[str]:
    s = cfg.superset
    return [
        binary(cfg, "gunicorn"), "--bind", f"{s.host}:{s.port}",
        "--workers", str(WORKERS), "--worker-class", "gthread", "--threads", str(THREADS),
        "--timeout", "120", "--graceful-timeout", "10", "--limit-request-line", "0",
        "--limit-request-field_size", "0", "--control-socket", str(home(cfg) / "gunicorn.ctl"),
        "superset.app:create_app()",
    ]


def login_hint(cfg: Config) -> str:
    """Where the admin password is (never the password itself)."""
    source = cfg.origin_of("superset.admin_password")
    if source.startswith("generated"):
        where = f"generated into {cfg.home / 'secrets.json'} (key \"superset.admin_password\")"
    else:
        where = f"[superset] admin_password, from {source}"
    return (f"Superset {cfg.superset.url}/superset/dashboard/stock-forecasts/: log in as "
            f"'{cfg.superset.admin_user}'; password {where}")


SUPERSET = register(Service(
    name="superset",
    section="superset",
    command=_command,
    health_path="/health",
    env=env,
    prepare=prepare,
    after_start=provision,
    depends_on=("clickhouse",),
    start_timeout=240.0,
    stop_grace=15.0,
    description="Superset: dashboards over the ClickHouse marts (read-only account)",
    order=70,
    hint=login_hint,
))

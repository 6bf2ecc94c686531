"""What of compose/ can run without Docker: the README's pyiceberg and DuckDB snippets against our catalog
server (auth on), and postgres-init.sh against a real PostgreSQL server."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest

from catalog.auth import Auth, hash_secret
from tests.catalog_support import catalog_server, postgres_bin, postgres_server

COMPOSE = Path(__file__).resolve().parents[2] / "compose"
README = COMPOSE / "README.md"
COMPOSE_URI = "http://127.0.0.1:8181"
INSTALL_LINE = 'con.execute("INSTALL httpfs; LOAD httpfs; INSTALL iceberg; LOAD iceberg")'


def snippet(name: str) -> str:
    """The ```python block of compose/README.md that starts with ``# snippet: <name>``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    found = [b for b in blocks if b.startswith(f"# snippet: {name} ")]
    assert len(found) == 1, f"README has {len(found)} '{name}' snippets"
    return found[0]


def run_snippet(code: str) -> tuple[str, dict]:
    """Run a snippet as a script would; its printed output and its globals."""
    out = io.StringIO()
    scope: dict = {"__name__": "__snippet__"}
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<compose/README.md>", "exec"), scope)  # noqa: S102 - our own README's snippet
    return out.getvalue(), scope


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """Our catalog server with auth on and the platform's client, as the compose `catalog` runs it."""
    base = tmp_path_factory.mktemp("compose-catalog")
    secret = secrets.token_hex(24)
    auth = Auth(enabled=True, clients={"lakehouse-platform": hash_secret(secret)}, token_secret=secrets.token_hex(32))
    with catalog_server(f"sqlite:///{base / 'catalog.db'}", (base / "warehouse").as_uri(), auth=auth) as server:
        yield server.url.rstrip("/"), secret


@pytest.fixture
def snippet_env(catalog, monkeypatch: pytest.MonkeyPatch):
    url, secret = catalog
    monkeypatch.setenv("CATALOG_PLATFORM_SECRET", secret)
    monkeypatch.setenv("MINIO_ROOT_USER", "lh" + secrets.token_hex(8))
    monkeypatch.setenv("MINIO_ROOT_PASSWORD", secrets.token_hex(24))
    return url


@pytest.mark.filterwarnings("ignore:Delete operation did not match any records")  # overwrite of an empty table
def test_pyiceberg_then_duckdb_snippets_run_against_our_catalog(snippet_env: str) -> None:
    py = snippet("pyiceberg")
    assert COMPOSE_URI in py
    out, scope = run_snippet(py.replace(COMPOSE_URI, snippet_env))
    assert out.strip() == "[('scratch', 'hello')] 2"
    out, _ = run_snippet(py.replace(COMPOSE_URI, snippet_env))  # a second run replaces, does not add
    assert out.strip().endswith(" 2")

    duck = snippet("duckdb")
    assert COMPOSE_URI in duck and INSTALL_LINE in duck
    # the one change: the extensions come from their PyPI packages (no downloads on this machine)
    local = duck.replace(COMPOSE_URI, snippet_env).replace(
        INSTALL_LINE, "from lakehouse.transform.duck import load_extensions; load_extensions(con)")
    out, _ = run_snippet(local)
    assert out.strip() == "[('AAPL', 190.5), ('IBM', 145.25)]"


def test_the_snippets_credentials_are_checked(snippet_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_PLATFORM_SECRET", "not-" + secrets.token_hex(8))
    with pytest.raises(Exception, match="(?i)invalid_client|unauthorized|401"):
        run_snippet(snippet("pyiceberg").replace(COMPOSE_URI, snippet_env))


def scram_matches(stored: str, password: str) -> bool:
    """True when PostgreSQL's SCRAM-SHA-256 verifier ``stored`` was made from ``password``."""
    m = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", stored)
    assert m, "not a SCRAM-SHA-256 verifier"
    iterations, salt, stored_key = int(m.group(1)), base64.b64decode(m.group(2)), base64.b64decode(m.group(3))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest() == stored_key


@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL server binaries not installed "
                                                    "(apt-get install -y postgresql; .ci/run does)")
def test_postgres_init_creates_one_role_and_database_per_server(tmp_path: Path) -> None:
    import psycopg

    passwords = {name: secrets.token_hex(24) for name in ("catalog", "mlflow", "airflow", "superset")}
    with postgres_server(tmp_path / "pg") as url:
        port = int(re.search(r":(\d+)/", url).group(1))
        env = {
            "PATH": f"{postgres_bin()}:{os.environ['PATH']}", "PGHOST": "127.0.0.1", "PGPORT": str(port),
            "POSTGRES_USER": "lake", **{f"{n.upper()}_DB_PASSWORD": p for n, p in passwords.items()},
        }
        done = subprocess.run(["sh", str(COMPOSE / "postgres-init.sh")], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert not [p for p in passwords.values() if p in done.stdout + done.stderr]
        with psycopg.connect(f"host=127.0.0.1 port={port} user=lake dbname=postgres") as con:
            roles = dict(con.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
                                     [list(passwords)]).fetchall())
            owners = dict(con.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database").fetchall())
            public_connect = con.execute(
                "SELECT datname FROM pg_database WHERE datname = ANY(%s) AND has_database_privilege('public', "
                "datname, 'CONNECT')", [list(passwords)]).fetchall()
        for name, password in passwords.items():
            assert scram_matches(roles[name], password), name
            assert owners[name] == name
        assert public_connect == []


def test_an_external_catalog_is_used_as_is_by_the_platform(catalog, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """[catalog] external (set by the compose profile): open_lake talks to the catalog at host:port and
    starts none of its own (whose database, another file here, would not hold what the server holds)."""
    from lakehouse import lake as lake_module
    from lakehouse.config import load_config
    from lakehouse.net import free_port
    from tests.catalog_support import rest_catalog

    url, secret = catalog
    host, port = url.removeprefix("http://").split(":")
    env = {
        "LAKEHOUSE_HOME": str(tmp_path / "home"), "LAKEHOUSE_CATALOG__EXTERNAL": "true",
        "LAKEHOUSE_CATALOG__HOST": host, "LAKEHOUSE_CATALOG__PORT": port, "LAKEHOUSE_CATALOG__AUTH": "true",
        "LAKEHOUSE_CATALOG__PLATFORM_SECRET": secret, "LAKEHOUSE_CATALOG__DB": f"sqlite:///{tmp_path / 'other.db'}",
    }
    cfg = load_config(env=env)
    with lake_module.open_lake(cfg) as handle:
        assert handle.uri == url
        handle.catalog.create_namespace_if_not_exists("external_probe")
    direct = rest_catalog(url, credential=f"lakehouse-platform:{secret}",
                          **{"oauth2-server-uri": f"{url}/v1/oauth/tokens"})
    assert ("external_probe",) in direct.list_namespaces()
    assert not (tmp_path / "other.db").exists()

    monkeypatch.setattr(lake_module, "EXTERNAL_WAIT_SECONDS", 1.0)
    gone = load_config(env={**env, "LAKEHOUSE_CATALOG__PORT": str(free_port())})
    with (pytest.raises(RuntimeError, match=r"\[catalog\] external = true\) does not answer .*/healthz"),
          lake_module.open_lake(gone)):
        pass


AIRFLOW_BIN = Path(__file__).resolve().parents[2] / ".venvs" / "airflow" / "bin"


@pytest.mark.skipif(not (AIRFLOW_BIN / "python").exists(), reason="no .venvs/airflow (run make setup)")
def test_airflow_entrypoint_loads_the_dags_under_the_compose_profile(tmp_path: Path) -> None:
    """compose/airflow/entrypoint.sh with the Airflow containers' environment (paths moved into tmp, the
    metadata database left to Airflow's SQLite default: the DagBag does not need it): it writes the graph
    and the 0600 passwords file, then Airflow 3.3 loads the five DAGs, matching the compose profile."""
    import json
    import stat
    import sys

    from tests.airflow_support import drift
    from tests.compose_support import compose_cfg, interpolate, load_yaml, real_env

    root = Path(__file__).resolve().parents[2]
    secrets_env = real_env()
    env = {k: str(v) for k, v in interpolate(load_yaml()["x-airflow"]["environment"], secrets_env).items()}
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")  # PostgreSQL's driver is in the image only
    run = tmp_path / "run"
    run.mkdir()
    env.update({
        "PATH": f"{AIRFLOW_BIN}:{os.environ['PATH']}", "HOME": str(tmp_path),
        "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"), "LAKEHOUSE_HOME": str(tmp_path / "state"),
        "LAKEHOUSE_DAGS_SPEC": str(run / "pipeline.json"),
        "LAKEHOUSE_CLI": str(Path(sys.executable).parent / "lakehouse"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(run / "passwords.json"),
    })
    (tmp_path / "airflow").mkdir()
    done = subprocess.run(["sh", str(root / "compose" / "airflow" / "entrypoint.sh"), str(AIRFLOW_BIN / "python"),
                           str(root / "tests" / "airflow_dagbag.py"), str(root / "dags")],
                          env=env, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    passwords = run / "passwords.json"
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    assert json.loads(passwords.read_text()) == {"admin": secrets_env["AIRFLOW_ADMIN_PASSWORD"]}
    dump = json.loads(done.stdout.rsplit("\n@@DAGBAG@@", 1)[1])
    assert dump["import_errors"] == {}
    assert set(dump["dags"]) == {"quotes_ingest", "lake_features", "train_models", "predict", "dwh_marts"}
    cfg = compose_cfg(tmp_path, secrets_env)
    assert cfg.mode == "services" and cfg.catalog.external
    assert drift(dump, cfg, env["LAKEHOUSE_CLI"]) == []


SUPERSET_BIN = Path(__file__).resolve().parents[2] / ".venvs" / "superset" / "bin"


@pytest.mark.skipif(not (SUPERSET_BIN / "superset").exists(), reason="no .venvs/superset (run make setup)")
def test_superset_init_creates_the_admin_from_the_environment(tmp_path: Path) -> None:
    """compose/superset/init.sh with the Superset containers' environment and superset_config.py (the
    metadata database on SQLite here: PostgreSQL's driver is in the image only): the admin's password comes
    from the environment through create-admin's prompt. About a minute and a half on a loaded 2-core
    machine. A second start with a rotated password must apply it (create-admin leaves an existing user)."""
    from tests.compose_support import interpolate, load_yaml, real_env

    root = Path(__file__).resolve().parents[2]
    secrets_env = real_env()
    env = {k: str(v) for k, v in interpolate(load_yaml()["services"]["superset"]["environment"], secrets_env).items()}
    env.update({
        "PATH": f"{SUPERSET_BIN}:{os.environ['PATH']}", "HOME": str(tmp_path), "SUPERSET_HOME": str(tmp_path),
        "SUPERSET_CONFIG_PATH": str(root / "compose" / "superset" / "superset_config.py"),
        "SUPERSET_DATABASE_URI": f"sqlite:///{tmp_path / 'superset.db'}",
    })
    password = secrets_env["SUPERSET_ADMIN_PASSWORD"]
    check = ("import sqlite3, sys; from werkzeug.security import check_password_hash as ok; "
             "h = sqlite3.connect(sys.argv[1]).execute('SELECT password FROM ab_user WHERE username = ?', "
             "(sys.argv[2],)).fetchone()[0]; print(ok(h, sys.argv[3]), ok(h, sys.argv[3] + 'x'))")
    done = subprocess.run(["sh", str(root / "compose" / "superset" / "init.sh")], env=env, capture_output=True,
                          text=True, timeout=600, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert password not in done.stdout + done.stderr
    verified = subprocess.run([str(SUPERSET_BIN / "python"), "-c", check, str(tmp_path / "superset.db"),
                               env["SUPERSET_ADMIN_USER"], password], capture_output=True, text=True,
                              timeout=60, check=True)
    assert verified.stdout.split() == ["True", "False"]

    # a rotated SUPERSET_ADMIN_PASSWORD is applied on the next start (the provisioning logs in with it)
    rotated = password + "-rotated"
    again = subprocess.run(["sh", str(root / "compose" / "superset" / "init.sh")],
                           env={**env, "SUPERSET_ADMIN_PASSWORD": rotated}, capture_output=True, text=True,
                           timeout=600, check=False, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-4000:]
    assert rotated not in again.stdout + again.stderr
    verified = subprocess.run([str(SUPERSET_BIN / "python"), "-c", check, str(tmp_path / "superset.db"),
                               env["SUPERSET_ADMIN_USER"], rotated], capture_output=True, text=True,
                              timeout=60, check=True)
    assert verified.stdout.split() == ["True", "False"]

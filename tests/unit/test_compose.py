"""The compose stack (compose/), validated without a Docker engine: the file against the Compose
specification's JSON schema, Debian's ``docker-compose config`` when installed, and every cross-reference
between docker-compose.yml, the ``compose`` profile of lakehouse.toml, .env.example, the preflight script,
the PostgreSQL init script, the ClickHouse config and the Dockerfiles.

tests/data/compose-spec.json is ``schema/compose-spec.json`` of github.com/compose-spec/compose-spec at
commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6 (2026-06-23; Apache-2.0), unchanged.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml

from lakehouse.config import GENERATED_SECRETS
from tests.compose_support import (
    COMPOSE,
    COMPOSE_FILE,
    ENV_EXAMPLE,
    PLACEHOLDER,
    PREFLIGHT,
    ROOT,
    SCHEMA,
    SERVICE_OF_SECTION,
    VAR,
    compose_cfg,
    env_example,
    interpolate,
    load_yaml,
    real_env,
)


def services() -> dict[str, dict]:
    return load_yaml()["services"]


def one_shot(svc: dict) -> bool:
    """A job that runs to completion: restart "no", or only run on demand (a profile)."""
    return svc.get("restart") == "no" or bool(svc.get("profiles"))


# --- The file against the Compose specification --------------------------------------------------------
def validator() -> jsonschema.Draft7Validator:
    import json

    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def test_compose_file_matches_the_compose_specification() -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(load_yaml())]
    assert errors == []


def test_the_schema_check_catches_a_wrong_file() -> None:
    doc = load_yaml()
    bad = copy.deepcopy(doc)
    bad["services"]["catalog"]["depends_on"]["postgres"]["condition"] = "service_ready"
    bad["services"]["minio"]["helthcheck"] = bad["services"]["minio"].pop("healthcheck")
    messages = " ".join(e.message for e in validator().iter_errors(bad))
    assert "service_ready" in messages and "'helthcheck' does not match" in messages


DOCKER_COMPOSE = shutil.which("docker-compose")


def docker_compose_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    env_file = tmp_path / "compose.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    # no engine here: DOCKER_HOST points nowhere, proving `config` needs none
    return subprocess.run(
        [DOCKER_COMPOSE, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "DOCKER_HOST": "unix:///nonexistent"},
    )


@pytest.mark.skipif(DOCKER_COMPOSE is None, reason="docker-compose not installed (Debian: apt-get install "
                                                    "docker-compose; .ci/run installs it)")
def test_docker_compose_config_accepts_the_file_and_binds_loopback(tmp_path: Path) -> None:
    env = real_env()
    done = docker_compose_config(tmp_path, env)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)["services"]
    published = {name: svc["ports"] for name, svc in resolved.items() if svc.get("ports")}
    assert set(published) == {"minio", "catalog", "clickhouse", "mlflow", "airflow-api-server", "superset"}
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:"), (name, port)
    # the address is overridable through .env; a missing secret stops compose before anything starts
    done = docker_compose_config(tmp_path, {**env, "BIND_ADDR": "10.1.2.3"})
    assert done.returncode == 0 and "10.1.2.3:8181:8181" in done.stdout
    done = docker_compose_config(tmp_path, {k: v for k, v in env.items() if k != "CATALOG_TOKEN_SECRET"})
    assert done.returncode != 0 and "set it in compose/.env" in done.stderr


# --- Images, healthchecks, dependencies, ports ---------------------------------------------------------
def test_every_image_is_pinned_by_an_explicit_tag() -> None:
    pinned = {
        "minio/minio": r"RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z",  # a dated release
        "clickhouse/clickhouse-server": r"\d+\.\d+\.\d+\.\d+",
        "postgres": r"\d+\.\d+-bookworm",
    }
    for name, svc in services().items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", (name, image)
        if "build" in svc:
            assert tag == "local" and repo.startswith("lakehouse-"), (name, image)  # built here, never pulled
        else:
            assert re.fullmatch(pinned[repo], tag), (name, image)
    for dockerfile in COMPOSE.glob("*Dockerfile"):
        froms = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.M)
        assert froms and all(re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", f) for f in froms), dockerfile


def test_every_long_running_service_has_a_healthcheck_and_dependencies_wait_for_it() -> None:
    svcs = services()
    long_running = {n for n, s in svcs.items() if not one_shot(s)}
    assert long_running == {"minio", "postgres", "catalog", "clickhouse", "mlflow", "airflow-api-server",
                            "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "superset"}
    for name in long_running:
        test = svcs[name].get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
        assert svcs[name].get("restart") == "unless-stopped", name
    for name, svc in svcs.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on without conditions"
        for dep, how in deps.items():
            expected = "service_completed_successfully" if one_shot(svcs[dep]) else "service_healthy"
            assert how == {"condition": expected}, (name, dep, how)


def test_nothing_starts_before_the_preflight() -> None:
    svcs = services()

    def upstream(name: str) -> set[str]:
        deps = set(svcs[name].get("depends_on", {}))
        return deps.union(*(upstream(d) for d in deps)) if deps else set()

    for name in svcs:
        if name != "preflight":
            assert "preflight" in upstream(name), name


def test_published_ports_are_on_loopback_and_match_the_profile(tmp_path: Path) -> None:
    cfg = compose_cfg(tmp_path)
    example = env_example()
    svcs = services()
    seen = {}
    for name, svc in svcs.items():
        for port in svc.get("ports", []):
            m = re.fullmatch(r"\$\{BIND_ADDR:-127\.0\.0\.1\}:\$\{([A-Z_]+):-(\d+)\}:(\d+)", port)
            assert m, f"{name}: {port} is not published on ${{BIND_ADDR:-127.0.0.1}}"
            var, default, container = m.groups()
            assert example[var] == default, f"{var}: .env.example and the compose default differ"
            seen.setdefault(name, []).append(int(container))
    assert example["BIND_ADDR"] == "127.0.0.1"
    for section, service in SERVICE_OF_SECTION.items():
        sec = getattr(cfg, section)
        assert sec.host == service and service in svcs, section  # the profile's host is the service name
        assert sec.port in seen[service], (section, sec.port, seen[service])
    assert seen["minio"] == [cfg.objectstore.port, 9001]


# --- Secrets and variables ----------------------------------------------------------------------------
def compose_vars() -> dict[str, set[str]]:
    """Each variable the compose file interpolates, with the operators it is used with."""
    out: dict[str, set[str]] = {}
    for m in VAR.finditer(COMPOSE_FILE.read_text()):
        out.setdefault(m.group(1), set()).add(m.group(2) or "")
    return out


def preflight_names() -> set[str]:
    text = PREFLIGHT.read_text()
    listed = re.search(r'SECRETS="([^"]+)"', text).group(1).split()
    return {*listed, *re.findall(r"^check ([A-Z_]+) ", text, re.M)}


def test_variables_match_env_example_and_the_preflight() -> None:
    used, example = compose_vars(), env_example()
    placeholders = {k for k, v in example.items() if v == PLACEHOLDER}
    assert set(used) == set(example) - {"COMPOSE_PROJECT_NAME"}
    for name in placeholders:
        assert used[name] == {"?"}, f"{name}: every use must refuse to start without it (${{{name}:?...}})"
    for name in set(example) - placeholders - {"COMPOSE_PROJECT_NAME"}:
        assert used[name] == {"-"} and not re.search("PASSWORD|SECRET|KEY|TOKEN", name), name
    assert preflight_names() == placeholders
    assert set(services()["preflight"]["environment"]) == placeholders
    for name in placeholders:  # each placeholder says how to generate it
        block = ENV_EXAMPLE.read_text().split(f"\n{name}=")[0].rsplit("\n\n", 1)[-1]
        assert "openssl rand" in block, name


def test_no_secret_in_the_file_or_on_a_command_line() -> None:
    secret_vars = {k for k, v in env_example().items() if v == PLACEHOLDER}
    secret_name = re.compile(r"PASSWORD|SECRET|_KEY$|TOKEN|^MC_HOST_|_URI$|_CONN$|__DB$")
    for name, svc in {**services(), "x-lakehouse-env": {"environment": load_yaml()["x-lakehouse-env"]}}.items():
        for key, value in (svc.get("environment") or {}).items():
            if secret_name.search(key) and not key.endswith("_FILE") and key != "MLFLOW_ARTIFACTS_DESTINATION":
                assert VAR.search(str(value)), f"{name}: {key} holds a literal value, not one from .env"
        for field in ("command", "entrypoint"):
            argv = " ".join(svc.get(field) or []) if isinstance(svc.get(field), list) else str(svc.get(field) or "")
            assert not (set(v for v, _, _ in VAR.findall(argv)) & secret_vars), (name, field)
        test = " ".join(svc.get("healthcheck", {}).get("test", []))
        assert not VAR.search(test), name
    for script in [PREFLIGHT, COMPOSE / "postgres-init.sh", COMPOSE / "airflow" / "entrypoint.sh",
                   COMPOSE / "superset" / "init.sh"]:
        text = script.read_text()
        assert "-v pw=" not in text and "--password" not in text, script


def test_catalog_auth_is_on_and_it_listens_beyond_loopback_only_so(tmp_path: Path) -> None:
    from catalog.server import UnsafeBind, check_bind

    cfg = compose_cfg(tmp_path)
    assert cfg.catalog.auth is True and "[profiles.compose]" in cfg.origin_of("catalog.auth")
    catalog = services()["catalog"]
    assert "LAKEHOUSE_CATALOG__AUTH" not in catalog["environment"]
    host = catalog["command"][catalog["command"].index("--host") + 1]
    check_bind(host, cfg.catalog.auth)  # the catalog's own guard accepts the bind with auth on ...
    with pytest.raises(UnsafeBind):
        check_bind(host, False)  # ... and would refuse it with auth off
    assert cfg.catalog.token_secret and cfg.catalog.platform_secret


def test_the_containers_generate_no_secret_and_agree_on_every_one(tmp_path: Path) -> None:
    cfg = compose_cfg(tmp_path)
    assert not [k for k, origin in cfg.origins.items() if origin.startswith("generated")]
    assert not (tmp_path / "state" / "secrets.json").exists()
    assert {f"{s}.{k}" for s, k in GENERATED_SECRETS} <= {
        k for k, o in cfg.origins.items() if o.startswith("env LAKEHOUSE_")}


# --- Names: buckets, databases, users ----------------------------------------------------------------
def test_bucket_databases_and_accounts_match_the_profile(tmp_path: Path) -> None:
    env = real_env()
    cfg = compose_cfg(tmp_path, env)
    svcs = interpolate(services(), env)
    bucket = cfg.objectstore.bucket
    assert svcs["minio-init"]["entrypoint"][-1] == f"lakehouse/{bucket}"
    assert cfg.warehouse_uri == f"s3://{bucket}/warehouse"
    assert svcs["mlflow"]["environment"]["MLFLOW_ARTIFACTS_DESTINATION"] == f"s3://{bucket}/mlflow"
    assert svcs["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == cfg.s3_endpoint
    assert svcs["minio"]["environment"]["MINIO_ROOT_USER"] == cfg.objectstore.access_key
    regions = {svcs["mlflow"]["environment"]["AWS_DEFAULT_REGION"],
               load_yaml()["x-lakehouse-env"]["AWS_DEFAULT_REGION"]}
    assert regions == {cfg.objectstore.region}
    # one role and one database per server, created by postgres-init.sh, each URL using its own
    init = (COMPOSE / "postgres-init.sh").read_text()
    roles = re.search(r"for name in ([a-z ]+); do", init).group(1).split()
    urls = {
        "catalog": cfg.catalog_db_url,
        "mlflow": svcs["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"],
        "airflow": svcs["airflow-scheduler"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "superset": svcs["superset"]["environment"]["SUPERSET_DATABASE_URI"],
    }
    assert sorted(roles) == sorted(urls)
    for role, url in urls.items():
        password = env[f"{role.upper()}_DB_PASSWORD"]
        assert re.fullmatch(rf"postgresql\+psycopg2?://{role}:{password}@postgres:5432/{role}", url), role
        assert svcs["postgres"]["environment"][f"{role.upper()}_DB_PASSWORD"] == password
    # ClickHouse: the accounts and database of the profile, the passwords the containers are given
    users = ET.parse(COMPOSE / "clickhouse" / "users.d" / "lakehouse.xml").getroot().find("users")
    ch = cfg.clickhouse
    assert {u.tag for u in users if u.get("remove") is None} == {ch.user, ch.dashboard_user}
    ch_env = svcs["clickhouse"]["environment"]
    assert ch_env[users.find(ch.user).find("password").get("from_env")] == ch.password
    assert ch_env[users.find(ch.dashboard_user).find("password").get("from_env")] == ch.dashboard_password
    grants = {u.tag: [q.text for q in u.find("grants")] for u in users if u.find("grants") is not None}
    assert grants[ch.dashboard_user] == [f"GRANT SELECT ON {ch.database}.*"]
    assert f"GRANT ALL ON {ch.database}.*" in grants[ch.user]
    config = ET.parse(COMPOSE / "clickhouse" / "config.d" / "lakehouse.xml").getroot()
    allowed = {h.text for h in config.find("remote_url_allow_hosts")}
    assert allowed == {cfg.objectstore.host, cfg.catalog.host}
    # Airflow and Superset: the admin logins of the profile, the venv the Airflow image builds
    air = svcs["airflow-api-server"]["environment"]
    assert air["AIRFLOW_ADMIN_USER"] == cfg.airflow.admin_user
    assert air["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{cfg.airflow.admin_user}:admin"
    assert air["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"{cfg.airflow.url}/execution/"
    assert f"python -m venv {cfg.airflow.venv}" in (COMPOSE / "airflow.Dockerfile").read_text()
    assert svcs["superset"]["environment"]["SUPERSET_ADMIN_USER"] == cfg.superset.admin_user


def test_clickhouse_grants_and_settings_parse_in_clickhouse() -> None:
    """The users.d grants and profile settings, checked by ClickHouse itself (chdb's parser and settings
    table, the 26.9 line of the pinned server), in a child process: chdb holds one session per process."""
    users = ET.parse(COMPOSE / "clickhouse" / "users.d" / "lakehouse.xml").getroot()
    grants = [q.text for q in users.iter("query")]
    settings = sorted({s.tag for p in users.find("profiles") for s in p})
    code = (
        "import chdb, json, sys\n"
        "grants, settings = json.loads(sys.argv[1])\n"
        "for g in grants:\n"
        "    chdb.query('EXPLAIN AST ' + g + ' TO someone')\n"
        "known = set(str(chdb.query('SELECT name FROM system.settings UNION ALL SELECT alias_for FROM "
        "system.settings', 'CSV')).replace('\"', '').split())\n"
        "print(json.dumps(sorted(set(settings) - known)))\n"
    )
    import json

    done = subprocess.run([sys.executable, "-c", code, json.dumps([grants, settings])], capture_output=True,
                          text=True, timeout=120, check=False, cwd=Path(os.environ.get("TMPDIR", "/tmp")))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert len(grants) >= 5 and "readonly" in settings


# --- Dockerfiles: the committed lockfiles only --------------------------------------------------------
def test_dockerfiles_install_only_from_the_committed_lockfiles() -> None:
    lockfiles = set()
    for dockerfile in COMPOSE.glob("*Dockerfile"):
        text = re.sub(r"\\\n", " ", dockerfile.read_text())
        installs = re.findall(r"\b(?:pip|uv pip) (?:install|sync)\b[^&;\n]*", text)
        assert installs, dockerfile
        for cmd in installs:
            assert "--no-deps" in cmd and "-r " in cmd, f"{dockerfile.name}: {cmd}"
            args = cmd.split()
            files = [args[i + 1] for i, a in enumerate(args) if a == "-r"]
            loose = [a for a in args[2:] if not a.startswith("-") and a not in files]
            assert not loose, f"{dockerfile.name}: installs {loose} outside a lockfile"
            lockfiles.update(files)
        assert "pip check" in text, dockerfile
        assert not re.search(r"\b(curl|wget)\b", text), dockerfile
    for lock in lockfiles:
        path = ROOT / lock
        assert path.is_file() and (path.parent.name == "requirements"), lock
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and line != "-e .":
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[^=\s]+( ; .+)?", line), f"{lock}: {line}"
    assert {"requirements/core.txt", "requirements/project.txt", "requirements/airflow.txt",
            "requirements/superset.txt"} <= lockfiles


def test_compose_lockfiles_agree_with_the_main_ones() -> None:
    """The PostgreSQL drivers added for the compose images pin what the main lockfiles pin, if anything."""
    def pins(path: Path) -> dict[str, str]:
        found = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", path.read_text(), re.M)
        return {name.lower(): version for name, version in found}

    for extra, main in [("airflow-postgres.txt", "airflow.txt"), ("superset-postgres.txt", "superset.txt")]:
        extra_pins, main_pins = pins(COMPOSE / "requirements" / extra), pins(ROOT / "requirements" / main)
        assert extra_pins
        for name, version in extra_pins.items():
            assert main_pins.get(name, version) == version, (extra, name)


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_images() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venvs", ".lakehouse", "compose/.env", ".git"} <= set(ignored)
    assert "compose/.env" in (ROOT / ".gitignore").read_text().split()


# --- The preflight refuses placeholders -----------------------------------------------------------
def run_preflight(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(PREFLIGHT)], env={"PATH": os.environ.get("PATH", ""), **env},
                          capture_output=True, text=True, timeout=30, check=False)


def test_preflight_refuses_the_placeholders_and_accepts_real_secrets() -> None:
    example = {k: v for k, v in env_example().items()}
    done = run_preflight(example)
    assert done.returncode == 1
    for name in preflight_names():
        assert f"  {name}: still a placeholder" in done.stderr, name
    good = real_env()
    done = run_preflight(good)
    assert done.returncode == 0, done.stderr
    assert "no placeholder left" in done.stdout


@pytest.mark.parametrize(("name", "value", "why"), [
    ("CLICKHOUSE_PASSWORD", "", "not set"),
    ("CLICKHOUSE_PASSWORD", "Change-Me-Later-Please", "still a placeholder"),
    ("MINIO_ROOT_PASSWORD", "minioadmin", "still a placeholder"),
    ("CATALOG_TOKEN_SECRET", "abc123", "shorter than 16"),
    ("CATALOG_DB_PASSWORD", "x" * 20 + "@host/db", "only letters, digits"),
    ("AIRFLOW_FERNET_KEY", "a" * 44, "not a Fernet key"),
])
def test_preflight_refuses_a_weak_value_and_never_prints_it(name: str, value: str, why: str) -> None:
    env = {**real_env(), name: value}
    done = run_preflight(env)
    assert done.returncode == 1 and f"  {name}: {why}" in done.stderr, done.stderr
    shown = done.stdout + done.stderr
    secret_values = [v for k, v in env.items() if v and env_example().get(k) == PLACEHOLDER]
    assert not [v for v in secret_values if v in shown]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_make_env_writes_a_private_env_the_preflight_accepts(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    done = subprocess.run(["sh", str(COMPOSE / "make-env.sh"), str(target)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert target.stat().st_mode & 0o777 == 0o600
    written = dict(line.split("=", 1) for line in target.read_text().splitlines() if line and line[0] != "#")
    assert set(written) == set(env_example()) and PLACEHOLDER not in written.values()
    assert run_preflight(written).returncode == 0
    again = subprocess.run(["sh", str(COMPOSE / "make-env.sh"), str(target)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert again.returncode == 1 and "not overwriting" in again.stderr
    assert dict(line.split("=", 1) for line in target.read_text().splitlines() if line and line[0] != "#") == written


def test_platform_commands_of_the_services_exist() -> None:
    """Every service running the platform image calls a `lakehouse` command that the CLI has (a renamed or
    missing command would fail only inside the container)."""
    lakehouse = Path(sys.executable).parent / "lakehouse"
    checked = 0
    for name, svc in services().items():
        argv = svc.get("command")
        if isinstance(argv, list) and argv and argv[0] == "lakehouse":
            words = [a for a in argv[1:] if not a.startswith("-")]
            proc = subprocess.run([str(lakehouse), *words, "--help"], capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0, f"{name}: `lakehouse {' '.join(words)}` is no command: {proc.stderr[-300:]}"
            checked += 1
    assert checked >= 2  # the pipeline job and the Superset provisioning


def test_compose_superset_has_the_local_content_security_policy(tmp_path: Path) -> None:
    """compose's superset_config.py keeps the trimmed CSP of the local service (nothing loaded from outside
    the server: Superset's default allows a telemetry pixel, map tiles and web fonts)."""
    import runpy

    from lakehouse.config import load_config
    from lakehouse.services.superset import superset_settings

    local_file = tmp_path / "local_superset_config.py"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAKEHOUSE_HOME", str(tmp_path / "home"))
        mp.setenv("SUPERSET_SECRET_KEY", "x" * 32)
        mp.setenv("SUPERSET_DATABASE_URI", "sqlite://")
        local_file.write_text(superset_settings(load_config()))
        local = runpy.run_path(str(local_file))
        compose = runpy.run_path(str(ROOT / "compose" / "superset" / "superset_config.py"))
    for key in ("TALISMAN_ENABLED", "TALISMAN_CONFIG", "SCARF_ANALYTICS", "THEME_FONT_URL_ALLOWED_DOMAINS"):
        assert compose.get(key) == local[key], key

"""The Superset service's files and wiring, without starting it: superset_config.py (private, the secret
key read from the environment, metadata in the state dir, nothing loaded from outside), the gunicorn
command (capped workers, no secret on it), the dependency on the ClickHouse front, the status hint."""

from __future__ import annotations

import stat

import pytest

from lakehouse.config import ConfigError, load_config
from lakehouse.services import superset
from lakehouse.services.registry import get_service
from lakehouse.services.supervisor import resolve


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_file_is_private_and_reads_the_key_from_the_environment(cfg) -> None:
    path = superset.write_config(cfg)
    assert _mode(path) == 0o600 and _mode(superset.home(cfg)) == 0o700
    text = path.read_text()
    assert cfg.superset.secret_key and cfg.superset.secret_key not in text
    namespace: dict = {}
    env = superset.env(cfg)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SUPERSET_SECRET_KEY", env["SUPERSET_SECRET_KEY"])
        exec(compile(text, str(path), "exec"), namespace)  # noqa: S102 - the file Superset imports
    assert namespace["SECRET_KEY"] == cfg.superset.secret_key
    assert namespace["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{superset.database_file(cfg)}"
    assert str(cfg.home) in namespace["DATA_DIR"]
    csp = namespace["TALISMAN_CONFIG"]["content_security_policy"]
    assert all(src in ("'self'", "blob:", "data:", "'unsafe-inline'", "'strict-dynamic'", "'none'")
               for srcs in csp.values() for src in ([srcs] if isinstance(srcs, str) else srcs)), csp
    assert env["SUPERSET_CONFIG_PATH"] == str(path)


def test_gunicorn_is_capped_and_carries_no_secret(cfg) -> None:
    svc = get_service("superset")
    argv = svc.command(cfg) if superset.venv(cfg).exists() else pytest.skip("no .venvs/superset")
    assert argv[0] == str(superset.venv(cfg) / "bin" / "gunicorn")
    assert argv[argv.index("--workers") + 1] == "1" and int(argv[argv.index("--threads") + 1]) <= 4
    assert f"{cfg.superset.host}:{cfg.superset.port}" in argv
    line = " ".join(argv)
    assert cfg.superset.secret_key not in line and cfg.superset.admin_password not in line


def test_registered_after_the_clickhouse_front_with_a_hint_that_hides_the_password(cfg) -> None:
    assert [s.name for s in resolve(["superset"])] == ["clickhouse", "superset"]
    svc = get_service("superset")
    assert svc.health_path == "/health" and svc.after_start is not None
    hint = svc.hint(cfg)
    assert "secrets.json" in hint and "superset.admin_password" in hint
    assert cfg.superset.admin_password not in hint


def test_a_bad_admin_user_is_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="admin_user"):
        load_config(env={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_SUPERSET__ADMIN_USER": "ad min"})

"""Configuration: precedence (defaults < file < env), generated secrets, errors that name the key."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from lakehouse.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "lakehouse.toml"
    p.write_text(text)
    return p


def test_defaults_file_env_precedence(tmp_path: Path) -> None:
    f = write(tmp_path, "[catalog]\nport = 9000\nhost = '127.0.0.2'\n")
    env = {"LAKEHOUSE_HOME": str(tmp_path / "h"), "LAKEHOUSE_CATALOG__PORT": "18181"}
    cfg = load_config(env=env, config_file=f)
    assert cfg.catalog.port == 18181
    assert cfg.source_of("catalog.port") == "env LAKEHOUSE_CATALOG__PORT"
    assert cfg.catalog.host == "127.0.0.2"
    assert cfg.source_of("catalog.host") == str(f)
    assert cfg.clickhouse.port == 8123
    assert cfg.source_of("clickhouse.port") == "built-in default"
    assert cfg.catalog_uri == "http://127.0.0.2:18181"


def test_nested_env_and_lists(tmp_path: Path) -> None:
    env = {
        "LAKEHOUSE_HOME": str(tmp_path / "h"),
        "LAKEHOUSE_SOURCES__MOEX__BASE_URL": "http://127.0.0.1:9999",
        "LAKEHOUSE_SOURCES__MOEX__TICKERS": "sber, gazp",
        "LAKEHOUSE_SOURCES__YAHOO__TICKERS": '["AAPL", "IBM"]',
        "LAKEHOUSE_CATALOG__AUTH": "true",
    }
    cfg = load_config(env=env, config_file=write(tmp_path, ""))
    assert cfg.sources_config.moex.base_url == "http://127.0.0.1:9999"
    assert cfg.sources_config.moex.tickers == ["SBER", "GAZP"]
    assert cfg.sources_config.yahoo.tickers == ["AAPL", "IBM"]
    assert cfg.catalog.auth is True


def test_home_and_mode_derived_paths(tmp_path: Path) -> None:
    f = write(tmp_path, "[general]\nmode = 'services'\n")
    cfg = load_config(env={}, config_file=f)
    assert cfg.home == (tmp_path / ".lakehouse").resolve()
    assert cfg.warehouse_uri == "s3://lakehouse/warehouse"
    cfg2 = load_config(env={"LAKEHOUSE_HOME": str(tmp_path / "x")}, config_file=write(tmp_path, ""))
    assert cfg2.warehouse_uri == (tmp_path / "x" / "warehouse").as_uri()
    assert cfg2.catalog_db_url.startswith("sqlite:///") and cfg2.catalog_db_url.endswith("catalog.db")


def test_secrets_generated_once_and_reused(tmp_path: Path) -> None:
    env = {"LAKEHOUSE_HOME": str(tmp_path / "h")}
    f = write(tmp_path, "")
    a = load_config(env=env, config_file=f)
    b = load_config(env=env, config_file=f)
    assert a.clickhouse.password and a.clickhouse.password == b.clickhouse.password
    assert a.objectstore.secret_key == b.objectstore.secret_key
    secrets_file = tmp_path / "h" / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert json.loads(secrets_file.read_text())["clickhouse.password"] == a.clickhouse.password
    assert a.source_of("clickhouse.password").startswith("generated")
    c = load_config(env={**env, "LAKEHOUSE_CLICKHOUSE__PASSWORD": "given"}, config_file=f)
    assert c.clickhouse.password == "given"


@pytest.mark.parametrize(
    ("env", "file_text", "expected"),
    [
        ({"LAKEHOUSE_CATALOG__PORT": "abc"}, "", ["catalog.port", "env LAKEHOUSE_CATALOG__PORT", "integer"]),
        ({"LAKEHOUSE_CATALOG__PORT": "70000"}, "", ["catalog.port", "LAKEHOUSE_CATALOG__PORT"]),
        ({"LAKEHOUSE_CATALOG__PROT": "1"}, "", ["LAKEHOUSE_CATALOG__PROT", "unknown key 'prot'"]),
        ({"LAKEHOUSE_NOPE__PORT": "1"}, "", ["LAKEHOUSE_NOPE__PORT", "unknown config section 'nope'"]),
        ({}, "[general]\nmode = 'cloud'\n", ["general.mode", "lakehouse.toml"]),
        ({}, "[clickhouse]\nprot = 1\n", ["unknown key 'prot'", "lakehouse.toml"]),
        ({}, "[catalog\nport=1", ["not valid TOML"]),
    ],
)
def test_errors_name_key_and_source(tmp_path: Path, env, file_text, expected) -> None:
    f = write(tmp_path, file_text)
    with pytest.raises(ConfigError) as info:
        load_config(env={"LAKEHOUSE_HOME": str(tmp_path / "h"), **env}, config_file=f)
    for part in expected:
        assert part in str(info.value)


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LAKEHOUSE_CONFIG"):
        load_config(env={"LAKEHOUSE_CONFIG": str(tmp_path / "missing.toml")})


def test_committed_defaults_load(tmp_path: Path) -> None:
    from lakehouse.config import PACKAGE_ROOT

    cfg = load_config(env={"LAKEHOUSE_HOME": str(tmp_path)}, config_file=PACKAGE_ROOT / "lakehouse.toml")
    assert cfg.mode == "embedded"
    assert cfg.clickhouse.database == "marts"
    assert cfg.sources_config.default == "sample"

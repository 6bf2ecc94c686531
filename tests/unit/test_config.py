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
    assert cfg.origin_of("catalog.port") == "env LAKEHOUSE_CATALOG__PORT"
    assert cfg.catalog.host == "127.0.0.2"
    assert cfg.origin_of("catalog.host") == str(f)
    assert cfg.clickhouse.port == 8123
    assert cfg.origin_of("clickhouse.port") == "built-in default"
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
    assert a.origin_of("clickhouse.password").startswith("generated")
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


def test_origins_are_not_the_sources_section(tmp_path: Path) -> None:
    f = write(tmp_path, "[sources]\ndefault = 'moex'\n")
    cfg = load_config(env={"LAKEHOUSE_HOME": str(tmp_path / "h"), "LAKEHOUSE_SOURCES__MOEX__BOARD": "TQTF"},
                      config_file=f)
    assert cfg.sources_config.default == "moex" and cfg.sources_config.moex.board == "TQTF"
    assert cfg.origins["sources.default"] == str(f)
    assert cfg.origin_of("sources.moex.board") == "env LAKEHOUSE_SOURCES__MOEX__BOARD"
    assert not hasattr(cfg, "sources")


def test_settings_read_the_process_environment(tmp_path: Path, monkeypatch) -> None:
    """Settings alone (pydantic-settings) reads LAKEHOUSE_* from os.environ and LAKEHOUSE_CONFIG's file."""
    from lakehouse.config import Settings

    f = write(tmp_path, "[clickhouse]\ndatabase = 'filedb'\nport = 9001\n")
    monkeypatch.setenv("LAKEHOUSE_CONFIG", str(f))
    monkeypatch.setenv("LAKEHOUSE_CLICKHOUSE__PORT", "9002")
    s = Settings()
    assert (s.clickhouse.database, s.clickhouse.port) == ("filedb", 9002)


def test_env_toml_literals_and_inline_tables(tmp_path: Path) -> None:
    env = {
        "LAKEHOUSE_HOME": str(tmp_path / "h"),
        "LAKEHOUSE_CATALOG__CLIENTS": '{etl = "sha256$ab$cd", bi = "sha256$ef$01"}',
        "LAKEHOUSE_MLFLOW__MODELS": "['naive', 'ridge']",
        "LAKEHOUSE_SOURCES__SAMPLE__TICKERS": "ibm",
    }
    cfg = load_config(env=env, config_file=write(tmp_path, ""))
    assert cfg.catalog.clients == {"etl": "sha256$ab$cd", "bi": "sha256$ef$01"}
    assert cfg.mlflow.models == ["naive", "ridge"]
    assert cfg.sources_config.sample.tickers == ["IBM"]


@pytest.mark.parametrize(
    ("env", "file_text", "expected"),
    [
        ({}, "[nope]\nport = 1\n", ["unknown section [nope]", "lakehouse.toml"]),
        ({}, "[sources.moex]\nbord = 'x'\n", ["unknown key 'bord' in [sources.moex]", "lakehouse.toml", "board"]),
        ({"LAKEHOUSE_SOURCES__NOPE__X": "1"}, "", ["LAKEHOUSE_SOURCES__NOPE__X", "unknown config section"]),
        ({"LAKEHOUSE_CATALOG_PORT__X": "1"}, "", ["LAKEHOUSE_CATALOG_PORT__X", "unknown config section"]),
        ({"LAKEHOUSE_SOURCES__MOEX__TIMEOUT_SECONDS": "-1"}, "", ["sources.moex.timeout_seconds", "-1",
                                                                  "env LAKEHOUSE_SOURCES__MOEX__TIMEOUT_SECONDS"]),
    ],
)
def test_more_errors_name_key_and_source(tmp_path: Path, env, file_text, expected) -> None:
    f = write(tmp_path, file_text)
    with pytest.raises(ConfigError) as info:
        load_config(env={"LAKEHOUSE_HOME": str(tmp_path / "h"), **env}, config_file=f)
    for part in expected:
        assert part in str(info.value)


def test_catalog_auth_follows_the_mode_unless_set(tmp_path: Path) -> None:
    home = {"LAKEHOUSE_HOME": str(tmp_path / "h")}
    embedded = load_config(env=home, config_file=write(tmp_path, ""))
    assert embedded.catalog.auth is False
    services = load_config(env={**home, "LAKEHOUSE_GENERAL__MODE": "services"}, config_file=write(tmp_path, ""))
    assert services.catalog.auth is True
    assert services.origin_of("catalog.auth") == "built-in default for services mode"
    off = load_config(env={**home, "LAKEHOUSE_GENERAL__MODE": "services", "LAKEHOUSE_CATALOG__AUTH": "false"},
                      config_file=write(tmp_path, ""))
    assert off.catalog.auth is False and off.origin_of("catalog.auth") == "env LAKEHOUSE_CATALOG__AUTH"
    f = write(tmp_path, "[general]\nmode = 'services'\n[catalog]\nauth = false\n")
    assert load_config(env=home, config_file=f).catalog.auth is False
    on = load_config(env={**home, "LAKEHOUSE_CATALOG__AUTH": "true"}, config_file=write(tmp_path, ""))
    assert on.catalog.auth is True


def test_committed_defaults_in_services_mode_turn_auth_on(tmp_path: Path) -> None:
    from lakehouse.config import PACKAGE_ROOT

    env = {"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_GENERAL__MODE": "services"}
    cfg = load_config(env=env, config_file=PACKAGE_ROOT / "lakehouse.toml")
    assert cfg.catalog.auth is True and cfg.catalog.platform_secret


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("catalog.db", "postgresql+psycopg://lake:pw@db:5432/catalog", "postgresql+psycopg://lake:****@db:5432/catalog"),
        ("mlflow.tracking_uri", "https://u:p%40ss@host/x", "https://u:****@host/x"),
        ("catalog.db", "postgresql://u:p/a?b#c@db/cat", "postgresql://u:****@db/cat"),
        ("catalog.db", "sqlite:////tmp/catalog.db", "sqlite:////tmp/catalog.db"),
        ("mlflow.tracking_uri", "http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sources.moex.base_url", "http://user@host", "http://user@host"),
        ("clickhouse.password", "pw", "****"),
        ("catalog.clients", {"etl": "sha256$a$b"}, {"etl": "****"}),
        ("mlflow.models", ["naive"], ["naive"]),
    ],
)
def test_mask(key, value, shown) -> None:
    from lakehouse.config import mask

    assert mask(key, value) == shown


def test_every_secret_named_key_is_masked() -> None:
    """Keys named like secrets are secret keys, also ones no generator fills (added later)."""
    from lakehouse.config import SECRET_KEYS, Config

    assert {"clickhouse.password", "objectstore.secret_key", "objectstore.access_key", "catalog.token_secret",
            "catalog.platform_secret", "catalog.clients", "superset.secret_key"} <= SECRET_KEYS
    assert "catalog.token_ttl_seconds" not in SECRET_KEYS and "catalog.auth" not in SECRET_KEYS
    assert "origins" in Config.__dataclass_fields__


def test_error_on_a_secret_shows_no_value(tmp_path: Path) -> None:
    f = write(tmp_path, "[objectstore]\nsecret_key = 4242424242\n[catalog]\ndb = ['postgresql://u:pw-777@h/db']\n")
    env = {"LAKEHOUSE_HOME": str(tmp_path / "h")}
    with pytest.raises(ConfigError) as info:
        load_config(env=env, config_file=f)
    text = str(info.value)
    assert "objectstore.secret_key" in text and str(f) in text and "catalog.db" in text
    assert "4242424242" not in text and "pw-777" not in text


def test_repr_and_traceback_hide_secrets(tmp_path: Path) -> None:
    """A failing test or a traceback prints the config or the error chain: no secret may appear there."""
    import traceback

    env = {"LAKEHOUSE_HOME": str(tmp_path / "h"), "LAKEHOUSE_CATALOG__DB": "postgresql://u:pw-778@h/db"}
    cfg = load_config(env=env, config_file=write(tmp_path, ""))
    text = repr(cfg)
    assert "clickhouse" in text and "pw-778" not in text
    for value in json.loads((tmp_path / "h" / "secrets.json").read_text()).values():
        assert value not in text

    f = write(tmp_path, "[clickhouse]\npassword = 4343434343\n")
    with pytest.raises(ConfigError) as info:
        load_config(env=env, config_file=f)
    assert "4343434343" not in "".join(traceback.format_exception(info.value))


PROFILED = """
[catalog]
host = "127.0.0.1"
port = 8181
[catalog.clients]
a = "sha256$x$y"
[clickhouse]
host = "127.0.0.1"
[profiles.compose.general]
mode = "services"
[profiles.compose.catalog]
host = "catalog"
[profiles.compose.catalog.clients]
b = "sha256$p$q"
[profiles.other.clickhouse]
port = 18123
"""


def test_profile_is_laid_over_the_file_and_under_the_environment(tmp_path: Path) -> None:
    f = write(tmp_path, PROFILED)
    home = str(tmp_path / "h")
    plain = load_config(env={"LAKEHOUSE_HOME": home}, config_file=f)
    assert (plain.mode, plain.catalog.host, plain.catalog.clients) == ("embedded", "127.0.0.1", {"a": "sha256$x$y"})
    env = {"LAKEHOUSE_HOME": home, "LAKEHOUSE_PROFILE": "compose", "LAKEHOUSE_CLICKHOUSE__HOST": "ch"}
    cfg = load_config(env=env, config_file=f)
    assert cfg.mode == "services" and cfg.catalog.auth is True  # the profile's mode, and what follows from it
    assert cfg.catalog.host == "catalog" and cfg.catalog.port == 8181  # laid over, section by section
    assert cfg.catalog.clients == {"b": "sha256$p$q"}  # a table-valued key is replaced, not merged
    assert cfg.clickhouse.host == "ch" and cfg.clickhouse.port == 8123  # env wins; other profiles unused
    assert cfg.origin_of("catalog.host") == f"{f} [profiles.compose]"
    assert cfg.origin_of("catalog.port") == str(f)
    assert cfg.origin_of("clickhouse.host") == "env LAKEHOUSE_CLICKHOUSE__HOST"


@pytest.mark.parametrize(("text", "profile", "expected"), [
    (PROFILED, "nope", "LAKEHOUSE_PROFILE=nope: .* has no \\[profiles.nope\\] \\(profiles there: compose, other\\)"),
    ("[catalog]\nport = 1\n", "compose", "has no \\[profiles.compose\\] \\(profiles there: none\\)"),
    ("[profiles]\ncompose = 1\n", "compose", "\\[profiles\\] must hold one table per profile"),
    ("[profiles.compose.catalog]\nhots = 'x'\n", "compose",
     "unknown key 'hots' in \\[catalog\\] .*\\[profiles.compose\\]"),
    ("[profiles.compose.catalog]\nport = 'x'\n", "compose", "catalog.port = 'x' \\(from .*\\[profiles.compose\\]\\)"),
])
def test_profile_errors_name_the_profile(tmp_path: Path, text: str, profile: str, expected: str) -> None:
    env = {"LAKEHOUSE_HOME": str(tmp_path / "h"), "LAKEHOUSE_PROFILE": profile}
    with pytest.raises(ConfigError, match=expected):
        load_config(env=env, config_file=write(tmp_path, text))


def test_committed_compose_profile_points_at_the_compose_services(tmp_path: Path) -> None:
    env = {"LAKEHOUSE_HOME": str(tmp_path / "h"), "LAKEHOUSE_PROFILE": "compose"}
    cfg = load_config(env=env, config_file=Path(__file__).parents[2] / "lakehouse.toml")
    assert cfg.mode == "services" and cfg.catalog.auth is True and cfg.catalog.external is True
    assert (cfg.s3_endpoint, cfg.catalog_uri, cfg.clickhouse.url) == (
        "http://minio:9000", "http://catalog:8181", "http://clickhouse:8123")
    assert cfg.warehouse_uri == "s3://lakehouse/warehouse"

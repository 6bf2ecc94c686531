"""Stage fingerprints: what changes a stage's fingerprint, and the reasons a rerun gives."""

from __future__ import annotations

import datetime as dt

from lakehouse.config import load_config
from lakehouse.pipeline.assets import VOLATILE
from lakehouse.pipeline.fingerprint import Fingerprint, Record, assess, code_files, config_values
from lakehouse.pipeline.graph import Stage

STAGE = Stage("s", "a stage", run="x:y", reads=("raw.quotes",), writes=("features.t",), code=("proj/**",))


def _record(fp: Fingerprint, outputs: dict) -> Record:
    return Record("s", fp.value, dict(fp.inputs), dict(outputs), dict(fp.code), dict(fp.packages), dict(fp.config),
                  dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def _fp(**over) -> Fingerprint:
    base = {"inputs": {"raw.quotes": "1"}, "code": {"proj/a.sql": "aa"}, "packages": {"dbt-core": "1.11"},
            "config": {"mlflow.models": ["naive"]}}
    base.update(over)
    return Fingerprint(**base)


def test_code_files_hash_every_file_below_a_glob_and_ignore_build_output(tmp_path) -> None:
    (tmp_path / "proj" / "models").mkdir(parents=True)
    (tmp_path / "proj" / "target").mkdir()
    (tmp_path / "proj" / "__pycache__").mkdir()
    (tmp_path / "proj" / "models" / "m.sql").write_text("select 1")
    (tmp_path / "proj" / "target" / "compiled.sql").write_text("x")
    (tmp_path / "proj" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"x")
    first = code_files(("proj/**",), tmp_path)
    assert list(first) == ["proj/models/m.sql"]
    (tmp_path / "proj" / "models" / "m.sql").write_text("select 2")
    assert code_files(("proj/**",), tmp_path) != first


def test_fresh_when_nothing_changed() -> None:
    fp = _fp()
    verdict = assess(STAGE, fp, {"features.t": "9"}, _record(fp, {"features.t": "9"}))
    assert verdict.state == "fresh" and not verdict.must_run


def test_each_kind_of_change_makes_it_stale_with_a_reason() -> None:
    old = _fp()
    rec = _record(old, {"features.t": "9"})
    cases = {
        "new input raw.quotes: 1 -> 2": (_fp(inputs={"raw.quotes": "2"}), {"features.t": "9"}, False),
        "code changed: proj/a.sql": (_fp(code={"proj/a.sql": "bb"}), {"features.t": "9"}, True),
        "packages changed: dbt-core 1.11 -> 1.12": (_fp(packages={"dbt-core": "1.12"}), {"features.t": "9"}, True),
        "config changed: mlflow.models": (_fp(config={"mlflow.models": ["naive", "ridge"]}), {"features.t": "9"},
                                          True),
        "output features.t is missing": (old, {"features.t": None}, False),
        "output features.t changed outside this stage": (old, {"features.t": "10"}, False),
    }
    for reason, (fp, outputs, rebuild) in cases.items():
        verdict = assess(STAGE, fp, outputs, rec)
        assert verdict.state == "stale", reason
        assert any(r.startswith(reason) for r in verdict.reasons), (reason, verdict.reasons)
        assert verdict.rebuild is rebuild, reason


def test_never_ran_and_live_sources_always_run() -> None:
    assert assess(STAGE, _fp(), {}, None).why() == "never ran successfully"
    live = _fp(inputs={"raw.quotes": VOLATILE})
    verdict = assess(STAGE, live, {"features.t": "9"}, _record(live, {"features.t": "9"}))
    assert verdict.state == "stale" and "live source" in verdict.why()


def test_config_values_select_sections_and_never_secrets(tmp_path) -> None:
    cfg = load_config(env={"LAKEHOUSE_HOME": str(tmp_path)})
    values = config_values(cfg, ("sources.sample", "clickhouse"))
    assert "sources.sample.tickers" in values and "clickhouse.database" in values
    assert "clickhouse.password" not in values

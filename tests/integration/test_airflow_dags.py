"""The DAGs as Airflow loads them (a DagBag in .venvs/airflow): no import error, and every task,
dependency, schedule and Asset inlet/outlet matches the pipeline declaration and the configuration."""

from __future__ import annotations

import copy
import json

import pytest

from lakehouse.pipeline.export import document
from tests.airflow_support import AIRFLOW_PYTHON, dagbag, drift, load_dag_plan
from tests.conftest import BIN, applied_env, isolated_env

pytestmark = pytest.mark.skipif(not AIRFLOW_PYTHON.exists(), reason="no .venvs/airflow (run make setup)")
CLI = str(BIN / "lakehouse")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The DagBag of dags/, parsed from a *stale* graph document: the DAG file must refresh it first."""
    tmp = tmp_path_factory.mktemp("dagbag")
    env = isolated_env(tmp / "home")
    with applied_env(env) as cfg:
        spec = tmp / "pipeline.json"
        doc = document(cfg)
        stale = {**doc, "stages": [s for s in doc["stages"] if s["name"] != "evaluate"]}
        stale["sources"] = {**doc["sources"], "graph": {**doc["sources"]["graph"], "sha256": "0" * 64}}
        spec.write_text(json.dumps(stale))
        dag_plan = load_dag_plan()
        dump = dagbag({**env, dag_plan.ENV_SPEC: str(spec), dag_plan.ENV_CLI: CLI}, tmp / "airflow")
        yield cfg, dump, json.loads(spec.read_text())


def test_no_import_errors_and_only_the_dag_file_is_parsed(loaded) -> None:
    _, dump, _ = loaded
    assert dump["import_errors"] == {}
    assert [f.rsplit("/", 1)[1] for f in dump["files"]] == ["pipeline_dags.py"]
    assert set(dump["dags"]) == {"quotes_ingest", "lake_features", "train_models", "predict", "dwh_marts"}


def test_the_stale_graph_document_was_refreshed(loaded) -> None:
    cfg, dump, refreshed = loaded
    assert "evaluate" in dump["dags"]["predict"]["tasks"]
    assert refreshed == document(cfg)


def test_dags_match_the_pipeline_declaration(loaded) -> None:
    cfg, dump, _ = loaded
    assert drift(dump, cfg, CLI) == []


def test_drift_is_detected(loaded) -> None:
    """The comparison is not vacuous: each kind of tampering with the loaded DAGs is reported."""
    cfg, dump, _ = loaded

    def tampered(edit) -> list[str]:
        d = copy.deepcopy(dump)
        edit(d["dags"])
        return drift(d, cfg, CLI)

    def drop_outlet(d):
        d["quotes_ingest"]["tasks"]["ingest"]["outlets"].pop()

    def drop_dependency(d):
        d["predict"]["tasks"]["evaluate"]["upstream"] = []

    def other_cron(d):
        d["train_models"]["schedule"]["cron"] = "0 6 * * 0"

    def lose_task(d):
        del d["predict"]["tasks"]["evaluate"]

    def and_instead_of_or(d):
        d["predict"]["schedule"]["assets"] = {"all": d["predict"]["schedule"]["assets"]["any"]}

    def overlapping_runs(d):
        d["lake_features"]["max_active_runs"] = 16

    def wrong_timeout(d):
        d["dwh_marts"]["tasks"]["transform-dwh"]["execution_timeout_seconds"] = 60

    def no_retries(d):
        d["quotes_ingest"]["tasks"]["ingest"]["retries"] = 0

    def unscheduled(d):
        d["dwh_marts"]["schedule"]["assets"] = None

    for edit in (drop_outlet, drop_dependency, other_cron, lose_task, and_instead_of_or, overlapping_runs,
                 wrong_timeout, no_retries, unscheduled):
        assert tampered(edit), edit.__name__


def test_tasks_document_and_configure_the_stage(loaded) -> None:
    cfg, dump, _ = loaded
    ingest = dump["dags"]["quotes_ingest"]["tasks"]["ingest"]
    assert ingest["retries"] == cfg.airflow.ingest_retries and ingest["retry_exponential_backoff"] == 2.0
    assert "raw.quotes" in ingest["doc_md"] and "retries" in ingest["doc_md"].lower()
    assert "features.fct_daily_features" in dump["dags"]["lake_features"]["doc_md"]
    for d in dump["dags"].values():
        assert all(t["operator"] == "BashOperator" for t in d["tasks"].values())

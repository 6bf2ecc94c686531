"""dags/dag_plan.py: which stage runs in which DAG, schedules and waits, derived from the graph; the
resolved graph document (`lakehouse plan --format json`) it reads, and its refresh when stale."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from lakehouse.pipeline import graph
from lakehouse.pipeline.export import document
from tests.airflow_support import REQUIRED_PLACEMENT, load_dag_plan
from tests.conftest import BIN, cli_ok, run_cli

dag_plan = load_dag_plan()


def _placement(plans) -> dict[str, list[str]]:
    return {p.dag_id: [t.task_id for t in p.tasks] for p in plans}


def test_stages_land_in_the_dags_of_the_issue(cfg) -> None:
    plans = dag_plan.plan(document(cfg))
    placement = _placement(plans)
    for dag_id, stages in REQUIRED_PLACEMENT.items():
        assert stages <= set(placement[dag_id]), placement
    assert sorted(n for ts in placement.values() for n in ts) == sorted(s.name for s in graph.pipeline(cfg))
    ingest = next(p for p in plans if p.dag_id == "quotes_ingest")
    assert ingest.task("ingest").upstream == ["health"]  # the gate, as in `lakehouse run`
    assert ingest.task("ingest").retries == cfg.airflow.ingest_retries and ingest.task("health").retries == 0
    predict = next(p for p in plans if p.dag_id == "predict")
    assert predict.task("evaluate").upstream == ["predict"]


def test_schedules_follow_the_assets_and_the_config(cfg) -> None:
    plans = {p.dag_id: p for p in dag_plan.plan(document(cfg))}
    features, champion = "features.fct_daily_features", f"mlflow:{cfg.mlflow.model_name}@champion"
    assert plans["quotes_ingest"].cron == cfg.airflow.ingest_schedule and plans["quotes_ingest"].trigger_assets == []
    assert plans["lake_features"].cron is None and plans["lake_features"].trigger_assets == [["raw.quotes"]]
    assert plans["train_models"].cron == cfg.airflow.train_schedule
    [train_trigger] = plans["train_models"].trigger_assets
    assert features in train_trigger
    # OR over the upstream DAGs: a new day of features or a new champion each trigger predict
    from_features, from_training = plans["predict"].trigger_assets
    assert features in from_features and from_training == [champion]
    # AND within one upstream DAG: the marts wait for the forecasts and their evaluation of one predict run
    assert plans["dwh_marts"].trigger_assets == [["ml.predictions", "ml.prediction_accuracy"]]
    # a DAG scheduled on assets waits until they all exist; the cron-only DAG never waits
    wait = plans["predict"].task("predict").wait_for
    assert wait == [*from_features, champion]
    # and a task waits for what it reads from a task before it in its DAG: evaluate before the first forecast
    # would succeed and announce ml.prediction_accuracy, a table it never wrote, starting dwh_marts too early
    assert plans["predict"].task("evaluate").wait_for == [*wait, "ml.predictions"]
    assert plans["quotes_ingest"].task("ingest").wait_for == []
    argv = plans["predict"].task("predict").command("/x/lakehouse")
    assert argv[:6] == ["/x/lakehouse", "run", "--only", "predict", "--skipped-exit-code", "99"]
    assert argv[6:] == [*(x for a in wait for x in ("--wait-for", a)), "--no-report"]


def test_asset_names_follow_the_configuration(tmp_path, monkeypatch) -> None:
    from tests.conftest import applied_env, isolated_env

    env = {**isolated_env(tmp_path / "home"), "LAKEHOUSE_MLFLOW__MODEL_NAME": "other_model",
           "LAKEHOUSE_AIRFLOW__INGEST_SCHEDULE": "15 23 * * 1-5"}
    with applied_env(env) as cfg:
        plans = {p.dag_id: p for p in dag_plan.plan(document(cfg))}
    assert plans["predict"].trigger_assets[-1] == ["mlflow:other_model@champion"]
    assert plans["quotes_ingest"].cron == "15 23 * * 1-5"


def _with_stage(cfg, new: graph.Stage, reads_of: dict[str, tuple[str, ...]] | None = None) -> dict:
    """The document of the graph with ``new`` inserted before the first stage that reads its outputs
    (``reads_of`` adds reads to existing stages)."""
    stages = [replace(s, reads=s.reads + (reads_of or {}).get(s.name, ())) for s in graph.STAGES]
    readers = [i for i, s in enumerate(stages) if set(s.reads) & set(new.writes)]
    at = readers[0] if readers else len(stages)
    stages.insert(at, new)
    return document(cfg, tuple(stages))


def test_a_new_stage_lands_before_the_stage_that_reads_it(cfg) -> None:
    audit = graph.Stage("feature-audit", "checks the features before training", run="x:y",
                        reads=("features.fct_daily_features",), writes=("ml.feature_audit",))
    plans = dag_plan.plan(_with_stage(cfg, audit, {"train": ("ml.feature_audit",)}))
    train = next(p for p in plans if p.dag_id == "train_models")
    tasks = [t.task_id for t in train.tasks]
    assert "feature-audit" in tasks and tasks.index("feature-audit") < tasks.index("train")
    assert "feature-audit" in train.task("train").upstream and "feature-audit" in train.placed_by_rule
    assert any("features.fct_daily_features" in g for g in train.trigger_assets)


def test_a_new_follow_up_stage_lands_after_what_it_reads(cfg) -> None:
    report = graph.Stage("report", "a report of the forecasts", run="x:y",
                         reads=("ml.predictions",), writes=("ml.forecast_report",))
    plans = dag_plan.plan(_with_stage(cfg, report))
    assert "report" in [t.task_id for t in next(p for p in plans if p.dag_id == "predict").tasks]


def test_data_flowing_against_the_dag_order_is_refused(cfg) -> None:
    # a stage that reads the forecasts and feeds training would need predict before train_models
    loop = graph.Stage("loop", "feeds forecasts back to training", run="x:y", reads=("ml.predictions",),
                       writes=("ml.feedback",))
    stages = list(graph.STAGES)
    stages.insert([s.name for s in stages].index("evaluate"), loop)
    doc = document(cfg, tuple(stages))
    doc["stages"] = [{**s, "reads": s["reads"] + ["ml.feedback"]} if s["name"] == "transform-dwh" else s
                     for s in doc["stages"]]
    plans = dag_plan.plan(doc)  # placed before transform-dwh: fine
    assert "loop" in [t.task_id for t in next(p for p in plans if p.dag_id == "dwh_marts").tasks]
    bad = [dag_plan.DagSpec("a", ("health", "ingest", "transform-lake", "train", "predict", "evaluate", "loop"),
                            after=("b",)),
           dag_plan.DagSpec("b", ("transform-dwh",))]
    with pytest.raises(dag_plan.PlanError, match="does not follow"):
        dag_plan.plan(doc, bad)


def test_unknown_stage_and_format_are_refused(cfg) -> None:
    doc = document(cfg)
    with pytest.raises(dag_plan.PlanError, match="does not have"):
        dag_plan.plan(doc, (*dag_plan.DAGS[:-1], dag_plan.DagSpec("dwh_marts", ("transform-dwh", "nope"))))
    with pytest.raises(dag_plan.PlanError, match="format"):
        dag_plan.plan({**doc, "format": 99})


def test_plan_json_cli_has_the_graph_and_no_secret(lh_env, cfg) -> None:
    out = cli_ok(run_cli("plan", "--format", "json", env=lh_env))
    doc = json.loads(out)
    assert [s["name"] for s in doc["stages"]] == [s.name for s in graph.pipeline(cfg)]
    assert doc["assets"]["raw.quotes"] == {"kind": "iceberg", "writer": "ingest"}
    assert doc["airflow"]["ingest_schedule"] == cfg.airflow.ingest_schedule
    assert cfg.airflow.admin_password and cfg.airflow.admin_password not in out
    assert "admin_password" not in out and cfg.objectstore.secret_key not in out


def test_stale_document_is_refreshed_through_the_core_cli(lh_env, cfg, tmp_path: Path) -> None:
    spec = tmp_path / "pipeline.json"
    doc = document(cfg)
    assert not dag_plan.is_stale(doc)
    stale = {**doc, "stages": doc["stages"][:2]}
    stale["sources"] = {**doc["sources"], "graph": {**doc["sources"]["graph"], "sha256": "0" * 64}}
    spec.write_text(json.dumps(stale))
    assert dag_plan.is_stale(stale)
    # without a CLI the stale file is what there is
    assert len(dag_plan.load(spec)["stages"]) == 2
    fresh = dag_plan.load(spec, str(BIN / "lakehouse"))
    assert [s["name"] for s in fresh["stages"]] == [s["name"] for s in doc["stages"]]
    assert json.loads(spec.read_text()) == fresh and not dag_plan.is_stale(fresh)
    # a missing file is written; a failing CLI is a clear error
    spec.unlink()
    assert dag_plan.load(spec, str(BIN / "lakehouse"))["format"] == dag_plan.FORMAT
    spec.unlink()
    with pytest.raises(dag_plan.PlanError, match="failed"):
        dag_plan.load(spec, sys.executable)  # `python plan --format json`: not the CLI
    with pytest.raises(dag_plan.PlanError, match="does not exist"):
        dag_plan.load(spec)


def test_only_the_last_stage_writes_the_run_report(cfg) -> None:
    """Every task is a `lakehouse run --only`, which writes the report by default: the chain writes it once,
    after the graph's last stage, not once per task."""
    tasks = {t.task_id: t for p in dag_plan.plan(document(cfg)) for t in p.tasks}
    last = graph.pipeline(cfg)[-1].name
    writers = [n for n, t in tasks.items() if "--no-report" not in t.command("lakehouse")]
    assert writers == [last]

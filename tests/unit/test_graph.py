"""The pipeline declaration: a valid graph, one writer per asset, and README's diagram drawn from it."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from lakehouse.config import PACKAGE_ROOT, load_config
from lakehouse.pipeline import graph
from lakehouse.pipeline.fingerprint import code_files
from lakehouse.pipeline.render import mermaid


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    cfg = load_config(env={"LAKEHOUSE_HOME": str(tmp_path_factory.mktemp("graph"))})
    return graph.pipeline(cfg)


def test_graph_is_acyclic_and_every_read_has_an_earlier_writer(stages) -> None:
    graph.check(stages)  # raises on any violation
    written: set[str] = set()
    for s in stages:
        for asset in s.reads:
            assert asset in written or graph.is_external(asset), f"{s.name} reads {asset} before anyone writes it"
        written.update(s.writes)
    writers = [a for s in stages for a in s.writes]
    assert len(writers) == len(set(writers)), "an asset has two writers"


def test_check_rejects_a_cycle_a_missing_writer_and_a_second_writer(stages) -> None:
    by = {s.name: s for s in stages}
    reordered = (by["health"], by["transform-lake"], by["ingest"], *[s for s in stages if s.name not in
                                                                    ("health", "ingest", "transform-lake")])
    with pytest.raises(graph.GraphError, match="before its writer ingest"):
        graph.check(reordered)
    orphan = tuple(replace(s, reads=(*s.reads, "nowhere.table")) if s.name == "predict" else s for s in stages)
    with pytest.raises(graph.GraphError, match="nowhere.table, which no stage writes"):
        graph.check(orphan)
    twice = tuple(replace(s, writes=(*s.writes, "raw.quotes")) if s.name == "predict" else s for s in stages)
    with pytest.raises(graph.GraphError, match="written by both"):
        graph.check(twice)


def test_placeholders_follow_the_configuration(tmp_path) -> None:
    cfg = load_config(env={"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_SOURCES__DEFAULT": "moex",
                           "LAKEHOUSE_MLFLOW__MODEL_NAME": "other_model"})
    stages = {s.name: s for s in graph.pipeline(cfg)}
    assert stages["ingest"].reads == ("source:moex",)
    assert "sources.moex" in stages["ingest"].config
    assert "mlflow:other_model@champion" in stages["predict"].reads


def test_downstream_and_select(stages) -> None:
    from lakehouse.pipeline.runner import select

    down = graph.downstream(stages, "transform-lake")
    assert down[0] == "transform-lake" and "transform-dwh" in down and "ingest" not in down
    assert select(stages, only=["predict"]) == ["predict"]
    assert select(stages, start_from="predict")[0] == "predict"
    with pytest.raises(graph.GraphError, match="unknown stage"):
        select(stages, only=["nosuch"])


def test_every_stage_function_and_code_glob_exists(stages) -> None:
    from lakehouse.pipeline.runner import load_function

    for s in stages:
        assert callable(load_function(s.run)), s.run
        if s.inputs_view:
            assert callable(load_function(s.inputs_view)), s.inputs_view
        if not s.always:
            for pattern in s.code:
                assert code_files((pattern,)), f"{s.name}: code pattern {pattern} matches no file"


def test_readme_shows_the_declared_graph(stages) -> None:
    """README's Architecture diagram is `lakehouse plan --format mermaid`, not a hand-drawn copy."""
    readme = (PACKAGE_ROOT / "README.md").read_text()
    blocks = re.findall(r"```mermaid\n(.*?)```", readme, flags=re.S)
    assert blocks, "README has no mermaid block"
    assert mermaid(stages) in blocks, "README's diagram differs from `lakehouse plan --format mermaid`"

"""The lake's table contracts are declared once (lakehouse/contracts.py): every other description of a
lake table -- pyiceberg and Arrow schemas, dbt sources and model YAML of both dbt projects, the
ClickHouse types dbt_dwh uses, the ML stage's feature columns -- derives from it or must equal it."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest
import yaml

from lakehouse import contracts
from lakehouse.config import PACKAGE_ROOT, load_config
from lakehouse.contracts import CONTRACTS, DUCKDB, FEATURES, RAW_QUOTES, STG_QUOTES
from lakehouse.pipeline import graph


def _yaml(path: str) -> dict:
    return yaml.safe_load((PACKAGE_ROOT / path).read_text())


def test_dbt_dwh_sources_match_the_contracts_and_the_stage_reads(tmp_path) -> None:
    stages = graph.pipeline(load_config(env={"LAKEHOUSE_HOME": str(tmp_path)}))
    reads = [a for a in graph.get(stages, "transform-dwh").reads if graph.asset_kind(a) == "iceberg"]
    doc = _yaml("dbt_dwh/models/staging/_lake_sources.yml")
    declared = {f"{src['name']}.{t['name']}": t for src in doc["sources"] for t in src["tables"]}
    assert sorted(declared) == sorted(reads), "dbt_dwh's sources differ from the transform-dwh stage's reads"
    for ident, table in declared.items():
        got = [(c["name"], c["data_type"]) for c in table["columns"]]
        assert got == contracts.contract(ident).clickhouse_columns(), f"{ident}: dbt_dwh source drifted"


def test_dbt_lake_raw_source_matches_the_contract() -> None:
    doc = _yaml("dbt_lake/models/staging/_sources.yml")
    (source,) = doc["sources"]
    (table,) = source["tables"]
    assert f"{source['schema']}.{table['name']}" == RAW_QUOTES.identifier
    got = [(c["name"], c["data_type"].upper()) for c in table["columns"]]
    assert got == [(c.name, DUCKDB[c.type]) for c in RAW_QUOTES.columns]


@pytest.mark.parametrize(("path", "contract"), [
    ("dbt_lake/models/staging/stg_quotes.yml", STG_QUOTES),
    ("dbt_lake/models/features/fct_daily_features.yml", FEATURES),
])
def test_dbt_lake_model_docs_list_exactly_the_contract_columns(path, contract) -> None:
    (model,) = [m for m in _yaml(path)["models"] if m["name"] == contract.name]
    assert [c["name"] for c in model["columns"]] == list(contract.column_names)


def test_the_features_macro_emits_the_contract_columns_in_order() -> None:
    text = (PACKAGE_ROOT / "dbt_lake/macros/daily_features.sql").read_text()
    body = re.search(r"macro daily_feature_columns\(\) -%}(.*?){%- endmacro", text, re.S).group(1)
    assert [c.strip() for c in body.split(",")] == list(FEATURES.column_names)


def test_ml_reads_the_features_contract() -> None:
    from ml.features import CONTRACT_COLUMNS, FEATURES_TABLE

    assert FEATURES.identifier == FEATURES_TABLE and FEATURES.column_names == CONTRACT_COLUMNS


def test_derived_schemas_agree_with_each_other() -> None:
    for c in CONTRACTS.values():
        schema = c.iceberg_schema()
        assert [f.name for f in schema.fields] == list(c.column_names)
        assert [f.required for f in schema.fields] == [col.required for col in c.columns]
        arrow = schema.as_arrow()
        assert arrow.names == c.arrow_schema.names
        for a, b in zip(arrow, c.arrow_schema, strict=True):
            assert a.type.equals(b.type) or (pa.types.is_large_string(a.type) and pa.types.is_string(b.type)), (
                c.identifier, a, b)
        assert len(c.clickhouse_columns()) == len(c.columns)
        for col, _ in c.partition:
            assert col in c.column_names
    raw = RAW_QUOTES.iceberg_schema()
    assert [raw.find_field(i).name for i in raw.identifier_field_ids] == list(RAW_QUOTES.key)
    assert [f.name for f in RAW_QUOTES.partition_spec().fields] == ["source", "trade_date_year"]


def test_ingestion_and_ml_writers_use_the_contracts() -> None:
    from lakehouse.sources.quotes import QUOTE_SCHEMA, REJECTED_SCHEMA
    from lakehouse.stages.ingest.tables import TABLES
    from ml import lake_tables

    assert {f"raw.{k}": v.identifier for k, v in TABLES.items()} == {f"raw.{k}": f"raw.{k}" for k in TABLES}
    assert QUOTE_SCHEMA.names == [n for n in RAW_QUOTES.column_names if n not in ("loaded_at", "load_id")]
    assert REJECTED_SCHEMA.names == [n for n in contracts.RAW_QUOTES_REJECTED.column_names
                                     if n not in ("loaded_at", "load_id")]
    for ident in (lake_tables.PREDICTIONS, lake_tables.PREDICTION_ACCURACY, lake_tables.MODEL_METRICS):
        assert lake_tables.to_arrow(ident, []).schema.equals(contracts.contract(ident).arrow_schema)


def test_unknown_table_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: raw.quotes"):
        contracts.contract("raw.nope")

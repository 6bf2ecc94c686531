"""The dashboard spec (lakehouse/dashboards/spec.py) against the dbt marts it reads, and the import bundle
built from it: every chart reads columns its dataset has, every dataset reads marts that exist, the layout
shows each chart once, and the bundle links its objects by uuid."""

from __future__ import annotations

import io
import re
import zipfile

import yaml
from sqlalchemy.engine import make_url

from lakehouse.config import PACKAGE_ROOT
from lakehouse.dashboards import bundle, spec

MARTS_DIR = PACKAGE_ROOT / "dbt_dwh" / "models" / "marts"


def _mart_columns() -> dict[str, list[str]]:
    """mart name -> the columns its dbt YAML documents."""
    doc = yaml.safe_load((MARTS_DIR / "_marts.yml").read_text())
    return {m["name"]: [c["name"] for c in m.get("columns", [])] for m in doc["models"]}


def _dataset_columns() -> dict[str, set[str]]:
    marts = _mart_columns()
    return {d.name: set(d.columns) if d.is_virtual else set(marts[d.table]) for d in spec.DATASETS}


def _fake_columns() -> dict[str, list[tuple[str, str]]]:
    """Column lists as the provisioner would read them (types do not matter here but for time columns)."""
    out = {}
    for name, cols in _dataset_columns().items():
        out[name] = [(c, "Date32" if c.endswith(("_date", "week_start")) else "Float64") for c in sorted(cols)]
    return out


def test_every_table_dataset_is_a_documented_dbt_mart() -> None:
    marts = _mart_columns()
    models = {p.stem for p in MARTS_DIR.glob("*.sql")}
    for d in spec.DATASETS:
        assert (d.table is None) != (d.sql is None), f"{d.name}: exactly one of table and sql"
        if not d.is_virtual:
            assert d.table in models and d.table in marts, f"{d.name}: no dbt mart {d.table}"
            assert marts[d.table], f"{d.table}: its columns are not documented in _marts.yml"


def test_virtual_datasets_read_existing_mart_columns() -> None:
    marts = _mart_columns()
    for d in spec.DATASETS:
        if not d.is_virtual:
            continue
        assert d.columns and len(set(d.columns)) == len(d.columns), d.name
        read = set(re.findall(r"\bmarts\.(\w+)", d.sql))
        assert read and read <= set(marts), f"{d.name} reads unknown marts {read - set(marts)}"
        known = set().union(*(marts[m] for m in read))
        # every qualified column (alias.column) the SQL reads is a column of one of those marts
        qualified = set(re.findall(r"\b[a-z]\.([a-z_0-9]+)\b", d.sql)) - {"last_date", "last_week", "base_close"}
        assert qualified <= known, f"{d.name}: {sorted(qualified - known)} are not columns of {sorted(read)}"


def test_every_chart_names_columns_of_its_dataset() -> None:
    columns = _dataset_columns()
    assert len({c.name for c in spec.CHARTS}) == len(spec.CHARTS)
    for c in spec.CHARTS:
        assert c.dataset in columns, f"{c.name}: unknown dataset {c.dataset}"
        missing = c.used_columns() - columns[c.dataset]
        assert not missing, f"chart {c.name!r} reads {sorted(missing)}, not columns of {c.dataset}"
        assert c.metrics or c.columns, f"{c.name}: shows nothing"
        assert all("{c}" in m.template for m in c.metrics), c.name


def test_the_dashboard_covers_what_the_issue_asks_for() -> None:
    d = spec.DASHBOARD
    assert d.title == "Stock forecasts"
    placed = [name for row in d.rows for name in row]
    assert sorted(placed) == sorted(c.name for c in spec.CHARTS), "each chart exactly once in the layout"
    assert all(sum(spec.chart(n).width for n in row) <= 12 for row in d.rows)
    assert d.filter_column in _dataset_columns()[d.filter_dataset]
    for c in spec.CHARTS:  # charts the ticker filter reaches have a ticker column; the others are excluded
        assert c.in_ticker_filter == (d.filter_column in _dataset_columns()[c.dataset]), c.name
    used = {(c.dataset, col) for c in spec.CHARTS for col in c.used_columns()}
    for needed in [("price_last_year_and_forecast", "sma_50"), ("price_last_year_and_forecast", "sma_200"),
                   ("price_last_year_and_forecast", "forecast_close"), ("mart_latest_forecast", "expected_change_pct"),
                   ("mart_latest_forecast", "model_name"), ("mart_latest_forecast", "as_of_date"),
                   ("backtest_realized", "predicted_return_pct"), ("backtest_realized", "realized_return_pct"),
                   ("backtest_realized", "direction_hit"), ("backtest_realized", "went_up"),
                   ("mart_model_leaderboard", "holdout_dm_pvalue"), ("weekly_returns_last_2y", "weekly_return_pct")]:
        assert needed in used, f"no chart shows {needed}"


def test_uuids_are_stable_and_distinct() -> None:
    objects = [spec.DATABASE, *spec.DATASETS, *spec.CHARTS, spec.DASHBOARD]
    uuids = [o.uuid for o in objects]
    assert len(set(uuids)) == len(uuids)
    assert spec.chart(spec.CHARTS[0].name).uuid == spec.stable_uuid("chart", spec.CHARTS[0].name)


def test_the_bundle_links_every_object() -> None:
    password = "p@ss/w:rd%?#"  # survives the URI: Superset parses it back with SQLAlchemy
    db = bundle.database_yaml("127.0.0.1", 8123, "dashboard", password, "marts")
    docs = bundle.files(db, _fake_columns(), "AAPL")
    data = bundle.zip_bytes(docs)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = z.namelist()
        assert all(n.startswith("lakehouse_dashboards/") for n in names)
        loaded = {n.split("/", 1)[1]: yaml.safe_load(z.read(n)) for n in names}
    assert loaded["metadata.yaml"]["type"] == "assets"
    (db_doc,) = [v for k, v in loaded.items() if k.startswith("databases/")]
    url = make_url(db_doc["sqlalchemy_uri"])
    assert (url.drivername, url.username, url.password, url.host, url.port, url.database) == (
        "clickhousedb", "dashboard", password, "127.0.0.1", 8123, "marts")
    assert not db_doc["allow_dml"] and "password" not in db_doc
    datasets = {v["uuid"]: v for k, v in loaded.items() if k.startswith("datasets/")}
    charts = {v["uuid"]: v for k, v in loaded.items() if k.startswith("charts/")}
    (dash,) = [v for k, v in loaded.items() if k.startswith("dashboards/")]
    assert all(d["database_uuid"] == db_doc["uuid"] for d in datasets.values())
    assert all(c["dataset_uuid"] in datasets for c in charts.values())
    layout = dash["position"].values()
    in_layout = {v["meta"]["uuid"] for v in layout if isinstance(v, dict) and v.get("type") == "CHART"}
    assert in_layout == set(charts)
    (flt,) = dash["metadata"]["native_filter_configuration"]
    assert flt["targets"][0]["datasetUuid"] in datasets
    assert flt["defaultDataMask"]["filterState"]["value"] == ["AAPL"]
    for c in charts.values():  # the saved query of the chart data API reads what the chart shows
        qc = yaml.safe_load(c["query_context"])
        assert qc["queries"] and qc["form_data"]["viz_type"] == c["viz_type"]
    for ds in datasets.values():
        assert ds["main_dttm_col"] is None or any(
            col["column_name"] == ds["main_dttm_col"] and col["is_dttm"] for col in ds["columns"]), ds["table_name"]

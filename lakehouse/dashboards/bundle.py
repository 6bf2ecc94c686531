"""The spec (``spec.py``) in Superset's import format: the YAML files of an assets bundle.

Why the import format rather than creating each object through the REST API: Superset's assets
import (``POST /api/v1/assets/import/``, the format its own export writes) upserts every object by
its uuid in one transaction, rewrites the ids that charts, native filters and the layout use to
point at each other, and replaces the columns and metrics of a dataset with the imported ones. Our
uuids are derived from names (``spec.stable_uuid``), so importing the same bundle again after a
restart updates the same database, datasets, charts and dashboard instead of adding copies, and a
change to the spec reaches Superset on the next start. Everything is marked as managed externally:
the UI says so to whoever edits it.

Columns of a dataset are what the ClickHouse front reports for it (``DESCRIBE``), handed in by the
provisioner; a temporal type marks a column as Superset's time column. Each chart also carries a
saved query context, so ``/api/v1/chart/<id>/data`` (CSV export, checks) answers like the chart.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import yaml

from lakehouse.dashboards import spec
from lakehouse.dashboards.spec import Chart, Dataset, Metric

VERSION = "1.0.0"
EXTERNAL_URL = "lakehouse/dashboards/spec.py"
_TEMPORAL = re.compile(r"^(Nullable\()?(Date|Date32|DateTime|DateTime64)\b")


def database_file() -> str:
    return f"databases/{_slug(spec.DATABASE.name)}.yaml"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def database_yaml(host: str, port: int, user: str, password: str, database: str) -> dict[str, Any]:
    """The database connection, its password inside the URI.

    Not in the import request's ``passwords`` field, which is where Superset's export/import expects it:
    Superset's action log stores every form field of a request in its metadata database (table ``logs``),
    so the password would sit there in clear text. The bundle is a file part, which the log leaves out;
    Superset moves the password from the URI into its encrypted column and keeps the URI masked.
    """
    return {
        "database_name": spec.DATABASE.name,
        "sqlalchemy_uri": f"clickhousedb://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{database}",
        "cache_timeout": None,
        "expose_in_sqllab": True,
        "allow_run_async": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": False,
        "allow_file_upload": False,
        "extra": {"allows_virtual_table_explore": True, "metadata_params": {}, "engine_params": {},
                  "metadata_cache_timeout": {}, "schemas_allowed_for_file_upload": []},
        "uuid": spec.DATABASE.uuid,
        "version": VERSION,
    }


def dataset_yaml(ds: Dataset, columns: list[tuple[str, str]]) -> dict[str, Any]:
    """A dataset with the columns (name, ClickHouse type) the front reports for it."""
    return {
        "table_name": ds.name,
        "main_dttm_col": ds.main_dttm_col,
        "description": ds.description or None,
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,
        "schema": spec.SCHEMA,
        "sql": ds.sql,
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": None,
        "normalize_columns": False,
        "always_filter_main_dttm": False,
        "uuid": ds.uuid,
        "metrics": [{
            "metric_name": "count", "verbose_name": "COUNT(*)", "metric_type": "count", "expression": "COUNT(*)",
            "description": None, "d3format": None, "currency": None, "extra": {}, "warning_text": None,
        }],
        "columns": [{
            "column_name": name, "verbose_name": None, "is_dttm": bool(_TEMPORAL.match(ctype)), "is_active": True,
            "type": ctype, "advanced_data_type": None, "groupby": True, "filterable": True, "expression": None,
            "description": None, "python_date_format": None, "extra": {},
        } for name, ctype in columns],
        "version": VERSION,
        "database_uuid": spec.DATABASE.uuid,
    }


def _metric(m: Metric) -> dict[str, Any]:
    return {"expressionType": "SQL", "sqlExpression": m.sql, "label": m.label, "hasCustomLabel": True,
            "optionName": f"metric_{_slug(m.label)}"}


def _filters(c: Chart) -> list[dict[str, Any]]:
    out = []
    for column, op, value in c.filters:
        f: dict[str, Any] = {"expressionType": "SIMPLE", "subject": column, "operator": op, "clause": "WHERE",
                             "filterOptionName": f"filter_{_slug(column + op)}"}
        if value is not None:
            f["comparator"] = value
        out.append(f)
    return out


def chart_params(c: Chart) -> dict[str, Any]:
    """Superset's form data of the chart (what Explore would save)."""
    p: dict[str, Any] = {
        "viz_type": c.viz_type, "adhoc_filters": _filters(c), "row_limit": c.row_limit, "extra_form_data": {},
        "dashboards": [],
    }
    if c.viz_type == "table":
        p.update({"query_mode": "raw", "all_columns": list(c.columns),
                  "order_by_cols": [json.dumps([col, asc]) for col, asc in c.order_by],
                  "server_pagination": False, "include_search": False, "show_cell_bars": False,
                  "table_timestamp_format": "%Y-%m-%d", "allow_render_html": False,
                  "column_config": {}, "conditional_formatting": []})
        p.update(c.options)
    elif c.viz_type == "bubble_v2":
        x, y, size = (_metric(m) for m in c.metrics)
        p.update({"entity": c.options["entity"], "series": c.options["series"], "x": x, "y": y, "size": size,
                  "max_bubble_size": "5", "x_axis_label": c.metrics[0].label, "y_axis_label": c.metrics[1].label,
                  "x_axis_title_margin": 30, "y_axis_title_margin": 30, "xAxisFormat": "SMART_NUMBER",
                  "y_axis_format": "SMART_NUMBER", "opacity": 0.5, "show_legend": True, "legendType": "scroll",
                  "legendOrientation": "top", "color_scheme": "supersetColors", "orderby": []})
    else:  # the ECharts time-series family (line, bar), with a time or category x-axis
        p.update({"x_axis": c.x_axis, "metrics": [_metric(m) for m in c.metrics], "groupby": list(c.columns),
                  "order_desc": True, "truncate_metric": True, "show_legend": True, "legendType": "scroll",
                  "legendOrientation": "top", "rich_tooltip": True, "color_scheme": "supersetColors",
                  "y_axis_format": "SMART_NUMBER", "x_axis_time_format": "smart_date", "comparison_type": "values",
                  "annotation_layers": [], "forecastEnabled": False, "only_total": True, "markerSize": 4})
        if c.time_grain:
            p["time_grain_sqla"] = c.time_grain
        if c.viz_type == "echarts_timeseries_line":
            p["connectNulls"] = True
        p.update(c.options)
    return p


def query_context(c: Chart, params: dict[str, Any]) -> dict[str, Any]:
    """The saved query of ``/api/v1/chart/<id>/data``: the chart's columns, metrics and filters.

    The datasource id is 0 here; the import puts the dataset's real id in.
    """
    filters = [{"col": col, "op": op, **({"val": val} if val is not None else {})} for col, op, val in c.filters]
    query: dict[str, Any] = {"filters": filters, "extras": {"having": "", "where": ""}, "row_limit": c.row_limit,
                             "time_range": "No filter", "annotation_layers": [], "applied_time_extras": {},
                             "url_params": {}, "custom_params": {}, "custom_form_data": {}}
    if c.viz_type == "table":
        query.update({"columns": list(c.columns), "metrics": [], "orderby": [[col, asc] for col, asc in c.order_by]})
    elif c.viz_type == "bubble_v2":
        metrics = [_metric(m) for m in c.metrics]
        query.update({"columns": [c.options["entity"], c.options["series"]], "metrics": metrics,
                      "orderby": [[metrics[2], False]]})
    else:
        axis: dict[str, Any] | str = c.x_axis or ""
        if c.time_grain:
            axis = {"columnType": "BASE_AXIS", "sqlExpression": c.x_axis, "label": c.x_axis,
                    "expressionType": "SQL", "timeGrain": c.time_grain}
        metrics = [_metric(m) for m in c.metrics]
        query.update({"columns": [axis, *c.columns], "metrics": metrics, "orderby": [[metrics[0], False]],
                      "series_columns": list(c.columns)})
    return {"datasource": {"id": 0, "type": "table"}, "force": False, "queries": [query],
            "form_data": {**params, "datasource": "0__table"}, "result_format": "json", "result_type": "full"}


def chart_yaml(c: Chart) -> dict[str, Any]:
    params = chart_params(c)
    return {
        "slice_name": c.name, "description": None, "certified_by": None, "certification_details": None,
        "viz_type": c.viz_type, "params": params, "query_context": json.dumps(query_context(c, params)),
        "cache_timeout": None, "uuid": c.uuid, "version": VERSION, "dataset_uuid": spec.dataset(c.dataset).uuid,
        "is_managed_externally": True, "external_url": EXTERNAL_URL,
    }


def _chart_ids() -> dict[str, int]:
    """Ids local to the bundle (1, 2, ...): the layout and the filter scope refer to charts by them; the
    import maps them to the charts' real ids through the uuids in the layout."""
    return {c.name: i for i, c in enumerate(spec.CHARTS, start=1)}


def dashboard_yaml(default_ticker: str | None = None) -> dict[str, Any]:
    """The dashboard: layout from ``spec.DASHBOARD.rows`` and the ticker filter, preset to ``default_ticker``.

    The preset is a value, not Superset's "select first item" option: with that option the filter bar
    shows the first ticker, but the charts load unfiltered until someone presses "Apply filters".
    """
    d = spec.DASHBOARD
    ids = _chart_ids()
    position: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"id": "HEADER_ID", "type": "HEADER", "meta": {"text": d.title}},
    }
    for r, row in enumerate(d.rows, start=1):
        row_id = f"ROW-{r}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {"type": "ROW", "id": row_id, "children": [], "parents": ["ROOT_ID", "GRID_ID"],
                            "meta": {"background": "BACKGROUND_TRANSPARENT"}}
        for name in row:
            c = spec.chart(name)
            chart_id = f"CHART-{ids[name]}"
            position[row_id]["children"].append(chart_id)
            position[chart_id] = {"type": "CHART", "id": chart_id, "children": [],
                                  "parents": ["ROOT_ID", "GRID_ID", row_id],
                                  "meta": {"width": c.width, "height": c.height, "chartId": ids[name],
                                           "uuid": c.uuid, "sliceName": c.name}}
    excluded = [ids[c.name] for c in spec.CHARTS if not c.in_ticker_filter]
    ticker_filter = {
        "id": "NATIVE_FILTER-ticker", "name": "Ticker", "filterType": "filter_select", "type": "NATIVE_FILTER",
        "description": "The ticker every chart shows (the leaderboard covers all tickers)",
        "targets": [{"datasetUuid": spec.dataset(d.filter_dataset).uuid, "column": {"name": d.filter_column}}],
        "controlValues": {"enableEmptyFilter": default_ticker is not None, "defaultToFirstItem": False,
                          "multiSelect": False, "searchAllOptions": False, "inverseSelection": False},
        "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
        "cascadeParentIds": [], "scope": {"rootPath": ["ROOT_ID"], "excluded": excluded},
        "chartsInScope": [ids[c.name] for c in spec.CHARTS if c.in_ticker_filter], "tabsInScope": [],
    }
    if default_ticker is not None:
        ticker_filter["defaultDataMask"] = {
            "extraFormData": {"filters": [{"col": d.filter_column, "op": "IN", "val": [default_ticker]}]},
            "filterState": {"value": [default_ticker], "label": default_ticker}, "ownState": {},
        }
    return {
        "dashboard_title": d.title, "description": None, "css": "", "slug": d.slug, "certified_by": None,
        "certification_details": None, "published": True, "uuid": d.uuid, "position": position,
        "metadata": {"native_filter_configuration": [ticker_filter], "color_scheme": "supersetColors",
                     "refresh_frequency": 0, "timed_refresh_immune_slices": [], "expanded_slices": {},
                     "label_colors": {}, "shared_label_colors": [], "color_scheme_domain": [],
                     "cross_filters_enabled": False, "default_filters": "{}", "chart_configuration": {},
                     "global_chart_configuration": {"scope": {"rootPath": ["ROOT_ID"], "excluded": []},
                                                    "chartsInScope": list(ids.values())}},
        "version": VERSION, "is_managed_externally": True, "external_url": EXTERNAL_URL,
    }


def files(db: dict[str, Any], columns: dict[str, list[tuple[str, str]]],
          default_ticker: str | None = None) -> dict[str, dict[str, Any]]:
    """Every file of the bundle (path -> YAML document); ``columns`` maps dataset name -> (name, type)."""
    out: dict[str, dict[str, Any]] = {
        "metadata.yaml": {"version": VERSION, "type": "assets", "timestamp": datetime.now(UTC).isoformat()},
        database_file(): db,
    }
    for ds in spec.DATASETS:
        out[f"datasets/{_slug(spec.DATABASE.name)}/{ds.name}.yaml"] = dataset_yaml(ds, columns[ds.name])
    for c in spec.CHARTS:
        out[f"charts/{_slug(c.name)}.yaml"] = chart_yaml(c)
    out[f"dashboards/{_slug(spec.DASHBOARD.title)}.yaml"] = dashboard_yaml(default_ticker)
    return out


def zip_bytes(documents: dict[str, dict[str, Any]], root: str = "lakehouse_dashboards") -> bytes:
    """The bundle as the ZIP file Superset's import endpoint takes (every file under one folder)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, doc in documents.items():
            z.writestr(f"{root}/{path}", yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return buf.getvalue()

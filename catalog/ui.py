"""Browse UI at ``/ui``: server-rendered HTML (jinja2, no build step).

Namespaces -> tables -> schema, partition spec, sort order, properties, snapshot history,
metadata location and the first rows of the current snapshot (pyiceberg scan with a limit).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Query
from fastapi.responses import HTMLResponse

from catalog.errors import CatalogError
from catalog.names import check_name, ns_name, parse_namespace_path

log = logging.getLogger("catalog")
TEMPLATES = Path(__file__).parent / "templates"
PREVIEW_ROWS = 20


def _env():  # noqa: ANN202
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["ts"] = lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") \
        if ms else ""
    env.filters["nspath"] = lambda ns: "%1F".join(quote(p, safe="") for p in ns)
    return env


def add_ui(app: FastAPI, svc) -> None:  # noqa: ANN001
    """Mount the browse UI routes on ``app``."""
    state: dict[str, Any] = {}

    def render(template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        if "env" not in state:
            state["env"] = _env()
        html = state["env"].get_template(template).render(warehouse=app.state.warehouse_name,
                                                      warehouse_uri=app.state.warehouse_uri, **ctx)
        return HTMLResponse(html, status_code=status)

    def error_page(exc: CatalogError) -> HTMLResponse:
        return render("error.html", status=exc.status, message=exc.message, kind=exc.type)

    @app.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    @app.get("/ui/", response_class=HTMLResponse, include_in_schema=False)
    def ui_index() -> HTMLResponse:
        namespaces = svc.store.list_namespaces(())
        rows = [{"ns": ns, "tables": len(svc.store.list_objects(ns))} for ns in namespaces]
        n_namespaces, n_objects = svc.store.count()
        return render("index.html", namespaces=rows, n_namespaces=n_namespaces, n_objects=n_objects)

    @app.get("/ui/namespaces/{namespace}", response_class=HTMLResponse, include_in_schema=False)
    def ui_namespace(namespace: str) -> HTMLResponse:
        try:
            ns = parse_namespace_path(namespace)
            props = svc.store.namespace_properties(ns)
            children = svc.store.list_namespaces(ns)
            tables = svc.store.list_objects(ns)
        except CatalogError as exc:
            return error_page(exc)
        return render("namespace.html", ns=ns, name=ns_name(ns), properties=props, children=children, tables=tables)

    @app.get("/ui/namespaces/{namespace}/tables/{table}", response_class=HTMLResponse, include_in_schema=False)
    def ui_table(namespace: str, table: str, rows: int = Query(default=PREVIEW_ROWS, ge=0, le=500)) -> HTMLResponse:
        try:
            ns = parse_namespace_path(namespace)
            loaded = svc.load_table(ns, check_name(table))
        except CatalogError as exc:
            return error_page(exc)
        md = loaded.metadata
        schema = md.schema()
        fields = [{"id": f.field_id, "name": f.name, "type": str(f.field_type), "required": f.required,
                   "doc": f.doc or ""} for f in schema.fields]
        spec = md.spec()
        spec_fields = [{"name": pf.name, "source": schema.find_column_name(pf.source_id) or pf.source_id,
                        "transform": str(pf.transform), "id": pf.field_id} for pf in spec.fields]
        sort = md.sort_order()
        sort_fields = [{"source": schema.find_column_name(sf.source_id) or sf.source_id, "transform": str(sf.transform),
                        "direction": sf.direction.name.lower(), "nulls": sf.null_order.name.lower()}
                       for sf in sort.fields]
        snapshots = sorted(md.snapshots, key=lambda s: s.timestamp_ms, reverse=True)
        history = [{"id": s.snapshot_id, "ts": s.timestamp_ms,
                    "operation": s.summary.operation.value if s.summary else "",
                    "summary": {k: v for k, v in (s.summary.additional_properties if s.summary else {}).items()},
                    "current": s.snapshot_id == md.current_snapshot_id} for s in snapshots]
        preview, columns, preview_error = [], [f["name"] for f in fields], ""
        if md.current_snapshot_id is not None and rows > 0:
            try:
                preview, columns = _first_rows(svc, loaded.location, app.state.storage, rows)
            except Exception as exc:  # noqa: BLE001 - the page still shows the metadata
                log.warning("preview of %s failed: %s", loaded.location, exc)
                preview_error = "the first rows could not be read (details in the server log)"
        return render(
            "table.html", ns=ns, ns_name=ns_name(ns), table=table, md=md, location=loaded.location, fields=fields,
            spec_id=spec.spec_id, spec_fields=spec_fields, sort_id=sort.order_id, sort_fields=sort_fields,
            properties=dict(md.properties), history=history, preview=preview, columns=columns,
            preview_error=preview_error, rows=rows,
        )


def _first_rows(svc, metadata_location: str, storage: dict[str, str], limit: int,  # noqa: ANN001
                ) -> tuple[list[list[str]], list[str]]:
    """The first ``limit`` rows of the current snapshot, as display strings.

    Only when every file the snapshot references lies inside the warehouse: the server reads them, and a
    client could point a manifest at any file on the server.
    """
    from pyiceberg.table import StaticTable

    tbl = StaticTable.from_metadata(metadata_location, properties=storage)
    snap = tbl.metadata.current_snapshot()
    if snap is None or not svc.warehouse.contains(snap.manifest_list):
        raise ValueError("the snapshot's manifest list is outside the warehouse")
    for manifest in snap.manifests(tbl.io):
        if not svc.warehouse.contains(manifest.manifest_path):
            raise ValueError("a manifest is outside the warehouse")
    tasks = list(tbl.scan(limit=limit).plan_files())
    for task in tasks:
        if not all(svc.warehouse.contains(f.file_path) for f in (task.file, *task.delete_files)):
            raise ValueError("a data file is outside the warehouse")
    arrow = tbl.scan(limit=limit).to_arrow()
    cols = arrow.column_names
    out = []
    for rec in arrow.slice(0, limit).to_pylist():
        out.append(["" if rec[c] is None else str(rec[c]) for c in cols])
    return out, cols

"""The pipeline's memory: ``pipeline.stage_runs``, an Iceberg table in the lake itself.

One row per successful stage execution (fingerprint parts, input and output versions, timing), so
the state lives where the data lives: every runner (``lakehouse run``, Airflow tasks, a second
machine on the same catalog) sees the same records, and the rows double as lineage (which snapshot
of which table each stage read). Only successful executions are recorded; a failed or interrupted
stage leaves no row and runs again next time. A run that executes nothing writes nothing.

The latest record of each stage is also kept in the table's *properties* (``lakehouse.stage.<name>``),
set in the same commit as the row: deciding whether a stage is fresh then needs only the table's
metadata, not a scan of its data files (whose reader alone takes seconds to import), and properties,
unlike snapshot summaries, are not copied into every snapshot of the metadata file.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from lakehouse.contracts import STAGE_RUNS, ensure_table
from lakehouse.pipeline.fingerprint import Fingerprint, Record

if TYPE_CHECKING:
    from lakehouse.lake import LakeHandle

#: Rewrite the table in one commit once it is spread over this many data files (one per append).
COMPACT_AFTER_FILES = 64


PROPERTY_PREFIX = "lakehouse.stage."


class StageRuns:
    """Reads the latest record of each stage and appends new ones."""

    def __init__(self, lake: LakeHandle) -> None:
        self.lake = lake
        self._latest: dict[str, Record] | None = None

    def latest(self) -> dict[str, Record]:
        """The most recent record of each stage (empty before the first recorded run)."""
        if self._latest is None:
            self._latest = self._read()
        return self._latest

    def _read(self) -> dict[str, Record]:
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        try:
            table = self.lake.catalog.load_table(STAGE_RUNS.identifier)
        except (NoSuchTableError, NoSuchNamespaceError):
            return {}
        out: dict[str, Record] = {}
        for key, value in table.properties.items():
            if key.startswith(PROPERTY_PREFIX):
                doc = json.loads(value)
                doc["finished_at"] = dt.datetime.fromisoformat(doc["finished_at"]) if doc.get("finished_at") else None
                out[key[len(PROPERTY_PREFIX):]] = Record(**doc)
        return out

    def record(self, stage: str, fp: Fingerprint, outputs: dict[str, str | None], *, detail: str, run_id: str,
               started_at: dt.datetime, finished_at: dt.datetime) -> None:
        """Append the record of a successful execution and make it the stage's latest: one Iceberg commit."""
        rec = Record(stage, fp.value, dict(fp.inputs), dict(outputs), dict(fp.code), dict(fp.packages),
                     dict(fp.config), finished_at, detail[:300], run_id)
        row = {
            "stage": stage, "fingerprint": fp.value, "inputs": json.dumps(fp.inputs, sort_keys=True),
            "outputs": json.dumps(outputs, sort_keys=True),
            "code": json.dumps({"files": fp.code, "packages": fp.packages}, sort_keys=True),
            "config": json.dumps(fp.config, sort_keys=True, default=str), "detail": detail[:2000],
            "run_id": run_id, "started_at": started_at, "finished_at": finished_at,
            "seconds": (finished_at - started_at).total_seconds(),
        }
        data = STAGE_RUNS.to_arrow([row])
        prop = json.dumps({**vars(rec), "finished_at": finished_at.isoformat()}, sort_keys=True, default=str)
        table = ensure_table(self.lake.catalog, STAGE_RUNS.identifier)
        snap = table.current_snapshot()
        files = int(snap.summary.get("total-data-files") or 0) if snap is not None and snap.summary else 0
        with table.transaction() as tx:
            tx.set_properties({PROPERTY_PREFIX + stage: prop})
            if files >= COMPACT_AFTER_FILES:  # one file per append: rewrite them as one
                import pyarrow as pa

                tx.overwrite(pa.concat_tables([table.scan().to_arrow().cast(data.schema), data]))
            else:
                tx.append(data)
        if self._latest is not None:
            self._latest[stage] = rec

"""The run report: one self-contained HTML page of what the pipeline knows, written to
``$LAKEHOUSE_HOME/reports/latest.html`` plus a dated copy by every ``lakehouse run`` and by
``lakehouse report`` on its own.

Modules: :mod:`.read` reads the lake (every table pinned to its current snapshot), :mod:`.sections`
shapes the sections, :mod:`.charts` draws inline SVG with matplotlib, :mod:`.render` fills the jinja2 template,
and :func:`write_report` writes the files atomically.

Why a step after the run and not a stage of the pipeline graph: a stage is skipped when its inputs
are unchanged, while the report is wanted after *every* run (its freshness section ages with the
clock, and a run that skipped everything is exactly when one checks that nothing is stale). The
report also writes no lake asset another stage reads, so as a stage it would add a fingerprint, an
Airflow task and a node to the diagram that carry no information. It reads the lake the run just
left, inside the run's open lake (no second catalog start), and its failure is a warning: a report
must never turn a successful run into a failed one. Airflow's tasks call ``lakehouse run --only
<stage>``; all but the graph's last pass ``--no-report``, so a chain refreshes the report once.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lakehouse.config import Config
from lakehouse.report.read import ReportUnavailable

__all__ = ["ReportUnavailable", "WrittenReport", "write_report"]

#: Dated copies kept in the reports folder (the oldest beyond this are removed; latest.html always stays).
KEEP_DATED = 100
LATEST = "latest.html"


@dataclass(frozen=True)
class WrittenReport:
    """Where the report went, and how long it took."""

    latest: Path
    dated: Path
    seconds: float
    tickers: int


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers never see half a page."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _prune(folder: Path) -> None:
    dated = sorted(p for p in folder.glob("*.html") if p.name != LATEST)
    for old in dated[:-KEEP_DATED]:
        old.unlink(missing_ok=True)


def write_report(cfg: Config, now: datetime | None = None) -> WrittenReport:
    """Read the lake, render the report and write ``latest.html`` and its dated copy.

    Raises :class:`ReportUnavailable` when the lake has no prices yet (nothing is written then).
    """
    import time

    from lakehouse.lake import open_lake
    from lakehouse.report.read import read_lake
    from lakehouse.report.render import render_html
    from lakehouse.report.sections import build

    started = time.perf_counter()
    now = now or datetime.now(UTC)
    with open_lake(cfg) as lake:
        tables = read_lake(cfg, lake.catalog)
    data = build(cfg, tables, now)
    html = render_html(data)
    folder = cfg.reports_dir
    folder.mkdir(parents=True, exist_ok=True)
    dated = folder / f"{now:%Y-%m-%dT%H%M%SZ}.html"
    _write_atomic(dated, html)
    _write_atomic(folder / LATEST, html)
    _prune(folder)
    return WrittenReport(folder / LATEST, dated, time.perf_counter() - started, len(data.tickers))

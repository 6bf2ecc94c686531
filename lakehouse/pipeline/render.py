"""How the graph and a run look: the run summary, the plan table, and the Mermaid diagram."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from lakehouse.pipeline.fingerprint import Verdict
from lakehouse.pipeline.graph import Stage, asset_kind
from lakehouse.pipeline.runner import Outcome

_RESULT_STYLE = {"ok": "green", "skipped": "cyan", "failed": "red", "blocked": "yellow", "not selected": "dim"}
_STATE_STYLE = {"fresh": "green", "stale": "yellow", "pending": "cyan", "always": "dim"}


def summary_table(outcomes: Sequence[Outcome], title: str = "lakehouse run") -> Table:
    """One row per stage: result, seconds, detail (or why it was skipped)."""
    table = Table(title=title)
    for col in ("stage", "result", "seconds", "detail"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for o in outcomes:
        seconds = f"{o.seconds:.1f}" if o.result in ("ok", "failed", "skipped") else ""
        table.add_row(o.stage, f"[{_RESULT_STYLE[o.result]}]{o.result}[/]", seconds, escape(o.detail[:300]))
    return table


def plan_table(stages: Sequence[Stage], verdicts: Sequence[Verdict]) -> Table:
    """The graph in run order with each stage's state, reasons, reads and writes."""
    table = Table(title="lakehouse plan", show_lines=True)
    for col in ("stage", "state", "why", "reads", "writes"):
        table.add_column(col)
    by_name = {v.stage: v for v in verdicts}
    for s in stages:
        v = by_name[s.name]
        table.add_row(s.name, f"[{_STATE_STYLE[v.state]}]{v.state}[/]", escape("\n".join(v.reasons)),
                      "\n".join(s.reads), "\n".join(s.writes))
    return table


def _node_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", text)


def mermaid(stages: Sequence[Stage]) -> str:
    """The graph as a Mermaid flowchart: stages as boxes, assets as cylinders (Iceberg tables) or
    rounded nodes (other stores and sources), edges from what a stage reads to what it writes.
    Stages without data edges (the ``health`` gate every stage waits for) are left out."""
    lines = ["flowchart LR"]
    stages = [s for s in stages if s.reads or s.writes]  # the health gate has no data edges
    assets: list[str] = []
    for s in stages:
        for a in (*s.reads, *s.writes):
            if a not in assets:
                assets.append(a)
    for a in assets:
        shape = ('[("', '")]') if asset_kind(a) == "iceberg" else ('(["', '"])')
        lines.append(f"    {_node_id('a_' + a)}{shape[0]}{a}{shape[1]}")
    for s in stages:
        lines.append(f"    {_node_id('s_' + s.name)}[\"{s.name}\"]")
    for s in stages:
        for a in s.reads:
            lines.append(f"    {_node_id('a_' + a)} --> {_node_id('s_' + s.name)}")
        for a in s.writes:
            lines.append(f"    {_node_id('s_' + s.name)} --> {_node_id('a_' + a)}")
    lines.append("    classDef stage fill:#e8a33d,stroke:#8a5a10,color:#000")
    lines.append("    classDef asset fill:#8fa8c8,stroke:#2f4f7f,color:#000")
    lines.append("    class " + ",".join(_node_id("s_" + s.name) for s in stages) + " stage")
    lines.append("    class " + ",".join(_node_id("a_" + a) for a in assets) + " asset")
    return "\n".join(lines) + "\n"

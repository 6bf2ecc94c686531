"""`lakehouse run` end to end on the shipped sample, the way a user runs it (the real CLI, embedded mode,
a fresh state dir): a cold run, a rerun with nothing new, and a run after one new trading day.

The sample is replayed up to a cut-off date with `[sources.sample] end`: the cold run loads up to
2013-02-26 (a Tuesday), the new-day run moves the cut-off to 2013-02-27 (same ISO week, so the weekly
retrain policy keeps the champion, as on a normal weekday). Each figure is printed beside its anchor:

- cold run: < 60 s (issue 16's target for the whole pipeline on 2 cores);
- no-change rerun: < 10 s (issue 10);
- one new trading day: < 30 s (issue 10).

Run: .venvs/core/bin/python benchmarks/e2e_bench.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
LAKEHOUSE = Path(sys.executable).parent / "lakehouse"
DAY_1, DAY_2 = "2013-02-26", "2013-02-27"
ANCHORS = {"cold": 60.0, "no change": 10.0, "one new day": 30.0}


def _run(env: dict[str, str]) -> tuple[float, dict[str, tuple[str, str]]]:
    """Wall seconds of one `lakehouse run` and each stage's (result, seconds) from its summary."""
    t0 = time.perf_counter()
    proc = subprocess.run([str(LAKEHOUSE), "run"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"lakehouse run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    stages = {m[0]: (m[1], m[2]) for m in re.findall(r"│ ([a-z-]+)\s+│ (ok|skipped)\s+│\s+([\d.]+) │", proc.stdout)}
    return wall, stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="repeat the three runs on fresh state dirs")
    args = parser.parse_args()
    console = Console()
    walls: dict[str, list[float]] = {k: [] for k in ANCHORS}
    last: dict[str, dict[str, tuple[str, str]]] = {}
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp:
            base = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
            env = {**base, "LAKEHOUSE_HOME": str(Path(tmp) / "home"), "COLUMNS": "200",
                   "LAKEHOUSE_SOURCES__SAMPLE__END": DAY_1}
            for label, end in (("cold", DAY_1), ("no change", DAY_1), ("one new day", DAY_2)):
                env["LAKEHOUSE_SOURCES__SAMPLE__END"] = end
                wall, stages = _run(env)
                walls[label].append(wall)
                last[label] = stages
                console.print(f"[dim]round {i + 1}: {label}: {wall:.1f} s[/]")
    table = Table(title=f"lakehouse run on the sample (embedded, {os.cpu_count()} cores, {args.repeat} round(s))")
    for col in ("run", "wall s (median)", "anchor s", "ratio", "stages that ran (s)"):
        table.add_column(col, justify="left" if col in ("run", "stages that ran (s)") else "right")
    for label, anchor in ANCHORS.items():
        med = statistics.median(walls[label])
        ran = ", ".join(f"{s} {sec}" for s, (res, sec) in last[label].items() if res == "ok")
        table.add_row(label, f"{med:.1f}", f"< {anchor:.0f}", f"{med / anchor:.2f}", ran)
    console.print(table)


if __name__ == "__main__":
    main()

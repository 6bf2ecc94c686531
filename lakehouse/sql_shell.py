"""Ad-hoc SQL over the lake: DuckDB with the REST catalog attached as ``lake``.

Used by ``lakehouse sql``: one query printed as a table or exported (csv, json, parquet), or an
interactive shell (the ``duckdb`` PyPI package ships no CLI binary, so this is a small REPL with
the same connection setup) that also runs a script piped on stdin.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import duckdb
from rich.console import Console
from rich.markup import escape
from rich.table import Table

FORMATS = ("table", "csv", "json", "parquet")
COPY_OPTIONS = {"csv": "FORMAT csv, HEADER true", "json": "FORMAT json", "parquet": "FORMAT parquet"}
HELP = """Statements end with ';'. Dot commands: .tables (every table in the lake), .help, .quit
Examples: SELECT * FROM lake.features.fct_daily_features LIMIT 5;  SHOW ALL TABLES;"""


class SqlError(ValueError):
    """A query could not run; the message is DuckDB's."""


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def result_table(con: duckdb.DuckDBPyConnection, max_rows: int, title: str | None = None) -> Table:
    """A rich table of the first ``max_rows`` rows of the pending result of ``con``."""
    description = con.description or []
    rows = con.fetchmany(max_rows + 1)
    table = Table(title=title, show_lines=False)
    for name, dtype, *_ in description:
        numeric = any(t in str(dtype).upper() for t in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "NUMBER"))
        table.add_column(f"{name}\n[dim]{str(dtype).lower()}[/]", justify="right" if numeric else "left")
    for row in rows[:max_rows]:
        table.add_row(*(escape(_fmt(v)) for v in row))
    more = len(rows) > max_rows
    table.caption = f"first {max_rows} rows shown" if more else f"{len(rows)} row{'s' * (len(rows) != 1)}"
    return table


def _fmt(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def run_query(
    con: duckdb.DuckDBPyConnection,
    query: str,
    *,
    fmt: str = "table",
    output: Path | None = None,
    max_rows: int = 100,
    console: Console | None = None,
) -> None:
    """Run one statement; print it as a table, or export it with DuckDB's COPY (csv/json/parquet)."""
    console = console or Console()
    if fmt not in FORMATS:
        raise SqlError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if fmt == "parquet" and output is None:
        raise SqlError("--format parquet needs --output FILE")
    if fmt == "table" and output is not None:
        raise SqlError("--output needs --format csv, json or parquet")
    body = query.strip().rstrip(";").strip()
    if not body:
        raise SqlError("empty query")
    try:
        # con.execute (not the relation API) releases the GIL while DuckDB runs: in embedded mode the
        # catalog server answering DuckDB's REST calls is a thread of this process.
        if fmt == "table":
            con.execute(body)
            if con.description is None:
                console.print("[green]OK[/]")
            else:
                console.print(result_table(con, max_rows))
            return
        target = str(output) if output is not None else "/dev/stdout"
        sys.stdout.flush()
        con.execute(f"COPY ({body}) TO {_sql_str(target)} ({COPY_OPTIONS[fmt]})")
    except duckdb.Error as exc:
        raise SqlError(str(exc)) from exc


def split_statements(lines: Iterable[str], prompt: bool = False) -> Iterable[str]:
    """Yield complete statements (ending with ';') and dot commands from lines of input.

    With ``prompt=True`` lines are read with ``input()`` (``lake>`` / ``..>`` prompts) and ``lines``
    is ignored; Ctrl-C drops the statement being typed, Ctrl-D ends.
    """
    buf: list[str] = []
    source = iter(lines)
    while True:
        try:
            line = input("lake> " if not buf else "  ..> ") if prompt else next(source)
        except (EOFError, StopIteration):
            if prompt:
                print()
            break
        except KeyboardInterrupt:
            print()
            buf = []
            continue
        if not buf and line.strip().startswith("."):
            yield line.strip()
            continue
        if not buf and not line.strip():
            continue
        buf.append(line)
        text = "\n".join(buf).strip()
        if ends_statement(text):
            yield text
            buf = []
    rest = "\n".join(buf).strip()
    if rest:
        yield rest


def ends_statement(text: str) -> bool:
    """True when the last thing in ``text`` outside quotes and ``--`` comments is a ';'."""
    in_single = in_double = False
    last = ""
    i = 0
    while i < len(text):
        c = text[i]
        if in_single or in_double:
            if (c == "'" and in_single) or (c == '"' and in_double):
                in_single = in_double = False
        elif c == "'":
            in_single = True
        elif c == '"':
            in_double = True
        elif text.startswith("--", i):
            nl = text.find("\n", i)
            if nl < 0:
                break
            i = nl
            continue
        if not (c.isspace() or in_single or in_double or c in "'\""):
            last = c
        i += 1
    return last == ";" and not (in_single or in_double)


def _dot_command(con: duckdb.DuckDBPyConnection, cmd: str, console: Console) -> bool:
    """Run a dot command; return False for .quit/.exit."""
    name = cmd.split()[0].lower()
    if name in (".quit", ".exit", ".q"):
        return False
    if name == ".tables":
        con.execute("SELECT database, schema, name FROM (SHOW ALL TABLES) ORDER BY ALL")
        console.print(result_table(con, 1000))
    elif name == ".help":
        console.print(HELP)
    else:
        console.print(f"[red]unknown command {escape(name)}[/] (.help)")
    return True


def shell(
    con: duckdb.DuckDBPyConnection,
    *,
    stdin: TextIO | None = None,
    console: Console | None = None,
    max_rows: int = 100,
    banner: str = "",
) -> int:
    """Interactive shell on ``con`` (or run the script on a non-interactive stdin); return an exit code."""
    stdin = stdin or sys.stdin
    console = console or Console()
    interactive = stdin.isatty()
    failed = 0
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401 - line editing and history for input()
        console.print(banner + "\n" + HELP)
    lines = (line.rstrip("\n") for line in stdin)
    for stmt in split_statements(lines, prompt=interactive):
        if stmt.startswith("."):
            if not _dot_command(con, stmt, console):
                break
            continue
        try:
            run_query(con, stmt, max_rows=max_rows, console=console)
        except SqlError as exc:
            failed += 1
            console.print(f"[red]error:[/] {escape(str(exc))}")
    return 1 if failed and not interactive else 0

"""``lakehouse sql``: ad-hoc SQL in DuckDB with the lake's REST catalog attached as ``lake``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``sql`` command to the root app."""

    @app.command()
    def sql(
        query: str = typer.Argument(None, help="SQL to run, e.g. \"SELECT * FROM lake.features."
                                    "fct_daily_features LIMIT 5\". Without it: an interactive shell "
                                    "(or the script piped on stdin)."),
        fmt: str = typer.Option("table", "--format", "-f", help="table | csv | json | parquet."),
        output: Path = typer.Option(None, "--output", "-o", help="Write the result to this file "
                                    "(csv/json/parquet); csv/json without it go to stdout."),
        max_rows: int = typer.Option(100, "--max-rows", help="Rows shown by --format table."),
    ) -> None:
        """Query the lake with DuckDB: tables are lake.<namespace>.<table> (e.g. lake.raw.quotes)."""
        from rich.console import Console
        from rich.markup import escape

        from lakehouse.cli import load_or_exit
        from lakehouse.lake import open_lake
        from lakehouse.sql_shell import FORMATS, SqlError, run_query, shell
        from lakehouse.transform.duck import connect_lake

        console, err = Console(), Console(stderr=True)
        if fmt not in FORMATS:
            err.print(f"[red]error:[/] unknown --format {fmt!r} (known: {', '.join(FORMATS)})")
            raise typer.Exit(2)
        cfg = load_or_exit()
        with open_lake(cfg) as lake:
            con = connect_lake(lake, cfg)
            try:
                if query is None:
                    code = shell(con, console=console, max_rows=max_rows,
                                 banner=f"DuckDB {con.execute('select version()').fetchone()[0]} · lake = "
                                        f"{lake.uri} ({cfg.mode} mode, warehouse {lake.warehouse_uri})")
                    raise typer.Exit(code)
                try:
                    run_query(con, query, fmt=fmt, output=output, max_rows=max_rows, console=console)
                except SqlError as exc:
                    err.print(f"[red]error:[/] {escape(str(exc))}")
                    raise typer.Exit(1) from exc
                if output is not None:
                    err.print(f"wrote {output}")
            finally:
                con.close()

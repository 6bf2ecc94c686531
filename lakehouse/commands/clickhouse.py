"""``lakehouse clickhouse ...``: serve the ClickHouse front, run a query against it."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(help="ClickHouse (chdb) behind ClickHouse's HTTP interface: the marts.", no_args_is_help=True)


def _cfg():
    from lakehouse.cli import load_or_exit

    return load_or_exit()


@app.command()
def serve(
    host: str = typer.Option(None, "--host", help="Bind address (default: [clickhouse] host)."),
    port: int = typer.Option(None, "--port", help="Port (default: [clickhouse] port)."),
    exit_with_parent: int = typer.Option(None, "--exit-with-parent", metavar="PID",
                                         help="Stop (gracefully) when process PID, our parent, is gone "
                                              "(temporary fronts)."),
) -> None:
    """Serve ClickHouse's HTTP interface on the chdb data path until interrupted (foreground)."""
    from lakehouse.clickhouse.front import serve as run_server
    from lakehouse.clickhouse.front import watch_parent

    if exit_with_parent:
        watch_parent(exit_with_parent)
    cfg = _cfg()
    import logging

    logging.basicConfig(level=cfg.general.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_server(cfg, host, port, echo=lambda m: print(m, flush=True))
    except (RuntimeError, OSError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc


@app.command()
def query(
    sql: str = typer.Argument(..., help="SQL to run; '-' reads it from stdin."),
    fmt: str = typer.Option("PrettyCompact", "--format", "-f", help="Output format when the SQL names none."),
) -> None:
    """Run one query on the running service (or a temporary front) and print the result."""
    from lakehouse.clickhouse.front import endpoint, http_client
    from lakehouse.clickhouse.statements import analyze

    cfg = _cfg()
    text = sys.stdin.read() if sql == "-" else sql
    stmt = analyze(text)
    out_fmt = fmt if stmt.returns_rows and not stmt.output_format else None
    try:
        with endpoint(cfg) as ep:
            client = http_client(ep)
            out = client.raw_query(text, fmt=out_fmt)
            client.close()
    except Exception as exc:  # noqa: BLE001 - show the server's message
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    sys.stdout.write(out.decode("utf-8", "replace"))


def register(root: typer.Typer) -> None:
    """Add the ``clickhouse`` sub-app to the root CLI."""
    root.add_typer(app, name="clickhouse")

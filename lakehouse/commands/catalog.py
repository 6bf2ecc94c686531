"""``lakehouse catalog``: run and use the Iceberg REST catalog server."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()


def register(app: typer.Typer) -> None:
    """Add the ``catalog`` sub-commands to the root app."""
    cat = typer.Typer(help="The Iceberg REST catalog server.", no_args_is_help=True)
    app.add_typer(cat, name="catalog")

    @cat.command()
    def serve(
        host: str = typer.Option(None, help="Bind address (default: catalog.host)."),
        port: int = typer.Option(None, help="Port (default: catalog.port)."),
        db: str = typer.Option(None, help="SQLAlchemy URL of the catalog database (default: catalog.db or "
                                          "SQLite in the state dir); postgresql+psycopg://... works too."),
        warehouse: str = typer.Option(None, help="Root for new tables: file:///... or s3://bucket/prefix "
                                                 "(default: catalog.warehouse or by mode)."),
    ) -> None:
        """Run the catalog server in the foreground (the service `lakehouse up catalog` runs this).

        With auth off it serves loopback addresses only: another --host is refused before anything starts.
        """
        from catalog.server import UnsafeBind, app_from_config, check_bind
        from catalog.server import serve as run
        from lakehouse.cli import load_or_exit

        cfg = load_or_exit()
        host = host or cfg.catalog.host
        try:
            check_bind(host, cfg.catalog.auth)
        except UnsafeBind as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None
        app = app_from_config(cfg, db_url=db, warehouse_uri=warehouse)
        run(app, host, port or cfg.catalog.port, cfg.general.log_level)

    @cat.command("hash-secret")
    def hash_secret_cmd(
        # taken only to refuse it without echoing it (click's "unexpected extra argument" would print it)
        refused: str = typer.Argument(None, hidden=True, metavar="", show_default=False),
    ) -> None:
        """Print the hashed form of a client secret for \\[catalog.clients] in lakehouse.toml.

        The secret is read from a prompt (not echoed) or from stdin (`... | lakehouse catalog hash-secret`),
        never from the command line, where `ps` and the shell history would show it.
        """
        import sys

        from catalog.auth import hash_secret
        from lakehouse.cli import fail

        if refused is not None:
            raise fail("the secret is not taken on the command line (visible in ps and the shell history): "
                       "pipe it on stdin or run `lakehouse catalog hash-secret` and answer the prompt", 2)
        if sys.stdin.isatty():
            secret = typer.prompt("client secret", hide_input=True, confirmation_prompt=True, err=True)
        else:
            secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            raise fail("empty secret: give the client secret on stdin or at the prompt", 2)
        typer.echo(hash_secret(secret))  # one line, never wrapped to the terminal's width

    @cat.command("list")
    def list_cmd() -> None:
        """List namespaces and tables through the REST catalog."""
        from lakehouse.cli import load_or_exit
        from lakehouse.lake import open_lake

        cfg = load_or_exit()
        with open_lake(cfg) as lake:
            console.print(f"catalog {lake.uri} warehouse {lake.warehouse_uri}")

            def walk(ns: tuple[str, ...], depth: int) -> None:
                for child in lake.catalog.list_namespaces(ns):
                    console.print("  " * depth + ".".join(child) + "/")
                    for t in lake.catalog.list_tables(child):
                        console.print("  " * (depth + 1) + ".".join(t))
                    walk(child, depth + 1)

            walk((), 0)

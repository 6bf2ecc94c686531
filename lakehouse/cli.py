"""The ``lakehouse`` command line: the main job, the local services, and every stage."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lakehouse.config import ConfigError, get_config, mask

app = typer.Typer(
    help="An open lakehouse for stock quotes: Iceberg + REST catalog, dlt, dbt, ML, ClickHouse marts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

console = Console()
err_console = Console(stderr=True)


def load_or_exit():
    """The configuration, or exit 2 with the message naming the bad key."""
    try:
        return get_config()
    except ConfigError as exc:
        err_console.print(f"[red]configuration error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _apply_telemetry_env(cfg) -> None:
    for k, v in cfg.telemetry_env.items():
        os.environ.setdefault(k, v)


@app.command()
def run() -> None:
    """Run the main job: every stage that is built, in order, on the configured mode."""
    from lakehouse.pipeline import run_all

    cfg = load_or_exit()
    _apply_telemetry_env(cfg)
    raise typer.Exit(run_all(cfg, console))


@app.command()
def up(services: list[str] = typer.Argument(None, help="Services to start (default: all).")) -> None:
    """Start the local services in the background and wait until each is healthy."""
    from lakehouse.services.supervisor import ServiceError
    from lakehouse.services.supervisor import up as sup_up

    cfg = load_or_exit()
    try:
        sup_up(cfg, services or None, echo=console.print)
    except (ServiceError, ValueError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc


@app.command()
def down(services: list[str] = typer.Argument(None, help="Services to stop (default: all).")) -> None:
    """Stop the local services gracefully (SIGTERM, then SIGKILL after a grace period)."""
    from lakehouse.services.supervisor import down as sup_down

    cfg = load_or_exit()
    try:
        sup_down(cfg, services or None, echo=console.print)
    except ValueError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc


@app.command()
def status() -> None:
    """Show a table of the local services: state, pid, port, URL, health."""
    from lakehouse.services.registry import all_services
    from lakehouse.services.supervisor import status as svc_status

    cfg = load_or_exit()
    table = Table(title=f"lakehouse services ({cfg.home})")
    for col in ("service", "state", "pid", "port", "url", "health", "log"):
        table.add_column(col)
    colors = {"running": "green", "unhealthy": "red", "stale": "yellow", "stopped": "dim"}
    for svc in all_services():
        st = svc_status(cfg, svc)
        table.add_row(
            st.name, f"[{colors[st.state]}]{st.state}[/]", str(st.pid or ""), str(st.port), st.url,
            "ok" if st.healthy else "-", str(st.log),
        )
    console.print(table)


@app.command()
def logs(
    service: str = typer.Argument(..., help="Service name."),
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new lines."),
    lines: int = typer.Option(50, "-n", "--lines", help="How many last lines to show."),
) -> None:
    """Print the log of a local service."""
    from lakehouse.services.registry import get_service
    from lakehouse.services.supervisor import log_file

    cfg = load_or_exit()
    try:
        get_service(service)
    except ValueError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    path = log_file(cfg, service)
    if not path.exists():
        err_console.print(f"no log yet for {service} ({path})")
        raise typer.Exit(1)
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            subprocess.run(["tail", "-n", str(lines), "-F", str(path)], check=False)
        return
    text = path.read_text(errors="replace").splitlines()[-lines:]
    sys.stdout.write("\n".join(text) + "\n")


@config_app.command("show")
def config_show() -> None:
    """Show the effective configuration with the source of each value (secrets masked)."""
    cfg = load_or_exit()
    table = Table(title=f"config: {cfg.config_file or 'built-in defaults'} · state dir {cfg.home}")
    table.add_column("key")
    table.add_column("value")
    table.add_column("source")
    for key, value in cfg.flat().items():
        table.add_row(key, repr(mask(key, value)), cfg.source_of(key))
    table.add_row("home", str(cfg.home), "env LAKEHOUSE_HOME" if "LAKEHOUSE_HOME" in os.environ else "default")
    table.add_row("warehouse_uri (derived)", cfg.warehouse_uri, "derived")
    console.print(table)


from lakehouse.commands import register_all  # noqa: E402

register_all(app)


def main() -> None:
    """Entry point with timing for debugging."""
    t0 = time.perf_counter()
    try:
        app()
    finally:
        if os.environ.get("LAKEHOUSE_TIMING"):
            err_console.print(f"elapsed {time.perf_counter() - t0:.2f}s")

"""``lakehouse up | down | status | logs``: the local service stack (lakehouse.services)."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def register(app: typer.Typer) -> None:
    """Add the service commands to the root app."""

    @app.command()
    def up(services: list[str] = typer.Argument(None, help="Services to start (default: all).")) -> None:
        """Start the local services in the background and wait until each is healthy."""
        from lakehouse.cli import fail, load_or_exit
        from lakehouse.services.supervisor import ServiceError
        from lakehouse.services.supervisor import up as sup_up

        cfg = load_or_exit()
        try:
            sup_up(cfg, services or None, echo=Console().print)
        except (ServiceError, ValueError) as exc:
            raise fail(str(exc)) from exc

    @app.command()
    def down(services: list[str] = typer.Argument(None, help="Services to stop (default: all).")) -> None:
        """Stop the local services gracefully (SIGTERM, then SIGKILL after a grace period)."""
        from lakehouse.cli import fail, load_or_exit
        from lakehouse.services.supervisor import down as sup_down

        cfg = load_or_exit()
        try:
            sup_down(cfg, services or None, echo=Console().print)
        except ValueError as exc:
            raise fail(str(exc)) from exc

    @app.command()
    def status() -> None:
        """Show a table of the local services: state, pid, port, URL, health."""
        from lakehouse.cli import load_or_exit
        from lakehouse.services.registry import all_services
        from lakehouse.services.supervisor import status as svc_status

        cfg = load_or_exit()
        table = Table(title=f"lakehouse services ({cfg.home})")
        for col in ("service", "state", "pid", "port", "url", "health", "log"):
            table.add_column(col)
        colors = {"running": "green", "unhealthy": "red", "stale": "yellow", "stopped": "dim"}
        hints = []
        for svc in all_services():
            st = svc_status(cfg, svc)
            table.add_row(
                st.name, f"[{colors[st.state]}]{st.state}[/]", str(st.pid or ""), str(st.port) if svc.listens else "",
                st.url if svc.listens else "", "ok" if st.healthy else "-", str(st.log),
            )
            if svc.hint is not None:
                hints.append(svc.hint(cfg))
        console = Console()
        console.print(table)
        for hint in hints:
            console.print(escape(hint), soft_wrap=True)

    @app.command()
    def logs(
        service: str = typer.Argument(..., help="Service name."),
        follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new lines."),
        lines: int = typer.Option(50, "-n", "--lines", help="How many last lines to show."),
    ) -> None:
        """Print the log of a local service."""
        from lakehouse.cli import fail, load_or_exit
        from lakehouse.services.registry import get_service
        from lakehouse.services.supervisor import log_file

        cfg = load_or_exit()
        try:
            get_service(service)
        except ValueError as exc:
            raise fail(str(exc)) from exc
        path = log_file(cfg, service)
        if not path.exists():
            raise fail(f"no log yet for {service} ({path})")
        if follow:
            with contextlib.suppress(KeyboardInterrupt):
                subprocess.run(["tail", "-n", str(lines), "-F", str(path)], check=False)
            return
        text = path.read_text(errors="replace").splitlines()[-lines:]
        sys.stdout.write("\n".join(text) + "\n")

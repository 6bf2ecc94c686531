"""``lakehouse dashboards provision``: import the Superset dashboard spec into a running Superset.

`lakehouse up superset` and the `transform-dwh` stage provision on their own; this command is for a Superset
the supervisor does not run (compose's one-shot `superset-provision` service, a shared server).
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``dashboards`` group to the root app."""
    group = typer.Typer(help="The Superset dashboard as code (lakehouse/dashboards/).", no_args_is_help=True)
    app.add_typer(group, name="dashboards")

    @group.command("provision")
    def provision_cmd() -> None:
        """Import the "Stock forecasts" dashboard, its datasets and the read-only ClickHouse database into the
        Superset at \\[superset] host:port (idempotent: a second import updates the same objects)."""
        import httpx

        from lakehouse.cli import console, fail, load_or_exit
        from lakehouse.dashboards.provision import ProvisionError, provision

        cfg = load_or_exit()
        try:
            done = provision(cfg)
        except (ProvisionError, httpx.HTTPError) as exc:
            raise fail(f"dashboard not provisioned: {exc}") from exc
        console.print(f"dashboard provisioned: {done.url}", soft_wrap=True)

"""``lakehouse run`` and ``lakehouse plan``: the pipeline graph (lakehouse.pipeline)."""

from __future__ import annotations

import typer
from rich.console import Console


def print_run(outcomes, console: Console) -> None:  # noqa: ANN001 - list[Outcome]
    """The run summary; exit 1 when a stage failed."""
    from lakehouse.pipeline.render import summary_table

    console.print(summary_table(outcomes))
    if any(o.result == "failed" for o in outcomes):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``plan`` to the root app."""

    @app.command()
    def run(
        only: list[str] = typer.Option(None, "--only", help="Run only this stage (repeatable); the others are "
                                       "not touched."),
        start_from: str = typer.Option(None, "--from", help="Run this stage and every stage downstream of it."),
        force: bool = typer.Option(False, "--force", help="Run the selected stages even when their fingerprint "
                                   "is unchanged (incremental stages rebuild from scratch)."),
    ) -> None:
        """Run the main job: every stage in dependency order, skipping the ones whose inputs, code and
        config are unchanged since their last successful run."""
        from lakehouse.cli import fail, load_or_exit
        from lakehouse.pipeline.graph import GraphError
        from lakehouse.pipeline.runner import run_pipeline

        cfg = load_or_exit()
        console = Console()
        try:
            outcomes = run_pipeline(cfg, console, only=only or (), start_from=start_from, force=force)
        except GraphError as exc:
            raise fail(str(exc), 2) from exc
        print_run(outcomes, console)

    @app.command()
    def plan(
        fmt: str = typer.Option("table", "--format", "-f", help="table: each stage's state (fresh / stale and "
                                "why); mermaid: the graph as a Mermaid flowchart (no state, no lake needed)."),
    ) -> None:
        """Show the pipeline graph: what each stage reads and writes, and whether `lakehouse run` would run it."""
        from lakehouse.cli import fail, load_or_exit
        from lakehouse.pipeline import graph
        from lakehouse.pipeline.render import mermaid, plan_table
        from lakehouse.pipeline.runner import plan as make_plan

        if fmt not in ("table", "mermaid"):
            raise fail(f"unknown --format {fmt!r} (known: table, mermaid)", 2)
        cfg = load_or_exit()
        stages = graph.pipeline(cfg)
        if fmt == "mermaid":
            typer.echo(mermaid(stages), nl=False)
            return
        Console().print(plan_table(stages, make_plan(cfg)))

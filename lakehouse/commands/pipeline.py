"""``lakehouse run`` and ``lakehouse plan``: the pipeline graph (lakehouse.pipeline)."""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.console import Console


def print_run(outcomes, console: Console, skipped_exit_code: int = 0,  # noqa: ANN001 - list[Outcome]
              after: Callable[[], None] | None = None) -> None:
    """The run summary, then ``after`` (the run report); exit 1 when a stage failed, ``skipped_exit_code``
    when no selected stage ran."""
    from lakehouse.pipeline.render import summary_table

    console.print(summary_table(outcomes))
    if after is not None:
        after()
    if any(o.result == "failed" for o in outcomes):
        raise typer.Exit(1)
    if skipped_exit_code and not any(o.result == "ok" for o in outcomes):
        raise typer.Exit(skipped_exit_code)


def missing_assets(cfg, assets: list[str]) -> list[str]:  # noqa: ANN001 - Config
    """The assets of ``assets`` that do not exist yet (no table, no snapshot, no model alias)."""
    from lakehouse.lake import open_lake
    from lakehouse.pipeline.assets import AssetProbe

    with open_lake(cfg) as lake:
        probe = AssetProbe(cfg, lake)
        return [a for a in assets if probe.version(a) is None]


def register(app: typer.Typer) -> None:
    """Add ``run`` and ``plan`` to the root app."""

    @app.command()
    def run(
        only: list[str] = typer.Option(None, "--only", help="Run only this stage (repeatable); the others are "
                                       "not touched."),
        start_from: str = typer.Option(None, "--from", help="Run this stage and every stage downstream of it."),
        force: bool = typer.Option(False, "--force", help="Run the selected stages even when their fingerprint "
                                   "is unchanged (incremental stages rebuild from scratch)."),
        wait_for: list[str] = typer.Option(None, "--wait-for", metavar="ASSET", help="Run nothing while this "
                                           "asset of the graph does not exist yet (repeatable): the run counts "
                                           "as skipped. For schedulers triggered by any one of several assets."),
        skipped_exit_code: int = typer.Option(0, "--skipped-exit-code", min=0, max=255, help="Exit with this "
                                              "code instead of 0 when no selected stage ran (all skipped as fresh "
                                              "or waiting): a scheduler marks its task skipped (Airflow: 99)."),
        report: bool = typer.Option(True, "--report/--no-report", help="Write the run report after the run "
                                    "($LAKEHOUSE_HOME/reports/latest.html; see `lakehouse report`)."),
    ) -> None:
        """Run the main job: every stage in dependency order, skipping the ones whose inputs, code and
        config are unchanged since their last successful run."""
        from lakehouse.cli import fail, load_or_exit
        from lakehouse.commands.report import write_after_run
        from lakehouse.lake import open_lake
        from lakehouse.pipeline import graph
        from lakehouse.pipeline.graph import GraphError
        from lakehouse.pipeline.runner import run_pipeline, select

        cfg = load_or_exit()
        console = Console()
        try:
            stages = graph.pipeline(cfg)
            chosen = select(stages, only or (), start_from)
            known = {a for s in stages for a in (*s.reads, *s.writes)}
            if unknown := [a for a in wait_for or () if a not in known]:
                raise GraphError(f"--wait-for {', '.join(unknown)}: not an asset of the graph "
                                 f"(assets: {', '.join(sorted(known))})")
            with open_lake(cfg):  # one lake for the check and the run (nested open_lake calls reuse it)
                if missing := missing_assets(cfg, list(wait_for or ())):
                    console.print(f"[cyan]skipped, waiting for {', '.join(missing)} (does not exist yet): "
                                  f"{', '.join(chosen)} not run[/]")
                    raise typer.Exit(skipped_exit_code)
                outcomes = run_pipeline(cfg, console, only=only or (), start_from=start_from, force=force)
                # the report reads the lake the run left, inside the run's open lake (see lakehouse.report)
                after = (lambda: write_after_run(cfg, console)) if report else None
                print_run(outcomes, console, skipped_exit_code, after=after)
        except GraphError as exc:
            raise fail(str(exc), 2) from exc

    @app.command()
    def plan(
        fmt: str = typer.Option("table", "--format", "-f", help="table: each stage's state (fresh / stale and "
                                "why); mermaid: the graph as a Mermaid flowchart; json: the resolved graph and "
                                "the schedule settings, as the Airflow DAGs read it (mermaid and json: no state, "
                                "no lake needed)."),
    ) -> None:
        """Show the pipeline graph: what each stage reads and writes, and whether `lakehouse run` would run it."""
        import json

        from lakehouse.cli import fail, load_or_exit
        from lakehouse.pipeline import graph
        from lakehouse.pipeline.render import mermaid, plan_table
        from lakehouse.pipeline.runner import plan as make_plan

        if fmt not in ("table", "mermaid", "json"):
            raise fail(f"unknown --format {fmt!r} (known: table, mermaid, json)", 2)
        cfg = load_or_exit()
        stages = graph.pipeline(cfg)
        if fmt == "mermaid":
            typer.echo(mermaid(stages), nl=False)
            return
        if fmt == "json":
            from lakehouse.pipeline.export import document

            typer.echo(json.dumps(document(cfg), indent=2))
            return
        Console().print(plan_table(stages, make_plan(cfg)))

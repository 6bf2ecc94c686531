"""``lakehouse train``, ``lakehouse predict``, ``lakehouse evaluate``: the ML stages on their own (package ``ml``)."""

from __future__ import annotations

import typer


def _run(stage: str, options: dict | None = None, record: bool = True) -> None:
    from lakehouse.cli import console, fail, load_or_exit
    from lakehouse.pipeline.runner import run_one
    from lakehouse.pipeline.stage import StageFailed

    cfg = load_or_exit()
    try:
        run_one(cfg, stage, console, options=options, record=record)
    except StageFailed as exc:
        raise fail(str(exc)) from exc


def register(app: typer.Typer) -> None:
    """Add the ML commands to the root app."""

    @app.command()
    def train(
        models: str = typer.Option(
            None, "--models", "-m",
            help="Comma-separated models to train (naive, drift, ridge, hist_gbr, random_forest); "
                 "default: [mlflow] models. naive is always included (it is the baseline).",
        ),
        if_changed: bool = typer.Option(
            False, "--if-changed",
            help="Train only when the pipeline would (the train stage's fingerprint changed), like `lakehouse run`.",
        ),
    ) -> None:
        """Train the forecasting models with walk-forward evaluation, log them to MLflow and pick a champion."""
        names = [m.strip() for m in models.split(",") if m.strip()] if models else None
        if if_changed:
            from lakehouse.cli import console, load_or_exit
            from lakehouse.commands.pipeline import print_run
            from lakehouse.pipeline.runner import run_pipeline

            print_run(run_pipeline(load_or_exit(), console, only=["train"]), console)
            return
        # another model list than the configured one is an experiment, not the pipeline's train stage
        _run("train", {"models": names}, record=names is None)

    @app.command()
    def predict() -> None:
        """Forecast each ticker's adjusted close for the next 5 trading days with the champion model."""
        _run("predict")

    @app.command()
    def evaluate() -> None:
        """Score past forecasts against realized prices into ml.prediction_accuracy."""
        _run("evaluate")

"""``lakehouse backtest``, ``train``, ``predict``, ``evaluate``: the ML stages on their own (package ``ml``)."""

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


def _pipeline_only(stage: str) -> None:
    from lakehouse.cli import console, load_or_exit
    from lakehouse.commands.pipeline import print_run
    from lakehouse.pipeline.runner import run_pipeline

    print_run(run_pipeline(load_or_exit(), console, only=[stage]), console)


def register(app: typer.Typer) -> None:
    """Add the ML commands to the root app."""

    models_help = ("Comma-separated models (naive, drift, ridge, hist_gbr, random_forest); default: \\[mlflow] models. "
                   "naive is always included (it is the baseline).")

    @app.command()
    def backtest(
        models: str = typer.Option(None, "--models", "-m", help=models_help),
        if_changed: bool = typer.Option(
            False, "--if-changed", help="Run only when the pipeline would (the stage's fingerprint changed)."),
    ) -> None:
        """Point-in-time weekly 5-day forecasts of every model over the whole history (ml.backtest_predictions).

        Each model is refit on a calendar schedule (\\[mlflow] retrain_every) on rows whose targets were
        known before the refit date; fits are cached, so a rerun fits only what is new.
        """
        names = [m.strip() for m in models.split(",") if m.strip()] if models else None
        if if_changed:
            _pipeline_only("backtest")
            return
        _run("backtest", {"models": names}, record=names is None)

    @app.command()
    def train(
        models: str = typer.Option(None, "--models", "-m", help=models_help),
        if_changed: bool = typer.Option(
            False, "--if-changed",
            help="Train only when the pipeline would (the train stage's fingerprint changed), like `lakehouse run`.",
        ),
    ) -> None:
        """Score the backtest (cv / holdout), choose a candidate on cv and apply the champion rule on the holdout.

        Logs every score and the decision to MLflow, registers a promoted model and appends the scores
        to ml.model_metrics. Needs `lakehouse backtest` first.
        """
        names = [m.strip() for m in models.split(",") if m.strip()] if models else None
        if if_changed:
            _pipeline_only("train")
            return
        # another model list than the configured one is an experiment, not the pipeline's train stage
        _run("train", {"models": names}, record=names is None)

    @app.command()
    def predict() -> None:
        """Forecast every ticker's 5-day return and adjusted close with the champion (days 1-4 interpolated)."""
        _run("predict")

    @app.command()
    def evaluate() -> None:
        """Score live forecasts against realized returns (one price basis) into ml.prediction_accuracy."""
        _run("evaluate")

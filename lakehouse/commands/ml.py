"""``lakehouse train``, ``lakehouse predict``, ``lakehouse evaluate``: the ML stage (package ``ml``)."""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


def _setup():
    from lakehouse.cli import load_or_exit

    cfg = load_or_exit()
    for k, v in cfg.telemetry_env.items():
        os.environ.setdefault(k, v)
    return cfg


def _fail(exc: Exception) -> typer.Exit:
    err_console.print(f"[red]error:[/] {escape(str(exc))}")
    return typer.Exit(1)


def train(
    models: str = typer.Option(
        None, "--models", "-m",
        help="Comma-separated models to train (naive, drift, ridge, hist_gbr, random_forest); "
             "default: [mlflow] models. naive is always included (it is the baseline).",
    ),
    force: bool = typer.Option(
        True, "--force/--if-changed",
        help="--if-changed: skip when the champion was already trained on the current features snapshot.",
    ),
) -> None:
    """Train the forecasting models with walk-forward evaluation, log them to MLflow and pick a champion."""
    from ml.errors import MLError
    from ml.train import train as run_train

    cfg = _setup()
    names = [m.strip() for m in models.split(",") if m.strip()] if models else None
    try:
        result = run_train(cfg, console, models=names, force=force)
    except (MLError, ValueError) as exc:
        raise _fail(exc) from exc
    if not result.trained:
        console.print(result.reason)


def predict() -> None:
    """Forecast each ticker's adjusted close for the next 5 trading days with the champion model."""
    from ml.errors import MLError
    from ml.predict import predict as run_predict

    cfg = _setup()
    try:
        result = run_predict(cfg, console)
    except MLError as exc:
        raise _fail(exc) from exc
    console.print(result.detail())


def evaluate() -> None:
    """Score past forecasts against realized prices into ml.prediction_accuracy."""
    from ml.errors import MLError
    from ml.evaluate import evaluate as run_evaluate

    cfg = _setup()
    try:
        run_evaluate(cfg, console)
    except MLError as exc:
        raise _fail(exc) from exc


def register(app: typer.Typer) -> None:
    """Add the ML commands to the root app."""
    app.command("train")(train)
    app.command("predict")(predict)
    app.command("evaluate")(evaluate)

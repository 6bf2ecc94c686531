"""Stage ``evaluate``: past forecasts joined with realized prices into ml.prediction_accuracy."""

from __future__ import annotations

from rich.console import Console

from lakehouse.config import Config


def run_stage(cfg: Config, console: Console) -> str:
    """Score forecasts whose actuals exist; return a one-line summary."""
    from ml.evaluate import evaluate

    return evaluate(cfg, console).detail()

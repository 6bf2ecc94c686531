"""Stage ``predict``: the champion forecasts the next week into ml.predictions (prints the table)."""

from __future__ import annotations

from rich.console import Console

from lakehouse.config import Config


def run_stage(cfg: Config, console: Console) -> str:
    """Forecast with the champion; return a one-line summary."""
    from ml.predict import predict

    return predict(cfg, console).detail()

"""Stage ``predict``: the champion forecasts the next week into ml.predictions (prints the table)."""

from __future__ import annotations

from rich.console import Console

from lakehouse.config import Config


def run_stage(cfg: Config, console: Console) -> str:
    """Forecast with the champion; return a one-line summary."""
    from lakehouse.stages.train import features_expected
    from ml.errors import FeaturesUnavailable, NoChampion
    from ml.predict import predict

    try:
        return predict(cfg, console).detail()
    except (FeaturesUnavailable, NoChampion) as exc:
        if features_expected():
            raise
        console.print(f"[yellow]skipped:[/] {exc}")
        return "skipped: no features/model yet (the transform-lake stage is not built)"

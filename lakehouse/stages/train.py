"""Stage ``train``: train and register models when no champion exists, or on new features when
``[mlflow] retrain = true``."""

from __future__ import annotations

from rich.console import Console

from lakehouse.config import Config


def features_expected() -> bool:
    """True when the pipeline has a stage that builds the features table (transform-lake)."""
    from lakehouse.pipeline import stages

    return any(s.name == "transform-lake" and s.run is not None for s in stages())


def run_stage(cfg: Config, console: Console) -> str:
    """Train if needed; return a one-line summary."""
    from ml.errors import FeaturesUnavailable
    from ml.train import needs_training, train

    try:
        needed, why = needs_training(cfg)
        if not needed and not cfg.mlflow.retrain:
            console.print(f"{why}; not retraining (set [mlflow] retrain = true or run `lakehouse train`)")
            return f"skipped: {why}"
        if needed:
            console.print(why)
        result = train(cfg, console, force=needed)
    except FeaturesUnavailable as exc:
        if features_expected():
            raise
        console.print(f"[yellow]skipped:[/] {exc}")
        return "skipped: no features table yet (the transform-lake stage is not built)"
    return result.detail()

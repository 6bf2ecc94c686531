"""Stage ``train``: train and register models when no champion exists, or on new features when
``[mlflow] retrain = true``."""

from __future__ import annotations

from rich.console import Console

from lakehouse.config import Config


def run_stage(cfg: Config, console: Console) -> str:
    """Train if needed; return a one-line summary."""
    from ml.train import needs_training, train

    needed, why = needs_training(cfg)
    if not needed and not cfg.mlflow.retrain:
        console.print(f"{why}; not retraining (set [mlflow] retrain = true or run `lakehouse train`)")
        return f"skipped: {why}"
    if needed:
        console.print(why)
    return train(cfg, console, force=needed).detail()

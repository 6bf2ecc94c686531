"""The model registry side: the champion rule, aliases, and finding the champion.

Champion rule: the trained model with the lowest walk-forward MASE becomes ``champion`` only when
its MASE is below 1 (it beats the naive last-close forecast); otherwise this run's naive model
becomes champion and the run records why. The version that held ``champion`` before gets
``previous``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from ml.models import BASELINE

CHAMPION = "champion"
PREVIOUS = "previous"


def choose_champion(mase: dict[str, float]) -> tuple[str, str]:
    """(winning model name, human-readable reason) from each model's overall MASE."""
    candidates = sorted((m, n) for n, m in mase.items() if n != BASELINE and m is not None and math.isfinite(m))
    if not candidates:
        return BASELINE, "no model other than naive was evaluated; naive is champion"
    best_mase, best = candidates[0]
    if best_mase < 1:
        return best, f"{best} beats naive (MASE {best_mase:.4f} < 1) and is promoted"
    return BASELINE, (
        f"no model beats naive (best: {best} with MASE {best_mase:.4f} >= 1); naive stays/becomes champion"
    )


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version of registered model ``name`` holding ``alias``, or None (no such model or alias)."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def champion_version(client: MlflowClient, name: str) -> ModelVersion | None:
    """The version holding the ``champion`` alias, or None (no registered model or no alias)."""
    return alias_version(client, name, CHAMPION)


@dataclass
class Promotion:
    champion_version: str
    previous_version: str | None


def promote(client: MlflowClient, name: str, version: str) -> Promotion:
    """Give ``version`` the champion alias; the former champion (if another version) gets ``previous``."""
    old = champion_version(client, name)
    previous = None
    if old is not None and str(old.version) != str(version):
        client.set_registered_model_alias(name, PREVIOUS, old.version)
        previous = str(old.version)
    client.set_registered_model_alias(name, CHAMPION, version)
    return Promotion(str(version), previous)

"""The model registry side: the champion rule, aliases, and finding the champion.

Champion rule (applied by ``lakehouse train`` to the backtest's holdout forecasts): the candidate --
the model with the best MASE on the ``cv`` split, chosen without looking at the holdout -- takes the
``champion`` alias only if, on the untouched holdout,

1. it beats naive: relative MAE below 1 with a Diebold-Mariano statistic below 0 and a p-value under
   ``[mlflow] dm_pvalue_max`` (default 0.10), and
2. it beats the current champion: a lower MASE than the champion's model kind on the same holdout
   rows (the backtest holds that kind's point-in-time forecasts too). A newer fit of the champion's
   own kind replaces it; a champion kind that is no longer backtested cannot be compared, so
   beating naive is enough (the reason says so).

Otherwise the current champion stays, and the decision says why. With no champion yet, naive becomes
champion until a model earns it. The version that held ``champion`` before gets ``previous``.
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


@dataclass(frozen=True)
class Decision:
    """Which model kind should hold the champion alias, whether to move it, and why."""

    champion: str
    promote: bool
    reason: str


def _f(v: float) -> str:
    return "nan" if v is None or not math.isfinite(v) else f"{v:.4f}"


def beats_naive(holdout: dict[str, float], threshold: float) -> bool:
    """Relative MAE < 1 and a Diebold-Mariano test against naive significant at ``threshold``, in its favour."""
    rel, stat, p = (holdout.get(k, math.nan) for k in ("rel_mae", "dm_stat", "dm_pvalue"))
    return all(map(math.isfinite, (rel, stat, p))) and rel < 1 and stat < 0 and p < threshold


def champion_rule(candidate: str | None, holdout: dict[str, float] | None, current: str | None,
                  vs_current: dict[str, float] | None, threshold: float) -> Decision:
    """The decision for ``candidate`` (its holdout scores) against naive and the ``current`` champion kind.

    ``vs_current``: :func:`ml.metrics.compare` of the candidate with the current champion's kind on the
    holdout (``mase`` vs ``mase_ref``); None when that kind has no backtest forecasts.
    """
    if candidate is None or holdout is None:
        if current is None:
            return Decision(BASELINE, True, "no model other than naive was evaluated: naive becomes champion")
        return Decision(current, False, f"no model other than naive was evaluated: {current} stays champion")
    if not beats_naive(holdout, threshold):
        why = (f"{candidate} (best on cv) does not beat naive significantly on the holdout: rel_mae "
               f"{_f(holdout.get('rel_mae'))}, DM {_f(holdout.get('dm_stat'))}, p {_f(holdout.get('dm_pvalue'))} "
               f"(needs rel_mae < 1 and p < {threshold:g})")
        if current is None:
            return Decision(BASELINE, True, f"{why}; naive becomes champion")
        return Decision(current, False, f"{why}; {current} stays champion")
    sig = f"beats naive on the holdout (rel_mae {_f(holdout['rel_mae'])}, DM p {_f(holdout['dm_pvalue'])})"
    if current is None or current == BASELINE:
        return Decision(candidate, True, f"{candidate} {sig} and is promoted")
    if current == candidate:
        return Decision(candidate, True, f"{candidate} {sig}; its newest fit replaces the champion of the same kind")
    if vs_current is None:
        return Decision(candidate, True, f"{candidate} {sig}; the current champion's kind {current} has no backtest "
                                         "forecasts to compare on the holdout, so it is promoted on beating naive")
    if vs_current["mase"] < vs_current["mase_ref"]:
        return Decision(candidate, True, f"{candidate} {sig} and beats the current champion {current} on the same "
                                         f"holdout (MASE {_f(vs_current['mase'])} < {_f(vs_current['mase_ref'])}): "
                                         "promoted")
    return Decision(current, False, f"{candidate} {sig} but not the current champion {current} on the same holdout "
                                    f"(MASE {_f(vs_current['mase'])} >= {_f(vs_current['mase_ref'])}); "
                                    f"{current} stays champion")


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

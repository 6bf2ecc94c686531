"""The retrain policy: which new backtest forecasts make the ``train`` stage run again (``[mlflow] retrain``).

The train stage scores ``ml.backtest_predictions`` and applies the champion rule. The backtest gets a
new snapshot whenever a forecast or a realized return changes (most trading days), and re-selecting
the champion every day would mostly churn the registry. This view decides what of the backtest's
version the train stage's fingerprint keeps.

Kept apart from :mod:`ml.train` on purpose: the pipeline evaluates it on every run to decide whether
training is due, and it must not import scikit-learn or MLflow (seconds) to say "not yet".
"""

from __future__ import annotations

from lakehouse.config import Config
from lakehouse.contracts import BACKTEST_PREDICTIONS

BACKTEST_TABLE = BACKTEST_PREDICTIONS.identifier
PRODUCER = "backtest"


def fingerprint_inputs(cfg: Config, lake, versions: dict[str, str | None], records: dict) -> dict[str, str | None]:
    """What of the backtest's version the train stage's fingerprint keeps, by ``[mlflow] retrain``.

    ``always``: every new snapshot. ``weekly``: the ISO week of the newest as-of date (the backtest
    adds one as-of date per week, so selection reruns once a week). ``never``: only that forecasts
    exist. In the last two, the backtest's *definition* (its stage's code, packages and config:
    models, schedule) is kept too, so new models or a new schedule always re-select. Changed
    selection code or settings re-select anyway (they are part of the train stage's fingerprint).
    """
    snapshot = versions.get(BACKTEST_TABLE)
    policy = cfg.mlflow.retrain
    if policy == "always" or snapshot is None:
        return versions
    producer = records.get(PRODUCER)
    definition = ""
    if producer is not None:
        from lakehouse.pipeline.fingerprint import digest

        definition = digest({"code": producer.code, "packages": producer.packages, "config": producer.config})[:16]
    if policy == "never":
        return {**versions, BACKTEST_TABLE: f"definition {definition}"}
    import pyarrow.compute as pc

    table = lake.catalog.load_table(BACKTEST_TABLE)
    dates = table.scan(snapshot_id=int(snapshot), selected_fields=("as_of_date",)).to_arrow()["as_of_date"]
    last = pc.max(dates).as_py()
    week = f"{last.isocalendar().year}-W{last.isocalendar().week:02d}" if last else "empty"
    return {**versions, BACKTEST_TABLE: f"week {week}; definition {definition}"}
